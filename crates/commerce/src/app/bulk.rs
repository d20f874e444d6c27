//! Bulk retry: queue a retry for every service a services-list filter selects
//! (plus the last error's kind), or for every failed service a filtered log
//! view names, in one transaction, skipping services whose status allows no
//! retry and services another request holds right now.

use serde::{Deserialize, Serialize};

use crate::app::error::{AppError, AppResult};
use crate::app::log::{self, LogFilter};
use crate::app::services::{self, SERVICE_COLUMNS, ServiceFilter, ServiceRow};
use crate::domain::TriggeredBy;
use crate::state::Core;

/// At most this many services per request; ask again for the rest.
pub const BULK_LIMIT: i64 = 5_000;

/// The filters of a bulk retry, as JSON. Unknown fields are refused: a
/// misspelt filter must not widen a bulk action to every failed service.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryFilter {
    pub status: Option<String>,
    pub server_id: Option<i64>,
    pub product_id: Option<i64>,
    pub client_id: Option<i64>,
    pub q: Option<String>,
    pub kind: Option<String>,
}

impl From<RetryFilter> for ServiceFilter {
    fn from(f: RetryFilter) -> Self {
        ServiceFilter {
            status: f.status,
            server_id: f.server_id,
            product_id: f.product_id,
            client_id: f.client_id,
            q: f.q,
            kind: f.kind,
            ..Default::default()
        }
    }
}

/// What was queued.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Queued {
    pub count: usize,
    pub job_ids: Vec<String>,
}

/// How many services a bulk retry with `filter` would consider (capped like
/// list counts): the figure a confirmation states.
pub async fn count_matching(db: &sqlx::PgPool, filter: &ServiceFilter) -> AppResult<i64> {
    let filter = with_default_status(filter);
    let push = services::filter_sql(&filter)?;
    Ok(crate::app::page::capped_count(db, "services", push).await?)
}

fn with_default_status(filter: &ServiceFilter) -> ServiceFilter {
    let mut filter = filter.clone();
    if filter.status.is_none() {
        filter.status = Some("failed".into());
    }
    filter
}

/// Queues a retry for each service `filter` selects. Without a status filter
/// only failed services are retried. Returns the jobs queued.
pub async fn retry_matching(
    state: &Core,
    filter: &ServiceFilter,
    by: TriggeredBy,
) -> AppResult<Queued> {
    let filter = with_default_status(filter);
    let push = services::filter_sql(&filter)?;
    retry_selected(state, push, by).await
}

/// The services the log rows `filter` selects belong to that are failed
/// now, as SQL after `FROM services`: each service once, however many rows.
fn logged_failed_sql(
    filter: &LogFilter,
) -> AppResult<impl Fn(&mut sqlx::QueryBuilder<sqlx::Postgres>) + Clone + use<>> {
    let rows = log::filter_sql(filter)?;
    Ok(move |qb: &mut sqlx::QueryBuilder<sqlx::Postgres>| {
        qb.push(" WHERE status = 'failed' AND id IN (SELECT service_id FROM provisioning_log");
        rows(qb);
        qb.push(" AND service_id IS NOT NULL)");
    })
}

/// How many services "Retry all N like this" on a filtered log view would
/// retry (capped like list counts): those failed now among the rows' services.
pub async fn count_logged(db: &sqlx::PgPool, filter: &LogFilter) -> AppResult<i64> {
    let push = logged_failed_sql(filter)?;
    Ok(crate::app::page::capped_count(db, "services", push).await?)
}

/// Queues one retry for each service that a log row `filter` selects belongs
/// to and that is failed now (never an active one, never twice).
pub async fn retry_logged(state: &Core, filter: &LogFilter, by: TriggeredBy) -> AppResult<Queued> {
    let push = logged_failed_sql(filter)?;
    retry_selected(state, push, by).await
}

/// Queues a retry for each service `push` selects (after `FROM services`),
/// in one transaction, skipping services another request holds right now.
async fn retry_selected(
    state: &Core,
    push: impl Fn(&mut sqlx::QueryBuilder<sqlx::Postgres>),
    by: TriggeredBy,
) -> AppResult<Queued> {
    let mut tx = state.pool.begin().await?;
    let mut select = sqlx::QueryBuilder::new(format!("SELECT {SERVICE_COLUMNS} FROM services"));
    push(&mut select);
    select
        .push(" ORDER BY id LIMIT ")
        .push_bind(BULK_LIMIT)
        .push(" FOR UPDATE SKIP LOCKED");
    let rows: Vec<ServiceRow> = select.build_query_as().fetch_all(&mut *tx).await?;
    let mut job_ids = Vec::with_capacity(rows.len());
    for row in &rows {
        // A conflict means "nothing to retry here" (e.g. a failed terminate).
        let action = match services::retry_action(&mut *tx, row).await {
            Ok(action) => action,
            Err(AppError::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        };
        if services::allowed(row, action).is_err() {
            continue;
        }
        job_ids.push(services::queue_action(&mut tx, state, row, action, by).await?);
    }
    tx.commit().await?;
    tracing::info!(count = job_ids.len(), triggered_by = %by, "bulk retry queued");
    Ok(Queued {
        count: job_ids.len(),
        job_ids,
    })
}
