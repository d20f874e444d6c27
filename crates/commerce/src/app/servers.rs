//! Servers: validated create/update with secrets sealed at rest, listing,
//! health records, and placement of new accounts within a group.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use provisioning::{Credentials, InputType, ProvisioningModule};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{FromRow, PgExecutor};

use crate::app::error::{AppError, AppResult};
use crate::app::page::{Page, PageParams};
use crate::app::tls::ServerTls;
use crate::crypto::{Binding, Sealer};
use crate::domain::{FieldErrors, parse_name};
use crate::state::{Core, NameList};

pub const SECRETS_PURPOSE: &str = "servers.secrets";

/// What a server's sealed secrets are bound to: the row and its `api_url`.
pub fn secrets_binding(id: i64, fields: &BTreeMap<String, String>) -> Binding<'_> {
    Binding::new(
        SECRETS_PURPOSE,
        id,
        fields
            .get("api_url")
            .map(String::as_str)
            .unwrap_or_default(),
    )
}

/// A server as stored.
#[derive(Debug, Clone, FromRow)]
pub struct ServerRow {
    pub id: i64,
    pub name: String,
    pub module: String,
    pub group_id: i64,
    pub credentials: Json<BTreeMap<String, String>>,
    pub secrets: Option<Vec<u8>>,
    pub secrets_set: Vec<String>,
    pub max_accounts: i32,
    pub account_count: i32,
    pub max_concurrent: i32,
    pub enabled: bool,
    pub health_status: String,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub latency_ms: Option<i32>,
    pub last_error: Option<Json<serde_json::Value>>,
    pub panel_name: Option<String>,
    pub panel_version: Option<String>,
    pub health_since: Option<DateTime<Utc>>,
    pub health_reason: Option<String>,
    pub tls_mode: String,
    pub tls_sha256: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ServerRow {
    /// How this server's certificate is trusted.
    pub fn tls(&self) -> ServerTls {
        ServerTls {
            mode: self.tls_mode.clone(),
            sha256: self.tls_sha256.clone(),
        }
    }
}

/// A server as the API and UI show it: never a secret value.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServerView {
    pub id: i64,
    pub name: String,
    pub module: String,
    pub group_id: i64,
    pub max_accounts: i32,
    pub account_count: i32,
    /// At most this many Panel calls in flight to the server, across workers.
    pub max_concurrent: i32,
    pub enabled: bool,
    pub credentials: BTreeMap<String, String>,
    pub secrets_set: Vec<String>,
    pub tls: ServerTls,
    pub health: HealthView,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HealthView {
    #[schema(value_type = crate::domain::Health)]
    pub status: String,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub latency_ms: Option<i32>,
    #[schema(value_type = Option<crate::domain::ProvisioningErrorSchema>)]
    pub last_error: Option<serde_json::Value>,
    pub panel_name: Option<String>,
    pub panel_version: Option<String>,
    /// When the server entered its current status.
    pub since: Option<DateTime<Utc>>,
    /// Why (e.g. which create failure took it out of placement).
    pub reason: Option<String>,
}

impl From<ServerRow> for ServerView {
    fn from(r: ServerRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            module: r.module,
            group_id: r.group_id,
            max_accounts: r.max_accounts,
            account_count: r.account_count,
            max_concurrent: r.max_concurrent,
            enabled: r.enabled,
            tls: ServerTls {
                mode: r.tls_mode,
                sha256: r.tls_sha256,
            },
            credentials: r.credentials.0,
            secrets_set: r.secrets_set,
            health: HealthView {
                status: r.health_status,
                last_checked_at: r.last_checked_at,
                latency_ms: r.latency_ms,
                last_error: r.last_error.map(|j| j.0),
                panel_name: r.panel_name,
                panel_version: r.panel_version,
                since: r.health_since,
                reason: r.health_reason,
            },
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// What an admin submits for a server. Blank secret fields keep the stored value.
#[derive(Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerInput {
    pub name: String,
    pub module: String,
    pub group_id: i64,
    #[serde(default)]
    pub max_accounts: i64,
    /// Default [`DEFAULT_MAX_CONCURRENT`].
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: i64,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub credentials: BTreeMap<String, String>,
    /// Default `verify`.
    #[serde(default)]
    pub tls: Option<ServerTls>,
}

fn yes() -> bool {
    true
}

/// Panel calls in flight to one server unless its settings say otherwise.
pub const DEFAULT_MAX_CONCURRENT: i64 = 4;

fn default_max_concurrent() -> i64 {
    DEFAULT_MAX_CONCURRENT
}

/// A partial update (PATCH): absent fields keep their value.
#[derive(Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerPatch {
    pub name: Option<String>,
    pub module: Option<String>,
    pub group_id: Option<i64>,
    pub max_accounts: Option<i64>,
    pub max_concurrent: Option<i64>,
    pub enabled: Option<bool>,
    pub credentials: Option<BTreeMap<String, String>>,
    pub tls: Option<ServerTls>,
}

/// Submitted credentials for `Debug`: field names only, never values (which
/// fields are secret depends on the module).
pub struct CredentialNames<'a>(pub &'a BTreeMap<String, String>);

