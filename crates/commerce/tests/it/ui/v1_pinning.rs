//! A self-signed v1 Panel pinned from the browser, and a v1 service's page
//! end to end.

use opterius_sim::{SimConfig, Target};
use serde_json::json;

use super::{Browser, Http, admin_urls, assert_no_secret, create_admin, htmx_idle, ids};
use crate::support::{Catalog, CatalogIds, TestApp};

/// A service whose simulated Panels are self-signed, with an admin: the
/// app, Panel 0's API key and its certificate's SHA-256.
async fn self_signed_panel() -> (TestApp, String, String) {
    let app = TestApp::spawn_with(
        SimConfig {
            tls: true,
            servers: 4,
            ..Default::default()
        },
        &[],
    )
    .await;
    create_admin(&app).await;
    let key = app.sim.api_key(0);
    let pin = opterius::tls::fingerprint(app.sim.certificate_der().expect("tls"));
    (app, key, pin)
}

/// The server form for a v2.8 Panel: the module's own fields, the
/// self-signed certificate shown by Test Connection and pinned from there,
/// the badge online; then the product form lists that Panel's packages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_v1_panel_is_pinned_from_the_server_form_and_its_packages_fill_the_product_form()
 {
    let (app, key, pin) = self_signed_panel().await;
    let b = Browser::start(&app.base).await;
    b.login().await;
    b.goto("/admin/groups").await;
    b.fill("#group-name", "Panel 2.8").await;
    b.click("#create-group").await;
    b.wait_text(".flash-success", |t| t.contains("Panel 2.8"))
        .await;

    // A v2.8 Panel with its opt_ key: the module's own fields, then the
    // self-signed certificate is shown by Test Connection and pinned from there.
    b.goto("/admin/servers/new").await;
    b.fill("#name", "panel-v1").await;
    b.select_index("#module", 1).await;
    b.find("[name='credentials.api_key']").await;
    htmx_idle(&b).await;
    b.select_index("#group_id", 1).await;
    b.fill("[name='credentials.api_url']", &app.sim.server_url(0))
        .await;
    b.fill("[name='credentials.api_key']", &key).await;
    b.mark().await;
    b.click("#test-connection").await;
    let bad = b
        .wait_text("#test-banner", |t| t.contains("SSL certificate"))
        .await;
    assert!(bad.contains("Trust this certificate"), "{bad}");
    assert_eq!(b.text("#certificate-sha256").await, pin);
    b.screenshot("v1-server-form-certificate").await;
    b.click("#trust-certificate").await;
    assert_eq!(b.value("#tls_mode").await, "pinned");
    assert_eq!(b.value("#tls_sha256").await, pin);
    b.click("#test-connection").await;
    let ok = b
        .wait_text("#test-banner", |t| t.contains("Connected"))
        .await;
    assert!(
        ok.contains("Opterius Panel") && ok.contains("2.4.1-sim"),
        "{ok}"
    );
    b.assert_no_page_load("Test Connection").await;
    b.click("#save").await;
    b.wait_text(".flash-success", |t| t.contains("panel-v1"))
        .await;
    let server_id = ids(&app, "servers").await[0];
    b.click(&format!("#server-{server_id} .plug")).await;
    b.wait_text(&format!("#health-{server_id} .badge"), |t| t == "Online")
        .await;

    // The product form lists the Panel's packages (exact case) for this module.
    b.goto("/admin/products/new").await;
    b.fill("#name", "Panel 2.8 Starter").await;
    b.select_index("#module", 1).await;
    htmx_idle(&b).await;
    b.select_index("#group_id", 1).await;
    htmx_idle(&b).await;
    let choices = b.text("select#package").await;
    assert!(
        choices.contains("Starter") && choices.contains("Pro"),
        "{choices}"
    );
    b.select_index("select#package", 1).await;
    b.screenshot("v1-product-form-packages").await;
    b.click("#save").await;
    b.wait_text(".flash-success", |t| t.contains("\"Starter\""))
        .await;

    b.close().await;
    app.finish().await;
}

