//! Running the service: logging, signals, the supervised worker pool, the
//! retention task, and the HTTP server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::config::LogFormat;
use crate::front::AppState;
use crate::jobs;
use crate::state::Core;

/// Whether this process's worker pool runs.
#[derive(Clone, Default)]
pub struct WorkerStatus(Arc<AtomicU8>);

const NOT_HERE: u8 = 0;
const RUNNING: u8 = 1;
const RESTARTING: u8 = 2;
const STOPPED: u8 = 3;

impl WorkerStatus {
    pub fn status(&self) -> &'static str {
        match self.0.load(Ordering::Relaxed) {
            RUNNING => "running",
            RESTARTING => "restarting",
            STOPPED => "stopped",
            NOT_HERE => "not_in_this_process",
            _ => "unknown",
        }
    }

    fn set(&self, v: u8) {
        self.0.store(v, Ordering::Relaxed);
    }
}

/// Installs the tracing subscriber: readable text, or JSON with LOG_FORMAT=json.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        "info,sqlx=warn,apalis=warn,apalis_core=warn,apalis_postgres=warn,tower_http=info".into()
    });
    // Colour only for a person at a terminal: files, journald and pipes get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutdown requested: finishing in-flight work");
}

/// Runs the worker pool until `stop` flips, restarting it when it dies (for
/// instance after PostgreSQL was unreachable for a while).
pub async fn supervise_workers(state: Core, status: WorkerStatus, mut stop: watch::Receiver<bool>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        status.set(RUNNING);
        let mut rx = stop.clone();
        let signal = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let result = jobs::run_workers(state.clone(), signal).await;
        if *stop.borrow() {
            status.set(STOPPED);
            tracing::info!("worker pool stopped");
            return;
        }
        status.set(RESTARTING);
        match result {
            Ok(()) => tracing::warn!("worker pool exited; restarting in {} s", backoff.as_secs()),
            Err(e) => {
                tracing::error!(error = %e, "worker pool failed; restarting in {} s", backoff.as_secs())
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => { status.set(STOPPED); return; }
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// How often a process proves it is alive, and after how long without a
/// beat its service leases are free for others.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
pub const HEARTBEAT_STALE: Duration = Duration::from_secs(6);

/// Writes this process's heartbeat once.
async fn beat(db: &mut sqlx::PgConnection, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO worker_heartbeats (worker_id) VALUES ($1)
         ON CONFLICT (worker_id) DO UPDATE SET seen_at = now(), updated_at = now()",
        id,
    )
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// The first heartbeat, written before any job runs: a lease never names a
/// process that others could take for dead.
pub async fn first_heartbeat(state: &Core) -> anyhow::Result<()> {
    let mut conn = state.pool.acquire().await?;
    beat(&mut conn, &state.instance_id).await?;
    Ok(())
}

/// Beats in `worker_heartbeats` until `stop`, on a connection of its own so a
/// busy pool never delays a beat; the row goes when the process stops.
pub async fn heartbeat(state: Core, mut stop: watch::Receiver<bool>) {
    use sqlx::Connection as _;
    let mut conn: Option<sqlx::PgConnection> = None;
    loop {
        if conn.is_none() {
            conn = sqlx::PgConnection::connect(&state.config.database_url)
                .await
                .ok();
        }
        if let Some(c) = conn.as_mut()
            && let Err(e) = beat(c, &state.instance_id).await
        {
            tracing::warn!(error = %e, "could not write this worker's heartbeat");
            conn = None;
        }
        tokio::select! {
            () = tokio::time::sleep(HEARTBEAT_EVERY) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    let _ = sqlx::query!(
        "DELETE FROM worker_heartbeats WHERE worker_id = $1 OR seen_at < now() - interval '1 hour'",
        &*state.instance_id,
    )
    .execute(&state.pool)
    .await;
}

/// Deletes finished job rows on a schedule (apalis keeps them forever).
pub async fn retention(state: Core, mut stop: watch::Receiver<bool>) {
    loop {
        match jobs::prune_finished(&state.pool, state.config.job_retention).await {
            Ok(n) if n > 0 => tracing::info!(deleted = n, "pruned finished job rows"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not prune finished job rows"),
        }
        if let Err(e) = crate::app::servers::prune_health_history(&state.pool, 200).await {
            tracing::warn!(error = %e, "could not prune the servers' health history");
        }
        if let Err(e) = crate::app::idempotency::prune(&state.pool).await {
            tracing::warn!(error = %e, "could not prune expired idempotency keys");
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(600)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Queues usage sync rounds on `USAGE_SYNC_INTERVAL_SECS` (off at zero); one
/// process per round across the cluster.
pub async fn usage_schedule(state: Core, mut stop: watch::Receiver<bool>) {
    let interval = state.config.usage_sync_interval;
    if interval.is_zero() {
        return;
    }
    let check = interval.min(Duration::from_secs(60));
    loop {
        if let Err(e) = crate::app::usage_schedule::tick(&state, interval).await {
            tracing::warn!(error = %e, "could not queue the usage sync round");
        }
        tokio::select! {
            () = tokio::time::sleep(check) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Serves HTTP (and, unless `with_workers` is false, the worker pool) until a
/// shutdown signal; in-flight requests and jobs finish first.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    with_workers: bool,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let signal = tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let result = serve_until(state, listener, with_workers, stop_rx).await;
    signal.abort();
    result
}

/// Like [`serve`], stopping when `stop` becomes true.
pub async fn serve_until(
    state: AppState,
    listener: tokio::net::TcpListener,
    with_workers: bool,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let tasks = if with_workers {
        background(&state.core, state.workers.clone(), &stop).await
    } else {
        Vec::new()
    };
    // Requests get their own pool; the workers keep `state`'s.
    let http = crate::http_pool(&state.pool, &state.config);
    let web = AppState {
        core: Core {
            pool: http.clone(),
            ..state.core.clone()
        },
        ..state
    };
    let served = crate::listener::serve(listener, crate::router(web), stop).await;
    http.close().await;
    served?;
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

/// Starts the worker side of a process: the first heartbeat, then the
/// supervised pool, retention, heartbeats, health sweeps, alert dispatch and
/// the usage schedule, each until `stop`.
async fn background(
    core: &Core,
    workers: WorkerStatus,
    stop: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    if let Err(e) = first_heartbeat(core).await {
        tracing::warn!(error = %e, "could not write the first heartbeat; leases fall back to their timeout");
    }
    vec![
        tokio::spawn(supervise_workers(core.clone(), workers, stop.clone())),
        tokio::spawn(retention(core.clone(), stop.clone())),
        tokio::spawn(heartbeat(core.clone(), stop.clone())),
        tokio::spawn(crate::app::schedule::health_sweeps(
            core.clone(),
            stop.clone(),
        )),
        tokio::spawn(crate::app::alerts::dispatch(core.clone(), stop.clone())),
        tokio::spawn(usage_schedule(core.clone(), stop.clone())),
    ]
}

/// Runs only the worker side (no HTTP) until a shutdown signal.
pub async fn work(core: Core) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let tasks = background(&core, WorkerStatus::default(), &stop_rx).await;
    shutdown_signal().await;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}
