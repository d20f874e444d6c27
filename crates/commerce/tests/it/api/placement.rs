//! Placement rules: disabled, offline and full servers are skipped; fill fills in order.

use opterius_sim::{Faults, Target};
use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn placement_skips_disabled_offline_and_full_servers_and_fill_fills_in_order() {
    let app = TestApp::spawn().await;
    let group = app.group("Fill", "fill").await;
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
    assert!(!app.test_server(offline).await.ok);
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
        let sid = app
            .order(product, &format!("fill{i}.example.com"))
            .await
            .service_id();
        placed.push(
            app.settle(sid, &["active"])
                .await
                .server_id
                .expect("server"),
        );
    }
    assert_eq!(placed, vec![first, first, second, second]);
    app.finish().await;
}
