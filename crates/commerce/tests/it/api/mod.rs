//! The JSON API contract, one file per concern: auth, the OpenAPI document,
//! validation, secrets, Test all, idempotent outcomes, placement rules, panics.

use serde_json::Value;

mod auth;
mod idempotency;
mod openapi;
mod panics;
mod placement;
mod secrets;
mod sweep;
mod validation;

/// Every documented operation: method, path, whether it takes a JSON body.
fn documented(doc: &Value) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            out.push((
                method.clone(),
                path.clone(),
                op.get("requestBody").is_some(),
            ));
        }
    }
    out
}
