//! The provisioning jobs, declared once in [`HOSTING_JOBS`] (action, queue,
//! metrics label), enqueueing inside the caller's transaction, and the apalis
//! worker pool that runs them.
//!
//! A job payload is ids only. Our own retries are new delayed tasks written in
//! the same transaction as the attempt's log row (apalis re-fetches a failed task
//! at once, with no backoff), so a retry survives a crash and is never lost.

use std::time::Duration;

use apalis::prelude::*;
use apalis_postgres::{Config as PgQueueConfig, PostgresStorage};
use futures::FutureExt as _;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::app::error::AppResult;
use crate::domain::{Action, TriggeredBy};
use crate::provisioner;
use crate::state::Core;

mod wakeups;

/// Times apalis itself may run one task: covers orphan recovery after a worker
/// crash and database hiccups. Panel retries are ours, with backoff.
const TASK_MAX_ATTEMPTS: usize = 10;

/// What every hosting job carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobArgs {
    pub service_id: i64,
    /// 1 for the first try; our retries count up.
    pub attempt: u32,
    pub triggered_by: TriggeredBy,
}

/// One hosting action that runs as a job: its queue, and the label its
/// counters carry in `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobKind {
    pub action: Action,
    pub queue: &'static str,
    pub label: &'static str,
}

/// Declares every hosting job in one place: the job type, its action, its
/// queue (`commerce.<label>`) and its metrics label. [`HOSTING_JOBS`] is
/// what the worker pool, [`queue_of`], [`queues`], the metrics and the queue
/// depth read, so a new action is one more line here.
macro_rules! hosting_jobs {
    ($($(#[$m:meta])* $name:ident: $action:ident => $label:literal;)+) => {
        $(
            $(#[$m])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
            pub struct $name(pub JobArgs);

            impl $name {
                pub const QUEUE: &'static str = concat!("commerce.", $label);
                pub const ACTION: Action = Action::$action;
            }
        )+

        /// Every hosting job, in the order the pool starts its workers.
        pub const HOSTING_JOBS: &[JobKind] = &[
            $(JobKind { action: Action::$action, queue: $name::QUEUE, label: $label },)+
        ];
    };
}

hosting_jobs! {
    /// Creates the hosting account of a service on a Panel server.
    CreateHostingAccountJob: Create => "create_hosting_account";
    /// Suspends an account: site down, files kept.
    SuspendHostingAccountJob: Suspend => "suspend_hosting_account";
    /// Unsuspends an account.
    UnsuspendHostingAccountJob: Unsuspend => "unsuspend_hosting_account";
    /// Deletes an account from the Panel: irreversible.
    TerminateHostingAccountJob: Terminate => "terminate_hosting_account";
    /// Moves an account to another product's package on the Panel.
    ChangePackageJob: ChangePackage => "change_package";
    /// Sets a newly generated password on the Panel account.
    ChangePasswordJob: ChangePassword => "change_password";
    /// Reads the account's usage and status from the Panel.
    SyncAccountJob: Info => "sync_account";
}

/// The job of an action (`None`: the action never runs as a job).
pub fn job_of(action: Action) -> Option<&'static JobKind> {
    HOSTING_JOBS.iter().find(|j| j.action == action)
}

/// The queue of an action's job.
pub fn queue_of(action: Action) -> Option<&'static str> {
    job_of(action).map(|j| j.queue)
}

/// Every queue this service's workers read: the hosting jobs', then mail's.
pub fn queues() -> impl Iterator<Item = &'static str> {
    HOSTING_JOBS
        .iter()
        .map(|j| j.queue)
        .chain([crate::mail::QUEUE])
}

/// Enqueues the job for `action` within the caller's transaction: it exists
/// exactly when the transaction commits. Returns the job id.
pub async fn enqueue(
    conn: &mut PgConnection,
    action: Action,
    args: JobArgs,
    delay: Option<Duration>,
) -> AppResult<String> {
    let queue = queue_of(action).ok_or_else(|| anyhow::anyhow!("{action} has no job"))?;
    let id = ulid::Ulid::generate();
    let payload = serde_json::to_vec(&args).map_err(anyhow::Error::from)?;
    let mut builder = TaskBuilder::new(payload)
        .task_id(TaskId::from_ulid(id))
        .max_attempts(TASK_MAX_ATTEMPTS);
    if let Some(d) = delay {
        builder = builder.run_after(d);
    }
    apalis_postgres::queries::push_tasks(conn, queue, vec![builder.build()])
        .await
        .map_err(|e| anyhow::Error::new(e).context(format!("could not enqueue {queue}")))?;
    Ok(id.to_string())
}

/// Enqueues many jobs of one action in one statement, in the caller's transaction.
pub async fn enqueue_many(
    conn: &mut PgConnection,
    action: Action,
    jobs: Vec<(JobArgs, Option<Duration>)>,
) -> anyhow::Result<()> {
    let queue = queue_of(action).ok_or_else(|| anyhow::anyhow!("{action} has no job"))?;
    let mut tasks = Vec::with_capacity(jobs.len());
    for (args, delay) in jobs {
        let mut builder = TaskBuilder::new(serde_json::to_vec(&args)?)
            .task_id(TaskId::from_ulid(ulid::Ulid::generate()))
            .max_attempts(TASK_MAX_ATTEMPTS);
        if let Some(d) = delay {
            builder = builder.run_after(d);
        }
        tasks.push(builder.build());
    }
    for chunk in tasks.chunks(1000) {
        apalis_postgres::queries::push_tasks(&mut *conn, queue, chunk.to_vec())
            .await
            .map_err(|e| anyhow::Error::new(e).context(format!("could not enqueue {queue}")))?;
    }
    Ok(())
}

