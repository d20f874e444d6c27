//! The OpenAPI document: paths, parameters and bodies come from the handlers'
//! `#[utoipa::path]` and the Rust types' `ToSchema` (see [`super::api_routes`]);
//! this module adds what every operation shares (bearer auth, the error
//! answers) and serves the result.

use std::sync::LazyLock;

use axum::Json;
use serde_json::Value;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};
use utoipa::{OpenApi as _, ToSchema};

/// `{"error": "...", "fields": {"field": ["..."]}}`: every error answer.
#[derive(ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong and what to do, for a human.
    pub error: String,
    /// Per-field messages, for validation errors (422) only.
    pub fields: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Commerce provisioning API",
        description = "Lists answer {items, page, per_page, total}; totals are counted up to 1,000 and carry total_capped: true beyond (there are at least that many). Errors answer {error, fields?}; provisioning errors {kind, message, hint, retryable}. Bodies are strict: an unknown field is a 422 naming it. While the database is unreachable every route answers 503 with Retry-After."
    ),
    components(schemas(
        ErrorBody,
        crate::domain::ProvisioningErrorSchema,
        crate::app::services::Suspend,
        crate::app::services::Unsuspend,
        crate::app::services::Terminate
    ))
)]
struct Base;

/// The document before the routes are added.
pub fn base() -> OpenApi {
    Base::openapi()
}

/// The answers every operation shares, beside its own success.
const ERRORS: &[(&str, &str)] = &[
    ("401", "Missing or bad token"),
    ("404", "Not found"),
    ("409", "Conflict with the current state"),
    ("422", "Validation failed: `fields` names each bad field"),
    (
        "503",
        "The database is unreachable; retry after the Retry-After header's seconds",
    ),
];

fn finish(mut doc: OpenApi) -> OpenApi {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    for (path, item) in doc.paths.paths.iter_mut() {
        let open = path == "/api/v1/openapi.json";
        for op in operations(item) {
            for (code, what) in ERRORS {
                if open {
                    break;
                }
                op.responses
                    .responses
                    .entry((*code).to_owned())
                    .or_insert_with(|| {
                        ResponseBuilder::new()
                            .description(*what)
                            .content(
                                "application/json",
                                ContentBuilder::new()
                                    .schema(Some(Ref::from_schema_name("Error")))
                                    .build(),
                            )
                            .build()
                            .into()
                    });
            }
            if !open {
                op.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
                    "bearer",
                    Vec::<String>::new(),
                )]);
            }
        }
    }
    doc
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// The whole document, as the router registers the routes.
pub fn build() -> Value {
    static DOC: LazyLock<Value> = LazyLock::new(|| {
        serde_json::to_value(finish(super::api_routes().into_openapi())).unwrap_or_default()
    });
    DOC.clone()
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    summary = "This document",
    responses((status = 200, description = "The OpenAPI document", body = serde_json::Value))
)]
pub async fn document() -> Json<Value> {
    Json(build())
}
