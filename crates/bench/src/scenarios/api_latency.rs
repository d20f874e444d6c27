//! API latency on a large installation: 100,000 services and 1,000,000
//! provisioning-log rows bulk-inserted with SQL, then fixed numbers of requests
//! per endpoint from 32 concurrent clients.

use std::time::Instant;

use futures::StreamExt as _;
use serde_json::{Value, json};

use super::{Ctx, Rng};
use crate::Stack;
use crate::api::{Api, id_of};
use crate::procs::SimProc;
use crate::stats::{Summary, round};

#[derive(Debug, Clone)]
pub struct Case {
    pub services: usize,
    pub log_rows: usize,
    pub servers: usize,
    pub requests: usize,
    pub clients: usize,
}

/// The p99 the brief asks for on the three main endpoints.
pub const TARGET_P99_MS: f64 = 25.0;

pub async fn run(ctx: &Ctx, sim: &SimProc, case: &Case) -> anyhow::Result<Value> {
    let mut stack = Stack::start(&ctx.bins, &ctx.db_name, |e| e, false, &ctx.log("api")).await?;
    let result = measure(ctx, case, sim, &mut stack).await;
    let stopped = stack.stop().await;
    let result = result?;
    stopped?;
    Ok(result)
}

async fn measure(
    ctx: &Ctx,
    case: &Case,
    sim: &SimProc,
    stack: &mut Stack,
) -> anyhow::Result<Value> {
    let api = &stack.api;
    let group = id_of(
        &api.create(
            "/api/v1/server-groups",
            &json!({"name": "bulk", "placement": "least_full"}),
        )
        .await?,
    )?;
    let mut server_ids = Vec::new();
    for n in 0..case.servers {
        let sim_n = n % sim.servers;
        let body = json!({"name": format!("bulk panel {n}"), "module": "opterius", "group_id": group,
            "max_accounts": 0, "enabled": true,
            "credentials": {"api_url": sim.server_url(sim_n), "api_token": sim.server_token(sim_n)}});
        server_ids.push(id_of(&api.create("/api/v1/servers", &body).await?)?);
    }
    let product = id_of(
        &api.create(
            "/api/v1/products",
            &json!({"name": "bulk hosting", "module": "opterius", "group_id": group,
                    "package": "Starter", "auto_setup": "on_order"}),
        )
        .await?,
    )?;
    let loading = Instant::now();
    bulk_load(&stack.pool, case, product).await?;
    let load_s = loading.elapsed().as_secs_f64();
    let (services, log_rows): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM services), (SELECT count(*) FROM provisioning_log)",
    )
    .fetch_one(&stack.pool)
    .await?;
    let (lo, hi): (i64, i64) = sqlx::query_as("SELECT min(id), max(id) FROM services")
        .fetch_one(&stack.pool)
        .await?;

    let mut rng = Rng::new(0x5eed);
    let pick_server = |rng: &mut Rng| server_ids[rng.below(server_ids.len() as u64) as usize];
    type Gen<'a> = Box<dyn FnMut(&mut Rng) -> String + 'a>;
    let mut endpoints: Vec<(&str, bool, Gen<'_>)> = vec![
        (
            "GET /api/v1/services?per_page=50",
            true,
            Box::new(|_| "/api/v1/services?per_page=50".into()),
        ),
        (
            "GET /api/v1/provisioning-log?server_id=S&status=failed&action=create",
            true,
            Box::new(|rng| {
                format!(
                    "/api/v1/provisioning-log?server_id={}&status=failed&action=create",
                    pick_server(rng)
                )
            }),
        ),
        (
            "GET /api/v1/services/{id}",
            true,
            Box::new(move |rng| {
                format!(
                    "/api/v1/services/{}",
                    lo + rng.below((hi - lo + 1) as u64) as i64
                )
            }),
        ),
        (
            "GET /api/v1/provisioning-log?per_page=50",
            false,
            Box::new(|_| "/api/v1/provisioning-log?per_page=50".into()),
        ),
        (
            "GET /api/v1/provisioning-log?service_id=X",
            false,
            Box::new(move |rng| {
                format!(
                    "/api/v1/provisioning-log?service_id={}",
                    lo + rng.below((hi - lo + 1) as u64) as i64
                )
            }),
        ),
        (
            "GET /api/v1/services?status=suspended&per_page=50",
            false,
            Box::new(|_| "/api/v1/services?status=suspended&per_page=50".into()),
        ),
    ];
    // The admin pages, when this build serves them (they need a session).
    let session = match admin_session(ctx, stack).await {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("bench: admin UI not measured: {e:#}");
            None
        }
    };
    if session.is_some() {
        endpoints.push((
            "GET /admin/services (page 1)",
            true,
            Box::new(|_| "/admin/services".into()),
        ));
        endpoints.push((
            "GET /admin/log?server_id=S&status=failed&action=create",
            true,
            Box::new(|rng| {
                format!(
                    "/admin/log?server_id={}&status=failed&action=create",
                    pick_server(rng)
                )
            }),
        ));
        endpoints.push((
            "GET /admin/orders (page 1)",
            false,
            Box::new(|_| "/admin/orders".into()),
        ));
        endpoints.push((
            "GET /admin/services/{id}",
            true,
            Box::new(move |rng| {
                format!(
                    "/admin/services/{}",
                    lo + rng.below((hi - lo + 1) as u64) as i64
                )
            }),
        ));
    }
    let bearer = format!("Bearer {}", api.token);
    // Warm up connections and caches.
    load(
        api,
        vec!["/api/v1/services?per_page=50".into(); 200],
        case.clients,
        ("authorization", &bearer),
    )
    .await;
    let mut rows = Vec::new();
    for (name, main, mut gen_url) in endpoints {
        // Secondary endpoints get a quarter of the requests: some are slow.
        let n = if main {
            case.requests
        } else {
            case.requests / 4
        };
        let urls: Vec<String> = (0..n.max(1)).map(|_| gen_url(&mut rng)).collect();
        let auth = match (&session, name.contains("/admin")) {
            (Some(cookie), true) => ("cookie", cookie.as_str()),
            _ => ("authorization", bearer.as_str()),
        };
        // One client first: the cost of a request without queueing.
        let alone: Vec<String> = urls.iter().take(100).cloned().collect();
        let (single, _) = load(api, alone, 1, auth).await;
        let started = Instant::now();
        let (lat, errors) = load(api, urls, case.clients, auth).await;
        let secs = started.elapsed().as_secs_f64();
        let s = Summary::of(&lat);
        rows.push(json!({
            "endpoint": name,
            "requests": lat.len() + errors,
            "errors": errors,
            "requests_per_s": round(lat.len() as f64 / secs.max(1e-9)),
            "latency": s.json(),
            "one_client": Summary::of(&single).json(),
            "target_p99_ms": main.then_some(TARGET_P99_MS),
            "target_met": main.then_some(s.p99 < TARGET_P99_MS && errors == 0),
        }));
    }
    let explain = explain(&stack.pool, server_ids[0]).await?;
    Ok(json!({
        "name": format!("API latency, {services} services, {log_rows} log rows, {} clients", case.clients),
        "services": services,
        "log_rows": log_rows,
        "servers": case.servers,
        "clients": case.clients,
        "bulk_load_s": round(load_s),
        "endpoints": rows,
        "admin_ui": if session.is_some() {
            "measured (signed-in session, rows above)"
        } else {
            "not measured: this build has no admin sign-in at /login"
        },
        "explain": explain,
    }))
}

