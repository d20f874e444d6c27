//! One parse for each input: JSON bodies refuse unknown fields with a 422 that
//! names them, a path id or action that names nothing is a 404 in the shape of
//! the surface asked (JSON on the API, the admin's page in the UI), and the
//! log filters read the same on both.

use serde_json::{Value, json};

use crate::support::{self, Catalog, CatalogIds, TestApp};

fn field_names(body: &Value) -> Vec<String> {
    body["fields"]
        .as_object()
        .map(|m| {
            let mut names: Vec<String> = m.keys().cloned().collect();
            names.sort();
            names
        })
        .unwrap_or_default()
}

/// A client, a manual-setup product and one pending service on it.
async fn pending_service(app: &TestApp) -> (i64, String) {
    let CatalogIds {
        product_id: product,
        ..
    } = Catalog::on(app).auto_setup("manual").build().await;
    let order = app.order(product, "strict.example.com").await;
    let service = &order.services[0];
    (service.id, service.domain.clone())
}

#[tokio::test]
async fn a_misspelt_body_field_is_a_422_naming_it_and_nothing_happens() {
    let app = TestApp::spawn().await;
    let (id, domain) = pending_service(&app).await;
    let s = format!("/api/v1/services/{id}");
    let cases = [
        (
            format!("{s}/unsuspend"),
            json!({"only_if_reasn": "overdue"}),
            "only_if_reasn",
        ),
        (
            format!("{s}/suspend"),
            json!({"reason": "abuse", "notes": "x"}),
            "notes",
        ),
        (
            format!("{s}/terminate"),
            json!({"confirm": domain, "force": true}),
            "force",
        ),
        (format!("{s}/create"), json!({"server_id": 1}), "server_id"),
        (format!("{s}/retry"), json!({"now": true}), "now"),
        (format!("{s}/sync"), json!({"full": true}), "full"),
        (
            format!("{s}/change-password"),
            json!({"password": "hunter22"}),
            "password",
        ),
        (
            format!("{s}/resend-welcome"),
            json!({"to": "x@example.com"}),
            "to",
        ),
        (
            format!("{s}/adopt"),
            json!({"panel_acount_id": "7"}),
            "panel_acount_id",
        ),
        (
            format!("{s}/change-package"),
            json!({"product": 1}),
            "product",
        ),
        (
            "/api/v1/orders/1/pay".into(),
            json!({"amount": 5}),
            "amount",
        ),
        (
            "/api/v1/servers/sweep".into(),
            json!({"group_id": 1}),
            "group_id",
        ),
        (
            "/api/v1/services/retry".into(),
            json!({"kinds": "dns"}),
            "kinds",
        ),
        (
            "/api/v1/orders".into(),
            json!({"client": {"emial": "a@example.com", "name": "A"}, "product_id": 1, "domain": "x.example.com"}),
            "client.emial",
        ),
        (
            "/api/v1/server-groups".into(),
            json!({"name": "G2", "placment": "fill"}),
            "placment",
        ),
    ];
    for (path, body, field) in cases {
        let (status, out) = app.call("POST", &path, Some(body)).await;
        assert_eq!(status, 422, "POST {path}: {out}");
        assert_eq!(
            field_names(&out),
            vec![field.to_owned()],
            "POST {path}: {out}"
        );
        let message = out["fields"][field][0].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!(
                "unknown field `{}`",
                field.rsplit('.').next().unwrap_or(field)
            )),
            "POST {path}: {out}"
        );
    }
    // `{}` is still the default (here refused for the service's state, not
    // for its body).
    let (status, out) = app
        .call("POST", &format!("{s}/unsuspend"), Some(json!({})))
        .await;
    assert_eq!(status, 409, "{out}");
    let service = app.get(&s).await;
    assert_eq!(service["status"], "pending", "{service}");
    let groups = app.get("/api/v1/server-groups").await;
    assert_eq!(
        groups["total"], 1,
        "the misspelt group was not created: {groups}"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_path_that_names_nothing_is_a_404_in_the_api_json_and_the_admin_page() {
    let app = TestApp::spawn().await;
    let (id, _) = pending_service(&app).await;
    for path in [
        "/api/v1/servers/abc",
        "/api/v1/servers/0",
        "/api/v1/services/-3",
        "/api/v1/provisioning-log/1e3",
    ] {
        let (status, body) = app.call("GET", path, None).await;
        assert_eq!(status, 404, "GET {path}: {body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("no such id")),
            "GET {path}: {body}"
        );
    }
    for path in [
        "/api/v1/services/abc/suspend".to_owned(),
        format!("/api/v1/services/{id}/explode"),
    ] {
        let (status, body) = app.call("POST", &path, Some(json!({}))).await;
        assert_eq!(status, 404, "POST {path}: {body}");
        assert!(body["error"].is_string(), "POST {path}: {body}");
    }
    let (_, body) = app
        .call("POST", &format!("/api/v1/services/{id}/explode"), None)
        .await;
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("suspend") && e.contains("change-password")),
        "the 404 names the actions there are: {body}"
    );

    let (cookie, csrf) = support::admin_session(&app.state.pool, &app.base).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let admin_pages = [
        ("GET", "/admin/servers/abc/edit".to_owned()),
        ("GET", "/admin/services/0".to_owned()),
        ("GET", "/admin/log/x1".to_owned()),
        ("POST", "/admin/services/abc/retry".to_owned()),
        ("POST", "/admin/services/abc/terminate".to_owned()),
        ("POST", format!("/admin/services/{id}/explode")),
    ];
    for (method, path) in admin_pages {
        let resp = http
            .request(
                method.parse().expect("method"),
                format!("{}{path}", app.base),
            )
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("confirm_domain=x")
            .send()
            .await
            .expect("admin");
        assert_eq!(resp.status(), 404, "{method} {path}");
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let page = resp.text().await.expect("page");
        assert!(
            content_type.starts_with("text/html")
                && page.contains("Not found")
                && page.contains("Back to the dashboard"),
            "{method} {path}: the admin's 404 page, not a plain-text rejection: {content_type} {page}"
        );
    }
    app.finish().await;
}

