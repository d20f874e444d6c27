//! API tokens: created by the CLI, shown once, stored as SHA-256 hashes, sent as
//! `Authorization: Bearer <token>`. Each has a scope; every request looks the
//! token up, so a revoked token is refused on its next request in any process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};

use crate::api::error::ApiError;
use crate::crypto::{random_token, sha256_hex};
use crate::state::AppState;

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

    /// The scope a route needs (by method and matched path).
    pub fn required(method: &Method, path: &str) -> Self {
        let provision = [
            "/api/v1/orders",
            "/api/v1/clients",
            "/api/v1/services",
            "/api/v1/provisioning-log",
        ];
        let under = |p: &str| path == p || path.starts_with(&format!("{p}/"));
        if provision.iter().any(|p| under(p))
            || (method == Method::GET
                && (under("/api/v1/products") || path == "/api/v1/openapi.json"))
        {
            Self::Provision
        } else {
            Self::Admin
        }
    }
}

/// When each token's `last_used_at` was last written by this process, so a
/// busy client costs one write a minute, not one per request. It is not a
/// validity cache: every request checks the token in the database.
#[derive(Default)]
pub struct TokenCache(Mutex<HashMap<i64, Instant>>);

const TOUCH_EVERY: Duration = Duration::from_secs(60);

impl TokenCache {
    fn due(&self, id: i64) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, at| at.elapsed() < TOUCH_EVERY);
        }
        match map.get(&id) {
            Some(at) if at.elapsed() < TOUCH_EVERY => false,
            _ => {
                map.insert(id, Instant::now());
                true
            }
        }
    }
}

/// Proof that the request carried a valid API token whose scope allows the route.
pub struct ApiClient {
    pub token_id: i64,
    pub scope: Scope,
}

impl FromRequestParts<AppState> for ApiClient {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        let found: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, scope FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(sha256_hex(token))
        .fetch_optional(&state.pool)
        .await
        .map_err(|e| ApiError::from(crate::app::error::AppError::from(e)))?;
        let (token_id, scope) = found.ok_or_else(ApiError::unauthorized)?;
        let scope = Scope::parse(&scope).unwrap_or(Scope::Provision);
        if state.api_tokens.due(token_id) {
            let pool = state.pool.clone();
            tokio::spawn(async move {
                let _ = sqlx::query("UPDATE api_tokens SET last_used_at = now() WHERE id = $1")
                    .bind(token_id)
                    .execute(&pool)
                    .await;
            });
        }
        let path = parts
            .extensions
            .get::<MatchedPath>()
            .map_or_else(|| parts.uri.path().to_owned(), |m| m.as_str().to_owned());
        let needed = Scope::required(&parts.method, &path);
        if scope < needed {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "this API token has the {} scope; {} {path} needs an {} token",
                    scope.as_str(),
                    parts.method,
                    needed.as_str()
                ),
            ));
        }
        Ok(ApiClient { token_id, scope })
    }
}

/// Creates an admin token named `name`; the plain value is returned once.
pub async fn create_token(pool: &sqlx::PgPool, name: &str) -> anyhow::Result<String> {
    create_scoped_token(pool, name, Scope::Admin).await
}

/// Creates a token with `scope`; the plain value is returned once, never stored.
pub async fn create_scoped_token(
    pool: &sqlx::PgPool,
    name: &str,
    scope: Scope,
) -> anyhow::Result<String> {
    let token = format!("opc_{}", random_token(32));
    sqlx::query("INSERT INTO api_tokens (name, token_hash, scope) VALUES ($1, $2, $3)")
        .bind(name)
        .bind(sha256_hex(&token))
        .bind(scope.as_str())
        .execute(pool)
        .await?;
    Ok(token)
}

/// One token as `commerce token list` shows it (never its value).
#[derive(Debug, sqlx::FromRow)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub scope: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

pub async fn list_tokens(pool: &sqlx::PgPool) -> anyhow::Result<Vec<TokenInfo>> {
    Ok(sqlx::query_as(
        "SELECT id, name, scope, created_at, last_used_at, revoked_at FROM api_tokens ORDER BY id",
    )
    .fetch_all(pool)
    .await?)
}

/// Revokes the token with this id (or, when not a number, every live token
/// with this name); returns how many were revoked.
pub async fn revoke_token(pool: &sqlx::PgPool, which: &str) -> anyhow::Result<u64> {
    let done = match which.trim().parse::<i64>() {
        Ok(id) => {
            sqlx::query("UPDATE api_tokens SET revoked_at = now(), updated_at = now() WHERE id = $1 AND revoked_at IS NULL")
                .bind(id)
                .execute(pool)
                .await?
        }
        Err(_) => {
            sqlx::query("UPDATE api_tokens SET revoked_at = now(), updated_at = now() WHERE name = $1 AND revoked_at IS NULL")
                .bind(which.trim())
                .execute(pool)
                .await?
        }
    };
    Ok(done.rows_affected())
}
