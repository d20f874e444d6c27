//! One test per promise that a small break would otherwise slip past: the
//! create payload as the Panel received it, an order that is all or nothing
//! with its job, secrets redacted by key in the log row, and a capacity race
//! that ends `no_capacity` instead of a stuck `provisioning`.

use std::time::{Duration, Instant};

use opterius_sim::{Faults, Target};
use serde_json::{Value, json};

use crate::support::{Catalog, CatalogIds, Module, TestApp};

async fn count(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&app.state.pool)
        .await
        .expect("count")
}

/// A group, a server on simulated Panel 0, and a product whose two limits
/// differ from each other and from every default.
async fn catalog_with_limits(app: &TestApp, disk: i64, bandwidth: i64) -> i64 {
    let group = app.group("Payload", "least_full").await;
    app.add_server("payload-0", group, 0, 0).await;
    let product = app
        .post(
            "/api/v1/products",
            json!({"name": "Payload plan", "module": "opterius", "group_id": group, "package": "Pro",
                   "disk_limit_mb": disk, "bandwidth_limit_mb": bandwidth, "auto_setup": "on_order"}),
        )
        .await;
    assert_eq!(
        (
            product["disk_limit_mb"].as_i64(),
            product["bandwidth_limit_mb"].as_i64()
        ),
        (Some(disk), Some(bandwidth)),
        "{product}"
    );
    product["id"].as_i64().expect("product")
}

#[tokio::test]
async fn create_sends_every_payload_field_from_the_service_product_and_client() {
    let app = TestApp::spawn().await;
    let product = catalog_with_limits(&app, 1536, 20480).await;
    let order = app
        .post(
            "/api/v1/orders",
            json!({"client": {"email": "payer@client.example.net", "name": "Payload Client"},
                   "product_id": product, "domain": "payload-shop.example.com"}),
        )
        .await;
    let sid = crate::support::model::parse::<crate::support::Order>("order", order).service_id();
    let service = app.settle(sid, &["active"]).await;
    let username = service.username.clone();
    assert_eq!(username, "payloadshop");

    let accounts = app.sim.accounts(Target::Server(0));
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    let a = &accounts[0];
    assert_eq!(a.username, username, "username");
    assert_eq!(a.domain, "payload-shop.example.com", "domain");
    assert_eq!(a.package, "Pro", "package");
    assert_eq!(a.email, "payer@client.example.net", "email");
    assert_eq!(a.disk_limit_mb, 1536, "disk_limit_mb");
    assert_eq!(a.bandwidth_limit_mb, 20480, "bandwidth_limit_mb");
    let sent = app.sim.password_of(0, &username).expect("a password");
    assert_eq!(
        app.passwords().await,
        [sent],
        "the Panel got the password Commerce generated and keeps"
    );
    assert_eq!(service.panel_account_id, Some(a.id.to_string()));
    app.finish().await;
}

/// Makes every insert into apalis.jobs fail, as a full disk or a broken
/// queue schema would.
const REFUSE_ENQUEUE: &str = "
    CREATE FUNCTION refuse_enqueue() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'injected: the job queue refuses inserts'; END $$;
    CREATE TRIGGER refuse_enqueue BEFORE INSERT ON apalis.jobs
        FOR EACH ROW EXECUTE FUNCTION refuse_enqueue();";

/// Makes the commit of any transaction that inserted an order fail, after
/// every statement in it succeeded.
const REFUSE_COMMIT: &str = "
    CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'injected: the order does not commit'; END $$;
    CREATE CONSTRAINT TRIGGER refuse_commit AFTER INSERT ON orders
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_commit();";

async fn install(app: &TestApp, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&app.state.pool)
        .await
        .expect("install the injected failure");
}

