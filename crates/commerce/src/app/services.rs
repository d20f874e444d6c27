//! Services: reading and listing them, and asking for an action (create,
//! suspend, unsuspend, terminate, retry) that the status allows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{FromRow, PgExecutor};

use crate::app::error::{AppError, AppResult};
use crate::app::page::{Page, PageParams, PageQuery, empty_as_none, fetch_page};
use crate::domain::{Action, ServiceStatus, SuspendReason, TriggeredBy};
use crate::jobs::{self, JobArgs};
use crate::state::Core;

pub const SERVICE_COLUMNS: &str = "id, order_id, client_id, product_id, server_id, domain, username, status, \
    panel_account_id, last_error, create_outcome_unknown, created_at, updated_at, activated_at, suspended_at, terminated_at, \
    usage, panel_status, synced_at, suspension_reason, suspension_note, drift";

/// A service as stored (without its sealed password).
#[derive(Debug, Clone, FromRow)]
pub struct ServiceRow {
    pub id: i64,
    pub order_id: i64,
    pub client_id: i64,
    pub product_id: i64,
    pub server_id: Option<i64>,
    pub domain: String,
    pub username: String,
    /// Decoded as the enum: a status this build does not know fails the read.
    pub status: ServiceStatus,
    pub panel_account_id: Option<String>,
    pub last_error: Option<Json<serde_json::Value>>,
    pub create_outcome_unknown: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    pub suspended_at: Option<DateTime<Utc>>,
    pub terminated_at: Option<DateTime<Utc>>,
    pub usage: Option<Json<serde_json::Value>>,
    pub panel_status: Option<String>,
    pub synced_at: Option<DateTime<Utc>>,
    pub suspension_reason: Option<String>,
    pub suspension_note: Option<String>,
    pub drift: Option<String>,
}

impl ServiceRow {
    pub fn status(&self) -> ServiceStatus {
        self.status
    }
}

/// A service as the API shows it: never the password.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServiceView {
    pub id: i64,
    #[schema(value_type = crate::domain::ServiceStatus)]
    pub status: String,
    pub domain: String,
    pub username: String,
    pub order_id: i64,
    pub client_id: i64,
    pub product_id: i64,
    pub server_id: Option<i64>,
    pub panel_account_id: Option<String>,
    #[schema(value_type = Option<crate::domain::ProvisioningErrorSchema>)]
    pub last_error: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    pub suspended_at: Option<DateTime<Utc>>,
    pub terminated_at: Option<DateTime<Utc>>,
    /// `{disk_used_mb, disk_limit_mb, bandwidth_used_mb, synced_at}` from the
    /// last sync, or null.
    pub usage: Option<serde_json::Value>,
    /// What the Panel last said the account is (`active`, `suspended`).
    pub panel_status: Option<String>,
    /// Why it is (or is being) suspended: `overdue`, `abuse` or `other`.
    #[schema(value_type = Option<crate::domain::SuspendReason>)]
    pub suspension_reason: Option<String>,
    /// The admin's note on the suspension.
    pub suspension_note: Option<String>,
    /// Where the Panel disagreed with us at the last sync (null: it agreed).
    pub drift: Option<String>,
}

impl From<ServiceRow> for ServiceView {
    fn from(r: ServiceRow) -> Self {
        Self {
            id: r.id,
            status: r.status.to_string(),
            domain: r.domain,
            username: r.username,
            order_id: r.order_id,
            client_id: r.client_id,
            product_id: r.product_id,
            server_id: r.server_id,
            panel_account_id: r.panel_account_id,
            last_error: r.last_error.map(|j| j.0),
            created_at: r.created_at,
            updated_at: r.updated_at,
            activated_at: r.activated_at,
            suspended_at: r.suspended_at,
            terminated_at: r.terminated_at,
            usage: r.usage.map(|u| {
                let mut u = u.0;
                if let serde_json::Value::Object(m) = &mut u {
                    m.insert("synced_at".into(), serde_json::json!(r.synced_at));
                }
                u
            }),
            panel_status: r.panel_status,
            suspension_reason: r.suspension_reason,
            suspension_note: r.suspension_note,
            drift: r.drift,
        }
    }
}

