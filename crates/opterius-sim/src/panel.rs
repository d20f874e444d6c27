//! The fake Panel REST API (HMAC-signed): signature check, then the six endpoints.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::conn::Kill;
use crate::state::{Account, Faults, RecordedRequest, Server, State};

/// What one request resolved to, before faults that act after the action.
pub(crate) enum Reply {
    Json(StatusCode, Value),
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Reply {
    Reply::Json(status, json!({ "message": message.into() }))
}

/// Which endpoint a path names; `None` for anything else.
fn route(method: &Method, rest: &str) -> Option<(&'static str, Option<String>)> {
    let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segs.as_slice()) {
        ("GET", ["api", "server", "stats"]) => Some(("stats", None)),
        ("POST", ["api", "accounts"]) => Some(("create", None)),
        ("POST", ["api", "accounts", id, "suspend"]) => Some(("suspend", Some((*id).to_owned()))),
        ("POST", ["api", "accounts", id, "unsuspend"]) => {
            Some(("unsuspend", Some((*id).to_owned())))
        }
        ("DELETE", ["api", "accounts", id]) => Some(("terminate", Some((*id).to_owned()))),
        ("GET", ["api", "accounts", id]) => Some(("info", Some((*id).to_owned()))),
        _ => None,
    }
}

/// Splits `/s/{n}/api/...` into (n, `/api/...`); the root path is server 0.
fn server_of(path: &str) -> Option<(usize, &str)> {
    match path.strip_prefix("/s/") {
        Some(rest) => {
            let (n, tail) = rest.split_once('/').unwrap_or((rest, ""));
            Some((
                n.parse().ok()?,
                path.get(path.len() - tail.len() - 1..).unwrap_or("/"),
            ))
        }
        None => Some((0, path)),
    }
}

pub(crate) async fn handle(
    state: Arc<State>,
    kill: Kill,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started_at = chrono::Utc::now();
    let Some((n, rest)) = server_of(&path) else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "Not Found"})),
        )
            .into_response();
    };
    let target = format!("panel-{n}");
    let record = |status: Option<u16>, outcome: &str| {
        state.record(RecordedRequest {
            target: target.clone(),
            method: method.to_string(),
            path: path.clone(),
            status,
            outcome: outcome.to_owned(),
            at: chrono::Utc::now(),
            started_at,
        })
    };
    let Some((action, id)) = route(&method, rest) else {
        record(Some(404), "no_route");
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "Not Found"})),
        )
            .into_response();
    };
    let fault = {
        let Some(mut server) = state.server(n) else {
            record(Some(404), "no_server");
            return (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"message": format!("no simulated server {n}")})),
            )
                .into_response();
        };
        State::take_fault(&mut server, action)
    };
    let anonymous_409 = fault.conflict_without_id;
    if let Some(reply) = leak_or_redirect(&fault, &body) {
        record(Some(reply.status().as_u16()), "forced_status");
        return reply;
    }
    let version = state.config.version.clone();
    let window = state.config.window_secs;
    let act = || {
        let now = chrono::Utc::now().timestamp();
        let Some(mut server) = state.server(n) else {
            return error(StatusCode::NOT_FOUND, format!("no simulated server {n}"));
        };
        let ts = headers.get("X-Timestamp").and_then(|v| v.to_str().ok());
        let sig = headers.get("X-Signature").and_then(|v| v.to_str().ok());
        // The simulator's own check, not the client's: see `verify`.
        match crate::verify::panel(&server.token, ts, sig, &body, now, window) {
            Err(e) => error(StatusCode::UNAUTHORIZED, format!("Unauthorized: {e}")),
            Ok(()) => act(
                &mut server,
                &version,
                action,
                id.as_deref(),
                &body,
                anonymous_409,
            ),
        }
    };
    respond(&kill, fault, &record, act).await
}

/// Applies `fault` around `act`: latency, then the faults that strike before the
/// Panel acts (hang, dropped connection, forced status, random 503), then the
/// action, then those that strike after it (lost reply, malformed JSON).
pub(crate) async fn respond(
    kill: &Kill,
    fault: Faults,
    record: &impl Fn(Option<u16>, &str),
    act: impl FnOnce() -> Reply,
) -> Response {
    if fault.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(fault.latency_ms)).await;
    }
    if fault.hang || (fault.hang_rate > 0.0 && rand::random::<f64>() < fault.hang_rate) {
        record(None, "hung");
        return kill.hang().await;
    }
    if fault.drop_connection {
        record(None, "dropped");
        return kill.drop_now().await;
    }
    if let Some(status) = fault.status {
        record(Some(status), "forced_status");
        return forced(status);
    }
    if fault.error_rate > 0.0 && rand::random::<f64>() < fault.error_rate {
        record(Some(503), "random_503");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"message": "Service Unavailable"})),
        )
            .into_response();
    }
    let Reply::Json(status, mut value) = act();
    if let Some(after) = fault.status_after_act.filter(|_| status.is_success()) {
        record(Some(after), "committed_then_failed");
        return forced(after);
    }
    if status.is_success()
        && fault.after_act_error_rate > 0.0
        && rand::random::<f64>() < fault.after_act_error_rate
    {
        record(Some(503), "committed_then_503");
        return forced(503);
    }
    if fault.secret_fields {
        add_secret_fields(&mut value);
    }
    if status.is_success() && fault.lose_reply {
        record(Some(status.as_u16()), "lost_reply");
        return kill.drop_now().await;
    }
    if status.is_success() && fault.cut_body {
        record(Some(status.as_u16()), "cut_body");
        return cut_body(kill, status, &value);
    }
    if status.is_success() && fault.malformed_json {
        record(Some(200), "malformed_json");
        let text = value.to_string();
        let cut = text.get(..text.len() / 2).unwrap_or("{").to_owned();
        return (StatusCode::OK, [("content-type", "application/json")], cut).into_response();
    }
    let outcome = if status == StatusCode::UNAUTHORIZED {
        "unauthorized"
    } else {
        "answered"
    };
    record(Some(status.as_u16()), outcome);
    (status, axum::Json(value)).into_response()
}

