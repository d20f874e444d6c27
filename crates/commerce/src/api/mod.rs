//! The JSON API under `/api/v1`, plus `/healthz`, `/readyz` and `/metrics`.

pub mod auth;
pub mod error;
pub mod health;
pub mod openapi;
pub mod routes;

use axum::Router;
use axum::routing::{MethodRouter, delete, get, patch, post, put};

use crate::state::AppState;

/// One documented route: method, path (axum syntax), summary, request schema,
/// success status. The router and the OpenAPI document are both built from it.
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub body: Option<&'static str>,
    pub ok: u16,
}

macro_rules! doc {
    ($m:literal, $p:literal, $s:literal, $b:expr, $ok:literal) => {
        RouteDoc {
            method: $m,
            path: $p,
            summary: $s,
            body: $b,
            ok: $ok,
        }
    };
}

/// Every `/api/v1` route.
pub const ROUTES: &[RouteDoc] = &[
    doc!(
        "post",
        "/api/v1/server-groups",
        "Create a server group",
        Some("GroupInput"),
        201
    ),
    doc!(
        "get",
        "/api/v1/server-groups",
        "List server groups",
        None,
        200
    ),
    doc!(
        "post",
        "/api/v1/servers",
        "Add a server (secrets are stored encrypted, never returned)",
        Some("ServerInput"),
        201
    ),
    doc!("get", "/api/v1/servers", "List servers", None, 200),
    doc!(
        "post",
        "/api/v1/servers/test",
        "Test unsaved credentials (with server_id, a blank secret means the stored one)",
        Some("UnsavedTest"),
        200
    ),
    doc!(
        "post",
        "/api/v1/servers/sweep",
        "Test every enabled server concurrently",
        None,
        200
    ),
    doc!("get", "/api/v1/servers/{id}", "Get a server", None, 200),
    doc!(
        "patch",
        "/api/v1/servers/{id}",
        "Update a server; without api_token the stored one is kept",
        Some("ServerPatch"),
        200
    ),
    doc!(
        "delete",
        "/api/v1/servers/{id}",
        "Delete a server with no services",
        None,
        204
    ),
    doc!(
        "get",
        "/api/v1/servers/{id}/packages",
        "The Panel's packages (409 when the server's module cannot list them)",
        None,
        200
    ),
    doc!(
        "get",
        "/api/v1/modules",
        "Modules with their credential fields and capabilities",
        None,
        200
    ),
    doc!(
        "post",
        "/api/v1/servers/{id}/test",
        "Test a saved server and store the result",
        None,
        200
    ),
    doc!(
        "post",
        "/api/v1/products",
        "Create a product",
        Some("ProductInput"),
        201
    ),
    doc!("get", "/api/v1/products", "List products", None, 200),
    doc!("get", "/api/v1/products/{id}", "Get a product", None, 200),
    doc!(
        "put",
        "/api/v1/products/{id}",
        "Replace a product's settings",
        Some("ProductInput"),
        200
    ),
    doc!(
        "post",
        "/api/v1/clients",
        "Create a client",
        Some("ClientInput"),
        201
    ),
    doc!("get", "/api/v1/clients", "List clients", None, 200),
    doc!("get", "/api/v1/clients/{id}", "Get a client", None, 200),
    doc!(
        "post",
        "/api/v1/orders",
        "Place an order (client, order and service in one transaction). With an Idempotency-Key header, the same key and body answer the first answer again; the same key with another body gets 422; keys live 24 h",
        Some("OrderInput"),
        201
    ),
    doc!("get", "/api/v1/orders", "List orders", None, 200),
    doc!("get", "/api/v1/orders/{id}", "Get an order", None, 200),
    doc!(
        "post",
        "/api/v1/orders/{id}/pay",
        "Mark an order paid; queues on-payment provisioning",
        None,
        200
    ),
    doc!(
        "get",
        "/api/v1/services",
        "List services (filters: status, server_id, product_id, client_id, q, kind)",
        None,
        200
    ),
    doc!(
        "get",
        "/api/v1/services/{id}",
        "Get a service (never its password)",
        None,
        200
    ),
    doc!(
        "post",
        "/api/v1/services/retry",
        "Queue a retry for every service the filters select (status, default failed; server_id, product_id, client_id, q, kind = the last error's kind); answers {count, job_ids}",
        None,
        202
    ),
    doc!(
        "post",
        "/api/v1/services/{id}/change-package",
        "Queue a move to another product's package (same module) on the Panel",
        Some("ChangePackage"),
        202
    ),
    doc!(
        "post",
        "/api/v1/services/{id}/adopt",
        "Settle a failed create as active on the account the Panel holds (by id, or looked up by username)",
        Some("Adopt"),
        200
    ),
    doc!(
        "post",
        "/api/v1/services/{id}/change-password",
        "Queue a new generated password on the Panel (never returned)",
        None,
        202
    ),
    doc!(
        "post",
        "/api/v1/services/{id}/resend-welcome",
        "Queue the welcome mail again (the client's login with the service's current password; never in the answer)",
        None,
        202
    ),
    doc!(
        "post",
        "/api/v1/services/{id}/{action}",
        "Queue create, suspend, unsuspend, terminate, retry or sync (read usage and status from the Panel). Suspend takes an optional Suspend body {reason: overdue|abuse|other (default other), note}; unsuspend an optional Unsuspend body {only_if_reason}, 409 with nothing sent when the service is suspended for another reason. Terminate is irreversible and needs {\"confirm\": \"<the service's domain>\"}; retry never re-runs a failed terminate",
        None,
        202
    ),
    doc!(
        "get",
        "/api/v1/provisioning-log",
        "List provisioning log entries (filters: service_id, server_id, action, status, since, until)",
        None,
        200
    ),
    doc!(
        "get",
        "/api/v1/provisioning-log/{id}",
        "Get one entry with its redacted request and response",
        None,
        200
    ),
    doc!("get", "/api/v1/openapi.json", "This document", None, 200),
];

