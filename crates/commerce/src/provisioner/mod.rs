//! The provisioner: runs one module action for one service and records
//! everything: a pending log row before the Panel call, then the outcome (log
//! row, service status, `panel_account_id`, the next retry) in one transaction.
//!
//! Never a duplicate account: the username is fixed before the first call; a
//! service holds a lease while a call is in flight; after an attempt whose
//! outcome is unknown, a 409 for our own username is reconciled against the
//! Panel or reported as needing attention, never retried under another name.

mod change;
mod create;
mod lifecycle;
mod sync;

use anyhow::Context as _;
use std::sync::Arc;
use std::time::Duration;

use provisioning::{
    Credentials, Failure, FailureKind, ProvisioningModule, ProvisioningResult, Redactor,
};
use rand::RngExt as _;
use serde_json::{Value, json};
use sqlx::PgConnection;
use sqlx::types::Json;
use tracing::Instrument as _;

use crate::app::alerts;
use crate::app::log::{self, Finish, NewEntry};
use crate::app::servers::{self, ServerRow};
use crate::app::services::{self, ServiceRow};
use crate::domain::{Action, LogStatus};
use crate::jobs::{self, JobArgs};
use crate::state::Core;

/// One run of one job.
struct Run<'a> {
    state: &'a Core,
    action: Action,
    args: JobArgs,
    job_id: &'a str,
    service: ServiceRow,
    /// Whether this run took a call slot on a server (given back at its end).
    holds_slot: std::sync::atomic::AtomicBool,
}

/// Every call slot of the service's server is taken: run the job again soon,
/// without holding a worker meanwhile.
#[derive(Debug, thiserror::Error)]
#[error("server {0} is at its max_concurrent calls")]
struct ServerBusy(i64);

/// Runs `action` for the job's service. Errors are infrastructure errors
/// (database unreachable); every Panel outcome is recorded and returns Ok.
pub async fn run(state: &Core, action: Action, args: JobArgs, job_id: &str) -> anyhow::Result<()> {
    let lease = state.config.panel_timeout * 2 + Duration::from_secs(10);
    // Free when its lease ran out, or when the process holding it stopped
    // beating (killed): then its call slots go too, in the same statement.
    // A holder without a heartbeat row (never beat, or stopped gracefully)
    // keeps its lease until it runs out.
    let leased = services::lease(
        &state.pool,
        args.service_id,
        lease,
        &state.instance_id,
        crate::runtime::HEARTBEAT_STALE,
    )
    .await
    .with_context(|| format!("leasing service {} for its {action} job", args.service_id))?;
    let Some(service) = leased else {
        return defer_while_leased(state, action, args).await;
    };
    // The span is attached to the future, not entered across awaits, so
    // lines of concurrent jobs never carry each other's spans.
    let span = tracing::info_span!("provision", service.id = service.id, action = %action, attempt = args.attempt, job.id = %job_id);
    let mut run = Run {
        state,
        action,
        args,
        job_id,
        service,
        holds_slot: Default::default(),
    };
    let outcome = async {
        match action {
            Action::Create => run.create().await,
            Action::Suspend | Action::Unsuspend | Action::Terminate => run.lifecycle().await,
            Action::ChangePackage | Action::ChangePassword => run.change().await,
            Action::Info => run.sync().await,
            Action::TestConnection => Ok(()),
        }
    }
    .instrument(span)
    .await;
    if run.holds_slot.into_inner() {
        servers::release_call_slots(&state.pool, args.service_id)
            .await
            .context("releasing the service's Panel call slots")?;
    }
    if let Err(e) = &outcome
        && let Some(ServerBusy(server_id)) = e.downcast_ref::<ServerBusy>()
    {
        return defer_while_server_busy(state, action, args, *server_id).await;
    }
    if outcome.is_err() {
        let _ = sqlx::query!(
            "UPDATE services SET lease_until = NULL WHERE id = $1",
            args.service_id,
        )
        .execute(&state.pool)
        .await;
    }
    outcome
}

/// Another run holds the service: run this job again once its lease ends.
async fn defer_while_leased(state: &Core, action: Action, args: JobArgs) -> anyhow::Result<()> {
    let remaining: Option<f64> = sqlx::query_scalar!(
        "SELECT extract(epoch FROM lease_until - now())::float8 FROM services WHERE id = $1",
        args.service_id,
    )
    .fetch_optional(&state.pool)
    .await?
    .flatten();
    let Some(remaining) = remaining else {
        tracing::warn!(
            service.id = args.service_id,
            "job for a service that no longer exists: nothing to do"
        );
        return Ok(());
    };
    // Look again soon: the holder may die (its lease is then free within
    // HEARTBEAT_STALE), and never later than the lease's end.
    let delay = Duration::from_secs_f64((remaining.max(0.0) + 1.0).min(2.0));
    let mut tx = state.pool.begin().await?;
    jobs::enqueue(&mut tx, action, args, Some(delay)).await?;
    tx.commit().await?;
    tracing::info!(
        service.id = args.service_id,
        delay_ms = delay.as_millis() as u64,
        "service busy; job deferred"
    );
    Ok(())
}

