//! The provisioning log: one row per attempt, written pending before the Panel
//! call and finished after it; read back with filters.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{FromRow, PgExecutor};

use crate::app::error::{AppError, AppResult};
use crate::app::page::{Page, PageParams, PageQuery, empty_as_none, fetch_page};
use crate::domain::{Action, FieldErrors, LogStatus, TriggeredBy};

#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct LogEntry {
    pub id: i64,
    pub service_id: Option<i64>,
    pub server_id: Option<i64>,
    pub module: String,
    #[schema(value_type = crate::domain::Action)]
    pub action: String,
    #[schema(value_type = crate::domain::LogStatus)]
    pub status: String,
    pub attempt: i32,
    pub http_status: Option<i32>,
    pub duration_ms: Option<i32>,
    #[schema(value_type = Option<crate::domain::ProvisioningErrorSchema>)]
    pub error: Option<Json<serde_json::Value>>,
    pub message: Option<String>,
    #[schema(value_type = crate::domain::TriggeredBy)]
    pub triggered_by: String,
    pub job_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// An entry with its redacted request and its response.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct LogDetail {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub entry: LogEntry,
    #[schema(value_type = Option<Object>)]
    pub request: Option<Json<serde_json::Value>>,
    #[schema(value_type = Option<Object>)]
    pub response: Option<Json<serde_json::Value>>,
}

const COLUMNS: &str = "id, service_id, server_id, module, action, status, attempt, http_status, duration_ms, error, \
    message, triggered_by, job_id, created_at, finished_at";

/// A new row, before the outcome is known.
pub struct NewEntry<'a> {
    pub service_id: Option<i64>,
    pub server_id: Option<i64>,
    pub module: &'a str,
    pub action: Action,
    pub attempt: u32,
    pub triggered_by: TriggeredBy,
    pub job_id: Option<&'a str>,
}

pub async fn start(db: impl PgExecutor<'_>, e: &NewEntry<'_>) -> AppResult<i64> {
    Ok(sqlx::query_scalar!(
        "INSERT INTO provisioning_log (service_id, server_id, module, action, attempt, triggered_by, job_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        e.service_id,
        e.server_id,
        e.module,
        e.action.as_str(),
        i32::try_from(e.attempt).unwrap_or(i32::MAX),
        e.triggered_by.as_str(),
        e.job_id
    )
    .fetch_one(db)
    .await?)
}

/// The outcome of one attempt.
pub struct Finish<'a> {
    pub status: LogStatus,
    pub http_status: Option<u16>,
    pub request: Option<&'a serde_json::Value>,
    pub response: Option<&'a serde_json::Value>,
    pub error: Option<&'a serde_json::Value>,
    pub message: &'a str,
    pub duration_ms: u64,
}

