//! Changing an existing account: its package (to another product's) or its
//! password (a new generated one), through the module when it can.

use super::{Call, Run};
use crate::app::catalog;
use crate::app::log;
use crate::app::orders::password_binding;
use crate::domain::{Action, LogStatus, ServiceStatus};
use provisioning::{AccountRef, Capability, Failure, FailureKind, Redactor};
use secrecy::{ExposeSecret, SecretString};

impl Run<'_> {
    pub(super) async fn change(&self) -> anyhow::Result<()> {
        let s = &self.service;
        let (Some(account_id), Some(server_id)) = (s.panel_account_id.clone(), s.server_id) else {
            let f = Failure::of(
                FailureKind::Config,
                format!("service {} has no Panel account to {}", s.id, self.action),
            );
            return self
                .settle(s.server_id, "unknown", &f.message, Some(&f), None)
                .await;
        };
        if !matches!(s.status(), ServiceStatus::Active | ServiceStatus::Suspended) {
            let f = Failure::of(
                FailureKind::Internal,
                format!("service {} is {}; nothing changed", s.id, s.status),
            );
            return self
                .settle(Some(server_id), "unknown", &f.message, Some(&f), None)
                .await;
        }
        let (server, creds, module) = match self.target(server_id).await? {
            Ok(t) => t,
            Err(f) => return self.fail_unusable_server(server_id, "unknown", &f).await,
        };
        let capability = match self.action {
            Action::ChangePackage => Capability::ChangePackage,
            _ => Capability::ChangePassword,
        };
        if !module.info().can(capability) {
            let f = Failure::unsupported(&server.module, capability.as_str());
            return self
                .settle(Some(server_id), &server.module, &f.message, Some(&f), None)
                .await;
        }
        let account = AccountRef {
            panel_id: Some(account_id),
            username: s.username.clone(),
            domain: s.domain.clone(),
        };
        let ctx = self.ctx(&server);
        let password = SecretString::from(provisioning::generate_password(20));
        // Redacted on arrival, the new password included, whatever the Panel echoes.
        let redactor = Redactor::for_attempt(&creds, &[&password]);
        let (target_product, package) = if self.action == Action::ChangePackage {
            let pending: Option<i64> = sqlx::query_scalar!(
                "SELECT pending_product_id FROM services WHERE id = $1",
                s.id,
            )
            .fetch_one(self.pool())
            .await?;
            let Some(pid) = pending else {
                let f = Failure::of(
                    FailureKind::Internal,
                    "no package change is pending for this service",
                );
                return self
                    .settle(Some(server_id), &server.module, &f.message, Some(&f), None)
                    .await;
            };
            let product = catalog::get_product(self.pool(), pid)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            (Some(pid), product.package)
        } else {
            (None, String::new())
        };
        let log_id = log::start(
            self.pool(),
            &self.entry(Some(server.id), &server.module, self.action),
        )
        .await?;
        let result = redactor.result(&match self.action {
            Action::ChangePackage => {
                module
                    .change_package(&ctx, &creds, &account, &package)
                    .await
            }
            _ => {
                module
                    .change_password(&ctx, &creds, &account, &password)
                    .await
            }
        });
        let call = Call {
            log_id,
            module: &server.module,
            result: &result,
            redactor: &redactor,
        };
        let mut tx = self.pool().begin().await?;
        match &result.outcome {
            Ok(ok) => {
                let message = match self.action {
                    Action::ChangePackage => format!("{} (now package {package:?})", ok.message),
                    _ => ok.message.clone(),
                };
                self.close_attempt(&mut tx, &call, LogStatus::Success, &message)
                    .await?;
                if let Some(pid) = target_product {
                    sqlx::query!(
"UPDATE services SET product_id = $2, pending_product_id = NULL, last_error = NULL,
                                lease_until = NULL, updated_at = now() WHERE id = $1",
s.id,
pid,
)
                    .execute(&mut *tx)
                    .await?;
                } else {
                    let sealed = self
                        .state
                        .sealer
                        .seal(password_binding(s.id), password.expose_secret().as_bytes());
                    sqlx::query!(
"UPDATE services SET password_sealed = $2, last_error = NULL, lease_until = NULL,
                                updated_at = now() WHERE id = $1",
s.id,
sealed,
)
                    .execute(&mut *tx)
                    .await?;
                    // The client's mail, committed with the new password.
                    crate::mail::enqueue(&mut tx, s.id, crate::mail::Kind::PasswordChanged).await?;
                }
                tracing::info!(server.id = server.id, "{message}");
            }
            Err(f) => {
                let delay = self.fail_attempt(&mut tx, &call, f, server.id).await?;
                if delay.is_none() && target_product.is_some() {
                    // Given up: the change is no longer pending.
                    sqlx::query!(
                        "UPDATE services SET pending_product_id = NULL WHERE id = $1",
                        s.id,
                    )
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
