//! What every full page shares (navigation, the signed-in admin, the CSRF token,
//! the flash message) and the helpers that turn templates into responses.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::state::AppState;
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
