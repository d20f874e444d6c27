//! Provisioning throughput, end to end: POST /api/v1/orders → create job →
//! Panel create → service active, with the order-to-active latency of every
//! service taken from the database (activated_at - created_at).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Value, json};

use super::Ctx;
use crate::Stack;
use crate::api::SimControl;
use crate::procs::{self, SimProc};
use crate::stats::{Summary, round};

/// One measured configuration.
#[derive(Debug, Clone)]
pub struct Case {
    pub latency_ms: u64,
    pub concurrency: usize,
    pub orders: usize,
    /// Order requests in flight at once.
    pub client_width: usize,
    /// Simulated Panel servers in the product's group.
    pub panel_servers: usize,
    /// Why `orders` differs from the run's default, if it does.
    pub note: Option<String>,
}

impl Case {
    pub fn name(&self) -> String {
        format!(
            "throughput {} ms, WORKER_CONCURRENCY={}",
            self.latency_ms, self.concurrency
        )
    }

    /// The target from the brief: ≥ 800/s at 0 ms; ≥ 0.8 × concurrency /
    /// latency otherwise (None: no target for this case).
    pub fn target(&self) -> Option<f64> {
        if self.latency_ms == 0 {
            (self.concurrency > 1).then_some(800.0)
        } else {
            Some(0.8 * self.concurrency as f64 / (self.latency_ms as f64 / 1000.0))
        }
    }
}

/// CPU seconds used so far by the processes of one run.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    commerce: f64,
    sim: f64,
    bench: f64,
    pg_ours: f64,
    pg_other: f64,
    machine_busy: f64,
    machine_total: f64,
}

impl Cpu {
    fn now(commerce: u32, sim: u32, db: &str) -> Self {
        let (pg_ours, pg_other) = procs::postgres_cpu_secs(db);
        let (machine_busy, machine_total) = procs::machine_cpu_secs().unwrap_or_default();
        Self {
            commerce: procs::cpu_secs(commerce).unwrap_or(0.0),
            sim: procs::cpu_secs(sim).unwrap_or(0.0),
            bench: procs::cpu_secs(std::process::id()).unwrap_or(0.0),
            pg_ours,
            pg_other,
            machine_busy,
            machine_total,
        }
    }

    /// Cores used by each, over `secs` of wall time.
    fn cores_since(&self, before: &Self, secs: f64) -> Value {
        let c = |a: f64, b: f64| round((a - b).max(0.0) / secs.max(1e-9) * 100.0) / 100.0;
        let cores = (self.machine_total - before.machine_total) / secs.max(1e-9);
        json!({
            "commerce": c(self.commerce, before.commerce),
            "opterius_sim": c(self.sim, before.sim),
            "bench_client": c(self.bench, before.bench),
            "postgres_backends": c(self.pg_ours, before.pg_ours),
            "postgres_other": c(self.pg_other, before.pg_other),
            "machine_busy": c(self.machine_busy, before.machine_busy),
            "machine_cores": round(cores),
        })
    }
}

async fn db_counters(pool: &sqlx::PgPool) -> anyhow::Result<(i64, i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT (xact_commit + xact_rollback)::int8, tup_inserted::int8, tup_updated::int8
         FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?)
}

/// Runs one case on a fresh database and a fresh `commerce serve`.
pub async fn run(ctx: &Ctx, sim: &SimProc, case: &Case) -> anyhow::Result<Value> {
    let label = format!("t{}c{}", case.latency_ms, case.concurrency);
    let stack = Stack::start(
        &ctx.bins,
        &ctx.db_name,
        |e| e.set("WORKER_CONCURRENCY", case.concurrency),
        false,
        &ctx.log(&format!(
            "throughput-{}ms-c{}",
            case.latency_ms, case.concurrency
        )),
    )
    .await?;
    let mut stack = stack;
    let result = measure(ctx, sim, case, &mut stack, &label).await;
    let stopped = stack.stop().await;
    let mut result = result?;
    stopped?;
    if let Value::Object(m) = &mut result {
        m.insert("name".into(), json!(case.name()));
    }
    Ok(result)
}

