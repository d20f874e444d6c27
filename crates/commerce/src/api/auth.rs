//! API tokens: created by the CLI, shown once, stored as SHA-256 hashes, sent as
//! `Authorization: Bearer <token>`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::api::error::ApiError;
use crate::crypto::{random_token, sha256_hex};
use crate::state::AppState;

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
        let found: Option<(i64, bool)> = sqlx::query_as(
            "SELECT id, last_used_at IS NULL OR last_used_at < now() - interval '1 minute'
             FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(sha256_hex(token))
        .fetch_optional(&state.pool)
        .await
        .map_err(|e| ApiError::from(crate::app::error::AppError::from(e)))?;
        let id = found.map(|(id, stale)| {
            // Touch last_used_at at most once a minute: no write (and no row
            // lock shared by every request) on the hot path.
            if stale {
                let pool = state.pool.clone();
                tokio::spawn(async move {
                    let _ = sqlx::query("UPDATE api_tokens SET last_used_at = now() WHERE id = $1")
                        .bind(id)
                        .execute(&pool)
                        .await;
                });
            }
            id
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
