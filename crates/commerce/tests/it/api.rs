//! The JSON API contract: auth, the OpenAPI document, validation, secrets,
//! Test Connection, idempotent outcomes, placement rules, panics.

use std::sync::Arc;

use async_trait::async_trait;
use opterius_sim::{Faults, SimConfig, Target};
use provisioning::{
    AccountRef, AccountSpec, Credentials, ModuleContext, ModuleInfo, ProvisioningModule,
    ProvisioningResult,
};
use serde_json::{Value, json};

use crate::support::TestApp;

fn fields(body: &Value) -> Vec<String> {
    body["fields"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

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

#[tokio::test]
async fn invalid_input_gets_field_messages_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let group = app
        .post("/api/v1/server-groups", json!({"name": "G"}))
        .await["id"]
        .as_i64()
        .expect("id");
    let cases = [
        (
            "/api/v1/servers",
            json!({"name": "s", "module": "opterius", "group_id": group, "credentials": {"api_url": "https://panel.example.com/", "api_token": "t"}}),
            "credentials.api_url",
        ),
        (
            "/api/v1/servers",
            json!({"name": "s", "module": "opterius", "group_id": group, "credentials": {"api_url": "ftp://panel.example.com", "api_token": "t"}}),
            "credentials.api_url",
        ),
        (
            "/api/v1/servers",
            json!({"name": "s", "module": "cpanel", "group_id": group, "credentials": {}}),
            "module",
        ),
        (
            "/api/v1/servers",
            json!({"name": "s", "module": "opterius", "group_id": group, "max_accounts": -1, "credentials": {"api_url": "https://p.example.com", "api_token": "t"}}),
            "max_accounts",
        ),
        (
            "/api/v1/servers",
            json!({"name": "s", "module": "opterius", "group_id": group, "credentials": {"api_url": "https://p.example.com"}}),
            "credentials.api_token",
        ),
        (
            "/api/v1/servers",
            json!({"name": "s", "module": "opterius", "group_id": 999, "credentials": {"api_url": "https://p.example.com", "api_token": "t"}}),
            "group_id",
        ),
        (
            "/api/v1/products",
            json!({"name": "p", "module": "opterius", "group_id": group, "package": ""}),
            "package",
        ),
        (
            "/api/v1/products",
            json!({"name": "p", "module": "opterius", "group_id": group, "package": "Starter", "disk_limit_mb": -5}),
            "disk_limit_mb",
        ),
        (
            "/api/v1/products",
            json!({"name": "p", "module": "opterius", "group_id": group, "package": "Starter", "bandwidth_limit_mb": -1}),
            "bandwidth_limit_mb",
        ),
        (
            "/api/v1/products",
            json!({"name": "p", "module": "opterius", "group_id": group, "package": "Starter", "auto_setup": "sometimes"}),
            "auto_setup",
        ),
        (
            "/api/v1/products",
            json!({"name": "p", "module": "nope", "group_id": group, "package": "Starter"}),
            "module",
        ),
        (
            "/api/v1/clients",
            json!({"email": "not-an-email", "name": "x"}),
            "email",
        ),
        (
            "/api/v1/orders",
            json!({"client": {"email": "a@b.co", "name": "A"}, "product_id": 1, "domain": "not a domain"}),
            "domain",
        ),
        (
            "/api/v1/orders",
            json!({"client": {"email": "a@b.co", "name": "A"}, "product_id": 1, "domain": "<script>alert(1)</script>.com"}),
            "domain",
        ),
        (
            "/api/v1/server-groups",
            json!({"name": "x", "placement": "random"}),
            "placement",
        ),
        (
            "/api/v1/servers",
            json!({"name": "s", "module": "opterius", "group_id": "one"}),
            "group_id",
        ),
        (
            "/api/v1/servers",
            json!({"name": "s", "module": "opterius", "group_id": group, "colour": "red"}),
            "colour",
        ),
    ];
    for (path, body, field) in cases {
        let (status, answer) = app.call("POST", path, Some(body.clone())).await;
        assert_eq!(status, 422, "{path} {body}: {answer}");
        assert!(
            fields(&answer).contains(&field.to_owned()),
            "{path} {body}: expected field {field}, got {answer}"
        );
    }
    let (status, answer) = app.call("POST", "/api/v1/servers", None).await;
    assert_eq!(status, 400, "{answer}");
    let raw = reqwest::Client::new()
        .post(format!("{}/api/v1/clients", app.base))
        .bearer_auth(&app.token)
        .header("Content-Type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .expect("send");
    assert_eq!(raw.status().as_u16(), 400);
    let counts: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM servers), (SELECT count(*) FROM products), (SELECT count(*) FROM clients), (SELECT count(*) FROM orders)",
    )
    .fetch_one(&app.state.pool)
    .await
    .expect("counts");
    assert_eq!(
        counts,
        (0, 0, 0, 0),
        "nothing stored from rejected requests"
    );
    // Trailing bytes after the JSON, NUL characters, oversized bodies: clean 4xx.
    let http = reqwest::Client::new();
    let send = |path: &str, body: Vec<u8>| {
        http.post(format!("{}{path}", app.base))
            .bearer_auth(&app.token)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    let r = send("/api/v1/server-groups", br#"{"name": "x"} xyz"#.to_vec())
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 400);
    let r = send(
        "/api/v1/clients",
        br#"{"email": "nul\u0000@x.test", "name": "N"}"#.to_vec(),
    )
    .await
    .expect("send");
    assert_eq!(r.status().as_u16(), 422);
    let r = send(
        "/api/v1/clients",
        br#"{"email": "n@x.test", "name": "N\u0000"}"#.to_vec(),
    )
    .await
    .expect("send");
    assert_eq!(r.status().as_u16(), 422);
    let (status, body) = app.call("GET", "/api/v1/services?q=%00", None).await;
    assert_eq!(status, 422, "{body}");
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(300 * 1024));
    let r = send("/api/v1/server-groups", big.into_bytes())
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 413);
    let body: Value = r.json().await.expect("JSON error body");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    let groups: i64 = sqlx::query_scalar("SELECT count(*) FROM server_groups")
        .fetch_one(&app.state.pool)
        .await
        .expect("count");
    assert_eq!(groups, 1, "only the group created above");
    // Duplicates are conflicts named by field.
    let (status, answer) = app
        .call("POST", "/api/v1/server-groups", Some(json!({"name": "G"})))
        .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(fields(&answer), vec!["name".to_owned()]);
    app.finish().await;
}

