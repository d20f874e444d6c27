//! Orders become accounts; lifecycle actions; failures classified and retried;
//! nothing lost, nothing created twice.

use opterius_sim::{Faults, SimConfig, Target};
use serde_json::json;

use crate::support::{Catalog, CatalogIds, LogEntry, Module, TestApp};

#[tokio::test]
async fn order_with_auto_setup_becomes_an_active_account_with_panel_account_id() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        server_id,
        product_id,
        ..
    } = Catalog::on(&app).build().await;
    let order = app.order(product_id, "alice-shop.example.com").await;
    assert_eq!(order.services[0].username, "aliceshop");
    let sid = order.service_id();
    let service = app.settle(sid, &["active"]).await;

    let accounts = app.sim.accounts(Target::Server(0));
    assert_eq!(accounts.len(), 1);
    assert_eq!(service.panel_account_id, Some(accounts[0].id.to_string()));
    assert_eq!(service.server_id, Some(server_id));
    assert_eq!(accounts[0].package, "Starter");
    assert_eq!(accounts[0].email, "owner@alice-shop.example.com");
    // The shape itself: no password key at all.
    let shown = app.get(&format!("/api/v1/services/{sid}")).await;
    assert!(shown.get("password").is_none(), "{shown}");

    let log = app.log_for(sid).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        (log[0].outcome(), log[0].http_status),
        (("create", "success"), Some(201))
    );
    assert_eq!(log[0].triggered_by, "order");
    let detail = app
        .get(&format!("/api/v1/provisioning-log/{}", log[0].id))
        .await;
    assert_eq!(detail["request"]["method"], "POST");
    assert_eq!(detail["request"]["path"], "/api/accounts");
    assert_eq!(detail["request"]["body"]["password"], "[redacted]");
    assert_eq!(detail["request"]["body"]["username"], "aliceshop");
    assert_eq!(detail["response"]["status"], 201);
    app.finish().await;
}

#[tokio::test]
async fn suspend_unsuspend_and_terminate_round_trip_each_logged() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        server_id,
        product_id,
        ..
    } = Catalog::on(&app).package("Pro").build().await;
    let sid = app.order(product_id, "bob.example.org").await.service_id();
    app.settle(sid, &["active"]).await;

    let (code, body) = app
        .call("POST", &format!("/api/v1/services/{sid}/suspend"), None)
        .await;
    assert_eq!(code, 202, "{body}");
    assert!(body["job_id"].as_str().is_some_and(|j| !j.is_empty()));
    app.settle(sid, &["suspended"]).await;
    assert!(app.sim.accounts(Target::Server(0))[0].suspended);

    app.queue(sid, "unsuspend").await;
    app.settle(sid, &["active"]).await;
    assert!(!app.sim.accounts(Target::Server(0))[0].suspended);

    let before = app.server(server_id).await.account_count;
    app.queue_with(sid, "terminate", json!({"confirm": "bob.example.org"}))
        .await;
    let done = app.settle(sid, &["terminated"]).await;
    assert!(done.terminated_at.is_some(), "{done:?}");
    assert!(app.sim.accounts(Target::Server(0)).is_empty());
    let after = app.server(server_id).await.account_count;
    assert_eq!((before, after), (1, 0), "terminate frees the slot");

    let log = app.log_for(sid).await;
    let actions: Vec<(&str, &str)> = log.iter().map(LogEntry::outcome).collect();
    let want = ["create", "suspend", "unsuspend", "terminate"].map(|a| (a, "success"));
    assert_eq!(actions, want);

    // A terminated service refuses further actions with 409.
    let (code, body) = app
        .call("POST", &format!("/api/v1/services/{sid}/suspend"), None)
        .await;
    assert_eq!(code, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("terminated"))
    );
    app.finish().await;
}