pub async fn get(db: impl PgExecutor<'_>, id: i64) -> AppResult<ServiceRow> {
    sqlx::query_as!(
        ServiceRow,
        r#"SELECT id, order_id, client_id, product_id, server_id, domain, username, status as "status: ServiceStatus",
                panel_account_id, last_error as "last_error: Json<serde_json::Value>", create_outcome_unknown,
                created_at, updated_at, activated_at, suspended_at, terminated_at, usage as "usage: Json<serde_json::Value>",
                panel_status, synced_at, suspension_reason, suspension_note, drift
           FROM services WHERE id = $1"#,
        id
    )
    .fetch_optional(db)
    .await?
    .ok_or(AppError::NotFound("service"))
}

/// The service, its row locked for the rest of the transaction.
pub(crate) async fn lock(tx: &mut sqlx::PgConnection, id: i64) -> AppResult<ServiceRow> {
    sqlx::query_as!(
        ServiceRow,
        r#"SELECT id, order_id, client_id, product_id, server_id, domain, username, status as "status: ServiceStatus",
                panel_account_id, last_error as "last_error: Json<serde_json::Value>", create_outcome_unknown,
                created_at, updated_at, activated_at, suspended_at, terminated_at, usage as "usage: Json<serde_json::Value>",
                panel_status, synced_at, suspension_reason, suspension_note, drift
           FROM services WHERE id = $1 FOR UPDATE"#,
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AppError::NotFound("service"))
}

/// The service locked, unless a worker holds its lease (None then, or when
/// it does not exist).
pub(crate) async fn lock_idle(
    tx: &mut sqlx::PgConnection,
    id: i64,
) -> AppResult<Option<ServiceRow>> {
    Ok(sqlx::query_as!(
        ServiceRow,
        r#"SELECT id, order_id, client_id, product_id, server_id, domain, username, status as "status: ServiceStatus",
                panel_account_id, last_error as "last_error: Json<serde_json::Value>", create_outcome_unknown,
                created_at, updated_at, activated_at, suspended_at, terminated_at, usage as "usage: Json<serde_json::Value>",
                panel_status, synced_at, suspension_reason, suspension_note, drift
           FROM services WHERE id = $1 AND (lease_until IS NULL OR lease_until < now()) FOR UPDATE"#,
        id
    )
    .fetch_optional(&mut *tx)
    .await?)
}

/// The services of the orders `order_ids`, oldest first.
pub(crate) async fn of_orders(
    db: impl PgExecutor<'_>,
    order_ids: &[i64],
) -> AppResult<Vec<ServiceRow>> {
    Ok(sqlx::query_as!(
        ServiceRow,
        r#"SELECT id, order_id, client_id, product_id, server_id, domain, username, status as "status: ServiceStatus",
                panel_account_id, last_error as "last_error: Json<serde_json::Value>", create_outcome_unknown,
                created_at, updated_at, activated_at, suspended_at, terminated_at, usage as "usage: Json<serde_json::Value>",
                panel_status, synced_at, suspension_reason, suspension_note, drift
           FROM services WHERE order_id = ANY($1) ORDER BY id"#,
        order_ids
    )
    .fetch_all(db)
    .await?)
}

/// The services of an order, oldest first.
pub(crate) async fn of_order(db: impl PgExecutor<'_>, order_id: i64) -> AppResult<Vec<ServiceRow>> {
    Ok(sqlx::query_as!(
        ServiceRow,
        r#"SELECT id, order_id, client_id, product_id, server_id, domain, username, status as "status: ServiceStatus",
                panel_account_id, last_error as "last_error: Json<serde_json::Value>", create_outcome_unknown,
                created_at, updated_at, activated_at, suspended_at, terminated_at, usage as "usage: Json<serde_json::Value>",
                panel_status, synced_at, suspension_reason, suspension_note, drift
           FROM services WHERE order_id = $1 ORDER BY id"#,
        order_id
    )
    .fetch_all(db)
    .await?)
}