#[tokio::test]
async fn server_secrets_are_never_returned_and_a_patch_without_token_keeps_it() {
    let app = TestApp::spawn().await;
    let (_, server_id, _) = app.catalog("Starter", "manual").await;
    let token = app.sim.token(0);
    let shown = app.get(&format!("/api/v1/servers/{server_id}")).await;
    assert_eq!(shown["secrets_set"], json!(["api_token"]));
    assert!(shown["credentials"].get("api_token").is_none());
    assert!(!shown.to_string().contains(&token));
    let stored: Vec<u8> = sqlx::query_scalar("SELECT secrets FROM servers WHERE id = $1")
        .bind(server_id)
        .fetch_one(&app.state.pool)
        .await
        .expect("row");
    assert!(
        !String::from_utf8_lossy(&stored).contains(&token),
        "encrypted at rest"
    );

    let renamed = app
        .patch(
            &format!("/api/v1/servers/{server_id}"),
            json!({"name": "renamed"}),
        )
        .await;
    assert_eq!(renamed["name"], "renamed", "{renamed}");
    assert_eq!(renamed["secrets_set"], json!(["api_token"]), "{renamed}");
    assert!(!renamed.to_string().contains(&token), "{renamed}");
    assert_eq!(
        app.post(&format!("/api/v1/servers/{server_id}/test"), json!({}))
            .await["ok"],
        true,
        "stored token kept"
    );

    app.sim.rotate_token(Target::Server(0), "the-new-token-123");
    let failed = app
        .post(&format!("/api/v1/servers/{server_id}/test"), json!({}))
        .await;
    assert_eq!(failed["ok"], false);
    assert_eq!(failed["error"]["kind"], "unauthorized");
    assert!(
        failed["error"]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("Panel → Settings → API"))
    );
    let health = app.get(&format!("/api/v1/servers/{server_id}")).await["health"].clone();
    assert_eq!(health["status"], "offline");
    assert_eq!(health["last_error"]["kind"], "unauthorized");

    // Unsaved test with a new token, then save it. (The api_url as saved: a
    // different one, even another path to the same Panel, needs the token.)
    let url = app.sim.server_url(0);
    let ok = app
        .post("/api/v1/servers/test", json!({"module": "opterius", "credentials": {"api_url": url, "api_token": "the-new-token-123"}}))
        .await;
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["server"]["name"], "sim-panel-0");
    assert_eq!(ok["server"]["version"], "2.4.1-sim");
    let saved = app
        .patch(
            &format!("/api/v1/servers/{server_id}"),
            json!({"credentials": {"api_token": "the-new-token-123"}}),
        )
        .await;
    assert_eq!(
        (saved["name"].as_str(), saved["secrets_set"].clone()),
        (Some("renamed"), json!(["api_token"])),
        "{saved}"
    );
    assert!(!saved.to_string().contains("the-new-token-123"), "{saved}");
    let ok = app
        .post(&format!("/api/v1/servers/{server_id}/test"), json!({}))
        .await;
    assert_eq!(ok["ok"], true);
    let health = app.get(&format!("/api/v1/servers/{server_id}")).await["health"].clone();
    assert_eq!(
        (
            health["status"].as_str(),
            health["panel_name"].as_str(),
            health["panel_version"].as_str()
        ),
        (Some("online"), Some("sim-panel-0"), Some("2.4.1-sim"))
    );
    // With server_id, a blank token in an unsaved test means the stored one.
    let ok = app
        .post("/api/v1/servers/test", json!({"module": "opterius", "server_id": server_id, "credentials": {"api_url": url, "api_token": ""}}))
        .await;
    assert_eq!(ok["ok"], true, "{ok}");
    app.finish().await;
}