impl std::fmt::Debug for CredentialNames<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "[redacted]")))
            .finish()
    }
}

impl std::fmt::Debug for ServerInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerInput")
            .field("name", &self.name)
            .field("module", &self.module)
            .field("group_id", &self.group_id)
            .field("max_accounts", &self.max_accounts)
            .field("max_concurrent", &self.max_concurrent)
            .field("enabled", &self.enabled)
            .field("credentials", &CredentialNames(&self.credentials))
            .field("tls", &self.tls)
            .finish()
    }
}

impl std::fmt::Debug for ServerPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerPatch")
            .field("name", &self.name)
            .field("module", &self.module)
            .field("group_id", &self.group_id)
            .field("max_accounts", &self.max_accounts)
            .field("enabled", &self.enabled)
            .field(
                "credentials",
                &self.credentials.as_ref().map(CredentialNames),
            )
            .field("tls", &self.tls)
            .finish()
    }
}

pub async fn get(db: impl PgExecutor<'_>, id: i64) -> AppResult<ServerRow> {
    sqlx::query_as!(
        ServerRow,
        r#"SELECT id, name, module, group_id, credentials as "credentials: Json<BTreeMap<String, String>>", secrets, secrets_set, max_accounts, account_count,
                max_concurrent, enabled, health_status, last_checked_at, latency_ms, last_error as "last_error: Json<serde_json::Value>",
                panel_name, panel_version, health_since, health_reason, tls_mode, tls_sha256, created_at, updated_at
           FROM servers WHERE id = $1"#,
        id
    )
    .fetch_optional(db)
    .await?
    .ok_or(AppError::NotFound("server"))
}

pub async fn list(db: impl PgExecutor<'_>, page: PageParams) -> AppResult<Page<ServerView>> {
    let rows = sqlx::query_as!(
        ServerRow,
        r#"SELECT id, name, module, group_id, credentials as "credentials: Json<BTreeMap<String, String>>", secrets, secrets_set, max_accounts, account_count,
                max_concurrent, enabled, health_status, last_checked_at, latency_ms, last_error as "last_error: Json<serde_json::Value>",
                panel_name, panel_version, health_since, health_reason, tls_mode, tls_sha256, created_at, updated_at
           FROM servers ORDER BY name, id LIMIT $1 OFFSET $2"#,
        page.limit(),
        page.offset()
    )
    .fetch_all(db)
    .await?;
    Ok(page.with(rows.into_iter().map(ServerView::from).collect()))
}

