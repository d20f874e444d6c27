//! The admin UI in a real browser (headless Chromium over WebDriver), plus
//! HTTP-level checks: every admin route needs a session, state-changing
//! requests need the CSRF token, and no page or fragment carries a secret.
//! This file is the shared harness (the browser, the HTTP client, the crawl's
//! URL list); each screen's tests are in a file of their own.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

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
                    // chromedriver is still starting: a process, not a job.
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
            // The browser waiting for htmx to swap the page: nothing to drain.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the service panel stops polling, showing `status`.
    async fn wait_service_settled(&self, status: &str) {
        self.wait_text(
            "#service-panel[data-polling='false'] #service-status",
            |t| t == status,
        )
        .await;
    }

    /// Adds a client on the Clients page.
    async fn create_client(&self, name: &str, email: &str) {
        self.goto("/admin/clients").await;
        self.fill("#client-name", name).await;
        self.fill("#client-email", email).await;
        self.click("#create-client").await;
        self.wait_text(".flash-success", |t| t.contains(name)).await;
    }

    /// Orders the first product for the first client at `domain` on the new
    /// order form; waits until its service's status is `status`.
    async fn place_order(&self, domain: &str, status: &str) {
        self.goto("/admin/orders/new").await;
        self.select_index("#client_id", 1).await;
        self.select_index("#product_id", 1).await;
        self.fill("#domain", domain).await;
        self.click("#place-order").await;
        self.wait_text("[data-service-status]", |t| t == status)
            .await;
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

    /// A client signed in as the admin [`create_admin`] made.
    pub(crate) async fn signed_in(app: &TestApp) -> Self {
        let mut http = Self::new(&app.base);
        let (status, body) = http.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        assert_eq!(status, 303, "login: {body}");
        http
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

/// Waits until no htmx request is in flight on the page.
async fn htmx_idle(b: &Browser) {
    let deadline = Instant::now() + WAIT;
    while b
        .js("return document.querySelectorAll('.htmx-request').length;")
        .await
        != json!(0)
    {
        assert!(Instant::now() < deadline, "htmx never settled");
        // The browser's own requests: no job event tells us about them.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

mod adopt;
mod alerts;
mod attention;
mod auth;
mod crawl;
mod orders;
mod products;
mod servers;
mod v1_pinning;
