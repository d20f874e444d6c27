//! Changing an existing account: its package (to another product's) or its
//! password (a new generated one), through the module when it can.

use provisioning::{AccountRef, Capability, Failure, FailureKind, Redactor};
use secrecy::{ExposeSecret, SecretString};
use sqlx::types::Json;

use super::{Run, last_error};
use crate::app::catalog;
use crate::app::log;
use crate::app::orders::password_binding;
use crate::domain::{Action, LogStatus, ServiceStatus};

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
            Err(f) => {
                let last = last_error(&f, self.action, None);
                return self
                    .settle(
                        Some(server_id),
                        "unknown",
                        &f.message,
                        Some(&f),
                        Some((&s.status, last)),
                    )
                    .await;
            }
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
            let pending: Option<i64> =
                sqlx::query_scalar("SELECT pending_product_id FROM services WHERE id = $1")
                    .bind(s.id)
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
        let mut tx = self.pool().begin().await?;
        match &result.outcome {
            Ok(ok) => {
                let message = match self.action {
                    Action::ChangePackage => format!("{} (now package {package:?})", ok.message),
                    _ => ok.message.clone(),
                };
                self.close_attempt(
                    &mut tx,
                    log_id,
                    &server.module,
                    &result,
                    LogStatus::Success,
                    &message,
                    &redactor,
                )
                .await?;
                if let Some(pid) = target_product {
                    sqlx::query(
                        "UPDATE services SET product_id = $2, pending_product_id = NULL, last_error = NULL,
                                lease_until = NULL, updated_at = now() WHERE id = $1",
                    )
                    .bind(s.id)
                    .bind(pid)
                    .execute(&mut *tx)
                    .await?;
                } else {
                    let sealed = self
                        .state
                        .sealer
                        .seal(password_binding(s.id), password.expose_secret().as_bytes());
                    sqlx::query(
                        "UPDATE services SET password_sealed = $2, last_error = NULL, lease_until = NULL,
                                updated_at = now() WHERE id = $1",
                    )
                    .bind(s.id)
                    .bind(sealed)
                    .execute(&mut *tx)
                    .await?;
                    // The client's mail, committed with the new password.
                    crate::mail::enqueue(&mut tx, s.id, crate::mail::Kind::PasswordChanged).await?;
                }
                tracing::info!(server.id = server.id, "{message}");
            }
            Err(f) => {
                self.close_attempt(
                    &mut tx,
                    log_id,
                    &server.module,
                    &result,
                    LogStatus::Failed,
                    &f.message,
                    &redactor,
                )
                .await?;
                let delay = self.retry_delay(f);
                sqlx::query(
                    "UPDATE services SET last_error = $2, lease_until = NULL, updated_at = now(),
                            pending_product_id = CASE WHEN $3 THEN pending_product_id ELSE NULL END
                     WHERE id = $1",
                )
                .bind(s.id)
                .bind(Json(last_error(f, self.action, delay)))
                .bind(delay.is_some())
                .execute(&mut *tx)
                .await?;
                if let Some(d) = delay {
                    self.schedule_retry(&mut tx, d).await?;
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
}
