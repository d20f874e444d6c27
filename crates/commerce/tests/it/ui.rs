//! The admin UI in a real browser (headless Chromium over WebDriver), plus
//! HTTP-level checks: every admin route needs a session, state-changing
//! requests need the CSRF token, and no page or fragment carries a secret.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use opterius_sim::{Faults, SimConfig, Target};
use serde_json::{Value, json};

use crate::support::TestApp;

pub(crate) const ADMIN_EMAIL: &str = "admin@example.com";
pub(crate) const ADMIN_PASSWORD: &str = "correct horse battery";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- browser

/// Headless Chromium driven through a chromedriver this test started.
struct Browser {
    client: Client,
    base: String,
    driver: Child,
    profile: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn screenshot_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/ui-screenshots"
    ))
}

impl Browser {
    async fn start(base: &str) -> Self {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(bin).exists(),
                "{bin} is missing: run scripts/ensure-chromium.sh to install Chromium and chromedriver for the browser tests"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver (run scripts/ensure-chromium.sh)");
        let profile = std::env::temp_dir().join(format!(
            "commerce-ui-{}",
            ulid::Ulid::generate().to_string().to_lowercase()
        ));
        std::fs::create_dir_all(&profile).expect("profile dir");
        let url = format!("http://127.0.0.1:{port}");
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                    "--disable-dev-shm-usage", "--window-size=1440,1000",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("could not start a Chromium session through chromedriver: {e}"),
            }
        };
        Self {
            client,
            base: base.to_owned(),
            driver,
            profile,
        }
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("goto {path}: {e}"));
    }

    async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css} on {}: {e}", self.base))
    }

    async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    async fn fill(&self, css: &str, value: &str) {
        let el = self.find(css).await;
        el.clear().await.expect("clear");
        el.send_keys(value).await.expect("type");
    }

    async fn select_index(&self, css: &str, index: usize) {
        self.find(css)
            .await
            .select_by_index(index)
            .await
            .unwrap_or_else(|e| panic!("select {css}: {e}"));
    }

    async fn value(&self, css: &str) -> String {
        self.find(css)
            .await
            .prop("value")
            .await
            .expect("value")
            .unwrap_or_default()
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("text")
    }

    /// Waits until the text of `css` satisfies `ok`; returns it.
    async fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        let mut last = String::new();
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await
                && let Ok(t) = el.text().await
            {
                if ok(&t) {
                    return t;
                }
                last = t;
            }
            if Instant::now() > deadline {
                self.screenshot("failure").await;
                panic!(
                    "{css} never got the expected text on {}; last text: {last:?}",
                    self.path().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    /// Sets a marker that only survives while no page load happens.
    async fn mark(&self) {
        self.js("window.__ui_marker = 'still-here'; return true;")
            .await;
    }

    async fn assert_no_page_load(&self, what: &str) {
        assert_eq!(
            self.js("return window.__ui_marker || null;").await,
            json!("still-here"),
            "{what} reloaded the page"
        );
    }

    async fn screenshot(&self, name: &str) {
        let dir = screenshot_dir();
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(dir.join(format!("{name}.png")), png);
        }
    }

    async fn login(&self) {
        self.goto("/admin/servers").await;
        assert!(
            self.path().await.starts_with("/login"),
            "no redirect to login"
        );
        self.fill("input[name='email']", ADMIN_EMAIL).await;
        self.fill("input[name='password']", ADMIN_PASSWORD).await;
        self.screenshot("login").await;
        self.click("#sign-in").await;
        self.wait_text("h1", |t| t.contains("Servers")).await;
    }

    async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

// ---------------------------------------------------------------- HTTP

/// A cookie-keeping HTTP client that does not follow redirects.
pub(crate) struct Http {
    base: String,
    client: reqwest::Client,
    cookies: Vec<(String, String)>,
    pub(crate) csrf: String,
}

fn set_cookies(resp: &reqwest::Response) -> Vec<(String, String)> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).map(|i| i + start.len()).unwrap_or(0);
    let rest = &text[from..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

impl Http {
    pub(crate) fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: Vec::new(),
            csrf: String::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, resp: &reqwest::Response) {
        for (k, v) in set_cookies(resp) {
            self.cookies.retain(|(name, _)| *name != k);
            self.cookies.push((k, v));
        }
    }

    pub(crate) async fn send(
        &mut self,
        method: &str,
        path: &str,
        form: Option<&[(&str, &str)]>,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut req = self
            .client
            .request(
                method.parse().expect("method"),
                format!("{}{path}", self.base),
            )
            .header("cookie", self.cookie_header());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(f) = form {
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(serde_urlencoded::to_string(f).expect("form"));
        }
        let resp = req.send().await.expect("request");
        self.keep(&resp);
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.expect("body"))
    }

    pub(crate) async fn get(&mut self, path: &str) -> (u16, String) {
        let (s, _, b) = self.send("GET", path, None, &[]).await;
        (s, b)
    }

    /// Signs in through the login form; returns the POST's status.
    pub(crate) async fn login(&mut self, email: &str, password: &str) -> (u16, String) {
        let (_, page) = self.get("/login").await;
        let token = between(&page, "name=\"_csrf\" value=\"", "\"").to_owned();
        let (status, _, body) = self
            .send(
                "POST",
                "/login",
                Some(&[
                    ("_csrf", token.as_str()),
                    ("email", email),
                    ("password", password),
                    ("next", "/admin"),
                ]),
                &[],
            )
            .await;
        if status == 303 {
            let (_, admin) = self.get("/admin").await;
            self.csrf = between(&admin, "name=\"csrf-token\" content=\"", "\"").to_owned();
        }
        (status, body)
    }

    pub(crate) async fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let (s, _, b) = self.send("POST", path, Some(form), &[]).await;
        (s, b)
    }

    async fn post_htmx(&mut self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let csrf = self.csrf.clone();
        let (s, _, b) = self
            .send(
                "POST",
                path,
                Some(form),
                &[("hx-request", "true"), ("x-csrf-token", csrf.as_str())],
            )
            .await;
        (s, b)
    }
}

