//! Operating it: readiness through a database outage, workers that resume by
//! themselves, Prometheus metrics, JSON logs without secrets.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use opterius_sim::SimConfig;
use serde_json::{Value, json};

use crate::cluster::TempCluster;
use crate::support::{Catalog, CatalogIds, TestApp};

async fn ready(app: &TestApp) -> (u16, Value) {
    let resp = reqwest::get(format!("{}/readyz", app.base))
        .await
        .expect("readyz");
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

async fn wait_ready(app: &TestApp, want: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, body) = ready(app).await;
        if code == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "readyz never answered {want}: {code} {body}"
        );
        // Readiness follows the database coming and going, not a job: poll it.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn readyz_fails_while_the_database_is_down_and_recovers_after() {
    let pg = TempCluster::start();
    let app = TestApp::spawn_on(&pg.url(), SimConfig::default(), &[], |_| {}).await;
    let healthy = wait_ready(&app, 200).await;
    assert_eq!(healthy["database"], true);
    assert_eq!(healthy["workers"], "running");
    assert!(
        healthy["migrations"]
            .as_str()
            .is_some_and(|m| m.contains("applied"))
    );

    pg.down();
    let down = wait_ready(&app, 503).await;
    assert_eq!(down["ready"], false);
    assert_eq!(down["database"], false);
    assert!(
        reqwest::get(format!("{}/healthz", app.base))
            .await
            .expect("healthz")
            .status()
            .is_success(),
        "liveness stays up"
    );

    pg.up();
    let back = wait_ready(&app, 200).await;
    assert_eq!(back["database"], true);
    app.finish().await;
}

/// Warnings and errors logged on this test's thread (its runtime runs every
/// task of the app on it), as (target, message).
#[derive(Clone, Default)]
struct Seen(std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>);

impl Seen {
    /// Records from now until the guard drops.
    fn install(&self) -> crate::support::logs::LogCapture {
        use tracing_subscriber::layer::SubscriberExt as _;
        crate::support::logs::capture(tracing_subscriber::registry().with(self.clone()))
    }

    fn take(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.0.lock().expect("lock"))
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Seen {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() > tracing::Level::WARN {
            return;
        }
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        self.0
            .lock()
            .expect("lock")
            .push((event.metadata().target().to_owned(), m.0));
    }
}

/// Waits until the app's connections that hold a `LISTEN` settle (the
/// listener connects in the background), and returns how many there are.
async fn listeners(app: &TestApp) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'",
        )
        .fetch_one(&app.state.pool)
        .await
        .expect("pg_stat_activity");
        if n > 0 || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn workers_resume_by_themselves_after_postgres_was_down_for_a_minute() {
    let seen = Seen::default();
    let _logs = seen.install();
    let pg = TempCluster::start();
    let app = TestApp::spawn_on(&pg.url(), SimConfig::default(), &[], |_| {}).await;
    let CatalogIds { product_id, .. } = Catalog::on(&app).build().await;
    let before = app
        .order(product_id, "before.example.com")
        .await
        .service_id();
    app.settle(before, &["active"]).await;
    // Eight queues, one listener connection (apalis's own pubsub held one
    // per queue).
    assert_eq!(listeners(&app).await, 1);

    let before_outage = seen.take();
    pg.down();
    // The outage itself is the scenario: a minute without the database.
    tokio::time::sleep(Duration::from_secs(65)).await;
    let during = seen.take();
    pg.up();
    // The fault happened: the workers lost the database and were restarted.
    let restarted = |logs: &[(String, String)]| {
        logs.iter()
            .filter(|(target, m)| {
                target == "commerce::jobs" && m == "worker stopped; restarting it"
            })
            .count()
    };
    assert_eq!(restarted(&before_outage), 0, "{before_outage:?}");
    assert!(
        restarted(&during) > 0,
        "the workers never noticed the outage: {during:?}"
    );
    let lost = |logs: &[(String, String)]| {
        logs.iter()
            .filter(|(target, m)| {
                target == "commerce::jobs::wakeups" && m.contains("lost its connection")
            })
            .count()
    };
    assert_eq!(lost(&before_outage), 0, "{before_outage:?}");
    // Said once for the whole minute, not once a second.
    assert_eq!(lost(&during), 1, "{during:?}");

    wait_ready(&app, 200).await;
    let after = app
        .order(product_id, "after.example.com")
        .await
        .service_id();
    let service = app.settle(after, &["active"]).await;
    assert!(service.panel_account_id.is_some(), "{service:?}");
    assert_eq!(ready(&app).await.1["workers"], "running");
    // The shared listener came back by itself, once.
    assert_eq!(listeners(&app).await, 1);
    app.finish().await;
}