/// Sends every url (GET, with the `auth` header) with `width` in flight;
/// returns latencies (ms) of the 200 answers and the number of other outcomes.
async fn load(api: &Api, urls: Vec<String>, width: usize, auth: (&str, &str)) -> (Vec<f64>, usize) {
    let results: Vec<Option<f64>> = futures::stream::iter(urls)
        .map(|u| async move {
            let t = Instant::now();
            let sent = api
                .http
                .get(format!("{}{u}", api.base))
                .header(auth.0, auth.1)
                .send()
                .await;
            match sent {
                Ok(r) if r.status().as_u16() == 200 => {
                    let _ = r.bytes().await;
                    Some(t.elapsed().as_secs_f64() * 1000.0)
                }
                _ => None,
            }
        })
        .buffer_unordered(width)
        .collect()
        .await;
    let errors = results.iter().filter(|r| r.is_none()).count();
    (results.into_iter().flatten().collect(), errors)
}

/// Clients, orders, services (one per order) and log rows, with valid keys and
/// values every CHECK constraint accepts; spread over servers, statuses and
/// actions by hashing, so filters select realistic slices.
async fn bulk_load(pool: &sqlx::PgPool, case: &Case, product: i64) -> anyhow::Result<()> {
    let n = case.services as i64;
    let m = case.log_rows as i64;
    let mut conn = pool.acquire().await?;
    sqlx::raw_sql("SET statement_timeout = 0; SET synchronous_commit = off")
        .execute(&mut *conn)
        .await?;
    let statements = [
        "INSERT INTO clients (email, name)
         SELECT format('bulk%s@bench.test', g), format('Bulk client %s', g) FROM generate_series(1, 1000) g"
            .to_owned(),
        format!(
            "INSERT INTO orders (client_id, status, paid_at, created_at, updated_at)
             SELECT c.ids[1 + g % array_length(c.ids, 1)], 'paid', t, t, t
             FROM generate_series(1, {n}) g
             CROSS JOIN (SELECT array_agg(id ORDER BY id) ids FROM clients) c
             CROSS JOIN LATERAL (SELECT now() - ({n} - g) * interval '1 minute') x(t)"
        ),
        format!(
            "INSERT INTO services (order_id, client_id, product_id, server_id, domain, username, password_sealed,
                                   status, panel_account_id, created_at, updated_at, activated_at, suspended_at)
             SELECT o.id, o.client_id, {product}, s.ids[1 + o.id % array_length(s.ids, 1)],
                    format('bulk%s.example.com', o.id), format('bulk%s', o.id), '\\x00'::bytea,
                    CASE WHEN o.id % 50 = 7 THEN 'failed' WHEN o.id % 20 = 3 THEN 'suspended' ELSE 'active' END,
                    CASE WHEN o.id % 50 = 7 THEN NULL ELSE (100000 + o.id)::text END,
                    o.created_at, o.created_at,
                    CASE WHEN o.id % 50 <> 7 THEN o.created_at + interval '3 seconds' END,
                    CASE WHEN o.id % 50 <> 7 AND o.id % 20 = 3 THEN o.created_at + interval '30 days' END
             FROM orders o CROSS JOIN (SELECT array_agg(id ORDER BY id) ids FROM servers) s"
        ),
        "UPDATE servers SET account_count = c.n FROM
           (SELECT server_id, count(*) n FROM services WHERE status <> 'failed' GROUP BY server_id) c
         WHERE c.server_id = servers.id"
            .to_owned(),
        format!(
            "INSERT INTO provisioning_log (service_id, server_id, module, action, attempt, status, http_status,
                    request, response, error, error_kind, message, duration_ms, triggered_by, job_id,
                    created_at, updated_at, finished_at)
             SELECT sv.id, sv.server_id, 'opterius', a.action, 1 + h.h3 % 3, st.status,
                    CASE st.status WHEN 'success' THEN 200 WHEN 'failed' THEN e.http END,
                    jsonb_build_object('method', 'POST', 'path', '/api/accounts',
                        'body', jsonb_build_object('username', sv.username, 'password', '[redacted]', 'package', 'Starter')),
                    CASE WHEN st.status <> 'pending' THEN jsonb_build_object('status', coalesce(e.http, 200),
                        'body', jsonb_build_object('message', 'ok'))
                    END,
                    CASE st.status WHEN 'failed' THEN jsonb_build_object('kind', e.kind, 'message', e.kind || ' from the Panel',
                        'hint', 'Check the Panel.', 'retryable', e.kind IN ('server_error', 'timeout')) END,
                    CASE st.status WHEN 'failed' THEN e.kind END,
                    CASE st.status WHEN 'failed' THEN e.kind || ' from the Panel' WHEN 'success' THEN 'done' END,
                    CASE WHEN st.status <> 'pending' THEN 20 + h.h3 % 400 END,
                    (ARRAY['order', 'system', 'admin', 'api'])[1 + h.h1 % 4],
                    'job' || g,
                    x.t, x.t, CASE WHEN st.status <> 'pending' THEN x.t + interval '1 second' END
             FROM generate_series(1, {m}) g
             CROSS JOIN (SELECT min(id) lo FROM services) b
             CROSS JOIN LATERAL (SELECT (hashint8(g) & 2147483647)::int8,
                                        (hashint8(g * 31 + 7) & 2147483647)::int8,
                                        (hashint8(g * 17 + 3) & 2147483647)::int8) h(h1, h2, h3)
             JOIN services sv ON sv.id = b.lo + h.h1 % {n}
             CROSS JOIN LATERAL (SELECT (ARRAY['create','create','create','create','create','create','create','create',
                     'suspend','suspend','suspend','unsuspend','unsuspend','terminate','info',
                     'test_connection','test_connection','test_connection','test_connection','test_connection'])[1 + h.h2 % 20]) a(action)
             CROSS JOIN LATERAL (SELECT CASE WHEN h.h3 % 100 < 85 THEN 'success'
                                             WHEN h.h3 % 100 < 99 THEN 'failed' ELSE 'pending' END) st(status)
             CROSS JOIN LATERAL (SELECT (ARRAY['server_error','timeout','unauthorized','validation'])[1 + h.h1 % 4],
                                        (ARRAY[503, NULL, 401, 422])[1 + h.h1 % 4]) e(kind, http)
             CROSS JOIN LATERAL (SELECT now() - ({m} - g) * interval '5 seconds') x(t)"
        ),
        // A long-lived table has been through autovacuum: the visibility map
        // lets counts use index-only scans, as they would in production.
        "VACUUM ANALYZE".to_owned(),
    ];
    for sql in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// EXPLAIN ANALYZE of the service's list queries, as a custom plan (literal