pub async fn count(db: impl PgExecutor<'_>) -> AppResult<i64> {
    Ok(
        sqlx::query_scalar!(r#"SELECT count(*) as "n!" FROM servers"#)
            .fetch_one(db)
            .await?,
    )
}

/// All servers, for the list page and the sweep.
pub async fn all(db: impl PgExecutor<'_>) -> AppResult<Vec<ServerRow>> {
    Ok(sqlx::query_as!(
        ServerRow,
        r#"SELECT id, name, module, group_id, credentials as "credentials: Json<BTreeMap<String, String>>", secrets, secrets_set, max_accounts, account_count,
                max_concurrent, enabled, health_status, last_checked_at, latency_ms, last_error as "last_error: Json<serde_json::Value>",
                panel_name, panel_version, health_since, health_reason, tls_mode, tls_sha256, created_at, updated_at
           FROM servers ORDER BY name, id"#
    )
    .fetch_all(db)
    .await?)
}

/// Every server's id and name, by name, read now (see [`menu`]).
async fn name_list(db: impl PgExecutor<'_>) -> AppResult<NameList> {
    Ok(
        sqlx::query!("SELECT id, name FROM servers ORDER BY name, id")
            .fetch_all(db)
            .await?
            .into_iter()
            .map(|r| (r.id, r.name))
            .collect(),
    )
}

/// How long [`menu`] keeps the server menu.
pub const MENU_FOR: Duration = Duration::from_secs(5);

/// Every server's id and name, by name: the log viewer's server menu, kept
/// for [`MENU_FOR`] in [`Core::server_menu`]. The log viewer is the page
/// admins reload and page through, and the menu was a round trip on every
/// view, an eighth of the page's cost (BENCHMARKS.md, run 15). A write
/// through [`create`], [`update`], [`replace`] or [`delete`] in this process
/// clears it at once; another instance's write shows here within
/// [`MENU_FOR`]. The menu only names servers: it decides nothing, and every
/// list under it is read fresh.
pub async fn menu(state: &Core) -> AppResult<NameList> {
    let generation = match state.server_menu.get(MENU_FOR) {
        Ok(list) => return Ok(list),
        Err(generation) => generation,
    };
    let list = name_list(&state.pool).await?;
    state.server_menu.keep(generation, list.clone());
    Ok(list)
}

/// The names of the servers `ids` names (lists show names, not ids): one
/// indexed lookup of just those rows, not every server with its secrets.
pub async fn names(
    db: impl PgExecutor<'_>,
    ids: &[i64],
) -> AppResult<std::collections::HashMap<i64, String>> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let rows = sqlx::query!("SELECT id, name FROM servers WHERE id = ANY($1)", ids)
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.name)).collect())
}

/// The stored credentials of a server, secrets opened.
pub fn credentials(row: &ServerRow, sealer: &Sealer) -> anyhow::Result<Credentials> {
    let secrets = match &row.secrets {
        None => BTreeMap::new(),
        Some(sealed) => {
            let plain = sealer.open(secrets_binding(row.id, &row.credentials.0), sealed)?;
            let map: BTreeMap<String, String> = serde_json::from_slice(&plain)?;
            map.into_iter()
                .map(|(k, v)| (k, SecretString::from(v)))
                .collect()
        }
    };
    Ok(Credentials {
        fields: row.credentials.0.clone(),
        secrets,
    })
}

/// The parts of a URL a secret is bound to: scheme, host, port and path.
fn destination(url: &str) -> Option<(String, String, Option<u16>, String)> {
    let u = reqwest::Url::parse(url.trim()).ok()?;
    Some((
        u.scheme().to_owned(),
        u.host_str()?.to_ascii_lowercase(),
        u.port_or_known_default(),
        u.path().trim_end_matches('/').to_owned(),
    ))
}

/// Whether `submitted` points the server's URL fields somewhere other than
/// `stored` does: then a stored secret must not go along.
fn destination_changed(
    module: &dyn ProvisioningModule,
    submitted: &BTreeMap<String, String>,
    stored: &Credentials,
) -> bool {
    module
        .info()
        .credential_fields
        .iter()
        .filter(|f| f.input_type == InputType::Url)
        .any(|f| {
            let new = submitted.get(f.name).map(|v| v.trim()).unwrap_or_default();
            let old = stored
                .fields
                .get(f.name)
                .map(String::as_str)
                .unwrap_or_default();
            !new.is_empty() && (destination(new).is_none() || destination(new) != destination(old))
        })
}

/// Splits submitted credentials by the module's field metadata; a blank secret
/// falls back to `stored` (the value already on the server, if any), but only
/// while the URL fields still point where it was saved for: a secret is only
/// ever sent to the destination it was stored with.
pub fn split_credentials(
    module: &dyn ProvisioningModule,
    submitted: &BTreeMap<String, String>,
    stored: Option<&Credentials>,
    errors: &mut FieldErrors,
) -> Credentials {
    let info = module.info();
    let mut out = Credentials::default();
    let moved = stored.is_some_and(|s| destination_changed(module, submitted, s));
    for key in submitted.keys() {
        if !info.credential_fields.iter().any(|f| f.name == key) {
            errors.add(
                &format!("credentials.{key}"),
                format!("{} has no credential field {key:?}", info.label),
            );
        }
    }
    for field in &info.credential_fields {
        let value = submitted
            .get(field.name)
            .map(|v| v.trim().to_owned())
            .unwrap_or_default();
        if field.secret {
            if !value.is_empty() {
                out.secrets
                    .insert(field.name.into(), SecretString::from(value));
            } else if moved && stored.is_some_and(|s| s.secrets.contains_key(field.name)) {
                errors.add(
                    &format!("credentials.{}", field.name),
                    format!(
                        "the api_url changed: enter the {} again (a stored secret is only sent to the address it was saved with)",
                        field.name
                    ),
                );
            } else if let Some(old) = stored.and_then(|s| s.secrets.get(field.name)) {
                out.secrets.insert(field.name.into(), old.clone());
            }
        } else if !value.is_empty() {
            out.fields.insert(field.name.into(), value);
        } else if let Some(old) = stored
            .and_then(|s| s.fields.get(field.name))
            .filter(|_| !submitted.contains_key(field.name))
        {
            out.fields.insert(field.name.into(), old.clone());
        }
    }
    if let Err(field_errors) = module.validate_credentials(&out) {
        for (field, msgs) in field_errors {
            for m in msgs {
                errors.add(&format!("credentials.{field}"), m);
            }
        }
    }
    out
}

