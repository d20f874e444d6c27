//! The fake Panel's shipped provisioning API (`/api/v1`, Panel v2.8+): Laravel's
//! order (route, then key, then scope, then validation), Bearer keys, accounts
//! named by username or domain, `{result, message, data}` answers, and the v1
//! faults (expired key, IP denied, missing scope, warning, 429 Retry-After,
//! no servers, license limit) on top of the shared ones.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::conn::Kill;
use crate::panel::{Reply, respond};
use crate::state::{Account, Faults, RecordedRequest, Server, State};

/// The Panel's own server ids a create may name in `server_id`.
const PANEL_SERVER_IDS: &[i64] = &[1, 2];

/// Whether `path` (with an optional `/s/{n}` prefix) is a v1 call.
pub(crate) fn is_v1(path: &str) -> bool {
    split(path).is_some_and(|(_, rest)| rest == "/api/v1" || rest.starts_with("/api/v1/"))
}

/// Splits `/s/{n}/api/v1/...` into (n, `/api/v1/...`); the root path is server 0.
fn split(path: &str) -> Option<(usize, &str)> {
    match path.strip_prefix("/s/") {
        Some(rest) => {
            let (n, tail) = rest.split_once('/')?;
            Some((n.parse().ok()?, path.get(path.len() - tail.len() - 1..)?))
        }
        None => Some((0, path)),
    }
}

/// The endpoints: action name, and the scope it needs.
fn route(method: &Method, rest: &str) -> Result<(&'static str, Option<&'static str>), StatusCode> {
    let (m, action, scope) = match rest {
        "/api/v1/test" => ("POST", "test", None),
        "/api/v1/packages" => ("GET", "packages", None),
        "/api/v1/accounts/create" => ("POST", "create", Some("account.create")),
        "/api/v1/accounts/suspend" => ("POST", "suspend", Some("account.suspend")),
        "/api/v1/accounts/unsuspend" => ("POST", "unsuspend", Some("account.unsuspend")),
        "/api/v1/accounts/terminate" => ("POST", "terminate", Some("account.terminate")),
        "/api/v1/accounts/password" => ("POST", "password", Some("account.password")),
        "/api/v1/accounts/package" => ("POST", "package", Some("account.package")),
        "/api/v1/accounts/usage" => ("POST", "usage", None),
        _ => return Err(StatusCode::NOT_FOUND),
    };
    if method.as_str() == m {
        Ok((action, scope))
    } else {
        Err(StatusCode::METHOD_NOT_ALLOWED)
    }
}

fn answer(status: StatusCode, result: &str, message: impl Into<String>, data: Value) -> Reply {
    let mut body = json!({"result": result, "message": message.into()});
    if !data.is_null() {
        body["data"] = data;
    }
    Reply::Json(status, body)
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Reply {
    answer(status, "error", message, Value::Null)
}

fn ok(message: impl Into<String>, data: Value) -> Reply {
    answer(StatusCode::OK, "success", message, data)
}

/// The request's fields as Laravel sees them: only a JSON body with
/// `Content-Type: application/json`, strings trimmed (passwords excepted),
/// `""` turned into null.
fn fields(headers: &HeaderMap, body: &[u8]) -> Map<String, Value> {
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_body {
        return Map::new();
    }
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(body) else {
        return Map::new();
    };
    for (k, v) in map.iter_mut() {
        if let Value::String(s) = v {
            let t = if k == "password" {
                s.clone()
            } else {
                s.trim().to_owned()
            };
            *v = if t.is_empty() {
                Value::Null
            } else {
                Value::String(t)
            };
        }
    }
    map
}

fn text<'a>(f: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    f.get(k).and_then(Value::as_str)
}

