//! An account's life beyond the seeds, end to end: suspension reasons (an
//! unsuspend on payment never lifts an abuse suspension), client mail through
//! a real SMTP conversation, usage schedules and drift.

use opterius_sim::Target;
use serde_json::{Value, json};

use crate::support::TestApp;
use crate::v1::v1_catalog;

fn service_id(order: &Value) -> i64 {
    order["services"][0]["id"].as_i64().expect("service id")
}

fn panel_calls(app: &TestApp, path_end: &str) -> usize {
    app.sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(path_end))
        .count()
}

#[tokio::test]
async fn an_overdue_unsuspend_leaves_an_abuse_suspension_alone() {
    let app = TestApp::spawn().await;
    let (_, _, product) = v1_catalog(&app, "Starter", "on_order").await;
    let sid = service_id(&app.order(product, "rita.example.com").await);
    app.settle(sid, &["active"]).await;

    // Unknown fields are named in a 422; nothing is queued.
    let (status, body) = app
        .call(
            "POST",
            &format!("/api/v1/services/{sid}/suspend"),
            Some(json!({"reason": "abuse", "why": "spam"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["fields"].get("why").is_some(), "{body}");
    let (status, body) = app
        .call(
            "POST",
            &format!("/api/v1/services/{sid}/suspend"),
            Some(json!({"reason": "late"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["fields"].get("reason").is_some(), "{body}");
    assert_eq!(panel_calls(&app, "/accounts/suspend"), 0);

    let (status, body) = app
        .call(
            "POST",
            &format!("/api/v1/services/{sid}/suspend"),
            Some(json!({"reason": "abuse", "note": "phishing kit, ticket 4411"})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let service = app.settle(sid, &["suspended"]).await;
    assert_eq!(service["suspension_reason"], "abuse", "{service}");
    assert_eq!(service["suspension_note"], "phishing kit, ticket 4411");
    let account = &app.sim.accounts(Target::Server(0))[0];
    assert!(account.suspended);
    assert_eq!(
        app.sim.v1_meta(0)[&account.id]["suspend_reason"],
        "abuse: phishing kit, ticket 4411",
        "the reason reaches the Panel"
    );

    // Payment arrives: the billing system lifts only what it suspended.
    let (status, body) = app
        .call(
            "POST",
            &format!("/api/v1/services/{sid}/unsuspend"),
            Some(json!({"only_if_reason": "overdue"})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap_or_default().contains("abuse"),
        "{body}"
    );
    let (status, body) = app
        .call(
            "POST",
            &format!("/api/v1/services/{sid}/unsuspend"),
            Some(json!({"only_if": "overdue"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["fields"].get("only_if").is_some(), "{body}");
    assert_eq!(
        panel_calls(&app, "/accounts/unsuspend"),
        0,
        "nothing reached the Panel"
    );
    let service = app.get(&format!("/api/v1/services/{sid}")).await;
    assert_eq!(service["status"], "suspended");
    assert!(app.sim.accounts(Target::Server(0))[0].suspended);

    // The admin's decision (abuse) lifts it; the reason goes with it.
    let (status, body) = app
        .call(
            "POST",
            &format!("/api/v1/services/{sid}/unsuspend"),
            Some(json!({"only_if_reason": "abuse"})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let service = app.settle(sid, &["active"]).await;
    assert!(service["suspension_reason"].is_null(), "{service}");
    assert_eq!(panel_calls(&app, "/accounts/unsuspend"), 1);

    // No body at all means reason other, which an overdue unsuspend leaves
    // alone too; an overdue suspension is lifted by an overdue unsuspend.
    let (status, _) = app
        .call("POST", &format!("/api/v1/services/{sid}/suspend"), None)
        .await;
    assert_eq!(status, 202);
    let service = app.settle(sid, &["suspended"]).await;
    assert_eq!(service["suspension_reason"], "other");
    let account = &app.sim.accounts(Target::Server(0))[0];
    assert_eq!(app.sim.v1_meta(0)[&account.id]["suspend_reason"], "other");
    let (status, _) = app
        .call(
            "POST",
            &format!("/api/v1/services/{sid}/unsuspend"),
            Some(json!({"only_if_reason": "overdue"})),
        )
        .await;
    assert_eq!(status, 409);
    app.post(&format!("/api/v1/services/{sid}/unsuspend"), json!({}))
        .await;
    app.settle(sid, &["active"]).await;
    app.post(
        &format!("/api/v1/services/{sid}/suspend"),
        json!({"reason": "overdue"}),
    )
    .await;
    app.settle(sid, &["suspended"]).await;
    app.post(
        &format!("/api/v1/services/{sid}/unsuspend"),
        json!({"only_if_reason": "overdue"}),
    )
    .await;
    app.settle(sid, &["active"]).await;
    assert_eq!(panel_calls(&app, "/accounts/unsuspend"), 3);
    app.finish().await;
}