/// The pending services of an order whose product is set up on payment,
/// locked.
pub(crate) async fn lock_waiting_for_payment(
    tx: &mut sqlx::PgConnection,
    order_id: i64,
) -> AppResult<Vec<ServiceRow>> {
    Ok(sqlx::query_as!(
        ServiceRow,
        r#"SELECT s.id, s.order_id, s.client_id, s.product_id, s.server_id, s.domain, s.username, s.status as "status: ServiceStatus",
                s.panel_account_id, s.last_error as "last_error: Json<serde_json::Value>", s.create_outcome_unknown,
                s.created_at, s.updated_at, s.activated_at, s.suspended_at, s.terminated_at, s.usage as "usage: Json<serde_json::Value>",
                s.panel_status, s.synced_at, s.suspension_reason, s.suspension_note, s.drift
           FROM services s JOIN products p ON p.id = s.product_id
           WHERE s.order_id = $1 AND s.status = 'pending' AND p.auto_setup = 'on_payment' FOR UPDATE OF s"#,
        order_id
    )
    .fetch_all(&mut *tx)
    .await?)
}

/// A new service row (its id taken beforehand); None when `username` is
/// taken already.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert(
    tx: &mut sqlx::PgConnection,
    id: i64,
    order_id: i64,
    client_id: i64,
    product_id: i64,
    domain: &str,
    username: &str,
    password_sealed: &[u8],
    status: ServiceStatus,
) -> AppResult<Option<ServiceRow>> {
    Ok(sqlx::query_as!(
        ServiceRow,
        r#"INSERT INTO services (order_id, client_id, product_id, domain, username, password_sealed, status, id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT ON CONSTRAINT services_username_key DO NOTHING
           RETURNING id, order_id, client_id, product_id, server_id, domain, username, status as "status: ServiceStatus",
                panel_account_id, last_error as "last_error: Json<serde_json::Value>", create_outcome_unknown,
                created_at, updated_at, activated_at, suspended_at, terminated_at, usage as "usage: Json<serde_json::Value>",
                panel_status, synced_at, suspension_reason, suspension_note, drift"#,
        order_id,
        client_id,
        product_id,
        domain,
        username,
        password_sealed,
        status.as_str(),
        id
    )
    .fetch_optional(&mut *tx)
    .await?)
}

/// A service with the names its pages show: the read model of the polled
/// service panel and order progress, one statement instead of one per name.
#[derive(Debug, Clone, FromRow)]
pub struct ServiceDetail {
    #[sqlx(flatten)]
    pub service: ServiceRow,
    pub product_name: String,
    pub product_package: String,
    pub product_auto_setup: String,
    pub client_name: String,
    pub client_email: String,
    pub server_name: Option<String>,
    pub server_module: Option<String>,
    /// When the last welcome mail went out (none yet: `None`).
    pub welcome_sent_at: Option<DateTime<Utc>>,
}

/// Builds a [`ServiceDetail`] from a row of a detail query (the macros
/// cannot fill a flattened struct).
macro_rules! detail_of {
    ($r:expr) => {{
        let r = $r;
        ServiceDetail {
            service: ServiceRow {
                id: r.id,
                order_id: r.order_id,
                client_id: r.client_id,
                product_id: r.product_id,
                server_id: r.server_id,
                domain: r.domain,
                username: r.username,
                status: r.status,
                panel_account_id: r.panel_account_id,
                last_error: r.last_error,
                create_outcome_unknown: r.create_outcome_unknown,
                created_at: r.created_at,
                updated_at: r.updated_at,
                activated_at: r.activated_at,
                suspended_at: r.suspended_at,
                terminated_at: r.terminated_at,
                usage: r.usage,
                panel_status: r.panel_status,
                synced_at: r.synced_at,
                suspension_reason: r.suspension_reason,
                suspension_note: r.suspension_note,
                drift: r.drift,
            },
            product_name: r.product_name,
            product_package: r.product_package,
            product_auto_setup: r.product_auto_setup,
            client_name: r.client_name,
            client_email: r.client_email,
            server_name: r.server_name,
            server_module: r.server_module,
            welcome_sent_at: r.welcome_sent_at,
        }
    }};
}