/// A v1 service in the browser, on a pinned self-signed Panel: an order
/// becomes active; an abuse suspension with a note needs a ticked
/// confirmation to lift; a new password; the welcome mail resent with it;
/// another package; terminate. Every call went to /api/v1, and no page
/// carries the Panel's key or a password. The server comes from the API (the
/// pinning has its own test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_service_is_suspended_for_abuse_given_a_new_password_and_package_and_terminated_from_its_page()
 {
    let (app, key, pin) = self_signed_panel().await;
    let CatalogIds { group_id, .. } = Catalog::v1(&app).pinned(&pin).build().await;
    let b = Browser::start(&app.base).await;
    b.login().await;

    b.create_client("Alice Shop", "alice@example.com").await;
    b.place_order("alice-shop.example.com", "active").await;
    let service_id = ids(&app, "services").await[0];
    assert_eq!(app.sim.accounts(Target::Server(0))[0].username, "aliceshop");

    // Suspend, unsuspend, terminate reach the Panel by username.
    b.goto(&format!("/admin/services/{service_id}")).await;
    b.wait_service_settled("active").await;
    // Suspended for abuse, with a note: lifting it needs a ticked confirmation.
    b.js("document.querySelector('#suspend-reason').value = 'abuse'")
        .await;
    b.fill("#suspend-note", "spam run, ticket 77").await;
    b.click("#action-suspend").await;
    b.wait_text("#service-status", |t| t == "suspended").await;
    assert!(app.sim.accounts(Target::Server(0))[0].suspended);
    b.wait_service_settled("suspended").await;
    b.wait_text("#suspension-reason", |t| t == "Abuse").await;
    b.wait_text("#suspension-note", |t| t == "spam run, ticket 77")
        .await;
    b.mark().await;
    b.click("#action-unsuspend").await;
    b.assert_no_page_load("an unticked abuse confirmation")
        .await;
    assert!(app.sim.accounts(Target::Server(0))[0].suspended);
    b.click("#confirm-abuse").await;
    b.click("#action-unsuspend").await;
    b.wait_text("#service-status", |t| t == "active").await;
    b.wait_service_settled("active").await;
    // What the module can do beyond the seeds: a new password, another package.
    let before = app.passwords().await;
    b.click("#action-change-password").await;
    b.wait_text(".flash", |t| t.contains("Password change queued"))
        .await;
    b.wait_text("#service-log", |t| t.contains("change_password"))
        .await;
    b.wait_service_settled("active").await;
    assert_ne!(app.passwords().await, before);
    // The demo's mailbox (no SMTP_URL): the welcome mail went out on
    // activation; a resend goes out again with the current password.
    b.wait_text("#welcome-mail", |t| t.contains("welcome mail sent at"))
        .await;
    let mails = |app: &TestApp| -> Vec<String> {
        let mut files: Vec<String> = std::fs::read_dir(&app.state.config.mail_dir)
            .map(|d| {
                d.flatten()
                    .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    };
    let before = mails(&app).len();
    b.click("#action-resend-welcome").await;
    b.wait_text(".flash", |t| t.contains("Welcome mail queued"))
        .await;
    app.wait_until("the resent welcome mail arriving", || async {
        let n = mails(&app).len();
        if n > before {
            Ok(())
        } else {
            Err(format!("{n} mail files"))
        }
    })
    .await;
    let current = app.passwords().await.remove(0);
    let unfolded = |m: &String| m.replace("=\r\n", "").replace("=3D", "=");
    assert!(
        mails(&app)
            .iter()
            .any(|m| m.contains("Your hosting account") && unfolded(m).contains(&current)),
        "the resent welcome mail carries the current password"
    );
    app.post(
        "/api/v1/products",
        json!({"name": "Panel 2.8 Pro", "module": "opterius_v1", "group_id": group_id, "package": "Pro"}),
    )
    .await;
    b.goto(&format!("/admin/services/{service_id}")).await;
    b.select_index("#change-package-product", 0).await;
    b.click("#action-change-package").await;
    b.wait_text("#service-log", |t| t.contains("change_package"))
        .await;
    app.drain().await;
    assert_eq!(
        app.sim.accounts(Target::Server(0))[0].package,
        "Pro",
        "the package changed on the Panel"
    );
    b.screenshot("v1-service-changed").await;
    b.goto(&format!("/admin/services/{service_id}")).await;
    b.wait_service_settled("active").await;
    b.click(".danger-zone summary").await;
    b.fill("#confirm_domain", "alice-shop.example.com").await;
    b.click("#terminate").await;
    b.wait_text("#service-status", |t| t == "terminated").await;
    assert!(app.sim.accounts(Target::Server(0)).is_empty());
    b.screenshot("v1-service-terminated").await;
    b.close().await;
    let on_panel: Vec<String> = app
        .sim
        .requests()
        .iter()
        .filter(|r| r.status.is_some())
        .map(|r| r.path.clone())
        .collect();
    assert!(
        on_panel.iter().all(|p| p.contains("/api/v1/")),
        "{on_panel:?}"
    );

    let mut secrets = app.passwords().await;
    secrets.push(key);
    let mut http = Http::signed_in(&app).await;
    for url in admin_urls(&app).await {
        let (status, body) = http.get(&url).await;
        assert_eq!(status, 200, "GET {url}: {body}");
        assert_no_secret(&url, &body, &secrets);
    }
    app.finish().await;
}
