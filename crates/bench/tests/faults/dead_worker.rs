//! A worker process killed with SIGKILL while it holds leased services, with
//! a second worker running beside it: the survivor takes the dead worker's
//! services over once its heartbeat goes stale (seconds), not when the lease
//! runs out (here 2 × PANEL_TIMEOUT_SECS + 10 s = 30 s).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{self, Rig};

/// Services whose lease names the worker process `pid` and has not run out.
async fn leased_by(rig: &Rig, pid: u32) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT id FROM services WHERE leased_by LIKE $1 AND lease_until > now() ORDER BY id",
    )
    .bind(format!("{pid}-%"))
    .fetch_all(rig.pool())
    .await
    .expect("leases")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_leased_services_are_resumed_by_the_other_worker_within_seconds() {
    let _serial = support::serial().await;
    const ORDERS: usize = 120;
    let rig = Rig::start("dead-worker", true, |e| {
        e.set("WORKER_CONCURRENCY", 16)
            .set("PANEL_TIMEOUT_SECS", 10)
            .set("RETRY_BASE_MS", 100)
            .set("RETRY_MAX_MS", 1000)
    })
    .await;
    // A slow Panel: every call takes 2 s, so a worker always has calls in flight.
    rig.sim_faults(json!({"latency_ms": 2000})).await;
    rig.place_orders(ORDERS).await;
    let mut doomed = rig.start_worker("worker-a");
    let mut survivor = rig.start_worker("worker-b");

    // Kill worker A while it holds leases with calls on the wire.
    let started = Instant::now();
    let mut held = Vec::new();
    while held.len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "worker A never held 3 leases at once; log:\n{}",
            doomed.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        held = leased_by(&rig, doomed.pid).await;
    }
    doomed.kill9();
    // The database's clock (seconds since the epoch), which stamps log rows.
    let killed_at: f64 = sqlx::query_scalar("SELECT extract(epoch FROM clock_timestamp())::float8")
        .fetch_one(rig.pool())
        .await
        .expect("now");
    let still_held = leased_by(&rig, doomed.pid).await;
    let in_flight: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM provisioning_log WHERE status = 'pending' AND service_id = ANY($1)",
    )
    .bind(&still_held)
    .fetch_one(rig.pool())
    .await
    .expect("in flight");
    eprintln!(
        "[dead-worker] worker A (pid {}) killed with SIGKILL holding {} leased services, {in_flight} Panel calls in flight",
        doomed.pid,
        still_held.len()
    );
    assert!(
        !still_held.is_empty(),
        "the dead worker must leave leases behind"
    );

    // Taken over: the lease names another worker (B took it, even if it
    // then waited for a call slot), or the service is no longer waiting.
    let killed = Instant::now();
    let taken_over = loop {
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM services WHERE id = ANY($1) AND status = 'provisioning' AND leased_by LIKE $2",
        )
        .bind(&still_held)
        .bind(format!("{}-%", doomed.pid))
        .fetch_one(rig.pool())
        .await
        .expect("taken over");
        if left == 0 {
            break killed.elapsed().as_secs_f64();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "{left} services still leased by the dead worker after 60 s\n{}",
            rig.diagnose().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("[dead-worker] worker B took over all of them {taken_over:.1} s after the kill");
    rig.wait_for(
        Duration::from_secs(180),
        &format!("all {ORDERS} services active"),
        |c| c.active == ORDERS as i64,
    )
    .await;
    assert!(
        survivor.running(),
        "worker B must carry on; log:\n{}",
        survivor.log_tail(40)
    );
    // When each orphan's next attempt started, after the kill.
    let resumed: Vec<(i64, f64)> = sqlx::query_as(
        "SELECT service_id, extract(epoch FROM min(created_at))::float8 - $2 FROM provisioning_log
         WHERE service_id = ANY($1) AND created_at > to_timestamp($2) GROUP BY service_id ORDER BY 2",
    )
    .bind(&still_held)
    .bind(killed_at)
    .fetch_all(rig.pool())
    .await
    .expect("resumed");
    let first = resumed.first().map_or(f64::NAN, |r| r.1);
    let last = resumed.last().map_or(f64::NAN, |r| r.1);
    eprintln!(
        "[dead-worker] worker B resumed {} of the {} orphaned services: the first {first:.1} s and the last {last:.1} s after the kill (lease {} s)",
        resumed.len(),
        still_held.len(),
        2 * 10 + 10
    );
    // An orphan whose call had answered just before the kill needs no new
    // attempt; every other one must have been resumed, and quickly.
    let unresumed: Vec<i64> = still_held
        .iter()
        .copied()
        .filter(|id| !resumed.iter().any(|(r, _)| r == id))
        .collect();
    let done_before: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM services WHERE id = ANY($1) AND activated_at <= to_timestamp($2)",
    )
    .bind(&unresumed)
    .bind(killed_at)
    .fetch_one(rig.pool())
    .await
    .expect("done before");
    assert_eq!(
        done_before as usize,
        unresumed.len(),
        "orphans neither resumed nor finished before the kill: {unresumed:?}"
    );
    assert!(!resumed.is_empty(), "no orphan was resumed");
    // The next attempt itself may wait its turn for a call slot (the Panel
    // is slow and B's own work holds them): printed above, not asserted.
    assert!(
        taken_over <= 15.0,
        "the dead worker's services waited {taken_over:.1} s (more than 15 s) to be taken over\n{}",
        rig.diagnose().await
    );
    survivor.terminate(Duration::from_secs(20));
    rig.assert_exactly_once(ORDERS as i64).await;
    assert_eq!(
        rig.pending_log_rows().await,
        0,
        "no log row may stay pending"
    );
    rig.finish().await;
}
