//! The fault suite: real `commerce` and `opterius-sim` processes on loopback
//! against PostgreSQL, under the failures production will see: a worker killed
//! mid-run (alone, or beside another that must take its services over), a
//! flaky Panel, a database restart, and hostile input.
//!
//! It drives the `commerce` and `opterius-sim` binaries of the same target
//! directory and profile, and builds them first (`cargo build --workspace
//! --bins`, once per run) so it never tests stale code. Scenarios run one at a
//! time. The PostgreSQL restart is `#[ignore]`d, so a plain `cargo test` says
//! "ignored" rather than restarting the machine's database: scripts/test.sh
//! runs it, unless FAULTS_SKIP_PG_RESTART=1, which it reports as skipped.
//! Process logs are kept under target/faults/<scenario>/ for post-mortems.

#[path = "faults/bad_input.rs"]
mod bad_input;
#[path = "faults/dead_worker.rs"]
mod dead_worker;
#[path = "faults/support.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;

use support::{Rig, pg_cluster};

/// Every create of 1,000 is in flight or queued when the worker is killed with
/// SIGKILL; a fresh worker finishes them all, each account exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_leaves_no_duplicate_and_no_missing_account() {
    let _serial = support::serial().await;
    let rig = Rig::start("kill9", true, |e| {
        e.set("WORKER_CONCURRENCY", 64)
            .set("PANEL_TIMEOUT_SECS", 2)
            .set("RETRY_BASE_MS", 100)
            .set("RETRY_MAX_MS", 1000)
    })
    .await;
    rig.sim_faults(json!({"latency_ms": 200})).await;
    rig.place_orders(1000).await;

    let mut first = rig.start_worker("worker-1");
    rig.wait_for(Duration::from_secs(90), "150 services active", |c| {
        c.active >= 150
    })
    .await;
    // The worker runs in waves (fetch a batch, call the Panel, record): kill it
    // while a wave's creates are on the wire.
    let started = Instant::now();
    let mut in_flight = 0;
    while in_flight < 16 && started.elapsed() < Duration::from_secs(20) {
        in_flight = rig.pending_log_rows().await;
    }
    first.kill9();
    let at_kill = rig.counts().await;
    let orphaned = rig.pending_log_rows().await;
    eprintln!("kill -9 at {at_kill:?}: {orphaned} creates were sent without a recorded answer");
    assert!(
        orphaned > 0 && at_kill.unfinished() > 0,
        "the worker must die with creates in flight: {at_kill:?}, {orphaned} in flight"
    );

    let mut second = rig.start_worker("worker-2");
    rig.wait_for(Duration::from_secs(150), "all 1000 services active", |c| {
        c.active == 1000
    })
    .await;
    second.terminate(Duration::from_secs(20));
    rig.assert_exactly_once(1000).await;
    assert_eq!(
        rig.pending_log_rows().await,
        0,
        "no log row may stay pending"
    );
    rig.finish().await;
}

/// 30 % of Panel calls answer 503 and 5 % never answer: every create still
/// ends active, once, and the log shows the retries and the timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_panel_503s_and_hangs_end_active_with_retries_logged() {
    let _serial = support::serial().await;
    // PROVISION_MAX_ATTEMPTS=15, not 10: with 35 % of attempts failing, 10
    // attempts leave 1000 × 0.35^10 ≈ 3 % odds that some service legitimately
    // runs out of attempts; at 15 the odds are 1.5e-4.
    let rig = Rig::start("flaky-panel", false, |e| {
        e.set("WORKER_CONCURRENCY", 64)
            .set("PANEL_TIMEOUT_SECS", 2)
            .set("RETRY_BASE_MS", 100)
            .set("RETRY_MAX_MS", 1000)
            .set("PROVISION_MAX_ATTEMPTS", 15)
    })
    .await;
    rig.sim_faults(json!({"error_rate": 0.3, "hang_rate": 0.05}))
        .await;
    rig.place_orders(1000).await;
    rig.wait_for(Duration::from_secs(180), "all 1000 services active", |c| {
        c.active == 1000
    })
    .await;
    rig.assert_exactly_once(1000).await;
    let kinds = rig.error_kinds().await;
    eprintln!("failed attempts by kind: {kinds:?}");
    let count = |k: &str| kinds.iter().find(|(n, _)| n == k).map_or(0, |(_, c)| *c);
    assert!(
        count("server_error") > 100,
        "the 503s must be logged as server_error attempts: {kinds:?}"
    );
    assert!(
        count("timeout") > 10,
        "the hangs must be logged as timeout attempts: {kinds:?}"
    );
    let retried: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT service_id) FROM provisioning_log WHERE action = 'create' AND attempt > 1",
    )
    .fetch_one(rig.pool())
    .await
    .expect("count retried");
    assert!(
        retried > 200,
        "retries must be visible as attempts > 1: {retried} services retried"
    );
    rig.finish().await;
}