/// One service with its product, client and server names.
pub async fn detail(db: impl PgExecutor<'_>, id: i64) -> AppResult<ServiceDetail> {
    let r = sqlx::query!(
        r#"SELECT s.id, s.order_id, s.client_id, s.product_id, s.server_id, s.domain, s.username, s.status as "status: ServiceStatus",
                s.panel_account_id, s.last_error as "last_error: Json<serde_json::Value>", s.create_outcome_unknown,
                s.created_at, s.updated_at, s.activated_at, s.suspended_at, s.terminated_at, s.usage as "usage: Json<serde_json::Value>",
                s.panel_status, s.synced_at, s.suspension_reason, s.suspension_note, s.drift,
                p.name AS product_name, p.package AS product_package, p.auto_setup AS product_auto_setup,
                c.name AS client_name, c.email AS client_email,
                sv.name AS "server_name?", sv.module AS "server_module?",
                (SELECT max(m.sent_at) FROM mail_outbox m WHERE m.service_id = s.id AND m.kind = 'welcome') AS welcome_sent_at
           FROM services s JOIN products p ON p.id = s.product_id JOIN clients c ON c.id = s.client_id
           LEFT JOIN servers sv ON sv.id = s.server_id
           WHERE s.id = $1"#,
        id
    )
    .fetch_optional(db)
    .await?
    .ok_or(AppError::NotFound("service"))?;
    Ok(detail_of!(r))
}

/// Every service of an order, oldest first, with their names.
pub async fn details_of_order(
    db: impl PgExecutor<'_>,
    order_id: i64,
) -> AppResult<Vec<ServiceDetail>> {
    Ok(sqlx::query!(
        r#"SELECT s.id, s.order_id, s.client_id, s.product_id, s.server_id, s.domain, s.username, s.status as "status: ServiceStatus",
                s.panel_account_id, s.last_error as "last_error: Json<serde_json::Value>", s.create_outcome_unknown,
                s.created_at, s.updated_at, s.activated_at, s.suspended_at, s.terminated_at, s.usage as "usage: Json<serde_json::Value>",
                s.panel_status, s.synced_at, s.suspension_reason, s.suspension_note, s.drift,
                p.name AS product_name, p.package AS product_package, p.auto_setup AS product_auto_setup,
                c.name AS client_name, c.email AS client_email,
                sv.name AS "server_name?", sv.module AS "server_module?",
                (SELECT max(m.sent_at) FROM mail_outbox m WHERE m.service_id = s.id AND m.kind = 'welcome') AS welcome_sent_at
           FROM services s JOIN products p ON p.id = s.product_id JOIN clients c ON c.id = s.client_id
           LEFT JOIN servers sv ON sv.id = s.server_id
           WHERE s.order_id = $1 ORDER BY s.id"#,
        order_id
    )
    .fetch_all(db)
    .await?
    .into_iter()
    .map(|r| detail_of!(r))
    .collect())
}

/// Filters of the services list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ServiceFilter {
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<crate::domain::ServiceStatus>)]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub server_id: Option<i64>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub product_id: Option<i64>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub client_id: Option<i64>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub order_id: Option<i64>,
    /// Domain or username prefix.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub q: Option<String>,
    /// The kind of the service's last error (`unauthorized`, `needs_attention`...).
    #[serde(default, deserialize_with = "empty_as_none")]
    pub kind: Option<String>,
    /// `1`/`true`: only services the Panel disagrees with.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub drift: Option<String>,
    /// `0`/`false`: leave out failed services an admin dismissed from Needs
    /// attention (their failure unchanged since); `1`/`true`: only those.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub dismissed: Option<String>,
    /// `page` and `per_page`, beside the filters in one query string.
    #[serde(flatten)]
    #[param(ignore)]
    pub paging: PageQuery,
}

