//! Benchmark and fault-suite harness. Everything runs as real processes on
//! loopback: `opterius-sim` (the Panel), `commerce serve` / `commerce worker`,
//! against a throwaway PostgreSQL database, driven over HTTP.

pub mod api;
pub mod db;
pub mod procs;
pub mod scenarios;
pub mod stats;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::api::Api;
use crate::db::TempDb;
use crate::procs::{Bins, CommerceEnv, CommerceProc};

/// One service under test: its database, settings, `commerce serve` process,
/// an API client with a fresh token, and a pool on the database for checks.
pub struct Stack {
    pub serve: CommerceProc,
    pub api: Api,
    pub pool: sqlx::PgPool,
    pub env: CommerceEnv,
    pub db: TempDb,
}

impl Stack {
    /// Creates database `db_name` (replacing a leftover), migrates it, creates
    /// an API token and starts `commerce serve` with `env` on top of it.
    pub async fn start(
        bins: &Bins,
        db_name: &str,
        env: impl FnOnce(CommerceEnv) -> CommerceEnv,
        no_worker: bool,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let db = TempDb::create(db_name).await?;
        let env = env(CommerceEnv::new(&db.url));
        env.migrate(bins)?;
        let token = env.create_token(bins, "bench")?;
        let serve = env.serve(bins, no_worker, log).await?;
        let api = Api::new(&serve.base, &token)?;
        let pool = db.pool().await?;
        Ok(Self {
            serve,
            api,
            pool,
            env,
            db,
        })
    }

    /// Stops the service gracefully and drops the database.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.serve.proc.terminate(Duration::from_secs(20));
        self.pool.close().await;
        self.db.drop_db().await
    }
}

/// `target/<dir>` of the build that holds `bins` (e.g. target/bench).
pub fn target_subdir(bins: &Bins, name: &str) -> PathBuf {
    bins.dir
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join(name)
}
