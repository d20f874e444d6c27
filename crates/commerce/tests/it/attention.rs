//! The Needs attention page's dismiss and the log viewer's "Retry all like
//! this", over HTTP with an admin session: what each takes off the page or
//! queues, and what it must leave alone.

use opterius_sim::{Faults, Target};

use crate::support::{Catalog, CatalogIds, TestApp};
use crate::ui::{ADMIN_EMAIL, Http, create_admin};

/// A signed-in admin client.
async fn admin(app: &TestApp) -> Http {
    create_admin(app).await;
    Http::signed_in(app).await
}

/// Posts a form with the session's CSRF token; returns status and Location.
async fn post(http: &mut Http, path: &str, form: &[(&str, &str)]) -> (u16, String, String) {
    let csrf = http.csrf.clone();
    let mut fields = form.to_vec();
    fields.push(("_csrf", csrf.as_str()));
    let (status, headers, body) = http.send("POST", path, Some(&fields), &[]).await;
    let location = headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, location, body)
}

/// The part of the Needs attention page that lists what to fix (the groups),
/// without the "Dismissed" section below it.
fn groups_part(page: &str) -> &str {
    page.split("id=\"attention-dismissed\"")
        .next()
        .unwrap_or_default()
}

async fn failed_order(app: &TestApp, product: i64, domain: &str) -> i64 {
    let sid = app.order(product, domain).await.service_id();
    app.settle(sid, &["failed"]).await;
    sid
}