impl ServiceFilter {
    pub fn page(&self) -> PageParams {
        self.paging.params()
    }
}

pub async fn list(
    db: impl PgExecutor<'_> + Copy,
    filter: &ServiceFilter,
    page: PageParams,
) -> AppResult<Page<ServiceView>> {
    let filters = filter_sql(filter)?;
    let rows = fetch_page::<ServiceRow>(db, SERVICE_COLUMNS, "services", filters, page).await?;
    Ok(rows.map(ServiceView::from))
}

/// The filters present, as SQL pushed after the `FROM services` (` WHERE ...`).
/// Only the filters present become SQL: no `($1 IS NULL OR ...)` that a
/// generic plan could turn into a full scan.
pub(crate) fn filter_sql(
    filter: &ServiceFilter,
) -> AppResult<impl Fn(&mut sqlx::QueryBuilder<sqlx::Postgres>) + Clone + use<>> {
    let status = filter
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    if let Some(s) = &status
        && ServiceStatus::parse(s).is_none()
    {
        return Err(AppError::field("status", format!("unknown status {s:?}")));
    }
    let kind = filter
        .kind
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned);
    if let Some(k) = &kind
        && !provisioning::FailureKind::ALL
            .iter()
            .any(|f| f.as_str() == k)
    {
        return Err(AppError::field("kind", format!("unknown error kind {k:?}")));
    }
    let q = filter
        .q
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(|q| {
            let escaped = q
                .to_ascii_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("{escaped}%")
        });
    let ids = [
        ("server_id", filter.server_id),
        ("product_id", filter.product_id),
        ("client_id", filter.client_id),
        ("order_id", filter.order_id),
    ];
    let drift = matches!(filter.drift.as_deref(), Some("1" | "true"));
    let dismissed = match filter.dismissed.as_deref() {
        None => None,
        Some("1" | "true") => Some(true),
        Some("0" | "false") => Some(false),
        Some(other) => {
            return Err(AppError::field(
                "dismissed",
                format!("use 0 or 1, not {other:?}"),
            ));
        }
    };
    Ok(move |qb: &mut sqlx::QueryBuilder<sqlx::Postgres>| {
        qb.push(" WHERE true");
        if let Some(s) = &status {
            qb.push(" AND status = ").push_bind(s.clone());
        }
        for (column, value) in ids {
            if let Some(v) = value {
                qb.push(format_args!(" AND {column} = ")).push_bind(v);
            }
        }
        if let Some(k) = &kind {
            qb.push(" AND last_error->>'kind' = ").push_bind(k.clone());
        }
        if drift {
            qb.push(" AND drift IS NOT NULL");
        }
        if let Some(d) = dismissed {
            qb.push(if d { " AND " } else { " AND NOT " })
                .push(DISMISSED);
        }
        if let Some(q) = &q {
            qb.push(" AND (lower(domain) LIKE ")
                .push_bind(q.clone())
                .push(" OR username LIKE ")
                .push_bind(q.clone())
                .push(")");
        }
    })
}

/// SQL (on `services`): an admin dismissed the service's current failure
/// from Needs attention. A new failure writes a new `last_error`, which no
/// dismissal matches.
pub const DISMISSED: &str = "EXISTS (SELECT 1 FROM attention_dismissals d
     WHERE d.service_id = services.id AND d.last_error = services.last_error)";

/// What an admin or API client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    Create,
    Suspend,
    Unsuspend,
    Terminate,
    Retry,
    Sync,
}

impl Requested {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "create" => Some(Self::Create),
            "suspend" => Some(Self::Suspend),
            "unsuspend" => Some(Self::Unsuspend),
            "terminate" => Some(Self::Terminate),
            "retry" => Some(Self::Retry),
            "sync" => Some(Self::Sync),
            _ => None,
        }
    }
}