/// The database connections of this app with `application_name` `name`.
async fn backends_named(app: &TestApp, name: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
    )
    .bind(name)
    .fetch_one(&app.state.pool)
    .await
    .expect("pg_stat_activity")
}

#[tokio::test]
async fn requests_have_a_pool_of_their_own_beside_the_workers() {
    let app = TestApp::spawn_with_settings(&[("DATABASE_HTTP_CONNECTIONS", "2")]).await;
    // Before any request the HTTP pool has connected nothing; the workers'
    // pool holds the shared LISTEN.
    assert_eq!(listeners(&app).await, 1);
    assert_eq!(backends_named(&app, "commerce http").await, 0);
    let burst = futures::future::join_all(
        (0..16).map(|_| app.call("GET", "/api/v1/provisioning-log?per_page=50", None)),
    )
    .await;
    assert!(burst.iter().all(|(status, _)| *status == 200), "{burst:?}");
    // Sixteen requests at once were served by two connections of their own.
    assert_eq!(backends_named(&app, "commerce http").await, 2);
    assert!(backends_named(&app, "commerce").await >= 1);
    app.finish().await;
}

#[tokio::test]
async fn metrics_count_jobs_latency_queue_depth_and_server_health() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        server_id,
        product_id,
        ..
    } = Catalog::on(&app).build().await;
    app.post(&format!("/api/v1/servers/{server_id}/test"), json!({}))
        .await;
    let sid = app
        .order(product_id, "metrics.example.com")
        .await
        .service_id();
    app.settle(sid, &["active"]).await;
    // The queue's ack lands just after the service turns active.
    app.drain().await;
    let text = reqwest::get(format!("{}/metrics", app.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let value = |series: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
    };
    assert_eq!(
        value("commerce_jobs_enqueued_total{job=\"create_hosting_account\"}"),
        1.0
    );
    assert_eq!(
        value("commerce_jobs_succeeded_total{job=\"create_hosting_account\"}"),
        1.0
    );
    assert_eq!(
        value("commerce_jobs_failed_total{job=\"create_hosting_account\"}"),
        0.0
    );
    assert_eq!(
        value("commerce_provisioning_call_seconds_count{module=\"opterius\",action=\"create\"}"),
        1.0
    );
    assert_eq!(
        value("commerce_queue_depth{queue=\"commerce.create_hosting_account\"}"),
        0.0
    );
    assert_eq!(value("commerce_servers{status=\"online\"}"), 1.0);
    app.finish().await;
}

