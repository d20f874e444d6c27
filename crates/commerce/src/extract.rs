//! Path input shared by the JSON API and the admin UI: one parse of a path id
//! and of a service action. A bad one is a 404 in the shape of the surface that
//! was asked (each router installs its [`NotFoundShape`]), never axum's
//! plain-text 400.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use crate::app::services::ServiceAction;

/// How a router answers a path that names nothing: the API's JSON error or the
/// admin's 404 page. Installed with `.layer(Extension(NotFoundShape(..)))`.
#[derive(Clone, Copy)]
pub struct NotFoundShape(pub fn(String) -> Response);

/// A path parameter that names nothing; answered in the router's shape.
pub struct NoSuchPath {
    shape: Option<NotFoundShape>,
    message: String,
}

impl NoSuchPath {
    fn new(parts: &Parts, message: String) -> Self {
        Self {
            shape: parts.extensions.get::<NotFoundShape>().copied(),
            message,
        }
    }
}

impl IntoResponse for NoSuchPath {
    fn into_response(self) -> Response {
        match self.shape {
            Some(NotFoundShape(render)) => render(self.message),
            // Every router installs a shape; this is only a safe answer.
            None => (StatusCode::NOT_FOUND, self.message).into_response(),
        }
    }
}

async fn param(parts: &mut Parts, name: &str) -> Option<String> {
    let params = RawPathParams::from_request_parts(parts, &()).await.ok()?;
    params
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Parses a row id: a positive integer, nothing else.
pub fn parse_id(raw: &str) -> Option<i64> {
    raw.parse::<i64>().ok().filter(|id| *id > 0)
}

/// The `{id}` of the path: a positive integer, else a 404.
pub struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = NoSuchPath;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let raw = param(parts, "id").await.unwrap_or_default();
        parse_id(&raw).map(Id).ok_or_else(|| {
            NoSuchPath::new(
                parts,
                format!("no such id {raw:?}: ids are positive whole numbers"),
            )
        })
    }
}

/// The `{action}` of `/services/{id}/{action}`, else a 404 naming the actions.
pub struct Action(pub ServiceAction);

impl<S: Send + Sync> FromRequestParts<S> for Action {
    type Rejection = NoSuchPath;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let raw = param(parts, "action").await.unwrap_or_default();
        ServiceAction::parse(&raw).map(Action).ok_or_else(|| {
            NoSuchPath::new(
                parts,
                format!(
                    "unknown service action {raw:?}: use one of {}",
                    ServiceAction::NAMES.join(", ")
                ),
            )
        })
    }
}