#[tokio::test]
async fn wrong_case_package_fails_once_with_the_panel_message_and_package_hint() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        server_id,
        product_id,
        ..
    } = Catalog::on(&app).package("starter").build().await;
    let sid = app
        .order(product_id, "carol.example.com")
        .await
        .service_id();
    let service = app.settle(sid, &["failed"]).await;
    // Nothing was created and no retry comes, but the service keeps its server
    // and slot, so "retry what failed on server N" finds it (and a retry on
    // it needs no new placement); a terminate gives the slot back.
    assert_eq!(service.server_id, Some(server_id), "{service:?}");
    assert_eq!(app.server(server_id).await.account_count, 1);
    let err = service.last_error.as_ref().expect("a stored failure");
    assert_eq!(err.kind, "validation");
    assert_eq!(err.retryable, Some(false));
    assert!(
        err.message.contains("Package 'starter' does not exist"),
        "{err:?}"
    );
    assert!(
        err.hint.contains("case-sensitive") && err.hint.contains("Panel → Packages"),
        "{err:?}"
    );
    let log = app.log_for(sid).await;
    assert_eq!(log.len(), 1, "no retries for a 422: {log:?}");
    assert_eq!(
        (log[0].status.as_str(), log[0].http_status),
        ("failed", Some(422))
    );
    let creates = app
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/api/accounts"))
        .count();
    assert_eq!(creates, 1);

    // Fix the package and retry: the service becomes active.
    let product = app.get(&format!("/api/v1/products/{product_id}")).await;
    let mut fixed = product.clone();
    fixed["package"] = json!("Starter");
    let input = json!({"name": fixed["name"], "module": "opterius", "group_id": fixed["group_id"], "package": "Starter",
                       "disk_limit_mb": fixed["disk_limit_mb"], "bandwidth_limit_mb": fixed["bandwidth_limit_mb"], "auto_setup": "on_order"});
    let (code, updated) = app
        .call(
            "PUT",
            &format!("/api/v1/products/{product_id}"),
            Some(input),
        )
        .await;
    assert_eq!(
        (code, updated["package"].as_str()),
        (200, Some("Starter")),
        "{updated}"
    );
    app.queue(sid, "retry").await;
    app.settle(sid, &["active"]).await;
    app.finish().await;
}

#[tokio::test]
async fn transient_503s_are_retried_with_every_attempt_logged_until_active() {
    let app = TestApp::spawn().await;
    let CatalogIds { product_id, .. } = Catalog::on(&app).build().await;
    app.sim.set_faults(
        Target::All,
        Faults {
            error_rate: 1.0,
            remaining: Some(2),
            only: Some("create".into()),
            ..Default::default()
        },
    );
    let sid = app.order(product_id, "dave.example.com").await.service_id();
    app.settle(sid, &["active"]).await;
    let log = app.log_for(sid).await;
    let summary: Vec<(i32, &str, Option<i32>)> = log
        .iter()
        .map(|e| (e.attempt, e.status.as_str(), e.http_status))
        .collect();
    assert_eq!(
        summary,
        [
            (1, "failed", Some(503)),
            (2, "failed", Some(503)),
            (3, "success", Some(201))
        ]
    );
    let error = log[0].error.as_ref().expect("the 503's failure");
    assert_eq!(
        (error.kind.as_str(), error.retryable),
        ("server_error", Some(true))
    );
    assert_eq!(app.sim.creates(Target::All).get("dave"), Some(&1));
    app.finish().await;
}

#[tokio::test]
async fn unauthorized_stops_at_once_with_the_token_hint() {
    let app = TestApp::spawn().await;
    let CatalogIds { product_id, .. } = Catalog::on(&app).build().await;
    app.sim
        .rotate_token(Target::Server(0), "rotated-on-the-panel");
    let sid = app.order(product_id, "erin.example.com").await.service_id();
    let service = app.settle(sid, &["failed"]).await;
    let err = service.last_error.as_ref().expect("a stored failure");
    assert_eq!(err.kind, "unauthorized");
    assert!(
        err.hint
            .contains("Generate a new token in Panel → Settings → API"),
        "{err:?}"
    );
    assert_eq!(app.log_for(sid).await.len(), 1, "401 is not retried");
    app.finish().await;
}

