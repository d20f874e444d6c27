//! Requests to change an existing account: another product's package, or a
//! new password. Checked here (status, module capability, same module), then
//! queued in the same transaction as the service change.

use provisioning::Capability;
use serde::Deserialize;

use crate::app::catalog;
use crate::app::error::{AppError, AppResult};
use crate::app::modules;
use crate::app::servers;
use crate::app::services::{ServiceRow, lock, queue_action};
use crate::domain::{Action, ServiceStatus, TriggeredBy};
use crate::state::Core;

/// `POST /api/v1/services/{id}/change-package`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePackage {
    pub product_id: i64,
}

/// The module of the service's server, if it can do `capability`; else why not.
async fn module_that_can(
    state: &Core,
    row: &ServiceRow,
    capability: Capability,
) -> AppResult<String> {
    if !matches!(
        row.status(),
        ServiceStatus::Active | ServiceStatus::Suspended
    ) || row.panel_account_id.is_none()
    {
        return Err(AppError::conflict(format!(
            "cannot {} service {} ({}): it needs an active or suspended account",
            capability.as_str(),
            row.id,
            row.status
        )));
    }
    let server_id = row
        .server_id
        .ok_or_else(|| AppError::conflict("the service is on no server"))?;
    let module = servers::get(&state.pool, server_id).await?.module;
    if !modules::can(state, &module, capability) {
        return Err(AppError::conflict(format!(
            "the {module} module cannot {}; do it on the Panel",
            capability.as_str()
        )));
    }
    Ok(module)
}

/// Queues a package change to `input.product_id` (same module); returns the job id.
pub async fn change_package(
    state: &Core,
    id: i64,
    input: &ChangePackage,
    by: TriggeredBy,
) -> AppResult<String> {
    let mut tx = state.pool.begin().await.map_err(AppError::from)?;
    let row = lock(&mut tx, id).await?;
    let module = module_that_can(state, &row, Capability::ChangePackage).await?;
    let product = catalog::get_product(&mut *tx, input.product_id)
        .await
        .map_err(|_| AppError::field("product_id", "no such product"))?;
    if product.module != module {
        return Err(AppError::field(
            "product_id",
            format!(
                "product {} uses the {} module; the service's server uses {module}",
                product.name, product.module
            ),
        ));
    }
    if product.id == row.product_id {
        return Err(AppError::field(
            "product_id",
            "the service already has this product",
        ));
    }
    // updated_at moves when the Panel confirms (the admin page watches for it).
    sqlx::query!(
        "UPDATE services SET pending_product_id = $2 WHERE id = $1",
        row.id,
        product.id
    )
    .execute(&mut *tx)
    .await?;
    let job = queue_action(&mut tx, state, &row, Action::ChangePackage, by).await?;
    tx.commit().await.map_err(AppError::from)?;
    Ok(job)
}

/// Queues a new generated password for the account; returns the job id.
pub async fn change_password(state: &Core, id: i64, by: TriggeredBy) -> AppResult<String> {
    let mut tx = state.pool.begin().await.map_err(AppError::from)?;
    let row = lock(&mut tx, id).await?;
    module_that_can(state, &row, Capability::ChangePassword).await?;
    let job = queue_action(&mut tx, state, &row, Action::ChangePassword, by).await?;
    tx.commit().await.map_err(AppError::from)?;
    Ok(job)
}
