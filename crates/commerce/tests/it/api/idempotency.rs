//! Idempotent outcomes: suspending twice, terminating a vanished account.

use serde_json::json;

use crate::support::{Catalog, CatalogIds, LogEntry, TestApp};

#[tokio::test]
async fn suspending_twice_and_terminating_a_vanished_account_are_idempotent_and_logged() {
    let app = TestApp::spawn().await;
    let CatalogIds { product_id, .. } = Catalog::on(&app).build().await;
    let sid = app.order(product_id, "kate.example.com").await.service_id();
    let service = app.settle(sid, &["active"]).await;
    for round in 1..=2 {
        app.post(&format!("/api/v1/services/{sid}/suspend"), json!({}))
            .await;
        app.wait_for_log(sid, |log| {
            log.iter()
                .filter(|e| e.outcome() == ("suspend", "success"))
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
        .terminate_account(service.panel_account_id.as_deref().expect("id"))
        .await
        .result
        .expect("gone");
    app.queue_with(sid, "terminate", json!({"confirm": "kate.example.com"}))
        .await;
    app.settle(sid, &["terminated"]).await;
    let log = app.log_for(sid).await;
    let rows: Vec<(&str, &str)> = log.iter().map(LogEntry::outcome).collect();
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
    assert_eq!(last.http_status, Some(404));
    assert!(
        last.message
            .as_deref()
            .is_some_and(|m| m.contains("no longer has")),
        "{last:?}"
    );
    app.finish().await;
}
