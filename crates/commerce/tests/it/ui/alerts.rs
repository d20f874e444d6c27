//! The alerts page (a test alert) and a server's health chart, in Chromium.

use std::time::{Duration, Instant};

use opterius_sim::{Faults, Target};
use serde_json::json;

use super::{Browser, WAIT, create_admin};
use crate::support::{Catalog, CatalogIds, TestApp};

#[tokio::test]
async fn admin_sends_a_test_alert_sees_recent_alerts_and_the_servers_health_chart() {
    let (url, got) = crate::alerts::sink().await;
    let app = TestApp::spawn_with_settings(&[("ALERT_WEBHOOK_URL", url.as_str())]).await;
    create_admin(&app).await;
    let CatalogIds {
        server_id: server, ..
    } = Catalog::on(&app).build().await;
    for _ in 0..2 {
        app.post(&format!("/api/v1/servers/{server}/test"), json!({}))
            .await;
    }
    app.sim.set_faults(
        Target::Server(0),
        Faults {
            status: Some(401),
            ..Default::default()
        },
    );
    app.post(&format!("/api/v1/servers/{server}/test"), json!({}))
        .await;
    app.sim.clear_faults();

    let b = Browser::start(&app.base).await;
    b.login().await;
    b.goto("/admin/alerts").await;
    b.wait_text("#alerts tr[data-event='server_offline']", |t| {
        t.contains("offline") && t.contains("Fix:")
    })
    .await;
    b.click("#send-test-alert").await;
    b.wait_text("#flash", |t| t.contains("Test alert queued"))
        .await;
    let deadline = Instant::now() + WAIT;
    while !got
        .lock()
        .expect("lock")
        .iter()
        .any(|e| e["event"] == "test")
    {
        assert!(
            Instant::now() < deadline,
            "the test alert never reached the sink"
        );
        // Alerts are delivered by the alert loop, not by a job: nothing to drain.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.goto("/admin/alerts").await;
    b.wait_text("#alerts tr[data-event='test'] .alert-status", |t| {
        t.contains("sent")
    })
    .await;
    b.screenshot("alerts").await;

    b.goto(&format!("/admin/servers/{server}/edit")).await;
    let chart = b.find("#health-history svg.health-chart").await;
    assert_eq!(
        chart.attr("data-points").await.expect("attr").as_deref(),
        Some("3")
    );
    assert_eq!(
        chart.attr("data-offline").await.expect("attr").as_deref(),
        Some("1")
    );
    b.screenshot("server-health-chart").await;
    b.close().await;
    app.finish().await;
}
