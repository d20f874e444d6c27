//! What the modules can do, for the API and the admin UI, and the packages a
//! server's Panel has (for modules that can list them).

use provisioning::{Capability, CredentialField, ModuleInfo};
use serde::Serialize;
use serde_json::Value;

use crate::app::error::{AppError, AppResult};
use crate::app::servers;
use crate::state::Core;

/// One module as `GET /api/v1/modules` lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModuleView {
    pub id: &'static str,
    pub label: &'static str,
    pub description: &'static str,
    #[schema(value_type = Vec<Object>)]
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

pub fn list(state: &Core) -> Vec<ModuleView> {
    state
        .registry
        .all()
        .map(|m| ModuleView::from(m.info()))
        .collect()
}

/// Whether the module `id` can do `capability` (unknown modules can do nothing).
pub fn can(state: &Core, id: &str, capability: Capability) -> bool {
    state
        .registry
        .get(id)
        .is_some_and(|m| m.info().can(capability))
}

/// The Panel's packages on server `id`: `{items: [{name, ...}]}`, or with
/// `error` (kind, message, hint) when the Panel could not be asked. 409 when
/// the module cannot list packages.
pub async fn server_packages(state: &Core, id: i64) -> AppResult<Value> {
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
    // Shown to the admin: no credential, whatever the Panel echoed.
    let result = provisioning::Redactor::for_attempt(&creds, &[])
        .result(&module.list_packages(&ctx, &creds).await);
    Ok(match result.outcome {
        Ok(ok) => serde_json::json!({"items": ok.data}),
        Err(f) => serde_json::json!({"items": [], "error": f}),
    })
}

/// The packages a group's servers of one module have, for the product form.
#[derive(Debug, Clone, Default)]
pub struct GroupPackages {
    /// Whether the module can list packages at all (else: free text).
    pub listable: bool,
    /// Every package name any of the servers has, exact case, first seen first.
    pub names: Vec<String>,
    /// Servers that could not be asked, with why.
    pub problems: Vec<String>,
    /// How many servers of the module the group has.
    pub servers: usize,
}

/// Asks every enabled server of `module_id` in `group_id` for its packages.
pub async fn group_packages(
    state: &Core,
    module_id: &str,
    group_id: i64,
) -> AppResult<GroupPackages> {
    let Some(module) = state.registry.get(module_id) else {
        return Ok(GroupPackages::default());
    };
    if !module.info().can(Capability::ListPackages) {
        return Ok(GroupPackages::default());
    }
    let rows: Vec<_> = servers::all(&state.pool)
        .await?
        .into_iter()
        .filter(|r| r.enabled && r.group_id == group_id && r.module == module_id)
        .collect();
    let asks = rows.iter().map(|row| {
        let module = module.clone();
        async move {
            let creds = servers::credentials(row, &state.sealer).map_err(|e| e.to_string())?;
            let ctx = state.http.ctx_for(&row.tls());
            provisioning::Redactor::for_attempt(&creds, &[])
                .result(&module.list_packages(&ctx, &creds).await)
                .outcome
                .map_err(|f| format!("{}: {}", row.name, f.message))
        }
    });
    let mut out = GroupPackages {
        listable: true,
        servers: rows.len(),
        ..Default::default()
    };
    for answer in futures::future::join_all(asks).await {
        match answer {
            Ok(ok) => {
                for name in ok
                    .data
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.get("name").and_then(Value::as_str))
                {
                    if !out.names.iter().any(|n| n == name) {
                        out.names.push(name.to_owned());
                    }
                }
            }
            Err(problem) => out.problems.push(problem),
        }
    }
    Ok(out)
}