/// values) and as the generic plan a prepared statement switches to after
/// five runs: the where-the-time-goes evidence for the API rows.
async fn explain(pool: &sqlx::PgPool, server_id: i64) -> anyhow::Result<Value> {
    // Copies of the WHERE clauses in crates/commerce/src/app/{log,services}.rs.
    let log_cond = "($1::bigint IS NULL OR service_id = $1) AND ($2::bigint IS NULL OR server_id = $2)
        AND ($3::text IS NULL OR action = $3) AND ($4::text IS NULL OR status = $4)
        AND ($5::timestamptz IS NULL OR created_at >= $5) AND ($6::timestamptz IS NULL OR created_at < $6)";
    let svc_cond = "($1::text IS NULL OR status = $1) AND ($2::bigint IS NULL OR server_id = $2)
        AND ($3::bigint IS NULL OR product_id = $3) AND ($4::bigint IS NULL OR client_id = $4)
        AND ($5::text IS NULL OR lower(domain) LIKE $5 OR username LIKE $5) AND ($6::bigint IS NULL OR order_id = $6)";
    let queries = [
        (
            "log filtered: rows",
            format!(
                "SELECT id FROM provisioning_log WHERE {log_cond} ORDER BY id DESC LIMIT 50 OFFSET 0"
            ),
            format!("NULL, {server_id}, 'create', 'failed', NULL, NULL"),
        ),
        (
            "log filtered: count",
            format!("SELECT count(*) FROM provisioning_log WHERE {log_cond}"),
            format!("NULL, {server_id}, 'create', 'failed', NULL, NULL"),
        ),
        (
            "services page: count",
            format!("SELECT count(*) FROM services WHERE {svc_cond}"),
            "NULL, NULL, NULL, NULL, NULL, NULL".to_owned(),
        ),
        (
            "services page: rows",
            format!("SELECT id FROM services WHERE {svc_cond} ORDER BY id DESC LIMIT 50 OFFSET 0"),
            "NULL, NULL, NULL, NULL, NULL, NULL".to_owned(),
        ),
    ];
    let mut out = Vec::new();
    let mut conn = pool.acquire().await?;
    for (i, (name, sql, args)) in queries.iter().enumerate() {
        let types = if name.starts_with("log") {
            "bigint, bigint, text, text, timestamptz, timestamptz"
        } else {
            "text, bigint, bigint, bigint, text, bigint"
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "PREPARE bench_q{i}({types}) AS {sql}"
        )))
        .execute(&mut *conn)
        .await?;
        let mut plans = serde_json::Map::new();
        for mode in ["force_custom_plan", "force_generic_plan"] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET plan_cache_mode = {mode}")))
                .execute(&mut *conn)
                .await?;
            let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE bench_q{i}({args})"
            )))
            .fetch_all(&mut *conn)
            .await?;
            let lines: Vec<String> = rows.into_iter().map(|r| r.0).collect();
            plans.insert(mode.trim_start_matches("force_").into(), json!(lines));
        }
        out.push(json!({"query": name, "plans": plans}));
    }
    sqlx::raw_sql("RESET plan_cache_mode; DEALLOCATE ALL")
        .execute(&mut *conn)
        .await?;
    Ok(json!(out))
}

