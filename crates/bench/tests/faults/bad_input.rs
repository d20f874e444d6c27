//! Hostile input on every endpoint: malformed JSON, wrong types, unknown
//! fields, oversized bodies, SQL- and HTML-like strings, control characters,
//! absurd numbers, bad paths and query strings. Never a 5xx; a rejection is a
//! 4xx with a JSON `error` (and `fields` for field-level problems) and leaves
//! every table exactly as it was.

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use super::support::{Rig, serial};

/// What a probe must get back.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Any 4xx.
    Reject,
    /// 422 with at least one field message.
    Fields,
    /// This exact status.
    Status(u16),
    /// Accepted or rejected, but never a 5xx (and stored verbatim if accepted).
    NoServerError,
}

struct Probe {
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Option<Vec<u8>>,
    label: String,
    expect: Expect,
}

const SQL_LIKE: &[&str] = &[
    "x'; DROP TABLE services; --",
    "' OR '1'='1",
    "1); SELECT pg_sleep(3); --",
    "\\'; TRUNCATE provisioning_log; --",
];
const HTML_LIKE: &[&str] = &[
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(document.cookie)>",
    "{{7*7}} ${7*7} <%= 7*7 %>",
];
const CONTROL: &[&str] = &[
    "nul\u{0}byte",
    "bell\u{7}",
    "line\nbreak\r\n",
    "\u{202e}rtl\u{200b}",
];

/// A fingerprint of every table a request could write: rejected requests must
/// leave it unchanged.
async fn fingerprint(pool: &sqlx::PgPool) -> String {
    let mut parts = Vec::new();
    for table in [
        "server_groups",
        "servers",
        "products",
        "clients",
        "orders",
        "services",
        "provisioning_log",
    ] {
        let h: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t.id)), '') FROM {table} t"
        )))
        .fetch_one(pool)
        .await
        .expect("fingerprint");
        parts.push(format!("{table}={}", h.unwrap_or_default()));
    }
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM apalis.jobs")
        .fetch_one(pool)
        .await
        .expect("jobs");
    let tokens: i64 = sqlx::query_scalar("SELECT count(*) FROM api_tokens")
        .fetch_one(pool)
        .await
        .expect("tokens");
    parts.push(format!("jobs={jobs} tokens={tokens}"));
    parts.join(" ")
}

/// Replaces the value at `path` (e.g. ["credentials", "api_url"]) in `body`.
fn with(body: &Value, path: &[&str], value: Value) -> Value {
    let mut b = body.clone();
    let mut cur = &mut b;
    for (i, key) in path.iter().enumerate() {
        if i == path.len() - 1 {
            cur[*key] = value;
            break;
        }
        cur = &mut cur[*key];
    }
    b
}

/// Every (path, value) leaf of an object, nested objects included.
fn leaves(v: &Value, prefix: &[String], out: &mut Vec<(Vec<String>, Value)>) {
    if let Value::Object(map) = v {
        for (k, x) in map {
            let mut p = prefix.to_vec();
            p.push(k.clone());
            if x.is_object() {
                leaves(x, &p, out);
            }
            out.push((p, x.clone()));
        }
    }
}

fn wrong_type(v: &Value) -> Value {
    match v {
        Value::String(_) => json!(12345),
        Value::Number(_) => json!("twelve"),
        Value::Bool(_) => json!("yes"),
        Value::Object(_) => json!("not an object"),
        Value::Array(_) => json!({"not": "a list"}),
        Value::Null => json!({"x": 1}),
    }
}