#[tokio::test]
async fn lost_reply_after_commit_ends_with_one_account_and_says_what_happened() {
    let app = TestApp::spawn().await;
    let CatalogIds { product_id, .. } = Catalog::on(&app).build().await;
    app.sim.set_faults(
        Target::All,
        Faults {
            lose_reply: true,
            remaining: Some(1),
            only: Some("create".into()),
            ..Default::default()
        },
    );
    let sid = app
        .order(product_id, "frank.example.com")
        .await
        .service_id();
    let service = app.settle(sid, &["active", "failed"]).await;
    assert_eq!(
        app.sim.creates(Target::All).get("frank"),
        Some(&1),
        "exactly one account"
    );
    assert_eq!(app.sim.accounts(Target::All).len(), 1);
    assert_eq!(service.status, "active", "{service:?}");
    assert_eq!(
        service.panel_account_id,
        Some(app.sim.accounts(Target::Server(0))[0].id.to_string())
    );

    let log = app.log_for(sid).await;
    let first = &log[0];
    assert_eq!(
        (first.status.as_str(), first.error_kind()),
        ("failed", "connection_dropped")
    );
    let adopted = log
        .iter()
        .find(|e| e.outcome() == ("create", "success"))
        .expect("a success row");
    assert!(
        adopted
            .message
            .as_deref()
            .is_some_and(|m| m.contains("adopted")),
        "{adopted:?}"
    );
    assert!(
        log.iter().any(|e| e.outcome() == ("info", "success")),
        "the reconcile lookup is logged"
    );
    app.finish().await;
}

/// The first create hangs past the timeout (sent, no answer) and the Panel
/// does not create; meanwhile another client takes the username. The retry's
/// 409 names the stranger's account, or (`anonymous_409`) names none.
async fn conflict_after_unknown_outcome(anonymous_409: bool) -> (TestApp, i64, Vec<LogEntry>) {
    let app = TestApp::spawn().await;
    let CatalogIds { product_id, .. } = Catalog::on(&app).build().await;
    app.sim.set_faults(
        Target::All,
        Faults {
            hang: true,
            remaining: Some(1),
            only: Some("create".into()),
            ..Default::default()
        },
    );
    let sid = app
        .order(product_id, "grace.example.com")
        .await
        .service_id();
    // While our create hangs, someone else's account takes the username on the Panel.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !app.sim.requests().iter().any(|r| r.outcome == "hung") {
        assert!(
            std::time::Instant::now() < deadline,
            "the create never reached the Panel"
        );
        // The create hangs, so no job finishes to wake a drain: this polls the
        // simulator for the hung request, which is the moment under test.
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    if anonymous_409 {
        app.sim.set_faults(
            Target::All,
            Faults {
                conflict_without_id: true,
                only: Some("create".into()),
                ..Default::default()
            },
        );
    }
    let stranger = opterius::CreateAccount {
        username: "grace".into(),
        password: "Someone-elses-pass1".into(),
        domain: "other.example.net".into(),
        package: "Starter".into(),
        email: "x@other.example.net".into(),
        disk_limit_mb: 1,
        bandwidth_limit_mb: 1,
    };
    let http = opterius::ClientOptions::default().build().expect("client");
    let panel = opterius::PanelClient::new(
        http,
        opterius::ApiUrl::parse(&app.sim.server_url(0)).expect("url"),
        app.sim.token(0).into(),
    )
    .with_network(app.state.config.panel_networks.clone());
    panel
        .create_account(&stranger)
        .await
        .result
        .expect("stranger's account");
    let service = app.settle(sid, &["failed", "active"]).await;
    assert_eq!(service.status, "failed", "{service:?}");
    let err = service.last_error.as_ref().expect("a stored failure");
    assert_eq!(err.kind, "needs_attention");
    assert!(
        err.message
            .contains("will not create it again under another name"),
        "{err:?}"
    );
    assert_eq!(
        app.sim.accounts(Target::All).len(),
        1,
        "only the stranger's account exists"
    );
    assert_eq!(app.sim.accounts(Target::All)[0].domain, "other.example.net");
    assert_eq!(service.username, "grace");
    // The hung attempt may have created the account: its slot is kept.
    let server_id = service.server_id.expect("the service keeps its server");
    assert_eq!(app.server(server_id).await.account_count, 1);
    let log = app.log_for(sid).await;
    let conflicts: Vec<&LogEntry> = log
        .iter()
        .filter(|e| e.action == "create" && e.http_status == Some(409))
        .collect();
    assert_eq!(conflicts.len(), 1, "{log:?}");
    let detail = app
        .get(&format!("/api/v1/provisioning-log/{}", conflicts[0].id))
        .await;
    assert_eq!(
        detail["response"]["body"].get("account_id").is_some(),
        !anonymous_409,
        "{detail}"
    );
    (app, sid, log)
}

