//! Test harness: a fresh database per test, the in-process Panel simulator, the
//! real worker pool and HTTP server on loopback, and an API client that keeps
//! every response so tests can assert no secret ever left the service, and
//! that no job was left behind.

pub mod catalog;
pub mod jobs;
pub mod logs;
pub mod model;

pub use catalog::{Catalog, CatalogIds, Module};
pub use model::{ConnectionTest, LogEntry, Order, Page, Server, Service};

use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use commerce::config::Config;
use commerce::front::AppState;
use opterius_sim::{Sim, SimConfig};
use serde_json::{Value, json};
use sqlx::Connection as _;
use tokio::sync::watch;

pub const APP_KEY: &str = "base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn with_db(url: &str, db: &str) -> String {
    match url.rfind('/') {
        Some(i) if !url[i..].contains('@') => format!("{}/{db}", &url[..i]),
        _ => format!("{url}/{db}"),
    }
}

static DROPPED_STALE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Creates an empty database for one test (and once per run drops the leftovers
/// of runs whose process is gone).
pub async fn fresh_database() -> String {
    let admin = admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect(
        "PostgreSQL must be reachable at DATABASE_URL (scripts/ensure-postgres.sh starts one)",
    );
    DROPPED_STALE
        .get_or_init(|| async {
            let stale: Vec<String> = sqlx::query_scalar(
                "SELECT datname FROM pg_database WHERE datname LIKE 'commerce_it_%' AND datname NOT LIKE $1",
            )
            .bind(format!("commerce_it_{}_%", std::process::id()))
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
            for db in stale {
                // Another test run (a parallel checkout, CI) may still own it.
                let pid = db.split('_').nth(2).unwrap_or_default();
                if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    continue;
                }
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))).execute(&mut conn).await;
            }
        })
        .await;
    let name = format!(
        "commerce_it_{}_{}",
        std::process::id(),
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .expect("create database");
    with_db(&admin, &name)
}

/// Test configuration: quick retries, short Panel timeouts.
pub fn config(database_url: &str, overrides: &[(&str, &str)]) -> Config {
    let mut vars = vec![
        ("DATABASE_URL", database_url.to_owned()),
        ("APP_KEY", APP_KEY.to_owned()),
        ("DATABASE_MAX_CONNECTIONS", "10".into()),
        ("WORKER_CONCURRENCY", "32".into()),
        ("PANEL_TIMEOUT_SECS", "2".into()),
        ("PANEL_CONNECT_TIMEOUT_SECS", "1".into()),
        ("RETRY_BASE_MS", "20".into()),
        ("RETRY_MAX_MS", "200".into()),
        ("PROVISION_MAX_ATTEMPTS", "5".into()),
        ("SWEEP_TIMEOUT_SECS", "2".into()),
        // Tests that exercise the schedules turn them on (or tick them). The
        // usage schedule's first round runs at start: left on, it races a
        // test's first order and may queue a sync of it.
        ("HEALTH_SWEEP_INTERVAL_SECS", "0".into()),
        ("USAGE_SYNC_INTERVAL_SECS", "0".into()),
        // The simulator listens on loopback, which Panel calls refuse by default.
        ("PANEL_ALLOWED_NETWORKS", "127.0.0.0/8".into()),
        // Without SMTP_URL mail goes to files: never into the work tree.
        (
            "MAIL_DIR",
            std::env::temp_dir()
                .join(format!(
                    "commerce-it-mail-{}-{}",
                    std::process::id(),
                    ulid::Ulid::generate()
                ))
                .display()
                .to_string(),
        ),
    ];
    for (k, v) in overrides {
        vars.retain(|(name, _)| name != k);
        vars.push((k, (*v).to_owned()));
    }
    Config::from_lookup(|k| {
        vars.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.clone())
    })
    .expect("test config")
}

