//! The reference limit: pgbench's TPC-B-like load on the same PostgreSQL.

use std::process::Command;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::Ctx;
use crate::db::TempDb;

#[derive(Debug, Clone)]
pub struct Case {
    pub scale: u32,
    pub clients: u32,
    pub threads: u32,
    pub secs: u32,
}

fn pgbench(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("pgbench")
        .args(args)
        .output()
        .context("pgbench is not installed (Debian: apt-get install postgresql-contrib)")?;
    if !out.status.success() {
        bail!(
            "pgbench {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `pgbench -i -s SCALE` on a scratch database, then `pgbench -c -j -T`.
pub async fn run(ctx: &Ctx, case: &Case) -> anyhow::Result<Value> {
    let db = TempDb::create(&format!("{}_pgbench", ctx.db_name)).await?;
    let url = db.url.clone();
    let case2 = case.clone();
    let out = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        pgbench(&["-i", "-q", "-s", &case2.scale.to_string(), &url])?;
        pgbench(&[
            "-c",
            &case2.clients.to_string(),
            "-j",
            &case2.threads.to_string(),
            "-T",
            &case2.secs.to_string(),
            &url,
        ])
    })
    .await??;
    db.drop_db().await?;
    let tps = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .with_context(|| format!("no tps in pgbench output:\n{out}"))?;
    let latency = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("latency average = "))
        .map(str::to_owned);
    Ok(json!({
        "name": "pgbench (TPC-B-like)",
        "command": format!("pgbench -i -s {s} DB && pgbench -c {c} -j {j} -T {t} DB",
            s = case.scale, c = case.clients, j = case.threads, t = case.secs),
        "tps": tps,
        "latency_average": latency,
    }))
}
