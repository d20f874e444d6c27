//! Every route needs a bearer token, except the OpenAPI document.

use serde_json::Value;

use super::documented;
use crate::support::TestApp;

#[tokio::test]
async fn every_route_needs_a_bearer_token_except_the_openapi_document() {
    let app = TestApp::spawn().await;
    let http = reqwest::Client::new();
    let routes = documented(&commerce::api::openapi::build());
    assert!(routes.len() >= 34, "{routes:?}");
    for (method, route, _) in routes {
        let path = route.replace("{id}", "1").replace("{action}", "suspend");
        for auth in [None, Some("Bearer not-a-real-token")] {
            let mut req = http.request(
                method.to_uppercase().parse().expect("method"),
                format!("{}{path}", app.base),
            );
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            let resp = req
                .header("Content-Type", "application/json")
                .body("{}")
                .send()
                .await
                .expect("send");
            let open = route.ends_with("openapi.json");
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            assert_eq!(
                status,
                if open { 200 } else { 401 },
                "{method} {path} with {auth:?}: {body}"
            );
            if open {
                assert_eq!(body["openapi"], "3.1.0", "{body}");
            } else {
                // The API's error shape, and nothing of the route's own answer.
                assert!(
                    body["error"].as_str().is_some_and(|e| !e.is_empty())
                        && body
                            .as_object()
                            .is_some_and(|o| o.keys().all(|k| k == "error" || k == "fields")),
                    "{method} {path} with {auth:?}: {body}"
                );
            }
        }
    }
    app.get("/api/v1/server-groups").await;
    app.finish().await;
}
