//! Test all: POST /api/v1/servers/sweep over many simulated servers, some of
//! which never answer. The wall time should stay near one per-server timeout.

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
        |e| e.set("SWEEP_TIMEOUT_SECS", case.timeout_secs),
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

async fn measure(case: &Case, sim: &SimProc, stack: &mut Stack) -> anyhow::Result<Value> {
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
    Ok(json!({
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
