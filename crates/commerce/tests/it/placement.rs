//! Placement that survives a bad server: a create failure that proves the Panel
//! did nothing takes the server out of placement and places the service again;
//! ambiguous failures never move a service; a final failure keeps its server.

use futures::StreamExt as _;
use opterius_sim::{Faults, SimConfig, Target};
use serde_json::json;

use crate::support::{Catalog, CatalogIds, LogEntry, Module, Page, TestApp};

/// A `least_full` group whose first server (the lowest id, so the one every
/// tie goes to) has a mistyped token and two call slots, then three healthy
/// servers, and a product. Returns (bad, healthy, product).
async fn four_servers_the_first_with_a_wrong_token(app: &TestApp) -> (i64, Vec<i64>, i64) {
    let group = app.group("Shared EU", "least_full").await;
    let bad = app
        .post(
            "/api/v1/servers",
            json!({"name": "panel-3", "module": "opterius", "group_id": group, "max_accounts": 0, "max_concurrent": 2, "enabled": true,
                   "credentials": {"api_url": app.sim.server_url(3), "api_token": "mistyped-token-3"}}),
        )
        .await["id"]
        .as_i64()
        .expect("server id");
    let mut healthy = Vec::new();
    for n in 0..3 {
        healthy.push(app.add_server(&format!("panel-{n}"), group, n, 0).await);
    }
    let product = app
        .product("Starter plan", Module::Seed, group, "Starter", "on_order")
        .await;
    (bad, healthy, product)
}

#[tokio::test]
async fn a_server_with_a_wrong_token_costs_one_attempt_and_every_order_lands_on_a_healthy_server() {
    let app = TestApp::spawn().await;
    let (bad, healthy, product) = four_servers_the_first_with_a_wrong_token(&app).await;

    let services = app
        .orders(product, 20, |i| format!("shop{i}.example.com"))
        .await;
    for sid in &services {
        let s = app.settle(*sid, &["active", "failed"]).await;
        assert_eq!(s.status, "active", "{s:?}");
        assert!(
            s.server_id.is_some_and(|id| healthy.contains(&id)),
            "on a healthy server: {s:?}"
        );
    }
    let path = format!("/api/v1/provisioning-log?server_id={bad}&action=create&per_page=100");
    let on_bad: Page<LogEntry> = crate::support::model::parse(&path, app.get(&path).await);
    let attempts = on_bad.total.expect("total");
    println!("attempts on the bad server: {attempts} of 20 orders");
    // The first placement lands on the bad server (every count is 0 and ties
    // go to the lowest id), and concurrent ones may follow it there; only the
    // runs holding one of its two call slots when the first failure lands can
    // call it, and every later one finds it out of placement and moves.
    assert!(
        (1..=2).contains(&attempts),
        "at most max_concurrent (2) attempts on the bad server, got {attempts}: {on_bad:?}"
    );
    // Each attempt on the bad server is in its service's log, followed by the
    // create that succeeded elsewhere.
    for item in &on_bad.items {
        assert_eq!(item.status, "failed");
        assert_eq!(item.error_kind(), "unauthorized", "{item:?}");
        let sid = item.service_id.expect("service id");
        let log = app.log_for(sid).await;
        let last = log.last().expect("log");
        assert_eq!(last.outcome(), ("create", "success"), "{log:?}");
        assert_ne!(last.server_id, Some(bad));
    }
    assert_eq!(app.sim.accounts(Target::Server(3)).len(), 0);
    let total: usize = (0..3)
        .map(|n| app.sim.accounts(Target::Server(n)).len())
        .sum();
    assert_eq!(total, 20, "one account per order, none twice");

    let server = app.server(bad).await;
    let health = &server.health;
    assert_eq!(health.status, "offline", "{server:?}");
    assert_eq!(
        health.last_error.as_ref().map(|e| e.kind.as_str()),
        Some("unauthorized")
    );
    assert!(health.since.is_some(), "{server:?}");
    assert!(
        health
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("unauthorized") && r.starts_with("create of service")),
        "{server:?}"
    );
    assert_eq!(server.account_count, 0, "slots given back");

    // Fix the token and test: the server is back in placement, and being the
    // emptiest, takes the next order.
    let (code, body) = app
        .call(
            "PATCH",
            &format!("/api/v1/servers/{bad}"),
            Some(json!({"credentials": {"api_url": app.sim.server_url(3), "api_token": app.sim.token(3)}})),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let test = app.test_server(bad).await;
    assert!(test.ok, "{test:?}");
    let health = app.server(bad).await.health;
    assert_eq!(health.status, "online");
    assert_eq!(health.reason.as_deref(), Some("connection test passed"));
    let next = app
        .order(product, "after-fix.example.com")
        .await
        .service_id();
    let s = app.settle(next, &["active", "failed"]).await;
    assert_eq!((s.status.as_str(), s.server_id), ("active", Some(bad)));
    app.finish().await;
}