#[tokio::test]
async fn dismissing_a_failed_service_takes_it_off_needs_attention_until_it_fails_again() {
    let app = TestApp::spawn_with_settings(&[("PROVISION_MAX_ATTEMPTS", "1")]).await;
    let mut http = admin(&app).await;
    let CatalogIds {
        product_id: product,
        ..
    } = Catalog::on(&app).build().await;
    app.sim.set_packages(Target::All, &["Other"]);
    let gone = failed_order(&app, product, "gone.example.com").await;
    let kept = failed_order(&app, product, "kept.example.com").await;
    let link = |id: i64| format!("href=\"/admin/services/{id}\"");

    let (_, page) = http.get("/admin/attention").await;
    assert!(groups_part(&page).contains(&link(gone)), "{page}");
    assert!(groups_part(&page).contains("Retry all 2"), "{page}");

    let (status, location, body) =
        post(&mut http, &format!("/admin/attention/{gone}/dismiss"), &[]).await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/admin/attention"),
        "{body}"
    );
    let (_, page) = http.get("/admin/attention").await;
    assert!(
        page.contains("dismissed from Needs attention"),
        "the flash: {page}"
    );
    let groups = groups_part(&page);
    assert!(!groups.contains(&link(gone)), "no longer listed: {groups}");
    assert!(groups.contains(&link(kept)), "{groups}");
    assert!(
        groups.contains("Retry all 1") && groups.contains("name=\"dismissed\" value=\"0\""),
        "the group's count and its bulk retry leave the dismissed one out: {groups}"
    );
    let dismissed = page
        .split("id=\"attention-dismissed\"")
        .nth(1)
        .unwrap_or_default();
    assert!(
        dismissed.contains(&link(gone)) && dismissed.contains(ADMIN_EMAIL),
        "who dismissed it is shown: {dismissed}"
    );
    // Nothing was deleted: the service, its failure and its log stay.
    let s = app.service(gone).await;
    assert_eq!(
        (s.status.as_str(), s.error_kind()),
        ("failed", "validation")
    );
    assert!(!app.log_for(gone).await.is_empty());
    let (by, at_set): (String, bool) = sqlx::query_as(
        "SELECT admin_email, created_at <= now() FROM attention_dismissals WHERE service_id = $1",
    )
    .bind(gone)
    .fetch_one(&app.state.pool)
    .await
    .expect("dismissal");
    assert_eq!((by.as_str(), at_set), (ADMIN_EMAIL, true));

    // The group's retry-all retries only what the page showed.
    let (status, _, _) = post(
        &mut http,
        "/admin/services/retry",
        &[
            ("status", "failed"),
            ("dismissed", "0"),
            ("kind", "validation"),
            ("expected", "1"),
            ("back", "attention"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let (_, page) = http.get("/admin/attention").await;
    assert!(page.contains("Retry queued for 1 services"), "{page}");
    app.wait_for_log(kept, |log| log.len() == 2).await;
    app.settle(kept, &["failed"]).await;
    assert_eq!(
        app.log_for(gone).await.len(),
        1,
        "the dismissed one was not retried"
    );

    // A new failure brings it back.
    app.queue(gone, "retry").await;
    app.wait_for_log(gone, |log| log.len() == 2).await;
    app.settle(gone, &["failed"]).await;
    let (_, page) = http.get("/admin/attention").await;
    assert!(
        groups_part(&page).contains(&link(gone)),
        "failed again: listed again: {page}"
    );
    assert!(!page.contains("id=\"attention-dismissed\""), "{page}");

    // Only a failed service can be dismissed; the answer says why.
    app.sim.set_packages(Target::All, &["Starter"]);
    app.queue(gone, "retry").await;
    app.settle(gone, &["active"]).await;
    let (status, _, body) = post(&mut http, &format!("/admin/attention/{gone}/dismiss"), &[]).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("is active, not failed"), "{body}");
    app.finish().await;
}

#[tokio::test]
async fn retry_all_on_a_filtered_log_retries_each_service_failed_now_once() {
    let app = TestApp::spawn_with_settings(&[("PROVISION_MAX_ATTEMPTS", "2")]).await;
    let mut http = admin(&app).await;
    let CatalogIds {
        product_id: product,
        ..
    } = Catalog::on(&app).build().await;
    // One create fails once and then succeeds: a failed log row, an active service.
    app.sim.set_faults(
        Target::All,
        Faults {
            status: Some(503),
            only: Some("create".into()),
            remaining: Some(1),
            ..Default::default()
        },
    );
    let active = app
        .order(product, "recovered.example.com")
        .await
        .service_id();
    app.settle(active, &["active"]).await;
    // Three fail twice each (two failed rows per service) and stay failed.
    app.sim.set_faults(
        Target::All,
        Faults {
            status: Some(503),
            only: Some("create".into()),
            ..Default::default()
        },
    );
    let mut failed = Vec::new();
    for i in 0..3 {
        failed.push(failed_order(&app, product, &format!("twice{i}.example.com")).await);
    }
    app.sim.clear_faults();
    let failed_rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM provisioning_log WHERE status = 'failed'")
            .fetch_one(&app.state.pool)
            .await
            .expect("rows");
    assert_eq!(failed_rows, 7);

    // The filtered view offers the bulk retry; it counts when opened.
    let (_, page) = http.get("/admin/log?status=failed&action=create").await;
    assert!(
        page.contains(r#"hx-get="/admin/log/retry?action=create&#38;status=failed""#),
        "{page}"
    );
    let (_, confirm) = http
        .get("/admin/log/retry?action=create&status=failed")
        .await;
    assert!(
        confirm.contains("Yes, retry 3 services"),
        "three services, not seven rows, not the active one: {confirm}"
    );
    // htmx gets the confirmation alone, to swap into the opened summary.
    let (_, _, fragment) = http
        .send(
            "GET",
            "/admin/log/retry?action=create&status=failed",
            None,
            &[("hx-request", "true")],
        )
        .await;
    assert!(
        fragment.starts_with("<form") && fragment.contains("Yes, retry 3 services"),
        "{fragment}"
    );
    let (_, one) = http
        .get(&format!(
            "/admin/log/retry?status=failed&service_id={}",
            failed[0]
        ))
        .await;
    assert!(one.contains("Yes, retry 1 services"), "{one}");
    let (_, unfiltered) = http.get("/admin/log").await;
    assert!(
        !unfiltered.contains("log-retry-all"),
        "no bulk action without a filter"
    );

    let (status, location, _) = post(
        &mut http,
        "/admin/log/retry",
        &[
            ("status", "failed"),
            ("action", "create"),
            ("expected", "3"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(location, "/admin/log?action=create&status=failed");
    let (_, page) = http.get(&location).await;
    assert!(page.contains("Retry queued for 3 services."), "{page}");
    for sid in &failed {
        app.settle(*sid, &["active"]).await;
        let creates = app.log_for(*sid).await;
        assert_eq!(creates.len(), 3, "two failures and one retry: {creates:?}");
    }
    assert_eq!(
        app.log_for(active).await.len(),
        2,
        "the active one was left alone"
    );
    let creates = app.sim.creates(Target::All);
    assert!(
        creates.values().all(|n| *n == 1),
        "no account twice: {creates:?}"
    );
    assert_eq!(creates.len(), 4);

    // Nothing failed now: the same view's confirmation offers nothing.
    let (_, confirm) = http
        .get("/admin/log/retry?action=create&status=failed")
        .await;
    assert!(
        confirm.contains("nothing to retry") && !confirm.contains("log-retry-all-confirm"),
        "{confirm}"
    );
    // Without a filter there is nothing to confirm: back to the log, saying why.
    let (status, headers, _) = http.send("GET", "/admin/log/retry", None, &[]).await;
    assert_eq!(status, 303);
    let (_, page) = http
        .get(headers["location"].to_str().expect("location"))
        .await;
    assert!(page.contains("Retry all needs a filter"), "{page}");
    let (status, location, _) = post(&mut http, "/admin/log/retry", &[]).await;
    assert_eq!(status, 303);
    let (_, page) = http.get(&location).await;
    assert!(page.contains("Retry all needs a filter"), "{page}");
    app.finish().await;
}
