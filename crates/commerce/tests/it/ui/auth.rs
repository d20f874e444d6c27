//! Sessions, CSRF tokens and the failed-login throttle, over HTTP.

use super::{ADMIN_EMAIL, ADMIN_PASSWORD, Http, admin_urls, between, create_admin, ids};
use crate::support::TestApp;

/// Every admin route, GET or POST, sends a visitor without a session to the
/// login page (an htmx request gets a 401 with HX-Redirect).
#[tokio::test]
async fn without_a_session_every_admin_route_sends_the_visitor_to_the_login_page() {
    let app = TestApp::spawn().await;
    create_admin(&app).await;
    let mut anon = Http::new(&app.base);
    for url in admin_urls(&app).await {
        let (status, headers, _) = anon.send("GET", &url, None, &[]).await;
        let to = headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert_eq!(status, 303, "GET {url} without a session");
        assert!(to.starts_with("/login?next="), "GET {url} went to {to}");
        let (status, headers, _) = anon
            .send("GET", &url, None, &[("hx-request", "true")])
            .await;
        assert_eq!(status, 401, "htmx GET {url}");
        assert_eq!(headers.get("hx-redirect").expect("HX-Redirect"), "/login");
    }
    for path in [
        "/admin/servers",
        "/admin/servers/1",
        "/admin/servers/test",
        "/admin/servers/sweep",
        "/admin/servers/1/test",
        "/admin/groups",
        "/admin/products",
        "/admin/products/1",
        "/admin/clients",
        "/admin/orders",
        "/admin/orders/1/pay",
        "/admin/services/1/suspend",
        "/admin/services/1/terminate",
        "/admin/log/1/retry",
        "/logout",
    ] {
        let (status, headers, _) = anon.send("POST", path, Some(&[]), &[]).await;
        assert_eq!(status, 303, "POST {path} without a session");
        assert_eq!(headers.get("location").expect("location"), "/login");
    }
    assert_eq!(
        anon.send("GET", "/", None, &[])
            .await
            .1
            .get("location")
            .expect("location"),
        "/admin"
    );

    app.finish().await;
}

/// The session cookie is HttpOnly and SameSite=Lax, and a state change
/// without the session's CSRF token (a form field, or X-CSRF-Token for htmx)
/// is refused with 403 and changes nothing.
#[tokio::test]
async fn a_signed_in_admin_changes_nothing_without_the_sessions_csrf_token() {
    let app = TestApp::spawn().await;
    create_admin(&app).await;
    // Signed in: the cookie is HttpOnly and SameSite=Lax; CSRF is enforced.
    let mut http = Http::new(&app.base);
    let (_, page) = http.get("/login").await;
    let token = between(&page, "name=\"_csrf\" value=\"", "\"").to_owned();
    let (status, headers, _) = http
        .send(
            "POST",
            "/login",
            Some(&[
                ("_csrf", token.as_str()),
                ("email", ADMIN_EMAIL),
                ("password", ADMIN_PASSWORD),
            ]),
            &[],
        )
        .await;
    assert_eq!(status, 303);
    let cookie = headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("commerce_session="))
        .expect("session cookie")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let (_, admin) = http.get("/admin").await;
    http.csrf = between(&admin, "name=\"csrf-token\" content=\"", "\"").to_owned();
    let group = [("name", "Shared EU"), ("placement", "least_full")];
    let (status, body) = http.post_form("/admin/groups", &group).await;
    assert_eq!(status, 403, "a form without _csrf: {body}");
    assert!(body.contains("CSRF"), "{body}");
    let wrong: Vec<(&str, &str)> = group.iter().copied().chain([("_csrf", "forged")]).collect();
    assert_eq!(http.post_form("/admin/groups", &wrong).await.0, 403);
    let (status, _, _) = http
        .send(
            "POST",
            "/admin/servers/sweep",
            None,
            &[("hx-request", "true")],
        )
        .await;
    assert_eq!(status, 403, "an htmx request without X-CSRF-Token");
    assert!(ids(&app, "server_groups").await.is_empty());
    let csrf = http.csrf.clone();
    let good: Vec<(&str, &str)> = group
        .iter()
        .copied()
        .chain([("_csrf", csrf.as_str())])
        .collect();
    assert_eq!(http.post_form("/admin/groups", &good).await.0, 303);
    assert_eq!(ids(&app, "server_groups").await.len(), 1);

    app.finish().await;
}

/// Unknown pages and malformed ids get the admin's own 404 page.
#[tokio::test]
async fn unknown_admin_pages_and_malformed_ids_get_the_admins_404_page() {
    let app = TestApp::spawn().await;
    create_admin(&app).await;
    let mut http = Http::signed_in(&app).await;
    // Unknown pages and malformed ids get the admin's own 404 page.
    for path in [
        "/admin/nope",
        "/admin/servers/abc/edit",
        "/admin/services/0",
    ] {
        let (status, body) = http.get(path).await;
        assert_eq!(status, 404, "GET {path}");
        assert!(body.contains("Back to the dashboard"), "GET {path}: {body}");
    }

    app.finish().await;
}

/// Logout ends the session server-side: the old cookie replayed is signed out.
#[tokio::test]
async fn logout_ends_the_session_on_the_server_so_a_replayed_cookie_is_signed_out() {
    let app = TestApp::spawn().await;
    create_admin(&app).await;
    let mut http = Http::signed_in(&app).await;
    let csrf = http.csrf.clone();
    // Logout ends the session server-side.
    let stolen = http.cookie_header();
    assert_eq!(
        http.post_form("/logout", &[("_csrf", csrf.as_str())])
            .await
            .0,
        303
    );
    let mut replay = Http::new(&app.base);
    let (status, _, _) = replay
        .send("GET", "/admin", None, &[("cookie", stolen.as_str())])
        .await;
    assert_eq!(status, 303, "a logged-out session still works");

    app.finish().await;
}

/// Five wrong passwords lock the account out, even for the right one.
#[tokio::test]
async fn five_wrong_passwords_lock_the_account_out_even_for_the_right_one() {
    let app = TestApp::spawn().await;
    create_admin(&app).await;
    // Five wrong passwords lock the account out, even for the right one.
    let mut attacker = Http::new(&app.base);
    for _ in 0..5 {
        assert_eq!(attacker.login(ADMIN_EMAIL, "wrong password!").await.0, 401);
    }
    let (status, body) = attacker.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(status, 429);
    assert!(body.contains("Too many sign-in attempts"), "{body}");
    // The API's bearer token is not locked out with the admin.
    app.get("/api/v1/servers").await;
    app.finish().await;
}
