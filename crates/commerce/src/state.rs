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
}

impl AppState {
    pub fn new(pool: PgPool, config: Config) -> anyhow::Result<Self> {
        let http = config
            .client_options()
            .build()
            .map_err(|e| anyhow::anyhow!(e.message))?;
        Ok(Self {
            pool,
            sealer: Sealer::new(&config.app_key),
            config: Arc::new(config),
            registry: Arc::new(opterius_modules::builtin()),
            module_ctx: ModuleContext { http },
            metrics: Arc::new(Metrics::default()),
            workers: crate::runtime::WorkerStatus::default(),
            api_tokens: Arc::default(),
        })
    }
}
