//! Errors of the admin UI, answered with a page that says what to do next.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::app::error::AppError;

/// What went wrong while answering an admin request.
#[derive(Debug)]
pub enum WebError {
    NotFound(String),
    BadRequest(String),
    Forbidden(String),
    Conflict(String),
    Internal(anyhow::Error),
}

pub type WebResult<T> = Result<T, WebError>;

impl WebError {
    pub fn db(e: sqlx::Error) -> Self {
        Self::from(AppError::from(e))
    }
}

impl From<AppError> for WebError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::NotFound(what) => {
                Self::NotFound(format!("This {what} does not exist (any more)."))
            }
            AppError::Conflict { message, .. } => Self::Conflict(message),
            AppError::Validation(fields) => Self::BadRequest(
                fields
                    .0
                    .iter()
                    .flat_map(|(k, v)| v.iter().map(move |m| format!("{k}: {m}")))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            AppError::Internal(e) => Self::Internal(e),
        }
    }
}

impl From<askama::Error> for WebError {
    fn from(e: askama::Error) -> Self {
        Self::Internal(anyhow::Error::new(e).context("rendering a template"))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
    fix: &'a str,
}

/// An error as htmx shows it: the toast's content, not a page to scrape.
#[derive(Template, Clone)]
#[template(path = "partials/error_toast.html")]
pub struct ErrorToast {
    title: &'static str,
    message: String,
    fix: &'static str,
}

/// Marks a fragment response holding an [`ErrorToast`] for `static/app.js`.
pub const FRAGMENT_HEADER: &str = "commerce-fragment";

/// Answers an htmx request's error with its toast fragment instead of the
/// full error page (same status); every other response passes unchanged.
pub async fn htmx_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let htmx = crate::web::page::is_htmx(req.headers());
    let mut resp = next.run(req).await;
    let Some(toast) = resp.extensions_mut().remove::<ErrorToast>() else {
        return resp;
    };
    if !htmx {
        return resp;
    }
    let status = resp.status();
    match toast.render() {
        Ok(body) => (status, [(FRAGMENT_HEADER, "error")], Html(body)).into_response(),
        Err(_) => resp,
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, title, message, fix) = match &self {
            Self::NotFound(m) => (
                StatusCode::NOT_FOUND,
                "Not found",
                m.clone(),
                "Go back to the list and pick an existing item.",
            ),
            Self::BadRequest(m) => (
                StatusCode::BAD_REQUEST,
                "That request could not be understood",
                m.clone(),
                "Go back, correct the values and try again.",
            ),
            Self::Forbidden(m) => (
                StatusCode::FORBIDDEN,
                "Request refused",
                m.clone(),
                "Reload the page you came from (you may need to sign in again), then repeat the action.",
            ),
            Self::Conflict(m) => (
                StatusCode::CONFLICT,
                "That cannot be done right now",
                m.clone(),
                "Reload the page to see the current state, then try again.",
            ),
            Self::Internal(e) if crate::app::error::database_unavailable(e) => {
                tracing::warn!(error = %format!("{e:#}"), "admin UI: database unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The database is unavailable",
                    "PostgreSQL is down or restarting, so this page could not be loaded and nothing was changed.".to_owned(),
                    "Wait a few seconds and reload the page; if it lasts, check that PostgreSQL is running.",
                )
            }
            Self::Internal(e) => {
                // Logged once, here at the boundary; the page shows no internals.
                tracing::error!(error = %format!("{e:#}"), "admin UI internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong on our side",
                    "The error has been logged with its details.".to_owned(),
                    "Try again in a moment; if it keeps happening, check the service logs.",
                )
            }
        };
        let page = ErrorPage {
            status: status.as_u16(),
            title,
            message: &message,
            fix,
        };
        let body = page
            .render()
            .unwrap_or_else(|_| format!("{} {title}: {message}", status.as_u16()));
        let mut resp = (status, Html(body)).into_response();
        resp.extensions_mut().insert(ErrorToast {
            title,
            message,
            fix,
        });
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                crate::app::error::RETRY_AFTER_SECS.into(),
            );
        }
        resp
    }
}