/// Creates apalis's schema (and its extensions) if missing.
pub async fn setup(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    PostgresStorage::setup(pool)
        .await
        .map_err(|e| anyhow::anyhow!("apalis setup: {e}"))
}

/// Deletes finished job rows older than the retention period.
pub async fn prune_finished(pool: &sqlx::PgPool, older_than: Duration) -> anyhow::Result<u64> {
    let done = sqlx::query!(
        "DELETE FROM apalis.jobs WHERE status IN ('Done', 'Killed') AND done_at IS NOT NULL
           AND done_at < now() - make_interval(secs => $1)",
        older_than.as_secs_f64(),
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

async fn run_job(
    args: JobArgs,
    action: Action,
    task_id: TaskId,
    state: Data<Core>,
) -> Result<(), BoxDynError> {
    let state: Core = (*state).clone();
    let job_id = task_id.to_string();
    let run = provisioner::run(&state, action, args, &job_id);
    // A panic inside one job is recorded on its service and log, not lost.
    match std::panic::AssertUnwindSafe(run).catch_unwind().await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::error!(service.id = args.service_id, job.id = %job_id, error = %format!("{e:#}"), "provisioning job failed");
            Err(e.to_string().into())
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(service.id = args.service_id, job.id = %job_id, panic = %what, "provisioning job panicked");
            provisioner::record_panic(&state, action, args, &job_id, &what)
                .await
                .map_err(|e| e.to_string())?;
            Ok(())
        }
    }
}

/// Every hosting job's handler: the worker of each queue carries its action.
async fn handle_hosting(
    args: JobArgs,
    task_id: TaskId,
    state: Data<Core>,
    action: Data<Action>,
) -> Result<(), BoxDynError> {
    let metrics = state.metrics.clone();
    let done = run_job(args, *action, task_id, state).await;
    metrics.job_finished.notify_waiters();
    done
}

async fn handle_send_mail(
    job: crate::mail::SendMailJob,
    state: Data<Core>,
) -> Result<(), BoxDynError> {
    let state: Core = (*state).clone();
    let done = crate::mail::run(&state, &job).await.map_err(|e| {
        tracing::error!(error = %e, "mail job failed");
        BoxDynError::from(e.to_string())
    });
    state.metrics.job_finished.notify_waiters();
    done
}

fn storage<T>(state: &Core, queue: &str) -> PostgresStorage<T> {
    let config = PgQueueConfig::default()
        .queue(queue)
        .batch_size(state.config.worker_concurrency.clamp(10, 100))
        .heartbeat_interval(Duration::from_secs(2))
        .missed_heartbeats(3);
    PostgresStorage::new(&state.pool).with_config(config)
}

/// A worker name unique to this process start, so a restarted process never
/// inherits a dead one's identity (its orphans would never be recovered).
fn worker_name(queue: &str) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
    format!(
        "{queue}@{host}:{}:{}",
        std::process::id(),
        ulid::Ulid::generate()
    )
}

/// Runs the worker pool until `shutdown` resolves; in-flight jobs finish first.
pub async fn run_workers(
    state: Core,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let concurrency = state.config.worker_concurrency;
    // One listener wakes every queue's worker, until the worker pool stops.
    let wakeups = std::sync::Arc::new(wakeups::Wakeups::start(&state.pool, queues()));
    // One queue's worker: its storage, woken by the shared listener and
    // polled every second, the core (and any more data) for the handler, the
    // process's concurrency.
    macro_rules! worker {
        ($state:expr, $wakeups:expr, $args:ty, $queue:expr, $handler:expr $(, $data:expr)*) => {
            WorkerBuilder::new(worker_name($queue))
                .backend(
                    storage::<$args>(&$state, $queue)
                        .poll_with_stream($wakeups.of($queue))
                        .poll_with_interval(Duration::from_secs(1)),
                )
                .data($state.clone())
                $(.data($data))*
                .concurrency(concurrency)
                .catch_panic()
                .build($handler)
        };
    }
    let mut monitor = Monitor::new();
    for job in HOSTING_JOBS {
        let (state, wakeups) = (state.clone(), wakeups.clone());
        let (action, queue) = (job.action, job.queue);
        monitor = monitor.register(move |_restarts: usize| {
            worker!(state, wakeups, JobArgs, queue, handle_hosting, action)
        });
    }
    let mail = {
        let (state, wakeups) = (state.clone(), wakeups.clone());
        move |_restarts: usize| {
            worker!(
                state,
                wakeups,
                crate::mail::SendMailJob,
                crate::mail::QUEUE,
                handle_send_mail
            )
        }
    };
    monitor
        .register(mail)
        // A worker that dies (PostgreSQL unreachable for a while) is rebuilt by
        // its factory, under a new unique name, so its orphans are recovered.
        .should_restart(|ctx, err| {
            tracing::error!(worker = ctx.name(), error = %err, "worker stopped; restarting it");
            true
        })
        .shutdown_timeout(state.config.panel_timeout + Duration::from_secs(5))
        .run_with_signal(async move {
            shutdown.await;
            Ok(())
        })
        .await
        .map_err(|e| anyhow::anyhow!("worker pool stopped: {e}"))
}
