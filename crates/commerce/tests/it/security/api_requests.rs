//! The API's own guards: token scopes and revocation, idempotency keys.

use opterius_sim::Target;
use serde_json::{Value, json};

use super::cli;
use crate::support::{Catalog, CatalogIds, TestApp};

async fn with_token(
    app: &TestApp,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(
            method.parse().expect("method"),
            format!("{}{path}", app.base),
        )
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn provision_tokens_cannot_reach_servers_and_a_revoked_token_is_refused_at_once() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        group_id: group,
        server_id: server,
        product_id: product,
        ..
    } = Catalog::on(&app).auto_setup("manual").build().await;
    let created = cli(
        &app,
        &[
            "token",
            "create",
            "--name",
            "billing",
            "--scope",
            "provision",
        ],
    );
    let stdout = String::from_utf8_lossy(&created.stdout);
    let token = stdout.lines().last().expect("token line").trim().to_owned();
    assert!(token.starts_with("opc_"), "{stdout}");
    let order = json!({"client": {"email": "b@example.com", "name": "B"}, "product_id": product, "domain": "billing.example.com"});
    let (status, placed) = with_token(&app, &token, "POST", "/api/v1/orders", Some(order)).await;
    assert_eq!(status, 201, "{placed}");
    let sid = placed["services"][0]["id"].as_i64().expect("id");
    for (method, path) in [
        ("GET", format!("/api/v1/services/{sid}")),
        ("GET", "/api/v1/provisioning-log".to_owned()),
        ("GET", "/api/v1/products".to_owned()),
    ] {
        let (status, body) = with_token(&app, &token, method, &path, None).await;
        assert_eq!(status, 200, "{method} {path}: {body}");
    }
    let (status, body) = with_token(
        &app,
        &token,
        "POST",
        &format!("/api/v1/services/{sid}/create"),
        None,
    )
    .await;
    assert_eq!(status, 202, "lifecycle actions are provisioning: {body}");
    let probe = json!({"module": "opterius", "credentials": {"api_url": "https://10.0.0.1", "api_token": "x-token-1"}});
    for (method, path, body) in [
        (
            "POST",
            "/api/v1/servers".to_owned(),
            Some(json!({"name": "x", "module": "opterius", "group_id": group, "credentials": {}})),
        ),
        ("GET", "/api/v1/servers".to_owned(), None),
        ("POST", "/api/v1/servers/test".to_owned(), Some(probe)),
        ("POST", format!("/api/v1/servers/{server}/test"), None),
        (
            "PATCH",
            format!("/api/v1/servers/{server}"),
            Some(json!({"name": "y"})),
        ),
        (
            "POST",
            "/api/v1/server-groups".to_owned(),
            Some(json!({"name": "g2"})),
        ),
        (
            "POST",
            "/api/v1/products".to_owned(),
            Some(json!({"name": "p2"})),
        ),
    ] {
        let (status, answer) = with_token(&app, &token, method, &path, body).await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .is_some_and(|e| e.contains("admin")),
            "{answer}"
        );
    }
    // Revoked by another process: refused on the very next request.
    cli(&app, &["token", "revoke", "billing"]);
    let (status, body) = with_token(&app, &token, "GET", "/api/v1/products", None).await;
    assert_eq!(status, 401, "{body}");
    let listed = cli(&app, &["token", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    let line = listed
        .lines()
        .find(|l| l.contains("billing"))
        .expect("listed");
    assert!(line.contains("provision"), "{listed}");
    assert_eq!(
        line.matches("UTC").count(),
        3,
        "created, last used, revoked: {line}"
    );
    assert!(!listed.contains(&token), "never the value");
    app.finish().await;
}

async fn order_with_key(app: &TestApp, key: &str, body: &Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/orders", app.base))
        .bearer_auth(&app.token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("order");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json"))
}

#[tokio::test]
async fn the_same_idempotency_key_twice_makes_one_order() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        product_id: product,
        ..
    } = Catalog::on(&app).build().await;
    let body = json!({"client": {"email": "retry@example.com", "name": "R"}, "product_id": product, "domain": "retry.example.com"});
    let (first_status, first) = order_with_key(&app, "order-7f3a", &body).await;
    assert_eq!(first_status, 201, "{first}");
    // A retry after a timeout, and two more racing each other.
    let (again_status, again) = order_with_key(&app, "order-7f3a", &body).await;
    assert_eq!((again_status, &again), (201, &first));
    let (a, b) = tokio::join!(
        order_with_key(&app, "order-race", &body),
        order_with_key(&app, "order-race", &body)
    );
    assert_eq!(a.1["id"], b.1["id"], "{a:?} {b:?}");
    // The same key with another body is refused, and creates nothing.
    let other = json!({"client": {"email": "retry@example.com", "name": "R"}, "product_id": product, "domain": "other.example.com"});
    let (status, refused) = order_with_key(&app, "order-7f3a", &other).await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused["fields"]["Idempotency-Key"].is_array(), "{refused}");
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&app.state.pool)
        .await
        .expect("count");
    assert_eq!(orders, 2, "one order per key");
    let sid = first["services"][0]["id"].as_i64().expect("id");
    app.settle(sid, &["active"]).await;
    assert_eq!(app.sim.creates(Target::All).get("retry").copied(), Some(1));
    app.finish().await;
}