#[tokio::test]
async fn a_timeout_never_moves_a_service_and_a_final_failure_keeps_its_server() {
    let app = TestApp::spawn_with_settings(&[("PROVISION_MAX_ATTEMPTS", "2")]).await;
    let catalog = Catalog::on(&app).servers(2).build().await;
    let (s0, s1, product) = (
        catalog.server_ids[0],
        catalog.server_ids[1],
        catalog.product_id,
    );
    app.sim.set_faults(
        Target::Server(0),
        Faults {
            status: Some(503),
            ..Default::default()
        },
    );
    app.sim.set_faults(
        Target::Server(1),
        Faults {
            status: Some(503),
            ..Default::default()
        },
    );
    let sid = app.order(product, "slow.example.com").await.service_id();
    let s = app.settle(sid, &["failed"]).await;
    let first = s.server_id.expect("a server");
    assert!(first == s0 || first == s1, "keeps its server: {s:?}");
    let log = app.log_for(sid).await;
    let creates: Vec<&LogEntry> = log.iter().filter(|r| r.action == "create").collect();
    assert_eq!(creates.len(), 2, "{log:?}");
    assert!(
        creates.iter().all(|r| r.server_id == Some(first)),
        "never re-placed on a 5xx: {log:?}"
    );
    for s in [s0, s1] {
        assert_eq!(app.server(s).await.health.status, "unknown");
    }
    let filtered = app
        .get(&format!("/api/v1/services?status=failed&server_id={first}"))
        .await;
    assert_eq!(
        filtered["total"], 1,
        "retry what failed on that server finds it"
    );

    // Retried once the Panel is fine: created on the same server, one slot.
    app.sim.clear_faults();
    app.post(&format!("/api/v1/services/{sid}/retry"), json!({}))
        .await;
    let s = app.settle(sid, &["active"]).await;
    assert_eq!(s.server_id, Some(first));
    assert_eq!(app.server(first).await.account_count, 1);
    app.finish().await;
}