/// A service action as a URL names it (`/services/{id}/{action}`), the one
/// parse the API and the admin UI share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceAction {
    /// Queued through the provisioner's lifecycle path.
    Lifecycle(Requested),
    ChangePackage,
    ChangePassword,
    ResendWelcome,
    Adopt,
}

impl ServiceAction {
    /// Every action name, as in the URL.
    pub const NAMES: &[&str] = &[
        "create",
        "suspend",
        "unsuspend",
        "terminate",
        "retry",
        "sync",
        "change-package",
        "change-password",
        "resend-welcome",
        "adopt",
    ];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "change-package" => Some(Self::ChangePackage),
            "change-password" => Some(Self::ChangePassword),
            "resend-welcome" => Some(Self::ResendWelcome),
            "adopt" => Some(Self::Adopt),
            _ => Requested::parse(s).map(Self::Lifecycle),
        }
    }

    /// What an admin reads in "… queued".
    pub fn label(self) -> &'static str {
        match self {
            Self::Lifecycle(Requested::Create) => "Create",
            Self::Lifecycle(Requested::Suspend) => "Suspend",
            Self::Lifecycle(Requested::Unsuspend) => "Unsuspend",
            Self::Lifecycle(Requested::Terminate) => "Terminate",
            Self::Lifecycle(Requested::Retry) => "Retry",
            Self::Lifecycle(Requested::Sync) => "Reading usage from the Panel",
            Self::ChangePackage => "Package change",
            Self::ChangePassword => "Password change",
            Self::ResendWelcome => "Welcome mail",
            Self::Adopt => "Adopting the Panel's account",
        }
    }
}

/// `POST /api/v1/services/{id}/suspend`: why, and a note (both optional).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Suspend {
    #[serde(default)]
    pub reason: Option<SuspendReason>,
    #[serde(default)]
    pub note: Option<String>,
}

/// `POST /api/v1/services/{id}/terminate`: the service's domain, typed back.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Terminate {
    #[serde(default)]
    pub confirm: Option<String>,
}

/// `POST /api/v1/services/{id}/unsuspend`: lift only a suspension for this reason.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Unsuspend {
    #[serde(default)]
    pub only_if_reason: Option<SuspendReason>,
}

/// What a suspend or unsuspend carries beyond the action itself.
#[derive(Debug, Clone, Default)]
pub enum Details {
    #[default]
    None,
    Suspend(Suspend),
    Unsuspend(Unsuspend),
}

/// The longest suspension note kept (the column's CHECK says the same).
const MAX_NOTE: usize = 500;

/// Records why a suspend was asked for, or refuses an unsuspend whose
/// `only_if_reason` differs from the service's reason (nothing is queued then).
async fn apply_details(
    tx: &mut sqlx::PgConnection,
    row: &ServiceRow,
    details: &Details,
) -> AppResult<()> {
    match details {
        Details::None => Ok(()),
        Details::Suspend(s) => {
            let note = s.note.as_deref().map(str::trim).filter(|n| !n.is_empty());
            if note.is_some_and(|n| n.chars().count() > MAX_NOTE) {
                return Err(AppError::field(
                    "note",
                    format!("at most {MAX_NOTE} characters"),
                ));
            }
            sqlx::query!(
                "UPDATE services SET suspension_reason = $2, suspension_note = $3 WHERE id = $1",
                row.id,
                s.reason.unwrap_or(SuspendReason::Other).as_str(),
                note
            )
            .execute(&mut *tx)
            .await?;
            Ok(())
        }
        Details::Unsuspend(u) => {
            let Some(want) = u.only_if_reason else {
                return Ok(());
            };
            match row.suspension_reason.as_deref() {
                Some(have) if have == want.as_str() => Ok(()),
                Some(have) => Err(AppError::conflict(format!(
                    "service {} is suspended for {have}, not {want}: nothing was sent to the Panel",
                    row.id
                ))),
                None => Err(AppError::conflict(format!(
                    "service {} is not suspended (for {want} or anything else): nothing was sent to the Panel",
                    row.id
                ))),
            }
        }
    }
}