/// Places an order while `failure` is installed: it must be refused with a 500
/// that says nothing of the cause, and leave nothing behind. Then, without the
/// failure, the same order goes through with its job.
async fn order_is_all_or_nothing(failure: &str, drop: &str) {
    let app = TestApp::spawn().await;
    let CatalogIds {
        product_id: product,
        ..
    } = Catalog::on(&app).build().await;
    install(&app, failure).await;
    let (code, body) = app
        .call(
            "POST",
            "/api/v1/orders",
            Some(json!({"client": {"email": "atomic@example.com", "name": "Atomic"}, "product_id": product, "domain": "atomic.example.com"})),
        )
        .await;
    assert_eq!(code, 500, "{body}");
    assert_eq!(body["error"], "internal error; it has been logged");
    assert!(!body.to_string().contains("injected"), "{body}");
    for table in ["orders", "services", "clients", "apalis.jobs"] {
        assert_eq!(
            count(&app, table).await,
            0,
            "a refused order leaves no row in {table}"
        );
    }
    assert!(
        app.sim.requests().is_empty(),
        "nothing reached the Panel: {:?}",
        app.sim.requests()
    );

    install(&app, drop).await;
    let sid = app.order(product, "atomic.example.com").await.service_id();
    assert_eq!(
        // Only the create: once active, the welcome mail is a job of its own.
        count(
            &app,
            "apalis.jobs WHERE job_type = 'commerce.create_hosting_account'"
        )
        .await,
        1,
        "the order's create job"
    );
    app.settle(sid, &["active"]).await;
    app.finish().await;
}

#[tokio::test]
async fn an_order_whose_enqueue_fails_leaves_no_order_no_service_and_no_job() {
    order_is_all_or_nothing(REFUSE_ENQUEUE, "DROP TRIGGER refuse_enqueue ON apalis.jobs").await;
}

#[tokio::test]
async fn an_order_whose_commit_fails_leaves_no_job_behind() {
    order_is_all_or_nothing(REFUSE_COMMIT, "DROP TRIGGER refuse_commit ON orders").await;
}

const SECRET_KEYS: [&str; 6] = [
    "password",
    "api_token",
    "token",
    "secret",
    "secret_key",
    "signature",
];

/// The log row of `sid`'s create attempt, straight from the table.
async fn create_row(app: &TestApp, sid: i64) -> (Value, Value, String) {
    let (request, response, whole): (Value, Value, String) = sqlx::query_as(
        "SELECT request, response, row_to_json(l)::text FROM provisioning_log l
         WHERE service_id = $1 AND action = 'create'",
    )
    .bind(sid)
    .fetch_one(&app.state.pool)
    .await
    .expect("the create's log row");
    (request, response, whole)
}

/// The Panel's answers carry secret-keyed fields whose values Commerce never
/// had, so the value scrub cannot hide them: only redaction by key can.
#[tokio::test]
async fn secret_keys_in_panel_answers_are_redacted_in_the_log_row_by_key() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        group_id: group,
        product_id: good,
        ..
    } = Catalog::on(&app).build().await;
    let bad = app
        .product("Wrong case", Module::Seed, group, "starter", "on_order")
        .await;
    app.sim.set_faults(
        Target::All,
        Faults {
            secret_fields: true,
            only: Some("create".into()),
            ..Default::default()
        },
    );
    let created = app.order(good, "keys.example.com").await.service_id();
    let refused = app.order(bad, "keys.example.org").await.service_id();
    app.settle(created, &["active"]).await;
    app.settle(refused, &["failed"]).await;

    for (sid, status) in [(created, 201), (refused, 422)] {
        let (request, response, whole) = create_row(&app, sid).await;
        assert_eq!(response["status"], status, "{response}");
        let body = &response["body"];
        for key in SECRET_KEYS {
            assert_eq!(body[key], "[redacted]", "{key} in the {status}: {body}");
            assert_eq!(
                body["credentials"][key], "[redacted]",
                "nested {key} in the {status}: {body}"
            );
        }
        assert!(
            !whole.contains("sim-leak-"),
            "a secret the Panel sent is in the log row: {whole}"
        );
        assert_eq!(request["body"]["password"], "[redacted]", "{request}");
        let detail = app
            .get(&format!(
                "/api/v1/provisioning-log?service_id={sid}&action=create"
            ))
            .await;
        assert!(!detail.to_string().contains("sim-leak-"), "{detail}");
        let service = app.get(&format!("/api/v1/services/{sid}")).await;
        assert!(!service.to_string().contains("sim-leak-"), "{service}");
    }
    app.finish().await;
}

