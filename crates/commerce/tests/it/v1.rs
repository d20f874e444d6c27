//! The `opterius_v1` module end to end: real Postgres, the worker pool, the
//! simulator's /api/v1. Order to terminate by username, lost replies, warnings,
//! unknown packages, and the one 409 rule for every module.

use opterius_sim::{Faults, Target};
use serde_json::json;

use crate::support::{Catalog, CatalogIds, LogEntry, Module, Service, TestApp};

async fn act(app: &TestApp, sid: i64, action: &str, want: &str) -> Service {
    // Terminate is irreversible: the API wants the domain typed back.
    let body = if action == "terminate" {
        json!({"confirm": app.service(sid).await.domain})
    } else {
        json!({})
    };
    let (status, body) = app
        .call(
            "POST",
            &format!("/api/v1/services/{sid}/{action}"),
            Some(body),
        )
        .await;
    assert_eq!(status, 202, "{action}: {body}");
    app.settle(sid, &[want]).await
}

#[tokio::test]
async fn v1_order_becomes_active_then_suspend_unsuspend_terminate_reach_the_panel_by_username() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        product_id: product,
        ..
    } = Catalog::v1(&app).build().await;
    let sid = app.order(product, "alice.example.com").await.service_id();
    let service = app.settle(sid, &["active", "failed"]).await;
    assert_eq!(service.status, "active", "{service:?}");
    let on_panel = app.sim.accounts(Target::Server(0));
    assert_eq!(on_panel.len(), 1);
    assert_eq!(service.panel_account_id, Some(on_panel[0].id.to_string()));
    let meta = app.sim.v1_meta(0);
    assert_eq!(
        meta[&on_panel[0].id]["whmcs_service_id"], sid,
        "traceable on the Panel"
    );
    assert_eq!(meta[&on_panel[0].id]["client_name"], "Test Client");

    act(&app, sid, "suspend", "suspended").await;
    assert!(app.sim.accounts(Target::Server(0))[0].suspended);
    act(&app, sid, "unsuspend", "active").await;
    assert!(!app.sim.accounts(Target::Server(0))[0].suspended);
    act(&app, sid, "terminate", "terminated").await;
    assert!(app.sim.accounts(Target::Server(0)).is_empty());

    let log = app.log_for(sid).await;
    let outcomes: Vec<(&str, &str)> = log.iter().map(LogEntry::outcome).collect();
    assert_eq!(
        outcomes,
        [
            ("create", "success"),
            ("suspend", "success"),
            ("unsuspend", "success"),
            ("terminate", "success")
        ]
    );
    let sent: Vec<String> = app.sim.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        sent,
        [
            "/s/0/api/v1/accounts/create",
            "/s/0/api/v1/accounts/suspend",
            "/s/0/api/v1/accounts/unsuspend",
            "/s/0/api/v1/accounts/terminate"
        ]
    );
    app.finish().await;
}

#[tokio::test]
async fn v1_lost_reply_is_settled_by_username_lookup_and_adopted() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        product_id: product,
        ..
    } = Catalog::v1(&app).build().await;
    app.sim.set_faults(
        Target::All,
        Faults {
            lose_reply: true,
            remaining: Some(1),
            only: Some("create".into()),
            ..Default::default()
        },
    );
    let sid = app.order(product, "frank.example.com").await.service_id();
    let service = app.settle(sid, &["active", "failed"]).await;
    assert_eq!(service.status, "active", "{service:?}");
    assert_eq!(
        app.sim.creates(Target::All).get("frank"),
        Some(&1),
        "exactly one account"
    );
    // accounts/usage gives no id: the adopted account is known by username.
    assert_eq!(service.panel_account_id.as_deref(), Some("frank"));
    let log = app.log_for(sid).await;
    assert_eq!(log[0].error_kind(), "connection_dropped");
    assert!(
        log.iter().any(|e| e.outcome() == ("info", "success")),
        "lookup logged"
    );
    assert!(
        log.iter()
            .any(|e| e.action == "create"
                && e.message.as_deref().is_some_and(|m| m.contains("adopted"))),
        "{log:?}"
    );
    // And the adopted account is managed by username.
    act(&app, sid, "suspend", "suspended").await;
    assert!(app.sim.accounts(Target::Server(0))[0].suspended);
    app.finish().await;
}

