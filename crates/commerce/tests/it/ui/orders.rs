//! Orders and services in Chromium, from a failed order to a terminated account.

use std::time::Instant;

use opterius_sim::Target;

use super::{Browser, create_admin, ids};
use crate::support::TestApp;

/// Orders end to end in the browser: a product with the wrong package case,
/// a client and an order that fails with the hint on the order, the service
/// and the log entry; the fix and a retry make it active; suspend, unsuspend,
/// a refused and then a confirmed terminate; an on-payment order waits for
/// "Mark paid". The server comes from the API (the servers screen has its own test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_that_fails_on_the_package_case_is_fixed_retried_and_taken_through_its_lifecycle_in_the_browser()
 {
    let started = Instant::now();
    let app = TestApp::spawn().await;
    create_admin(&app).await;
    let group = app.group("Shared EU", "least_full").await;
    app.add_server("panel-0", group, 0, 0).await;
    let b = Browser::start(&app.base).await;
    b.login().await;

    // A product with the wrong package case, a client, an order: it fails with the hint.
    b.goto("/admin/products/new").await;
    b.fill("#name", "Starter plan").await;
    b.select_index("#group_id", 1).await;
    b.fill("#package", "starter").await;
    b.fill("#disk_limit_mb", "1024").await;
    b.click("#save").await;
    b.wait_text(".flash-success", |t| t.contains("Starter plan"))
        .await;
    b.create_client("Alice Shop", "alice@example.com").await;
    b.place_order("alice-shop.example.com", "failed").await;
    let progress = b.text("#order-progress").await;
    assert!(
        progress.contains("Package names are case-sensitive"),
        "{progress}"
    );
    b.screenshot("order-failed").await;
    let service_id = ids(&app, "services").await[0];

    b.goto(&format!("/admin/services/{service_id}")).await;
    let panel = b.text("#service-panel").await;
    assert!(
        panel.contains("Package names are case-sensitive"),
        "{panel}"
    );
    b.goto(&format!("/admin/log?service_id={service_id}")).await;
    assert!(b.text("#log").await.contains("failed"));
    b.click("#log tbody tr td a").await;
    b.wait_text("#entry-status", |t| t == "failed").await;
    assert!(
        b.text(".error-box")
            .await
            .contains("Package names are case-sensitive")
    );
    b.find("#retry").await;
    b.screenshot("log-entry-failed").await;

    // Fix the package, retry from the service page: it becomes active.
    b.goto("/admin/products").await;
    b.click("#products tbody a").await;
    b.fill("#package", "Starter").await;
    b.click("#save").await;
    b.wait_text(".flash-success", |t| t.contains("\"Starter\""))
        .await;
    b.goto(&format!("/admin/services/{service_id}")).await;
    b.click("#action-retry").await;
    b.wait_text("#service-status", |t| t == "active").await;
    b.wait_text("#panel-account-id", |t| t != "—").await;
    assert_eq!(app.sim.accounts(Target::Server(0))[0].package, "Starter");
    b.screenshot("service-active").await;

    // Suspend, unsuspend, terminate (a wrong domain is refused).
    b.wait_service_settled("active").await;
    // The seed module: no password or package change, and the page says why.
    b.wait_text("#module-cannot", |t| {
        t.contains("cannot change packages or set passwords")
    })
    .await;
    b.click("#action-suspend").await;
    b.wait_text("#service-status", |t| t == "suspended").await;
    assert!(app.sim.accounts(Target::Server(0))[0].suspended);
    b.wait_service_settled("suspended").await;
    b.click("#action-unsuspend").await;
    b.wait_text("#service-status", |t| t == "active").await;
    b.wait_service_settled("active").await;
    let danger = b.text(".danger-zone").await;
    b.click(".danger-zone summary").await;
    let danger_open = b.text(".danger-zone").await;
    assert!(
        danger_open.contains("irreversible")
            && danger_open.contains("files, databases and email are destroyed"),
        "{danger} / {danger_open}"
    );
    b.fill("#confirm_domain", "other.example.com").await;
    b.click("#terminate").await;
    b.wait_text(".flash-error", |t| t.contains("Nothing was terminated"))
        .await;
    assert_eq!(b.text("#service-status").await, "active");
    assert_eq!(app.sim.accounts(Target::Server(0)).len(), 1);
    b.click(".danger-zone summary").await;
    b.fill("#confirm_domain", "alice-shop.example.com").await;
    b.screenshot("service-terminate-confirm").await;
    b.click("#terminate").await;
    b.wait_text("#service-status", |t| t == "terminated").await;
    assert!(app.sim.accounts(Target::Server(0)).is_empty());
    b.screenshot("service-terminated").await;

    // A product set up on payment: the order waits until "Mark paid".
    b.goto("/admin/products").await;
    b.click("#products tbody a").await;
    b.select_index("#auto_setup", 1).await;
    b.click("#save").await;
    b.wait_text(".flash-success", |t| t.contains("saved")).await;
    b.place_order("bob-shop.example.com", "pending").await;
    assert_eq!(b.text("#order-status").await, "pending");
    assert!(b.text("#order-progress").await.contains("set up when paid"));
    b.click("#mark-paid").await;
    b.wait_text(".flash-success", |t| t.contains("marked paid"))
        .await;
    assert_eq!(b.text("#order-status").await, "paid");
    b.wait_text("[data-service-status]", |t| t == "active")
        .await;
    b.screenshot("order-paid-active").await;

    for (path, name) in [
        ("/admin", "dashboard"),
        ("/admin/services", "services"),
        ("/admin/log", "log"),
        ("/admin/orders", "orders"),
        ("/admin/products", "products"),
        ("/admin/groups", "groups"),
        ("/admin/clients", "clients"),
    ] {
        b.goto(path).await;
        b.find("h1").await;
        b.screenshot(name).await;
    }

    b.close().await;
    println!(
        "admin UI order scenario took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    app.finish().await;
}
