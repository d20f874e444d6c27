//! The core context: what the application services, the provisioner and the
//! job handlers share (pool, config, module registry, sealer, HTTP clients,
//! metrics, and [`Kept`], the one value held between requests). One
//! cheap-to-clone struct that depends on nothing above it; the HTTP front end
//! wraps it in [`crate::front::AppState`].

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

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
    /// The log viewer's server menu (`app::servers::menu`), kept a few seconds.
    pub server_menu: Arc<Kept<NameList>>,
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

/// Servers' ids and names, by name, shared without copying.
pub type NameList = Arc<[(i64, String)]>;

/// A value read from the database and kept for a while, where being a few
/// seconds stale harms nothing (the one user: `app::servers::menu`). The
/// writer clears it after its write; a read that began before the clear is
/// not kept, since it may have read the rows as they were.
pub struct Kept<T>(Mutex<KeptState<T>>);

struct KeptState<T> {
    /// Bumped by every clear.
    generation: u64,
    kept: Option<(Instant, T)>,
}

impl<T> Default for Kept<T> {
    fn default() -> Self {
        Self(Mutex::new(KeptState {
            generation: 0,
            kept: None,
        }))
    }
}

impl<T: Clone> Kept<T> {
    fn lock(&self) -> MutexGuard<'_, KeptState<T>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value if it was kept less than `max_age` ago; else the generation
    /// to hand [`Kept::keep`] with the value read afresh.
    pub fn get(&self, max_age: Duration) -> Result<T, u64> {
        let m = self.lock();
        match &m.kept {
            Some((at, value)) if at.elapsed() < max_age => Ok(value.clone()),
            _ => Err(m.generation),
        }
    }

    /// Keeps `value`, read after [`Kept::get`] returned `generation`, unless a
    /// clear came in between.
    pub fn keep(&self, generation: u64, value: T) {
        let mut m = self.lock();
        if m.generation == generation {
            m.kept = Some((Instant::now(), value));
        }
    }

    /// Forgets the value: call it after the write that changes it.
    pub fn clear(&self) {
        let mut m = self.lock();
        m.generation = m.generation.wrapping_add(1);
        m.kept = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_began_before_a_clear_is_not_kept() {
        let kept = Kept::<u32>::default();
        let day = Duration::from_secs(86_400);
        let before = kept.get(day).expect_err("nothing kept yet");
        kept.clear(); // a write lands while the read is out
        kept.keep(before, 1);
        let after = kept.get(day).expect_err("the stale read was dropped");
        kept.keep(after, 2);
        assert_eq!(kept.get(day), Ok(2));
        assert!(
            kept.get(Duration::ZERO).is_err(),
            "kept no longer than asked"
        );
        kept.clear();
        assert!(kept.get(day).is_err(), "a clear forgets");
    }
}