/// Every call slot of the server is taken: give the service back and run the
/// job again after a short, jittered pause (the worker slot is free meanwhile).
async fn defer_while_server_busy(
    state: &Core,
    action: Action,
    args: JobArgs,
    server_id: i64,
) -> anyhow::Result<()> {
    let delay = Duration::from_millis(rand::rng().random_range(150..=450));
    let mut tx = state.pool.begin().await?;
    sqlx::query!(
        "UPDATE services SET lease_until = NULL WHERE id = $1",
        args.service_id,
    )
    .execute(&mut *tx)
    .await?;
    jobs::enqueue(&mut tx, action, args, Some(delay)).await?;
    tx.commit().await?;
    tracing::debug!(
        service.id = args.service_id,
        server.id = server_id,
        delay_ms = delay.as_millis() as u64,
        "server busy; job deferred"
    );
    Ok(())
}

/// An attempt's log columns, built from the module's result: the redacted
/// request, the response and the error, each passed through the attempt's
/// redactor (again: the result should already have been redacted on arrival).
pub(crate) struct AttemptRecord {
    request: Option<Value>,
    response: Option<Value>,
    error: Option<Value>,
    http_status: Option<u16>,
    duration_ms: u64,
}

impl AttemptRecord {
    pub(crate) fn of(result: &ProvisioningResult, status: LogStatus, redactor: &Redactor) -> Self {
        let result = redactor.result(result);
        let request = result
            .request
            .as_ref()
            .map(|r| json!({"method": r.method, "path": r.path, "body": r.body}));
        let response = result.response.as_ref().map(|r| {
            let body = serde_json::from_str::<Value>(&r.body)
                .unwrap_or_else(|_| Value::String(r.body.clone()));
            json!({"status": r.status, "body": body})
        });
        let error = match (&result.outcome, status) {
            (Err(f), LogStatus::Failed) => Some(failure_json(f)),
            _ => None,
        };
        Self {
            request,
            response,
            error,
            http_status: result.http_status(),
            duration_ms: result.duration.as_millis() as u64,
        }
    }

    pub(crate) fn finish<'a>(&'a self, status: LogStatus, message: &'a str) -> Finish<'a> {
        Finish {
            status,
            http_status: self.http_status,
            request: self.request.as_ref(),
            response: self.response.as_ref(),
            error: self.error.as_ref(),
            message,
            duration_ms: self.duration_ms,
        }
    }
}

/// One Panel call of a run, to close in the log: its pending row, the
/// module, the (redacted) result and the attempt's redactor.
struct Call<'c> {
    log_id: i64,
    module: &'c str,
    result: &'c ProvisioningResult,
    redactor: &'c Redactor,
}

/// An action as the start of an alert's sentence ("suspending example.com").
fn doing(action: Action) -> &'static str {
    match action {
        Action::Create => "creating",
        Action::Suspend => "suspending",
        Action::Unsuspend => "unsuspending",
        Action::Terminate => "terminating",
        Action::Info => "reading",
        Action::TestConnection => "testing",
        Action::ChangePackage => "changing the package of",
        Action::ChangePassword => "changing the password of",
    }
}

/// A failure as stored in the log and on the service.
fn failure_json(f: &Failure) -> Value {
    serde_json::to_value(f).unwrap_or_default()
}

/// The service's `last_error`: the failure, the action, when, and the next try.
fn last_error(f: &Failure, action: Action, retry_in: Option<Duration>) -> Value {
    let mut v = failure_json(f);
    if let Value::Object(map) = &mut v {
        map.insert("action".into(), json!(action.as_str()));
        map.insert("at".into(), json!(chrono::Utc::now()));
        if let Some(d) = retry_in {
            map.insert("next_retry_at".into(), json!(chrono::Utc::now() + d));
        }
    }
    v
}

fn config_failure(message: String) -> Failure {
    Failure::of(FailureKind::Config, message)
}

