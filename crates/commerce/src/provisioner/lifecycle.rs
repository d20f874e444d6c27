//! Suspend, unsuspend and terminate an existing account.

use super::{Call, Run, config_failure};
use crate::app::catalog;
use crate::app::log::{self, Finish};
use crate::app::servers;
use crate::domain::{Action, LogStatus, ServiceStatus};
use provisioning::{AccountRef, FailureKind, Redactor};

impl Run<'_> {
    pub(super) async fn lifecycle(&self) -> anyhow::Result<()> {
        let s = &self.service;
        let module_id = match s.server_id {
            Some(id) => servers::get(self.pool(), id).await.map(|r| r.module).ok(),
            None => catalog::get_product(self.pool(), s.product_id)
                .await
                .map(|p| p.module)
                .ok(),
        }
        .unwrap_or_else(|| "unknown".into());
        if s.status() == ServiceStatus::Terminated {
            return self
                .settle(
                    s.server_id,
                    &module_id,
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
            let mut f = config_failure(format!(
                "service {} has no Panel account to {}",
                s.id, self.action
            ));
            f.hint = "Create the account first (or retry the failed create).".into();
            return self
                .settle(s.server_id, &module_id, &f.message, Some(&f), None)
                .await;
        };
        let (server, creds, module) = match self.target(server_id).await? {
            Ok(t) => t,
            Err(f) => return self.fail_unusable_server(server_id, &module_id, &f).await,
        };
        let log_id = log::start(
            self.pool(),
            &self.entry(Some(server.id), &server.module, self.action),
        )
        .await?;
        let ctx = &self.ctx(&server);
        let account = AccountRef {
            panel_id: Some(account_id.clone()),
            username: s.username.clone(),
            domain: s.domain.clone(),
        };
        let result = match self.action {
            Action::Suspend => {
                let reason =
                    suspend_reason(s.suspension_reason.as_deref(), s.suspension_note.as_deref());
                module
                    .suspend_account(ctx, &creds, &account, Some(&reason))
                    .await
            }
            Action::Unsuspend => module.unsuspend_account(ctx, &creds, &account).await,
            _ => module.terminate_account(ctx, &creds, &account).await,
        };
        let redactor = Redactor::for_attempt(&creds, &[]);
        let result = redactor.result(&result);
        // Terminating an account the Panel no longer has is done already.
        let gone = self.action == Action::Terminate
            && matches!(&result.outcome, Err(f) if f.kind == FailureKind::NotFound);
        let call = Call {
            log_id,
            module: &server.module,
            result: &result,
            redactor: &redactor,
        };
        let mut tx = self.pool().begin().await?;
        match &result.outcome {
            Err(f) if !gone => {
                self.fail_attempt(&mut tx, &call, f, server.id).await?;
            }
            outcome => {
                let message = match outcome {
                    Ok(ok) => ok.message.clone(),
                    Err(_) => {
                        format!("the Panel no longer has account {account_id}; marked terminated")
                    }
                };
                self.close_attempt(&mut tx, &call, LogStatus::Success, &message)
                    .await?;
                match self.action {
                    Action::Suspend => sqlx::query!(
                        "UPDATE services SET status = 'suspended', suspended_at = now(), last_error = NULL, lease_until = NULL, updated_at = now() WHERE id = $1",
                        s.id,
                    ),
                    Action::Unsuspend => sqlx::query!(
                        "UPDATE services SET status = 'active', suspended_at = NULL, suspension_reason = NULL, suspension_note = NULL, last_error = NULL, lease_until = NULL, updated_at = now() WHERE id = $1",
                        s.id,
                    ),
                    _ => sqlx::query!(
                        "UPDATE services SET status = 'terminated', terminated_at = now(), last_error = NULL, lease_until = NULL, updated_at = now() WHERE id = $1",
                        s.id,
                    ),
                }
                .execute(&mut *tx)
                .await?;
                if self.action == Action::Terminate {
                    servers::release(&mut *tx, server.id).await?;
                }
                self.state.metrics.bump(self.action, |c| &c.succeeded);
                tracing::info!(
                    server.id = server.id,
                    duration_ms = result.duration.as_millis() as u64,
                    "{message}"
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
        let finish = Finish {
            status: LogStatus::Success,
            http_status: None,
            request: None,
            response: None,
            error: None,
            message: &message,
            duration_ms: 0,
        };
        log::record(
            &mut tx,
            &self.entry(s.server_id, module, Action::Terminate),
            &finish,
        )
        .await?;
        sqlx::query!(
"UPDATE services SET status = 'terminated', terminated_at = now(), lease_until = NULL, updated_at = now() WHERE id = $1",
s.id,
)
            .execute(&mut *tx)
            .await?;
        if let Some(server_id) = s.server_id.filter(|_| !s.create_outcome_unknown) {
            servers::release(&mut *tx, server_id).await?;
        }
        tx.commit().await?;
        self.state.metrics.bump(Action::Terminate, |c| &c.succeeded);
        Ok(())
    }
}

/// The text the Panel keeps as the suspension's reason: never empty (the v1
/// Panel answers 500 on `""`), the admin's note after the reason.
fn suspend_reason(reason: Option<&str>, note: Option<&str>) -> String {
    let reason = reason.unwrap_or("other");
    match note.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => format!("{reason}: {n}"),
        None => reason.to_owned(),
    }
}
