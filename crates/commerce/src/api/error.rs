//! The one API error type, and extractors that give malformed input the same
//! JSON error shape: `{"error": "...", "fields": {"field": ["..."]}}`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::app::error::AppError;
use crate::domain::FieldErrors;

/// An error answer of the JSON API.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub fields: Option<FieldErrors>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            fields: None,
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "missing or invalid API token: send Authorization: Bearer <token> (create one with `commerce token create`)",
        )
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Validation(fields) => Self {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message: "validation failed: see fields".into(),
                fields: Some(fields),
            },
            AppError::NotFound(what) => {
                Self::new(StatusCode::NOT_FOUND, format!("{what} not found"))
            }
            AppError::Conflict { message, fields } => Self {
                status: StatusCode::CONFLICT,
                message,
                fields,
            },
            AppError::Internal(e) if crate::app::error::database_unavailable(&e) => {
                tracing::warn!(error = %format!("{e:#}"), "database unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the database is unavailable (down or restarting); nothing was changed by this request: retry after the Retry-After delay",
                )
            }
            AppError::Internal(e) => {
                // Logged once, here at the boundary; the client gets no internals.
                tracing::error!(error = %format!("{e:#}"), "internal error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; it has been logged",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match &self.fields {
            Some(f) => json!({"error": self.message, "fields": f}),
            None => json!({"error": self.message}),
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                crate::app::error::RETRY_AFTER_SECS.into(),
            );
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A JSON body parsed with the failing field named in the error.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "send a JSON body with Content-Type: application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                ApiError::new(
                    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        StatusCode::PAYLOAD_TOO_LARGE
                    } else {
                        StatusCode::BAD_REQUEST
                    },
                    format!("could not read the body: {e}"),
                )
            })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses JSON, naming the field that failed.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {inner}"));
        }
        let message = inner.to_string();
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_owned();
        // An unknown or missing field is named by its own path (`client.emial`),
        // anything else by where it failed.
        let named = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|p| message.strip_prefix(p))
            .and_then(|r| r.split('`').next());
        let at = if path == "." { "" } else { path.as_str() };
        let field = match (named, at) {
            (Some(name), "") => name.to_owned(),
            // An unknown field's path already ends with it; a missing one's
            // is its parent.
            (Some(name), at) if at.rsplit('.').next() == Some(name) => at.to_owned(),
            (Some(name), at) => format!("{at}.{name}"),
            (None, "") => "body".to_owned(),
            (None, at) => at.to_owned(),
        };
        let mut fields = FieldErrors::default();
        fields.add(&field, message);
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: "validation failed: see fields".into(),
            fields: Some(fields),
        }
    })?;
    // Anything after the JSON value (`{...} xyz`) makes the body malformed.
    de.end()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// A body for actions that take no fields: `{}` (or nothing) is fine, anything
/// else is a 422 naming the unknown field.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

/// Checks an optional body holds no fields (see [`NoFields`]).
pub fn no_fields(body: &[u8]) -> Result<(), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    parse_json::<NoFields>(body).map(|_| ())
}

/// A numeric id from the path; anything else is a JSON 404.
pub use crate::extract::Id;

/// Query parameters with errors in the API's shape.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| {
                let mut fields = FieldErrors::default();
                fields.add("query", e.body_text());
                ApiError {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    message: "invalid query parameters".into(),
                    fields: Some(fields),
                }
            })
    }
}