#[tokio::test]
async fn log_filters_read_the_same_on_the_api_and_in_the_log_viewer() {
    let app = TestApp::spawn().await;
    let (id, _) = pending_service(&app).await;
    let base = "/api/v1/provisioning-log";
    // The forms the viewer's inputs produce work on the API too.
    let (status, body) = app
        .call(
            "GET",
            &format!("{base}?service_id=%23{id}&since=2026-01-01T10:00&until=&action="),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .call(
            "GET",
            &format!("{base}?service_id=abc&since=yesterday&per_page=x"),
            None,
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        field_names(&body),
        ["per_page", "service_id", "since"],
        "{body}"
    );
    let (status, body) = app
        .call("GET", &format!("{base}?action=explode"), None)
        .await;
    assert_eq!(
        (status, field_names(&body)),
        (422, vec!["action".to_owned()]),
        "{body}"
    );

    let (cookie, _) = support::admin_session(&app.state.pool, &app.base).await;
    let page = reqwest::Client::new()
        .get(format!(
            "{}/admin/log?service_id=abc&since=yesterday",
            app.base
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("log page")
        .text()
        .await
        .expect("log page");
    assert!(
        page.contains("enter a whole number") && page.contains("use a date and time like"),
        "the viewer shows the same messages: {page}"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_service_status_this_build_does_not_know_fails_the_read_instead_of_reading_as_failed() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        product_id: product,
        ..
    } = Catalog::on(&app).auto_setup("manual").build().await;
    let sid = app
        .order(product, "unknown-status.example")
        .await
        .service_id();
    // As a newer release's migration could leave it for an older binary.
    sqlx::query("ALTER TABLE services DROP CONSTRAINT services_status_check")
        .execute(&app.state.pool)
        .await
        .expect("drop check");
    sqlx::query("UPDATE services SET status = 'archived' WHERE id = $1")
        .bind(sid)
        .execute(&app.state.pool)
        .await
        .expect("update");
    let err = commerce::app::services::get(&app.state.pool, sid)
        .await
        .expect_err("an unknown status must not decode");
    let text = format!("{:#}", anyhow::Error::new(err));
    assert!(
        text.contains("unknown ServiceStatus \"archived\""),
        "the error names the value: {text}"
    );
    let (status, body) = app
        .call("GET", &format!("/api/v1/services/{sid}"), None)
        .await;
    assert_eq!(status, 500, "{body}");
    assert_ne!(body["status"], json!("failed"), "{body}");
    sqlx::query("UPDATE services SET status = 'pending' WHERE id = $1")
        .bind(sid)
        .execute(&app.state.pool)
        .await
        .expect("restore");
    app.finish().await;
}

/// The count rides on the page's own statement; a page past the end (no row to
/// carry it) and a filter that matches nothing still report the right total.
#[tokio::test]
async fn a_list_reports_its_total_on_every_page_even_past_the_end() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        server_id: server,
        product_id: product,
        ..
    } = Catalog::on(&app).auto_setup("on_order").build().await;
    for n in 0..3 {
        let order = app.order(product, &format!("page{n}.example.com")).await;
        app.settle(order.service_id(), &["active"]).await;
    }
    // Three services, three orders, three clients.
    for (query, items, total) in [
        ("services?per_page=2", 2, 3),
        ("services?per_page=2&page=2", 1, 3),
        ("services?per_page=2&page=9", 0, 3),
        ("services?status=suspended", 0, 0),
        ("orders?per_page=2", 2, 3),
        ("orders?per_page=2&page=9", 0, 3),
        ("clients?per_page=2&page=2", 1, 3),
    ] {
        let page = app.get(&format!("/api/v1/{query}")).await;
        assert_eq!(
            page["items"].as_array().map(Vec::len),
            Some(items),
            "{query}: {page}"
        );
        assert_eq!(page["total"], total, "{query}: {page}");
    }
    // Each create wrote one row on the server.
    let log = |q: &str| format!("/api/v1/provisioning-log?server_id={server}&action=create&{q}");
    let first = app.get(&log("per_page=2")).await;
    assert_eq!(
        (first["items"].as_array().map(Vec::len), &first["total"]),
        (Some(2), &json!(3)),
        "{first}"
    );
    let past = app.get(&log("per_page=2&page=3")).await;
    assert_eq!(
        (past["items"].as_array().map(Vec::len), &past["total"]),
        (Some(0), &json!(3)),
        "{past}"
    );
    app.finish().await;
}
