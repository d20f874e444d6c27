//! The OpenAPI 3 document, generated from the route table the router is built from.

use axum::Json;
use serde_json::{Map, Value, json};

use crate::api::ROUTES;

fn schemas() -> Value {
    let error = json!({"type": "object", "required": ["error"], "properties": {
        "error": {"type": "string"},
        "fields": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}}});
    let failure = json!({"type": "object", "properties": {
        "kind": {"type": "string", "enum": provisioning::FailureKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>()},
        "message": {"type": "string"}, "hint": {"type": "string"}, "retryable": {"type": "boolean"}}});
    let tls = json!({"type": "object", "additionalProperties": false, "properties": {
        "mode": {"type": "string", "enum": ["verify", "pinned", "insecure"], "default": "verify"},
        "sha256": {"type": "string", "description": "hex SHA-256 of the Panel's certificate (DER), for pinned"}}});
    json!({
        "Error": error,
        "Adopt": {"type": "object", "additionalProperties": false, "properties": {
            "panel_account_id": {"type": "string"}}},
        "ChangePackage": {"type": "object", "required": ["product_id"], "additionalProperties": false, "properties": {
            "product_id": {"type": "integer"}}},
        "Suspend": {"type": "object", "additionalProperties": false, "properties": {
            "reason": {"type": "string", "enum": ["overdue", "abuse", "other"], "default": "other"},
            "note": {"type": "string", "maxLength": 500}}},
        "Unsuspend": {"type": "object", "additionalProperties": false, "properties": {
            "only_if_reason": {"type": "string", "enum": ["overdue", "abuse", "other"]}}},
        "ProvisioningError": failure,
        "GroupInput": {"type": "object", "required": ["name"], "additionalProperties": false, "properties": {
            "name": {"type": "string"}, "placement": {"type": "string", "enum": ["least_full", "fill"]}}},
        "ServerInput": {"type": "object", "required": ["name", "module", "group_id"], "additionalProperties": false, "properties": {
            "name": {"type": "string"}, "module": {"type": "string", "example": "opterius"}, "group_id": {"type": "integer"},
            "max_accounts": {"type": "integer", "minimum": 0, "description": "0 = unlimited"}, "enabled": {"type": "boolean"},
            "max_concurrent": {"type": "integer", "minimum": 1, "maximum": 256, "default": 4, "description": "Panel calls in flight to this server at most, across all workers"},
            "credentials": {"type": "object", "description": "the module's credential_fields (GET /api/v1/modules)", "properties": {"api_url": {"type": "string"}, "api_token": {"type": "string", "writeOnly": true}, "api_key": {"type": "string", "writeOnly": true}, "panel_server_id": {"type": "string"}}},
            "tls": tls.clone()}},
        "ServerPatch": {"type": "object", "additionalProperties": false, "properties": {
            "name": {"type": "string"}, "module": {"type": "string"}, "group_id": {"type": "integer"}, "max_accounts": {"type": "integer"}, "max_concurrent": {"type": "integer"},
            "enabled": {"type": "boolean"}, "credentials": {"type": "object"}, "tls": tls.clone()}},
        "UnsavedTest": {"type": "object", "required": ["module", "credentials"], "additionalProperties": false, "properties": {
            "module": {"type": "string"}, "credentials": {"type": "object"}, "server_id": {"type": "integer"}, "tls": tls}},
        "ProductInput": {"type": "object", "required": ["name", "module", "group_id", "package"], "additionalProperties": false, "properties": {
            "name": {"type": "string"}, "module": {"type": "string"}, "group_id": {"type": "integer"},
            "package": {"type": "string", "description": "Exact, case-sensitive name from Panel → Packages"},
            "disk_limit_mb": {"type": "integer", "minimum": 0}, "bandwidth_limit_mb": {"type": "integer", "minimum": 0},
            "auto_setup": {"type": "string", "enum": ["on_order", "on_payment", "manual"]}}},
        "ClientInput": {"type": "object", "required": ["email", "name"], "additionalProperties": false, "properties": {
            "email": {"type": "string", "format": "email"}, "name": {"type": "string"}}},
        "OrderInput": {"type": "object", "required": ["product_id", "domain"], "additionalProperties": false, "properties": {
            "client_id": {"type": "integer"}, "client": {"$ref": "#/components/schemas/ClientInput"},
            "product_id": {"type": "integer"}, "domain": {"type": "string"}}},
    })
}

/// Builds the document.
pub fn build() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let mut op = Map::new();
        op.insert("summary".into(), json!(r.summary));
        let params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": if name == "id" {"integer"} else {"string"}}}))
            .collect();
        if !params.is_empty() {
            op.insert("parameters".into(), Value::Array(params));
        }
        if let Some(body) = r.body {
            op.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}}}),
            );
        }
        let err = json!({"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
        let mut responses = Map::new();
        responses.insert(r.ok.to_string(), json!({"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}));
        for (code, what) in [
            ("401", "Missing or bad token"),
            ("404", "Not found"),
            ("409", "Conflict with the current state"),
            ("422", "Validation failed"),
        ] {
            let mut e = err.clone();
            e["description"] = json!(what);
            responses.insert(code.into(), e);
        }
        op.insert("responses".into(), Value::Object(responses));
        if r.path != "/api/v1/openapi.json" {
            op.insert("security".into(), json!([{"bearer": []}]));
        }
        paths
            .entry(r.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .map(|m| m.insert(r.method.into(), Value::Object(op)));
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Commerce provisioning API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Lists answer {items, page, per_page, total}; totals are counted up to 1,000 and carry total_capped: true beyond (there are at least that many). Errors answer {error, fields?}; provisioning errors {kind, message, hint, retryable}.",
        },
        "paths": paths,
        "components": {"schemas": schemas(), "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    })
}

pub async fn document() -> Json<Value> {
    Json(build())
}