async fn measure(
    ctx: &Ctx,
    sim: &SimProc,
    case: &Case,
    stack: &mut Stack,
    label: &str,
) -> anyhow::Result<Value> {
    let control = SimControl::new(sim)?;
    control.reset().await?;
    let catalog = stack
        .api
        .setup_catalog(sim, 0, case.panel_servers.min(sim.servers), label)
        .await?;
    let clients = stack.api.create_clients(100, label).await?;
    control
        .faults(None, &json!({"latency_ms": case.latency_ms}))
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = stack.serve.proc.pid;
    let rss_idle = procs::status_kib(pid, "VmRSS").unwrap_or(0);

    // Sample resident memory every 100 ms while the run goes on.
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(rss_idle));
    let sampler = {
        let (done, peak) = (done.clone(), peak.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                if let Some(kib) = procs::status_kib(pid, "VmRSS") {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let activity = {
        let (done, pool) = (done.clone(), stack.pool.clone());
        tokio::spawn(async move { sample_activity(&pool, &done).await })
    };
    let counters_before = db_counters(&stack.pool).await?;
    let cpu_before = Cpu::now(pid, sim.proc.pid, &ctx.db_name);
    let started = Instant::now();
    let api = stack.api.clone();
    let (n, width, product) = (case.orders, case.client_width, catalog.product_id);
    let prefix = label.to_owned();
    let placing =
        tokio::spawn(async move { api.place_orders(n, width, product, &clients, &prefix).await });

    // Expected time at the target rate, times three, plus a minute.
    let per_job = (case.latency_ms as f64 + 20.0) / 1000.0;
    let budget = Duration::from_secs_f64(
        60.0 + 3.0 * per_job * case.orders as f64 / case.concurrency as f64,
    );
    let mut polls = 0i64;
    let (active, failed) = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        polls += 1;
        let (active, failed): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'active'), count(*) FILTER (WHERE status = 'failed')
             FROM services",
        )
        .fetch_one(&stack.pool)
        .await?;
        if active + failed >= case.orders as i64 {
            break (active, failed);
        }
        if started.elapsed() > budget {
            done.store(true, Ordering::Relaxed);
            bail!(
                "{}: only {active} of {} services active after {:.0} s; log: {}",
                case.name(),
                case.orders,
                budget.as_secs_f64(),
                stack.serve.proc.log.display()
            );
        }
    };
    let wall = started.elapsed().as_secs_f64();
    let cpu_after = Cpu::now(pid, sim.proc.pid, &ctx.db_name);
    done.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    let placed = placing.await??;
    let activity = activity.await.unwrap_or_default();
    let rss_hwm = procs::status_kib(pid, "VmHWM").unwrap_or(0);

    let latencies: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM activated_at - created_at)::float8 * 1000 FROM services
         WHERE status = 'active'",
    )
    .fetch_all(&stack.pool)
    .await?;
    let span: Option<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM max(activated_at) - min(created_at))::float8 FROM services",
    )
    .fetch_one(&stack.pool)
    .await?;
    let log_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM provisioning_log")
        .fetch_one(&stack.pool)
        .await?;
    let creates = control.creates().await?;
    let span = span.unwrap_or(wall);
    let rate = active as f64 / span.max(1e-9);
    // Backends flush their statistics when they exit: stop the service first.
    stack.serve.proc.terminate(Duration::from_secs(20));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counters_after = db_counters(&stack.pool).await?;
    let per_account = |after: i64, before: i64, extra: i64| {
        round((after - before - extra) as f64 / case.orders.max(1) as f64)
    };
    let target = case.target();
    Ok(json!({
        "latency_ms": case.latency_ms,
        "worker_concurrency": case.concurrency,
        "orders": case.orders,
        "note": case.note,
        "panel_servers": case.panel_servers,
        "client_width": case.client_width,
        "active": active,
        "failed": failed,
        "order_failures": placed.failures.len(),
        "order_failure_examples": placed.failures.iter().take(3).collect::<Vec<_>>(),
        "accounts_per_s": round(rate),
        "span_s": round(span),
        "wall_s": round(wall),
        "orders_per_s": round(placed.latencies_ms.len() as f64 / placed.elapsed.as_secs_f64().max(1e-9)),
        "order_to_active": Summary::of(&latencies).json(),
        "post_order": Summary::of(&placed.latencies_ms).json(),
        "target_accounts_per_s": target.map(round),
        "target_met": target.map(|t| rate >= t),
        "rss_idle_kib": rss_idle,
        "rss_peak_sampled_kib": peak.load(Ordering::Relaxed),
        "rss_hwm_kib": rss_hwm,
        "cpu_cores": cpu_after.cores_since(&cpu_before, wall),
        "db": {
            "transactions_per_account": per_account(counters_after.0, counters_before.0, polls),
            "rows_inserted_per_account": per_account(counters_after.1, counters_before.1, 0),
            "rows_updated_per_account": per_account(counters_after.2, counters_before.2, 0),
            "provisioning_log_rows": log_rows,
        },
        "pg_activity": activity,
        "sim": {
            "creates": creates.get("total"),
            "usernames": creates.get("usernames"),
            "duplicates": creates.get("duplicates").and_then(Value::as_array).map_or(0, Vec::len),
        },
    }))
}

/// Samples what the service's PostgreSQL sessions are doing every 20 ms until
/// `done`: the share of samples per (statement, wait event), busiest first.
/// Idle sessions are left out; "busy" is the mean number of active sessions.
async fn sample_activity(pool: &sqlx::PgPool, done: &AtomicBool) -> Value {
    let mut counts: std::collections::HashMap<(String, String), u64> = Default::default();
    let mut samples = 0u64;
    let mut active = 0u64;
    while !done.load(Ordering::Relaxed) {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT state, coalesce(wait_event_type || ':' || wait_event, 'cpu'),
                    regexp_replace(left(query, 90), '\\s+', ' ', 'g')
             FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND state NOT IN ('idle')",
        )
        .fetch_all(pool)
        .await
        .unwrap_or_default();
        samples += 1;
        for (state, wait, query) in rows {
            active += 1;
            let what = if state == "idle in transaction" {
                format!("(idle in transaction) after: {query}")
            } else {
                query
            };
            *counts.entry((what, wait)).or_insert(0) += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut top: Vec<_> = counts.into_iter().collect();
    top.sort_by_key(|e| std::cmp::Reverse(e.1));
    let total = active.max(1) as f64;
    json!({
        "samples": samples,
        "mean_active_sessions": round(active as f64 / samples.max(1) as f64),
        "top": top.into_iter().take(15).map(|((q, w), n)| json!({
            "share": round(n as f64 / total * 100.0) / 100.0, "wait": w, "query": q,
        })).collect::<Vec<_>>(),
    })
}
