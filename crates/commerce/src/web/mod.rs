//! The admin UI: server-rendered askama pages and htmx fragments. Every screen
//! calls the same application services (`crate::app`) as the JSON API; the
//! handlers here only parse forms, call a service and render the answer.

mod actions;
mod alerts;
mod attention;
mod clients;
mod dashboard;
mod error;
mod form;
mod groups;
mod health_chart;
mod log;
pub mod login;
mod orders;
mod page;
mod product_package;
mod products;
pub mod ratelimit;
mod server_form;
mod servers;
mod services;
mod session;
mod suspension;
mod view;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Redirect;
use axum::routing::{get, post};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::front::AppState;

/// The admin UI's routes, `/static` and the `/` redirect.
pub fn router() -> Router<AppState> {
    let limiter = Arc::new(ratelimit::LoginLimiter::default());
    Router::new()
        .route("/", get(|| async { Redirect::to("/admin") }))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/admin", get(dashboard::show))
        .route(
            "/admin/servers",
            get(servers::list).post(server_form::create),
        )
        .route("/admin/servers/new", get(server_form::new))
        .route("/admin/servers/test", post(server_form::test))
        .route(
            "/admin/servers/module-fields",
            get(server_form::module_fields),
        )
        .route("/admin/servers/sweep", post(servers::sweep))
        .route("/admin/servers/{id}", post(server_form::update))
        .route("/admin/servers/{id}/edit", get(server_form::edit))
        .route("/admin/servers/{id}/test", post(servers::test_one))
        .route("/admin/groups", get(groups::list).post(groups::create))
        .route(
            "/admin/products",
            get(products::list).post(products::create),
        )
        .route("/admin/products/new", get(products::new))
        .route("/admin/products/package-field", get(product_package::field))
        .route("/admin/products/{id}", post(products::update))
        .route("/admin/products/{id}/edit", get(products::edit))
        .route("/admin/clients", get(clients::list).post(clients::create))
        .route("/admin/orders", get(orders::list).post(orders::create))
        .route("/admin/orders/new", get(orders::new))
        .route("/admin/orders/{id}", get(orders::show))
        .route("/admin/orders/{id}/pay", post(orders::pay))
        .route("/admin/services", get(services::list))
        .route("/admin/services/retry", post(attention::bulk_retry))
        .route("/admin/attention", get(attention::page_handler))
        .route("/admin/attention/{id}/dismiss", post(attention::dismiss))
        .route("/admin/alerts", get(alerts::list))
        .route("/admin/alerts/test", post(alerts::send_test))
        .route("/admin/services/{id}", get(services::show))
        .route("/admin/services/{id}/terminate", post(services::terminate))
        .route(
            "/admin/services/{id}/change-package",
            post(services::change_package),
        )
        .route(
            "/admin/services/{id}/adopt",
            get(services::adopt_preview).post(services::adopt),
        )
        .route("/admin/services/{id}/suspend", post(suspension::suspend))
        .route(
            "/admin/services/{id}/unsuspend",
            post(suspension::unsuspend),
        )
        .route("/admin/services/{id}/{action}", post(services::action))
        .route("/admin/log", get(log::list))
        .route(
            "/admin/log/retry",
            get(log::confirm_retry_all).post(log::retry_all),
        )
        .route("/admin/log/{id}", get(log::show))
        .route("/admin/log/{id}/retry", post(log::retry))
        .route("/admin/{*rest}", axum::routing::any(not_found))
        .layer(axum::Extension(crate::extract::NotFoundShape(|message| {
            axum::response::IntoResponse::into_response(error::WebError::NotFound(message))
        })))
        .layer(axum::middleware::from_fn(session::csrf_from_form))
        .layer(axum::middleware::from_fn(error::htmx_errors))
        .layer(axum::Extension(limiter))
        .layer(header(header::CONTENT_SECURITY_POLICY, CSP))
        .layer(header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(header(header::REFERRER_POLICY, "same-origin"))
        .layer(header(header::CACHE_CONTROL, "no-store"))
        .nest_service("/static", ServeDir::new(static_dir()))
}

/// Pages load scripts, styles and data only from this origin (Pico's icons are
/// data: URIs) and may not be framed.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
    connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

fn header(name: header::HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

/// Unknown admin paths: a page, not the API's JSON 404 (signed-in admins only).
async fn not_found(_admin: session::Admin) -> error::WebError {
    error::WebError::NotFound("There is no such page in the admin.".into())
}

/// `static/` in the working directory (a deployment), else the repository's.
fn static_dir() -> PathBuf {
    let here = PathBuf::from("static");
    if here.join("app.css").is_file() {
        return here;
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../static"))
}

/// Every admin page and fragment that answers a GET, for tests that crawl the UI.
pub const ADMIN_GET_ROUTES: &[&str] = &[
    "/admin",
    "/admin/servers",
    "/admin/servers/new",
    "/admin/servers/module-fields?module=opterius",
    "/admin/servers/{server}/edit",
    "/admin/groups",
    "/admin/products",
    "/admin/products/new",
    "/admin/products/package-field?module=opterius_v1&group_id=1",
    "/admin/products/{product}/edit",
    "/admin/clients",
    "/admin/orders",
    "/admin/orders/new",
    "/admin/orders/{order}",
    "/admin/services",
    "/admin/attention",
    "/admin/alerts",
    "/admin/services/{service}",
    "/admin/log",
    "/admin/log/retry?status=failed&action=create",
    "/admin/log/{log}",
];