/// The probes for one endpoint that takes a JSON body; `valid` must be a
/// body the endpoint accepts, `unique` makes names distinct.
fn body_probes(method: Method, path: &str, valid: &Value, unique: &mut u32) -> Vec<Probe> {
    let mut out = Vec::new();
    let mut add = |label: String, ct: Option<&'static str>, body: Vec<u8>, expect| {
        out.push(Probe {
            method: method.clone(),
            path: path.to_owned(),
            content_type: ct,
            body: Some(body),
            label,
            expect,
        })
    };
    const JSON: Option<&str> = Some("application/json");
    let raw = |s: &str| s.as_bytes().to_vec();
    add(
        "malformed JSON".into(),
        JSON,
        raw("{\""),
        Expect::Status(400),
    );
    add(
        "truncated JSON".into(),
        JSON,
        raw("{\"name\": "),
        Expect::Reject,
    );
    add(
        "trailing garbage".into(),
        JSON,
        raw("{\"name\": \"x\"} xyz"),
        Expect::Reject,
    );
    add("empty body".into(), JSON, Vec::new(), Expect::Reject);
    add(
        "invalid UTF-8".into(),
        JSON,
        b"{\"name\": \"\xff\xfe\"}".to_vec(),
        Expect::Reject,
    );
    add(
        "deep nesting".into(),
        JSON,
        "[".repeat(100_000).into_bytes(),
        Expect::Reject,
    );
    for top in ["[]", "null", "\"text\"", "42", "true"] {
        add(format!("body {top}"), JSON, raw(top), Expect::Reject);
    }
    let valid_bytes = serde_json::to_vec(valid).expect("json");
    add(
        "text/plain".into(),
        Some("text/plain"),
        valid_bytes.clone(),
        Expect::Reject,
    );
    add(
        "form content type".into(),
        Some("application/x-www-form-urlencoded"),
        raw("name=x"),
        Expect::Reject,
    );
    add("no content type".into(), None, valid_bytes, Expect::Reject);
    let pad = "x".repeat(300 * 1024);
    add(
        "oversized (300 KiB)".into(),
        JSON,
        serde_json::to_vec(&with(valid, &["pad"], json!(pad))).expect("json"),
        Expect::Status(413),
    );
    add(
        "unknown field".into(),
        JSON,
        serde_json::to_vec(&with(valid, &["bogus_field"], json!(1))).expect("json"),
        Expect::Fields,
    );
    let mut fields = Vec::new();
    leaves(valid, &[], &mut fields);
    for (p, v) in fields {
        let p: Vec<&str> = p.iter().map(String::as_str).collect();
        let name = p.join(".");
        add(
            format!("{name}: wrong type"),
            JSON,
            serde_json::to_vec(&with(valid, &p, wrong_type(&v))).expect("json"),
            Expect::Fields,
        );
        if v.is_string() {
            let mut strings: Vec<String> = SQL_LIKE
                .iter()
                .chain(HTML_LIKE)
                .chain(CONTROL)
                .map(|s| {
                    *unique += 1;
                    format!("{s} {unique}")
                })
                .collect();
            // Shaped like an email or a token (no spaces), so field parsers
            // that only check the shape let them through to the database.
            for shaped in [
                "nul\u{0}{u}@x.test",
                "'--{u}@x.test",
                "<i>{u}</i>@x.test",
                "tab\t{u}",
            ] {
                *unique += 1;
                strings.push(shaped.replace("{u}", &unique.to_string()));
            }
            strings.push("é".repeat(50_000));
            for s in strings {
                let short: String = s.chars().take(24).collect();
                add(
                    format!("{name}: {short:?}"),
                    JSON,
                    serde_json::to_vec(&with(valid, &p, json!(s))).expect("json"),
                    Expect::NoServerError,
                );
            }
        }
        if v.is_number() {
            for n in [
                "-1",
                "1.5",
                "1e400",
                "99999999999999999999",
                "-9223372036854775809",
            ] {
                let text = serde_json::to_string(&with(valid, &p, json!("__NUM__")))
                    .expect("json")
                    .replace("\"__NUM__\"", n);
                add(
                    format!("{name}: {n}"),
                    JSON,
                    text.into_bytes(),
                    Expect::NoServerError,
                );
            }
        }
    }
    out
}

fn get(path: &str, expect: Expect) -> Probe {
    Probe {
        method: Method::GET,
        path: path.to_owned(),
        content_type: None,
        body: None,
        label: "path/query".into(),
        expect,
    }
}