#[tokio::test]
async fn conflict_after_unknown_outcome_without_an_id_needs_attention_and_is_never_renamed() {
    let (app, _, log) = conflict_after_unknown_outcome(true).await;
    assert!(
        !log.iter().any(|e| e.action == "info"),
        "with no id named there is nothing to look up: {log:?}"
    );
    app.finish().await;
}

#[tokio::test]
async fn conflict_after_unknown_outcome_naming_another_account_needs_attention() {
    let (app, _, log) = conflict_after_unknown_outcome(false).await;
    let lookups: Vec<&LogEntry> = log.iter().filter(|e| e.action == "info").collect();
    assert_eq!(lookups.len(), 1, "the named account is looked up: {log:?}");
    assert!(
        lookups[0]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("is not grace's")),
        "{:?}",
        lookups[0]
    );
    app.finish().await;
}

#[tokio::test]
async fn concurrent_orders_fill_two_servers_exactly_and_the_rest_wait_for_capacity() {
    let app = TestApp::spawn_with(
        SimConfig {
            servers: 2,
            ..Default::default()
        },
        &[],
    )
    .await;
    let catalog = Catalog::on(&app).servers(2).max_accounts(100).build().await;
    let (s0, s1, product) = (
        catalog.server_ids[0],
        catalog.server_ids[1],
        catalog.product_id,
    );
    let orders = futures::future::join_all((0..250).map(|i| {
        let app = &app;
        async move {
            app.order(product, &format!("site{i}.example.com"))
                .await
                .service_id()
        }
    }))
    .await;
    let mut active = 0;
    let mut no_capacity = Vec::new();
    for sid in &orders {
        let s = app.settle(*sid, &["active", "failed"]).await;
        if s.status == "active" {
            active += 1;
        } else {
            assert_eq!(s.error_kind(), "no_capacity", "{s:?}");
            no_capacity.push(*sid);
        }
    }
    assert_eq!((active, no_capacity.len()), (200, 50));
    let app_ref = &app;
    let total = |q: String| async move {
        app_ref.get(&format!("/api/v1/services?{q}")).await["total"].clone()
    };
    assert_eq!(total(format!("server_id={s0}&status=active")).await, 100);
    assert_eq!(total("status=failed".into()).await, 50);
    assert_eq!(
        total(format!("product_id={product}&q=site1")).await,
        111,
        "site1, site10-19, site100-199"
    );
    assert_eq!(
        total("q=SITE24".into()).await,
        11,
        "prefix search is case-insensitive"
    );
    let log = app
        .get(&format!(
            "/api/v1/provisioning-log?server_id={s1}&action=create&status=success&per_page=5"
        ))
        .await;
    assert_eq!(
        (log["total"].clone(), log["items"].as_array().map(Vec::len)),
        (json!(100), Some(5))
    );
    for s in [s0, s1] {
        assert_eq!(app.server(s).await.account_count, 100);
    }
    assert_eq!(app.sim.accounts(Target::Server(0)).len(), 100);
    assert_eq!(app.sim.accounts(Target::Server(1)).len(), 100);

    // Add capacity, retry the 50: all become active.
    let raised = app
        .patch(
            &format!("/api/v1/servers/{s1}"),
            json!({"max_accounts": 150}),
        )
        .await;
    assert_eq!(
        (
            raised["max_accounts"].as_i64(),
            raised["account_count"].as_i64()
        ),
        (Some(150), Some(100)),
        "{raised}"
    );
    for sid in &no_capacity {
        app.queue(*sid, "retry").await;
    }
    for sid in &no_capacity {
        app.settle(*sid, &["active"]).await;
    }
    assert_eq!(app.sim.accounts(Target::Server(1)).len(), 150);
    assert!(app.sim.creates(Target::All).values().all(|n| *n == 1));
    app.finish().await;
}

