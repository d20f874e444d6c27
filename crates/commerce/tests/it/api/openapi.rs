//! The OpenAPI document lists exactly the routes that answer.

use serde_json::{Value, json};

use super::documented;
use crate::support::TestApp;

#[tokio::test]
async fn openapi_documents_exactly_the_routes_that_answer() {
    let app = TestApp::spawn().await;
    let doc = app.get("/api/v1/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    let routes = documented(&doc);
    assert_eq!(routes, documented(&commerce::api::openapi::build()));
    for (method, route, has_body) in &routes {
        let path = route
            .replace("{id}", "999999")
            .replace("{action}", "suspend");
        let (status, body) = app
            .call(
                &method.to_uppercase(),
                &path,
                if *has_body { Some(json!({})) } else { None },
            )
            .await;
        assert_ne!(status, 405, "{method} {path} is documented but not routed");
        assert!(status < 500, "{method} {path}: {status} {body}");
        assert!(
            status < 400 || body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{method} {path}: a {status} without the API's error body: {body}"
        );
        assert_ne!(
            body["error"], "no such route",
            "{method} {path} is documented but not routed"
        );
    }
    // The other way round: a method the document does not list on a path it
    // lists is not routed either (405), so nothing answers undocumented.
    for path in doc["paths"].as_object().expect("paths").keys() {
        let listed = &doc["paths"][path];
        for method in ["get", "post", "put", "patch", "delete"] {
            if listed.get(method).is_some() {
                continue;
            }
            let concrete = path
                .replace("{id}", "999999")
                .replace("{action}", "suspend");
            let (status, body) = app.call(&method.to_uppercase(), &concrete, None).await;
            assert_eq!(
                status, 405,
                "{method} {concrete} answers but is not documented: {body}"
            );
        }
    }
    // Request bodies and the failure kinds come from the Rust types.
    let schemas = &doc["components"]["schemas"];
    for (name, field) in [
        ("GroupInput", "placement"),
        ("ServerInput", "credentials"),
        ("OrderInput", "domain"),
        ("Unsuspend", "only_if_reason"),
        ("ServiceView", "drift"),
    ] {
        assert!(
            schemas[name]["properties"][field].is_object(),
            "{name}.{field} undocumented: {}",
            schemas[name]
        );
    }
    assert_eq!(schemas["GroupInput"]["additionalProperties"], false);
    let kinds: Vec<&str> = schemas["ProvisioningError"]["properties"]["kind"]["enum"]
        .as_array()
        .expect("kind enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let all: Vec<&str> = provisioning::FailureKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(kinds, all);
    let params: Vec<&str> = doc["paths"]["/api/v1/services"]["get"]["parameters"]
        .as_array()
        .expect("services list parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for want in [
        "status",
        "server_id",
        "q",
        "kind",
        "drift",
        "page",
        "per_page",
    ] {
        assert!(params.contains(&want), "{want} missing from {params:?}");
    }
    let (status, body) = app.call("GET", "/api/v1/nothing-here", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("no such route"))
    );
    app.finish().await;
}