/// Laravel's `validate()` for one action: field errors, empty when valid.
fn validate(action: &str, f: &Map<String, Value>) -> Map<String, Value> {
    let mut errors = Map::new();
    let mut err = |k: &str, m: String| {
        errors.insert(k.into(), json!([m]));
    };
    let required: &[&str] = match action {
        "create" => &[
            "domain",
            "username",
            "password",
            "package",
            "client_email",
            "client_name",
        ],
        "password" => &["username", "password"],
        "package" => &["username", "package"],
        _ => &[],
    };
    for k in required {
        if text(f, k).is_none() {
            err(k, format!("The {} field is required.", k.replace('_', " ")));
        }
    }
    if matches!(action, "suspend" | "unsuspend" | "terminate" | "usage")
        && text(f, "username").is_none()
        && text(f, "domain").is_none()
    {
        err(
            "username",
            "The username field is required when domain is not present.".into(),
        );
    }
    if action == "create" {
        if text(f, "domain").is_some_and(|d| d.len() > 255) {
            err(
                "domain",
                "The domain field must not be greater than 255 characters.".into(),
            );
        }
        if let Some(u) = text(f, "username") {
            if u.len() > 32 {
                err(
                    "username",
                    "The username field must not be greater than 32 characters.".into(),
                );
            } else if !u
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                err("username", "The username field must only contain letters, numbers, dashes, and underscores.".into());
            }
        }
        if let Some(e) = text(f, "client_email")
            && !(e.contains('@') && e.rsplit('@').next().is_some_and(|d| d.contains('.')))
        {
            err(
                "client_email",
                "The client email field must be a valid email address.".into(),
            );
        }
        match f.get("server_id") {
            None | Some(Value::Null) => {}
            Some(v) if v.as_i64().is_some_and(|id| PANEL_SERVER_IDS.contains(&id)) => {}
            Some(_) => err("server_id", "The selected server id is invalid.".into()),
        }
    }
    if matches!(action, "create" | "password")
        && text(f, "password").is_some_and(|p| p.chars().count() < 8)
    {
        err(
            "password",
            "The password field must be at least 8 characters.".into(),
        );
    }
    errors
}

fn laravel_422(errors: Map<String, Value>) -> Reply {
    let first = errors
        .values()
        .next()
        .and_then(|v| v[0].as_str())
        .unwrap_or("The given data was invalid.")
        .to_owned();
    let message = if errors.len() > 1 {
        format!(
            "{first} (and {} more error{})",
            errors.len() - 1,
            if errors.len() > 2 { "s" } else { "" }
        )
    } else {
        first
    };
    Reply::Json(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"message": message, "errors": errors}),
    )
}

fn laravel(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"message": message}))).into_response()
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
    let Some((n, rest)) = split(&path) else {
        return laravel(StatusCode::NOT_FOUND, "Not Found");
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
    // Routing comes before auth: a wrong path or method answers without a key.
    let (action, scope) = match route(&method, rest) {
        Ok(r) => r,
        Err(StatusCode::METHOD_NOT_ALLOWED) => {
            record(Some(405), "no_route");
            return laravel(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!(
                    "The {method} method is not supported for route {}.",
                    rest.trim_start_matches('/')
                ),
            );
        }
        Err(_) => {
            record(Some(404), "no_route");
            return laravel(StatusCode::NOT_FOUND, "Not Found");
        }
    };
    let fault = match state.server(n) {
        Some(mut server) => State::take_fault(&mut server, action),
        None => {
            record(Some(404), "no_server");
            return laravel(StatusCode::NOT_FOUND, "Not Found");
        }
    };
    if let Some(secs) = fault.retry_after_secs {
        record(Some(429), "rate_limited");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, secs.to_string())],
            axum::Json(json!({"message": "Too Many Attempts."})),
        )
            .into_response();
    }
    let f = fields(&headers, &body);
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .map(str::to_owned);
    // A failed validation without Accept: application/json redirects, like
    // Laravel does, once auth has passed.
    if !wants_json
        && !validate(action, &f).is_empty()
        && auth(&state, n, bearer.as_deref(), &fault, scope).is_none()
    {
        record(Some(302), "redirected");
        let back = headers
            .get(header::REFERER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("/")
            .to_owned();
        return (StatusCode::FOUND, [(header::LOCATION, back)]).into_response();
    }
    let version = state.config.version.clone();
    let shared = fault.clone();
    let act = || {
        let Some(mut server) = state.server(n) else {
            return refuse(StatusCode::NOT_FOUND, "Not Found");
        };
        if let Some(denied) = auth_server(&server, bearer.as_deref(), &shared, scope) {
            return denied;
        }
        let errors = validate(action, &f);
        if !errors.is_empty() {
            return laravel_422(errors);
        }
        act(&mut server, &version, action, &f, &shared)
    };
    respond(&kill, fault, &record, act).await
}

