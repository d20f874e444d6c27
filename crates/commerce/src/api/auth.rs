//! API tokens: created by the CLI, shown once, stored as SHA-256 hashes, sent as
//! `Authorization: Bearer <token>`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::api::error::ApiError;
use crate::crypto::{random_token, sha256_hex};
use crate::state::AppState;

/// Valid token hashes seen recently, so a busy client is not a database round
/// trip per request. Entries expire after [`TOKEN_CACHE_TTL`]; a revoked token
/// stops working within that time.
#[derive(Default)]
pub struct TokenCache(
    std::sync::Mutex<std::collections::HashMap<String, (i64, std::time::Instant)>>,
);

/// How long a validated token is trusted without asking the database again.
pub const TOKEN_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(30);

impl TokenCache {
    fn get(&self, hash: &str) -> Option<i64> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(hash)
            .filter(|(_, at)| at.elapsed() < TOKEN_CACHE_TTL)
            .map(|(id, _)| *id)
    }

    fn put(&self, hash: String, id: i64) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (_, at)| at.elapsed() < TOKEN_CACHE_TTL);
        }
        map.insert(hash, (id, std::time::Instant::now()));
    }
}

/// Proof that the request carried a valid API token.
pub struct ApiClient {
    pub token_id: i64,
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
        let hash = sha256_hex(token);
        if let Some(token_id) = state.api_tokens.get(&hash) {
            return Ok(ApiClient { token_id });
        }
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(&hash)
        .fetch_optional(&state.pool)
        .await
        .map_err(|e| ApiError::from(crate::app::error::AppError::from(e)))?;
        let id = found.inspect(|id| {
            state.api_tokens.put(hash, *id);
            // last_used_at is touched when the token is (re)validated, at most
            // once per cache period: no write on the hot path.
            let (pool, id) = (state.pool.clone(), *id);
            tokio::spawn(async move {
                let _ = sqlx::query("UPDATE api_tokens SET last_used_at = now() WHERE id = $1")
                    .bind(id)
                    .execute(&pool)
                    .await;
            });
        });
        id.map(|token_id| ApiClient { token_id })
            .ok_or_else(ApiError::unauthorized)
    }
}

/// Creates a token named `name`; the plain value is returned once, never stored.
pub async fn create_token(pool: &sqlx::PgPool, name: &str) -> anyhow::Result<String> {
    let token = format!("opc_{}", random_token(32));
    sqlx::query("INSERT INTO api_tokens (name, token_hash) VALUES ($1, $2)")
        .bind(name)
        .bind(sha256_hex(&token))
        .execute(pool)
        .await?;
    Ok(token)
}