/// Sends the status, the headers (with the full Content-Length) and the first
/// half of the body, then drops the connection.
fn cut_body(kill: &Kill, status: StatusCode, value: &Value) -> Response {
    let text = value.to_string().into_bytes();
    let half = Bytes::copy_from_slice(text.get(..text.len() / 2).unwrap_or_default());
    let kill = kill.clone();
    let chunks = futures::stream::unfold(Some(half), move |next| {
        let kill = kill.clone();
        async move {
            match next {
                Some(chunk) => Some((Ok::<_, std::io::Error>(chunk), None)),
                None => {
                    // Let the first half reach the client, then cut.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let _never = kill.drop_now().await;
                    None
                }
            }
        }
    });
    let mut response = axum::body::Body::from_stream(chunks).into_response();
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        axum::http::header::CONTENT_LENGTH,
        axum::http::HeaderValue::from(text.len()),
    );
    response
}

/// The keys a client must never log the values of.
pub(crate) const SECRET_KEYS: [&str; 6] = [
    "password",
    "api_token",
    "token",
    "secret",
    "secret_key",
    "signature",
];

/// Adds every secret key, top level and under `credentials`, to a JSON object.
fn add_secret_fields(value: &mut Value) {
    if let Value::Object(map) = value {
        let fields: serde_json::Map<String, Value> = SECRET_KEYS
            .iter()
            .map(|k| ((*k).to_owned(), json!(format!("sim-leak-{k}"))))
            .collect();
        map.extend(fields.clone());
        map.insert("credentials".into(), Value::Object(fields));
    }
}

/// The `echo` and `redirect` faults: answers that never reach the account logic.
fn leak_or_redirect(fault: &Faults, body: &[u8]) -> Option<Response> {
    if let Some(status) = fault.redirect {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND);
        let location = fault.location.clone().unwrap_or_else(|| "/".into());
        return Some((code, [("location", location)], "").into_response());
    }
    let status = fault.echo?;
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let text = String::from_utf8_lossy(body).into_owned();
    let echoed: Value = serde_json::from_slice(body).unwrap_or(Value::String(text.clone()));
    Some(if code.is_success() {
        (
            code,
            axum::Json(json!({ "status": "queued", "request": echoed })),
        )
            .into_response()
    } else if code.is_client_error() {
        let message = format!("The given data was invalid: {text}");
        (
            code,
            axum::Json(json!({ "message": message, "errors": {"request": [text]} })),
        )
            .into_response()
    } else {
        (
            code,
            [("content-type", "text/plain")],
            format!("Internal error while handling {text}"),
        )
            .into_response()
    })
}

fn forced(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = match status {
        401 => "Invalid signature.",
        403 => "Access denied: this IP address is not in the allowlist.",
        422 => "The given data was invalid.",
        504 => "Gateway Timeout",
        _ => code.canonical_reason().unwrap_or("Error"),
    };
    (code, axum::Json(json!({ "message": message }))).into_response()
}

fn account_json(a: &Account) -> Value {
    json!({
        "id": a.id,
        "username": a.username,
        "domain": a.domain,
        "package": a.package,
        "email": a.email,
        "disk_limit_mb": a.disk_limit_mb,
        "bandwidth_limit_mb": a.bandwidth_limit_mb,
        "status": if a.suspended { "suspended" } else { "active" },
    })
}