#[tokio::test]
async fn sweep_reports_every_enabled_server_with_its_own_outcome() {
    let app = TestApp::spawn_with(
        SimConfig {
            servers: 6,
            ..Default::default()
        },
        &[],
    )
    .await;
    let group = app
        .post("/api/v1/server-groups", json!({"name": "G"}))
        .await["id"]
        .as_i64()
        .expect("id");
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(app.add_server(&format!("s{n}"), group, n, 0).await);
    }
    app.sim.set_faults(
        Target::Server(4),
        Faults {
            hang: true,
            ..Default::default()
        },
    );
    app.sim.rotate_token(Target::Server(5), "rotated-elsewhere");
    let disabled = app
        .patch(
            &format!("/api/v1/servers/{}", ids[3]),
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(
        (disabled["id"].as_i64(), disabled["enabled"].as_bool()),
        (Some(ids[3]), Some(false)),
        "{disabled}"
    );
    let sweep = app.post("/api/v1/servers/sweep", json!({})).await;
    let results = sweep["results"].as_array().expect("results");
    assert_eq!(results.len(), 5, "disabled servers are skipped: {sweep}");
    let kind = |id: i64| {
        results
            .iter()
            .find(|r| r["server_id"] == id)
            .map(|r| (r["ok"].clone(), r["error"]["kind"].clone()))
    };
    for id in &ids[..3] {
        assert_eq!(kind(*id), Some((json!(true), Value::Null)));
    }
    assert_eq!(
        kind(ids[4]),
        Some((json!(false), json!("timeout"))),
        "{sweep}"
    );
    assert_eq!(kind(ids[5]), Some((json!(false), json!("unauthorized"))));
    let servers = app.get("/api/v1/servers").await;
    let status_of = |id: i64| {
        servers["items"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["id"] == id))
            .map(|s| s["health"]["status"].clone())
    };
    assert_eq!(status_of(ids[0]), Some(json!("online")));
    assert_eq!(status_of(ids[4]), Some(json!("offline")));
    assert_eq!(status_of(ids[3]), Some(json!("unknown")));
    app.finish().await;
}

#[tokio::test]
async fn suspending_twice_and_terminating_a_vanished_account_are_idempotent_and_logged() {
    let app = TestApp::spawn().await;
    let (_, _, product_id) = app.catalog("Starter", "on_order").await;
    let sid = app.order(product_id, "kate.example.com").await["services"][0]["id"]
        .as_i64()
        .expect("id");
    let service = app.settle(sid, &["active"]).await;
    for round in 1..=2 {
        app.post(&format!("/api/v1/services/{sid}/suspend"), json!({}))
            .await;
        app.wait_for_log(sid, |log| {
            log.iter()
                .filter(|e| e["action"] == "suspend" && e["status"] == "success")
                .count()
                == round
        })
        .await;
        app.settle(sid, &["suspended"]).await;
    }
    // The account disappears from the Panel behind our back.
    let http = opterius::ClientOptions::default().build().expect("client");
    let panel = opterius::PanelClient::new(
        http,
        opterius::ApiUrl::parse(app.sim.url()).expect("url"),
        app.sim.token(0).into(),
    )
    .with_network(app.state.config.panel_networks.clone());
    panel
        .terminate_account(service["panel_account_id"].as_str().expect("id"))
        .await
        .result
        .expect("gone");
    app.queue_with(sid, "terminate", json!({"confirm": "kate.example.com"}))
        .await;
    app.settle(sid, &["terminated"]).await;
    let log = app.log_for(sid).await;
    let rows: Vec<(&str, &str)> = log
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or(""),
                e["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("create", "success"),
            ("suspend", "success"),
            ("suspend", "success"),
            ("terminate", "success")
        ]
    );
    let last = log.last().expect("row");
    assert_eq!(last["http_status"], 404);
    assert!(
        last["message"]
            .as_str()
            .is_some_and(|m| m.contains("no longer has")),
        "{last}"
    );
    app.finish().await;
}

