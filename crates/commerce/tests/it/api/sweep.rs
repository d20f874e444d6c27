//! Test all (the sweep) reports each enabled server with its own outcome.

use opterius_sim::{Faults, SimConfig, Target};
use serde_json::{Value, json};

use crate::support::TestApp;

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
    let group = app.group("G", "least_full").await;
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