fn act(
    server: &mut Server,
    version: &str,
    action: &str,
    id: Option<&str>,
    body: &[u8],
    anonymous_409: bool,
) -> Reply {
    if action == "stats" {
        return Reply::Json(
            StatusCode::OK,
            json!({
                "name": server.name,
                "hostname": format!("{}.sim.test", server.name),
                "version": version,
                "accounts": server.accounts.len(),
                "suspended": server.accounts.values().filter(|a| a.suspended).count(),
                "packages": server.packages,
                "load": [0.12, 0.08, 0.05],
            }),
        );
    }
    if action == "create" {
        return create(server, body, anonymous_409);
    }
    let Some(account_id) = id.and_then(|i| i.parse::<u64>().ok()) else {
        return error(StatusCode::NOT_FOUND, "Account not found.");
    };
    let Some(account) = server.accounts.get_mut(&account_id) else {
        return error(StatusCode::NOT_FOUND, "Account not found.");
    };
    match action {
        "suspend" => {
            account.suspended = true;
            Reply::Json(
                StatusCode::OK,
                json!({"message": "Account suspended.", "data": account_json(account)}),
            )
        }
        "unsuspend" => {
            account.suspended = false;
            Reply::Json(
                StatusCode::OK,
                json!({"message": "Account unsuspended.", "data": account_json(account)}),
            )
        }
        "info" => Reply::Json(StatusCode::OK, json!({"data": account_json(account)})),
        _ => {
            if let Some(gone) = server.accounts.remove(&account_id) {
                server.passwords.remove(&gone.username);
            }
            Reply::Json(StatusCode::OK, json!({"message": "Account deleted."}))
        }
    }
}

fn create(server: &mut Server, body: &[u8], anonymous_409: bool) -> Reply {
    let Ok(Value::Object(input)) = serde_json::from_slice::<Value>(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "The request body must be a JSON object.",
        );
    };
    let mut errors = serde_json::Map::new();
    let text = |k: &str, errors: &mut serde_json::Map<String, Value>| match input.get(k) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            errors.insert(k.into(), json!([format!("The {k} field is required.")]));
            String::new()
        }
    };
    let limit = |k: &str, errors: &mut serde_json::Map<String, Value>| match input
        .get(k)
        .and_then(Value::as_i64)
    {
        Some(v) if v >= 0 => v,
        _ => {
            errors.insert(
                k.into(),
                json!([format!("The {k} field must be a non-negative integer.")]),
            );
            0
        }
    };
    let username = text("username", &mut errors);
    let password = text("password", &mut errors);
    let domain = text("domain", &mut errors);
    let package = text("package", &mut errors);
    let email = text("email", &mut errors);
    let disk_limit_mb = limit("disk_limit_mb", &mut errors);
    let bandwidth_limit_mb = limit("bandwidth_limit_mb", &mut errors);
    if !package.is_empty() && !server.packages.contains(&package) {
        errors.insert(
            "package".into(),
            json!([format!(
                "Package '{package}' does not exist. Available packages: {}.",
                server.packages.join(", ")
            )]),
        );
    }
    if !password.is_empty() && password.len() < 8 {
        errors.insert(
            "password".into(),
            json!(["The password must be at least 8 characters."]),
        );
    }
    if !errors.is_empty() {
        return Reply::Json(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": "The given data was invalid.", "errors": errors}),
        );
    }
    if let Some(existing) = server.find_username(&username) {
        let message = format!("An account with username '{username}' already exists.");
        if anonymous_409 {
            return Reply::Json(StatusCode::CONFLICT, json!({ "message": message }));
        }
        // Like the Panel, the 409 names the account that holds the username, so a
        // client whose earlier reply was lost can recognise its own account.
        return Reply::Json(
            StatusCode::CONFLICT,
            json!({"message": message, "account_id": existing.id}),
        );
    }
    let id = server.next_id;
    server.next_id += 1;
    let account = Account {
        id,
        username: username.clone(),
        domain,
        package,
        email,
        disk_limit_mb,
        bandwidth_limit_mb,
        suspended: false,
    };
    let json = account_json(&account);
    server.accounts.insert(id, account);
    server.passwords.insert(username.clone(), password);
    *server.creates.entry(username).or_insert(0) += 1;
    Reply::Json(StatusCode::CREATED, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_prefix_is_split_from_the_endpoint_path() {
        assert_eq!(
            server_of("/api/server/stats"),
            Some((0, "/api/server/stats"))
        );
        assert_eq!(
            server_of("/s/12/api/accounts/5"),
            Some((12, "/api/accounts/5"))
        );
        assert_eq!(server_of("/s/x/api"), None);
    }

    #[test]
    fn routes_cover_the_six_endpoints() {
        assert_eq!(
            route(&Method::GET, "/api/server/stats").map(|r| r.0),
            Some("stats")
        );
        assert_eq!(
            route(&Method::POST, "/api/accounts").map(|r| r.0),
            Some("create")
        );
        assert_eq!(
            route(&Method::POST, "/api/accounts/7/suspend"),
            Some(("suspend", Some("7".into())))
        );
        assert_eq!(
            route(&Method::POST, "/api/accounts/7/unsuspend").map(|r| r.0),
            Some("unsuspend")
        );
        assert_eq!(
            route(&Method::DELETE, "/api/accounts/7").map(|r| r.0),
            Some("terminate")
        );
        assert_eq!(
            route(&Method::GET, "/api/accounts/7").map(|r| r.0),
            Some("info")
        );
        assert_eq!(route(&Method::PUT, "/api/accounts/7"), None);
    }
}