/// Four creates for a one-slot server all see the free slot, then queue on the
/// server row (the test holds its lock); released, one wins and the other
/// three end `no_capacity` with the hint at their first attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capacity_race_ends_no_capacity_with_its_hint_at_the_first_attempt() {
    let app = TestApp::spawn().await;
    let group = app.group("Tiny", "least_full").await;
    let server = app.add_server("one-slot", group, 0, 1).await;
    let product = app
        .product("Tiny plan", Module::Seed, group, "Starter", "on_order")
        .await;

    let mut hold = app.state.pool.begin().await.expect("tx");
    sqlx::query("SELECT id FROM servers WHERE id = $1 FOR UPDATE")
        .bind(server)
        .execute(&mut *hold)
        .await
        .expect("lock the server row");
    let sids = app
        .orders(product, 4, |i| format!("race{i}.example.com"))
        .await;
    // Every create has read the server as free and now waits for the row.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%WITH slot AS%'",
        )
        .fetch_one(&app.state.pool)
        .await
        .expect("waiting");
        if waiting == 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {waiting} of 4 creates reached the slot update"
        );
        // The creates are blocked on our lock, so no job finishes to wake
        // a drain: this polls for where they wait, which is the point.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    hold.commit().await.expect("release");

    let mut active = 0;
    for sid in &sids {
        let asked = Instant::now();
        let s = app.settle(*sid, &["active", "failed"]).await;
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "service {sid} took {:?} more to be decided",
            asked.elapsed()
        );
        let log = app.log_for(*sid).await;
        if s.status == "active" {
            active += 1;
            continue;
        }
        let err = s.last_error.as_ref().expect("a stored failure");
        assert_eq!(err.kind, "no_capacity", "{s:?}");
        assert!(err.hint.contains("raise max_accounts"), "{err:?}");
        assert_eq!(
            log.iter()
                .map(|e| (e.attempt, e.error_kind()))
                .collect::<Vec<_>>(),
            [(1, "no_capacity")],
            "one attempt, decided at once: {log:?}"
        );
    }
    assert_eq!(active, 1, "the one slot is taken once");
    assert_eq!(app.server(server).await.account_count, 1);
    // The queue's ack lands just after the service's status: drain for it.
    app.drain().await;
    let jobs: Vec<(String, i32, Option<String>)> = sqlx::query_as(
        "SELECT status::text, attempts::int4, last_result::text FROM apalis.jobs
         WHERE job_type = 'commerce.create_hosting_account' ORDER BY run_at",
    )
    .fetch_all(&app.state.pool)
    .await
    .expect("jobs");
    assert!(
        jobs.len() == 4 && jobs.iter().all(|j| j.0 == "Done" && j.1 == 1),
        "each create job ran once and succeeded: {jobs:?}"
    );
    assert_eq!(app.sim.accounts(Target::All).len(), 1);
    app.finish().await;
}

