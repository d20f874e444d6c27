//! Hostile clients: absurd paging, slow connections, repeated and concurrent
//! Test all requests, across processes too.

use opterius_sim::{Faults, Target};
use serde_json::{Value, json};

use super::{admin_cookie, page};
use crate::support::{Catalog, CatalogIds, TestApp};

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
