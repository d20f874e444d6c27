//! The usage schedule: every `USAGE_SYNC_INTERVAL_SECS`, one process (an
//! advisory lock and a due time in `schedules`) queues a sync of every active
//! or suspended account, spread over the interval server by server, and at
//! most `SYNC_PER_SERVER_PER_SEC` calls a second to any one server.

use std::time::Duration;

use crate::domain::{Action, TriggeredBy};
use crate::jobs::{self, JobArgs};
use crate::state::Core;

/// The advisory lock key of the usage schedule ("usagesyn").
const LOCK: i64 = 0x7573_6167_6573_796e;
const NAME: &str = "usage_sync";
/// The most sync calls a second the schedule sends to one server.
pub const SYNC_PER_SERVER_PER_SEC: f64 = 5.0;

/// Queues a round if one is due and no other process is queuing it; returns
/// how many syncs were queued (0 when not due or another process holds it).
pub async fn tick(state: &Core, interval: Duration) -> anyhow::Result<usize> {
    let mut tx = state.pool.begin().await?;
    let locked = sqlx::query_scalar!(r#"SELECT pg_try_advisory_xact_lock($1) as "locked!""#, LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        return Ok(0);
    }
    let due = sqlx::query_scalar!(
        r#"SELECT COALESCE((SELECT next_run_at <= now() FROM schedules WHERE name = $1), true) as "due!""#,
        NAME
    )
    .fetch_one(&mut *tx)
    .await?;
    if !due {
        return Ok(0);
    }
    let secs = interval.as_secs_f64();
    sqlx::query!(
        "INSERT INTO schedules (name, next_run_at) VALUES ($1, now() + make_interval(secs => $2))
         ON CONFLICT (name) DO UPDATE SET next_run_at = EXCLUDED.next_run_at, updated_at = now()",
        NAME,
        secs
    )
    .execute(&mut *tx)
    .await?;
    // Each server's accounts in order, with their rank and the server's count.
    let rows: Vec<(i64, i64, i64)> = sqlx::query!(
        r#"SELECT id, row_number() OVER w - 1 as "rank!", count(*) OVER (PARTITION BY server_id) as "count!"
         FROM services
         WHERE status IN ('active', 'suspended') AND panel_account_id IS NOT NULL AND server_id IS NOT NULL
         WINDOW w AS (PARTITION BY server_id ORDER BY id)"#
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.id, r.rank, r.count))
    .collect();
    let batch = rows
        .iter()
        .map(|(id, rank, count)| {
            let gap = (secs / *count as f64).max(1.0 / SYNC_PER_SERVER_PER_SEC);
            let delay = Duration::from_secs_f64(gap * *rank as f64);
            let args = JobArgs {
                service_id: *id,
                attempt: 1,
                triggered_by: TriggeredBy::System,
            };
            (args, (!delay.is_zero()).then_some(delay))
        })
        .collect();
    jobs::enqueue_many(&mut tx, Action::Info, batch).await?;
    tx.commit().await?;
    if !rows.is_empty() {
        tracing::info!(
            services = rows.len(),
            interval_secs = interval.as_secs(),
            "usage sync round queued"
        );
    }
    Ok(rows.len())
}