#[tokio::test]
async fn a_rolled_back_order_leaves_no_job() {
    let app = TestApp::spawn().await;
    let CatalogIds { product_id, .. } = Catalog::on(&app).auto_setup("manual").build().await;
    let sid = app.order(product_id, "hank.example.com").await.service_id();
    let jobs = |pool: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM apalis.jobs")
            .fetch_one(&pool)
            .await
            .expect("count")
    };
    assert_eq!(
        jobs(app.state.pool.clone()).await,
        0,
        "manual products enqueue nothing"
    );
    let row = commerce::app::services::get(&app.state.pool, sid)
        .await
        .expect("service");
    let mut tx = app.state.pool.begin().await.expect("tx");
    commerce::app::services::queue_action(
        &mut tx,
        &app.state,
        &row,
        commerce::domain::Action::Create,
        commerce::domain::TriggeredBy::Admin,
    )
    .await
    .expect("enqueue");
    tx.rollback().await.expect("rollback");
    assert_eq!(
        jobs(app.state.pool.clone()).await,
        0,
        "rollback removed the job with the state change"
    );
    assert_eq!(app.service(sid).await.status, "pending");
    // A rejected order writes nothing at all.
    let (code, body) = app
        .call(
            "POST",
            "/api/v1/orders",
            Some(
                json!({"client_id": 999_999, "product_id": product_id, "domain": "x.example.com"}),
            ),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(app.get("/api/v1/services").await["total"], 1);
    app.finish().await;
}

#[tokio::test]
async fn on_payment_products_provision_when_paid_and_manual_ones_on_request() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        group_id: group,
        product_id: paid_product,
        ..
    } = Catalog::on(&app).auto_setup("on_payment").build().await;
    let order = app.order(paid_product, "ivy.example.com").await;
    let sid = order.service_id();
    assert_eq!(app.service(sid).await.status, "pending");
    let paid = app
        .post(&format!("/api/v1/orders/{}/pay", order.id), json!({}))
        .await;
    assert_eq!(
        (paid["status"].as_str(), paid["paid_at"].is_string()),
        (Some("paid"), true),
        "{paid}"
    );
    app.settle(sid, &["active"]).await;
    let (code, body) = app
        .call("POST", &format!("/api/v1/orders/{}/pay", order.id), None)
        .await;
    assert_eq!(code, 409, "paying twice is refused");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("is paid, not pending")),
        "{body}"
    );

    let manual = app
        .product("Manual", Module::Seed, group, "Pro", "manual")
        .await;
    let sid = app.order(manual, "jack.example.com").await.service_id();
    assert_eq!(app.service(sid).await.status, "pending");
    app.queue(sid, "create").await;
    app.settle(sid, &["active"]).await;
    let (code, body) = app
        .call("POST", &format!("/api/v1/services/{sid}/create"), None)
        .await;
    assert_eq!(code, 409, "an active service cannot be created again");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("active")),
        "{body}"
    );
    let orders = app.get("/api/v1/orders").await;
    assert_eq!(orders["total"], 2);
    let domains: Vec<&str> = orders["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| o["services"][0]["domain"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        domains,
        ["jack.example.com", "ivy.example.com"],
        "newest first, each with its own service"
    );
    app.finish().await;
}

#[tokio::test]
async fn colliding_domains_get_suffixed_usernames() {
    let app = TestApp::spawn().await;
    let CatalogIds { product_id, .. } = Catalog::on(&app).auto_setup("manual").build().await;
    let a = app.order(product_id, "shop.example.com").await;
    let b = app.order(product_id, "shop.example.net").await;
    let c = app.order(product_id, "www.shop.example.org").await;
    let names: Vec<&str> = [&a, &b, &c]
        .iter()
        .map(|o| o.services[0].username.as_str())
        .collect();
    assert_eq!(names, ["shop", "shop1", "shop2"]);
    app.finish().await;
}
