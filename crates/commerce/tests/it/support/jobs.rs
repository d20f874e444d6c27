//! Waiting for the worker pool instead of sleeping: [`TestApp::drain`]
//! returns once apalis has nothing left to do soon, waking each time a job's
//! handler returns (`Metrics::job_finished`), and the "no jobs left behind"
//! check that `finish` and the drop run.
//!
//! apalis-postgres keeps its tasks in `apalis.jobs`; a task is outstanding
//! while it is `Pending` (waiting for its `run_at`), `Queued` (fetched by a
//! worker), `Running`, or `Failed` with attempts left (apalis fetches it
//! again). `Done` and `Killed` are final.

use std::time::{Duration, Instant};

use super::TestApp;

/// Our retries in tests wait `RETRY_BASE_MS`..`RETRY_MAX_MS` (20..200 ms):
/// a task due within this horizon is one the drain waits for. A task parked
/// further out (a `Retry-After: 120`) is not, and counts as left behind.
const DUE_SOON: Duration = Duration::from_secs(5);

/// How long a drain waits at most before it fails, naming what is left.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// The row of a task is written `Done` a moment after its handler returns,
/// and a delayed retry becomes due with no event at all: look again after at
/// most this long when no job finishes.
const RECHECK: Duration = Duration::from_millis(50);

const OUTSTANDING: &str = "(status IN ('Pending', 'Queued', 'Running') \
     OR (status = 'Failed' AND attempts < max_attempts))";

/// One outstanding apalis task, for the failure message.
#[derive(Debug, sqlx::FromRow)]
pub struct LeftJob {
    pub id: String,
    pub queue: String,
    pub status: String,
    pub attempts: i32,
    /// Milliseconds until it is due (negative: overdue).
    pub due_in_ms: i64,
}

impl std::fmt::Display for LeftJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} (attempts {}, due in {} ms)",
            self.queue, self.id, self.status, self.attempts, self.due_in_ms
        )
    }
}

/// Every outstanding task; with `horizon`, only those due within it (and all
/// queued or running ones).
pub async fn outstanding(pool: &sqlx::PgPool, horizon: Option<Duration>) -> Vec<LeftJob> {
    let sql = format!(
        "SELECT id, job_type AS queue, status, attempts,
                (extract(epoch FROM run_at - now()) * 1000)::bigint AS due_in_ms
           FROM apalis.jobs
          WHERE {OUTSTANDING}
            AND ($1::float8 IS NULL OR status IN ('Queued', 'Running')
                 OR run_at <= now() + make_interval(secs => $1))
          ORDER BY run_at, id"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(horizon.map(|h| h.as_secs_f64()))
        .fetch_all(pool)
        .await
        .expect("read apalis.jobs")
}

/// The "no jobs left behind" failure message, `None` when nothing is left.
pub fn left_behind_message(left: &[LeftJob]) -> Option<String> {
    if left.is_empty() {
        return None;
    }
    let list: Vec<String> = left.iter().map(|j| format!("  {j}")).collect();
    Some(format!(
        "the test left {} apalis job(s) behind (drain them with app.drain(), or call \
         app.expect_jobs_left_behind() if that is the point):\n{}",
        left.len(),
        list.join("\n")
    ))
}

impl TestApp {
    /// Runs the pending jobs now: returns once no task is queued, running or
    /// due within a few seconds (our retries included), waking when a job
    /// finishes. Fails after 30 s, naming the tasks still there.
    pub async fn drain(&self) {
        if let Err(left) = self.drain_within(DRAIN_LIMIT).await {
            panic!(
                "the jobs did not drain within {DRAIN_LIMIT:?}:\n{}",
                left_behind_message(&left).unwrap_or_default()
            );
        }
    }

    /// [`TestApp::drain`] with a limit; `Err` holds what was left at the end.
    pub async fn drain_within(&self, limit: Duration) -> Result<(), Vec<LeftJob>> {
        let deadline = Instant::now() + limit;
        loop {
            // Registered before the look, so a job finishing in between still wakes us.
            let finished = self.state.metrics.job_finished.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();
            let left = outstanding(&self.state.pool, Some(DUE_SOON)).await;
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(left);
            }
            let _ = tokio::time::timeout(RECHECK, finished).await;
        }
    }

    /// Waits until `check` (looking at the service's state through the API)
    /// holds, re-checking each time a job finishes; fails after 30 s with
    /// what `check` last saw.
    pub async fn wait_until<T, F, Fut>(&self, what: &str, check: F) -> T
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        let deadline = Instant::now() + DRAIN_LIMIT;
        loop {
            let finished = self.state.metrics.job_finished.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();
            match check().await {
                Ok(done) => return done,
                Err(seen) if Instant::now() >= deadline => {
                    // Say what the queue held, so a stuck job shows as one.
                    let left = outstanding(&self.state.pool, None).await;
                    panic!(
                        "{what} never happened within {DRAIN_LIMIT:?}: {seen}\noutstanding jobs:\n{}",
                        left.iter()
                            .map(|j| format!("  {j}"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    );
                }
                Err(_) => {}
            }
            let _ = tokio::time::timeout(RECHECK, finished).await;
        }
    }

    /// This test leaves apalis jobs queued on purpose (an outage that keeps
    /// retries parked): `finish` and the drop do not fail on them.
    pub fn expect_jobs_left_behind(&self) {
        self.jobs_may_be_left
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub(super) fn jobs_may_be_left(&self) -> bool {
        self.jobs_may_be_left
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}