/// PostgreSQL restarts while 1,000 creates run: nothing is lost, nothing is
/// created twice, and the service carries on without being restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "restarts this machine's PostgreSQL; scripts/test.sh runs it (FAULTS_SKIP_PG_RESTART=1 skips it there, saying so)"]
async fn postgres_restart_mid_run_loses_no_job() {
    let _serial = support::serial().await;
    // Asked for explicitly: unable to restart PostgreSQL is a failure.
    let cluster = pg_cluster().unwrap_or_else(|why| {
        panic!("cannot restart PostgreSQL here ({why}); run as root or the cluster owner against the local cluster, or leave this test out (scripts/test.sh: FAULTS_SKIP_PG_RESTART=1)")
    });
    // API and worker in separate processes: both must ride out the restart.
    let mut rig = Rig::start("pg-restart", true, |e| {
        e.set("WORKER_CONCURRENCY", 64)
            .set("PANEL_TIMEOUT_SECS", 2)
            .set("RETRY_BASE_MS", 100)
            .set("RETRY_MAX_MS", 1000)
    })
    .await;
    rig.sim_faults(json!({"latency_ms": 200})).await;
    rig.place_orders(1000).await;
    let mut worker = rig.start_worker("worker");
    rig.wait_for(Duration::from_secs(90), "200 services active", |c| {
        c.active >= 200
    })
    .await;
    // Restart while a wave of creates is on the wire.
    let started = Instant::now();
    let mut in_flight = 0;
    while in_flight < 16 && started.elapsed() < Duration::from_secs(20) {
        in_flight = rig.pending_log_rows().await;
    }
    let before = rig.counts().await;
    // The fault must really strike mid-run: creates sent, answers unrecorded.
    assert!(
        in_flight > 0 && before.unfinished() > 0,
        "the restart must come with creates in flight: {before:?}, {in_flight} in flight"
    );
    let restarted = Instant::now();
    cluster.restart();
    eprintln!(
        "PostgreSQL {} restarted in {:.1} s, at {before:?} with {in_flight} creates in flight",
        cluster.name(),
        restarted.elapsed().as_secs_f64()
    );
    rig.wait_for(Duration::from_secs(180), "all 1000 services active", |c| {
        c.active == 1000
    })
    .await;
    assert!(
        worker.running(),
        "`commerce worker` must survive the restart; log:\n{}",
        worker.log_tail(40)
    );
    assert!(
        rig.serve_running(),
        "`commerce serve` must survive the restart; log:\n{}",
        rig.log_tail()
    );
    rig.assert_exactly_once(1000).await;
    eprintln!("failed attempts by kind: {:?}", rig.error_kinds().await);
    // And the worker really lost its database: PostgreSQL told its
    // connections it was going away (a warning from sqlx), or a queue worker
    // died on a reset connection and was restarted.
    let worker_log = worker.log_tail(1_000_000);
    assert!(
        ["terminating connection", "worker stopped; restarting it"]
            .iter()
            .any(|sign| worker_log.contains(sign)),
        "the worker's log shows no sign of the restart:\n{}",
        worker.log_tail(40)
    );
    let ready = rig.api().get("/readyz").await.expect("readyz");
    assert_eq!(
        ready.status, 200,
        "/readyz after the restart: {}",
        ready.text
    );
    worker.terminate(Duration::from_secs(20));
    drop(cluster);
    rig.finish().await;
}

/// Under concurrency, each log line describes its own job: no line carries the
/// spans of unrelated jobs (a span entered across an await leaks into every
/// task that runs on that thread afterwards).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_stay_bounded_under_concurrent_jobs() {
    let _serial = support::serial().await;
    let rig = Rig::start("log-lines", false, |e| e.set("WORKER_CONCURRENCY", 64)).await;
    rig.sim_faults(json!({"latency_ms": 50})).await;
    rig.place_orders(500).await;
    rig.wait_for(Duration::from_secs(120), "all 500 services active", |c| {
        c.active == 500
    })
    .await;
    let log = std::fs::read_to_string(rig.log_path()).expect("serve.log");
    let longest = log
        .lines()
        .max_by_key(|l| l.len())
        .unwrap_or_default()
        .to_owned();
    let spans = longest.matches("provision{").count();
    rig.finish().await;
    assert!(
        longest.len() < 4096 && spans <= 1,
        "the longest log line is {} bytes and nests {spans} provision spans; it begins:\n{}",
        longest.len(),
        longest.chars().take(600).collect::<String>()
    );
}
