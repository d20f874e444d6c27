//! The core context: what the application services, the provisioner and the
//! job handlers share (pool, config, module registry, sealer, HTTP clients,
//! metrics). One cheap-to-clone struct that depends on nothing above it; the
//! HTTP front end wraps it in [`crate::front::AppState`].

use std::sync::Arc;

use provisioning::Registry;
use sqlx::PgPool;

use crate::app::tls::HttpClients;
use crate::config::Config;
use crate::crypto::Sealer;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct Core {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub registry: Arc<Registry>,
    pub sealer: Sealer,
    /// The HTTP clients modules are lent, one per TLS trust.
    pub http: Arc<HttpClients>,
    pub metrics: Arc<Metrics>,
    /// Set while a Test all runs in this process: one at a time.
    pub sweep_running: Arc<std::sync::atomic::AtomicBool>,
    /// This process start's id: service leases name it, its heartbeat proves
    /// it alive.
    pub instance_id: Arc<str>,
    /// The log viewer's server menu, kept a few seconds.
    pub server_menu: Arc<crate::app::servers::ServerMenu>,
}

impl Core {
    pub fn new(pool: PgPool, config: Config) -> anyhow::Result<Self> {
        let http = HttpClients::new(config.client_options())?;
        let registry = opterius_modules::builtin(&config.panel_networks);
        Ok(Self {
            pool,
            sealer: Sealer::with_previous(&config.app_key, config.app_key_previous.as_ref()),
            config: Arc::new(config),
            registry: Arc::new(registry),
            http: Arc::new(http),
            metrics: Arc::new(Metrics::default()),
            sweep_running: Arc::default(),
            instance_id: Arc::from(format!(
                "{}-{}",
                std::process::id(),
                ulid::Ulid::generate().to_string().to_lowercase()
            )),
            server_menu: Arc::default(),
        })
    }
}
