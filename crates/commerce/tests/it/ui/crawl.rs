//! Every admin route over HTTP: the page it names, its htmx fragment, no secret.

use opterius_sim::Target;
use serde_json::json;

use super::{Http, admin_urls, assert_no_secret, create_admin};
use crate::support::{Catalog, CatalogIds, TestApp};

/// Every admin page and fragment, crawled over HTTP with a session once the
/// catalog, an order and a rotated server token exist: each is the page it
/// names, the polling pages answer htmx with their live part, a failing htmx
/// request gets the toast fragment, and nothing carries a token or a password.
/// On two threads, as the browser scenario it came from ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_page_and_fragment_is_the_page_it_names_and_carries_no_token_or_password() {
    let app = TestApp::spawn().await;
    create_admin(&app).await;
    let old_token = app.sim.token(0);
    let CatalogIds {
        server_id,
        product_id,
        ..
    } = Catalog::on(&app).build().await;
    let sid = app
        .order(product_id, "alice-shop.example.com")
        .await
        .service_id();
    app.settle(sid, &["active"]).await;
    let terminated = app
        .order(product_id, "bob-shop.example.com")
        .await
        .service_id();
    app.settle(terminated, &["active"]).await;
    app.queue_with(
        terminated,
        "terminate",
        json!({"confirm": "bob-shop.example.com"}),
    )
    .await;
    app.settle(terminated, &["terminated"]).await;
    // The token is rotated on the Panel and the new one saved.
    app.sim
        .rotate_token(Target::Server(0), "rotated-token-7f3a9c");
    let url = app.sim.server_url(0);
    app.patch(
        &format!("/api/v1/servers/{server_id}"),
        json!({"credentials": {"api_url": url, "api_token": "rotated-token-7f3a9c"}}),
    )
    .await;

    // Nothing the admin UI serves carries a token or an account password.
    let mut secrets = app.passwords().await;
    assert!(!secrets.is_empty());
    secrets.extend([old_token, "rotated-token-7f3a9c".to_owned()]);
    secrets.extend((0..4).map(|n| app.sim.token(n)));
    let mut http = Http::signed_in(&app).await;
    for url in admin_urls(&app).await {
        let (status, body) = http.get(&url).await;
        assert_eq!(status, 200, "GET {url}: {body}");
        // The admin page (or, for the form's field partial, its fragment) for
        // the signed-in admin: not an error page, not the login form.
        let page = body.starts_with("<!doctype html>");
        assert!(
            !body.contains("error-page")
                && !body.contains("login-body")
                && if page {
                    body.contains("· Commerce admin</title>")
                        && body.contains("<aside class=\"sidebar\">")
                } else {
                    // The live parts htmx swaps in: the fragment the route names.
                    [
                        ("/module-fields?", "<fieldset id=\"credential-fields\">"),
                        ("/package-field?", "<div id=\"package-field\">"),
                    ]
                    .iter()
                    .any(|(route, root)| url.contains(route) && body.starts_with(root))
                },
            "GET {url} is not the admin page it names: {body}"
        );
        assert_no_secret(&url, &body, &secrets);
    }
    // The pages that poll answer htmx at their own URL with their live part
    // only, and say so in Vary.
    for (prefix, root) in [
        ("/admin/orders/", "<div id=\"order-progress\""),
        ("/admin/services/", "<div id=\"service-panel\""),
    ] {
        let urls: Vec<String> = admin_urls(&app)
            .await
            .into_iter()
            .filter(|u| {
                u.strip_prefix(prefix)
                    .is_some_and(|id| id.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect();
        assert!(!urls.is_empty(), "no {prefix}{{id}} page to poll");
        for url in urls {
            let (status, headers, body) = http
                .send("GET", &url, None, &[("hx-request", "true")])
                .await;
            assert_eq!(status, 200, "htmx GET {url}: {body}");
            assert!(
                body.starts_with(root),
                "htmx GET {url} is not its fragment: {body}"
            );
            assert_eq!(
                headers.get("vary").and_then(|v| v.to_str().ok()),
                Some("HX-Request"),
                "{url}"
            );
            assert_no_secret(&url, &body, &secrets);
        }
    }
    // An htmx request that fails gets the toast's fragment, not the error page.
    let (status, headers, body) = http
        .send(
            "POST",
            "/admin/servers/987654/test",
            None,
            &[
                ("hx-request", "true"),
                ("x-csrf-token", http.csrf.clone().as_str()),
            ],
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        headers
            .get("commerce-fragment")
            .and_then(|v| v.to_str().ok()),
        Some("error")
    );
    assert!(
        !body.contains("<!doctype") && body.contains("class=\"error-message\""),
        "{body}"
    );
    let sid = server_id.to_string();
    for (path, form) in [
        (format!("/admin/servers/{sid}/test"), vec![]),
        (
            "/admin/servers/test".to_owned(),
            vec![
                ("module", "opterius"),
                ("server_id", sid.as_str()),
                ("credentials.api_url", url.as_str()),
                ("credentials.api_token", ""),
            ],
        ),
        ("/admin/servers/sweep".to_owned(), vec![]),
    ] {
        let (status, body) = http.post_htmx(&path, &form).await;
        assert_eq!(status, 200, "POST {path}: {body}");
        assert_no_secret(&path, &body, &secrets);
    }
    app.get("/api/v1/servers").await;
    app.finish().await;
}
