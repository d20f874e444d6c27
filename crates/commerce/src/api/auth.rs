//! API authentication: the token sent as `Authorization: Bearer <token>` is
//! looked up through [`crate::app::tokens`] on every request, and its scope
//! must cover the route (see [`required_scope`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};

use crate::api::error::ApiError;
use crate::app::tokens::{self, Scope};
use crate::front::AppState;

/// The scope a route needs (by method and matched path).
pub fn required_scope(method: &Method, path: &str) -> Scope {
    let provision = [
        "/api/v1/orders",
        "/api/v1/clients",
        "/api/v1/services",
        "/api/v1/provisioning-log",
    ];
    let under = |p: &str| path == p || path.starts_with(&format!("{p}/"));
    if provision.iter().any(|p| under(p))
        || (method == Method::GET && (under("/api/v1/products") || path == "/api/v1/openapi.json"))
    {
        Scope::Provision
    } else {
        Scope::Admin
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
        let (token_id, scope) = tokens::authenticate(&state.pool, token)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        if state.api_tokens.due(token_id) {
            let pool = state.pool.clone();
            tokio::spawn(async move {
                let _ = tokens::touch(&pool, token_id).await;
            });
        }
        let path = parts
            .extensions
            .get::<MatchedPath>()
            .map_or_else(|| parts.uri.path().to_owned(), |m| m.as_str().to_owned());
        let needed = required_scope(&parts.method, &path);
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