/// The key and scope checks, in the Panel's order; `None` when they pass.
fn auth(
    state: &State,
    n: usize,
    bearer: Option<&str>,
    fault: &Faults,
    scope: Option<&str>,
) -> Option<Reply> {
    let server = state.server(n)?;
    auth_server(&server, bearer, fault, scope)
}

fn auth_server(
    server: &Server,
    bearer: Option<&str>,
    fault: &Faults,
    scope: Option<&str>,
) -> Option<Reply> {
    let Some(key) = bearer.filter(|k| !k.is_empty()) else {
        return Some(refuse(
            StatusCode::UNAUTHORIZED,
            "API key required. Use Authorization: Bearer <key>",
        ));
    };
    if key != server.api_key {
        return Some(refuse(StatusCode::UNAUTHORIZED, "Invalid API key."));
    }
    if fault.key_expired {
        return Some(refuse(StatusCode::UNAUTHORIZED, "API key has expired."));
    }
    if fault.ip_denied {
        return Some(refuse(StatusCode::FORBIDDEN, "IP address not allowed."));
    }
    if let (Some(scope), Some(scopes)) = (scope, &fault.scopes)
        && !scopes.iter().any(|s| s == scope || s == "*")
    {
        return Some(refuse(StatusCode::FORBIDDEN, "Insufficient permissions."));
    }
    None
}

fn find<'a>(server: &'a mut Server, f: &Map<String, Value>) -> Option<&'a mut Account> {
    let username = text(f, "username");
    let domain = text(f, "domain");
    server
        .accounts
        .values_mut()
        .find(|a| match (username, domain) {
            (Some(u), _) => a.username == u,
            (None, Some(d)) => a.domain.eq_ignore_ascii_case(d),
            _ => false,
        })
}

fn package_quota(server: &Server, name: &str) -> i64 {
    let i = server.packages.iter().position(|p| p == name).unwrap_or(0);
    1024 * (i as i64 + 1)
}

fn act(
    server: &mut Server,
    version: &str,
    action: &str,
    f: &Map<String, Value>,
    fault: &Faults,
) -> Reply {
    match action {
        "test" => {
            return ok(
                "Connection successful.",
                json!({"panel": "Opterius Panel", "version": version}),
            );
        }
        "packages" => {
            let list: Vec<Value> = server
                .packages
                .iter()
                .map(|p| json!({"name": p, "disk_quota": package_quota(server, p), "bandwidth": 10240, "php_default": "8.3"}))
                .collect();
            return ok("Packages retrieved.", Value::Array(list));
        }
        "create" => return create(server, f, fault),
        _ => {}
    }
    let Some(account) = find(server, f) else {
        return refuse(StatusCode::NOT_FOUND, "Account not found.");
    };
    match action {
        "suspend" => {
            if f.contains_key("reason") && f["reason"].is_null() {
                return refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Failed to suspend: Argument #2 ($reason) must be of type string, null given",
                );
            }
            account.suspended = true;
            let id = account.id;
            // Kept like the Panel's suspension record, for tests to read back.
            if let Some(reason) = text(f, "reason") {
                let meta = server.v1_meta.entry(id).or_insert_with(|| json!({}));
                if let Value::Object(m) = meta {
                    m.insert("suspend_reason".into(), json!(reason));
                }
            }
            ok("Account suspended successfully.", Value::Null)
        }
        "unsuspend" => {
            account.suspended = false;
            ok("Account unsuspended successfully.", Value::Null)
        }
        "password" => ok("Password changed successfully.", Value::Null),
        "package" => {
            let package = text(f, "package").unwrap_or_default().to_owned();
            let id = account.id;
            if !server.packages.contains(&package) {
                return refuse(
                    StatusCode::NOT_FOUND,
                    format!("Package '{package}' not found."),
                );
            }
            if let Some(a) = server.accounts.get_mut(&id) {
                a.package = package;
            }
            ok("Package changed successfully.", Value::Null)
        }
        "usage" => {
            let (username, domain, suspended, package) = (
                account.username.clone(),
                account.domain.clone(),
                account.suspended,
                account.package.clone(),
            );
            ok(
                "Usage retrieved.",
                json!({"username": username, "domain": domain, "suspended": suspended,
                       "disk_used_mb": 12, "disk_limit": package_quota(server, &package), "bw_used_mb": 3}),
            )
        }
        _ => {
            let id = account.id;
            server.accounts.remove(&id);
            ok("Account terminated successfully.", Value::Null)
        }
    }
}

