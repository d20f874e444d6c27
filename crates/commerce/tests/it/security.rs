//! The security review's findings, reproduced: a Panel that echoes the create
//! body, a stored token sent to a new address, redirects, and Panel addresses
//! in loopback or cloud-metadata space. Each test fails on the old code.

use std::sync::{Arc, Mutex};

use opterius_sim::{Faults, SimConfig, Target};
use serde_json::{Value, json};

use crate::support::{Catalog, CatalogIds, TestApp};

/// Every log line written while it is alive (the test's runtime is
/// single-threaded, so the server and the workers log through it too).
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let lines = Self::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("debug,sqlx=warn,hyper=warn,h2=warn,reqwest=debug")
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (lines, guard)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

/// Signs in to the admin UI over plain HTTP and returns a cookie header.
async fn admin_cookie(app: &TestApp) -> (reqwest::Client, String) {
    let email = "sec-admin@example.com";
    let password = "correct horse battery staple";
    commerce::app::admins::create(&app.state.pool, email, password)
        .await
        .expect("admin");
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
        .expect("csrf field")
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
    assert_eq!(resp.status().as_u16(), 303, "signed in");
    let mut all = cookies;
    all.extend(cookie_pairs(&resp));
    (http, all.join("; "))
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

/// Every row of every application table, as JSON text, except the sealed
/// password column (the one place the password may be, encrypted).
async fn all_columns(app: &TestApp) -> Vec<String> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&app.state.pool)
    .await
    .expect("tables");
    let mut rows = Vec::new();
    for t in tables {
        let sql = format!("SELECT (to_jsonb(t) - 'password_sealed')::text FROM \"{t}\" t");
        let mut got: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(&app.state.pool)
            .await
            .expect("rows");
        rows.append(&mut got);
    }
    rows
}

#[tokio::test]
async fn a_panel_echoing_the_create_body_leaks_the_password_nowhere() {
    let (lines, _guard) = Lines::capture();
    let app = TestApp::spawn().await;
    let CatalogIds {
        product_id: product,
        ..
    } = Catalog::on(&app).build().await;
    // 200 without an id, a 422 whose message quotes the body, a 500 body.
    let mut services = Vec::new();
    for (n, status) in [200u16, 422, 500].into_iter().enumerate() {
        app.sim.set_faults(
            Target::All,
            Faults {
                echo: Some(status),
                only: Some("create".into()),
                ..Default::default()
            },
        );
        let sid = app
            .order(product, &format!("echo{n}.example.com"))
            .await
            .service_id();
        let s = app.settle(sid, &["failed", "needs_attention"]).await;
        assert!(s.last_error.is_some(), "{s:?}");
        services.push(sid);
    }
    let passwords = app.passwords().await;
    assert_eq!(passwords.len(), 3);
    // The Panel really did get (and echo) the password: the test can fail.
    let creates = app
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/api/accounts"))
        .count();
    assert!(creates >= 3, "{creates}");

    let mut seen = Vec::new();
    for sid in &services {
        seen.push(
            app.get(&format!("/api/v1/services/{sid}"))
                .await
                .to_string(),
        );
        for entry in app.log_for(*sid).await {
            let id = entry.id;
            seen.push(
                app.get(&format!("/api/v1/provisioning-log/{id}"))
                    .await
                    .to_string(),
            );
        }
    }
    let (http, cookie) = admin_cookie(&app).await;
    for sid in &services {
        seen.push(page(&http, &cookie, format!("{}/admin/services/{sid}", app.base)).await);
    }
    seen.push(page(&http, &cookie, format!("{}/admin/log", app.base)).await);
    let log_ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM provisioning_log")
        .fetch_all(&app.state.pool)
        .await
        .expect("ids");
    for id in log_ids {
        seen.push(page(&http, &cookie, format!("{}/admin/log/{id}", app.base)).await);
    }
    seen.extend(all_columns(&app).await);
    seen.push(lines.text());
    let joined = seen.join("\n");
    assert!(
        joined.contains("[redacted]"),
        "the echo reached the log, redacted"
    );
    for pw in &passwords {
        let forms = [
            pw.clone(),
            serde_json::to_string(pw)
                .expect("json")
                .trim_matches('"')
                .to_owned(),
            serde_urlencoded::to_string([("p", pw)]).expect("form")[2..].to_owned(),
        ];
        for form in forms {
            assert!(
                !joined.contains(&form),
                "the password {form:?} leaked: {}",
                joined
                    .lines()
                    .find(|l| l.contains(&form))
                    .unwrap_or_default()
            );
        }
    }
    app.finish().await;
}

