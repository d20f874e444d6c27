//! What every full page shares (navigation, the signed-in admin, the CSRF token,
//! the flash message) and the helpers that turn templates into responses.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::front::AppState;
use crate::web::error::WebResult;
use crate::web::session::{self, Admin, Flash};

/// The frame around a page.
pub struct Chrome {
    pub email: String,
    pub csrf: String,
    /// Which navigation entry is current.
    pub nav: &'static str,
    pub flash: Option<Flash>,
}

impl Chrome {
    pub fn new(admin: &Admin, nav: &'static str) -> Self {
        Self {
            email: admin.email.clone(),
            csrf: admin.csrf.clone(),
            nav,
            flash: admin.flash.clone(),
        }
    }

    /// `aria-current` for a navigation entry.
    pub fn current(&self, nav: &str) -> &'static str {
        if self.nav == nav { "page" } else { "false" }
    }
}

/// Renders a full page; a shown flash message is cleared.
pub fn page(state: &AppState, admin: &Admin, t: &impl Template) -> WebResult<Response> {
    page_with(state, admin, StatusCode::OK, t)
}

/// Renders a full page with `status` (e.g. 422 for a form with errors).
pub fn page_with(
    state: &AppState,
    admin: &Admin,
    status: StatusCode,
    t: &impl Template,
) -> WebResult<Response> {
    let mut resp = (status, Html(t.render()?)).into_response();
    if admin.flash.is_some() {
        session::clear_flash(state, &mut resp);
    }
    Ok(resp)
}

/// Renders an htmx fragment.
pub fn fragment(t: &impl Template) -> WebResult<Response> {
    Ok(Html(t.render()?).into_response())
}

/// A numeric id from the path; anything else is the admin's 404 page.
pub use crate::extract::Id;

/// Whether htmx sent the request (`HX-Request: true`): such a request gets the
/// fragment it swaps in, a plain one gets the full page, from the same handler.
pub struct Htmx(pub bool);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Htmx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(is_htmx(&parts.headers)))
    }
}

pub fn is_htmx(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get("hx-request")
        .is_some_and(|v| v.as_bytes() == b"true")
}

/// For a URL that answers a plain request with its page and htmx's poll with
/// the page's live fragment (one URL, one handler): a cache must not answer
/// one with the other.
pub fn vary_htmx(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        axum::http::header::VARY,
        axum::http::HeaderValue::from_static("HX-Request"),
    );
    resp
}

/// Marks a fragment template as markup a page may embed as a typed field:
/// askama escaped every value while rendering it, so `{{ field }}` in the page
/// needs no `|safe` and no handler pre-renders HTML into a `String`.
macro_rules! embeddable {
    ($($t:ty),+ $(,)?) => {
        $(impl askama::filters::HtmlSafe for $t {})+
    };
}
pub(crate) use embeddable;
