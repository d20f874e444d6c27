//! Test all (the sweep) reports each enabled server with its own outcome.

use opterius_sim::{Faults, SimConfig, Target};
use serde_json::json;

use crate::support::TestApp;
use crate::support::model::{self, Sweep};

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
    let sweep: Sweep = model::parse(
        "Test all",
        app.post("/api/v1/servers/sweep", json!({})).await,
    );
    assert_eq!(
        sweep.results.len(),
        5,
        "disabled servers are skipped: {sweep:?}"
    );
    let outcome = |id: i64| {
        sweep
            .results
            .iter()
            .find(|r| r.server_id == id)
            .map(|r| (r.outcome.ok, r.outcome.error_kind()))
    };
    for id in &ids[..3] {
        assert_eq!(outcome(*id), Some((true, "")));
    }
    assert_eq!(outcome(ids[4]), Some((false, "timeout")), "{sweep:?}");
    assert_eq!(outcome(ids[5]), Some((false, "unauthorized")));
    for (id, status) in [(ids[0], "online"), (ids[4], "offline"), (ids[3], "unknown")] {
        assert_eq!(app.server(id).await.health.status, status, "server {id}");
    }
    app.finish().await;
}
