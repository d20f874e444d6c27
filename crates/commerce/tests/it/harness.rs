//! The harness's own promises: `drain` runs the pending jobs, a test that
//! leaves jobs behind fails, at `finish` and on drop, unless it said so, and
//! a log capture sees its thread's events whatever the other tests do.

use std::time::Duration;

use commerce::domain::{Action, TriggeredBy};
use commerce::jobs::{JobArgs, enqueue};

use crate::support::{Catalog, TestApp};

/// Parks a create job an hour out: no worker will touch it during the test.
async fn park_a_job(app: &TestApp) {
    let mut conn = app.state.pool.acquire().await.expect("connection");
    let args = JobArgs {
        service_id: 1,
        attempt: 1,
        triggered_by: TriggeredBy::System,
    };
    enqueue(
        &mut conn,
        Action::Create,
        args,
        Some(Duration::from_secs(3600)),
    )
    .await
    .expect("enqueue");
}

#[tokio::test]
async fn drain_returns_once_the_order_is_provisioned() {
    let app = TestApp::spawn().await;
    let catalog = Catalog::on(&app).build().await;
    let sid = app
        .order(catalog.product_id, "drained.example.com")
        .await
        .service_id();
    app.drain().await;
    let service = app.service(sid).await;
    assert_eq!(service.status, "active", "{service:?}");
    let log = app.log_for(sid).await;
    assert_eq!(
        log.iter().map(|e| e.outcome()).collect::<Vec<_>>(),
        [("create", "success")]
    );
    app.finish().await;
}

#[tokio::test]
#[should_panic(expected = "left 1 apalis job(s) behind")]
async fn a_test_that_finishes_with_a_job_queued_fails() {
    let app = TestApp::spawn().await;
    park_a_job(&app).await;
    app.finish().await;
}

#[tokio::test]
#[should_panic(expected = "left 1 apalis job(s) behind")]
async fn a_test_that_skips_finish_with_a_job_queued_fails_on_drop() {
    let app = TestApp::spawn().await;
    park_a_job(&app).await;
}

#[tokio::test]
async fn a_test_that_expects_jobs_left_behind_may_leave_them() {
    let app = TestApp::spawn().await;
    park_a_job(&app).await;
    app.expect_jobs_left_behind();
    app.finish().await;
}

/// The harness's promise: a test that never calls `finish()` still has every
/// response it saw scanned for secrets, when its app is dropped.
#[tokio::test]
#[should_panic(expected = "a response leaked a secret")]
async fn a_test_that_skips_finish_still_gets_the_secret_scan_on_drop() {
    let app = TestApp::spawn().await;
    app.remember_response(format!("{{\"token\": \"{}\"}}", app.sim.token(1)));
}

/// The capture sees its thread's event even when another thread, with no
/// subscriber, reached the same callsite first (see `support::logs`).
#[test]
fn a_log_capture_sees_an_event_whose_callsite_another_thread_reached_first() {
    fn emit() {
        tracing::warn!(target: "it::harness", "the shared callsite");
    }
    let lines = crate::support::logs::Lines::default();
    let writer = lines.clone();
    let _capture = crate::support::logs::capture(
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish(),
    );
    std::thread::spawn(emit).join().expect("sibling thread");
    emit();
    let text = lines.text();
    assert!(text.contains("the shared callsite"), "captured: {text:?}");
}
