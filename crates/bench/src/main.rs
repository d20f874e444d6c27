//! `bench`: measures the provisioning service with real processes on loopback
//! and writes target/bench/results.json (see BENCHMARKS.md).

mod report;

use std::time::Instant;

use anyhow::Context as _;
use bench::procs::{Bins, SimProc};
use bench::scenarios::{Ctx, api_latency, pgbench, sweep, throughput};
use clap::Parser;
use serde_json::{Value, json};

/// Benchmark of the Commerce provisioning service (throughput, sweep, API
/// latency, memory) against PostgreSQL at DATABASE_URL.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Orders per throughput case.
    #[arg(long, default_value_t = 10_000)]
    orders: usize,
    /// Orders for WORKER_CONCURRENCY=1 at 100 ms (10,000 would take ~17 min).
    #[arg(long, default_value_t = 300)]
    orders_slow: usize,
    /// Order requests in flight at once.
    #[arg(long, default_value_t = 64)]
    client_width: usize,
    /// Simulated Panel servers in the throughput product's group.
    #[arg(long, default_value_t = 10)]
    panel_servers: usize,
    /// Servers swept by Test all.
    #[arg(long, default_value_t = 1000)]
    sweep_servers: usize,
    /// Of which never answer.
    #[arg(long, default_value_t = 100)]
    sweep_hung: usize,
    /// SWEEP_TIMEOUT_SECS (the service's default is 10).
    #[arg(long, default_value_t = 10)]
    sweep_timeout_secs: u64,
    /// Services bulk-inserted for the API latency run.
    #[arg(long, default_value_t = 100_000)]
    services: usize,
    /// Provisioning-log rows bulk-inserted for the API latency run.
    #[arg(long, default_value_t = 1_000_000)]
    log_rows: usize,
    /// Requests per endpoint in the API latency run.
    #[arg(long, default_value_t = 2000)]
    api_requests: usize,
    /// Concurrent API clients.
    #[arg(long, default_value_t = 32)]
    api_clients: usize,
    /// pgbench duration in seconds.
    #[arg(long, default_value_t = 15)]
    pgbench_secs: u32,
    /// Throughput cases as LATENCY_MS:WORKER_CONCURRENCY.
    #[arg(long, value_delimiter = ',', default_value = "0:64,100:64,0:1,100:1")]
    cases: Vec<String>,
    /// Scenarios to run: any of pgbench, throughput, sweep, api.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "pgbench,throughput,sweep,api"
    )]
    only: Vec<String>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=.,/:".contains(c))
            {
                a
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect();
    let db = bench::db::admin_url();
    format!(
        "DATABASE_URL={db} scripts/bench.sh{}{}",
        if args.is_empty() { "" } else { " " },
        args.join(" ")
    )
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let bins = Bins::of_current_exe()?;
    let out_dir = bench::target_subdir(&bins, "bench");
    let ctx = Ctx {
        db_name: format!("commerce_bench_{}", std::process::id()),
        log_dir: out_dir.join("logs"),
        bins,
    };
    let _ = std::fs::remove_dir_all(&ctx.log_dir);
    std::fs::create_dir_all(&ctx.log_dir)
        .with_context(|| format!("cannot create {}", ctx.log_dir.display()))?;
    let command = command_line();
    println!("bench: {command}");
    println!("bench: binaries in {}", ctx.bins.dir.display());
    let want = |s: &str| args.only.iter().any(|o| o == s);
    let started = Instant::now();
    let mut results = serde_json::Map::new();
    results.insert("command".into(), json!(command));
    results.insert("machine".into(), report::machine());

    if want("pgbench") {
        step("pgbench");
        let case = pgbench::Case {
            scale: 10,
            clients: 8,
            threads: 2,
            secs: args.pgbench_secs,
        };
        results.insert("pgbench".into(), outcome(pgbench::run(&ctx, &case).await));
    }
    if want("throughput") || want("api") {
        let sim = SimProc::start(
            &ctx.bins,
            args.panel_servers.max(1),
            "bench-token",
            &ctx.log("sim"),
        )?;
        if want("throughput") {
            let mut cases = Vec::new();
            for spec in &args.cases {
                let (latency_ms, concurrency) = spec
                    .split_once(':')
                    .and_then(|(l, c)| Some((l.parse::<u64>().ok()?, c.parse::<usize>().ok()?)))
                    .filter(|(_, c)| *c > 0)
                    .with_context(|| format!("--cases: {spec:?} is not LATENCY_MS:CONCURRENCY"))?;
                let slow = latency_ms > 0 && concurrency == 1;
                let orders = if slow {
                    args.orders_slow.min(args.orders)
                } else {
                    args.orders
                };
                cases.push(throughput::Case {
                    latency_ms,
                    concurrency,
                    orders,
                    client_width: args.client_width,
                    panel_servers: args.panel_servers,
                    note: (orders != args.orders).then(|| {
                        format!(
                            "{orders} orders instead of {}: at one job at a time and 100 ms per create, {} would take {:.0} min",
                            args.orders,
                            args.orders,
                            args.orders as f64 * 0.1 / 60.0
                        )
                    }),
                });
            }
            let mut list = Vec::new();
            for case in &cases {
                step(&case.name());
                list.push(outcome(throughput::run(&ctx, &sim, case).await));
            }
            results.insert("throughput".into(), json!(list));
        }
        if want("api") {
            step("API latency");
            let case = api_latency::Case {
                services: args.services,
                log_rows: args.log_rows,
                servers: 50,
                requests: args.api_requests,
                clients: args.api_clients,
            };
            results.insert(
                "api".into(),
                outcome(api_latency::run(&ctx, &sim, &case).await),
            );
        }
    }
    if want("sweep") {
        step("sweep");
        let case = sweep::Case {
            servers: args.sweep_servers,
            hung: args.sweep_hung,
            timeout_secs: args.sweep_timeout_secs,
        };
        results.insert("sweep".into(), outcome(sweep::run(&ctx, &case).await));
    }
    results.insert(
        "total_s".into(),
        json!(bench::stats::round(started.elapsed().as_secs_f64())),
    );
    let results = Value::Object(results);
    let table = report::table(&results);
    println!("\n{table}");
    let json_path = out_dir.join("results.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    std::fs::write(out_dir.join("results.md"), &table)?;
    println!("results: {}", json_path.display());
    println!("logs:    {}", ctx.log_dir.display());
    println!("reproduce with: {command}");
    Ok(())
}

fn step(name: &str) {
    println!("bench: running {name} ...");
}

/// A scenario's result, or its error recorded in place (the others still run).
fn outcome(r: anyhow::Result<Value>) -> Value {
    match r {
        Ok(v) => v,
        Err(e) => {
            eprintln!("bench: scenario failed: {e:#}");
            json!({"error": format!("{e:#}")})
        }
    }
}
