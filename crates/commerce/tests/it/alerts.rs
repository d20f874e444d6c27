//! The scheduled health sweep and admin alerts: one sweep per period however
//! many processes run, one alert per state change (not per sweep) delivered to
//! a webhook, and no secret in any alert.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use opterius_sim::{Faults, SimConfig, Target};
use serde_json::Value;

use crate::support::{Catalog, CatalogIds, TestApp};

/// A webhook sink on loopback that keeps every JSON body it receives.
pub(crate) async fn sink() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |axum::Json(v): axum::Json<Value>| {
            let keep = keep.clone();
            async move {
                keep.lock().expect("lock").push(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

async fn sweeps(app: &TestApp, server: i64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM server_health_history WHERE server_id = $1")
        .bind(server)
        .fetch_one(&app.state.pool)
        .await
        .expect("history")
}

async fn wait_sweeps(app: &TestApp, server: i64, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while sweeps(app, server).await < n {
        assert!(
            Instant::now() < deadline,
            "fewer than {n} sweeps of {server}"
        );
        // Sweeps come from the schedule's tick, not from jobs: no job event
        // marks one, so this polls the history (the tick is under test).
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Simulated Panel 0 (`server`) refuses the token for three sweeps (it is
/// offline by then), then answers again for two.
async fn down_for_three_sweeps_then_up(app: &TestApp, server: i64) {
    app.sim.set_faults(
        Target::Server(0),
        Faults {
            status: Some(401),
            ..Default::default()
        },
    );
    let down_from = sweeps(app, server).await;
    wait_sweeps(app, server, down_from + 3).await;
    let offline = app.server(server).await;
    assert_eq!(offline.health.status, "offline", "{offline:?}");
    app.sim.clear_faults();
    let up_from = sweeps(app, server).await;
    wait_sweeps(app, server, up_from + 2).await;
}

#[tokio::test]
async fn a_server_down_for_three_sweeps_sends_exactly_one_offline_and_one_online_alert() {
    let (url, got) = sink().await;
    let overrides = [
        ("HEALTH_SWEEP_INTERVAL_SECS", "1"),
        ("ALERT_WEBHOOK_URL", url.as_str()),
    ];
    let app = TestApp::spawn_with_settings(&overrides).await;
    let CatalogIds {
        server_id: server, ..
    } = Catalog::on(&app).build().await;
    // A second process on the same database runs the same schedule.
    let second = TestApp::spawn_on(
        &app.state.config.database_url,
        SimConfig::default(),
        &overrides,
        |_| {},
    )
    .await;
    wait_sweeps(&app, server, 2).await;

    down_for_three_sweeps_then_up(&app, server).await;

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let n = got.lock().expect("lock").len();
        if n >= 2 || Instant::now() > deadline {
            break;
        }
        // Alerts are delivered by the alert loop, not by a job: nothing to drain.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give a wrong extra alert time to arrive before counting: the window
    // in which a duplicate would show is the behaviour under test.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let events: Vec<Value> = got.lock().expect("lock").clone();
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(names, ["server_offline", "server_online"], "{events:?}");
    assert_eq!(events[0]["server_id"], server);
    assert_eq!(events[0]["kind"], "unauthorized");
    assert!(
        events[0]["hint"].is_string() && events[0]["at"].is_string(),
        "{events:?}"
    );
    let text = serde_json::to_string(&events).expect("json");
    assert!(!text.contains(&app.sim.token(0)), "no secret in an alert");

    // Once per period across both processes: about one sweep a second.
    let (runs, span): (i64, f64) = sqlx::query_as(
        "SELECT count(*), extract(epoch FROM max(created_at) - min(created_at))::float8
         FROM server_health_history WHERE server_id = $1",
    )
    .bind(server)
    .fetch_one(&app.state.pool)
    .await
    .expect("history");
    println!("{runs} sweeps in {span:.1} s with two processes");
    assert!(
        (runs as f64) <= span + 2.0,
        "{runs} sweeps in {span:.1} s: more than one per 1 s period"
    );
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT status FROM alerts WHERE event LIKE 'server_%' ORDER BY id")
            .fetch_all(&app.state.pool)
            .await
            .expect("alerts");
    assert_eq!(stored, ["sent", "sent"]);
    second.finish().await;
    app.finish().await;
}

/// This process's CPU time (user + system) so far, from /proc.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<u64> = after
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // utime and stime (fields 14, 15): the 11th and 12th numbers after the
    // name, the state letter being skipped by the parse.
    let ticks = f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

#[tokio::test]
async fn one_scheduled_sweep_tests_every_enabled_server_once_and_reports_its_cost() {
    // SWEEP_SERVERS=1000 gives the figure; 100 keeps the suite quick.
    let n: usize = std::env::var("SWEEP_SERVERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let app = TestApp::spawn().await;
    let CatalogIds {
        group_id: group, ..
    } = Catalog::on(&app).auto_setup("manual").build().await;
    for i in 1..n {
        app.add_server(&format!("panel-{i}"), group, i % 4, 0).await;
    }
    let every = Duration::from_secs(300);
    let (cpu, wall) = (cpu_time(), Instant::now());
    assert!(
        commerce::app::schedule::run_if_due(&app.state, every)
            .await
            .expect("sweep")
    );
    let (cpu, wall) = (cpu_time() - cpu, wall.elapsed());
    println!(
        "sweep of {n} servers: {} ms wall, {} ms CPU of the test process (service + simulator)",
        wall.as_millis(),
        cpu.as_millis()
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM server_health_history")
        .fetch_one(&app.state.pool)
        .await
        .expect("history");
    assert_eq!(rows, n as i64, "every server tested once");
    assert!(
        !commerce::app::schedule::run_if_due(&app.state, every)
            .await
            .expect("sweep"),
        "the period is claimed: no second sweep"
    );
    app.finish().await;
}

/// event, service_id, server_id, mail_status, mail_attempts of an alert.
type AlertRow = (String, Option<i64>, Option<i64>, Option<String>, i32);

/// The alert mails among the files in `dir` (the demo's mailbox), oldest first.
fn alert_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("-alert") && n.ends_with(".eml"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        .map(|n| std::fs::read_to_string(dir.join(n)).expect("read mail"))
        .collect()
}

#[tokio::test]
async fn a_server_going_offline_and_back_mails_alert_email_exactly_once_each() {
    let overrides = [
        ("HEALTH_SWEEP_INTERVAL_SECS", "1"),
        ("ALERT_EMAIL", "ops@example.com"),
    ];
    let app = TestApp::spawn_with_settings(&overrides).await;
    let dir = app.state.config.mail_dir.clone();
    let CatalogIds {
        server_id: server, ..
    } = Catalog::on(&app).build().await;
    wait_sweeps(&app, server, 2).await;
    down_for_three_sweeps_then_up(&app, server).await;

    let deadline = Instant::now() + Duration::from_secs(15);
    while alert_files(&dir).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "alert mails in {}: {:?}",
            dir.display(),
            alert_files(&dir)
        );
        // Alert mails come from the alert loop, not from a job: nothing to drain.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give a wrong extra mail time to arrive before counting: the window in
    // which a duplicate would show is the behaviour under test.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mails = alert_files(&dir);
    assert_eq!(mails.len(), 2, "one mail per state change: {mails:#?}");
    assert!(
        mails[0].contains("Subject: Commerce alert: server offline"),
        "{}",
        mails[0]
    );
    assert!(
        mails[0].contains("Kind: unauthorized") && mails[0].contains("Fix: "),
        "{}",
        mails[0]
    );
    assert!(
        mails[1].contains("Subject: Commerce alert: server back online"),
        "{}",
        mails[1]
    );
    for m in &mails {
        assert!(m.contains("To: ops@example.com"), "{m}");
        assert!(m.contains(&format!("Server: #{server}")), "{m}");
        assert!(!m.contains(&app.sim.token(0)), "no secret in an alert mail");
    }
    // No webhook is set: the webhook side is only recorded; the mail is sent.
    let stored: Vec<(String, Option<String>, i32)> = sqlx::query_as(
        "SELECT status, mail_status, mail_attempts FROM alerts WHERE event LIKE 'server_%' ORDER BY id",
    )
    .fetch_all(&app.state.pool)
    .await
    .expect("alerts");
    let sent = ("recorded".to_owned(), Some("sent".to_owned()), 1);
    assert_eq!(stored, [sent.clone(), sent]);
    app.finish().await;
}

#[tokio::test]
async fn a_suspend_failing_for_good_raises_one_alert_mailed_over_smtp_after_a_refusal() {
    let sink = crate::lifecycle::SmtpSink::start().await;
    let app = TestApp::spawn_with_settings(&[
        ("SMTP_URL", &sink.url),
        ("ALERT_EMAIL", "ops@example.com"),
    ])
    .await;
    let CatalogIds {
        server_id: server,
        product_id: product,
        ..
    } = Catalog::on(&app).build().await;
    let sid = app.order(product, "alerted.example.com").await.service_id();
    app.settle(sid, &["active"]).await;
    sink.wait_for(&app, 1).await; // the welcome mail

    // A check first: a suspend that fails once and then
    // passes on its retry is no news.
    app.sim.set_faults(
        Target::Server(0),
        Faults {
            status: Some(503),
            only: Some("suspend".into()),
            remaining: Some(1),
            ..Default::default()
        },
    );
    app.queue(sid, "suspend").await;
    app.settle(sid, &["suspended"]).await;
    app.queue(sid, "unsuspend").await;
    app.settle(sid, &["active"]).await;

    // The Panel now refuses suspends (403): final at once, one alert, whose
    // mail the SMTP server refuses once before taking it.
    app.sim.set_faults(
        Target::Server(0),
        Faults {
            status: Some(403),
            only: Some("suspend".into()),
            ..Default::default()
        },
    );
    sink.fail.store(1, std::sync::atomic::Ordering::SeqCst);
    app.queue(sid, "suspend").await;
    app.wait_for_log(sid, |log| {
        log.iter()
            .filter(|e| e.outcome() == ("suspend", "failed"))
            .count()
            == 2
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let alert_mails = || {
        sink.messages()
            .into_iter()
            .filter(|m| m.contains("Subject: Commerce alert"))
            .collect::<Vec<_>>()
    };
    while alert_mails().is_empty() {
        assert!(Instant::now() < deadline, "no alert mail arrived");
        // Alert mails come from the alert loop, not from a job: nothing to drain.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The window in which a second, wrong alert mail would show.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mails = alert_mails();
    assert_eq!(
        mails.len(),
        1,
        "one alert for one final failure: {mails:#?}"
    );
    let m = &mails[0];
    assert!(
        m.contains("Subject: Commerce alert: service failed (service #"),
        "{m}"
    );
    assert!(m.contains("suspending alerted.example.com"), "{m}");
    assert!(m.contains("Kind: forbidden"), "{m}");
    assert!(!m.contains(&app.sim.token(0)), "no secret in an alert mail");
    let alerts: Vec<AlertRow> = sqlx::query_as(
        "SELECT event, service_id, server_id, mail_status, mail_attempts FROM alerts ORDER BY id",
    )
    .fetch_all(&app.state.pool)
    .await
    .expect("alerts");
    assert_eq!(
        alerts,
        [(
            "service_failed".to_owned(),
            Some(sid),
            Some(server),
            Some("sent".to_owned()),
            2
        )],
        "one alert (none for the retried 503), its mail sent on the second try"
    );
    let s = app.service(sid).await;
    assert_eq!(s.status, "active", "a refused suspend leaves it active");
    app.finish().await;
}
