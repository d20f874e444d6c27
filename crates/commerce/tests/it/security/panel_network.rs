//! Where Panel calls may go: a stored token never follows a changed address,
//! no redirect is followed, loopback and cloud-metadata addresses are refused
//! (also after a DNS rebind).

use std::sync::Arc;

use opterius_sim::{Faults, SimConfig, Target};
use serde_json::{Value, json};

use crate::support::{Catalog, CatalogIds, TestApp};

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