#[tokio::test]
async fn v1_warning_needs_attention_with_the_panels_message_and_a_retry_adopts_the_kept_account() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        product_id: product,
        ..
    } = Catalog::v1(&app).build().await;
    app.sim.set_faults(
        Target::All,
        Faults {
            warning: true,
            remaining: Some(1),
            only: Some("create".into()),
            ..Default::default()
        },
    );
    let sid = app.order(product, "grace.example.com").await.service_id();
    let service = app.settle(sid, &["failed", "active"]).await;
    assert_eq!(
        service.status, "failed",
        "a warning is not a success: {service:?}"
    );
    let err = service.last_error.as_ref().expect("a stored failure");
    assert_eq!(err.kind, "needs_attention");
    assert!(
        err.message
            .contains("Account saved but server setup failed"),
        "{err:?}"
    );
    assert_eq!(app.log_for(sid).await.len(), 1, "not retried on its own");
    act(&app, sid, "retry", "active").await;
    assert_eq!(
        app.sim.creates(Target::All).get("grace"),
        Some(&1),
        "the kept account, not a second one"
    );
    app.finish().await;
}

#[tokio::test]
async fn v1_unknown_package_fails_once_with_the_panels_list() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        product_id: product,
        ..
    } = Catalog::v1(&app).package("starter").build().await;
    let sid = app.order(product, "heidi.example.com").await.service_id();
    let service = app.settle(sid, &["failed"]).await;
    let err = service.last_error.as_ref().expect("a stored failure");
    assert_eq!(
        (err.kind.as_str(), err.retryable),
        ("unknown_package", Some(false))
    );
    assert!(err.hint.contains("Starter, Pro"), "{err:?}");
    assert_eq!(app.log_for(sid).await.len(), 1);
    assert!(app.sim.accounts(Target::All).is_empty());
    app.finish().await;
}

#[tokio::test]
async fn terminating_a_v1_account_the_panel_no_longer_has_is_done() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        product_id: product,
        ..
    } = Catalog::v1(&app).build().await;
    let sid = app.order(product, "ivan.example.com").await.service_id();
    app.settle(sid, &["active"]).await;
    app.sim.reset();
    let service = act(&app, sid, "terminate", "terminated").await;
    assert_eq!(service.status, "terminated");
    app.finish().await;
}

/// A Panel that commits the create and then answers 503: the retry meets a 409
/// for our own username, which is reconciled (not a failed `conflict` service
/// and an orphaned account), for both modules.
#[tokio::test]
async fn a_create_committed_before_a_503_is_adopted_on_both_modules() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        product_id: seed_product,
        ..
    } = Catalog::on(&app).build().await;
    let CatalogIds {
        product_id: v1_product,
        ..
    } = Catalog::v1(&app).build().await;
    for (product, domain, user) in [
        (seed_product, "judy.example.com", "judy"),
        (v1_product, "karl.example.com", "karl"),
    ] {
        app.sim.set_faults(
            Target::All,
            Faults {
                status_after_act: Some(503),
                remaining: Some(1),
                only: Some("create".into()),
                ..Default::default()
            },
        );
        let sid = app.order(product, domain).await.service_id();
        let service = app.settle(sid, &["active", "failed"]).await;
        assert_eq!(service.status, "active", "{user}: {service:?}");
        assert_eq!(app.sim.creates(Target::All).get(user), Some(&1), "{user}");
        let log = app.log_for(sid).await;
        assert_eq!(
            (log[0].http_status, log[0].error_kind()),
            (Some(503), "server_error")
        );
    }
    app.finish().await;
}

