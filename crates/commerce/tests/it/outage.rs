//! A database that goes away: the API and the admin UI answer 503 with
//! `Retry-After` (never a 500 with the driver's "connection reset"), and work
//! again once it is back. The shared PostgreSQL server is never restarted: the
//! service reaches its database through a TCP proxy the test can cut.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opterius_sim::SimConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::support::{self, TestApp};

/// Forwards TCP to PostgreSQL until cut: then the connections in flight are
/// dropped and the port refuses new ones, like a server that is down or
/// restarting; restored, it listens on the same port again.
struct DbProxy {
    addr: std::net::SocketAddr,
    target: String,
    accept: Mutex<Option<tokio::task::JoinHandle<()>>>,
    links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl DbProxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let proxy = Self {
            addr: listener.local_addr().expect("proxy addr"),
            target,
            accept: Mutex::new(None),
            links: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let (target, links) = (self.target.clone(), self.links.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                links.lock().expect("links").push(link);
            }
        });
        *self.accept.lock().expect("accept") = Some(accept);
    }

    fn cut(&self) {
        if let Some(accept) = self.accept.lock().expect("accept").take() {
            accept.abort();
        }
        for link in self.links.lock().expect("links").drain(..) {
            link.abort();
        }
    }

    async fn restore(&self) {
        // The aborted accept loop drops its listener on its next poll.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) if std::time::Instant::now() < deadline => {
                    // The port frees when the aborted task is polled: no job is involved.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("re-bind {}: {e}", self.addr),
            }
        };
        self.serve(listener);
    }
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Where `host:port` sits in `postgres://user@host:port/db`.
fn host_span(url: &str) -> std::ops::Range<usize> {
    let at = url.find('@').expect("user@ in DATABASE_URL") + 1;
    at..at + url[at..].find('/').expect("/db in DATABASE_URL")
}

#[tokio::test]
async fn a_database_that_goes_away_answers_503_with_retry_after_on_the_api_and_the_admin_ui() {
    let url = support::fresh_database().await;
    let app = TestApp::spawn_on(&url, SimConfig::default(), &[], |_| {}).await;
    app.post("/api/v1/server-groups", serde_json::json!({"name": "G"}))
        .await;

    // A second front end on the same database, reached through the proxy,
    // with a short wait for a connection so an outage is answered quickly.
    let host = host_span(&url);
    let proxy = DbProxy::start(url[host.clone()].to_owned()).await;
    let proxied = format!("{}{}{}", &url[..host.start], proxy.addr, &url[host.end..]);
    let mut state = app.state.clone();
    state.pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(2))
        .connect(&proxied)
        .await
        .expect("pool through the proxy");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stop_rx) = watch::channel(false);
    let server = tokio::spawn(commerce::runtime::serve_until(
        state.clone(),
        listener,
        false,
        stop_rx,
    ));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let (cookie, _) = support::admin_session(&app.state.pool, &base).await;
    let api = |path: &str| {
        http.get(format!("{base}{path}"))
            .bearer_auth(&app.token)
            .send()
    };
    let admin = |path: &str| {
        http.get(format!("{base}{path}"))
            .header("cookie", &cookie)
            .send()
    };

    let resp = api("/api/v1/server-groups").await.expect("api");
    assert_eq!(resp.status(), 200, "before the outage");
    let resp = admin("/admin/groups").await.expect("admin");
    assert_eq!(resp.status(), 200, "before the outage");

    proxy.cut();
    for path in ["/api/v1/server-groups", "/api/v1/services/1"] {
        let resp = api(path).await.expect("api");
        assert_eq!(resp.status(), 503, "GET {path} with the database gone");
        assert_eq!(retry_after(&resp), Some("5"), "GET {path}");
        let body: serde_json::Value = resp.json().await.expect("JSON error body");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("database is unavailable") && error.contains("retry"),
            "{body}"
        );
        assert!(
            !error.to_ascii_lowercase().contains("connection")
                && body.as_object().is_some_and(|o| o.len() == 1),
            "no driver internals in the answer: {body}"
        );
    }
    for path in ["/admin/groups", "/admin/services/1"] {
        let resp = admin(path).await.expect("admin");
        assert_eq!(resp.status(), 503, "GET {path} with the database gone");
        assert_eq!(retry_after(&resp), Some("5"), "GET {path}");
        let page = resp.text().await.expect("page");
        assert!(
            page.contains("The database is unavailable") && page.contains("reload the page"),
            "GET {path}: {page}"
        );
    }

    proxy.restore().await;
    let resp = api("/api/v1/server-groups").await.expect("api");
    assert_eq!(resp.status(), 200, "once the database is back");
    let resp = admin("/admin/groups").await.expect("admin");
    assert_eq!(resp.status(), 200, "once the database is back");

    let _ = stop.send(true);
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("the proxied front end stopped")
        .expect("no panic")
        .expect("no error");
    state.pool.close().await;
    app.finish().await;
}

/// The `Retry-After` header of an answer, as text.
fn retry_after(resp: &reqwest::Response) -> Option<&str> {
    resp.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
}
