//! Adopting the account a Panel holds for a service that ended needing
//! attention: by the id an admin read on the Panel, or looked up by username
//! where the module can. The account must be the service's (username, and
//! domain where the Panel says it); the lookup is logged like any Panel call.

use provisioning::{AccountRef, Capability, Redactor, Success};
use serde::Deserialize;
use serde_json::Value;

use crate::app::error::{AppError, AppResult};
use crate::app::log::{self, NewEntry};
use crate::app::servers;
use crate::app::services::{SERVICE_COLUMNS, ServiceRow, ServiceView};
use crate::domain::{Action, LogStatus, ServiceStatus, TriggeredBy};
use crate::provisioner::AttemptRecord;
use crate::state::AppState;

/// `POST /api/v1/services/{id}/adopt`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adopt {
    /// The Panel's id of the account; without it, looked up by username.
    pub panel_account_id: Option<String>,
}

fn text(ok: &Success, k: &str) -> Option<String> {
    ok.data.get(k).and_then(Value::as_str).map(str::to_owned)
}

/// Settles a service without an account as active on the Panel's account.
pub async fn adopt(
    state: &AppState,
    id: i64,
    input: &Adopt,
    by: TriggeredBy,
) -> AppResult<ServiceView> {
    let mut tx = state.pool.begin().await.map_err(AppError::from)?;
    let row = sqlx::query_as::<_, ServiceRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {SERVICE_COLUMNS} FROM services WHERE id = $1 AND (lease_until IS NULL OR lease_until < now()) FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| AppError::conflict(format!("service {id} does not exist or is busy")))?;
    if !matches!(row.status(), ServiceStatus::Failed | ServiceStatus::Pending)
        || row.panel_account_id.is_some()
    {
        return Err(AppError::conflict(format!(
            "service {id} ({}) is not waiting for an account: adopt settles a failed create",
            row.status
        )));
    }
    let server_id = row.server_id.ok_or_else(|| {
        AppError::conflict("the service is on no server any more: retry the create instead")
    })?;
    let server = servers::get(&state.pool, server_id).await?;
    let module = state
        .registry
        .get(&server.module)
        .ok_or_else(|| AppError::conflict("the server's module is unknown"))?;
    let given = input
        .panel_account_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let account_id = if module.info().can(Capability::Info) {
        let creds = servers::credentials(&server, &state.sealer)?;
        let account = AccountRef {
            panel_id: given.clone(),
            username: row.username.clone(),
            domain: row.domain.clone(),
        };
        let redactor = Redactor::for_attempt(&creds, &[]);
        let result = redactor.result(
            &module
                .account_info(&state.http.ctx_for(&server.tls()), &creds, &account)
                .await,
        );
        let (ours, message) = match &result.outcome {
            Ok(ok) => {
                let user_ok = text(ok, "username").is_none_or(|u| u == row.username);
                let domain_ok =
                    text(ok, "domain").is_none_or(|d| d.eq_ignore_ascii_case(&row.domain));
                if user_ok && domain_ok {
                    (
                        true,
                        format!(
                            "account {} on the Panel is this service's: adopted by {by}",
                            row.username
                        ),
                    )
                } else {
                    (
                        false,
                        format!(
                            "the Panel's account is {} for {}, not this service's {} for {}",
                            text(ok, "username").unwrap_or_default(),
                            text(ok, "domain").unwrap_or_default(),
                            row.username,
                            row.domain
                        ),
                    )
                }
            }
            Err(f) => (
                false,
                format!("could not look the account up: {}", f.message),
            ),
        };
        let status = if ours {
            LogStatus::Success
        } else {
            LogStatus::Failed
        };
        let record = AttemptRecord::of(&result, status, &redactor);
        let entry = NewEntry {
            service_id: Some(row.id),
            server_id: Some(server.id),
            module: &server.module,
            action: Action::Info,
            attempt: 1,
            triggered_by: by,
            job_id: None,
        };
        log::record(&mut tx, &entry, &record.finish(status, &message)).await?;
        if !ours {
            tx.commit().await.map_err(AppError::from)?;
            return Err(AppError::conflict(message));
        }
        result
            .outcome
            .ok()
            .and_then(|ok| ok.account_id)
            .or(given)
            .unwrap_or_else(|| row.username.clone())
    } else {
        given.ok_or_else(|| {
            AppError::field(
                "panel_account_id",
                "this module cannot look accounts up: give the Panel's account id",
            )
        })?
    };
    sqlx::query(
        "UPDATE services SET status = 'active', panel_account_id = $2, activated_at = now(), last_error = NULL,
                create_outcome_unknown = false, updated_at = now() WHERE id = $1",
    )
    .bind(row.id)
    .bind(&account_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await.map_err(AppError::from)?;
    tracing::info!(service.id = row.id, panel_account_id = %account_id, "account adopted");
    Ok(crate::app::services::get(&state.pool, row.id).await?.into())
}