struct Parsed {
    name: String,
    module: String,
    group_id: i64,
    max_accounts: i32,
    max_concurrent: i32,
    enabled: bool,
    creds: Credentials,
    tls: ServerTls,
}

fn parse_input(
    state: &Core,
    input: &ServerInput,
    stored: Option<&Credentials>,
) -> AppResult<Parsed> {
    let mut errors = FieldErrors::default();
    let name = errors.check("name", parse_name(&input.name, "name", 100));
    let module = state.registry.get(input.module.trim());
    if module.is_none() {
        errors.add(
            "module",
            format!(
                "unknown module {:?}; known: {}",
                input.module,
                state.registry.ids().join(", ")
            ),
        );
    }
    let max_accounts = errors.check(
        "max_accounts",
        i32::try_from(input.max_accounts)
            .ok()
            .filter(|m| *m >= 0)
            .ok_or_else(|| {
                "max_accounts must be a non-negative integer (0 = unlimited)".to_owned()
            }),
    );
    let max_concurrent = errors.check(
        "max_concurrent",
        i32::try_from(input.max_concurrent)
            .ok()
            .filter(|m| (1..=256).contains(m))
            .ok_or_else(|| "max_concurrent must be between 1 and 256".to_owned()),
    );
    if input.group_id <= 0 {
        errors.add("group_id", "group_id is required");
    }
    let creds = module
        .as_ref()
        .map(|m| split_credentials(m.as_ref(), &input.credentials, stored, &mut errors))
        .unwrap_or_default();
    let tls = ServerTls::parse(input.tls.as_ref(), &mut errors);
    errors.into_result()?;
    Ok(Parsed {
        name: name.unwrap_or_default(),
        module: input.module.trim().to_owned(),
        group_id: input.group_id,
        max_accounts: max_accounts.unwrap_or_default(),
        max_concurrent: max_concurrent.unwrap_or(4),
        enabled: input.enabled,
        creds,
        tls,
    })
}

fn seal(sealer: &Sealer, id: i64, creds: &Credentials) -> (Option<Vec<u8>>, Vec<String>) {
    if creds.secrets.is_empty() {
        return (None, Vec::new());
    }
    let map: BTreeMap<&str, &str> = creds
        .secrets
        .iter()
        .map(|(k, v)| (k.as_str(), v.expose_secret()))
        .collect();
    let plain = serde_json::to_vec(&map).unwrap_or_default();
    (
        Some(sealer.seal(secrets_binding(id, &creds.fields), &plain)),
        creds.secrets.keys().cloned().collect(),
    )
}

pub async fn create(state: &Core, input: &ServerInput) -> AppResult<ServerView> {
    let p = parse_input(state, input, None)?;
    let row = write(state, None, &p).await?;
    tracing::info!(server.id = row.id, server.name = %row.name, "server created");
    Ok(row.into())
}

