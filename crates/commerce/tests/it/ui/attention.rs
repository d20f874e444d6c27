//! Needs attention and the "Retry all like this" confirmations, in Chromium.

use opterius_sim::Target;

use super::{Browser, create_admin};
use crate::support::{Catalog, CatalogIds, TestApp};

#[tokio::test]
async fn admin_sees_failed_services_grouped_on_needs_attention_and_retries_all_like_this_from_the_log_and_the_list_after_a_confirmation()
 {
    let app = TestApp::spawn_with_settings(&[("PROVISION_MAX_ATTEMPTS", "1")]).await;
    create_admin(&app).await;
    let CatalogIds {
        product_id: product,
        ..
    } = Catalog::on(&app).build().await;
    app.sim.set_packages(Target::All, &["Other"]);
    let services = app
        .orders(product, 6, |i| format!("attn{i}.example.com"))
        .await;
    for sid in &services {
        app.settle(*sid, &["failed"]).await;
    }
    let b = Browser::start(&app.base).await;
    b.login().await;

    b.goto("/admin/attention").await;
    let group = b
        .wait_text(".attention-group h2", |t| t.contains("panel-0"))
        .await;
    assert!(group.contains('6'), "{group}");
    let hint = b.text(".attention-group .hint").await;
    assert!(hint.contains("Package names are case-sensitive"), "{hint}");
    b.screenshot("needs-attention").await;

    app.sim.set_packages(Target::All, &["Starter"]);
    // The log viewer, filtered to one service's failed creates: retry it.
    b.goto(&format!(
        "/admin/log?status=failed&action=create&service_id={}",
        services[0]
    ))
    .await;
    let summary = b.text("#log-retry-all summary").await;
    assert_eq!(summary, "Retry all like this");
    // Opening it counts the services (htmx swaps the confirmation in).
    b.click("#log-retry-all summary").await;
    let confirm = b
        .wait_text("#log-retry-all-confirm", |t| !t.is_empty())
        .await;
    assert_eq!(confirm, "Yes, retry 1 services");
    b.screenshot("log-retry-all").await;
    b.click("#log-retry-all-confirm").await;
    b.wait_text("#flash", |t| t.contains("Retry queued for 1 services"))
        .await;
    app.settle(services[0], &["active"]).await;
    // Its failed row still matches the filter, but it is active now.
    b.goto("/admin/log?status=failed&action=create").await;
    b.click("#log-retry-all summary").await;
    let confirm = b
        .wait_text("#log-retry-all-confirm", |t| !t.is_empty())
        .await;
    assert_eq!(confirm, "Yes, retry 5 services");

    b.goto("/admin/services?status=failed&kind=validation")
        .await;
    let summary = b.text("#bulk-retry summary").await;
    assert_eq!(summary, "Retry all 5 like this");
    b.click("#bulk-retry summary").await;
    let confirm = b.wait_text("#bulk-retry-confirm", |t| !t.is_empty()).await;
    assert_eq!(confirm, "Yes, retry 5 services");
    b.click("#bulk-retry-confirm").await;
    b.wait_text("#flash", |t| t.contains("Retry queued for 5 services"))
        .await;
    for sid in &services {
        app.settle(*sid, &["active"]).await;
    }
    assert_eq!(app.sim.accounts(Target::Server(0)).len(), 6);
    b.goto("/admin/attention").await;
    b.wait_text(".empty", |t| t.contains("Nothing failed"))
        .await;
    b.close().await;
    app.finish().await;
}
