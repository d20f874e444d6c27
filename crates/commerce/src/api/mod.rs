//! The JSON API under `/api/v1`, plus `/healthz`, `/readyz` and `/metrics`.
//! Each handler's `#[utoipa::path]` is its route and its documentation at once:
//! [`api_routes`] registers the handlers with `routes!`, so the router and the
//! OpenAPI document come from the same code and cannot drift apart.

pub mod auth;
pub mod error;
pub mod health;
pub mod openapi;
pub mod routes;

use axum::Router;
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::front::AppState;

/// Every `/api/v1` route with its documentation (one `routes!` per path).
pub fn api_routes() -> OpenApiRouter<AppState> {
    use routes::*;
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(create_group, list_groups))
        .routes(routes!(create_server, list_servers))
        .routes(routes!(test_unsaved))
        .routes(routes!(sweep))
        .routes(routes!(get_server, patch_server, delete_server))
        .routes(routes!(server_packages))
        .routes(routes!(test_server))
        .routes(routes!(list_modules))
        .routes(routes!(create_product, list_products))
        .routes(routes!(get_product, update_product))
        .routes(routes!(create_client, list_clients))
        .routes(routes!(get_client))
        .routes(routes!(create_order, list_orders))
        .routes(routes!(get_order))
        .routes(routes!(pay_order))
        .routes(routes!(list_services))
        .routes(routes!(get_service))
        .routes(routes!(bulk_retry))
        .routes(routes!(change_package))
        .routes(routes!(adopt))
        .routes(routes!(change_password))
        .routes(routes!(resend_welcome))
        .routes(routes!(service_action))
        .routes(routes!(list_log))
        .routes(routes!(get_log))
        .routes(routes!(openapi::document))
}

/// The API router: the documented routes, health and metrics, and a JSON 404
/// for everything else.
pub fn router() -> Router<AppState> {
    let (router, _) = api_routes().split_for_parts();
    router
        .layer(axum::Extension(crate::extract::NotFoundShape(|message| {
            axum::response::IntoResponse::into_response(error::ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                message,
            ))
        })))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .fallback(|| async {
            error::ApiError::new(axum::http::StatusCode::NOT_FOUND, "no such route")
        })
}