/// Inserts (`id` None) or updates a server from parsed input, secrets sealed.
async fn write(state: &Core, id: Option<i64>, p: &Parsed) -> AppResult<ServerRow> {
    // The row id is part of what the secrets are sealed to: take it first.
    let row_id = match id {
        Some(id) => id,
        None => {
            sqlx::query_scalar!(
                r#"SELECT nextval(pg_get_serial_sequence('servers', 'id')) as "id!""#
            )
            .fetch_one(&state.pool)
            .await?
        }
    };
    let (sealed, names) = seal(&state.sealer, row_id, &p.creds);
    let row = match id {
        None => sqlx::query_as!(
            ServerRow,
            r#"INSERT INTO servers (name, module, group_id, credentials, secrets, secrets_set, max_accounts, enabled, tls_mode, tls_sha256, id, max_concurrent)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
               RETURNING id, name, module, group_id, credentials as "credentials: Json<BTreeMap<String, String>>", secrets, secrets_set, max_accounts, account_count,
                max_concurrent, enabled, health_status, last_checked_at, latency_ms, last_error as "last_error: Json<serde_json::Value>",
                panel_name, panel_version, health_since, health_reason, tls_mode, tls_sha256, created_at, updated_at"#,
        &p.name,
        &p.module,
        p.group_id,
        Json(&p.creds.fields) as _,
        sealed,
        &names,
        p.max_accounts,
        p.enabled,
        &p.tls.mode,
        p.tls.sha256.as_deref(),
        row_id,
        p.max_concurrent
        )
        .fetch_optional(&state.pool)
        .await?,
        Some(_) => sqlx::query_as!(
            ServerRow,
            r#"UPDATE servers SET name = $1, module = $2, group_id = $3, credentials = $4, secrets = $5, secrets_set = $6,
                      max_accounts = $7, enabled = $8, tls_mode = $9, tls_sha256 = $10, max_concurrent = $12, updated_at = now()
               WHERE id = $11
               RETURNING id, name, module, group_id, credentials as "credentials: Json<BTreeMap<String, String>>", secrets, secrets_set, max_accounts, account_count,
                max_concurrent, enabled, health_status, last_checked_at, latency_ms, last_error as "last_error: Json<serde_json::Value>",
                panel_name, panel_version, health_since, health_reason, tls_mode, tls_sha256, created_at, updated_at"#,
        &p.name,
        &p.module,
        p.group_id,
        Json(&p.creds.fields) as _,
        sealed,
        &names,
        p.max_accounts,
        p.enabled,
        &p.tls.mode,
        p.tls.sha256.as_deref(),
        row_id,
        p.max_concurrent
        )
        .fetch_optional(&state.pool)
        .await?,
    };
    // After the write: a menu read that began before it is not kept.
    state.server_menu.clear();
    row.ok_or(AppError::NotFound("server"))
}

/// Applies a PATCH: absent fields and blank secrets keep their stored values.
pub async fn update(state: &Core, id: i64, patch: ServerPatch) -> AppResult<ServerView> {
    let current = get(&state.pool, id).await?;
    let stored = credentials(&current, &state.sealer)?;
    let current_tls = current.tls();
    let mut submitted = current.credentials.0.clone();
    submitted.extend(patch.credentials.unwrap_or_default());
    let input = ServerInput {
        name: patch.name.unwrap_or(current.name),
        module: patch.module.unwrap_or(current.module),
        group_id: patch.group_id.unwrap_or(current.group_id),
        max_accounts: patch
            .max_accounts
            .unwrap_or(i64::from(current.max_accounts)),
        max_concurrent: patch
            .max_concurrent
            .unwrap_or(i64::from(current.max_concurrent)),
        enabled: patch.enabled.unwrap_or(current.enabled),
        credentials: submitted,
        tls: Some(patch.tls.unwrap_or(current_tls)),
    };
    replace(state, id, &input, Some(&stored)).await
}

/// Replaces a server's settings (the edit form): blank secrets keep their value.
pub async fn replace(
    state: &Core,
    id: i64,
    input: &ServerInput,
    stored: Option<&Credentials>,
) -> AppResult<ServerView> {
    let owned;
    let stored = match stored {
        Some(s) => Some(s),
        None => {
            owned = credentials(&get(&state.pool, id).await?, &state.sealer)?;
            Some(&owned)
        }
    };
    let p = parse_input(state, input, stored)?;
    let row = write(state, Some(id), &p).await?;
    tracing::info!(server.id = row.id, "server updated");
    Ok(row.into())
}

pub async fn delete(state: &Core, id: i64) -> AppResult<()> {
    let done = sqlx::query!("DELETE FROM servers WHERE id = $1", id)
        .execute(&state.pool)
        .await?;
    state.server_menu.clear();
    if done.rows_affected() == 0 {
        return Err(AppError::NotFound("server"));
    }
    Ok(())
}

