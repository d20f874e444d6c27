//! Test all: POST /api/v1/servers/sweep over many simulated servers, some of
//! which never answer. The wall time should stay near one per-server timeout.
//!
//! Then the scheduled health sweep (`HEALTH_SWEEP_INTERVAL_SECS`, the same
//! probe code) over the same servers, all answering: its cost per sweep in
//! CPU time of `commerce serve`, and database time, taken as the growth of
//! `pg_stat_database.active_time` (time backends of the benchmark's database
//! spent executing statements; pg_stat_statements needs a restart to load)
//! and the CPU time of those backends from /proc. An idle window of the same
//! length is measured after it and subtracted, so background tasks
//! (heartbeats, schedules) are not counted as the sweep's.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Ctx;
use crate::Stack;
use crate::api::{SimControl, id_of};
use crate::procs::{self, SimProc};
use crate::stats::{Summary, round};

#[derive(Debug, Clone)]
pub struct Case {
    pub servers: usize,
    pub hung: usize,
    pub timeout_secs: u64,
}

/// Starts its own simulator with `servers` servers, registers them all, makes
/// `hung` of them hang, and sweeps.
pub async fn run(ctx: &Ctx, case: &Case) -> anyhow::Result<Value> {
    let sim = SimProc::start(
        &ctx.bins,
        case.servers,
        "sweep-token",
        &ctx.log("sweep-sim"),
    )?;
    let mut stack = Stack::start(
        &ctx.bins,
        &ctx.db_name,
        // The schedule is on, but parked (see `scheduled`) until measured.
        |e| {
            e.set("SWEEP_TIMEOUT_SECS", case.timeout_secs)
                .set("HEALTH_SWEEP_INTERVAL_SECS", SCHEDULE_SECS)
        },
        false,
        &ctx.log("sweep"),
    )
    .await?;
    let result = measure(case, &sim, &mut stack).await;
    let stopped = stack.stop().await;
    let result = result?;
    stopped?;
    Ok(result)
}

/// The schedule's period in the run: its loop looks every period / 4.
const SCHEDULE_SECS: u64 = 8;

/// Long enough for every backend to have flushed its statistics (PostgreSQL
/// 15 flushes an idle backend's pending stats within 10 s).
const STATS_FLUSH: Duration = Duration::from_secs(12);