async fn sim_requests(app: &TestApp) -> usize {
    app.sim.requests().len()
}

#[tokio::test]
async fn a_changed_api_url_needs_the_token_again_and_sends_nothing() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        group_id: group,
        server_id: server,
        ..
    } = Catalog::on(&app).auto_setup("manual").build().await;
    let _ = group;
    let before = sim_requests(&app).await;
    let other_host = app.sim.server_url(0).replace("127.0.0.1", "localhost");
    let moved = [
        app.sim.server_url(1),                            // path
        other_host,                                       // host
        app.sim.server_url(0).replace("http:", "https:"), // scheme
        "http://127.0.0.1:1/s/0".to_owned(),              // port
    ];
    for url in &moved {
        let (status, body) = app
            .call(
                "POST",
                "/api/v1/servers/test",
                Some(json!({"module": "opterius", "server_id": server,
                            "credentials": {"api_url": url, "api_token": ""}})),
            )
            .await;
        assert_eq!(status, 422, "{url}: {body}");
        assert!(
            body["fields"]["credentials.api_token"][0]
                .as_str()
                .is_some_and(|m| m.contains("api_url")),
            "{body}"
        );
        let (status, body) = app
            .call(
                "PATCH",
                &format!("/api/v1/servers/{server}"),
                Some(json!({"credentials": {"api_url": url}})),
            )
            .await;
        assert_eq!(status, 422, "{url}: {body}");
        assert!(body["fields"]["credentials.api_token"].is_array(), "{body}");
    }
    assert_eq!(
        sim_requests(&app).await,
        before,
        "nothing was sent anywhere"
    );
    // The same address keeps the stored token; a new address with its token works.
    let same = app
        .post(
            "/api/v1/servers/test",
            json!({"module": "opterius", "server_id": server,
                   "credentials": {"api_url": app.sim.server_url(0), "api_token": ""}}),
        )
        .await;
    assert_eq!(same["ok"], true, "{same}");
    let (status, body) = app
        .call(
            "PATCH",
            &format!("/api/v1/servers/{server}"),
            Some(json!({"credentials": {"api_url": app.sim.server_url(1), "api_token": app.sim.token(1)}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let tested = app.test_server(server).await;
    assert!(tested.ok, "{tested:?}");
    app.finish().await;
}

#[tokio::test]
async fn a_redirecting_panel_gets_no_second_request_and_fails_invalid_response() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        server_id: server,
        product_id: product,
        ..
    } = Catalog::on(&app).build().await;
    for status in [302u16, 307] {
        app.sim.reset();
        app.sim.set_faults(
            Target::Server(0),
            Faults {
                redirect: Some(status),
                location: Some(format!("{}/api/server/stats", app.sim.server_url(1))),
                ..Default::default()
            },
        );
        let tested = app.test_server(server).await;
        assert!(!tested.ok, "{tested:?}");
        assert_eq!(tested.error_kind(), "invalid_response", "{tested:?}");
        let message = tested.error.as_ref().map_or("", |e| e.message.as_str());
        assert!(message.contains(&status.to_string()), "{message}");
        assert!(
            message.contains("/s/1/api/server/stats"),
            "names the Location: {message}"
        );
        let seen = app.sim.requests();
        assert_eq!(seen.len(), 1, "exactly one request, to the Panel: {seen:?}");
        assert_eq!(seen[0].target, "panel-0");
    }
    // A 307 on a create would re-send the body (password included) elsewhere.
    app.sim.reset();
    let back = app.test_server(server).await;
    assert!(back.ok, "the server is back online: {back:?}");
    app.sim.reset();
    app.sim.set_faults(
        Target::Server(0),
        Faults {
            redirect: Some(307),
            location: Some(format!("{}/api/accounts", app.sim.server_url(1))),
            only: Some("create".into()),
            ..Default::default()
        },
    );
    let sid = app
        .order(product, "redirected.example.com")
        .await
        .service_id();
    let s = app.settle(sid, &["failed"]).await;
    assert_eq!(s.error_kind(), "invalid_response", "{s:?}");
    let seen = app.sim.requests();
    assert!(seen.iter().all(|r| r.target == "panel-0"), "{seen:?}");
    assert_eq!(
        seen.iter()
            .filter(|r| r.path.ends_with("/api/accounts"))
            .count(),
        1,
        "a redirect is not retried: {seen:?}"
    );
    assert!(app.sim.accounts(Target::All).is_empty());
    app.finish().await;
}

/// Resolves `*.sim.test` names to fixed addresses; nothing else resolves, so
/// no packet leaves this machine.
struct FixedResolver(Vec<(&'static str, std::net::SocketAddr)>);

impl reqwest::dns::Resolve for FixedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let found = self
            .0
            .iter()
            .find(|(n, _)| *n == name.as_str())
            .map(|(_, a)| *a);
        Box::pin(async move {
            match found {
                Some(a) => Ok(Box::new(std::iter::once(a)) as reqwest::dns::Addrs),
                None => Err(Box::new(std::io::Error::other("no such host"))
                    as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}

async fn unsaved_test(app: &TestApp, url: &str, token: &str) -> Value {
    app.post(
        "/api/v1/servers/test",
        json!({"module": "opterius", "credentials": {"api_url": url, "api_token": token}}),
    )
    .await
}

#[tokio::test]
async fn panel_addresses_in_metadata_or_loopback_space_are_refused_before_connecting() {
    let app = TestApp::spawn_custom(
        SimConfig {
            servers: 2,
            ..Default::default()
        },
        &[("PANEL_ALLOWED_NETWORKS", "")],
        |_| {},
    )
    .await;
    let sim_addr = app.sim.addr();
    let resolver = FixedResolver(vec![
        (
            "metadata.sim.test",
            "169.254.169.254:80".parse().expect("addr"),
        ),
        ("local.sim.test", sim_addr),
    ]);
    let mut options = app.state.config.client_options();
    options.resolver = Some(Arc::new(resolver));
    let mut state = app.state.clone();
    state.http = Arc::new(commerce::app::tls::HttpClients::new(options).expect("clients"));
    let token = app.sim.token(0);
    let port = sim_addr.port();
    let cases = [
        "https://metadata.sim.test".to_owned(),
        "http://metadata.sim.test/latest/meta-data".to_owned(),
        format!("https://local.sim.test:{port}"),
        format!("http://local.sim.test:{port}"),
        format!("http://127.0.0.1:{port}"),
        "https://169.254.169.254".to_owned(),
        format!("https://[::1]:{port}"),
    ];
    for url in &cases {
        let input = commerce::app::connection::UnsavedTest {
            module: "opterius".into(),
            credentials: [
                ("api_url".to_owned(), url.clone()),
                ("api_token".to_owned(), token.clone()),
            ]
            .into(),
            server_id: None,
            tls: None,
        };
        let out = commerce::app::connection::test_unsaved(&state, &input)
            .await
            .expect("test runs");
        let out = serde_json::to_value(&out).expect("json");
        assert_eq!(out["ok"], false, "{url}: {out}");
        assert_eq!(out["error"]["kind"], "config", "{url}: {out}");
        let message = out["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("refused to contact"), "{url}: {message}");
    }
    // Through the API too (the app's own client, IP literal).
    let out = unsaved_test(&app, &app.sim.server_url(0), &token).await;
    assert_eq!(out["error"]["kind"], "config", "{out}");
    assert!(
        app.sim.requests().is_empty(),
        "no request reached the simulator"
    );
    app.finish().await;
}

#[tokio::test]
async fn sealed_secrets_stay_on_their_row_and_key_rotation_reseals_everything_resumably() {
    use commerce::crypto::{AppKey, Sealer};
    let app = TestApp::spawn().await;
    let CatalogIds {
        group_id: group,
        server_id: first,
        product_id: product,
        ..
    } = Catalog::on(&app).auto_setup("manual").build().await;
    let second = app.add_server("panel-1", group, 1, 0).await;
    for n in 0..3 {
        app.order(product, &format!("rot{n}.example.com")).await;
    }
    let pool = &app.state.pool;
    let row = |id: i64| commerce::app::servers::get(pool, id);
    // A sealed token copied onto another row does not open there.
    let saved = row(second).await.expect("row").secrets;
    sqlx::query(
        "UPDATE servers SET secrets = (SELECT secrets FROM servers WHERE id = $1) WHERE id = $2",
    )
    .bind(first)
    .bind(second)
    .execute(pool)
    .await
    .expect("move");
    let moved = row(second).await.expect("row");
    let e = commerce::app::servers::credentials(&moved, &app.state.sealer).expect_err("moved");
    assert!(e.to_string().contains("another row"), "{e}");
    sqlx::query("UPDATE servers SET secrets = $2 WHERE id = $1")
        .bind(second)
        .bind(saved)
        .execute(pool)
        .await
        .expect("restore");

    let old = AppKey::parse(crate::support::APP_KEY).expect("old key");
    let new = AppKey::parse(&AppKey::generate()).expect("new key");
    let rotating = Sealer::with_previous(&new, Some(&old));
    // Interrupted after one batch of one row, then run again to the end.
    let part = commerce::app::keys::rotate(pool, &rotating, 1, Some(1))
        .await
        .expect("first batch");
    assert_eq!((part.servers, part.services), (1, 0));
    let rest = commerce::app::keys::rotate(pool, &rotating, 1, None)
        .await
        .expect("the rest");
    assert_eq!((rest.servers, rest.services), (1, 3));
    let again = commerce::app::keys::rotate(pool, &rotating, 100, None)
        .await
        .expect("nothing left");
    assert_eq!((again.servers, again.services), (0, 0));
    let only_new = Sealer::new(&new);
    let only_old = Sealer::new(&old);
    for id in [first, second] {
        let r = row(id).await.expect("row");
        let creds =
            commerce::app::servers::credentials(&r, &only_new).expect("opens under the new key");
        assert!(creds.secrets.contains_key("api_token"));
        assert!(commerce::app::servers::credentials(&r, &only_old).is_err());
    }
    let sealed: Vec<(i64, Vec<u8>)> = sqlx::query_as("SELECT id, password_sealed FROM services")
        .fetch_all(pool)
        .await
        .expect("services");
    for (id, s) in &sealed {
        only_new
            .open(commerce::app::orders::password_binding(*id), s)
            .expect("password under the new key");
    }
    // Back to the harness's key so its final checks can open everything.
    let back = Sealer::with_previous(&old, Some(&new));
    let undone = commerce::app::keys::rotate(pool, &back, 50, None)
        .await
        .expect("rotate back");
    assert_eq!((undone.servers, undone.services), (2, 3));
    app.finish().await;
}

async fn order_with_key(app: &TestApp, key: &str, body: &Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/orders", app.base))
        .bearer_auth(&app.token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("order");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json"))
}

#[tokio::test]
async fn the_same_idempotency_key_twice_makes_one_order() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        product_id: product,
        ..
    } = Catalog::on(&app).build().await;
    let body = json!({"client": {"email": "retry@example.com", "name": "R"}, "product_id": product, "domain": "retry.example.com"});
    let (first_status, first) = order_with_key(&app, "order-7f3a", &body).await;
    assert_eq!(first_status, 201, "{first}");
    // A retry after a timeout, and two more racing each other.
    let (again_status, again) = order_with_key(&app, "order-7f3a", &body).await;
    assert_eq!((again_status, &again), (201, &first));
    let (a, b) = tokio::join!(
        order_with_key(&app, "order-race", &body),
        order_with_key(&app, "order-race", &body)
    );
    assert_eq!(a.1["id"], b.1["id"], "{a:?} {b:?}");
    // The same key with another body is refused, and creates nothing.
    let other = json!({"client": {"email": "retry@example.com", "name": "R"}, "product_id": product, "domain": "other.example.com"});
    let (status, refused) = order_with_key(&app, "order-7f3a", &other).await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused["fields"]["Idempotency-Key"].is_array(), "{refused}");
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&app.state.pool)
        .await
        .expect("count");
    assert_eq!(orders, 2, "one order per key");
    let sid = first["services"][0]["id"].as_i64().expect("id");
    app.settle(sid, &["active"]).await;
    assert_eq!(app.sim.creates(Target::All).get("retry").copied(), Some(1));
    app.finish().await;
}

async fn with_token(
    app: &TestApp,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(
            method.parse().expect("method"),
            format!("{}{path}", app.base),
        )
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
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

#[tokio::test]
async fn provision_tokens_cannot_reach_servers_and_a_revoked_token_is_refused_at_once() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        group_id: group,
        server_id: server,
        product_id: product,
        ..
    } = Catalog::on(&app).auto_setup("manual").build().await;
    let created = cli(
        &app,
        &[
            "token",
            "create",
            "--name",
            "billing",
            "--scope",
            "provision",
        ],
    );
    let stdout = String::from_utf8_lossy(&created.stdout);
    let token = stdout.lines().last().expect("token line").trim().to_owned();
    assert!(token.starts_with("opc_"), "{stdout}");
    let order = json!({"client": {"email": "b@example.com", "name": "B"}, "product_id": product, "domain": "billing.example.com"});
    let (status, placed) = with_token(&app, &token, "POST", "/api/v1/orders", Some(order)).await;
    assert_eq!(status, 201, "{placed}");
    let sid = placed["services"][0]["id"].as_i64().expect("id");
    for (method, path) in [
        ("GET", format!("/api/v1/services/{sid}")),
        ("GET", "/api/v1/provisioning-log".to_owned()),
        ("GET", "/api/v1/products".to_owned()),
    ] {
        let (status, body) = with_token(&app, &token, method, &path, None).await;
        assert_eq!(status, 200, "{method} {path}: {body}");
    }
    let (status, body) = with_token(
        &app,
        &token,
        "POST",
        &format!("/api/v1/services/{sid}/create"),
        None,
    )
    .await;
    assert_eq!(status, 202, "lifecycle actions are provisioning: {body}");
    let probe = json!({"module": "opterius", "credentials": {"api_url": "https://10.0.0.1", "api_token": "x-token-1"}});
    for (method, path, body) in [
        (
            "POST",
            "/api/v1/servers".to_owned(),
            Some(json!({"name": "x", "module": "opterius", "group_id": group, "credentials": {}})),
        ),
        ("GET", "/api/v1/servers".to_owned(), None),
        ("POST", "/api/v1/servers/test".to_owned(), Some(probe)),
        ("POST", format!("/api/v1/servers/{server}/test"), None),
        (
            "PATCH",
            format!("/api/v1/servers/{server}"),
            Some(json!({"name": "y"})),
        ),
        (
            "POST",
            "/api/v1/server-groups".to_owned(),
            Some(json!({"name": "g2"})),
        ),
        (
            "POST",
            "/api/v1/products".to_owned(),
            Some(json!({"name": "p2"})),
        ),
    ] {
        let (status, answer) = with_token(&app, &token, method, &path, body).await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .is_some_and(|e| e.contains("admin")),
            "{answer}"
        );
    }
    // Revoked by another process: refused on the very next request.
    cli(&app, &["token", "revoke", "billing"]);
    let (status, body) = with_token(&app, &token, "GET", "/api/v1/products", None).await;
    assert_eq!(status, 401, "{body}");
    let listed = cli(&app, &["token", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    let line = listed
        .lines()
        .find(|l| l.contains("billing"))
        .expect("listed");
    assert!(line.contains("provision"), "{listed}");
    assert_eq!(
        line.matches("UTC").count(),
        3,
        "created, last used, revoked: {line}"
    );
    assert!(!listed.contains(&token), "never the value");
    app.finish().await;
}

#[tokio::test]
async fn hostile_paging_slow_clients_and_repeat_sweeps_are_answered_without_harm() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        server_id: server,
        product_id: product,
        ..
    } = Catalog::on(&app).auto_setup("manual").build().await;
    for path in [
        "/api/v1/services?page=9223372036854775807&per_page=9223372036854775807",
        "/api/v1/provisioning-log?page=9223372036854775807",
        "/api/v1/servers?page=-9223372036854775808&per_page=-1",
        "/api/v1/orders?page=9223372036854775807",
    ] {
        let (status, body) = app.call("GET", path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        // Huge pages are past the end; negative ones are page 1.
        assert!(body["items"].is_array(), "{body}");
    }
    let (http, cookie) = admin_cookie(&app).await;
    for path in ["/admin/services", "/admin/log"] {
        page(
            &http,
            &cookie,
            format!("{}{path}?page=9223372036854775807", app.base),
        )
        .await;
    }
    // nosniff on every kind of answer.
    for path in [
        "/healthz",
        "/api/v1/services",
        "/login",
        "/no-such-page",
        "/static/app.css",
    ] {
        let resp = reqwest::get(format!("{}{path}", app.base))
            .await
            .expect("answer");
        assert_eq!(
            resp.headers()
                .get("x-content-type-options")
                .map(|v| v.as_bytes()),
            Some(&b"nosniff"[..]),
            "{path}"
        );
    }
    // /readyz says what, not the database's words.
    let ready: Value = reqwest::get(format!("{}/readyz", app.base))
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(
        ready
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec![
            "database".into(),
            "migrations".into(),
            "ready".into(),
            "workers".into()
        ])
    );

    // A client that never finishes its request head is cut off.
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut slow = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(
        commerce::listener::HEADER_READ_TIMEOUT + std::time::Duration::from_secs(5),
        slow.read(&mut buf),
    )
    .await
    .expect("the server closes a slow connection");
    assert!(closed.is_ok(), "{closed:?}");

    // One Test all at a time: a second one while the first runs gets 409.
    app.sim.set_faults(
        Target::All,
        Faults {
            latency_ms: 1500,
            ..Default::default()
        },
    );
    let first = app.call("POST", "/api/v1/servers/sweep", Some(json!({})));
    let second = async {
        // Lands while the first, slow sweep runs: the overlap is under test.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        app.call("POST", "/api/v1/servers/sweep", Some(json!({})))
            .await
    };
    let ((a, _), (b, busy)) = tokio::join!(first, second);
    assert_eq!((a, b), (200, 409), "{busy}");
    app.sim.clear_faults();
    let (again, _) = app
        .call("POST", "/api/v1/servers/sweep", Some(json!({})))
        .await;
    assert_eq!(again, 200, "the slot is released after the first ends");

    // API terminate needs {"confirm": "<domain>"}; Retry never re-runs one.
    let _ = server;
    let sid = app.order(product, "keepme.example.com").await.service_id();
    let (status, body) = app
        .call("POST", &format!("/api/v1/services/{sid}/create"), None)
        .await;
    assert_eq!(status, 202, "{body}");
    app.settle(sid, &["active"]).await;
    for body in [
        None,
        Some(json!({})),
        Some(json!({"confirm": "other.example.com"})),
    ] {
        let (status, answer) = app
            .call("POST", &format!("/api/v1/services/{sid}/terminate"), body)
            .await;
        assert_eq!(status, 422, "{answer}");
        assert!(answer["fields"]["confirm"].is_array(), "{answer}");
    }
    app.sim.set_faults(
        Target::All,
        Faults {
            status: Some(500),
            only: Some("terminate".into()),
            ..Default::default()
        },
    );
    let (status, _) = app
        .call(
            "POST",
            &format!("/api/v1/services/{sid}/terminate"),
            Some(json!({"confirm": "KeepMe.example.com"})),
        )
        .await;
    assert_eq!(status, 202);
    app.wait_for_log(sid, |log| {
        log.iter()
            .filter(|e| e.outcome() == ("terminate", "failed"))
            .count()
            >= 5
    })
    .await;
    app.settle(sid, &["active"]).await;
    let (status, body) = app
        .call("POST", &format!("/api/v1/services/{sid}/retry"), None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        app.sim
            .accounts(Target::All)
            .iter()
            .any(|a| a.username == "keepme")
    );
    app.sim.clear_faults();
    app.finish().await;
}

#[test]
fn debug_output_of_inputs_holding_secrets_redacts_them() {
    let creds: std::collections::BTreeMap<String, String> = [
        ("api_url".to_owned(), "https://p.example.com".to_owned()),
        ("api_token".to_owned(), "tok-very-secret".to_owned()),
    ]
    .into();
    let input = commerce::app::servers::ServerInput {
        credentials: creds.clone(),
        ..Default::default()
    };
    let patch = commerce::app::servers::ServerPatch {
        credentials: Some(creds.clone()),
        ..Default::default()
    };
    let test = commerce::app::connection::UnsavedTest {
        module: "opterius".into(),
        credentials: creds,
        server_id: None,
        tls: None,
    };
    let agent = opterius::AgentCreateAccount {
        username: "u".into(),
        domain: "d".into(),
        email: "e".into(),
        password: "pw-very-secret".into(),
        package_id: 1,
    };
    for shown in [
        format!("{input:?}"),
        format!("{patch:?}"),
        format!("{test:?}"),
        format!("{agent:?}"),
    ] {
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }
}

async fn try_login(app: &TestApp, email: &str, password: &str) -> (u16, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = http
        .get(format!("{}/login", app.base))
        .send()
        .await
        .expect("login page");
    let cookies = cookie_pairs(&login).join("; ");
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
        .header("cookie", cookies)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("login");
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

/// Answers the simulator's address first, then cloud metadata: a rebinding name.
struct Rebinding {
    first: std::net::SocketAddr,
    calls: std::sync::atomic::AtomicUsize,
}

impl reqwest::dns::Resolve for Rebinding {
    fn resolve(&self, _: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let addr = if n == 0 {
            self.first
        } else {
            "169.254.169.254:80".parse().expect("addr")
        };
        Box::pin(async move { Ok(Box::new(std::iter::once(addr)) as reqwest::dns::Addrs) })
    }
}

#[tokio::test]
async fn a_name_that_rebinds_to_metadata_is_refused_at_the_next_connect() {
    let app = TestApp::spawn_with(
        SimConfig::default(),
        &[("PANEL_ALLOWED_NETWORKS", "127.0.0.1/32")],
    )
    .await;
    let resolver = Arc::new(Rebinding {
        first: app.sim.addr(),
        calls: Default::default(),
    });
    let url = format!("http://panel.sim.test:{}", app.sim.addr().port());
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        // A fresh connection pool each time, so the name is resolved again.
        let mut options = app.state.config.client_options();
        options.resolver = Some(resolver.clone());
        let mut state = app.state.clone();
        state.http = Arc::new(commerce::app::tls::HttpClients::new(options).expect("clients"));
        let input = commerce::app::connection::UnsavedTest {
            module: "opterius".into(),
            credentials: [
                ("api_url".to_owned(), url.clone()),
                ("api_token".to_owned(), app.sim.token(0)),
            ]
            .into(),
            server_id: None,
            tls: None,
        };
        let out = commerce::app::connection::test_unsaved(&state, &input)
            .await
            .expect("test runs");
        outcomes.push(serde_json::to_value(&out).expect("json"));
    }
    assert_eq!(outcomes[0]["ok"], true, "{}", outcomes[0]);
    assert_eq!(outcomes[1]["ok"], false, "{}", outcomes[1]);
    assert_eq!(outcomes[1]["error"]["kind"], "config", "{}", outcomes[1]);
    assert!(
        outcomes[1]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("169.254.169.254")),
        "{}",
        outcomes[1]
    );
    assert_eq!(
        app.sim.requests().len(),
        1,
        "only the first call reached a Panel"
    );
    app.finish().await;
}

#[tokio::test]
async fn test_all_is_one_at_a_time_across_processes() {
    let app = TestApp::spawn().await;
    Catalog::on(&app).auto_setup("manual").build().await;
    // Another process on the same database (its own state, flag and pool).
    let other = commerce::build_state(crate::support::config(&app.state.config.database_url, &[]))
        .await
        .expect("other state");
    let held = commerce::app::connection::start_sweep(&other)
        .await
        .map_err(|e| e.to_string())
        .expect("the other process takes the slot");
    let (status, body) = app
        .call("POST", "/api/v1/servers/sweep", Some(json!({})))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("already running")),
        "{body}"
    );
    drop(held);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, body) = app
            .call("POST", "/api/v1/servers/sweep", Some(json!({})))
            .await;
        if status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never released: {status} {body}"
        );
        // The other process's sweep slot is released by its dropped guard in
        // the background, not by a job: poll for it.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    other.pool.close().await;
    app.finish().await;
}

/// The harness's promise: a test that never calls `finish()` still has every
/// response it saw scanned for secrets, when its app is dropped.
#[tokio::test]
#[should_panic(expected = "a response leaked a secret")]
async fn a_test_that_skips_finish_still_gets_the_secret_scan_on_drop() {
    let app = TestApp::spawn().await;
    app.remember_response(format!("{{\"token\": \"{}\"}}", app.sim.token(1)));
}