/// The action a retry repeats: the last failed one, or create when no account exists.
pub(crate) async fn retry_action(db: impl PgExecutor<'_>, row: &ServiceRow) -> AppResult<Action> {
    if row.panel_account_id.is_none()
        && matches!(row.status(), ServiceStatus::Failed | ServiceStatus::Pending)
    {
        return Ok(Action::Create);
    }
    let last = sqlx::query_scalar!(
        "SELECT action FROM provisioning_log WHERE service_id = $1 AND status = 'failed'
           AND action IN ('create', 'suspend', 'unsuspend', 'terminate') ORDER BY id DESC LIMIT 1",
        row.id
    )
    .fetch_optional(db)
    .await?;
    match last.as_deref().and_then(Action::parse) {
        // Irreversible: only an explicit, confirmed terminate may run it again.
        Some(Action::Terminate) => Err(AppError::conflict(format!(
            "service {}'s last failed action is a terminate, which Retry never re-runs: terminate it again explicitly (with confirmation)",
            row.id
        ))),
        Some(a) if row.last_error.is_some() => Ok(a),
        _ => Err(AppError::conflict(format!(
            "service {} has no failed action to retry",
            row.id
        ))),
    }
}

/// Checks that `action` is allowed from the service's status, or says why not.
pub(crate) fn allowed(row: &ServiceRow, action: Action) -> AppResult<()> {
    use ServiceStatus as S;
    let status = row.status();
    let ok = match action {
        Action::Create => {
            matches!(status, S::Pending | S::Failed) && row.panel_account_id.is_none()
        }
        Action::Suspend => matches!(status, S::Active | S::Suspended),
        Action::Unsuspend => matches!(status, S::Suspended | S::Active),
        Action::Terminate => matches!(status, S::Active | S::Suspended | S::Failed | S::Pending),
        Action::ChangePackage | Action::ChangePassword => {
            matches!(status, S::Active | S::Suspended)
        }
        Action::Info => matches!(status, S::Active | S::Suspended),
        Action::TestConnection => false,
    };
    if ok {
        return Ok(());
    }
    let why = match (action, status) {
        (_, S::Provisioning) => {
            "an action is already in progress; wait for it to finish".to_owned()
        }
        (_, S::Terminated) => "it is terminated".to_owned(),
        (Action::Create, _) => {
            "it already has an account; create needs a pending or failed service".to_owned()
        }
        _ => format!("{action} needs an active or suspended service"),
    };
    Err(AppError::conflict(format!(
        "cannot {action} service {} ({status}): {why}",
        row.id
    )))
}

/// Queues `requested` for a service if its status allows it; returns the job id.
pub async fn request(
    state: &Core,
    id: i64,
    requested: Requested,
    by: TriggeredBy,
) -> AppResult<String> {
    let details = match requested {
        Requested::Suspend => Details::Suspend(Suspend::default()),
        _ => Details::None,
    };
    request_with(state, id, requested, &details, by).await
}

/// [`request`] with a suspend's reason or an unsuspend's condition.
pub async fn request_with(
    state: &Core,
    id: i64,
    requested: Requested,
    details: &Details,
    by: TriggeredBy,
) -> AppResult<String> {
    let mut tx = state.pool.begin().await.map_err(AppError::from)?;
    let row = lock(&mut tx, id).await?;
    let action = match requested {
        Requested::Create => Action::Create,
        Requested::Suspend => Action::Suspend,
        Requested::Unsuspend => Action::Unsuspend,
        Requested::Terminate => Action::Terminate,
        Requested::Retry => retry_action(&mut *tx, &row).await?,
        Requested::Sync => Action::Info,
    };
    allowed(&row, action)?;
    apply_details(&mut tx, &row, details).await?;
    let job_id = queue_action(&mut tx, state, &row, action, by).await?;
    tx.commit().await.map_err(AppError::from)?;
    Ok(job_id)
}

