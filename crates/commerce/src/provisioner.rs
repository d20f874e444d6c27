//! The provisioner: runs one module action for one service and records
//! everything: a pending log row before the Panel call, then the outcome (log
//! row, service status, `panel_account_id`, the next retry) in one transaction.
//!
//! Never a duplicate account: the username is fixed before the first call; a
//! service holds a lease while a call is in flight; after an attempt whose
//! outcome is unknown, a 409 for our own username is reconciled against the
//! Panel or reported as needing attention, never retried under another name.

use std::time::Duration;

use provisioning::{
    AccountSpec, Credentials, Failure, FailureKind, ProvisioningModule, ProvisioningResult,
};
use rand::RngExt as _;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sqlx::types::Json;
use std::sync::Arc;

use crate::app::catalog;
use crate::app::log::{self, Finish, NewEntry};
use crate::app::orders::PASSWORD_PURPOSE;
use crate::app::servers::{self, ServerRow};
use crate::app::services::{SERVICE_COLUMNS, ServiceRow};
use crate::domain::{Action, LogStatus, ServiceStatus};
use crate::jobs::{self, JobArgs};
use crate::state::AppState;

/// One run of one job.
struct Run<'a> {
    state: &'a AppState,
    action: Action,
    args: JobArgs,
    job_id: &'a str,
    service: ServiceRow,
}

/// Runs `action` for the job's service. Errors are infrastructure errors
/// (database unreachable); every Panel outcome is recorded and returns Ok.
pub async fn run(
    state: &AppState,
    action: Action,
    args: JobArgs,
    job_id: &str,
) -> anyhow::Result<()> {
    let lease = state.config.panel_timeout * 2 + Duration::from_secs(10);
    let leased = sqlx::query_as::<_, ServiceRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE services SET lease_until = now() + make_interval(secs => $2)
         WHERE id = $1 AND (lease_until IS NULL OR lease_until < now()) RETURNING {SERVICE_COLUMNS}"
    )))
    .bind(args.service_id)
    .bind(lease.as_secs_f64())
    .fetch_optional(&state.pool)
    .await?;
    let Some(service) = leased else {
        return defer_while_leased(state, action, args).await;
    };
    let span = tracing::info_span!("provision", service.id = service.id, action = %action, attempt = args.attempt, job.id = %job_id);
    let _enter = span.enter();
    let mut run = Run {
        state,
        action,
        args,
        job_id,
        service,
    };
    let outcome = match action {
        Action::Create => run.create().await,
        Action::Suspend | Action::Unsuspend | Action::Terminate => run.lifecycle().await,
        Action::Info | Action::TestConnection => Ok(()),
    };
    if outcome.is_err() {
        let _ = release_lease(&state.pool, args.service_id).await;
    }
    outcome
}

async fn release_lease(db: &sqlx::PgPool, service_id: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE services SET lease_until = NULL WHERE id = $1")
        .bind(service_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Another run holds the service: run this job again once its lease ends.
async fn defer_while_leased(state: &AppState, action: Action, args: JobArgs) -> anyhow::Result<()> {
    let remaining: Option<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM lease_until - now())::float8 FROM services WHERE id = $1",
    )
    .bind(args.service_id)
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
    let delay = Duration::from_secs_f64(remaining.max(0.0) + 1.0);
    let mut tx = state.pool.begin().await?;
    jobs::enqueue(&mut tx, action, args, Some(delay))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    tx.commit().await?;
    tracing::info!(
        service.id = args.service_id,
        delay_ms = delay.as_millis() as u64,
        "service busy; job deferred"
    );
    Ok(())
}

/// Exponential backoff with jitter: base·2^(attempt-1), capped, then 50–100 %.
fn backoff(state: &AppState, attempt: u32) -> Duration {
    let exp = state
        .config
        .retry_base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(state.config.retry_max);
    capped.mul_f64(rand::rng().random_range(0.5..=1.0))
}