pub(crate) async fn create_admin(app: &TestApp) {
    commerce::app::admins::create(&app.state.pool, ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .expect("admin");
}

async fn ids(app: &TestApp, table: &str) -> Vec<i64> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM {table} ORDER BY id"
    )))
    .fetch_all(&app.state.pool)
    .await
    .expect("ids")
}

/// Every admin GET route with each placeholder filled by real ids (or 1).
async fn admin_urls(app: &TestApp) -> Vec<String> {
    let fill = [
        ("{server}", ids(app, "servers").await),
        ("{product}", ids(app, "products").await),
        ("{order}", ids(app, "orders").await),
        ("{service}", ids(app, "services").await),
        ("{log}", ids(app, "provisioning_log").await),
    ];
    let mut urls = Vec::new();
    for route in commerce::web::ADMIN_GET_ROUTES {
        match fill.iter().find(|(p, _)| route.contains(p)) {
            Some((p, list)) if !list.is_empty() => {
                urls.extend(list.iter().map(|id| route.replace(p, &id.to_string())))
            }
            Some((p, _)) => urls.push(route.replace(p, "1")),
            None => urls.push((*route).to_owned()),
        }
    }
    urls.push("/admin/services?status=failed&q=a".into());
    urls.push("/admin/log?status=failed&action=create".into());
    urls
}