/// Finishes a pending row; false when it was already finished (a duplicate run).
pub async fn finish(db: impl PgExecutor<'_>, id: i64, f: &Finish<'_>) -> AppResult<bool> {
    let error_kind = f.error.and_then(|e| e.get("kind")).and_then(|k| k.as_str());
    let done = sqlx::query!(
        "UPDATE provisioning_log SET status = $2, http_status = $3, request = $4, response = $5, error = $6,
                error_kind = $7, message = $8, duration_ms = $9, finished_at = now(), updated_at = now()
         WHERE id = $1 AND status = 'pending'",
        id,
        f.status.as_str(),
        f.http_status.map(i32::from),
        f.request,
        f.response,
        f.error,
        error_kind,
        f.message,
        i32::try_from(f.duration_ms).unwrap_or(i32::MAX)
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Finishes a pending create row, activates its service and writes its
/// welcome-mail outbox row (key `mail_key`), in one statement.
pub async fn finish_activating(
    db: impl PgExecutor<'_>,
    id: i64,
    f: &Finish<'_>,
    service_id: i64,
    panel_account_id: Option<&str>,
    mail_key: &str,
) -> AppResult<()> {
    sqlx::query!(
        "WITH done AS (
             UPDATE provisioning_log SET status = $2, http_status = $3, request = $4, response = $5, error = $6,
                    error_kind = $7, message = $8, duration_ms = $9, finished_at = now(), updated_at = now()
             WHERE id = $1 AND status = 'pending' RETURNING id),
         mail AS (
             INSERT INTO mail_outbox (service_id, kind, recipient, key)
             SELECT s.id, 'welcome', c.email, $12 FROM services s JOIN clients c ON c.id = s.client_id
             WHERE s.id = $10)
         UPDATE services SET status = 'active', panel_account_id = $11, activated_at = now(), last_error = NULL,
                create_outcome_unknown = false, lease_until = NULL, updated_at = now()
         WHERE id = $10",
        id,
        f.status.as_str(),
        f.http_status.map(i32::from),
        f.request,
        f.response,
        f.error,
        f.error.and_then(|e| e.get("kind")).and_then(|k| k.as_str()),
        f.message,
        i32::try_from(f.duration_ms).unwrap_or(i32::MAX),
        service_id,
        panel_account_id,
        mail_key
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Writes a finished row in one go (outcomes decided without a Panel call).
pub async fn record(
    conn: &mut sqlx::PgConnection,
    e: &NewEntry<'_>,
    f: &Finish<'_>,
) -> AppResult<i64> {
    let id = start(&mut *conn, e).await?;
    finish(&mut *conn, id, f).await?;
    Ok(id)
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct LogFilter {
    #[serde(default, deserialize_with = "empty_as_none")]
    pub service_id: Option<i64>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub server_id: Option<i64>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub action: Option<String>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub status: Option<String>,
    /// RFC 3339, e.g. 2026-11-22T10:00:00Z.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub since: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub until: Option<DateTime<Utc>>,
    /// `page` and `per_page`, beside the filters in one query string.
    #[serde(flatten)]
    pub paging: PageQuery,
}

impl LogFilter {
    pub fn page(&self) -> PageParams {
        self.paging.params()
    }
}

/// The log filters as a query string carries them, from the API and the log
/// viewer's form alike: blank means absent, an id may be written `#12`, a time
/// is RFC 3339 or a `datetime-local` value (taken as UTC).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    #[serde(default)]
    #[param(value_type = Option<i64>)]
    pub service_id: String,
    #[serde(default)]
    #[param(value_type = Option<i64>)]
    pub server_id: String,
    #[serde(default)]
    #[param(value_type = Option<crate::domain::Action>)]
    pub action: String,
    #[serde(default)]
    #[param(value_type = Option<crate::domain::LogStatus>)]
    pub status: String,
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: String,
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: String,
    #[serde(default)]
    #[param(value_type = Option<i64>)]
    pub page: String,
    #[serde(default)]
    #[param(value_type = Option<i64>)]
    pub per_page: String,
}

impl LogQuery {
    /// The filter, and a message for each value that could not be read (that
    /// filter is left out). Unknown actions and statuses are refused by [`list`].
    pub fn parse(&self) -> (LogFilter, FieldErrors) {
        let mut errors = FieldErrors::default();
        let filter = LogFilter {
            service_id: parse_id(&self.service_id, "service_id", &mut errors),
            server_id: parse_id(&self.server_id, "server_id", &mut errors),
            action: Some(self.action.trim().to_owned()).filter(|a| !a.is_empty()),
            status: Some(self.status.trim().to_owned()).filter(|s| !s.is_empty()),
            since: parse_time(&self.since, "since", &mut errors),
            until: parse_time(&self.until, "until", &mut errors),
            paging: PageQuery {
                page: parse_number(&self.page, "page", &mut errors),
                per_page: parse_number(&self.per_page, "per_page", &mut errors),
            },
        };
        (filter, errors)
    }
}

fn parse_number(raw: &str, field: &str, errors: &mut FieldErrors) -> Option<i64> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let n = raw.parse().ok();
    if n.is_none() {
        errors.add(field, "enter a whole number");
    }
    n
}

fn parse_id(raw: &str, field: &str, errors: &mut FieldErrors) -> Option<i64> {
    parse_number(raw.trim().trim_start_matches('#'), field, errors)
}

fn parse_time(raw: &str, field: &str, errors: &mut FieldErrors) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let parsed = raw.parse::<DateTime<Utc>>().ok().or_else(|| {
        ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
            .iter()
            .find_map(|f| chrono::NaiveDateTime::parse_from_str(raw, f).ok())
            .map(|n| n.and_utc())
    });
    if parsed.is_none() {
        errors.add(
            field,
            "use a date and time like 2026-11-22T10:00 (UTC) or RFC 3339",
        );
    }
    parsed
}

pub async fn list(
    db: impl PgExecutor<'_> + Copy,
    f: &LogFilter,
    page: PageParams,
) -> AppResult<Page<LogEntry>> {
    Ok(fetch_page(db, COLUMNS, "provisioning_log", filter_sql(f)?, page).await?)
}

/// The filters present, as SQL pushed after `FROM provisioning_log`
/// (` WHERE ...`, unqualified columns). Only the filters present become SQL.
pub(crate) fn filter_sql(
    f: &LogFilter,
) -> AppResult<impl Fn(&mut sqlx::QueryBuilder<sqlx::Postgres>) + Clone + use<>> {
    let action = f
        .action
        .as_deref()
        .filter(|a| !a.is_empty())
        .map(str::to_owned);
    let status = f
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    if let Some(a) = &action
        && Action::parse(a).is_none()
    {
        return Err(AppError::field("action", format!("unknown action {a:?}")));
    }
    if let Some(s) = &status
        && LogStatus::parse(s).is_none()
    {
        return Err(AppError::field("status", format!("unknown status {s:?}")));
    }
    let ids = [("service_id", f.service_id), ("server_id", f.server_id)];
    let (since, until) = (f.since, f.until);
    Ok(move |qb: &mut sqlx::QueryBuilder<sqlx::Postgres>| {
        qb.push(" WHERE true");
        for (column, value) in ids {
            if let Some(v) = value {
                qb.push(format_args!(" AND {column} = ")).push_bind(v);
            }
        }
        for (column, value) in [("action", &action), ("status", &status)] {
            if let Some(v) = value {
                qb.push(format_args!(" AND {column} = "))
                    .push_bind(v.clone());
            }
        }
        if let Some(since) = since {
            qb.push(" AND created_at >= ").push_bind(since);
        }
        if let Some(until) = until {
            qb.push(" AND created_at < ").push_bind(until);
        }
    })
}

/// Builds a [`LogEntry`] from a row of a query! that selects its columns.
macro_rules! entry_of {
    ($r:expr) => {
        LogEntry {
            id: $r.id,
            service_id: $r.service_id,
            server_id: $r.server_id,
            module: $r.module,
            action: $r.action,
            status: $r.status,
            attempt: $r.attempt,
            http_status: $r.http_status,
            duration_ms: $r.duration_ms,
            error: $r.error,
            message: $r.message,
            triggered_by: $r.triggered_by,
            job_id: $r.job_id,
            created_at: $r.created_at,
            finished_at: $r.finished_at,
        }
    };
}

/// A service's latest `limit` entries, newest first, each with its server's
/// name: the service page's history in one statement (no count, no second
/// read for the names).
pub async fn recent_of_service(
    db: impl PgExecutor<'_>,
    service_id: i64,
    limit: i64,
) -> AppResult<Vec<(LogEntry, Option<String>)>> {
    let rows = sqlx::query!(
        r#"SELECT l.id, l.service_id, l.server_id, l.module, l.action, l.status, l.attempt, l.http_status,
                  l.duration_ms, l.error as "error: Json<serde_json::Value>", l.message, l.triggered_by, l.job_id,
                  l.created_at, l.finished_at, sv.name AS "server_name?"
           FROM provisioning_log l LEFT JOIN servers sv ON sv.id = l.server_id
           WHERE l.service_id = $1 ORDER BY l.id DESC LIMIT $2"#,
        service_id,
        limit
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let name = r.server_name;
            (entry_of!(r), name)
        })
        .collect())
}

pub async fn get(db: impl PgExecutor<'_>, id: i64) -> AppResult<LogDetail> {
    let r = sqlx::query!(
        r#"SELECT id, service_id, server_id, module, action, status, attempt, http_status, duration_ms,
                  error as "error: Json<serde_json::Value>", message, triggered_by, job_id, created_at, finished_at,
                  request as "request: Json<serde_json::Value>", response as "response: Json<serde_json::Value>"
           FROM provisioning_log WHERE id = $1"#,
        id
    )
    .fetch_optional(db)
    .await?
    .ok_or(AppError::NotFound("log entry"))?;
    Ok(LogDetail {
        entry: entry_of!(r),
        request: r.request,
        response: r.response,
    })
}