/// One running service with its simulator.
pub struct TestApp {
    pub state: AppState,
    pub sim: Sim,
    pub base: String,
    pub token: String,
    http: reqwest::Client,
    stop: watch::Sender<bool>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    responses: Mutex<Vec<String>>,
    /// Set by [`TestApp::finish`]; otherwise the drop runs the secret scan.
    finished: bool,
    /// Set by [`TestApp::expect_jobs_left_behind`].
    jobs_may_be_left: AtomicBool,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with_settings(&[]).await
    }

    /// The default four simulated Panels, with settings overridden.
    pub async fn spawn_with_settings(overrides: &[(&str, &str)]) -> Self {
        Self::spawn_with(
            SimConfig {
                servers: 4,
                ..Default::default()
            },
            overrides,
        )
        .await
    }

    pub async fn spawn_with(sim_config: SimConfig, overrides: &[(&str, &str)]) -> Self {
        Self::spawn_custom(sim_config, overrides, |_| {}).await
    }

    /// Like `spawn_with`, letting the test adjust the state (e.g. add a module).
    pub async fn spawn_custom(
        sim_config: SimConfig,
        overrides: &[(&str, &str)],
        customize: impl FnOnce(&mut AppState),
    ) -> Self {
        let url = fresh_database().await;
        Self::spawn_on(&url, sim_config, overrides, customize).await
    }

    /// Starts the service on the database at `url`.
    pub async fn spawn_on(
        url: &str,
        sim_config: SimConfig,
        overrides: &[(&str, &str)],
        customize: impl FnOnce(&mut AppState),
    ) -> Self {
        let url = url.to_owned();
        let mut state = commerce::build_state(config(&url, overrides))
            .await
            .expect("state");
        customize(&mut state);
        commerce::migrate(&state.pool).await.expect("migrate");
        let sim = Sim::start_local(sim_config).await.expect("sim");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stop_rx) = watch::channel(false);
        let server = tokio::spawn(commerce::runtime::serve_until(
            state.clone(),
            listener,
            true,
            stop_rx,
        ));
        let token = commerce::app::tokens::create(
            &state.pool,
            "tests",
            commerce::app::tokens::Scope::Admin,
        )
        .await
        .expect("token");
        Self {
            state,
            sim,
            base,
            token,
            // Below the server's 10 s header read timeout, which also closes an
            // idle keep-alive connection: never reuse one the server is closing
            // (a loaded run saw IncompleteMessage on such a connection).
            http: reqwest::Client::builder()
                .pool_idle_timeout(commerce::listener::HEADER_READ_TIMEOUT / 2)
                .build()
                .expect("http client"),
            stop,
            server: Some(server),
            responses: Mutex::new(Vec::new()),
            finished: false,
            jobs_may_be_left: AtomicBool::new(false),
        }
    }

    /// Sends a request with the API token; returns status and JSON body.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(
                method.parse().expect("method"),
                format!("{}{path}", self.base),
            )
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        self.responses.lock().expect("lock").push(text.clone());
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call("GET", path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, out) = self.call("POST", path, Some(body)).await;
        assert!((200..300).contains(&status), "POST {path}: {status} {out}");
        out
    }

    /// Asks for `action` on a service: the answer must be 202 with the job's id.
    pub async fn queue(&self, service_id: i64, action: &str) -> String {
        self.queue_with(service_id, action, serde_json::json!({}))
            .await
    }

    /// `queue` with a body (a terminate's `confirm`).
    pub async fn queue_with(&self, service_id: i64, action: &str, body: Value) -> String {
        let path = format!("/api/v1/services/{service_id}/{action}");
        let (status, out) = self.call("POST", &path, Some(body)).await;
        assert_eq!(status, 202, "POST {path}: {out}");
        out["job_id"]
            .as_str()
            .filter(|j| !j.is_empty())
            .unwrap_or_else(|| panic!("POST {path} named no job: {out}"))
            .to_owned()
    }

    /// PATCHes `path`; the answer must be 200 and is returned for checking.
    pub async fn patch(&self, path: &str, body: Value) -> Value {
        let (status, out) = self.call("PATCH", path, Some(body)).await;
        assert_eq!(status, 200, "PATCH {path}: {out}");
        out
    }

    /// Orders `product_id` for a new client at `domain`.
    pub async fn order(&self, product_id: i64, domain: &str) -> Order {
        model::parse(
            "POST /api/v1/orders",
            self.order_json(product_id, domain).await,
        )
    }

    /// `n` orders of `product_id`, the `i`-th for the domain `domain(i)`;
    /// returns their services' ids in order.
    pub async fn orders(
        &self,
        product_id: i64,
        n: usize,
        domain: impl Fn(usize) -> String,
    ) -> Vec<i64> {
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            ids.push(self.order(product_id, &domain(i)).await.service_id());
        }
        ids
    }

    /// [`TestApp::order`] as the JSON the API answered, for shape checks.
    pub async fn order_json(&self, product_id: i64, domain: &str) -> Value {
        self.post(
            "/api/v1/orders",
            json!({"client": {"email": format!("owner@{domain}"), "name": "Test Client"}, "product_id": product_id, "domain": domain}),
        )
        .await
    }

    /// The service as the API shows it.
    pub async fn service(&self, service_id: i64) -> Service {
        let path = format!("/api/v1/services/{service_id}");
        model::parse(&path, self.get(&path).await)
    }

    /// The server as the API shows it.
    pub async fn server(&self, server_id: i64) -> Server {
        let path = format!("/api/v1/servers/{server_id}");
        model::parse(&path, self.get(&path).await)
    }

    /// Tests the saved server's connection now.
    pub async fn test_server(&self, server_id: i64) -> ConnectionTest {
        let path = format!("/api/v1/servers/{server_id}/test");
        model::parse(&path, self.post(&path, json!({})).await)
    }

    /// Waits until the service's status is one of `want` (or fails after
    /// 30 s), looking again each time a job finishes.
    pub async fn settle(&self, service_id: i64, want: &[&str]) -> Service {
        self.wait_until(
            &format!("service {service_id} reaching {want:?}"),
            || async {
                let s = self.service(service_id).await;
                if want.contains(&s.status.as_str()) {
                    Ok(s)
                } else {
                    Err(format!("{s:?}"))
                }
            },
        )
        .await
    }

    /// Waits until the service's log (oldest first) satisfies `done` (or
    /// fails after 30 s), looking again each time a job finishes.
    pub async fn wait_for_log(
        &self,
        service_id: i64,
        done: impl Fn(&[LogEntry]) -> bool,
    ) -> Vec<LogEntry> {
        self.wait_until(
            &format!("the log of service {service_id} getting there"),
            || async {
                let log = self.log_for(service_id).await;
                if done(&log) {
                    Ok(log)
                } else {
                    Err(format!("{log:?}"))
                }
            },
        )
        .await
    }

    /// The service's provisioning log, oldest first.
    pub async fn log_for(&self, service_id: i64) -> Vec<LogEntry> {
        let path = format!("/api/v1/provisioning-log?service_id={service_id}&per_page=100");
        let page: Page<LogEntry> = model::parse(&path, self.get(&path).await);
        let mut items = page.items;
        items.reverse();
        items
    }

    /// Keeps `body` as if the service had answered it (for testing the scan).
    pub fn remember_response(&self, body: String) {
        self.responses.lock().expect("lock").push(body);
    }

    /// Every generated account password, opened from the database.
    pub async fn passwords(&self) -> Vec<String> {
        passwords(&self.state.pool, &self.state.sealer).await
    }

    /// The secrets no response and no log row may carry: the generated
    /// passwords, the simulated Panels' tokens and Agent keys.
    fn known_secrets(&self, mut passwords: Vec<String>) -> Vec<String> {
        passwords.extend((0..4).map(|n| self.sim.token(n)));
        passwords.extend((0..4).map(|n| self.sim.api_key(n)));
        passwords.push(opterius_sim::SimConfig::default().token);
        passwords.retain(|s| s.len() >= 8);
        passwords
    }

    /// Asserts no response so far carried a server token or a generated password
    /// and (after letting the pending jobs run) that no job was left behind,
    /// then stops the service.
    pub async fn finish(mut self) {
        let secrets = self.known_secrets(self.passwords().await);
        let responses = self.responses.lock().expect("lock").clone();
        assert_no_secret_left(&self.state.pool, &secrets, &responses).await;
        if !self.jobs_may_be_left() {
            let _ = self.drain_within(Duration::from_secs(10)).await;
            let left = jobs::outstanding(&self.state.pool, None).await;
            if let Some(message) = jobs::left_behind_message(&left) {
                // The drop must not report it a second time.
                self.finished = true;
                panic!("{message}");
            }
        }
        self.finished = true;
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take() {
            let joined = tokio::time::timeout(Duration::from_secs(20), server)
                .await
                .expect("the service did not stop within 20 s of the stop signal");
            joined
                .expect("the service's task panicked")
                .expect("the service stopped with an error");
        }
        self.state.pool.close().await;
    }
}

