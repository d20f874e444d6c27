//! The security review's findings, reproduced, one file per concern: secrets
//! that must not leak, where Panel calls may go, the API's guards, admin
//! sessions, hostile clients. Each test fails on the old code. This file holds
//! the helpers several of them share.

use crate::support::TestApp;

/// Signs in to the admin UI over plain HTTP and returns a cookie header.
async fn admin_cookie(app: &TestApp) -> (reqwest::Client, String) {
    let email = "sec-admin@example.com";
    let password = "correct horse battery staple";
    commerce::app::admins::create(&app.state.pool, email, password)
        .await
        .expect("admin");
    let (http, mut cookies, resp) = post_login(app, email, password).await;
    assert_eq!(resp.status().as_u16(), 303, "signed in");
    cookies.extend(cookie_pairs(&resp));
    (http, cookies.join("; "))
}

/// Fills the login form (its CSRF token and cookie read from the page first)
/// and sends it; returns the client, the login page's cookies and the answer.
async fn post_login(
    app: &TestApp,
    email: &str,
    password: &str,
) -> (reqwest::Client, Vec<String>, reqwest::Response) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = http
        .get(format!("{}/login", app.base))
        .send()
        .await
        .expect("login page");
    let cookies = cookie_pairs(&login);
    let page = login.text().await.expect("page");
    let csrf = page
        .split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_owned();
    let form = serde_urlencoded::to_string([
        ("_csrf", csrf.as_str()),
        ("email", email),
        ("password", password),
        ("next", "/admin"),
    ])
    .expect("form");
    let resp = http
        .post(format!("{}/login", app.base))
        .header("cookie", cookies.join("; "))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("login");
    (http, cookies, resp)
}

fn cookie_pairs(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::to_owned)
        .collect()
}

async fn page(http: &reqwest::Client, cookie: &str, url: String) -> String {
    let resp = http
        .get(&url)
        .header("cookie", cookie)
        .send()
        .await
        .expect("page");
    assert_eq!(resp.status().as_u16(), 200, "{url}");
    resp.text().await.expect("html")
}

fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_commerce"))
        .args(args)
        .env("DATABASE_URL", &app.state.config.database_url)
        .env("APP_KEY", crate::support::APP_KEY)
        .env("RUST_LOG", "warn")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("commerce cli");
    assert!(
        out.status.success(),
        "commerce {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

mod api_requests;
mod hostile;
mod leaks;
mod panel_network;
mod sessions;