fn create(server: &mut Server, f: &Map<String, Value>, fault: &Faults) -> Reply {
    let field = |k: &str| text(f, k).unwrap_or_default().to_owned();
    let (username, domain, package) = (field("username"), field("domain"), field("package"));
    if !server.packages.contains(&package) {
        return refuse(
            StatusCode::NOT_FOUND,
            format!(
                "Package '{package}' not found. Available: {}",
                server.packages.join(", ")
            ),
        );
    }
    if fault.no_servers {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, "No available servers.");
    }
    if let Some(limit) = fault.license_limit
        && server.accounts.len() as u64 >= limit
    {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Account limit reached ({}/{limit}).", server.accounts.len()),
        );
    }
    if server.find_username(&username).is_some() {
        return refuse(
            StatusCode::CONFLICT,
            format!("Username '{username}' already exists."),
        );
    }
    if server
        .accounts
        .values()
        .any(|a| a.domain.eq_ignore_ascii_case(&domain))
    {
        return refuse(
            StatusCode::CONFLICT,
            format!("Domain '{domain}' already exists."),
        );
    }
    let id = server.next_id;
    server.next_id += 1;
    server.accounts.insert(
        id,
        Account {
            id,
            username: username.clone(),
            domain: domain.clone(),
            package,
            email: field("client_email"),
            disk_limit_mb: 0,
            bandwidth_limit_mb: 0,
            suspended: false,
        },
    );
    server.v1_meta.insert(
        id,
        json!({"client_name": field("client_name"), "whmcs_service_id": f.get("whmcs_service_id"), "server_id": f.get("server_id")}),
    );
    *server.creates.entry(username.clone()).or_insert(0) += 1;
    if fault.warning {
        return answer(
            StatusCode::OK,
            "warning",
            "Account saved but server setup failed: the server agent did not answer",
            json!({"account_id": id}),
        );
    }
    ok(
        "Account created successfully.",
        json!({"account_id": id, "username": username, "domain": domain, "server_ip": "127.0.0.1"}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_api_v1_paths_are_v1() {
        assert!(is_v1("/api/v1/test") && is_v1("/s/3/api/v1/accounts/create"));
        assert!(!is_v1("/api/accounts") && !is_v1("/s/1/api/server/stats"));
    }

    #[test]
    fn empty_strings_are_null_and_need_json_content_type() {
        let mut h = HeaderMap::new();
        let body = br#"{"username":" bob ","reason":"","password":" p "}"#;
        assert!(fields(&h, body).is_empty(), "no Content-Type, no fields");
        h.insert(
            header::CONTENT_TYPE,
            "application/json".parse().expect("hv"),
        );
        let f = fields(&h, body);
        assert_eq!(
            (
                f["username"].as_str(),
                f["reason"].is_null(),
                f["password"].as_str()
            ),
            (Some("bob"), true, Some(" p "))
        );
    }
}
