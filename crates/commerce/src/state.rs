//! Shared state: one cheap-to-clone struct handed to handlers and jobs.

use std::sync::Arc;

use provisioning::{ModuleContext, Registry};
use sqlx::PgPool;

use crate::config::Config;
use crate::crypto::Sealer;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub registry: Arc<Registry>,
    pub sealer: Sealer,
    pub module_ctx: ModuleContext,
    pub metrics: Arc<Metrics>,
    pub workers: crate::runtime::WorkerStatus,
    pub api_tokens: Arc<crate::api::auth::TokenCache>,
    /// Set while a Test all runs in this process: one at a time.
    pub sweep_running: Arc<std::sync::atomic::AtomicBool>,
}

impl AppState {
    pub fn new(pool: PgPool, config: Config) -> anyhow::Result<Self> {
        let http = config
            .client_options()
            .build()
            .map_err(|e| anyhow::anyhow!(e.message))?;
        let network = config.panel_networks.clone();
        Ok(Self {
            pool,
            sealer: Sealer::with_previous(&config.app_key, config.app_key_previous.as_ref()),
            config: Arc::new(config),
            registry: Arc::new(Registry::with_builtin()),
            module_ctx: ModuleContext { http, network },
            metrics: Arc::new(Metrics::default()),
            workers: crate::runtime::WorkerStatus::default(),
            api_tokens: Arc::default(),
            sweep_running: Arc::default(),
        })
    }
}
