//! Counts for the admin dashboard.

use sqlx::PgExecutor;

use crate::app::error::AppResult;

/// How many services are in each status (statuses with none are absent).
pub async fn services_by_status(db: impl PgExecutor<'_>) -> AppResult<Vec<(String, i64)>> {
    Ok(
        sqlx::query_as("SELECT status, count(*) FROM services GROUP BY status ORDER BY status")
            .fetch_all(db)
            .await?,
    )
}

/// How many enabled servers have each health status.
pub async fn servers_by_health(db: impl PgExecutor<'_>) -> AppResult<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT health_status, count(*) FROM servers WHERE enabled GROUP BY health_status ORDER BY health_status",
    )
    .fetch_all(db)
    .await?)
}

/// How many services the Panel disagrees with (drift at the last sync).
pub async fn services_with_drift(db: impl PgExecutor<'_>) -> AppResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM services WHERE drift IS NOT NULL AND status <> 'terminated'",
    )
    .fetch_one(db)
    .await?)
}