/// A worker died after sending a create (its log row still pending) and the
/// Panel had made the account. The job's next run must see the orphaned
/// attempt, treat the Panel's 409 as probably its own account, and adopt it:
/// never a failed service, never a second account.
#[tokio::test]
async fn a_create_orphaned_by_a_dead_worker_is_reconciled_and_adopted() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        server_id: server,
        product_id: product,
        ..
    } = Catalog::on(&app).auto_setup("manual").build().await;
    let order = app.order(product, "orphan.example.com").await;
    let sid = order.service_id();
    let username = order.services[0].username.clone();
    // What the dead worker left: the service placed, the attempt sent and
    // never recorded, the account made on the Panel.
    sqlx::query("UPDATE services SET server_id = $2, status = 'provisioning' WHERE id = $1")
        .bind(sid)
        .bind(server)
        .execute(&app.state.pool)
        .await
        .expect("place");
    sqlx::query("UPDATE servers SET account_count = 1 WHERE id = $1")
        .bind(server)
        .execute(&app.state.pool)
        .await
        .expect("slot");
    let orphan: i64 = sqlx::query_scalar(
        "INSERT INTO provisioning_log (service_id, server_id, module, action, attempt, triggered_by, job_id)
         VALUES ($1, $2, 'opterius', 'create', 1, 'order', 'dead-worker-job') RETURNING id",
    )
    .bind(sid)
    .bind(server)
    .fetch_one(&app.state.pool)
    .await
    .expect("pending row");
    let http = opterius::ClientOptions::default().build().expect("client");
    let panel = opterius::PanelClient::new(
        http,
        opterius::ApiUrl::parse(&app.sim.server_url(0)).expect("url"),
        app.sim.token(0).into(),
    )
    .with_network(app.state.config.panel_networks.clone());
    let made = panel
        .create_account(&opterius::CreateAccount {
            username: username.clone(),
            password: "What-the-dead-worker-sent1".into(),
            domain: "orphan.example.com".into(),
            package: "Starter".into(),
            email: "owner@orphan.example.com".into(),
            disk_limit_mb: 1024,
            bandwidth_limit_mb: 10240,
        })
        .await
        .result
        .expect("the account the dead worker made");

    // The queue hands the job to a live worker again.
    let mut tx = app.state.pool.begin().await.expect("tx");
    commerce::jobs::enqueue(
        &mut tx,
        commerce::domain::Action::Create,
        commerce::jobs::JobArgs {
            service_id: sid,
            attempt: 1,
            triggered_by: commerce::domain::TriggeredBy::Order,
        },
        None,
    )
    .await
    .expect("enqueue");
    tx.commit().await.expect("commit");

    let service = app.settle(sid, &["active", "failed"]).await;
    assert_eq!(service.status, "active", "{service:?}");
    assert_eq!(
        service.panel_account_id.as_deref(),
        Some(made.id.as_str()),
        "{service:?}"
    );
    assert_eq!(app.sim.creates(Target::All).get(&username), Some(&1));
    let log = app.log_for(sid).await;
    let first = log.iter().find(|e| e.id == orphan).expect("the orphan");
    assert_eq!(
        (
            first.status.as_str(),
            first.error_kind(),
            first.error.as_ref().and_then(|e| e.outcome_unknown)
        ),
        ("failed", "connection_dropped", Some(true)),
        "the orphan is recorded as sent with its outcome unknown: {first:?}"
    );
    assert!(
        log.iter().any(|e| e.outcome() == ("create", "success")
            && e.message.as_deref().is_some_and(|m| m.contains("adopted"))),
        "{log:?}"
    );
    app.finish().await;
}

/// A create job that reaches a service terminated in the meantime (it keeps
/// its old Panel account id) must do nothing and say why, not report the
/// service as already provisioned.
#[tokio::test]
async fn a_create_job_reaching_a_terminated_service_does_nothing_and_says_so() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        product_id: product,
        ..
    } = Catalog::on(&app).build().await;
    let sid = app.order(product, "late.example.com").await.service_id();
    app.settle(sid, &["active"]).await;
    app.queue_with(sid, "terminate", json!({"confirm": "late.example.com"}))
        .await;
    let terminated = app.settle(sid, &["terminated"]).await;
    assert!(terminated.panel_account_id.is_some(), "{terminated:?}");

    let mut tx = app.state.pool.begin().await.expect("tx");
    commerce::jobs::enqueue(
        &mut tx,
        commerce::domain::Action::Create,
        commerce::jobs::JobArgs {
            service_id: sid,
            attempt: 1,
            triggered_by: commerce::domain::TriggeredBy::Order,
        },
        None,
    )
    .await
    .expect("enqueue");
    tx.commit().await.expect("commit");
    let log = app
        .wait_for_log(sid, |log| {
            log.iter().filter(|e| e.action == "create").count() == 2
        })
        .await;
    let late = log
        .iter()
        .rfind(|e| e.action == "create")
        .expect("the late create");
    assert_eq!(late.status, "failed", "{late:?}");
    assert!(
        late.message
            .as_deref()
            .is_some_and(|m| m.contains("terminated before the create ran")),
        "{late:?}"
    );
    assert_eq!(app.service(sid).await.status, "terminated");
    assert!(
        app.sim.accounts(Target::All).is_empty(),
        "nothing was created again"
    );
    app.finish().await;
}
