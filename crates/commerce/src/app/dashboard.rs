//! Counts for the admin dashboard.

use sqlx::PgExecutor;

use crate::app::error::AppResult;

/// How many services are in each status (statuses with none are absent).
pub async fn services_by_status(db: impl PgExecutor<'_>) -> AppResult<Vec<(String, i64)>> {
    Ok(sqlx::query!(
        r#"SELECT status, count(*) as "n!" FROM services GROUP BY status ORDER BY status"#
    )
    .fetch_all(db)
    .await?
    .into_iter()
    .map(|r| (r.status, r.n))
    .collect())
}

/// How many enabled servers have each health status.
pub async fn servers_by_health(db: impl PgExecutor<'_>) -> AppResult<Vec<(String, i64)>> {
    Ok(sqlx::query!(
        r#"SELECT health_status, count(*) as "n!" FROM servers WHERE enabled GROUP BY health_status ORDER BY health_status"#
    )
    .fetch_all(db)
    .await?
    .into_iter()
    .map(|r| (r.health_status, r.n))
    .collect())
}

/// How many services the Panel disagrees with (drift at the last sync).
pub async fn services_with_drift(db: impl PgExecutor<'_>) -> AppResult<i64> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) as "n!" FROM services WHERE drift IS NOT NULL AND status <> 'terminated'"#
    )
    .fetch_one(db)
    .await?)
}
