//! Shared state: one cheap-to-clone struct handed to handlers and jobs.

use std::sync::Arc;

use provisioning::Registry;
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
    /// The HTTP clients modules are lent, one per TLS trust.
    pub http: Arc<crate::app::tls::HttpClients>,
    pub metrics: Arc<Metrics>,
    pub workers: crate::runtime::WorkerStatus,
    pub api_tokens: Arc<crate::api::auth::TokenCache>,
    /// Set while a Test all runs in this process: one at a time.
    pub sweep_running: Arc<std::sync::atomic::AtomicBool>,
    /// This process start's id: service leases name it, its heartbeat proves
    /// it alive.
    pub instance_id: Arc<str>,
}

impl AppState {
    pub fn new(pool: PgPool, config: Config) -> anyhow::Result<Self> {
        let http = crate::app::tls::HttpClients::new(config.client_options())?;
        let registry = opterius_modules::builtin(&config.panel_networks);
        Ok(Self {
            pool,
            sealer: Sealer::with_previous(&config.app_key, config.app_key_previous.as_ref()),
            config: Arc::new(config),
            registry: Arc::new(registry),
            http: Arc::new(http),
            metrics: Arc::new(Metrics::default()),
            workers: crate::runtime::WorkerStatus::default(),
            api_tokens: Arc::default(),
            sweep_running: Arc::default(),
            instance_id: Arc::from(format!(
                "{}-{}",
                std::process::id(),
                ulid::Ulid::generate().to_string().to_lowercase()
            )),
        })
    }
}
