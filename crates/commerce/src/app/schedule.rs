//! The scheduled health sweep: every `HEALTH_SWEEP_INTERVAL_SECS` one process
//! (whichever claims the period in `schedule_runs` first, then holding the
//! Test all advisory lock) tests every enabled server and stores the results.

use std::time::Duration;

use futures::StreamExt as _;

use crate::app::{connection, servers};
use crate::state::Core;

/// Claims this period's sweep for this process; false when another process
/// (or this one) already ran it.
async fn claim(state: &Core, every: Duration) -> anyhow::Result<bool> {
    let claimed = sqlx::query_scalar!(
        "INSERT INTO schedule_runs (name, last_run_at) VALUES ('health_sweep', now())
         ON CONFLICT (name) DO UPDATE SET last_run_at = now(), updated_at = now()
         WHERE schedule_runs.last_run_at <= now() - make_interval(secs => $1)
         RETURNING 1",
        // A little slack, so timer jitter never skips a period.
        every.as_secs_f64() * 0.9
    )
    .fetch_optional(&state.pool)
    .await?;
    Ok(claimed.is_some())
}

/// Runs the sweep if this period's is due and unclaimed; returns whether it ran.
pub async fn run_if_due(state: &Core, every: Duration) -> anyhow::Result<bool> {
    if !claim(state, every).await? {
        return Ok(false);
    }
    let slot = match connection::start_sweep(state).await {
        Ok(slot) => slot,
        Err(_) => {
            tracing::info!("a Test all is running: the scheduled sweep skips this period");
            return Ok(false);
        }
    };
    let rows = servers::all(&state.pool).await?;
    let started = std::time::Instant::now();
    let tested = connection::sweep(state.clone(), rows, slot).count().await;
    tracing::info!(
        servers = tested,
        duration_ms = started.elapsed().as_millis() as u64,
        "scheduled health sweep"
    );
    Ok(true)
}

/// The schedule, until `stop`; off when the interval is zero.
pub async fn health_sweeps(state: Core, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Some(every) = state.config.health_sweep_interval else {
        return;
    };
    let tick = (every / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
    loop {
        if let Err(e) = run_if_due(&state, every).await {
            tracing::warn!(error = %e, "scheduled health sweep failed");
        }
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
