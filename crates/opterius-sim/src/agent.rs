//! The fake Opterius Agent, served under `/agent`: RFC 3339 timestamps,
//! signatures over timestamp + METHOD + full path + body, a five-minute window.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use crate::conn::Kill;
use crate::panel::{Reply, error, respond};
use crate::state::{Account, RecordedRequest, Server, State};

pub(crate) async fn handle(
    state: Arc<State>,
    kill: Kill,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started_at = chrono::Utc::now();
    let action = match (method.as_str(), path.trim_start_matches("/agent")) {
        ("GET", "/health") => "health",
        ("POST", "/account/create") => "create",
        ("POST", "/account/suspend") => "suspend",
        ("POST", "/account/unsuspend") => "unsuspend",
        ("POST", "/account/delete") => "delete",
        _ => "unknown",
    };
    let record = |status: Option<u16>, outcome: &str| {
        state.record(RecordedRequest {
            target: "agent".into(),
            method: method.to_string(),
            path: path.clone(),
            status,
            outcome: outcome.to_owned(),
            at: chrono::Utc::now(),
            started_at,
        })
    };
    let fault = State::take_fault(&mut state.agent(), action);
    let act = || {
        if action == "unknown" {
            return error(StatusCode::NOT_FOUND, "Not Found");
        }
        let mut agent = state.agent();
        let ts = headers.get("X-Timestamp").and_then(|v| v.to_str().ok());
        let sig = headers.get("X-Signature").and_then(|v| v.to_str().ok());
        let query_free = path.split_once('?').map_or(path.as_str(), |(p, _)| p);
        if let Err(e) = crate::verify::agent(
            &agent.token,
            ts,
            sig,
            method.as_str(),
            query_free,
            &body,
            chrono::Utc::now(),
        ) {
            return error(StatusCode::UNAUTHORIZED, format!("Unauthorized: {e}"));
        }
        act(&mut agent, action, &body)
    };
    respond(&kill, fault, &record, act).await
}

fn act(agent: &mut Server, action: &str, body: &[u8]) -> Reply {
    if action == "health" {
        return Reply::Json(
            StatusCode::OK,
            json!({"status": "ok", "accounts": agent.accounts.len()}),
        );
    }
    let input: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let Some(username) = input
        .get("username")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
    else {
        return Reply::Json(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": "username is required", "errors": {"username": ["required"]}}),
        );
    };
    let existing = agent.find_username(username).map(|a| a.id);
    match (action, existing) {
        ("create", Some(_)) => error(
            StatusCode::CONFLICT,
            format!("account {username} already exists"),
        ),
        ("create", None) => {
            let id = agent.next_id;
            agent.next_id += 1;
            let text = |k: &str| {
                input
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let package = input
                .get("package_id")
                .map(Value::to_string)
                .unwrap_or_default();
            agent.accounts.insert(
                id,
                Account {
                    id,
                    username: username.to_owned(),
                    domain: text("domain"),
                    package,
                    email: text("email"),
                    disk_limit_mb: 0,
                    bandwidth_limit_mb: 0,
                    suspended: false,
                },
            );
            *agent.creates.entry(username.to_owned()).or_insert(0) += 1;
            Reply::Json(StatusCode::OK, json!({"success": true, "account_id": id}))
        }
        (_, None) => error(
            StatusCode::NOT_FOUND,
            format!("account {username} not found"),
        ),
        ("delete", Some(id)) => {
            agent.accounts.remove(&id);
            Reply::Json(StatusCode::OK, json!({"success": true}))
        }
        (_, Some(id)) => {
            if let Some(a) = agent.accounts.get_mut(&id) {
                a.suspended = action == "suspend";
            }
            Reply::Json(StatusCode::OK, json!({"success": true}))
        }
    }
}
