//! Reading an account's usage and status from the Panel (sync): `usage` where
//! the module can, else `info`; stored on the service with when.

use provisioning::{AccountRef, Capability, Failure, FailureKind, Redactor};
use serde_json::{Value, json};
use sqlx::types::Json;

use super::{Call, Run};
use crate::app::log;
use crate::domain::LogStatus;

impl Run<'_> {
    pub(super) async fn sync(&self) -> anyhow::Result<()> {
        let s = &self.service;
        let (Some(account_id), Some(server_id)) = (s.panel_account_id.clone(), s.server_id) else {
            let f = Failure::of(
                FailureKind::Config,
                format!("service {} has no Panel account to read", s.id),
            );
            return self
                .settle(s.server_id, "unknown", &f.message, Some(&f), None)
                .await;
        };
        let (server, creds, module) = match self.target(server_id).await? {
            Ok(t) => t,
            Err(f) => {
                return self
                    .settle(Some(server_id), "unknown", &f.message, Some(&f), None)
                    .await;
            }
        };
        let account = AccountRef {
            panel_id: Some(account_id),
            username: s.username.clone(),
            domain: s.domain.clone(),
        };
        let ctx = self.ctx(&server);
        let log_id = log::start(
            self.pool(),
            &self.entry(Some(server.id), &server.module, self.action),
        )
        .await?;
        let redactor = Redactor::for_attempt(&creds, &[]);
        let result = redactor.result(&if module.info().can(Capability::Usage) {
            module.usage(&ctx, &creds, &account).await
        } else {
            module.account_info(&ctx, &creds, &account).await
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
                self.close_attempt(&mut tx, &call, LogStatus::Success, &ok.message)
                    .await?;
                let num = |k: &str| {
                    ok.data
                        .get(k)
                        .filter(|v| v.is_number())
                        .cloned()
                        .unwrap_or(Value::Null)
                };
                let usage = json!({
                    "disk_used_mb": num("disk_used_mb"),
                    "disk_limit_mb": num("disk_limit_mb"),
                    "bandwidth_used_mb": num("bandwidth_used_mb"),
                });
                let panel_status = ok
                    .data
                    .get("status")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let drift = drift(s.status.as_str(), panel_status.as_deref());
                if let Some(d) = &drift {
                    tracing::warn!(service.id = s.id, "drift: {d}");
                }
                sqlx::query!(
"UPDATE services SET usage = $2, panel_status = $3, drift = $4, synced_at = now(), lease_until = NULL,
                            updated_at = now() WHERE id = $1",
s.id,
Json(usage) as _,
panel_status,
drift,
)
                .execute(&mut *tx)
                .await?;
            }
            Err(f) => {
                self.close_attempt(&mut tx, &call, LogStatus::Failed, &f.message)
                    .await?;
                // A failed read changes nothing on the service (the log row
                // says why) and raises no alert (a sync runs for every account
                // on a schedule; a down server has its own alert), except that an account the Panel does not have
                // is drift, shown to the admin and left to them.
                let missing = f.kind == FailureKind::NotFound;
                if missing {
                    tracing::warn!(
                        service.id = s.id,
                        "drift: the account is missing on the Panel"
                    );
                }
                sqlx::query!(
                    "UPDATE services SET lease_until = NULL,
                            drift = CASE WHEN $2 THEN $3 ELSE drift END,
                            panel_status = CASE WHEN $2 THEN 'missing' ELSE panel_status END,
                            synced_at = CASE WHEN $2 THEN now() ELSE synced_at END,
                            updated_at = CASE WHEN $2 THEN now() ELSE updated_at END
                     WHERE id = $1",
                    s.id,
                    missing,
                    format!(
                        "the account {} is missing on the Panel; it is {} here",
                        s.username, s.status
                    ),
                )
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Where the Panel's status disagrees with ours, in words; `None` when it agrees.
fn drift(ours: &str, panel: Option<&str>) -> Option<String> {
    match (ours, panel?) {
        ("active", "suspended") => Some("suspended on the Panel, active here".into()),
        ("suspended", "active") => Some("active on the Panel, suspended here".into()),
        _ => None,
    }
}