/// Stores the outcome of a connection test on the server row and in its
/// history; returns the server's name and its status before, so the caller
/// can tell a change (and alert on it).
pub async fn record_health(
    db: impl PgExecutor<'_>,
    id: i64,
    online: bool,
    latency_ms: i32,
    error: Option<&serde_json::Value>,
    panel: Option<(Option<String>, Option<String>)>,
) -> AppResult<Option<(String, String)>> {
    let (name, version) = panel.unwrap_or_default();
    let before = sqlx::query!(
        r#"WITH old AS (SELECT id, name, health_status FROM servers WHERE id = $1 FOR UPDATE),
         upd AS (
             UPDATE servers s SET health_status = $2, last_checked_at = now(), latency_ms = $3, last_error = $4,
                    panel_name = COALESCE($5, s.panel_name), panel_version = COALESCE($6, s.panel_version),
                    health_since = CASE WHEN s.health_status = $2 THEN COALESCE(s.health_since, now()) ELSE now() END,
                    health_reason = CASE WHEN s.health_status = $2 AND s.health_reason IS NOT NULL THEN s.health_reason
                                         WHEN $2 = 'online' THEN 'connection test passed'
                                         ELSE 'connection test failed' END
             FROM old WHERE s.id = old.id RETURNING s.id),
         hist AS (
             INSERT INTO server_health_history (server_id, status, latency_ms, error_kind, changed)
             SELECT old.id, $2, $3, $4->>'kind', old.health_status <> $2 FROM old)
         SELECT name as "name!", health_status as "health_status!" FROM old"#,
        id,
        if online { "online" } else { "offline" },
        latency_ms,
        error,
        name,
        version
    )
    .fetch_optional(db)
    .await?;
    Ok(before.map(|r| (r.name, r.health_status)))
}

/// One point of a server's health history.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct HealthPoint {
    pub status: String,
    pub latency_ms: Option<i32>,
    pub error_kind: Option<String>,
    pub changed: bool,
    pub created_at: DateTime<Utc>,
}

/// The last `n` health results of a server, oldest first.
pub async fn health_history(
    db: impl PgExecutor<'_>,
    id: i64,
    n: i64,
) -> AppResult<Vec<HealthPoint>> {
    Ok(sqlx::query_as!(
        HealthPoint,
        r#"SELECT status as "status!", latency_ms, error_kind, changed as "changed!", created_at as "created_at!" FROM (
             SELECT id, status, latency_ms, error_kind, changed, created_at FROM server_health_history
             WHERE server_id = $1 ORDER BY id DESC LIMIT $2) last ORDER BY id"#,
        id,
        n
    )
    .fetch_all(db)
    .await?)
}

/// Keeps the last `keep` history rows of every server.
pub async fn prune_health_history(db: impl PgExecutor<'_>, keep: i64) -> AppResult<u64> {
    let done = sqlx::query!(
        "DELETE FROM server_health_history h USING (
             SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY server_id ORDER BY id DESC) n
                             FROM server_health_history) r WHERE r.n > $1) old
         WHERE h.id = old.id",
        keep
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Takes a server out of placement after a create failure that proves it
/// unusable (its health turns offline with that error). Returns whether this
/// call changed its status (false when it was offline already).
pub async fn take_out_of_placement(
    db: impl PgExecutor<'_>,
    id: i64,
    error: &serde_json::Value,
    reason: &str,
) -> AppResult<bool> {
    let changed = sqlx::query_scalar!(
        r#"UPDATE servers s SET health_status = 'offline', last_checked_at = now(), last_error = $2,
                health_since = CASE WHEN old.health_status = 'offline' THEN COALESCE(s.health_since, now()) ELSE now() END,
                health_reason = CASE WHEN old.health_status = 'offline' THEN COALESCE(s.health_reason, $3) ELSE $3 END
         FROM (SELECT id, health_status FROM servers WHERE id = $1 FOR UPDATE) old
         WHERE s.id = old.id
         RETURNING old.health_status <> 'offline' as "changed!""#,
        id,
        error,
        reason
    )
    .fetch_optional(db)
    .await?;
    Ok(changed.unwrap_or(false))
}

