//! Liveness, readiness and Prometheus metrics.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::front::AppState;
use crate::metrics::LATENCY_BUCKETS;

/// The process is up.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// The database answers, migrations are applied, and (when this process runs
/// them) the workers are running.
pub async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let query = crate::app::readiness::migrations_applied(&s.pool);
    // Answer within two seconds even when the database does not.
    // The database's own error text (host names, roles, versions) goes to the
    // log, never into this unauthenticated answer.
    let db = match tokio::time::timeout(std::time::Duration::from_secs(2), query).await {
        Ok(r) => r.map_err(|e| {
            tracing::warn!(error = %e, "readiness: database check failed");
            "unreachable"
        }),
        Err(_) => Err("no answer within 2 s"),
    };
    let expected = crate::MIGRATOR.iter().count() as i64;
    let (db_ok, migrations_ok, detail) = match db {
        Ok(n) => (
            true,
            n >= expected,
            format!("{n} of {expected} migrations applied"),
        ),
        Err(e) => (false, false, format!("database {e}")),
    };
    let workers = s.workers.status();
    let ready = db_ok && migrations_ok && workers != "stopped";
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(json!({"ready": ready, "database": db_ok, "migrations": detail, "workers": workers})),
    )
}

/// Prometheus text format.
pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    let m = &s.metrics;
    for (name, help) in [
        ("enqueued", "Provisioning jobs enqueued"),
        ("succeeded", "Provisioning jobs that succeeded"),
        ("failed", "Provisioning jobs that failed for good"),
        ("retried", "Provisioning attempts that scheduled a retry"),
    ] {
        let _ = writeln!(
            out,
            "# HELP commerce_jobs_{name}_total {help}\n# TYPE commerce_jobs_{name}_total counter"
        );
        for (job, c) in crate::jobs::HOSTING_JOBS
            .iter()
            .filter_map(|j| Some((j.label, m.for_action(j.action)?)))
        {
            let v = match name {
                "enqueued" => &c.enqueued,
                "succeeded" => &c.succeeded,
                "failed" => &c.failed,
                _ => &c.retried,
            };
            let _ = writeln!(
                out,
                "commerce_jobs_{name}_total{{job=\"{job}\"}} {}",
                v.load(Ordering::Relaxed)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP commerce_provisioning_call_seconds Module call latency\n# TYPE commerce_provisioning_call_seconds histogram"
    );
    for ((module, action), h) in m.latency_snapshot() {
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "commerce_provisioning_call_seconds_bucket{{module=\"{module}\",action=\"{action}\",le=\"{bound}\"}} {}",
                h.buckets[i]
            );
        }
        let _ = writeln!(
            out,
            "commerce_provisioning_call_seconds_bucket{{module=\"{module}\",action=\"{action}\",le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "commerce_provisioning_call_seconds_sum{{module=\"{module}\",action=\"{action}\"}} {}",
            h.sum
        );
        let _ = writeln!(
            out,
            "commerce_provisioning_call_seconds_count{{module=\"{module}\",action=\"{action}\"}} {}",
            h.count
        );
    }
    if let Ok(rows) = crate::app::readiness::queue_depth(&s.pool).await {
        let _ = writeln!(
            out,
            "# HELP commerce_queue_depth Jobs waiting or running\n# TYPE commerce_queue_depth gauge"
        );
        for queue in crate::jobs::queues() {
            let n = rows.iter().find(|(q, _)| q == queue).map_or(0, |(_, n)| *n);
            let _ = writeln!(out, "commerce_queue_depth{{queue=\"{queue}\"}} {n}");
        }
    }
    if let Ok(rows) = crate::app::readiness::servers_by_health(&s.pool).await {
        let _ = writeln!(
            out,
            "# HELP commerce_servers Servers by last known health\n# TYPE commerce_servers gauge"
        );
        for status in ["online", "offline", "unknown"] {
            let n = rows
                .iter()
                .find(|(st, _)| st == status)
                .map_or(0, |(_, n)| *n);
            let _ = writeln!(out, "commerce_servers{{status=\"{status}\"}} {n}");
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out,
    )
}
