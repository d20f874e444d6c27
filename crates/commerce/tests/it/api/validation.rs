//! Invalid input gets field messages and stores nothing.

use serde_json::{Value, json};

use crate::support::TestApp;

fn fields(body: &Value) -> Vec<String> {
    body["fields"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
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