/// Records a status change that no test made (a create failure) in the history.
pub async fn record_change(
    db: impl PgExecutor<'_>,
    id: i64,
    status: &str,
    error_kind: Option<&str>,
) -> AppResult<()> {
    sqlx::query!(
        "INSERT INTO server_health_history (server_id, status, error_kind, changed) VALUES ($1, $2, $3, true)",
        id,
        status,
        error_kind
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Whether new accounts may be placed on the server (enabled, not offline).
pub fn in_placement(row: &ServerRow) -> bool {
    row.enabled && row.health_status != "offline"
}

/// Takes one account slot for `service_id` on a server of `group_id` for
/// `module`, following the group's placement strategy; skips disabled, offline
/// and full servers. Returns the server, or None when nothing has room.
///
/// Candidates are tried in strategy order. Each try is one statement that
/// increments the server's count and assigns the service together: it waits
/// for the server row's lock and re-checks capacity on the latest version, so
/// concurrent placements never overfill (the CHECK constraint is the backstop),
/// never report "no capacity" while a slot is free, and hold the hot row only
/// for that one statement.
pub async fn place_service(
    db: impl PgExecutor<'_> + Copy,
    service_id: i64,
    group_id: i64,
    module: &str,
) -> AppResult<Option<i64>> {
    let candidates = sqlx::query_scalar!(
        "SELECT s.id FROM servers s JOIN server_groups g ON g.id = s.group_id
         WHERE s.group_id = $1 AND s.module = $2 AND s.enabled AND s.health_status <> 'offline'
           AND (s.max_accounts = 0 OR s.account_count < s.max_accounts)
         ORDER BY CASE WHEN g.placement = 'fill' THEN s.id::float8
                       ELSE s.account_count::float8 / GREATEST(s.max_accounts, 1) END,
                  s.account_count, s.id",
        group_id,
        module
    )
    .fetch_all(db)
    .await?;
    for server_id in candidates {
        let taken = sqlx::query_scalar!(
            r#"WITH slot AS (
                 UPDATE servers SET account_count = account_count + 1, updated_at = now()
                 WHERE id = $2 AND enabled AND health_status <> 'offline'
                   AND (max_accounts = 0 OR account_count < max_accounts)
                 RETURNING id)
             UPDATE services SET server_id = slot.id, status = 'provisioning', updated_at = now()
             FROM slot WHERE services.id = $1
             RETURNING slot.id as "id!""#,
            service_id,
            server_id
        )
        .fetch_optional(db)
        .await;
        let taken = match taken {
            // The schema's capacity CHECK caught a race the guard above let
            // through: this server is full, like any other full one.
            Err(e) if is_capacity_violation(&e) => None,
            other => other?,
        };
        if taken.is_some() {
            return Ok(taken);
        }
    }
    Ok(None)
}

fn is_capacity_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|db| db.constraint())
        .is_some_and(|c| c == "servers_capacity_check")
}

/// Takes one of the server's `max_concurrent` call slots for `service_id`
/// until `lease` ends (a dead worker's slot frees itself then). False when
/// all are taken. One statement: the slot row is locked with SKIP LOCKED and
/// its emptiness re-checked on the latest version, so two workers never
/// share a slot.
pub async fn take_call_slot(
    db: impl PgExecutor<'_>,
    server_id: i64,
    service_id: i64,
    lease: std::time::Duration,
) -> AppResult<bool> {
    let taken = sqlx::query_scalar!(
        "UPDATE server_call_slots c SET service_id = $2, lease_until = now() + make_interval(secs => $3), updated_at = now()
         FROM (SELECT server_id, slot FROM server_call_slots
               WHERE server_id = $1 AND (lease_until IS NULL OR lease_until < now())
                 AND slot < (SELECT max_concurrent FROM servers WHERE id = $1)
               ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED) free
         WHERE c.server_id = free.server_id AND c.slot = free.slot
         RETURNING c.slot",
        server_id,
        service_id,
        lease.as_secs_f64()
    )
    .fetch_optional(db)
    .await?;
    Ok(taken.is_some())
}

/// Gives back every call slot `service_id` holds (its run ended).
pub async fn release_call_slots(db: impl PgExecutor<'_>, service_id: i64) -> AppResult<()> {
    sqlx::query!(
        "UPDATE server_call_slots SET service_id = NULL, lease_until = NULL, updated_at = now()
         WHERE service_id = $1",
        service_id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Gives an account slot back (terminated, or never created).
pub async fn release(db: impl PgExecutor<'_>, server_id: i64) -> AppResult<()> {
    sqlx::query!(
        "UPDATE servers SET account_count = GREATEST(account_count - 1, 0), updated_at = now() WHERE id = $1",
        server_id
    )
    .execute(db)
        .await?;
    Ok(())
}
