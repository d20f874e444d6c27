//! Server secrets are never returned; a PATCH without a token keeps it.

use opterius_sim::Target;
use serde_json::json;

use crate::support::{Catalog, CatalogIds, TestApp};

#[tokio::test]
async fn server_secrets_are_never_returned_and_a_patch_without_token_keeps_it() {
    let app = TestApp::spawn().await;
    let CatalogIds { server_id, .. } = Catalog::on(&app).auto_setup("manual").build().await;
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
    assert!(app.test_server(server_id).await.ok, "stored token kept");

    app.sim.rotate_token(Target::Server(0), "the-new-token-123");
    let failed = app.test_server(server_id).await;
    assert!(!failed.ok, "{failed:?}");
    let error = failed.error.as_ref().expect("the 401's failure");
    assert_eq!(error.kind, "unauthorized");
    assert!(error.hint.contains("Panel → Settings → API"), "{error:?}");
    let health = app.server(server_id).await.health;
    assert_eq!(health.status, "offline");
    assert_eq!(
        health.last_error.as_ref().map(|e| e.kind.as_str()),
        Some("unauthorized")
    );

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
    assert!(app.test_server(server_id).await.ok);
    let health = app.server(server_id).await.health;
    assert_eq!(
        (
            health.status.as_str(),
            health.panel_name.as_deref(),
            health.panel_version.as_deref()
        ),
        ("online", Some("sim-panel-0"), Some("2.4.1-sim"))
    );
    // With server_id, a blank token in an unsaved test means the stored one.
    let ok = app
        .post("/api/v1/servers/test", json!({"module": "opterius", "server_id": server_id, "credentials": {"api_url": url, "api_token": ""}}))
        .await;
    assert_eq!(ok["ok"], true, "{ok}");
    app.finish().await;
}