fn assert_no_secret(what: &str, body: &str, secrets: &[String]) {
    for s in secrets {
        assert!(
            !body.contains(s.as_str()),
            "{what} leaked a secret ({} chars) in: {body}",
            s.len()
        );
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_ui_in_chromium_tests_servers_and_provisions_an_order_end_to_end() {
    let started = Instant::now();
    let app = TestApp::spawn().await;
    create_admin(&app).await;
    let old_token = app.sim.token(0);
    let b = Browser::start(&app.base).await;
    b.login().await;

    // A server group, then a server whose first save fails validation.
    b.goto("/admin/groups").await;
    b.fill("#group-name", "Shared EU").await;
    b.click("#create-group").await;
    b.wait_text(".flash-success", |t| t.contains("Shared EU"))
        .await;

    b.goto("/admin/servers/new").await;
    b.fill("#name", "panel-0").await;
    b.select_index("#group_id", 1).await;
    let url = app.sim.server_url(0);
    b.fill("[name='credentials.api_url']", &format!("{url}/"))
        .await;
    b.fill("[name='credentials.api_token']", &old_token).await;
    b.click("#save").await;
    let err = b.wait_text("#form-errors", |t| t.contains("api url")).await;
    assert!(err.contains("slash"), "{err}");
    assert_eq!(b.value("#name").await, "panel-0", "typed name kept");
    assert_eq!(
        b.value("[name='credentials.api_token']").await,
        "",
        "a secret is never sent back"
    );

    // Test Connection on the form, unsaved: green with the Panel's name and version.
    b.fill("[name='credentials.api_url']", &url).await;
    b.fill("[name='credentials.api_token']", &old_token).await;
    b.mark().await;
    b.click("#test-connection").await;
    let ok = b
        .wait_text("#test-banner", |t| t.contains("Connected"))
        .await;
    assert!(
        ok.contains("sim-panel-0") && ok.contains("2.4.1-sim"),
        "{ok}"
    );
    b.assert_no_page_load("Test Connection").await;
    b.screenshot("server-form-test-ok").await;
    b.click("#save").await;
    b.wait_text(".flash-success", |t| t.contains("panel-0"))
        .await;
    let server_id = ids(&app, "servers").await[0];
    let badge = format!("#health-{server_id} .badge");
    assert_eq!(b.text(&badge).await, "Unknown");

    // The plug icon flips the badge in place.
    b.mark().await;
    b.click(&format!("#server-{server_id} .plug")).await;
    b.wait_text(&badge, |t| t == "Online").await;
    b.assert_no_page_load("the plug icon").await;

    // The token is rotated on the Panel: the form's test (blank = stored token)
    // shows the 401 and its fix; the plug icon turns the badge Offline.
    app.sim
        .rotate_token(Target::Server(0), "rotated-token-7f3a9c");
    b.goto(&format!("/admin/servers/{server_id}/edit")).await;
    assert!(
        b.text("#credential-fields")
            .await
            .contains("A token is stored; leave blank to keep it.")
    );
    let source = b.client.source().await.expect("source");
    assert!(
        !source.contains(&old_token),
        "the edit page shows the stored token"
    );
    b.click("#test-connection").await;
    let bad = b.wait_text("#test-banner", |t| t.contains("401")).await;
    assert!(bad.contains("401 Unauthorized"), "{bad}");
    assert!(
        bad.contains("Generate a new token in Panel → Settings → API"),
        "{bad}"
    );
    b.screenshot("server-form-test-401").await;
    b.goto("/admin/servers").await;
    b.mark().await;
    b.click(&format!("#server-{server_id} .plug")).await;
    b.wait_text(&badge, |t| t == "Offline").await;
    b.assert_no_page_load("the plug icon").await;
    assert!(
        b.text(&format!("#health-{server_id}"))
            .await
            .contains("401 Unauthorized")
    );
    b.screenshot("servers-offline").await;

    // Paste the new token, test, save: back online.
    b.goto(&format!("/admin/servers/{server_id}/edit")).await;
    b.fill("[name='credentials.api_token']", "rotated-token-7f3a9c")
        .await;
    b.click("#test-connection").await;
    b.wait_text("#test-banner", |t| t.contains("Connected"))
        .await;
    b.click("#save").await;
    b.wait_text(".flash-success", |t| t.contains("saved")).await;
    b.click(&format!("#server-{server_id} .plug")).await;
    b.wait_text(&badge, |t| t == "Online").await;
    b.screenshot("servers").await;

    // An htmx request that fails shows the server's toast fragment in place.
    b.js(&format!(
        "htmx.ajax('POST', '/admin/servers/987654/test', {{target: '#health-{server_id}', swap: 'outerHTML'}}); return 0;"
    ))
    .await;
    let toast = b
        .wait_text("#toast", |t| t.contains("does not exist"))
        .await;
    assert!(
        toast.contains("Not found") && toast.contains("Go back to the list"),
        "{toast}"
    );
    assert_eq!(
        b.js("return document.querySelectorAll('#toast .error-message').length;")
            .await,
        json!(1)
    );
    b.screenshot("htmx-error-toast").await;

    // A product with the wrong package case, a client, an order: it fails with the hint.
    b.goto("/admin/products/new").await;
    b.fill("#name", "Starter plan").await;
    b.select_index("#group_id", 1).await;
    b.fill("#package", "starter").await;
    b.fill("#disk_limit_mb", "1024").await;
    b.click("#save").await;
    b.wait_text(".flash-success", |t| t.contains("Starter plan"))
        .await;
    b.goto("/admin/clients").await;
    b.fill("#client-name", "Alice Shop").await;
    b.fill("#client-email", "alice@example.com").await;
    b.click("#create-client").await;
    b.wait_text(".flash-success", |t| t.contains("Alice Shop"))
        .await;
    b.goto("/admin/orders/new").await;
    b.select_index("#client_id", 1).await;
    b.select_index("#product_id", 1).await;
    b.fill("#domain", "alice-shop.example.com").await;
    b.click("#place-order").await;
    b.wait_text("[data-service-status]", |t| t == "failed")
        .await;
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
    b.wait_text(
        "#service-panel[data-polling='false'] #service-status",
        |t| t == "active",
    )
    .await;
    // The seed module: no password or package change, and the page says why.
    b.wait_text("#module-cannot", |t| {
        t.contains("cannot change packages or set passwords")
    })
    .await;
    b.click("#action-suspend").await;
    b.wait_text("#service-status", |t| t == "suspended").await;
    assert!(app.sim.accounts(Target::Server(0))[0].suspended);
    b.wait_text(
        "#service-panel[data-polling='false'] #service-status",
        |t| t == "suspended",
    )
    .await;
    b.click("#action-unsuspend").await;
    b.wait_text("#service-status", |t| t == "active").await;
    b.wait_text(
        "#service-panel[data-polling='false'] #service-status",
        |t| t == "active",
    )
    .await;
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
    b.goto("/admin/orders/new").await;
    b.select_index("#client_id", 1).await;
    b.select_index("#product_id", 1).await;
    b.fill("#domain", "bob-shop.example.com").await;
    b.click("#place-order").await;
    b.wait_text("#order-status", |t| t == "pending").await;
    assert_eq!(b.text("[data-service-status]").await, "pending");
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

    // Nothing the admin UI serves carries a token or an account password.
    let mut secrets = app.passwords().await;
    assert!(!secrets.is_empty());
    secrets.extend([old_token, "rotated-token-7f3a9c".to_owned()]);
    secrets.extend((0..4).map(|n| app.sim.token(n)));
    let mut http = Http::new(&app.base);
    assert_eq!(http.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.0, 303);
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
    println!(
        "admin UI scenario took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    app.get("/api/v1/servers").await;
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_all_streams_forty_badges_over_sse_within_one_timeout() {
    let app = TestApp::spawn_with(
        SimConfig {
            servers: 40,
            ..Default::default()
        },
        &[],
    )
    .await;
    create_admin(&app).await;
    let group = app
        .post(
            "/api/v1/server-groups",
            json!({"name": "Big", "placement": "least_full"}),
        )
        .await["id"]
        .as_i64()
        .expect("group");
    for n in 0..40 {
        app.add_server(&format!("panel-{n:02}"), group, n, 0).await;
    }
    let dead = [5usize, 15, 25, 35];
    for n in dead {
        app.sim.set_faults(
            Target::Server(n),
            Faults {
                hang: true,
                ..Default::default()
            },
        );
    }
    app.sim.rotate_token(Target::Server(7), "rotated");

    let b = Browser::start(&app.base).await;
    b.login().await;
    assert_eq!(
        b.client
            .find_all(Locator::Css("td.health .badge"))
            .await
            .expect("badges")
            .len(),
        40
    );
    b.mark().await;
    let clicked = chrono::Utc::now();
    b.click("#test-all").await;
    let summary = b
        .wait_text("#sweep-status[data-done]", |t| t.starts_with("Tested 40"))
        .await;
    b.assert_no_page_load("Test all").await;
    assert!(summary.contains("35 online, 5 offline"), "{summary}");
    // From the stored results, not wall time: each hung server was given the
    // whole timeout and then cut off, and the four were tested side by side
    // (one after another, the last result would come four timeouts after the
    // first).
    let timeout_ms = i32::try_from(app.state.config.sweep_timeout.as_millis()).expect("ms");
    type HealthRow = (
        String,
        Option<i32>,
        chrono::DateTime<chrono::Utc>,
        Option<String>,
    );
    let rows: Vec<HealthRow> = sqlx::query_as(
        "SELECT name, latency_ms, last_checked_at, last_error->>'kind' FROM servers ORDER BY name",
    )
    .fetch_all(&app.state.pool)
    .await
    .expect("servers");
    for n in dead {
        let (name, latency, _, kind) = &rows[n];
        assert_eq!(kind.as_deref(), Some("timeout"), "{name}: {rows:?}");
        assert!(
            latency.is_some_and(|l| l >= timeout_ms - 50),
            "{name} was cut off before its timeout: {rows:?}"
        );
    }
    let hung = app
        .sim
        .requests()
        .iter()
        .filter(|r| r.outcome == "hung")
        .count();
    assert_eq!(
        hung,
        dead.len(),
        "the sim saw each dead server's request hang"
    );
    assert!(
        rows.iter().all(|r| r.2 >= clicked),
        "every server's result is from this sweep: {rows:?}"
    );
    let last = rows.iter().map(|r| r.2).max().expect("results") - clicked;
    assert!(
        last.num_milliseconds() < 2 * i64::from(timeout_ms),
        "the last result came {last} after the click: the hung servers were tested one after another"
    );
    let mut online = 0;
    let mut offline = 0;
    for el in b
        .client
        .find_all(Locator::Css("td.health .badge"))
        .await
        .expect("badges")
    {
        match el.text().await.expect("text").as_str() {
            "Online" => online += 1,
            "Offline" => offline += 1,
            other => panic!("badge still {other:?} after the sweep"),
        }
    }
    assert_eq!((online, offline), (35, 5));
    let ids = ids(&app, "servers").await;
    let cell = b.text(&format!("#health-{}", ids[7])).await;
    assert!(cell.contains("401 Unauthorized"), "{cell}");
    let cell = b.text(&format!("#health-{}", ids[5])).await;
    assert!(cell.contains("Offline"), "{cell}");
    b.screenshot("servers-test-all").await;
    b.close().await;
    app.sim.clear_faults();
    app.get("/api/v1/servers").await;
    app.finish().await;
}

#[tokio::test]
async fn admin_routes_need_a_session_csrf_token_and_throttle_failed_logins() {
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

    // Five wrong passwords lock the account out, even for the right one.
    let mut attacker = Http::new(&app.base);
    for _ in 0..5 {
        assert_eq!(attacker.login(ADMIN_EMAIL, "wrong password!").await.0, 401);
    }
    let (status, body) = attacker.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(status, 429);
    assert!(body.contains("Too many sign-in attempts"), "{body}");
    app.get("/api/v1/servers").await;
    app.finish().await;
}

/// Waits until no htmx request is in flight on the page.
async fn htmx_idle(b: &Browser) {
    let deadline = Instant::now() + WAIT;
    while b
        .js("return document.querySelectorAll('.htmx-request').length;")
        .await
        != json!(0)
    {
        assert!(Instant::now() < deadline, "htmx never settled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_ui_in_chromium_pins_a_self_signed_v1_panel_and_provisions_an_order_end_to_end() {
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

    b.goto("/admin/clients").await;
    b.fill("#client-name", "Alice Shop").await;
    b.fill("#client-email", "alice@example.com").await;
    b.click("#create-client").await;
    b.wait_text(".flash-success", |t| t.contains("Alice Shop"))
        .await;
    b.goto("/admin/orders/new").await;
    b.select_index("#client_id", 1).await;
    b.select_index("#product_id", 1).await;
    b.fill("#domain", "alice-shop.example.com").await;
    b.click("#place-order").await;
    b.wait_text("[data-service-status]", |t| t == "active")
        .await;
    let service_id = ids(&app, "services").await[0];
    assert_eq!(app.sim.accounts(Target::Server(0))[0].username, "aliceshop");

    // Suspend, unsuspend, terminate reach the Panel by username.
    b.goto(&format!("/admin/services/{service_id}")).await;
    b.wait_text(
        "#service-panel[data-polling='false'] #service-status",
        |t| t == "active",
    )
    .await;
    // Suspended for abuse, with a note: lifting it needs a ticked confirmation.
    b.js("document.querySelector('#suspend-reason').value = 'abuse'")
        .await;
    b.fill("#suspend-note", "spam run, ticket 77").await;
    b.click("#action-suspend").await;
    b.wait_text("#service-status", |t| t == "suspended").await;
    assert!(app.sim.accounts(Target::Server(0))[0].suspended);
    b.wait_text(
        "#service-panel[data-polling='false'] #service-status",
        |t| t == "suspended",
    )
    .await;
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
    b.wait_text(
        "#service-panel[data-polling='false'] #service-status",
        |t| t == "active",
    )
    .await;
    // What the module can do beyond the seeds: a new password, another package.
    let before = app.passwords().await;
    b.click("#action-change-password").await;
    b.wait_text(".flash", |t| t.contains("Password change queued"))
        .await;
    b.wait_text("#service-log", |t| t.contains("change_password"))
        .await;
    b.wait_text(
        "#service-panel[data-polling='false'] #service-status",
        |t| t == "active",
    )
    .await;
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
    let deadline = Instant::now() + WAIT;
    while mails(&app).len() <= before {
        assert!(
            Instant::now() < deadline,
            "the resent welcome mail never arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
        json!({"name": "Panel 2.8 Pro", "module": "opterius_v1", "group_id": ids(&app, "server_groups").await[0], "package": "Pro"}),
    )
    .await;
    b.goto(&format!("/admin/services/{service_id}")).await;
    b.select_index("#change-package-product", 0).await;
    b.click("#action-change-package").await;
    b.wait_text("#service-log", |t| t.contains("change_package"))
        .await;
    let deadline = Instant::now() + WAIT;
    while app.sim.accounts(Target::Server(0))[0].package != "Pro" {
        assert!(Instant::now() < deadline, "the package never changed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.screenshot("v1-service-changed").await;
    b.goto(&format!("/admin/services/{service_id}")).await;
    b.wait_text(
        "#service-panel[data-polling='false'] #service-status",
        |t| t == "active",
    )
    .await;
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
    let mut http = Http::new(&app.base);
    assert_eq!(http.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.0, 303);
    for url in admin_urls(&app).await {
        let (status, body) = http.get(&url).await;
        assert_eq!(status, 200, "GET {url}: {body}");
        assert_no_secret(&url, &body, &secrets);
    }
    app.finish().await;
}

#[tokio::test]
async fn product_form_package_field_lists_v1_packages_warns_on_a_missing_one_and_keeps_seed_free_text()
 {
    let app = TestApp::spawn().await;
    create_admin(&app).await;
    let (seed_group, _, _) = app.catalog("Starter", "manual").await;
    let (v1_group, _, _) = crate::v1::v1_catalog(&app, "Starter", "manual").await;
    let mut http = Http::new(&app.base);
    assert_eq!(http.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.0, 303);
    let field = |module: &str, group: i64, package: &str, shown: &str| {
        format!(
            "/admin/products/package-field?module={module}&group_id={group}&package={package}&package_shown={shown}"
        )
    };
    let (status, body) = http
        .get(&field("opterius_v1", v1_group, "Starter", "text"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("<select id=\"package\"") && body.contains("value=\"Pro\""),
        "{body}"
    );
    assert!(body.contains("value=\"Starter\" selected"), "{body}");
    let (_, body) = http
        .get(&field("opterius_v1", v1_group, "starter", "pick"))
        .await;
    assert!(body.contains("exists on none of the group"), "{body}");
    assert!(body.contains("starter (not on the Panel)"), "{body}");
    // The seed module: free text with the case note, and no swap while typing.
    let (status, body) = http
        .get(&field("opterius", seed_group, "Starter", "pick"))
        .await;
    assert_eq!(status, 200);
    assert!(
        body.contains("<input id=\"package\"") && body.contains("Case-sensitive"),
        "{body}"
    );
    let (status, body) = http
        .get(&field("opterius", seed_group, "Starter", "text"))
        .await;
    assert_eq!((status, body.as_str()), (204, ""));
    app.finish().await;
}

#[tokio::test]
async fn admin_sees_failed_services_grouped_on_needs_attention_and_retries_all_like_this_from_the_log_and_the_list_after_a_confirmation()
 {
    let app = TestApp::spawn_with(
        SimConfig {
            servers: 4,
            ..Default::default()
        },
        &[("PROVISION_MAX_ATTEMPTS", "1")],
    )
    .await;
    create_admin(&app).await;
    let (_, _, product) = app.catalog("Starter", "on_order").await;
    app.sim.set_packages(Target::All, &["Other"]);
    let mut services = Vec::new();
    for i in 0..6 {
        let order = app.order(product, &format!("attn{i}.example.com")).await;
        services.push(order["services"][0]["id"].as_i64().expect("service id"));
    }
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
    assert_eq!(summary, "Retry all 1 like this");
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
    let summary = b.text("#log-retry-all summary").await;
    assert_eq!(summary, "Retry all 5 like this");

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

#[tokio::test]
async fn admin_sends_a_test_alert_sees_recent_alerts_and_the_servers_health_chart() {
    let (url, got) = crate::alerts::sink().await;
    let app = TestApp::spawn_with(
        SimConfig {
            servers: 4,
            ..Default::default()
        },
        &[("ALERT_WEBHOOK_URL", url.as_str())],
    )
    .await;
    create_admin(&app).await;
    let (_, server, _) = app.catalog("Starter", "on_order").await;
    for _ in 0..2 {
        app.post(&format!("/api/v1/servers/{server}/test"), json!({}))
            .await;
    }
    app.sim.set_faults(
        Target::Server(0),
        Faults {
            status: Some(401),
            ..Default::default()
        },
    );
    app.post(&format!("/api/v1/servers/{server}/test"), json!({}))
        .await;
    app.sim.clear_faults();

    let b = Browser::start(&app.base).await;
    b.login().await;
    b.goto("/admin/alerts").await;
    b.wait_text("#alerts tr[data-event='server_offline']", |t| {
        t.contains("offline") && t.contains("Fix:")
    })
    .await;
    b.click("#send-test-alert").await;
    b.wait_text("#flash", |t| t.contains("Test alert queued"))
        .await;
    let deadline = Instant::now() + WAIT;
    while !got
        .lock()
        .expect("lock")
        .iter()
        .any(|e| e["event"] == "test")
    {
        assert!(
            Instant::now() < deadline,
            "the test alert never reached the sink"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.goto("/admin/alerts").await;
    b.wait_text("#alerts tr[data-event='test'] .alert-status", |t| {
        t.contains("sent")
    })
    .await;
    b.screenshot("alerts").await;

    b.goto(&format!("/admin/servers/{server}/edit")).await;
    let chart = b.find("#health-history svg.health-chart").await;
    assert_eq!(
        chart.attr("data-points").await.expect("attr").as_deref(),
        Some("3")
    );
    assert_eq!(
        chart.attr("data-offline").await.expect("attr").as_deref(),
        Some("1")
    );
    b.screenshot("server-health-chart").await;
    b.close().await;
    app.finish().await;
}

#[tokio::test]
async fn adopt_shows_what_the_panel_has_before_the_admin_confirms() {
    let app = TestApp::spawn().await;
    create_admin(&app).await;
    let (_, _, product) = crate::v1::v1_catalog(&app, "Starter", "on_order").await;
    app.sim.set_faults(
        Target::All,
        Faults {
            warning: true,
            remaining: Some(1),
            only: Some("create".into()),
            ..Default::default()
        },
    );
    let order = app.order(product, "hugo.example.com").await;
    let sid = order["services"][0]["id"].as_i64().expect("id");
    let service = app.settle(sid, &["failed", "active"]).await;
    assert_eq!(
        service["last_error"]["kind"], "needs_attention",
        "{service}"
    );
    let mut http = Http::new(&app.base);
    assert_eq!(http.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.0, 303);
    let (_, page) = http.get(&format!("/admin/services/{sid}")).await;
    assert!(
        page.contains(&format!("href=\"/admin/services/{sid}/adopt\"")),
        "a link to the preview, not a blind POST"
    );
    let (status, preview) = http.get(&format!("/admin/services/{sid}/adopt")).await;
    assert_eq!(status, 200, "{preview}");
    assert!(preview.contains("id=\"adopt-facts\""), "{preview}");
    let username = service["username"].as_str().expect("username");
    assert!(preview.contains("<dd>hugo.example.com</dd>"), "{preview}");
    assert!(
        preview.contains(&format!("<dd>{username}</dd>")),
        "{preview}"
    );
    assert!(preview.contains("Disk used (MB)"), "usage shown: {preview}");
    assert_eq!(service["status"], "failed", "looking changes nothing");
    let csrf = http.csrf.clone();
    let (status, _) = http
        .post_form(
            &format!("/admin/services/{sid}/adopt"),
            &[("_csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(status, 303);
    let service = app.settle(sid, &["active"]).await;
    assert!(service["panel_account_id"].is_string(), "{service}");
    let secrets = app.passwords().await;
    assert_no_secret("adopt preview", &preview, &secrets);
    app.finish().await;
}
