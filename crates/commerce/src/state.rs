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
    /// The default (verifying) context; per-server TLS goes through `http`.
    pub module_ctx: ModuleContext,
    pub http: Arc<crate::app::tls::HttpClients>,
    pub metrics: Arc<Metrics>,
    pub workers: crate::runtime::WorkerStatus,
    pub api_tokens: Arc<crate::api::auth::TokenCache>,
}

impl AppState {
    pub fn new(pool: PgPool, config: Config) -> anyhow::Result<Self> {
        let http = crate::app::tls::HttpClients::new(config.client_options())?;
        Ok(Self {
            pool,
            sealer: Sealer::new(&config.app_key),
            config: Arc::new(config),
            registry: Arc::new(opterius_modules::builtin()),
            module_ctx: http.default_ctx().clone(),
            http: Arc::new(http),
            metrics: Arc::new(Metrics::default()),
            workers: crate::runtime::WorkerStatus::default(),
            api_tokens: Arc::default(),
        })
    }
}