async fn measure(case: &Case, sim: &SimProc, stack: &mut Stack) -> anyhow::Result<Value> {
    park_schedule(&stack.pool).await?;
    let group = stack
        .api
        .create(
            "/api/v1/server-groups",
            &json!({"name": "sweep", "placement": "least_full"}),
        )
        .await?;
    let registering = Instant::now();
    let ids = stack
        .api
        .register_servers(sim, id_of(&group)?, 0..case.servers, "sweep", 16)
        .await?;
    let register_s = registering.elapsed().as_secs_f64();
    // Every tenth server (up to `hung`) never answers.
    let control = SimControl::new(sim)?;
    let step = (case.servers / case.hung.max(1)).max(1);
    let hung: Vec<usize> = (0..case.servers)
        .filter(|n| n % step == step / 2)
        .take(case.hung)
        .collect();
    for n in &hung {
        control.faults(Some(*n), &json!({"hang": true})).await?;
    }
    let pid = stack.serve.proc.pid;
    let rss_before = procs::status_kib(pid, "VmRSS").unwrap_or(0);
    let started = Instant::now();
    let answer = stack.api.post("/api/v1/servers/sweep", &json!({})).await?;
    let wall = started.elapsed();
    anyhow::ensure!(
        answer.status == 200,
        "sweep answered {}: {}",
        answer.status,
        answer.text
    );
    let results = answer
        .body
        .get("results")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ok = results
        .iter()
        .filter(|r| r.get("ok") == Some(&json!(true)))
        .count();
    let kind = |r: &Value| {
        r.pointer("/error/kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let timeouts = results.iter().filter(|r| kind(r) == "timeout").count();
    let answered: Vec<f64> = results
        .iter()
        .filter(|r| r.get("ok") == Some(&json!(true)))
        .filter_map(|r| r.get("latency_ms").and_then(Value::as_f64))
        .collect();
    let limit = Duration::from_secs(case.timeout_secs);
    let target = limit.mul_f64(1.5);
    // Every server answers for the scheduled sweep.
    control.faults(None, &json!({})).await?;
    let scheduled = scheduled(case, sim, stack).await?;
    Ok(json!({
        "scheduled_sweep": scheduled,
        "name": format!("sweep {} servers, {} hanging", case.servers, hung.len()),
        "servers": case.servers,
        "registered": ids.len(),
        "register_s": round(register_s),
        "hung": hung.len(),
        "sweep_timeout_s": case.timeout_secs,
        "results": results.len(),
        "ok": ok,
        "timeouts": timeouts,
        "other_errors": results.len() - ok - timeouts,
        "wall_s": round(wall.as_secs_f64()),
        "elapsed_ms_reported": answer.body.get("elapsed_ms"),
        "answered_probe_latency": Summary::of(&answered).json(),
        "target_wall_s": round(target.as_secs_f64()),
        "target_met": wall <= target && ok + timeouts == case.servers && timeouts == hung.len(),
        "rss_before_kib": rss_before,
        "rss_after_kib": procs::status_kib(pid, "VmRSS").unwrap_or(0),
    }))
}

/// Holds the health schedule off until [`scheduled`] asks for a sweep.
async fn park_schedule(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO schedule_runs (name, last_run_at) VALUES ('health_sweep', now() + interval '1 day')
         ON CONFLICT (name) DO UPDATE SET last_run_at = EXCLUDED.last_run_at, updated_at = now()",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// What the cost counters read at one moment.
struct Counters {
    at: Instant,
    serve_cpu_s: f64,
    sim_cpu_s: f64,
    pg_cpu_s: f64,
    active_ms: f64,
    xacts: i64,
}

async fn counters(stack: &Stack, sim: &SimProc) -> anyhow::Result<Counters> {
    let (active_ms, xacts): (f64, i64) = sqlx::query_as(
        "SELECT coalesce(active_time, 0)::float8, (xact_commit + xact_rollback)::int8
         FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&stack.pool)
    .await?;
    Ok(Counters {
        at: Instant::now(),
        serve_cpu_s: procs::cpu_secs(stack.serve.proc.pid).unwrap_or(0.0),
        sim_cpu_s: procs::cpu_secs(sim.proc.pid).unwrap_or(0.0),
        pg_cpu_s: procs::postgres_cpu_secs(&stack.db.name).0,
        active_ms,
        xacts,
    })
}

/// The growth of each counter from `a` to `b`.
struct Spent {
    secs: f64,
    serve_cpu_ms: f64,
    sim_cpu_ms: f64,
    pg_cpu_ms: f64,
    active_ms: f64,
    xacts: i64,
}

fn spent(a: &Counters, b: &Counters) -> Spent {
    Spent {
        secs: (b.at - a.at).as_secs_f64(),
        serve_cpu_ms: (b.serve_cpu_s - a.serve_cpu_s) * 1000.0,
        sim_cpu_ms: (b.sim_cpu_s - a.sim_cpu_s) * 1000.0,
        pg_cpu_ms: (b.pg_cpu_s - a.pg_cpu_s) * 1000.0,
        active_ms: b.active_ms - a.active_ms,
        xacts: b.xacts - a.xacts,
    }
}

/// One scheduled sweep of every server, started by un-parking the schedule
/// and parked again as soon as it claimed its period; its cost net of an
/// idle window of the same length.
async fn scheduled(case: &Case, sim: &SimProc, stack: &Stack) -> anyhow::Result<Value> {
    let pool = &stack.pool;
    // Let the Test all's statistics land before the first reading.
    tokio::time::sleep(STATS_FLUSH).await;
    let last_id: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM server_health_history")
        .fetch_one(pool)
        .await?;
    let before = counters(stack, sim).await?;
    sqlx::query("UPDATE schedule_runs SET last_run_at = 'epoch' WHERE name = 'health_sweep'")
        .execute(pool)
        .await?;
    let asked = Instant::now();
    loop {
        let claimed: bool = sqlx::query_scalar(
            "SELECT last_run_at > 'epoch' FROM schedule_runs WHERE name = 'health_sweep'",
        )
        .fetch_one(pool)
        .await?;
        if claimed {
            park_schedule(pool).await?;
            break;
        }
        anyhow::ensure!(
            asked.elapsed() < Duration::from_secs(SCHEDULE_SECS * 2),
            "the health schedule never claimed its period"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (results, span_s) = loop {
        let (n, span): (i64, Option<f64>) = sqlx::query_as(
            "SELECT count(*), extract(epoch FROM max(created_at) - min(created_at))::float8
             FROM server_health_history WHERE id > $1",
        )
        .bind(last_id)
        .fetch_one(pool)
        .await?;
        if n >= case.servers as i64 {
            break (n, span.unwrap_or(0.0));
        }
        anyhow::ensure!(
            asked.elapsed() < Duration::from_secs(120),
            "the scheduled sweep tested {n} of {} servers in 120 s",
            case.servers
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let wall_s = asked.elapsed().as_secs_f64();
    tokio::time::sleep(STATS_FLUSH).await;
    let after = counters(stack, sim).await?;
    let sweep = spent(&before, &after);
    tokio::time::sleep(Duration::from_secs_f64(sweep.secs)).await;
    let idle = spent(&after, &counters(stack, sim).await?);
    let net = |f: fn(&Spent) -> f64| round((f(&sweep) - f(&idle)).max(0.0));
    let ok: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM server_health_history WHERE id > $1 AND status = 'online'",
    )
    .bind(last_id)
    .fetch_one(pool)
    .await?;
    Ok(json!({
        "servers": case.servers,
        "results": results,
        "online": ok,
        "wall_s": round(wall_s),
        "first_to_last_result_s": round(span_s),
        "serve_cpu_ms": net(|s| s.serve_cpu_ms),
        "db_active_ms": net(|s| s.active_ms),
        "db_backend_cpu_ms": net(|s| s.pg_cpu_ms),
        "db_transactions": sweep.xacts - idle.xacts,
        "sim_cpu_ms": net(|s| s.sim_cpu_ms),
        "window_s": round(sweep.secs),
        "idle_window": {
            "serve_cpu_ms": round(idle.serve_cpu_ms),
            "db_active_ms": round(idle.active_ms),
            "db_backend_cpu_ms": round(idle.pg_cpu_ms),
            "db_transactions": idle.xacts,
        },
        "method": "net of an equal idle window: serve and simulator CPU from /proc/<pid>/stat; database time = growth of pg_stat_database.active_time; backend CPU from /proc of the database's backends",
    }))
}
