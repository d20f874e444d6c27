//! What the readiness check and the metrics endpoint read from the database:
//! applied migrations, queue depth by job type, servers by health.

use sqlx::PgExecutor;

use crate::app::error::AppResult;

/// How many of the app's migrations have been applied successfully.
pub async fn migrations_applied(db: impl PgExecutor<'_>) -> AppResult<i64> {
    Ok(
        sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM _sqlx_migrations WHERE success"#)
            .fetch_one(db)
            .await?,
    )
}

/// Jobs waiting or running, by job type (the queue's name).
pub async fn queue_depth(db: impl PgExecutor<'_>) -> AppResult<Vec<(String, i64)>> {
    let rows = sqlx::query!(
        r#"SELECT job_type AS "job_type!", count(*) AS "n!" FROM apalis.jobs
           WHERE status IN ('Pending', 'Queued', 'Running') GROUP BY job_type"#
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.job_type, r.n)).collect())
}

/// Servers by last known health status.
pub async fn servers_by_health(db: impl PgExecutor<'_>) -> AppResult<Vec<(String, i64)>> {
    let rows = sqlx::query!(
        r#"SELECT health_status, count(*) AS "n!" FROM servers GROUP BY health_status"#
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.health_status, r.n)).collect())
}