/// A test that ends without [`TestApp::finish`] still gets the secret scan
/// and the "no jobs left behind" check: on its own thread and runtime (the
/// test's may be single-threaded and is blocked here), over a fresh
/// connection to the test's database. The workers cannot run here, so what
/// is outstanding now is left behind.
impl Drop for TestApp {
    fn drop(&mut self) {
        if self.finished || std::thread::panicking() {
            return;
        }
        let _ = self.stop.send(true);
        let url = self.state.config.database_url.clone();
        let sealer = self.state.sealer.clone();
        let responses = self.responses.lock().map(|r| r.clone()).unwrap_or_default();
        let secrets = self.known_secrets(Vec::new());
        let check_jobs = !self.jobs_may_be_left();
        let scan = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let pool = sqlx::PgPool::connect(&url)
                    .await
                    .expect("connect for the secret scan");
                let mut secrets = secrets;
                secrets.extend(passwords(&pool, &sealer).await);
                assert_no_secret_left(&pool, &secrets, &responses).await;
                let left = if check_jobs {
                    jobs::outstanding(&pool, None).await
                } else {
                    Vec::new()
                };
                pool.close().await;
                if let Some(message) = jobs::left_behind_message(&left) {
                    panic!("{message}");
                }
            });
        });
        if let Err(panic) = scan.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