/// The value of cookie `name` among a response's Set-Cookie headers.
fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(k, v)| k.trim() == name && !v.is_empty())
        .map(|(_, v)| v.to_owned())
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Creates an admin and signs in through /login; returns the Cookie header.
async fn admin_session(ctx: &Ctx, stack: &Stack) -> anyhow::Result<String> {
    const EMAIL: &str = "bench@bench.test";
    const PASSWORD: &str = "bench-admin-password";
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let base = &stack.api.base;
    let form = http.get(format!("{base}/login")).send().await?;
    anyhow::ensure!(
        form.status().is_success(),
        "GET /login answered {}",
        form.status()
    );
    let csrf = set_cookie(&form, "commerce_login_csrf")
        .ok_or_else(|| anyhow::anyhow!("GET /login set no commerce_login_csrf cookie"))?;
    stack.env.run(
        &ctx.bins,
        &["admin", "create", "--email", EMAIL, "--password", PASSWORD],
    )?;
    let signed = http
        .post(format!("{base}/login"))
        .header("cookie", format!("commerce_login_csrf={csrf}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_encode(&[
            ("_csrf", &csrf),
            ("email", EMAIL),
            ("password", PASSWORD),
            ("next", "/admin"),
        ]))
        .send()
        .await?;
    let session = set_cookie(&signed, "commerce_session").ok_or_else(|| {
        anyhow::anyhow!("POST /login answered {} without a session", signed.status())
    })?;
    Ok(format!("commerce_session={session}"))
}
