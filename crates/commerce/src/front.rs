//! The HTTP front end's state: the [`Core`] every layer shares, plus what only
//! the front end keeps (when each API token was last touched, whether this
//! process's worker pool runs, for the readiness check). Handlers take it;
//! it dereferences to the core, so `state.pool` and `app::…(&state)` read as
//! before.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::PgPool;

use crate::api::auth::TokenCache;
use crate::config::Config;
use crate::runtime::WorkerStatus;
use crate::state::Core;

#[derive(Clone)]
pub struct AppState {
    pub core: Core,
    pub workers: WorkerStatus,
    pub api_tokens: Arc<TokenCache>,
}

impl AppState {
    pub fn new(pool: PgPool, config: Config) -> anyhow::Result<Self> {
        Ok(Self {
            core: Core::new(pool, config)?,
            workers: WorkerStatus::default(),
            api_tokens: Arc::default(),
        })
    }
}

impl Deref for AppState {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.core
    }
}

impl DerefMut for AppState {
    fn deref_mut(&mut self) -> &mut Core {
        &mut self.core
    }
}