/// Every generated account password, opened from the database.
async fn passwords(pool: &sqlx::PgPool, sealer: &commerce::crypto::Sealer) -> Vec<String> {
    let sealed: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT id, password_sealed FROM services ORDER BY id")
            .fetch_all(pool)
            .await
            .expect("passwords");
    sealed
        .iter()
        .map(|(id, s)| {
            let at = commerce::app::orders::password_binding(*id);
            String::from_utf8(sealer.open(at, s).expect("open")).expect("utf8")
        })
        .collect()
}

/// Asserts that no response body and no provisioning log row holds a secret.
async fn assert_no_secret_left(pool: &sqlx::PgPool, secrets: &[String], responses: &[String]) {
    for body in responses {
        for secret in secrets {
            assert!(
                !body.contains(secret.as_str()),
                "a response leaked a secret: {body}"
            );
        }
    }
    let log_rows: Vec<String> = sqlx::query_scalar(
        "SELECT coalesce(request::text, '') || coalesce(response::text, '') || coalesce(error::text, '') FROM provisioning_log",
    )
    .fetch_all(pool)
    .await
    .expect("log");
    for row in &log_rows {
        for secret in secrets {
            assert!(
                !row.contains(secret.as_str()),
                "the provisioning log holds a secret: {row}"
            );
        }
    }
}

/// Creates an admin (once per database) and signs in through the login form
/// at `base`; returns the session's Cookie header and its CSRF token.
pub async fn admin_session(pool: &sqlx::PgPool, base: &str) -> (String, String) {
    const EMAIL: &str = "session@example.com";
    const PASSWORD: &str = "correct horse battery";
    fn keep(resp: &reqwest::Response, jar: &mut Vec<String>) {
        for v in resp.headers().get_all("set-cookie") {
            if let Some(kv) = v.to_str().ok().and_then(|v| v.split(';').next()) {
                let name = format!("{}=", kv.split('=').next().unwrap_or_default());
                jar.retain(|c| !c.starts_with(&name));
                jar.push(kv.to_owned());
            }
        }
    }
    fn between<'a>(text: &'a str, start: &str) -> &'a str {
        text.split(start)
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| panic!("{start} not on the page: {text}"))
    }
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM admin_users WHERE email = $1)")
            .bind(EMAIL)
            .fetch_one(pool)
            .await
            .expect("admin lookup");
    if !exists {
        commerce::app::admins::create(pool, EMAIL, PASSWORD)
            .await
            .expect("admin");
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut jar = Vec::new();
    let resp = http
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("login page");
    keep(&resp, &mut jar);
    let page = resp.text().await.expect("login page");
    let csrf = between(&page, "name=\"_csrf\" value=\"").to_owned();
    let resp = http
        .post(format!("{base}/login"))
        .header("cookie", jar.join("; "))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("_csrf", csrf.as_str()),
                ("email", EMAIL),
                ("password", PASSWORD),
                ("next", "/admin"),
            ])
            .expect("form"),
        )
        .send()
        .await
        .expect("sign in");
    assert_eq!(resp.status(), 303, "sign-in failed");
    keep(&resp, &mut jar);
    let cookie = jar.join("; ");
    let admin = http
        .get(format!("{base}/admin"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("dashboard")
        .text()
        .await
        .expect("dashboard");
    let token = between(&admin, "name=\"csrf-token\" content=\"").to_owned();
    (cookie, token)
}