#[tokio::test]
async fn bulk_retry_queues_only_what_the_filters_select_and_ends_all_active_without_duplicates() {
    let app = TestApp::spawn_with_settings(&[("PROVISION_MAX_ATTEMPTS", "1")]).await;
    let catalog = Catalog::on(&app).servers(2).build().await;
    let (s0, s1, product) = (
        catalog.server_ids[0],
        catalog.server_ids[1],
        catalog.product_id,
    );
    // Both Panels refuse the package for now: every create fails for good.
    app.sim.set_packages(Target::All, &["Other"]);
    // BULK_RETRY_SERVICES=1000 reproduces the figure; 40 keeps it quick.
    let n: i64 = std::env::var("BULK_RETRY_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let services = app
        .orders(product, n as usize, |i| format!("bulk{i}.example.com"))
        .await;
    for sid in &services {
        app.settle(*sid, &["failed"]).await;
    }
    let on_s1 = app
        .get(&format!(
            "/api/v1/services?status=failed&server_id={s1}&kind=validation"
        ))
        .await["total"]
        .as_i64()
        .expect("total");
    assert!(on_s1 > 0 && on_s1 < n, "spread over both servers: {on_s1}");

    let (code, body) = app
        .call(
            "POST",
            "/api/v1/services/retry",
            Some(json!({"status": "failed", "sever_id": s1})),
        )
        .await;
    assert_eq!(
        code, 422,
        "a misspelt filter is refused, not widened: {body}"
    );
    let (code, body) = app
        .call(
            "POST",
            "/api/v1/services/retry",
            Some(json!({"kind": "no_such_kind"})),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    let (code, none) = app
        .call(
            "POST",
            "/api/v1/services/retry",
            Some(json!({"kind": "unauthorized"})),
        )
        .await;
    assert_eq!((code, none["count"].clone()), (202, json!(0)), "{none}");

    app.sim.set_packages(Target::All, &["Starter"]);
    let (code, first) = app
        .call(
            "POST",
            "/api/v1/services/retry",
            Some(json!({"status": "failed", "server_id": s1, "kind": "validation"})),
        )
        .await;
    assert_eq!(code, 202, "{first}");
    assert_eq!(first["count"].as_i64(), Some(on_s1));
    assert_eq!(
        first["job_ids"].as_array().map(Vec::len),
        Some(on_s1 as usize)
    );
    let (_, rest) = app
        .call(
            "POST",
            "/api/v1/services/retry",
            Some(json!({"server_id": s0})),
        )
        .await;
    assert_eq!(rest["count"].as_i64(), Some(n - on_s1), "{rest}");
    for sid in &services {
        app.settle(*sid, &["active"]).await;
    }
    let accounts =
        app.sim.accounts(Target::Server(0)).len() + app.sim.accounts(Target::Server(1)).len();
    assert_eq!(accounts as i64, n, "one account per service");
    println!(
        "bulk retry: {n} failed services, {on_s1} + {} queued, {accounts} accounts",
        n - on_s1
    );
    let (_, again) = app
        .call("POST", "/api/v1/services/retry", Some(json!({})))
        .await;
    assert_eq!(again["count"], 0, "nothing failed is left");
    app.finish().await;
}

/// The most requests to `target` the simulator had in flight at once.
fn max_in_flight(app: &TestApp, target: &str) -> usize {
    let mut edges: Vec<(chrono::DateTime<chrono::Utc>, i32)> = app
        .sim
        .requests()
        .iter()
        .filter(|r| r.target == target)
        .flat_map(|r| [(r.started_at, 1), (r.at, -1)])
        .collect();
    // An end sorts before a start at the same instant.
    edges.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        max = max.max(now);
    }
    max as usize
}

#[tokio::test]
async fn a_burst_into_a_one_server_group_never_has_more_than_max_concurrent_calls_in_flight_across_two_workers()
 {
    let app = TestApp::spawn().await;
    let CatalogIds {
        server_id: server,
        product_id: product,
        ..
    } = Catalog::on(&app).build().await;
    let (code, body) = app
        .call(
            "PATCH",
            &format!("/api/v1/servers/{server}"),
            Some(json!({"max_concurrent": 3})),
        )
        .await;
    assert_eq!(
        (code, body["max_concurrent"].clone()),
        (200, json!(3)),
        "{body}"
    );
    let (code, body) = app
        .call(
            "PATCH",
            &format!("/api/v1/servers/{server}"),
            Some(json!({"max_concurrent": 0})),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    // A second worker pool on the same database (its own simulator unused):
    // the cap must hold across both.
    let second = TestApp::spawn_on(
        &app.state.config.database_url,
        SimConfig::default(),
        &[],
        |_| {},
    )
    .await;
    app.sim.set_faults(
        Target::Server(0),
        Faults {
            latency_ms: 60,
            ..Default::default()
        },
    );
    // BURST_ORDERS=500 reproduces the figure; 60 keeps the suite quick.
    let burst: usize = std::env::var("BURST_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let orders = (0..burst).map(|i| {
        let app = &app;
        async move {
            app.order(product, &format!("burst{i}.example.com"))
                .await
                .service_id()
        }
    });
    let services = futures::stream::iter(orders)
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    for sid in &services {
        let s = app.settle(*sid, &["active", "failed"]).await;
        assert_eq!(s.status, "active", "{s:?}");
    }
    assert_eq!(app.sim.accounts(Target::Server(0)).len(), burst);
    let max = max_in_flight(&app, "panel-0");
    println!("{burst} orders: max in flight to panel-0 with max_concurrent 3: {max}");
    assert!(max <= 3, "{max} calls in flight, max_concurrent is 3");
    assert!(max >= 2, "the burst ran calls side by side: {max}");
    second.finish().await;
    app.finish().await;
}

/// Leases service `sid` to worker `holder` for 60 s, as a run in flight does.
async fn lease_to(app: &TestApp, sid: i64, holder: &str, beat_secs_ago: f64) {
    sqlx::query(
        "INSERT INTO worker_heartbeats (worker_id, seen_at) VALUES ($1, now() - make_interval(secs => $2))
         ON CONFLICT (worker_id) DO UPDATE SET seen_at = EXCLUDED.seen_at",
    )
    .bind(holder)
    .bind(beat_secs_ago)
    .execute(&app.state.pool)
    .await
    .expect("heartbeat");
    sqlx::query("UPDATE services SET lease_until = now() + interval '60 seconds', leased_by = $2 WHERE id = $1")
        .bind(sid)
        .bind(holder)
        .execute(&app.state.pool)
        .await
        .expect("lease");
}

#[tokio::test]
async fn a_dead_workers_lease_is_taken_over_within_seconds_and_a_live_ones_never() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        product_id: product,
        ..
    } = Catalog::on(&app).auto_setup("manual").build().await;
    let dead = app
        .order(product, "dead-holder.example.com")
        .await
        .service_id();
    let live = app
        .order(product, "live-holder.example.com")
        .await
        .service_id();
    // A worker that stopped beating 20 s ago (killed) holds one; a live one
    // (beating now, kept fresh below) holds the other.
    lease_to(&app, dead, "killed-worker", 20.0).await;
    lease_to(&app, live, "live-worker", 0.0).await;
    let started = std::time::Instant::now();
    for sid in [dead, live] {
        app.post(&format!("/api/v1/services/{sid}/create"), json!({}))
            .await;
    }
    let keep_alive = {
        let pool = app.state.pool.clone();
        tokio::spawn(async move {
            loop {
                let _ = sqlx::query(
                    "UPDATE worker_heartbeats SET seen_at = now() WHERE worker_id = 'live-worker'",
                )
                .execute(&pool)
                .await;
                // The live holder's heartbeat: the beat is the behaviour under test.
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        })
    };
    app.settle(dead, &["active"]).await;
    let took = started.elapsed();
    println!("dead worker's service active after {} ms", took.as_millis());
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    // The live holder's service: still untouched a few seconds later. The
    // wait is the behaviour under test (a live lease is never taken over).
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let s = app.service(live).await;
    assert_eq!(s.status, "provisioning", "{s:?}");
    assert!(
        app.sim
            .accounts(Target::Server(0))
            .iter()
            .all(|a| a.domain != "live-holder.example.com")
    );
    // When it stops beating, the service is taken over too.
    keep_alive.abort();
    app.settle(live, &["active"]).await;
    assert_eq!(app.sim.accounts(Target::Server(0)).len(), 2);
    app.finish().await;
}
