//! Creating an account: placement, the Panel call, reconciliation after an
//! unknown outcome, and recording the result.

use provisioning::{
    AccountRef, AccountSpec, Credentials, Failure, FailureKind, ProvisioningModule,
    ProvisioningResult, Redactor, Success,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::types::Json;

use super::{AttemptRecord, Call, Run, failure_json, last_error};
use crate::app::alerts;
use crate::app::catalog::Product;
use crate::app::log;
use crate::app::orders::password_binding;
use crate::app::servers::{self, ServerRow};
use crate::domain::{Action, LogStatus, ServiceStatus};

impl Run<'_> {
    pub(super) async fn create(&mut self) -> anyhow::Result<()> {
        let s = self.service.clone();
        // What a create needs besides the service row, read in one query.
        let row = sqlx::query!(
            "SELECT p.id, p.name, p.module, p.group_id, p.package, p.disk_limit_mb, p.bandwidth_limit_mb,
                    p.auto_setup, p.created_at, p.updated_at, c.email, c.name AS client_name, s.password_sealed
             FROM services s JOIN products p ON p.id = s.product_id JOIN clients c ON c.id = s.client_id
             WHERE s.id = $1",
            s.id,
        )
        .fetch_one(self.pool())
        .await?;
        let (email, client_name, password_sealed) =
            (row.email, row.client_name, row.password_sealed);
        let product = Product {
            id: row.id,
            name: row.name,
            module: row.module,
            group_id: row.group_id,
            package: row.package,
            disk_limit_mb: row.disk_limit_mb,
            bandwidth_limit_mb: row.bandwidth_limit_mb,
            auto_setup: row.auto_setup,
            created_at: row.created_at,
            updated_at: row.updated_at,
        };
        if matches!(s.status(), ServiceStatus::Active | ServiceStatus::Suspended)
            && s.panel_account_id.is_some()
        {
            let msg = format!(
                "already provisioned as Panel account {}; nothing to do",
                s.panel_account_id.as_deref().unwrap_or_default()
            );
            return self
                .settle(s.server_id, &product.module, &msg, None, None)
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
                .settle(s.server_id, &product.module, &f.message, Some(&f), None)
                .await;
        }
        self.recover_orphaned_attempts().await?;

        let server_id = match s.server_id {
            Some(id) => id,
            None => match self.place(&product).await? {
                Some(id) => id,
                None => return self.no_capacity(&product).await,
            },
        };
        let mut target = self.target(server_id).await?;
        // The server left placement since this service was put on it (another
        // create proved it unusable, or an admin disabled it): when nothing can
        // exist there yet, move to another server before calling. The server
        // row is read for the call anyway, so this costs nothing.
        if let Ok((server, _, _)) = &target
            && !servers::in_placement(server)
            && !self.service.create_outcome_unknown
            && let Some(moved) = self.move_away(&product, server.id).await?
        {
            target = self.target(moved).await?;
        }
        let (server, creds, module) = match target {
            Ok(t) => t,
            Err(f) => {
                let log_id = log::start(
                    self.pool(),
                    &self.entry(Some(server_id), &product.module, Action::Create),
                )
                .await?;
                return self
                    .finish(
                        log_id,
                        &product.module,
                        server_id,
                        ProvisioningResult::failure(f),
                        &Redactor::default(),
                    )
                    .await;
            }
        };
        let spec = self.spec(&product, email, client_name, &password_sealed)?;
        let log_id = log::start(
            self.pool(),
            &self.entry(Some(server.id), &server.module, Action::Create),
        )
        .await?;
        // Redacted on arrival: nothing below (log, last_error, traces) can
        // see the password or a credential, whatever the Panel echoed.
        let redactor = Redactor::for_attempt(&creds, &[&spec.password]);
        let mut result = redactor.result(
            &module
                .create_account(&self.ctx(&server), &creds, &spec)
                .await,
        );

        // A 409 for our own username (fixed before the first call, unique to this
        // service) is always reconciled, whatever earlier attempts reported: a
        // Panel may commit and then answer 503, or keep an account after a
        // warning. Look the account up, adopt it when it is ours; never rename.
        if let Err(f) = &result.outcome
            && f.kind == FailureKind::Conflict
        {
            result = self
                .reconcile(&*module, &creds, &server, &spec, result, &redactor)
                .await?;
        }
        self.finish(log_id, &server.module, server.id, result, &redactor)
            .await
    }

    /// Takes a slot on a server of the product's group and assigns it.
    /// Takes a slot on a server of the product's group and assigns it, one
    /// statement per candidate so the server row is locked only briefly.
    async fn place(&mut self, product: &Product) -> anyhow::Result<Option<i64>> {
        let placed = servers::place_service(
            self.pool(),
            self.service.id,
            product.group_id,
            &product.module,
        )
        .await?;
        self.service.server_id = placed.or(self.service.server_id);
        Ok(placed)
    }

    /// Places the service on another server of its group and gives `from`'s
    /// slot back; None (and no change) when no other server can take it.
    async fn move_away(&mut self, product: &Product, from: i64) -> anyhow::Result<Option<i64>> {
        let placed = servers::place_service(
            self.pool(),
            self.service.id,
            product.group_id,
            &product.module,
        )
        .await?;
        if let Some(to) = placed {
            servers::release(self.pool(), from).await?;
            self.service.server_id = Some(to);
            tracing::info!(
                server.id = from,
                to.server.id = to,
                "server out of placement; service moved before calling"
            );
        }
        Ok(placed)
    }

    /// The account to create: fixed username, the sealed password opened.
    fn spec(
        &self,
        product: &Product,
        email: String,
        client_name: String,
        sealed: &[u8],
    ) -> anyhow::Result<AccountSpec> {
        let s = &self.service;
        let password = String::from_utf8(self.state.sealer.open(password_binding(s.id), sealed)?)?;
        Ok(AccountSpec {
            username: s.username.clone(),
            password: SecretString::from(password),
            domain: s.domain.clone(),
            package: product.package.clone(),
            email,
            disk_limit_mb: product.disk_limit_mb,
            bandwidth_limit_mb: product.bandwidth_limit_mb,
            client_name,
            service_id: s.id,
        })
    }

    /// Marks create attempts a crashed run left pending as outcome-unknown.
    async fn recover_orphaned_attempts(&mut self) -> anyhow::Result<()> {
        let f = Failure {
            outcome_unknown: true,
            ..Failure::new(
                FailureKind::ConnectionDropped,
                "the worker stopped before the Panel's answer was recorded; the outcome of this attempt is unknown",
                "Commerce reconciles this on the next attempt; nothing to do unless the service ends as needing attention.",
                true,
            )
        };
        let orphaned = sqlx::query!(
"UPDATE provisioning_log SET status = 'failed', error = $2, error_kind = 'connection_dropped', message = $3,
                    finished_at = now(), updated_at = now()
             WHERE service_id = $1 AND action = 'create' AND status = 'pending'",
self.service.id,
Json(failure_json(&f)) as _,
&f.message,
)
        .execute(self.pool())
        .await?;
        if orphaned.rows_affected() > 0 {
            sqlx::query!(
                "UPDATE services SET create_outcome_unknown = true WHERE id = $1",
                self.service.id,
            )
            .execute(self.pool())
            .await?;
            self.service.create_outcome_unknown = true;
        }
        Ok(())
    }

    /// After a 409 for our username: look the account up where the module can
    /// (by the id the Panel named, else by username), adopt it when it is ours
    /// (username, and domain and email where the Panel says them), else report
    /// that a person must check.
    async fn reconcile(
        &self,
        module: &dyn ProvisioningModule,
        creds: &Credentials,
        server: &ServerRow,
        spec: &AccountSpec,
        conflict: ProvisioningResult,
        redactor: &Redactor,
    ) -> anyhow::Result<ProvisioningResult> {
        let username = &self.service.username;
        let named_id = conflict
            .outcome
            .as_ref()
            .err()
            .and_then(|f| f.existing_account_id.clone());
        let mut found_elsewhere = None;
        let account = AccountRef {
            panel_id: named_id.clone(),
            username: username.clone(),
            domain: self.service.domain.clone(),
        };
        if module.can_look_up(&account) {
            let log_id = log::start(
                self.pool(),
                &self.entry(Some(server.id), &server.module, Action::Info),
            )
            .await?;
            let info = redactor.result(
                &module
                    .account_info(&self.ctx(server), creds, &account)
                    .await,
            );
            let field =
                |ok: &Success, k: &str| ok.data.get(k).and_then(Value::as_str).map(str::to_owned);
            let ours = match &info.outcome {
                Ok(ok) => {
                    let same_user =
                        field(ok, "username").is_none_or(|u| u.eq_ignore_ascii_case(username));
                    let same_domain = field(ok, "domain")
                        .is_none_or(|d| d.eq_ignore_ascii_case(&self.service.domain));
                    let same_email =
                        field(ok, "email").is_none_or(|e| e.eq_ignore_ascii_case(&spec.email));
                    if !(same_domain && same_user) {
                        found_elsewhere = field(ok, "domain");
                    }
                    same_user && same_domain && same_email
                }
                Err(_) => false,
            };
            let id = info
                .outcome
                .as_ref()
                .ok()
                .and_then(|ok| ok.account_id.clone())
                .or(named_id)
                .unwrap_or_else(|| username.clone());
            let message = match (&info.outcome, ours) {
                (_, true) => {
                    format!("account {id} on the Panel belongs to {username}: adopting it")
                }
                (Ok(_), false) => format!(
                    "account {id} on the Panel is not {username}'s (its username, domain or email differ)"
                ),
                (Err(f), false) => format!(
                    "could not look account {id} up on the Panel, so it is not shown to be {username}'s: {}",
                    f.message
                ),
            };
            let status = if info.is_success() {
                LogStatus::Success
            } else {
                LogStatus::Failed
            };
            let call = Call {
                log_id,
                module: &server.module,
                result: &info,
                redactor,
            };
            let mut tx = self.pool().begin().await?;
            self.close_attempt(&mut tx, &call, status, &message).await?;
            tx.commit().await?;
            if ours {
                let adopted = Success {
                    message: format!(
                        "Account {username} already existed on the Panel as id {id} (created by an earlier attempt whose reply was lost, or kept by the Panel after a warning); adopted it instead of creating another"
                    ),
                    data: json!({"account_id": id, "adopted": true}),
                    account_id: Some(id),
                };
                return Ok(ProvisioningResult {
                    outcome: Ok(adopted),
                    ..conflict
                });
            }
        }
        let earlier = if self.service.create_outcome_unknown {
            format!(
                "An earlier attempt to create {username} was sent but its answer never arrived; the Panel now says {username} already exists, so that attempt most likely created it."
            )
        } else {
            let said = conflict
                .outcome
                .as_ref()
                .err()
                .map_or_else(String::new, |f| format!(" ({})", f.message));
            format!("The Panel refused to create {username} because it exists already{said}.")
        };
        let whose = match found_elsewhere {
            Some(d) => format!(
                " The Panel's {username} is for {d}, not {}.",
                self.service.domain
            ),
            None => String::new(),
        };
        let mut needs = Failure::new(
            FailureKind::NeedsAttention,
            format!("{earlier}{whose} Commerce will not create it again under another name."),
            format!(
                "Check Panel → Accounts for {username} on server {}. If it is this service's account, adopt it on the service; if not, remove it on the Panel, then retry.",
                server.name
            ),
            false,
        );
        // The account may be ours: keep the server, never place elsewhere.
        needs.outcome_unknown = true;
        Ok(ProvisioningResult {
            outcome: Err(needs),
            ..conflict
        })
    }

    async fn no_capacity(&self, product: &Product) -> anyhow::Result<()> {
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
            &f.message,
            Some(&f),
            Some(("failed", last)),
        )
        .await?;
        let mut conn = self.pool().acquire().await?;
        self.alert_failed(&mut conn, &f, None).await
    }

    /// Records a create's outcome in one transaction: log row, service, retry.
    async fn finish(
        &self,
        log_id: i64,
        module: &str,
        server_id: i64,
        result: ProvisioningResult,
        redactor: &Redactor,
    ) -> anyhow::Result<()> {
        let result = redactor.result(&result);
        if let Ok(ok) = &result.outcome {
            // The log row, the service change and the welcome mail's outbox
            // row in one statement; its send job in the same transaction.
            let record = AttemptRecord::of(&result, LogStatus::Success, redactor);
            let finish = record.finish(LogStatus::Success, &ok.message);
            let mail_key = crate::mail::new_key();
            let mut tx = self.pool().begin().await?;
            log::finish_activating(
                &mut *tx,
                log_id,
                &finish,
                self.service.id,
                ok.account_id.as_deref(),
                &mail_key,
            )
            .await?;
            crate::mail::push(&mut tx, &mail_key, None).await?;
            tx.commit().await?;
            self.state
                .metrics
                .observe_call(module, Action::Create, result.duration);
            self.state.metrics.bump(Action::Create, |c| &c.succeeded);
            tracing::info!(server.id = server_id, panel_account_id = ?ok.account_id, duration_ms = result.duration.as_millis() as u64, "account created");
            return Ok(());
        }
        if let Err(f) = &result.outcome {
            let replaced = self.leave_bad_server(f, server_id).await?;
            let mut tx = self.pool().begin().await?;
            let call = Call {
                log_id,
                module,
                result: &result,
                redactor,
            };
            self.close_attempt(&mut tx, &call, LogStatus::Failed, &f.message)
                .await?;
            let unknown = f.outcome_unknown || self.service.create_outcome_unknown;
            if let Some(moved) = replaced {
                // Nothing can exist on the bad server: its slot goes back and
                // the next attempt runs on the new one at once.
                servers::release(&mut *tx, server_id).await?;
                sqlx::query!(
"UPDATE services SET last_error = $2, lease_until = NULL, updated_at = now() WHERE id = $1",
self.service.id,
Json(last_error(f, Action::Create, Some(std::time::Duration::ZERO))) as _,
)
                .execute(&mut *tx)
                .await?;
                self.schedule_retry(&mut tx, std::time::Duration::ZERO)
                    .await?;
                tracing::warn!(
                    kind = f.kind.as_str(),
                    server.id = server_id,
                    to.server.id = moved,
                    "create failed on a server now out of placement; placed again"
                );
                tx.commit().await?;
                return Ok(());
            }
            let delay = self.retry_delay(f);
            // A final failure keeps its server (and the slot, which a retry or
            // a terminate settles), so "retry what failed on server N" finds it.
            sqlx::query!(
"UPDATE services SET last_error = $2, create_outcome_unknown = $3, lease_until = NULL,
                            status = CASE WHEN $4 THEN status ELSE 'failed' END, updated_at = now()
                     WHERE id = $1",
self.service.id,
Json(last_error(f, Action::Create, delay)) as _,
unknown,
delay.is_some(),
)
            .execute(&mut *tx)
            .await?;
            match delay {
                Some(d) => self.schedule_retry(&mut tx, d).await?,
                None => {
                    self.state.metrics.bump(Action::Create, |c| &c.failed);
                    self.alert_failed(&mut tx, f, Some(server_id)).await?;
                }
            }
            tracing::warn!(
                kind = f.kind.as_str(),
                retry_in_ms = delay.map(|d| d.as_millis() as u64),
                "create failed"
            );
            tx.commit().await?;
        }
        Ok(())
    }

    /// After a create failure that proves the Panel did nothing (credentials,
    /// refusal, no connection, DNS, TLS, configuration): takes the server out
    /// of placement and places the service on another server of its group.
    /// Returns the new server, or None (ambiguous failure, or nowhere to go).
    async fn leave_bad_server(&self, f: &Failure, server_id: i64) -> anyhow::Result<Option<i64>> {
        let proves_nothing_done = matches!(
            f.kind,
            FailureKind::Unauthorized
                | FailureKind::Forbidden
                | FailureKind::ConnectionRefused
                | FailureKind::Dns
                | FailureKind::Tls
                | FailureKind::Config
        );
        if !proves_nothing_done || f.outcome_unknown || self.service.create_outcome_unknown {
            return Ok(None);
        }
        let reason = format!(
            "create of service {} failed: {} ({})",
            self.service.id,
            f.kind.as_str(),
            f.message
        );
        let changed = servers::take_out_of_placement(
            self.pool(),
            server_id,
            &failure_json(f),
            &Redactor::default().text(&reason),
        )
        .await?;
        if changed {
            tracing::warn!(
                server.id = server_id,
                kind = f.kind.as_str(),
                "server taken out of placement"
            );
            servers::record_change(self.pool(), server_id, "offline", Some(f.kind.as_str()))
                .await?;
            let message = format!("server {server_id} taken out of placement: {reason}");
            alerts::raise(
                self.pool(),
                &self.state.config,
                &alerts::NewAlert {
                    event: "server_offline",
                    service_id: Some(self.service.id),
                    server_id: Some(server_id),
                    kind: Some(f.kind.as_str()),
                    message: &message,
                    hint: Some(&f.hint),
                },
            )
            .await?;
        }
        if self.args.attempt >= self.state.config.provision_max_attempts {
            return Ok(None);
        }
        let p = sqlx::query!(
            "SELECT p.group_id, p.module FROM services s JOIN products p ON p.id = s.product_id WHERE s.id = $1",
            self.service.id,
        )
        .fetch_one(self.pool())
        .await?;
        Ok(servers::place_service(self.pool(), self.service.id, p.group_id, &p.module).await?)
    }
}