/// Sends a body in chunks (no Content-Length) over a raw socket; returns the
/// status line's code.
fn chunked_post(base: &str, path: &str, token: &str, total: usize) -> std::io::Result<u16> {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes())?;
    let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, "x".repeat(16 * 1024));
    let mut sent = 0;
    // The server may answer and close early: stop writing then.
    let _ = s.write_all(b"5\r\n{\"a\":\r\n");
    while sent < total {
        if s.write_all(chunk.as_bytes()).is_err() {
            break;
        }
        sent += 16 * 1024;
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    Ok(text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_a_clear_4xx_and_stores_nothing() {
    let _serial = serial().await;
    let rig = Rig::start("bad-input", true, |e| e).await;
    let (group, product) = (rig.catalog().group_id, rig.catalog().product_id);
    let server = rig.catalog().server_ids[0];
    let client = rig.client_ids()[0];
    let api_url = rig.sim().server_url(0);
    let mut u = 0u32;
    let mut probes = Vec::new();
    let bodies: Vec<(Method, String, Value)> = vec![
        (
            Method::POST,
            "/api/v1/server-groups".into(),
            json!({"name": "G", "placement": "fill"}),
        ),
        (
            Method::POST,
            "/api/v1/servers".into(),
            json!({"name": "S", "module": "opterius", "group_id": group, "max_accounts": 0, "enabled": true,
                   "credentials": {"api_url": api_url, "api_token": "tok"}}),
        ),
        (
            Method::POST,
            "/api/v1/servers/test".into(),
            json!({"module": "opterius", "credentials": {"api_url": api_url, "api_token": "tok"}}),
        ),
        (
            Method::PATCH,
            format!("/api/v1/servers/{server}"),
            json!({"name": "S2", "max_accounts": 5, "enabled": true}),
        ),
        (
            Method::POST,
            "/api/v1/products".into(),
            json!({"name": "P", "module": "opterius", "group_id": group, "package": "Starter",
                   "disk_limit_mb": 1, "bandwidth_limit_mb": 1, "auto_setup": "manual"}),
        ),
        (
            Method::PUT,
            format!("/api/v1/products/{product}"),
            json!({"name": "P2", "module": "opterius", "group_id": group, "package": "Starter",
                   "disk_limit_mb": 1, "bandwidth_limit_mb": 1, "auto_setup": "on_order"}),
        ),
        (
            Method::POST,
            "/api/v1/clients".into(),
            json!({"email": "c@x.test", "name": "C"}),
        ),
        (
            Method::POST,
            "/api/v1/orders".into(),
            json!({"client_id": client, "product_id": product, "domain": "d.example.com"}),
        ),
        (
            Method::POST,
            "/api/v1/orders".into(),
            json!({"client": {"email": "new@x.test", "name": "New"}, "product_id": product,
                   "domain": "e.example.com"}),
        ),
    ];
    for (m, p, valid) in &bodies {
        probes.extend(body_probes(m.clone(), p, valid, &mut u));
    }
    // Endpoints without a body, fed one anyway, and bad ids.
    for (m, p, expect) in [
        (
            Method::POST,
            "/api/v1/servers/sweep".to_owned(),
            Expect::NoServerError,
        ),
        (
            Method::POST,
            format!("/api/v1/servers/{server}/test"),
            Expect::NoServerError,
        ),
        (
            Method::POST,
            "/api/v1/orders/999999/pay".into(),
            // Pay takes no body, and a body it gets is refused (422 naming
            // the field) before the order is looked up: a 422 or a 404.
            Expect::Reject,
        ),
        (
            Method::POST,
            "/api/v1/services/999999/suspend".into(),
            // Suspend parses its body ({reason, note}, unknown fields refused)
            // before it looks the service up: a 422 or a 404, never a 5xx.
            Expect::Reject,
        ),
        (
            Method::POST,
            "/api/v1/services/1/explode".into(),
            Expect::Status(404),
        ),
        (
            Method::POST,
            "/api/v1/services/abc/suspend".into(),
            Expect::Status(404),
        ),
        (
            Method::DELETE,
            "/api/v1/servers/abc".into(),
            Expect::Status(404),
        ),
        (
            Method::DELETE,
            "/api/v1/servers/999999".into(),
            Expect::Status(404),
        ),
    ] {
        probes.push(Probe {
            method: m,
            path: p,
            content_type: Some("application/json"),
            body: Some(b"{\"name\": <script>".to_vec()),
            label: "junk body".into(),
            expect,
        });
    }
    let long_q = "a".repeat(10_000);
    for (p, e) in [
        ("/api/v1/services/abc", Expect::Status(404)),
        ("/api/v1/services/0", Expect::Status(404)),
        ("/api/v1/services/-1", Expect::Status(404)),
        ("/api/v1/services/99999999999999999999", Expect::Status(404)),
        ("/api/v1/services/1'%20OR%201=1", Expect::Status(404)),
        ("/api/v1/services/%3Cscript%3E", Expect::Status(404)),
        ("/api/v1/servers/abc", Expect::Status(404)),
        ("/api/v1/products/1e3", Expect::Status(404)),
        ("/api/v1/clients/%00", Expect::Status(404)),
        ("/api/v1/orders/0x10", Expect::Status(404)),
        ("/api/v1/provisioning-log/abc", Expect::Status(404)),
        ("/api/v1/services?page=abc", Expect::Reject),
        ("/api/v1/services?per_page=abc", Expect::Reject),
        ("/api/v1/services?per_page=-5", Expect::NoServerError),
        ("/api/v1/services?page=-1", Expect::NoServerError),
        (
            "/api/v1/services?page=9223372036854775807",
            Expect::NoServerError,
        ),
        ("/api/v1/services?status=%3Cscript%3E", Expect::Reject),
        ("/api/v1/services?status=active'--", Expect::Reject),
        ("/api/v1/services?server_id=1%20OR%201=1", Expect::Reject),
        (
            "/api/v1/services?server_id=99999999999999999999",
            Expect::Reject,
        ),
        ("/api/v1/services?client_id=abc", Expect::Reject),
        ("/api/v1/services?q=%00", Expect::NoServerError),
        (
            "/api/v1/services?q=%27%20OR%201%3D1%20--",
            Expect::NoServerError,
        ),
        ("/api/v1/services?q=%25%5C", Expect::NoServerError),
        ("/api/v1/services?q=%3Cscript%3E", Expect::NoServerError),
        ("/api/v1/provisioning-log?since=yesterday", Expect::Reject),
        (
            "/api/v1/provisioning-log?until=2026-13-45T00:00:00Z",
            Expect::Reject,
        ),
        (
            "/api/v1/provisioning-log?since=99999-01-01T00:00:00Z",
            Expect::NoServerError,
        ),
        ("/api/v1/provisioning-log?action=drop", Expect::Reject),
        ("/api/v1/provisioning-log?status=%00", Expect::Reject),
        ("/api/v1/provisioning-log?service_id=abc", Expect::Reject),
        ("/api/v1/servers?page=abc", Expect::Reject),
        ("/api/v1/clients?per_page=zz", Expect::Reject),
        ("/api/v1/orders?page=%00", Expect::Reject),
        ("/api/v1/nothing-here", Expect::Status(404)),
    ] {
        probes.push(get(p, e));
    }
    probes.push(get(
        &format!("/api/v1/services?q={long_q}"),
        Expect::NoServerError,
    ));

    let http = bench::api::http_client(Duration::from_secs(30)).expect("http");
    let api = rig.api();
    let mut violations = Vec::new();
    let mut accepted = 0;
    let started = Instant::now();
    for probe in &probes {
        let before = fingerprint(rig.pool()).await;
        let mut req = http
            .request(probe.method.clone(), format!("{}{}", api.base, probe.path))
            .bearer_auth(&api.token);
        if let Some(ct) = probe.content_type {
            req = req.header("Content-Type", ct);
        }
        if let Some(b) = &probe.body {
            req = req.body(b.clone());
        }
        let t = Instant::now();
        let what = format!("{} {} [{}]", probe.method, probe.path, probe.label);
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                violations.push(format!("{what}: no answer: {e}"));
                continue;
            }
        };
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let took = t.elapsed();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let after = fingerprint(rig.pool()).await;
        let short: String = text.chars().take(200).collect();
        if status >= 500 {
            violations.push(format!("{what}: {status} {short}"));
            continue;
        }
        if took > Duration::from_secs(3) {
            violations.push(format!("{what}: took {took:?} (was SQL executed?)"));
        }
        if status < 400 {
            accepted += 1;
            if matches!(probe.expect, Expect::Reject | Expect::Fields)
                || matches!(probe.expect, Expect::Status(s) if s != status)
            {
                violations.push(format!(
                    "{what}: accepted with {status}, expected {:?}",
                    probe.expect
                ));
            }
            continue;
        }
        let error_ok = body
            .get("error")
            .and_then(Value::as_str)
            .is_some_and(|e| !e.trim().is_empty());
        if !error_ok {
            violations.push(format!(
                "{what}: {status} without a JSON {{\"error\": ...}} body: {short:?}"
            ));
        }
        match probe.expect {
            Expect::Status(s) if s != status => {
                violations.push(format!("{what}: {status}, expected {s}: {short}"));
            }
            Expect::Fields
                if status != 422
                    || body
                        .get("fields")
                        .and_then(Value::as_object)
                        .is_none_or(|f| f.is_empty()) =>
            {
                violations.push(format!("{what}: {status} without field messages: {short}"));
            }
            _ => {}
        }
        if before != after {
            violations.push(format!(
                "{what}: rejected with {status} but the database changed"
            ));
        }
    }
    // A body streamed without Content-Length must hit the same limit.
    let base = api.base.clone();
    let token = api.token.clone();
    let chunked = tokio::task::spawn_blocking(move || {
        chunked_post(&base, "/api/v1/clients", &token, 400 * 1024)
    })
    .await
    .expect("join");
    match chunked {
        Ok(413) => {}
        Ok(other) => violations.push(format!(
            "POST /api/v1/clients [chunked 400 KiB]: {other}, expected 413"
        )),
        Err(e) => violations.push(format!("POST /api/v1/clients [chunked 400 KiB]: {e}")),
    }
    // The tables are all still there.
    for table in ["services", "provisioning_log", "clients"] {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(table)
            .fetch_one(rig.pool())
            .await
            .expect("regclass");
        if !exists {
            violations.push(format!("table {table} is gone"));
        }
    }
    eprintln!(
        "{} probes ({accepted} accepted) in {:.1} s",
        probes.len() + 1,
        started.elapsed().as_secs_f64()
    );
    rig.finish().await;
    assert!(
        violations.is_empty(),
        "{} of {} probes misbehaved:\n{}",
        violations.len(),
        probes.len() + 1,
        violations.join("\n")
    );
}
