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
use crate::app::services::{self, ServiceView};
use crate::domain::{Action, LogStatus, ServiceStatus, TriggeredBy};
use crate::provisioner::AttemptRecord;
use crate::state::Core;

/// `POST /api/v1/services/{id}/adopt`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
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
    state: &Core,
    id: i64,
    input: &Adopt,
    by: TriggeredBy,
) -> AppResult<ServiceView> {
    let mut tx = state.pool.begin().await.map_err(AppError::from)?;
    let row = services::lock_idle(&mut tx, id)
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
    sqlx::query!(
        "UPDATE services SET status = 'active', panel_account_id = $2, activated_at = now(), last_error = NULL,
                create_outcome_unknown = false, updated_at = now() WHERE id = $1",
        row.id,
        &account_id
    )
    .execute(&mut *tx)
    .await?;
    // The account is active now: the client gets its login, as after a create.
    crate::mail::enqueue(&mut tx, row.id, crate::mail::Kind::Welcome).await?;
    tx.commit().await.map_err(AppError::from)?;
    tracing::info!(service.id = row.id, panel_account_id = %account_id, "account adopted");
    Ok(crate::app::services::get(&state.pool, row.id).await?.into())
}

/// What the Panel holds under the service's username, for an admin to see
/// before adopting: `(label, value)` pairs, redacted like every Panel answer.
pub async fn preview(state: &Core, id: i64) -> AppResult<Vec<(String, String)>> {
    let row = crate::app::services::get(&state.pool, id).await?;
    let server_id = row
        .server_id
        .ok_or_else(|| AppError::conflict("the service is on no server"))?;
    let server = servers::get(&state.pool, server_id).await?;
    let module = state
        .registry
        .get(&server.module)
        .ok_or_else(|| AppError::conflict("the server's module is unknown"))?;
    if !module.info().can(Capability::Info) {
        return Err(AppError::conflict(format!(
            "the {} module cannot look accounts up: adopt with the Panel's account id (API)",
            server.module
        )));
    }
    let creds = servers::credentials(&server, &state.sealer)?;
    let account = AccountRef {
        panel_id: None,
        username: row.username.clone(),
        domain: row.domain.clone(),
    };
    let ctx = state.http.ctx_for(&server.tls());
    let redactor = Redactor::for_attempt(&creds, &[]);
    let info = redactor.result(&module.account_info(&ctx, &creds, &account).await);
    let ok = info.outcome.map_err(|f| {
        AppError::conflict(format!("the Panel has no account to adopt: {}", f.message))
    })?;
    let mut facts: Vec<(String, String)> = Vec::new();
    fn add(facts: &mut Vec<(String, String)>, label: &str, data: &Value, key: &str) {
        if let Some(v) = data.get(key).filter(|v| !v.is_null()) {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            facts.push((label.to_owned(), v));
        }
    }
    add(&mut facts, "Username", &ok.data, "username");
    add(&mut facts, "Domain", &ok.data, "domain");
    add(&mut facts, "Status", &ok.data, "status");
    add(&mut facts, "Package", &ok.data, "package");
    if let Some(id) = &ok.account_id {
        facts.push(("Panel account id".into(), id.clone()));
    }
    if module.info().can(Capability::Usage) {
        let usage = redactor.result(&module.usage(&ctx, &creds, &account).await);
        if let Ok(u) = usage.outcome {
            add(&mut facts, "Disk used (MB)", &u.data, "disk_used_mb");
            add(&mut facts, "Disk limit (MB)", &u.data, "disk_limit_mb");
            add(
                &mut facts,
                "Bandwidth used (MB)",
                &u.data,
                "bandwidth_used_mb",
            );
        }
    }
    Ok(facts)
}