#[tokio::test]
async fn json_logs_have_one_object_per_line_with_ids_and_no_secrets() {
    let db = crate::support::fresh_database().await;
    let sim = opterius_sim::Sim::start_local(SimConfig::default())
        .await
        .expect("sim");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let exe = env!("CARGO_BIN_EXE_commerce");
    // The welcome mail's file goes to a temporary MAIL_DIR, not the work tree.
    let mail_dir = std::env::temp_dir()
        .join(format!(
            "commerce-it-mail-{}-ops-{port}",
            std::process::id()
        ))
        .display()
        .to_string();
    let envs = [
        ("DATABASE_URL", db.as_str()),
        ("APP_KEY", crate::support::APP_KEY),
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
        ("PANEL_ALLOWED_NETWORKS", "127.0.0.0/8"),
        ("MAIL_DIR", mail_dir.as_str()),
    ];
    let token_out = Command::new(exe)
        .args(["token", "create", "--name", "logs"])
        .envs(envs)
        .output()
        .expect("token");
    assert!(
        token_out.status.success(),
        "{}",
        String::from_utf8_lossy(&token_out.stderr)
    );
    let mut child = Command::new(exe)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .envs(envs)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("serve");
    let token = String::from_utf8_lossy(&token_out.stdout)
        .lines()
        .last()
        .expect("token line")
        .to_owned();
    let base = format!("http://127.0.0.1:{port}");
    // Built like the service's own client (reqwest has no bundled TLS provider).
    let http = opterius::ClientOptions::default().build().expect("client");
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "serve never came up");
        // A child process: no job event reaches this test, so it polls.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let call = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let group: Value = call("/api/v1/server-groups", json!({"name": "G"}))
        .await
        .expect("g")
        .json()
        .await
        .expect("json");
    call(
        "/api/v1/servers",
        json!({"name": "s", "module": "opterius", "group_id": group["id"], "credentials": {"api_url": sim.url(), "api_token": sim.token(0)}}),
    )
    .await
    .expect("server");
    let product: Value = call(
        "/api/v1/products",
        json!({"name": "P", "module": "opterius", "group_id": group["id"], "package": "Starter"}),
    )
    .await
    .expect("p")
    .json()
    .await
    .expect("json");
    let order: Value = call("/api/v1/orders", json!({"client": {"email": "l@example.com", "name": "L"}, "product_id": product["id"], "domain": "logs.example.com"}))
        .await
        .expect("order")
        .json()
        .await
        .expect("json");
    let sid = order["services"][0]["id"].as_i64().expect("id");
    loop {
        let s: Value = http
            .get(format!("{base}/api/v1/services/{sid}"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("s")
            .json()
            .await
            .expect("json");
        if s["status"] == "active" {
            break;
        }
        assert!(Instant::now() < deadline, "never active: {s}");
        // The worker runs in the child process: no job event here, so it polls.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().expect("exit");
    assert!(status.success(), "graceful shutdown on SIGTERM exits 0");
    let lines: Vec<String> = BufReader::new(child.stderr.take().expect("stderr"))
        .lines()
        .map_while(Result::ok)
        .collect();
    assert!(lines.len() > 3, "{lines:?}");
    let mut created = Vec::new();
    for line in &lines {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        if v["message"] == "account created" {
            created.push(v);
        }
        for secret in [sim.token(0).as_str(), token.as_str()] {
            assert!(!line.contains(secret), "a log line holds a secret: {line}");
        }
    }
    // The job's own line carries the job's span with this service's id (the
    // "order placed" line has service.id too, but as its own field).
    assert_eq!(created.len(), 1, "one job attempt line: {lines:?}");
    let line = &created[0];
    assert_eq!(line["span"]["name"], "provision", "{line}");
    assert_eq!(line["span"]["service.id"], sid, "{line}");
    assert_eq!(line["span"]["action"], "create", "{line}");
    assert!(line["server.id"].is_i64(), "{line}");
    let joined = lines.join("\n");
    let pool = sqlx::PgPool::connect(&db).await.expect("pool");
    let (sid, sealed): (i64, Vec<u8>) = sqlx::query_as("SELECT id, password_sealed FROM services")
        .fetch_one(&pool)
        .await
        .expect("pw");
    let key = commerce::crypto::AppKey::parse(crate::support::APP_KEY).expect("key");
    let password = String::from_utf8(
        commerce::crypto::Sealer::new(&key)
            .open(commerce::app::orders::password_binding(sid), &sealed)
            .expect("open"),
    )
    .expect("utf8");
    assert!(
        !joined.contains(&password),
        "the generated password never reaches a log"
    );
}

#[tokio::test]
async fn text_logs_into_a_pipe_carry_no_colour_codes() {
    let db = crate::support::fresh_database().await;
    // Debug level makes sqlx log every statement, so there are lines to read.
    let out = Command::new(env!("CARGO_BIN_EXE_commerce"))
        .args(["token", "create", "--name", "plain"])
        .env("DATABASE_URL", &db)
        .env("APP_KEY", crate::support::APP_KEY)
        .env("RUST_LOG", "debug")
        .env_remove("LOG_FORMAT")
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("token create");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.lines().count() > 3, "expected debug lines: {stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "an escape sequence reached a pipe: {stderr:?}"
    );
}
