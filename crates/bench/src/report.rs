//! The printed summary: one markdown table over every scenario's JSON.

use serde_json::{Value, json};

/// CPU, memory and kernel of this machine.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|x| x.1.trim())
        })
        .unwrap_or("unknown");
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    json!({
        "cpus": std::thread::available_parallelism().map_or(0, usize::from),
        "cpu_model": model,
        "mem_gib": (mem_kib as f64 / 1024.0 / 1024.0).round(),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
    })
}

fn f(v: &Value, path: &str) -> f64 {
    v.pointer(path).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

fn mib(kib: f64) -> String {
    format!("{:.0} MiB", kib / 1024.0)
}

fn met(v: Option<&Value>) -> &'static str {
    match v.and_then(Value::as_bool) {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "–",
    }
}

/// Markdown table of the results.
pub fn table(r: &Value) -> String {
    let mut rows: Vec<[String; 4]> = Vec::new();
    let tps = r.pointer("/pgbench/tps").and_then(Value::as_f64);
    if let Some(p) = r.get("pgbench") {
        rows.push(match p.get("error") {
            Some(e) => [
                "pgbench".into(),
                format!("error: {e}"),
                "–".into(),
                "–".into(),
            ],
            None => [
                p.get("command")
                    .and_then(Value::as_str)
                    .unwrap_or("pgbench")
                    .to_owned(),
                format!(
                    "{:.0} TPS (latency avg {})",
                    f(p, "/tps"),
                    p.get("latency_average")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                ),
                "reference".into(),
                "–".into(),
            ],
        });
    }
    let mut idle = Vec::new();
    let mut peak = Vec::new();
    for c in r
        .get("throughput")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = c
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("throughput")
            .to_owned();
        if let Some(e) = c.get("error") {
            rows.push([name, format!("error: {e}"), "–".into(), "–".into()]);
            continue;
        }
        let rate = f(c, "/accounts_per_s");
        let frac = tps
            .map(|t| format!("; {:.2} × pgbench TPS", rate / t))
            .unwrap_or_default();
        let note = if c.get("note").is_some_and(|n| !n.is_null()) {
            " (smaller N, see note)"
        } else {
            ""
        };
        rows.push([
            format!(
                "{name}, {} orders{note}",
                c.get("orders").unwrap_or(&Value::Null)
            ),
            format!(
                "{rate:.0} accounts/s{frac}; order→active p50 {:.0} ms, p99 {:.0} ms; {} failed",
                f(c, "/order_to_active/p50_ms"),
                f(c, "/order_to_active/p99_ms"),
                c.get("failed").unwrap_or(&Value::Null),
            ),
            c.get("target_accounts_per_s")
                .and_then(Value::as_f64)
                .map_or_else(|| "–".into(), |t| format!("≥ {t:.0}/s")),
            met(c.get("target_met")).into(),
        ]);
        idle.push(f(c, "/rss_idle_kib"));
        peak.push(f(c, "/rss_hwm_kib"));
    }
    if !idle.is_empty() {
        let max = |v: &[f64]| v.iter().copied().fold(f64::NAN, f64::max);
        rows.push([
            "footprint: `commerce serve` resident memory".into(),
            format!(
                "idle {}, peak {} (VmHWM, max over throughput runs)",
                mib(max(&idle)),
                mib(max(&peak))
            ),
            "–".into(),
            "–".into(),
        ]);
    }
    if let Some(s) = r.get("sweep") {
        let name = s
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("sweep")
            .to_owned();
        rows.push(match s.get("error") {
            Some(e) => [name, format!("error: {e}"), "–".into(), "–".into()],
            None => [
                name,
                format!(
                    "{:.1} s wall (SWEEP_TIMEOUT_SECS={}); {} ok, {} timeouts, {} other errors",
                    f(s, "/wall_s"),
                    s.get("sweep_timeout_s").unwrap_or(&Value::Null),
                    s.get("ok").unwrap_or(&Value::Null),
                    s.get("timeouts").unwrap_or(&Value::Null),
                    s.get("other_errors").unwrap_or(&Value::Null),
                ),
                format!("≤ {:.0} s", f(s, "/target_wall_s")),
                met(s.get("target_met")).into(),
            ],
        });
        if let Some(c) = s.get("scheduled_sweep") {
            rows.push([
                format!(
                    "scheduled health sweep, {} servers",
                    c.get("servers").unwrap_or(&Value::Null)
                ),
                format!(
                    "per sweep: {:.0} ms CPU of serve, {:.0} ms database time (pg_stat_database.active_time), {:.0} ms backend CPU, {} transactions; {:.1} s wall",
                    f(c, "/serve_cpu_ms"),
                    f(c, "/db_active_ms"),
                    f(c, "/db_backend_cpu_ms"),
                    c.get("db_transactions").unwrap_or(&Value::Null),
                    f(c, "/wall_s"),
                ),
                "reported".into(),
                "–".into(),
            ]);
        }
    }
    if let Some(a) = r.get("api") {
        if let Some(e) = a.get("error") {
            rows.push([
                "API latency".into(),
                format!("error: {e}"),
                "–".into(),
                "–".into(),
            ]);
        }
        for e in a
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            rows.push([
                format!(
                    "{} ({} services, {} log rows, {} clients)",
                    e.get("endpoint").and_then(Value::as_str).unwrap_or("?"),
                    a.get("services").unwrap_or(&Value::Null),
                    a.get("log_rows").unwrap_or(&Value::Null),
                    a.get("clients").unwrap_or(&Value::Null),
                ),
                format!(
                    "p50 {:.1} ms, p99 {:.1} ms, {:.0} req/s, {} errors (one client alone: p50 {:.1} ms)",
                    f(e, "/latency/p50_ms"),
                    f(e, "/latency/p99_ms"),
                    f(e, "/requests_per_s"),
                    e.get("errors").unwrap_or(&Value::Null),
                    f(e, "/one_client/p50_ms"),
                ),
                e.get("target_p99_ms")
                    .and_then(Value::as_f64)
                    .map_or_else(|| "–".into(), |t| format!("p99 < {t:.0} ms")),
                met(e.get("target_met")).into(),
            ]);
        }
        if let Some(ui) = a.get("admin_ui").and_then(Value::as_str) {
            rows.push([
                "admin UI pages".into(),
                ui.into(),
                "p99 < 25 ms".into(),
                "–".into(),
            ]);
        }
    }
    let mut out = String::from("| scenario | result | target | met |\n|---|---|---|---|\n");
    for [a, b, c, d] in rows {
        out.push_str(&format!("| {a} | {b} | {c} | {d} |\n"));
    }
    out
}