#[tokio::test]
async fn placement_skips_disabled_offline_and_full_servers_and_fill_fills_in_order() {
    let app = TestApp::spawn_with(
        SimConfig {
            servers: 4,
            ..Default::default()
        },
        &[],
    )
    .await;
    let group = app
        .post(
            "/api/v1/server-groups",
            json!({"name": "Fill", "placement": "fill"}),
        )
        .await["id"]
        .as_i64()
        .expect("id");
    let disabled = app.add_server("a-disabled", group, 0, 0).await;
    let offline = app.add_server("b-offline", group, 1, 0).await;
    let first = app.add_server("c-first", group, 2, 2).await;
    let second = app.add_server("d-second", group, 3, 0).await;
    let patched = app
        .patch(
            &format!("/api/v1/servers/{disabled}"),
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(patched["enabled"], false, "{patched}");
    app.sim.set_faults(
        Target::Server(1),
        Faults {
            status: Some(503),
            ..Default::default()
        },
    );
    assert_eq!(
        app.post(&format!("/api/v1/servers/{offline}/test"), json!({}))
            .await["ok"],
        false
    );
    let product = app
        .post(
            "/api/v1/products",
            json!({"name": "F", "module": "opterius", "group_id": group, "package": "Starter"}),
        )
        .await["id"]
        .as_i64()
        .expect("id");
    let mut placed = Vec::new();
    for i in 0..4 {
        let sid = app.order(product, &format!("fill{i}.example.com")).await["services"][0]["id"]
            .as_i64()
            .expect("id");
        placed.push(
            app.settle(sid, &["active"]).await["server_id"]
                .as_i64()
                .expect("server"),
        );
    }
    assert_eq!(placed, vec![first, first, second, second]);
    app.finish().await;
}

/// A module whose create panics, to prove panics are caught and recorded.
struct Panicky(ModuleInfo);

#[async_trait]
impl ProvisioningModule for Panicky {
    fn info(&self) -> &ModuleInfo {
        &self.0
    }
    fn validate_credentials(&self, _: &Credentials) -> Result<(), provisioning::FieldErrors> {
        Ok(())
    }
    async fn create_account(
        &self,
        _: &ModuleContext,
        _: &Credentials,
        _: &AccountSpec,
    ) -> ProvisioningResult {
        panic!("simulated bug in a module")
    }
    async fn suspend_account(
        &self,
        _: &ModuleContext,
        _: &Credentials,
        _: &AccountRef,
        _: Option<&str>,
    ) -> ProvisioningResult {
        unreachable!()
    }
    async fn unsuspend_account(
        &self,
        _: &ModuleContext,
        _: &Credentials,
        _: &AccountRef,
    ) -> ProvisioningResult {
        unreachable!()
    }
    async fn terminate_account(
        &self,
        _: &ModuleContext,
        _: &Credentials,
        _: &AccountRef,
    ) -> ProvisioningResult {
        unreachable!()
    }
    async fn account_info(
        &self,
        _: &ModuleContext,
        _: &Credentials,
        _: &AccountRef,
    ) -> ProvisioningResult {
        unreachable!()
    }
    async fn test_connection(&self, _: &ModuleContext, _: &Credentials) -> ProvisioningResult {
        unreachable!()
    }
}

#[tokio::test]
async fn a_panicking_module_is_recorded_on_the_service_and_in_the_log() {
    let app = TestApp::spawn_custom(SimConfig::default(), &[], |state| {
        let mut registry = opterius_modules::builtin(&state.config.panel_networks);
        registry.register(Arc::new(Panicky(ModuleInfo {
            id: "panicky",
            label: "Panicky",
            description: "panics",
            credential_fields: vec![],
            capabilities: provisioning::Capability::BASIC.to_vec(),
        })));
        state.registry = Arc::new(registry);
    })
    .await;
    let group = app
        .post("/api/v1/server-groups", json!({"name": "G"}))
        .await["id"]
        .as_i64()
        .expect("id");
    app.post(
        "/api/v1/servers",
        json!({"name": "p", "module": "panicky", "group_id": group, "credentials": {}}),
    )
    .await;
    let product = app
        .post(
            "/api/v1/products",
            json!({"name": "P", "module": "panicky", "group_id": group, "package": "X"}),
        )
        .await["id"]
        .as_i64()
        .expect("id");
    let sid = app.order(product, "panic.example.com").await["services"][0]["id"]
        .as_i64()
        .expect("id");
    let service = app.settle(sid, &["failed"]).await;
    assert_eq!(service["last_error"]["kind"], "internal");
    assert!(
        service["last_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("simulated bug in a module"))
    );
    let log = app.log_for(sid).await;
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0]["status"].as_str(), log[0]["error"]["kind"].as_str()),
        (Some("failed"), Some("internal"))
    );
    app.finish().await;
}