#[tokio::test]
async fn modules_list_their_fields_and_capabilities_and_packages_come_from_the_panel() {
    let app = TestApp::spawn().await;
    let modules = app.get("/api/v1/modules").await;
    let by_id = |id: &str| {
        modules
            .as_array()
            .expect("list")
            .iter()
            .find(|m| m["id"] == id)
            .cloned()
            .expect("module")
    };
    let v1 = by_id("opterius_v1");
    let fields: Vec<&str> = v1["credential_fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(fields, ["api_url", "api_key", "panel_server_id"]);
    assert_eq!(v1["credential_fields"][1]["secret"], true);
    for c in [
        "change_package",
        "change_password",
        "usage",
        "list_packages",
    ] {
        assert!(
            v1["capabilities"]
                .as_array()
                .expect("caps")
                .iter()
                .any(|x| x == c),
            "{c}"
        );
        assert!(
            !by_id("opterius")["capabilities"]
                .as_array()
                .expect("caps")
                .iter()
                .any(|x| x == c),
            "seed: {c}"
        );
    }

    let CatalogIds {
        server_id: seed_server,
        ..
    } = Catalog::on(&app).auto_setup("manual").build().await;
    let CatalogIds {
        server_id: v1_server,
        ..
    } = Catalog::v1(&app).auto_setup("manual").build().await;
    let packages = app
        .get(&format!("/api/v1/servers/{v1_server}/packages"))
        .await;
    let names: Vec<&str> = packages["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["Starter", "Pro"]);
    let (status, body) = app
        .call(
            "GET",
            &format!("/api/v1/servers/{seed_server}/packages"),
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    app.finish().await;
}

#[tokio::test]
async fn a_self_signed_panel_fails_verify_with_its_certificate_and_works_once_pinned() {
    let app = TestApp::spawn_with(
        opterius_sim::SimConfig {
            tls: true,
            servers: 2,
            ..Default::default()
        },
        &[],
    )
    .await;
    let pin = opterius::tls::fingerprint(app.sim.certificate_der().expect("tls"));
    let creds = json!({"api_url": app.sim.server_url(0), "api_key": app.sim.api_key(0)});
    let test = json!({"module": "opterius_v1", "credentials": creds});
    let out = app.post("/api/v1/servers/test", test).await;
    assert_eq!(out["ok"], false, "{out}");
    assert_eq!(out["error"]["kind"], "tls");
    assert_eq!(out["error"]["certificate"]["sha256"], pin.as_str(), "{out}");
    assert!(
        out["error"]["certificate"]["not_after"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );

    let pinned = app
        .post("/api/v1/servers/test", json!({"module": "opterius_v1", "credentials": creds, "tls": {"mode": "pinned", "sha256": pin}}))
        .await;
    assert_eq!(pinned["ok"], true, "{pinned}");
    assert_eq!(pinned["server"]["version"], "2.4.1-sim");

    // Saved with the pin, the server provisions; a wrong pin is refused.
    let group = app.group("TLS", "least_full").await;
    let server = app
        .post(
            "/api/v1/servers",
            json!({"name": "self-signed", "module": "opterius_v1", "group_id": group,
            "credentials": creds, "tls": {"mode": "pinned", "sha256": pin}}),
        )
        .await;
    assert_eq!(server["tls"], json!({"mode": "pinned", "sha256": pin}));
    let sid = server["id"].as_i64().expect("id");
    assert!(app.test_server(sid).await.ok);
    let product = app
        .product("TLS plan", Module::V1, group, "Pro", "on_order")
        .await;
    let svc = app.order(product, "tls.example.com").await.service_id();
    assert_eq!(
        app.settle(svc, &["active", "failed"]).await.status,
        "active"
    );

    let (status, body) = app
        .call(
            "PATCH",
            &format!("/api/v1/servers/{sid}"),
            Some(json!({"tls": {"mode": "pinned", "sha256": "00".repeat(32)}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let wrong = app.test_server(sid).await;
    assert_eq!((wrong.ok, wrong.error_kind()), (false, "tls"), "{wrong:?}");
    let (status, body) = app
        .call(
            "PATCH",
            &format!("/api/v1/servers/{sid}"),
            Some(json!({"tls": {"mode": "pinned"}})),
        )
        .await;
    assert_eq!(
        (status, body["fields"]["tls.sha256"].is_array()),
        (422, true),
        "{body}"
    );
    app.finish().await;
}

#[tokio::test]
async fn the_demo_seeds_servers_of_both_dialects_and_its_v1_product_provisions() {
    let app = TestApp::spawn_with(
        opterius_sim::SimConfig {
            servers: 5,
            ..Default::default()
        },
        &[],
    )
    .await;
    commerce::demo::seed(&app.state, &app.sim)
        .await
        .expect("seed");
    commerce::demo::seed(&app.state, &app.sim)
        .await
        .expect("seeding twice is harmless");
    let servers = app.get("/api/v1/servers?per_page=50").await;
    let modules: Vec<&str> = servers["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|s| s["module"].as_str())
        .collect();
    assert_eq!(
        modules.iter().filter(|m| **m == "opterius").count(),
        3,
        "{modules:?}"
    );
    assert_eq!(
        modules.iter().filter(|m| **m == "opterius_v1").count(),
        2,
        "{modules:?}"
    );
    let sweep = app.post("/api/v1/servers/sweep", json!({})).await;
    assert!(
        sweep["results"]
            .as_array()
            .expect("results")
            .iter()
            .all(|r| r["ok"] == true),
        "{sweep}"
    );
    let products = app.get("/api/v1/products?per_page=50").await;
    let v1 = products["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|p| p["module"] == "opterius_v1")
        .expect("a v1 product")["id"]
        .as_i64()
        .expect("id");
    let sid = app.order(v1, "demo-v1.example.com").await.service_id();
    assert_eq!(
        app.settle(sid, &["active", "failed"]).await.status,
        "active"
    );
    app.finish().await;
}

#[tokio::test]
async fn change_package_and_change_password_reach_the_v1_panel_and_the_seed_module_says_409() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        group_id: group,
        product_id: starter,
        ..
    } = Catalog::v1(&app).build().await;
    let pro = app
        .post(
            "/api/v1/products",
            json!({"name": "Pro v1", "module": "opterius_v1", "group_id": group, "package": "Pro"}),
        )
        .await["id"]
        .as_i64()
        .expect("pro");
    let sid = app.order(starter, "lena.example.com").await.service_id();
    app.settle(sid, &["active"]).await;
    let before = app.passwords().await;

    let (status, body) = app
        .call(
            "POST",
            &format!("/api/v1/services/{sid}/change-package"),
            Some(json!({"product_id": pro})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    app.wait_for_log(sid, |l| {
        l.iter()
            .any(|e| e.outcome() == ("change_package", "success"))
    })
    .await;
    assert_eq!(app.sim.accounts(Target::Server(0))[0].package, "Pro");
    assert_eq!(app.service(sid).await.product_id, pro);

    let (status, body) = app
        .call(
            "POST",
            &format!("/api/v1/services/{sid}/change-password"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert!(body.get("password").is_none());
    let log = app
        .wait_for_log(sid, |l| {
            l.iter()
                .any(|e| e.outcome() == ("change_password", "success"))
        })
        .await;
    assert_ne!(
        app.passwords().await,
        before,
        "the new password is kept, sealed"
    );
    let entry = log
        .iter()
        .find(|e| e.action == "change_password")
        .expect("entry");
    let full = app
        .get(&format!("/api/v1/provisioning-log/{}", entry.id))
        .await;
    assert_eq!(full["request"]["path"], "/api/v1/accounts/password");
    assert_eq!(full["request"]["body"]["password"], "[redacted]");

    // The same module only: a seed product is refused, as is a seed service.
    let CatalogIds {
        product_id: seed_product,
        ..
    } = Catalog::on(&app).build().await;
    let (status, body) = app
        .call(
            "POST",
            &format!("/api/v1/services/{sid}/change-package"),
            Some(json!({"product_id": seed_product})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let seed_sid = app
        .order(seed_product, "max.example.com")
        .await
        .service_id();
    app.settle(seed_sid, &["active"]).await;
    for (path, body) in [
        ("change-password", json!({})),
        ("change-package", json!({"product_id": pro})),
    ] {
        let (status, body) = app
            .call(
                "POST",
                &format!("/api/v1/services/{seed_sid}/{path}"),
                Some(body),
            )
            .await;
        assert_eq!(status, 409, "{path}: {body}");
    }
    app.finish().await;
}

#[tokio::test]
async fn a_taken_username_needs_attention_and_adopt_accepts_only_the_services_own_account() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        product_id: product,
        ..
    } = Catalog::v1(&app).build().await;
    // Someone else's account already holds the username on the Panel.
    let panel = opterius::V1Client::new(
        opterius::ClientOptions {
            network: app.state.config.panel_networks.clone(),
            ..Default::default()
        }
        .build()
        .expect("client"),
        opterius::ApiUrl::parse(&app.sim.server_url(0)).expect("url"),
        app.sim.api_key(0).into(),
    )
    .with_network(app.state.config.panel_networks.clone());
    panel
        .create_account(&opterius::V1CreateAccount {
            domain: "other.example.net".into(),
            username: "nina".into(),
            password: "Someone-elses-pass1".into(),
            package: "Starter".into(),
            client_email: "x@other.example.net".into(),
            client_name: "Someone Else".into(),
            server_id: None,
            whmcs_service_id: None,
            whmcs_client_id: None,
        })
        .await
        .result
        .expect("stranger");
    let sid = app.order(product, "nina.example.com").await.service_id();
    let service = app.settle(sid, &["failed", "active"]).await;
    let err = service.last_error.as_ref().expect("a stored failure");
    assert_eq!(err.kind, "needs_attention", "{service:?}");
    assert!(
        err.message.contains("is for other.example.net"),
        "{}",
        err.message
    );
    let (status, body) = app
        .call(
            "POST",
            &format!("/api/v1/services/{sid}/adopt"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 409, "not this service's account: {body}");
    assert_eq!(app.service(sid).await.status, "failed");

    // After a warning, the kept account is the service's: adopt settles it.
    app.sim.set_faults(
        Target::All,
        Faults {
            warning: true,
            remaining: Some(1),
            only: Some("create".into()),
            ..Default::default()
        },
    );
    let sid = app.order(product, "olga.example.com").await.service_id();
    assert_eq!(
        app.settle(sid, &["failed", "active"]).await.status,
        "failed"
    );
    let adopted = app
        .post(&format!("/api/v1/services/{sid}/adopt"), json!({}))
        .await;
    assert_eq!(
        (
            adopted["status"].as_str(),
            adopted["panel_account_id"].as_str()
        ),
        (Some("active"), Some("olga")),
        "{adopted}"
    );
    assert_eq!(app.sim.creates(Target::All).get("olga"), Some(&1));
    act(&app, sid, "suspend", "suspended").await;
    app.finish().await;
}

#[tokio::test]
async fn a_429_is_retried_no_sooner_than_the_panels_retry_after() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        product_id: product,
        ..
    } = Catalog::v1(&app).build().await;
    app.sim.set_faults(
        Target::All,
        Faults {
            retry_after_secs: Some(120),
            remaining: Some(1),
            only: Some("create".into()),
            ..Default::default()
        },
    );
    let sid = app.order(product, "paul.example.com").await.service_id();
    let log = app
        .wait_for_log(sid, |l| l.iter().any(|e| e.status == "failed"))
        .await;
    assert_eq!(
        (log[0].http_status, log[0].error_kind()),
        (Some(429), "rate_limited")
    );
    let service = app.service(sid).await;
    let err = service.last_error.as_ref().expect("a stored failure");
    let at = |t: &Option<String>, what: &str| {
        chrono::DateTime::parse_from_rfc3339(t.as_deref().unwrap_or_default()).expect(what)
    };
    let wait = at(&err.next_retry_at, "next_retry_at") - at(&err.at, "at");
    assert!(
        wait.num_seconds() >= 119,
        "retried after {wait} despite Retry-After: 120"
    );
    assert_eq!(service.status, "provisioning");
    // The retry stays parked two minutes out: that is the point.
    app.expect_jobs_left_behind();
    app.finish().await;
}

#[tokio::test]
async fn sync_reads_usage_and_status_from_the_panel_into_the_service() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        product_id: product,
        ..
    } = Catalog::v1(&app).build().await;
    let sid = app.order(product, "quinn.example.com").await.service_id();
    let service = app.settle(sid, &["active"]).await;
    assert!(
        service.usage.is_none() && service.panel_status.is_none(),
        "{service:?}"
    );
    let (status, body) = app
        .call(
            "POST",
            &format!("/api/v1/services/{sid}/sync"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    app.wait_for_log(sid, |l| {
        l.iter().any(|e| e.outcome() == ("info", "success"))
    })
    .await;
    let service = app.service(sid).await;
    let usage = service.usage.as_ref().expect("usage");
    assert_eq!(usage["disk_used_mb"], 12, "{service:?}");
    assert_eq!(usage["disk_limit_mb"], 1024);
    assert_eq!(usage["bandwidth_used_mb"], 3);
    assert!(usage["synced_at"].is_string());
    assert_eq!(service.panel_status.as_deref(), Some("active"));
    app.finish().await;
}

/// The figure: with 30 % of creates committed and then answered 503,
/// every service ends active on exactly one account, on both modules.
#[tokio::test]
async fn thirty_percent_committed_503s_leave_no_orphan_and_no_failed_service() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        product_id: seed_product,
        ..
    } = Catalog::on(&app).build().await;
    let CatalogIds {
        product_id: v1_product,
        ..
    } = Catalog::v1(&app).build().await;
    app.sim.set_faults(
        Target::All,
        Faults {
            after_act_error_rate: 0.3,
            only: Some("create".into()),
            ..Default::default()
        },
    );
    // The fault is random: with 20 creates a module missed it altogether once
    // in CI (0.7^20, about 1 in 1,250); with 30 that is about 1 in 45,000.
    const N: usize = 30;
    for (module, product) in [("opterius", seed_product), ("opterius_v1", v1_product)] {
        let sids = app
            .orders(product, N, |i| {
                format!("{}-{i}.example.com", module.replace('_', ""))
            })
            .await;
        let mut hit = 0;
        for sid in sids {
            let service = app.settle(sid, &["active", "failed"]).await;
            assert_eq!(service.status, "active", "{module}: {service:?}");
            let log = app.log_for(sid).await;
            if log.iter().any(|e| e.http_status == Some(503)) {
                hit += 1;
            }
        }
        let creates = app.sim.creates(Target::All);
        assert!(creates.values().all(|n| *n == 1), "{creates:?}");
        println!(
            "{module}: {hit} of {N} creates were committed then answered 503; all {N} services active, no duplicate"
        );
        assert!(hit > 0, "the fault never struck: the test proves nothing");
    }
    assert_eq!(app.sim.accounts(Target::All).len(), 2 * N);
    app.finish().await;
}