/// Marks the service busy (for creates) and enqueues the job, in `tx`.
pub async fn queue_action(
    tx: &mut sqlx::PgConnection,
    state: &Core,
    row: &ServiceRow,
    action: Action,
    by: TriggeredBy,
) -> AppResult<String> {
    // A service inserted for an on-order product is already marked busy.
    if action == Action::Create && row.status() != ServiceStatus::Provisioning {
        sqlx::query!(
            "UPDATE services SET status = 'provisioning', updated_at = now() WHERE id = $1",
            row.id
        )
        .execute(&mut *tx)
        .await?;
    }
    let job_id = jobs::enqueue(
        tx,
        action,
        JobArgs {
            service_id: row.id,
            attempt: 1,
            triggered_by: by,
        },
        None,
    )
    .await?;
    state.metrics.bump(action, |c| &c.enqueued);
    tracing::info!(service.id = row.id, job.id = %job_id, action = %action, triggered_by = %by, "provisioning queued");
    Ok(job_id)
}

/// Leases the service for a run of `action` until `lease` ends, naming this
/// process (`instance`). Free when its lease ran out, or when the process
/// holding it stopped beating for `stale` (killed): then its call slots go
/// too, in the same statement. A holder without a heartbeat row (never beat,
/// or stopped gracefully) keeps its lease until it runs out. None: another
/// run holds it (or the service is gone).
pub(crate) async fn lease(
    db: impl PgExecutor<'_>,
    id: i64,
    lease: std::time::Duration,
    instance: &str,
    stale: std::time::Duration,
) -> AppResult<Option<ServiceRow>> {
    Ok(sqlx::query_as!(
        ServiceRow,
        r#"WITH taken AS (
               UPDATE services SET lease_until = now() + make_interval(secs => $2), leased_by = $3
               WHERE id = $1 AND (lease_until IS NULL OR lease_until < now()
                     OR EXISTS (SELECT 1 FROM worker_heartbeats w WHERE w.worker_id = services.leased_by
                                AND w.seen_at < now() - make_interval(secs => $4)))
               RETURNING *),
           freed AS (
               UPDATE server_call_slots SET service_id = NULL, lease_until = NULL, updated_at = now()
               WHERE service_id = $1 AND EXISTS (SELECT 1 FROM taken))
           SELECT id AS "id!", order_id AS "order_id!", client_id AS "client_id!", product_id AS "product_id!",
                  server_id, domain AS "domain!", username AS "username!", status as "status!: ServiceStatus",
                  panel_account_id, last_error as "last_error: Json<serde_json::Value>",
                  create_outcome_unknown AS "create_outcome_unknown!",
                  created_at AS "created_at!", updated_at AS "updated_at!", activated_at, suspended_at, terminated_at,
                  usage as "usage: Json<serde_json::Value>",
                  panel_status, synced_at, suspension_reason, suspension_note, drift
           FROM taken"#,
        id,
        lease.as_secs_f64(),
        instance,
        stale.as_secs_f64(),
    )
    .fetch_optional(db)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_action_name_parses_to_its_own_action() {
        let parsed: Vec<ServiceAction> = ServiceAction::NAMES
            .iter()
            .map(|n| ServiceAction::parse(n).unwrap_or_else(|| panic!("{n} does not parse")))
            .collect();
        for (i, a) in parsed.iter().enumerate() {
            assert!(!parsed[..i].contains(a), "two names parse to {a:?}");
        }
        for bad in ["", "delete", "Suspend", "change_password"] {
            assert_eq!(ServiceAction::parse(bad), None, "{bad}");
        }
        assert_eq!(
            ServiceAction::parse("sync"),
            Some(ServiceAction::Lifecycle(Requested::Sync))
        );
    }
}
