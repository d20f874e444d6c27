//! What the modules can do, for the API and the admin UI, and the packages a
//! server's Panel has (for modules that can list them).

use provisioning::{Capability, CredentialField, ModuleInfo};
use serde::Serialize;
use serde_json::Value;

use crate::app::error::{AppError, AppResult};
use crate::app::servers;
use crate::state::AppState;

/// One module as `GET /api/v1/modules` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleView {
    pub id: &'static str,
    pub label: &'static str,
    pub description: &'static str,
    pub credential_fields: Vec<CredentialField>,
    pub capabilities: Vec<&'static str>,
}

impl From<&ModuleInfo> for ModuleView {
    fn from(m: &ModuleInfo) -> Self {
        Self {
            id: m.id,
            label: m.label,
            description: m.description,
            credential_fields: m.credential_fields.clone(),
            capabilities: m.capabilities.iter().map(|c| c.as_str()).collect(),
        }
    }
}

pub fn list(state: &AppState) -> Vec<ModuleView> {
    state
        .registry
        .all()
        .map(|m| ModuleView::from(m.info()))
        .collect()
}

/// Whether the module `id` can do `capability` (unknown modules can do nothing).
pub fn can(state: &AppState, id: &str, capability: Capability) -> bool {
    state
        .registry
        .get(id)
        .is_some_and(|m| m.info().can(capability))
}

/// The Panel's packages on server `id`: `{items: [{name, ...}]}`, or with
/// `error` (kind, message, hint) when the Panel could not be asked. 409 when
/// the module cannot list packages.
pub async fn server_packages(state: &AppState, id: i64) -> AppResult<Value> {
    let row = servers::get(&state.pool, id).await?;
    let module = state
        .registry
        .get(&row.module)
        .ok_or_else(|| AppError::conflict(format!("server {} uses an unknown module", row.name)))?;
    if !module.info().can(Capability::ListPackages) {
        return Err(AppError::conflict(format!(
            "the {} module cannot list the Panel's packages; type the package name exactly as the Panel shows it",
            module.info().id
        )));
    }
    let creds = servers::credentials(&row, &state.sealer)?;
    let ctx = state.http.ctx_for(&row.tls());
    let result = module.list_packages(&ctx, &creds).await;
    Ok(match result.outcome {
        Ok(ok) => serde_json::json!({"items": ok.data}),
        Err(f) => serde_json::json!({"items": [], "error": f}),
    })
}