fn handler_for(method: &str, path: &str) -> MethodRouter<AppState> {
    use routes::*;
    match (method, path) {
        ("post", "/api/v1/server-groups") => post(create_group),
        ("get", "/api/v1/server-groups") => get(list_groups),
        ("post", "/api/v1/servers") => post(create_server),
        ("get", "/api/v1/servers") => get(list_servers),
        ("post", "/api/v1/servers/test") => post(test_unsaved),
        ("post", "/api/v1/servers/sweep") => post(sweep),
        ("get", "/api/v1/servers/{id}") => get(get_server),
        ("patch", "/api/v1/servers/{id}") => patch(patch_server),
        ("delete", "/api/v1/servers/{id}") => delete(delete_server),
        ("post", "/api/v1/servers/{id}/test") => post(test_server),
        ("get", "/api/v1/servers/{id}/packages") => get(server_packages),
        ("get", "/api/v1/modules") => get(list_modules),
        ("post", "/api/v1/products") => post(create_product),
        ("get", "/api/v1/products") => get(list_products),
        ("get", "/api/v1/products/{id}") => get(get_product),
        ("put", "/api/v1/products/{id}") => put(update_product),
        ("post", "/api/v1/clients") => post(create_client),
        ("get", "/api/v1/clients") => get(list_clients),
        ("get", "/api/v1/clients/{id}") => get(get_client),
        ("post", "/api/v1/orders") => post(create_order),
        ("get", "/api/v1/orders") => get(list_orders),
        ("get", "/api/v1/orders/{id}") => get(get_order),
        ("post", "/api/v1/orders/{id}/pay") => post(pay_order),
        ("get", "/api/v1/services") => get(list_services),
        ("get", "/api/v1/services/{id}") => get(get_service),
        ("post", "/api/v1/services/retry") => post(bulk_retry),
        ("post", "/api/v1/services/{id}/change-package") => post(change_package),
        ("post", "/api/v1/services/{id}/change-password") => post(change_password),
        ("post", "/api/v1/services/{id}/adopt") => post(adopt),
        ("post", "/api/v1/services/{id}/resend-welcome") => post(resend_welcome),
        ("post", "/api/v1/services/{id}/{action}") => post(service_action),
        ("get", "/api/v1/provisioning-log") => get(list_log),
        ("get", "/api/v1/provisioning-log/{id}") => get(get_log),
        ("get", "/api/v1/openapi.json") => get(openapi::document),
        _ => axum::routing::any(|| async {
            error::ApiError::new(axum::http::StatusCode::NOT_FOUND, "no such route")
        }),
    }
}

/// The API router, built from [`ROUTES`].
pub fn router() -> Router<AppState> {
    let mut by_path: Vec<(&str, MethodRouter<AppState>)> = Vec::new();
    for r in ROUTES {
        let h = handler_for(r.method, r.path);
        match by_path.iter_mut().find(|(p, _)| *p == r.path) {
            Some((_, existing)) => *existing = std::mem::take(existing).merge(h),
            None => by_path.push((r.path, h)),
        }
    }
    let mut router = Router::new();
    for (path, h) in by_path {
        router = router.route(path, h);
    }
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
