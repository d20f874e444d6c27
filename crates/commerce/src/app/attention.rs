//! Dismissing a failed service from the Needs attention page: a row that
//! says who dismissed which failure and when. Nothing is deleted; the
//! service shows again as soon as it fails anew (see `services::DISMISSED`).

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use sqlx::types::Json;

use crate::app::error::{AppError, AppResult};

/// A dismissal still in effect (the service's failure unchanged since).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Dismissed {
    pub service_id: i64,
    pub domain: String,
    pub admin_email: String,
    pub created_at: DateTime<Utc>,
}

/// Takes failed service `id` off the page until its next failure, recording
/// the admin and the failure dismissed.
pub async fn dismiss(
    db: impl PgExecutor<'_> + Copy,
    id: i64,
    admin_id: i64,
    admin_email: &str,
) -> AppResult<()> {
    let done = sqlx::query_scalar!(
        "INSERT INTO attention_dismissals (service_id, admin_id, admin_email, last_error)
         SELECT id, $2, $3, last_error FROM services
         WHERE id = $1 AND status = 'failed' AND last_error IS NOT NULL
         RETURNING id",
        id,
        admin_id,
        admin_email
    )
    .fetch_optional(db)
    .await?;
    if done.is_some() {
        return Ok(());
    }
    let status = sqlx::query_scalar!("SELECT status FROM services WHERE id = $1", id)
        .fetch_optional(db)
        .await?;
    match status {
        None => Err(AppError::NotFound("service")),
        Some(s) => Err(AppError::conflict(format!(
            "service {id} is {s}, not failed: there is nothing to dismiss (reload the page)"
        ))),
    }
}

/// The most recent dismissals still in effect, newest first, and how many
/// failed services are dismissed in all.
pub async fn dismissed(
    db: impl PgExecutor<'_> + Copy,
    limit: i64,
) -> AppResult<(Vec<Dismissed>, i64)> {
    let rows = sqlx::query_as!(
        Dismissed,
        r#"SELECT service_id as "service_id!", domain as "domain!", admin_email as "admin_email!", created_at as "created_at!" FROM (
             SELECT DISTINCT ON (s.id) s.id AS service_id, s.domain, d.admin_email, d.created_at
             FROM services s JOIN attention_dismissals d ON d.service_id = s.id AND d.last_error = s.last_error
             WHERE s.status = 'failed'
             ORDER BY s.id, d.id DESC) latest
         ORDER BY created_at DESC LIMIT $1"#,
        limit
    )
    .fetch_all(db)
    .await?;
    // The condition is `services::DISMISSED`, written out for the macro.
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) as "n!" FROM services WHERE status = 'failed' AND EXISTS (SELECT 1 FROM attention_dismissals d
             WHERE d.service_id = services.id AND d.last_error = services.last_error)"#
    )
    .fetch_one(db)
    .await?;
    Ok((rows, total))
}

/// A failed service as Needs attention groups it.
pub struct FailedService {
    pub id: i64,
    pub server_id: Option<i64>,
    pub domain: String,
    pub last_error: Option<Json<serde_json::Value>>,
    pub updated_at: DateTime<Utc>,
}

/// The failed services nobody dismissed (at most 5,000), by server, then
/// failure kind, newest first.
pub async fn failed(db: impl PgExecutor<'_>) -> AppResult<Vec<FailedService>> {
    // `NOT services::DISMISSED`, written out for the macro.
    Ok(sqlx::query_as!(
        FailedService,
        r#"SELECT id, server_id, domain, last_error as "last_error: Json<serde_json::Value>", updated_at
           FROM services
           WHERE status = 'failed' AND NOT EXISTS (SELECT 1 FROM attention_dismissals d
                 WHERE d.service_id = services.id AND d.last_error = services.last_error)
           ORDER BY server_id NULLS FIRST, last_error->>'kind', id DESC LIMIT 5000"#
    )
    .fetch_all(db)
    .await?)
}