/// Replaces any secret value that slipped into a string, at any depth.
fn scrub(value: &mut Value, secrets: &[&str]) {
    match value {
        Value::String(s) => {
            for secret in secrets.iter().filter(|s| s.len() >= 4) {
                if s.contains(secret) {
                    *s = s.replace(secret, "[redacted]");
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| scrub(v, secrets)),
        Value::Object(map) => map.values_mut().for_each(|v| scrub(v, secrets)),
        _ => {}
    }
}

/// The redacted request and response of a result, as JSON for the log.
fn exchange_json(result: &ProvisioningResult, secrets: &[&str]) -> (Option<Value>, Option<Value>) {
    let mut request = result
        .request
        .as_ref()
        .map(|r| json!({"method": r.method, "path": r.path, "body": r.body}));
    let mut response = result.response.as_ref().map(|r| {
        let body = serde_json::from_str::<Value>(&r.body)
            .unwrap_or_else(|_| Value::String(r.body.clone()));
        json!({"status": r.status, "body": body})
    });
    for v in [&mut request, &mut response].into_iter().flatten() {
        scrub(v, secrets);
    }
    (request, response)
}

fn failure_json(f: &Failure, secrets: &[&str]) -> Value {
    let mut v = serde_json::to_value(f).unwrap_or_default();
    scrub(&mut v, secrets);
    v
}

impl Run<'_> {
    fn pool(&self) -> &sqlx::PgPool {
        &self.state.pool
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

    /// Records an outcome decided without a Panel call and releases the lease.
    async fn settle(
        &self,
        server_id: Option<i64>,
        module: &str,
        status: LogStatus,
        message: &str,
        error: Option<&Failure>,
        service_update: Option<(&str, Option<Value>)>,
    ) -> anyhow::Result<()> {
        let mut tx = self.pool().begin().await?;
        let err = error.map(|f| failure_json(f, &[]));
        log::record(
            &mut tx,
            &self.entry(server_id, module, self.action),
            &Finish {
                status,
                http_status: None,
                request: None,
                response: None,
                error: err.as_ref(),
                message,
                duration_ms: 0,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some((new_status, last_error)) = service_update {
            sqlx::query("UPDATE services SET status = $2, last_error = $3, updated_at = now() WHERE id = $1")
                .bind(self.service.id)
                .bind(new_status)
                .bind(last_error.map(Json))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE services SET lease_until = NULL WHERE id = $1")
            .bind(self.service.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The server a service is on, its opened credentials and its module.
    async fn target(
        &self,
        server_id: i64,
    ) -> anyhow::Result<Result<(ServerRow, Credentials, Arc<dyn ProvisioningModule>), Failure>>
    {
        let server = servers::get(self.pool(), server_id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let config = |msg: String| {
            Failure::new(
                FailureKind::Panel(opterius::ErrorKind::Config),
                msg,
                opterius::ErrorKind::Config.hint(),
                false,
            )
        };
        let Some(module) = self.state.registry.get(&server.module) else {
            return Ok(Err(config(format!(
                "server {} uses unknown module {:?}",
                server.name, server.module
            ))));
        };
        match servers::credentials(&server, &self.state.sealer) {
            Ok(creds) => Ok(Ok((server, creds, module))),
            Err(e) => Ok(Err(config(format!("server {}: {e}", server.name)))),
        }
    }

    async fn create(&mut self) -> anyhow::Result<()> {
        let s = self.service.clone();
        let product = catalog::get_product(self.pool(), s.product_id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if matches!(s.status(), ServiceStatus::Active | ServiceStatus::Suspended)
            && s.panel_account_id.is_some()
        {
            let msg = format!(
                "already provisioned as Panel account {}; nothing to do",
                s.panel_account_id.as_deref().unwrap_or_default()
            );
            return self
                .settle(
                    s.server_id,
                    &product.module,
                    LogStatus::Success,
                    &msg,
                    None,
                    None,
                )
                .await;
        }
        if s.status() == ServiceStatus::Terminated {
            let f = Failure::new(
                FailureKind::Internal,
                "the service was terminated before the create ran",
                "Nothing to do.",
                false,
            );
            return self
                .settle(
                    s.server_id,
                    &product.module,
                    LogStatus::Failed,
                    &f.message.clone(),
                    Some(&f),
                    None,
                )
                .await;
        }
        self.recover_orphaned_attempts().await?;

        let server_id = match s.server_id {
            Some(id) => id,
            None => {
                let mut tx = self.pool().begin().await?;
                let placed = servers::place(&mut tx, product.group_id, &product.module)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let Some(id) = placed else {
                    drop(tx);
                    return self.no_capacity(&product).await;
                };
                sqlx::query("UPDATE services SET server_id = $2, status = 'provisioning', updated_at = now() WHERE id = $1")
                    .bind(s.id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                self.service.server_id = Some(id);
                id
            }
        };
        let (server, creds, module) = match self.target(server_id).await? {
            Ok(t) => t,
            Err(f) => {
                return self
                    .finish_create(None, f.into_result(), None, &product.module, server_id)
                    .await;
            }
        };
        let client = catalog::get_client(self.pool(), s.client_id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let sealed: Vec<u8> =
            sqlx::query_scalar("SELECT password_sealed FROM services WHERE id = $1")
                .bind(s.id)
                .fetch_one(self.pool())
                .await?;
        let password = String::from_utf8(self.state.sealer.open(PASSWORD_PURPOSE, &sealed)?)?;
        let spec = AccountSpec {
            username: s.username.clone(),
            password: SecretString::from(password),
            domain: s.domain.clone(),
            package: product.package.clone(),
            email: client.email.clone(),
            disk_limit_mb: product.disk_limit_mb,
            bandwidth_limit_mb: product.bandwidth_limit_mb,
        };
        let log_id = log::start(
            self.pool(),
            &self.entry(Some(server.id), &server.module, Action::Create),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut result = module
            .create_account(&self.state.module_ctx, &creds, &spec)
            .await;
        self.observe(&server.module, &result);
        let token = creds
            .secrets
            .get("api_token")
            .map(|t| t.expose_secret().to_owned())
            .unwrap_or_default();
        let secrets = [spec.password.expose_secret(), token.as_str()];

        // A 409 for our own username after an attempt whose outcome is unknown:
        // that attempt most likely created the account. Reconcile, never rename.
        if let Err(f) = &result.outcome
            && f.kind == FailureKind::Panel(opterius::ErrorKind::Conflict)
            && self.service.create_outcome_unknown
        {
            result = self
                .reconcile(&*module, &creds, &server, result.clone(), &secrets)
                .await?;
        }
        self.finish_create(
            Some(log_id),
            result,
            Some(&secrets),
            &server.module,
            server.id,
        )
        .await
    }

    /// Marks create attempts a crashed run left pending as outcome-unknown.
    async fn recover_orphaned_attempts(&mut self) -> anyhow::Result<()> {
        let f = Failure {
            outcome_unknown: true,
            ..Failure::new(
                FailureKind::Panel(opterius::ErrorKind::ConnectionDropped),
                "the worker stopped before the Panel's answer was recorded; the outcome of this attempt is unknown",
                "Commerce reconciles this on the next attempt; nothing to do unless the service ends as needing attention.",
                true,
            )
        };
        let orphaned = sqlx::query(
            "UPDATE provisioning_log SET status = 'failed', error = $2, error_kind = 'connection_dropped', message = $3,
                    finished_at = now(), updated_at = now()
             WHERE service_id = $1 AND action = 'create' AND status = 'pending'",
        )
        .bind(self.service.id)
        .bind(Json(failure_json(&f, &[])))
        .bind(&f.message)
        .execute(self.pool())
        .await?;
        if orphaned.rows_affected() > 0 {
            sqlx::query("UPDATE services SET create_outcome_unknown = true WHERE id = $1")
                .bind(self.service.id)
                .execute(self.pool())
                .await?;
            self.service.create_outcome_unknown = true;
        }
        Ok(())
    }

    /// After a 409 following an unknown outcome: adopt the Panel's account when the
    /// Panel names it and it is ours, else report that a person must check.
    async fn reconcile(
        &self,
        module: &dyn ProvisioningModule,
        creds: &Credentials,
        server: &ServerRow,
        conflict: ProvisioningResult,
        secrets: &[&str],
    ) -> anyhow::Result<ProvisioningResult> {
        let username = &self.service.username;
        let named_id = conflict
            .response
            .as_ref()
            .and_then(|r| serde_json::from_str::<Value>(&r.body).ok())
            .and_then(|body| opterius::CreatedAccount::from_json(&body))
            .map(|a| a.id);
        if let Some(id) = named_id {
            let log_id = log::start(
                self.pool(),
                &self.entry(Some(server.id), &server.module, Action::Info),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let info = module
                .account_info(&self.state.module_ctx, creds, &id)
                .await;
            let field = |ok: &provisioning::Success, k: &str| {
                ok.data.get(k).and_then(Value::as_str).map(str::to_owned)
            };
            let ours = matches!(&info.outcome, Ok(ok)
                if field(ok, "username").as_deref() == Some(username.as_str())
                    && field(ok, "domain").is_none_or(|d| d.eq_ignore_ascii_case(&self.service.domain)));
            let (req, resp) = exchange_json(&info, secrets);
            let message = if ours {
                format!("account {id} on the Panel belongs to {username}: adopting it")
            } else {
                format!("account {id} named by the Panel's 409 is not {username}'s")
            };
            let err = info
                .outcome
                .as_ref()
                .err()
                .map(|f| failure_json(f, secrets));
            log::finish(
                self.pool(),
                log_id,
                &Finish {
                    status: if info.is_success() {
                        LogStatus::Success
                    } else {
                        LogStatus::Failed
                    },
                    http_status: info.http_status(),
                    request: req.as_ref(),
                    response: resp.as_ref(),
                    error: err.as_ref(),
                    message: &message,
                    duration_ms: info.duration.as_millis() as u64,
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            if ours {
                return Ok(ProvisioningResult {
                    outcome: Ok(provisioning::Success {
                        message: format!(
                            "Account {username} already existed on the Panel as id {id}, created by an earlier attempt whose reply was lost; adopted it instead of creating another"
                        ),
                        data: json!({"account_id": id, "adopted": true}),
                        account_id: Some(id),
                    }),
                    ..conflict
                });
            }
        }
        let needs = Failure::new(
            FailureKind::NeedsAttention,
            format!(
                "An earlier attempt to create {username} was sent but its answer never arrived; the Panel now says {username} already exists, so that attempt most likely created it. Commerce will not create it again under another name."
            ),
            format!(
                "Check Panel → Accounts for {username} on server {}. If it is this service's account, record its id on the service; if not, remove it on the Panel, then retry.",
                server.name
            ),
            false,
        );
        Ok(ProvisioningResult {
            outcome: Err(needs),
            ..conflict
        })
    }

    async fn no_capacity(&self, product: &catalog::Product) -> anyhow::Result<()> {
        let f = Failure::new(
            FailureKind::NoCapacity,
            format!(
                "no server in the product's group can take a new {} account: every enabled, online server is full (or the group has none)",
                product.module
            ),
            "Add a server to the group, raise max_accounts, or enable a server; then retry the service.",
            false,
        );
        self.state.metrics.bump(Action::Create, |c| &c.failed);
        let last = last_error(&f, Action::Create, None);
        self.settle(
            None,
            &product.module,
            LogStatus::Failed,
            &f.message.clone(),
            Some(&f),
            Some(("failed", Some(last))),
        )
        .await
    }

    fn observe(&self, module: &str, result: &ProvisioningResult) {
        self.state
            .metrics
            .observe_call(module, self.action, result.duration);
    }

    /// Records a create's outcome in one transaction.
    async fn finish_create(
        &self,
        log_id: Option<i64>,
        result: ProvisioningResult,
        secrets: Option<&[&str]>,
        module: &str,
        server_id: i64,
    ) -> anyhow::Result<()> {
        let secrets = secrets.unwrap_or(&[]);
        let mut tx = self.pool().begin().await?;
        let log_id = match log_id {
            Some(id) => id,
            None => log::start(
                &mut *tx,
                &self.entry(Some(server_id), module, Action::Create),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        };
        let (req, resp) = exchange_json(&result, secrets);
        match &result.outcome {
            Ok(ok) => {
                log::finish(
                    &mut *tx,
                    log_id,
                    &Finish {
                        status: LogStatus::Success,
                        http_status: result.http_status(),
                        request: req.as_ref(),
                        response: resp.as_ref(),
                        error: None,
                        message: &ok.message,
                        duration_ms: result.duration.as_millis() as u64,
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                sqlx::query(
                    "UPDATE services SET status = 'active', panel_account_id = $2, activated_at = now(), last_error = NULL,
                            create_outcome_unknown = false, lease_until = NULL, updated_at = now()
                     WHERE id = $1",
                )
                .bind(self.service.id)
                .bind(&ok.account_id)
                .execute(&mut *tx)
                .await?;
                self.state.metrics.bump(Action::Create, |c| &c.succeeded);
                tracing::info!(server.id = server_id, panel_account_id = ?ok.account_id, duration_ms = result.duration.as_millis() as u64, "account created");
            }
            Err(f) => {
                let unknown = f.outcome_unknown || self.service.create_outcome_unknown;
                let retry =
                    f.retryable && self.args.attempt < self.state.config.provision_max_attempts;
                let delay = retry.then(|| backoff(self.state, self.args.attempt));
                let err = failure_json(f, secrets);
                log::finish(
                    &mut *tx,
                    log_id,
                    &Finish {
                        status: LogStatus::Failed,
                        http_status: result.http_status(),
                        request: req.as_ref(),
                        response: resp.as_ref(),
                        error: Some(&err),
                        message: &f.message,
                        duration_ms: result.duration.as_millis() as u64,
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                let last = last_error(f, Action::Create, delay);
                if let Some(delay) = delay {
                    sqlx::query(
                        "UPDATE services SET last_error = $2, create_outcome_unknown = $3, lease_until = NULL, updated_at = now() WHERE id = $1",
                    )
                    .bind(self.service.id)
                    .bind(Json(&last))
                    .bind(unknown)
                    .execute(&mut *tx)
                    .await?;
                    let next = JobArgs {
                        attempt: self.args.attempt + 1,
                        ..self.args
                    };
                    jobs::enqueue(&mut tx, Action::Create, next, Some(delay))
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    self.state.metrics.bump(Action::Create, |c| &c.retried);
                    tracing::warn!(
                        kind = f.kind.as_str(),
                        retry_in_ms = delay.as_millis() as u64,
                        "create failed; retrying"
                    );
                } else {
                    // Nothing was created (known outcome): give the slot back so a
                    // retry can place the service again, possibly elsewhere.
                    let release = !unknown;
                    sqlx::query(
                        "UPDATE services SET status = 'failed', last_error = $2, create_outcome_unknown = $3, lease_until = NULL,
                                server_id = CASE WHEN $4 THEN NULL ELSE server_id END, updated_at = now()
                         WHERE id = $1",
                    )
                    .bind(self.service.id)
                    .bind(Json(&last))
                    .bind(unknown)
                    .bind(release)
                    .execute(&mut *tx)
                    .await?;
                    if release {
                        servers::release(&mut *tx, server_id)
                            .await
                            .map_err(|e| anyhow::anyhow!("{e}"))?;
                    }
                    self.state.metrics.bump(Action::Create, |c| &c.failed);
                    tracing::warn!(kind = f.kind.as_str(), "create failed");
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Suspend, unsuspend and terminate.
    async fn lifecycle(&self) -> anyhow::Result<()> {
        let s = &self.service;
        let module_id = match s.server_id {
            Some(id) => servers::get(self.pool(), id)
                .await
                .map(|r| r.module)
                .unwrap_or_else(|_| "opterius".into()),
            None => catalog::get_product(self.pool(), s.product_id)
                .await
                .map(|p| p.module)
                .unwrap_or_else(|_| "opterius".into()),
        };
        if s.status() == ServiceStatus::Terminated {
            return self
                .settle(
                    s.server_id,
                    &module_id,
                    LogStatus::Success,
                    "already terminated; nothing to do",
                    None,
                    None,
                )
                .await;
        }
        let (Some(account_id), Some(server_id)) = (s.panel_account_id.clone(), s.server_id) else {
            if self.action == Action::Terminate {
                return self.terminate_locally(&module_id).await;
            }
            let f = Failure::new(
                FailureKind::Panel(opterius::ErrorKind::Config),
                format!("service {} has no Panel account to {}", s.id, self.action),
                "Create the account first (or retry the failed create).",
                false,
            );
            return self
                .settle(
                    s.server_id,
                    &module_id,
                    LogStatus::Failed,
                    &f.message.clone(),
                    Some(&f),
                    None,
                )
                .await;
        };
        let (server, creds, module) = match self.target(server_id).await? {
            Ok(t) => t,
            Err(f) => {
                let last = last_error(&f, self.action, None);
                let msg = f.message.clone();
                self.state.metrics.bump(self.action, |c| &c.failed);
                return self
                    .settle(
                        Some(server_id),
                        &module_id,
                        LogStatus::Failed,
                        &msg,
                        Some(&f),
                        Some((s.status.as_str(), Some(last))),
                    )
                    .await;
            }
        };
        let log_id = log::start(
            self.pool(),
            &self.entry(Some(server.id), &server.module, self.action),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let ctx = &self.state.module_ctx;
        let result = match self.action {
            Action::Suspend => module.suspend_account(ctx, &creds, &account_id).await,
            Action::Unsuspend => module.unsuspend_account(ctx, &creds, &account_id).await,
            _ => module.terminate_account(ctx, &creds, &account_id).await,
        };
        self.observe(&server.module, &result);
        let token = creds
            .secrets
            .get("api_token")
            .map(|t| t.expose_secret().to_owned())
            .unwrap_or_default();
        let secrets = [token.as_str()];
        let (req, resp) = exchange_json(&result, &secrets);
        // Terminating an account the Panel no longer has is done already.
        let gone = matches!(&result.outcome, Err(f) if f.kind == FailureKind::Panel(opterius::ErrorKind::NotFound))
            && self.action == Action::Terminate;
        let mut tx = self.pool().begin().await?;
        match (&result.outcome, gone) {
            (Ok(_), _) | (Err(_), true) => {
                let message = match &result.outcome {
                    Ok(ok) => ok.message.clone(),
                    Err(_) => {
                        format!("the Panel no longer has account {account_id}; marked terminated")
                    }
                };
                log::finish(
                    &mut *tx,
                    log_id,
                    &Finish {
                        status: LogStatus::Success,
                        http_status: result.http_status(),
                        request: req.as_ref(),
                        response: resp.as_ref(),
                        error: None,
                        message: &message,
                        duration_ms: result.duration.as_millis() as u64,
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                let sql = match self.action {
                    Action::Suspend => {
                        "UPDATE services SET status = 'suspended', suspended_at = now(), last_error = NULL, lease_until = NULL, updated_at = now() WHERE id = $1"
                    }
                    Action::Unsuspend => {
                        "UPDATE services SET status = 'active', suspended_at = NULL, last_error = NULL, lease_until = NULL, updated_at = now() WHERE id = $1"
                    }
                    _ => {
                        "UPDATE services SET status = 'terminated', terminated_at = now(), last_error = NULL, lease_until = NULL, updated_at = now() WHERE id = $1"
                    }
                };
                sqlx::query(sql).bind(s.id).execute(&mut *tx).await?;
                if self.action == Action::Terminate {
                    servers::release(&mut *tx, server.id)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                }
                self.state.metrics.bump(self.action, |c| &c.succeeded);
                tracing::info!(
                    server.id = server.id,
                    duration_ms = result.duration.as_millis() as u64,
                    "{message}"
                );
            }
            (Err(f), false) => {
                let retry =
                    f.retryable && self.args.attempt < self.state.config.provision_max_attempts;
                let delay = retry.then(|| backoff(self.state, self.args.attempt));
                let err = failure_json(f, &secrets);
                log::finish(
                    &mut *tx,
                    log_id,
                    &Finish {
                        status: LogStatus::Failed,
                        http_status: result.http_status(),
                        request: req.as_ref(),
                        response: resp.as_ref(),
                        error: Some(&err),
                        message: &f.message,
                        duration_ms: result.duration.as_millis() as u64,
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                sqlx::query("UPDATE services SET last_error = $2, lease_until = NULL, updated_at = now() WHERE id = $1")
                    .bind(s.id)
                    .bind(Json(last_error(f, self.action, delay)))
                    .execute(&mut *tx)
                    .await?;
                if let Some(delay) = delay {
                    let next = JobArgs {
                        attempt: self.args.attempt + 1,
                        ..self.args
                    };
                    jobs::enqueue(&mut tx, self.action, next, Some(delay))
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    self.state.metrics.bump(self.action, |c| &c.retried);
                } else {
                    self.state.metrics.bump(self.action, |c| &c.failed);
                }
                tracing::warn!(
                    kind = f.kind.as_str(),
                    retrying = delay.is_some(),
                    "{} failed",
                    self.action
                );
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// A service that never got a Panel account: terminated here, logged.
    async fn terminate_locally(&self, module: &str) -> anyhow::Result<()> {
        let s = &self.service;
        let mut message =
            "no Panel account was ever recorded; marked terminated without calling the Panel"
                .to_owned();
        if s.create_outcome_unknown {
            message.push_str(&format!(
                ". An earlier create's outcome was unknown: check Panel → Accounts for {} and remove it there if it exists",
                s.username
            ));
        }
        let mut tx = self.pool().begin().await?;
        log::record(
            &mut tx,
            &self.entry(s.server_id, module, Action::Terminate),
            &Finish {
                status: LogStatus::Success,
                http_status: None,
                request: None,
                response: None,
                error: None,
                message: &message,
                duration_ms: 0,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        sqlx::query(
            "UPDATE services SET status = 'terminated', terminated_at = now(), lease_until = NULL, updated_at = now() WHERE id = $1",
        )
        .bind(s.id)
        .execute(&mut *tx)
        .await?;
        if let Some(server_id) = s.server_id.filter(|_| !s.create_outcome_unknown) {
            servers::release(&mut *tx, server_id)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        tx.commit().await?;
        self.state.metrics.bump(Action::Terminate, |c| &c.succeeded);
        Ok(())
    }
}

trait IntoResult {
    fn into_result(self) -> ProvisioningResult;
}

impl IntoResult for Failure {
    fn into_result(self) -> ProvisioningResult {
        ProvisioningResult::failure(self)
    }
}

/// The service's `last_error`: the failure, the action, when, and the next try.
fn last_error(f: &Failure, action: Action, retry_in: Option<Duration>) -> Value {
    let mut v = failure_json(f, &[]);
    if let Value::Object(map) = &mut v {
        map.insert("action".into(), json!(action.as_str()));
        map.insert("at".into(), json!(chrono::Utc::now()));
        if let Some(d) = retry_in {
            map.insert("next_retry_at".into(), json!(chrono::Utc::now() + d));
        }
    }
    v
}

/// Records a job that panicked: its pending log rows fail with the panic message,
/// the service shows it, and a create ends failed.
pub async fn record_panic(
    state: &AppState,
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
    let err = failure_json(&f, &[]);
    let mut tx = state.pool.begin().await?;
    let finished = sqlx::query(
        "UPDATE provisioning_log SET status = 'failed', error = $2, error_kind = 'internal', message = $3,
                finished_at = now(), updated_at = now()
         WHERE job_id = $1 AND status = 'pending'",
    )
    .bind(job_id)
    .bind(Json(&err))
    .bind(&f.message)
    .execute(&mut *tx)
    .await?;
    if finished.rows_affected() == 0 {
        log::record(
            &mut tx,
            &NewEntry {
                service_id: Some(args.service_id),
                server_id: None,
                module: "opterius",
                action,
                attempt: args.attempt,
                triggered_by: args.triggered_by,
                job_id: Some(job_id),
            },
            &Finish {
                status: LogStatus::Failed,
                http_status: None,
                request: None,
                response: None,
                error: Some(&err),
                message: &f.message,
                duration_ms: 0,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    sqlx::query(
        "UPDATE services SET last_error = $2, lease_until = NULL,
                status = CASE WHEN $3 AND status = 'provisioning' THEN 'failed' ELSE status END, updated_at = now()
         WHERE id = $1",
    )
    .bind(args.service_id)
    .bind(Json(last_error(&f, action, None)))
    .bind(action == Action::Create)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    state.metrics.bump(action, |c| &c.failed);
    Ok(())
}