impl Run<'_> {
    fn pool(&self) -> &sqlx::PgPool {
        &self.state.pool
    }

    /// What a module is lent for calls to `server`: the client its TLS trust needs.
    fn ctx(&self, server: &ServerRow) -> provisioning::ModuleContext {
        self.state.http.ctx_for(&server.tls())
    }

    fn entry<'b>(
        &'b self,
        server_id: Option<i64>,
        module: &'b str,
        action: Action,
    ) -> NewEntry<'b> {
        NewEntry {
            service_id: Some(self.service.id),
            server_id,
            module,
            action,
            attempt: self.args.attempt,
            triggered_by: self.args.triggered_by,
            job_id: Some(self.job_id),
        }
    }

    /// Records an outcome decided without a Panel call, optionally sets the
    /// service's status and last error, and releases the lease.
    async fn settle(
        &self,
        server_id: Option<i64>,
        module: &str,
        message: &str,
        error: Option<&Failure>,
        service_update: Option<(&str, Value)>,
    ) -> anyhow::Result<()> {
        let mut tx = self.pool().begin().await?;
        let err = error.map(failure_json);
        let status = if error.is_some() {
            LogStatus::Failed
        } else {
            LogStatus::Success
        };
        let finish = Finish {
            status,
            http_status: None,
            request: None,
            response: None,
            error: err.as_ref(),
            message,
            duration_ms: 0,
        };
        log::record(
            &mut tx,
            &self.entry(server_id, module, self.action),
            &finish,
        )
        .await?;
        if let Some((new_status, last)) = service_update {
            sqlx::query!(
"UPDATE services SET status = $2, last_error = $3, updated_at = now() WHERE id = $1",
self.service.id,
new_status,
Json(last) as _,
)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query!(
            "UPDATE services SET lease_until = NULL WHERE id = $1",
            self.service.id,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The server a service is on, its opened credentials and its module,
    /// with one of the server's call slots taken for this run (or the
    /// [`ServerBusy`] error when all are).
    ///
    /// The slot is taken before the row is read: a run that failed on the
    /// server changes its health before it gives its slot back, so whoever
    /// takes the slot next sees that change. At most `max_concurrent` calls
    /// can be in flight when a server is found bad, however many runs wait.
    async fn target(
        &self,
        server_id: i64,
    ) -> anyhow::Result<Result<(ServerRow, Credentials, Arc<dyn ProvisioningModule>), Failure>>
    {
        let lease = self.state.config.panel_timeout * 2 + Duration::from_secs(10);
        if !servers::take_call_slot(self.pool(), server_id, self.service.id, lease).await? {
            return Err(ServerBusy(server_id).into());
        }
        self.holds_slot
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let server = servers::get(self.pool(), server_id).await?;
        let Some(module) = self.state.registry.get(&server.module) else {
            return Ok(Err(config_failure(format!(
                "server {} uses unknown module {:?}",
                server.name, server.module
            ))));
        };
        match servers::credentials(&server, &self.state.sealer) {
            Ok(creds) => Ok(Ok((server, creds, module))),
            Err(e) => Ok(Err(config_failure(format!("server {}: {e}", server.name)))),
        }
    }

    /// Finishes an attempt's log row from the module's result.
    async fn close_attempt(
        &self,
        tx: &mut PgConnection,
        call: &Call<'_>,
        status: LogStatus,
        message: &str,
    ) -> anyhow::Result<()> {
        let record = AttemptRecord::of(call.result, status, call.redactor);
        let message = call.redactor.text(message);
        log::finish(tx, call.log_id, &record.finish(status, &message)).await?;
        self.state
            .metrics
            .observe_call(call.module, self.action, call.result.duration);
        Ok(())
    }

    /// Closes a failed attempt on an existing account, in `tx`: its log row,
    /// the service's last error (lease released), and either the next try or,
    /// when the failure is final, the failed metric and one alert. Returns
    /// the delay before the next try (None: final).
    async fn fail_attempt(
        &self,
        tx: &mut PgConnection,
        call: &Call<'_>,
        f: &Failure,
        server_id: i64,
    ) -> anyhow::Result<Option<Duration>> {
        self.close_attempt(tx, call, LogStatus::Failed, &f.message)
            .await?;
        let delay = self.retry_delay(f);
        sqlx::query!(
"UPDATE services SET last_error = $2, lease_until = NULL, updated_at = now() WHERE id = $1",
self.service.id,
Json(last_error(f, self.action, delay)) as _,
)
        .execute(&mut *tx)
        .await?;
        match delay {
            Some(d) => self.schedule_retry(tx, d).await?,
            None => {
                self.state.metrics.bump(self.action, |c| &c.failed);
                self.alert_failed(tx, f, Some(server_id)).await?;
            }
        }
        tracing::warn!(
            kind = f.kind.as_str(),
            retrying = delay.is_some(),
            retry_in_ms = delay.map(|d| d.as_millis() as u64),
            "{} failed",
            self.action
        );
        Ok(delay)
    }

    /// The service's server cannot be called (unknown module, credentials
    /// that do not open): a final failure of this action, recorded without a
    /// Panel call (the service keeps its status) and told once.
    async fn fail_unusable_server(
        &self,
        server_id: i64,
        module: &str,
        f: &Failure,
    ) -> anyhow::Result<()> {
        self.state.metrics.bump(self.action, |c| &c.failed);
        let last = last_error(f, self.action, None);
        self.settle(
            Some(server_id),
            module,
            &f.message,
            Some(f),
            Some((self.service.status.as_str(), last)),
        )
        .await?;
        let mut conn = self.pool().acquire().await?;
        self.alert_failed(&mut conn, f, Some(server_id)).await
    }

    /// One alert for an action that failed for good (or needs a person).
    async fn alert_failed(
        &self,
        db: &mut PgConnection,
        f: &Failure,
        server_id: Option<i64>,
    ) -> anyhow::Result<()> {
        let event = if f.kind == FailureKind::NeedsAttention {
            "service_needs_attention"
        } else {
            "service_failed"
        };
        let message = format!(
            "{} {} (service {}) failed: {}",
            doing(self.action),
            self.service.domain,
            self.service.id,
            f.message
        );
        alerts::raise(
            db,
            &self.state.config,
            &alerts::NewAlert {
                event,
                service_id: Some(self.service.id),
                server_id,
                kind: Some(f.kind.as_str()),
                message: &message,
                hint: Some(&f.hint),
            },
        )
        .await?;
        Ok(())
    }

    /// When a failure may be retried: the backoff before the next attempt,
    /// base·2^(attempt-1), capped, then 50–100 % jitter, and never sooner than
    /// the Panel's `Retry-After`.
    fn retry_delay(&self, f: &Failure) -> Option<Duration> {
        let config = &self.state.config;
        if !f.retryable || self.args.attempt >= config.provision_max_attempts {
            return None;
        }
        let exp = config
            .retry_base
            .saturating_mul(1u32 << self.args.attempt.saturating_sub(1).min(20));
        let backoff = exp
            .min(config.retry_max)
            .mul_f64(rand::rng().random_range(0.5..=1.0));
        // A Panel's Retry-After is a floor: never ask again sooner.
        Some(f.retry_after.map_or(backoff, |wait| backoff.max(wait)))
    }

    /// Enqueues the next attempt of this action, in `tx`.
    async fn schedule_retry(&self, tx: &mut PgConnection, delay: Duration) -> anyhow::Result<()> {
        let next = JobArgs {
            attempt: self.args.attempt + 1,
            ..self.args
        };
        jobs::enqueue(tx, self.action, next, Some(delay)).await?;
        self.state.metrics.bump(self.action, |c| &c.retried);
        Ok(())
    }
}

/// Records a job that panicked: its pending log rows fail with the panic message,
/// the service shows it, and a create ends failed.
pub async fn record_panic(
    state: &Core,
    action: Action,
    args: JobArgs,
    job_id: &str,
    what: &str,
) -> anyhow::Result<()> {
    let f = Failure::new(
        FailureKind::Internal,
        format!("the {action} job panicked: {what}"),
        "This is a bug in Commerce; report it with this log entry. Retry once it is fixed.",
        false,
    );
    let err = failure_json(&f);
    let mut tx = state.pool.begin().await?;
    let finished = sqlx::query!(
"UPDATE provisioning_log SET status = 'failed', error = $2, error_kind = 'internal', message = $3,
                finished_at = now(), updated_at = now()
         WHERE job_id = $1 AND status = 'pending'",
job_id,
Json(&err) as _,
&f.message,
)
    .execute(&mut *tx)
    .await?;
    if finished.rows_affected() == 0 {
        let entry = NewEntry {
            service_id: Some(args.service_id),
            server_id: None,
            module: "unknown",
            action,
            attempt: args.attempt,
            triggered_by: args.triggered_by,
            job_id: Some(job_id),
        };
        let finish = Finish {
            status: LogStatus::Failed,
            http_status: None,
            request: None,
            response: None,
            error: Some(&err),
            message: &f.message,
            duration_ms: 0,
        };
        log::record(&mut tx, &entry, &finish).await?;
    }
    sqlx::query!(
"UPDATE services SET last_error = $2, lease_until = NULL,
                status = CASE WHEN $3 AND status = 'provisioning' THEN 'failed' ELSE status END, updated_at = now()
         WHERE id = $1",
args.service_id,
Json(last_error(&f, action, None)) as _,
action == Action::Create,
)
    .execute(&mut *tx)
    .await?;
    // Nothing retries a panicked job: a final failure, told once.
    let message = format!(
        "{} service {} failed: {}",
        doing(action),
        args.service_id,
        f.message
    );
    alerts::raise(
        &mut *tx,
        &state.config,
        &alerts::NewAlert {
            event: "service_failed",
            service_id: Some(args.service_id),
            server_id: None,
            kind: Some(f.kind.as_str()),
            message: &message,
            hint: Some(&f.hint),
        },
    )
    .await?;
    tx.commit().await?;
    state.metrics.bump(action, |c| &c.failed);
    Ok(())
}
