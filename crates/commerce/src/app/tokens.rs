//! API tokens: created by the CLI (or the demo and the tests, through here),
//! shown once, stored as SHA-256 hashes. Each has a scope. The HTTP layer only
//! asks [`authenticate`]; every request looks the token up, so a revoked
//! token is refused on its next request in any process.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::app::error::AppResult;
use crate::crypto::{random_token, sha256_hex};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Orders, clients, services and their lifecycle actions, the provisioning
    /// log, reading products: what a billing system needs.
    Provision,
    /// Everything, including servers, groups and products.
    Admin,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "provision" => Some(Self::Provision),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provision => "provision",
            Self::Admin => "admin",
        }
    }
}

/// The live token whose plain value is `token`: its id and scope.
pub async fn authenticate(db: impl PgExecutor<'_>, token: &str) -> AppResult<Option<(i64, Scope)>> {
    let found = sqlx::query!(
        "SELECT id, scope FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        sha256_hex(token),
    )
    .fetch_optional(db)
    .await?;
    // The column is CHECKed to these two; an unknown one gets the lesser.
    Ok(found.map(|t| (t.id, Scope::parse(&t.scope).unwrap_or(Scope::Provision))))
}

/// Records that token `id` was used now.
pub async fn touch(db: impl PgExecutor<'_>, id: i64) -> AppResult<()> {
    sqlx::query!(
        "UPDATE api_tokens SET last_used_at = now() WHERE id = $1",
        id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Creates a token with `scope`; the plain value is returned once, never stored.
pub async fn create(db: impl PgExecutor<'_>, name: &str, scope: Scope) -> AppResult<String> {
    let token = format!("opc_{}", random_token(32));
    sqlx::query!(
        "INSERT INTO api_tokens (name, token_hash, scope) VALUES ($1, $2, $3)",
        name,
        sha256_hex(&token),
        scope.as_str(),
    )
    .execute(db)
    .await?;
    Ok(token)
}

/// One token as `commerce token list` shows it (never its value).
#[derive(Debug)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub scope: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn list(db: impl PgExecutor<'_>) -> AppResult<Vec<TokenInfo>> {
    Ok(sqlx::query_as!(
        TokenInfo,
        "SELECT id, name, scope, created_at, last_used_at, revoked_at FROM api_tokens ORDER BY id",
    )
    .fetch_all(db)
    .await?)
}

/// Revokes the token with this id (or, when not a number, every live token
/// with this name); returns how many were revoked.
pub async fn revoke(db: impl PgExecutor<'_>, which: &str) -> AppResult<u64> {
    let which = which.trim();
    let done = sqlx::query!(
        "UPDATE api_tokens SET revoked_at = now(), updated_at = now()
         WHERE revoked_at IS NULL AND (id = $1 OR ($1 IS NULL AND name = $2))",
        which.parse::<i64>().ok(),
        which,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
