//! Admin sign-in: the login throttle under parallel guesses, session expiry,
//! cookie names, trusted proxies, `commerce admin create`.

use opterius_sim::SimConfig;

use super::{admin_cookie, post_login};
use crate::support::TestApp;

async fn try_login(app: &TestApp, email: &str, password: &str) -> (u16, String) {
    let (_, _, resp) = post_login(app, email, password).await;
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_parallel_wrong_logins_for_one_account_let_only_a_handful_verify() {
    let app = TestApp::spawn().await;
    commerce::app::admins::create(&app.state.pool, "target@example.com", "the real password 1")
        .await
        .expect("admin");
    let attempts = (0..20).map(|n| {
        let app = &app;
        async move { try_login(app, "target@example.com", &format!("guess number {n}")).await }
    });
    let results = futures::future::join_all(attempts).await;
    let verified = results.iter().filter(|(s, _)| *s == 401).count();
    let throttled = results.iter().filter(|(s, _)| *s == 429).count();
    assert_eq!(verified + throttled, 20, "{results:?}");
    assert!(
        verified <= commerce::web::ratelimit::ACCOUNT_MAX,
        "{verified} verified"
    );
    // The account is paused briefly, not for long: the answer says seconds.
    let (status, page) = try_login(&app, "target@example.com", "the real password 1").await;
    assert_eq!(status, 429, "still within the window");
    assert!(page.contains("second(s)"), "{page}");
    app.finish().await;
}

#[tokio::test]
async fn sessions_end_when_idle_and_when_the_password_changes() {
    let app = TestApp::spawn().await;
    let (http, cookie) = admin_cookie(&app).await;
    let admin = |cookie: String| {
        let http = http.clone();
        let url = format!("{}/admin", app.base);
        async move {
            http.get(url)
                .header("cookie", cookie)
                .send()
                .await
                .expect("admin")
                .status()
                .as_u16()
        }
    };
    assert_eq!(admin(cookie.clone()).await, 200);
    sqlx::query("UPDATE admin_sessions SET last_seen_at = now() - interval '31 minutes'")
        .execute(&app.state.pool)
        .await
        .expect("age");
    assert_eq!(
        admin(cookie).await,
        303,
        "idle too long: back to the login page"
    );
    let (_, cookie) = admin_cookie(&app).await;
    assert_eq!(admin(cookie.clone()).await, 200);
    commerce::app::admins::set_password(
        &app.state.pool,
        "sec-admin@example.com",
        "a brand new password",
    )
    .await
    .expect("reset");
    assert_eq!(admin(cookie).await, 303, "a password change ends sessions");
    app.finish().await;
}

#[tokio::test]
async fn secure_cookies_get_host_prefixed_names() {
    let app = TestApp::spawn_with(SimConfig::default(), &[("SECURE_COOKIES", "true")]).await;
    let resp = reqwest::get(format!("{}/login", app.base))
        .await
        .expect("login");
    let set: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    assert!(
        set.iter()
            .any(|c| c.starts_with("__Host-commerce_login_csrf=")
                && c.contains("; Secure")
                && c.contains("Path=/")),
        "{set:?}"
    );
    app.finish().await;
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    use axum::extract::ConnectInfo;
    use commerce::web::login::client_ip;
    let trusted = vec![opterius::Cidr::parse("10.0.0.0/8").expect("cidr")];
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(
        "x-forwarded-for",
        "6.6.6.6, 203.0.113.7, 10.0.0.9".parse().expect("h"),
    );
    let proxy = ConnectInfo("10.0.0.2:5000".parse().expect("addr"));
    let direct = ConnectInfo("198.51.100.1:5000".parse().expect("addr"));
    assert_eq!(client_ip(Some(&proxy), &headers, &trusted), "203.0.113.7");
    assert_eq!(client_ip(Some(&direct), &headers, &trusted), "198.51.100.1");
    assert_eq!(client_ip(Some(&proxy), &headers, &[]), "10.0.0.2");
}

/// Runs `commerce admin create --email EMAIL --password-stdin` against the
/// app's database, writing `password` and a newline to its stdin.
fn admin_create(app: &TestApp, email: &str, password: &str) -> std::process::Output {
    use std::io::Write as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_commerce"))
        .args(["admin", "create", "--email", email, "--password-stdin"])
        .env("DATABASE_URL", &app.state.config.database_url)
        .env("APP_KEY", crate::support::APP_KEY)
        .current_dir(std::env::temp_dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cli");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write");
    child.wait_with_output().expect("done")
}

#[tokio::test]
async fn admin_create_reads_the_password_from_stdin() {
    let app = TestApp::spawn().await;
    let out = admin_create(&app, "stdin@example.com", "piped in password 42");
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("piped in password"));
    let (status, _) = try_login(&app, "stdin@example.com", "piped in password 42").await;
    assert_eq!(status, 303, "signed in with the piped password");
    app.finish().await;
}

#[tokio::test]
async fn admin_create_names_the_rule_each_bad_field_broke() {
    let app = TestApp::spawn().await;
    let out = admin_create(&app, "not-an-email", "short");
    assert!(!out.status.success(), "a bad email must fail the command");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--email: "),
        "names the email rule: {stderr}"
    );
    assert!(
        stderr.contains("--password: password must be at least 10 characters"),
        "names the password rule: {stderr}"
    );
    assert!(!stderr.contains("validation failed"), "{stderr}");
    app.finish().await;
}
