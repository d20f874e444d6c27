//! The unsigned control API under `/_sim`: inject faults, rotate tokens, set
//! packages, and read back accounts, create counts and recorded requests.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State as AxState};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Target;
use crate::state::{Faults, Server, State};

#[derive(Deserialize)]
struct Which {
    /// A server index, `agent`, or nothing for every server and the agent.
    server: Option<String>,
    limit: Option<usize>,
}

impl Which {
    fn target(&self) -> Result<Target, (StatusCode, Json<Value>)> {
        match self.server.as_deref() {
            None | Some("all") => Ok(Target::All),
            Some("agent") => Ok(Target::Agent),
            Some(n) => n
                .parse()
                .map(Target::Server)
                .map_err(|_| bad("server must be an index, 'agent' or 'all'")),
        }
    }
}

fn bad(message: &str) -> (StatusCode, Json<Value>) {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message })))
}

type Reply = Result<Json<Value>, (StatusCode, Json<Value>)>;

pub(crate) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/_sim/health", get(|| async { "ok" }))
        .route("/_sim/servers", get(servers))
        .route("/_sim/faults", post(set_faults).delete(clear_faults))
        .route("/_sim/token", post(rotate_token))
        .route("/_sim/packages", post(set_packages))
        .route("/_sim/accounts", get(accounts))
        .route("/_sim/creates", get(creates))
        .route("/_sim/requests", get(requests))
        .route("/_sim/reset", post(reset))
        .with_state(state)
}

/// Runs `f` on each server `target` names.
pub(crate) fn each(
    state: &State,
    target: Target,
    mut f: impl FnMut(&mut Server),
) -> Result<(), String> {
    match target {
        Target::Agent => f(&mut state.agent()),
        Target::Server(n) => f(&mut *state
            .server(n)
            .ok_or_else(|| format!("no simulated server {n}"))?),
        Target::All => {
            for s in &state.servers {
                f(&mut s.lock().unwrap_or_else(|p| p.into_inner()));
            }
            f(&mut state.agent());
        }
    }
    Ok(())
}

fn apply(state: &State, which: &Which, f: impl FnMut(&mut Server)) -> Reply {
    each(state, which.target()?, f)
        .map_err(|e| (StatusCode::NOT_FOUND, Json(json!({ "error": e }))))?;
    Ok(Json(json!({"ok": true})))
}

async fn servers(AxState(state): AxState<Arc<State>>) -> Json<Value> {
    let list: Vec<Value> = state
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let s = s.lock().unwrap_or_else(|p| p.into_inner());
            json!({"index": i, "name": s.name, "path": format!("/s/{i}"), "accounts": s.accounts.len(), "packages": s.packages, "faults": s.faults})
        })
        .collect();
    Json(json!({ "servers": list }))
}

async fn set_faults(
    AxState(state): AxState<Arc<State>>,
    Query(which): Query<Which>,
    Json(faults): Json<Faults>,
) -> Reply {
    if !(0.0..=1.0).contains(&faults.error_rate)
        || !(0.0..=1.0).contains(&faults.hang_rate)
        || !(0.0..=1.0).contains(&faults.after_act_error_rate)
    {
        return Err(bad(
            "error_rate and hang_rate are fractions between 0 and 1",
        ));
    }
    apply(&state, &which, |s| s.faults = faults.clone())
}

async fn clear_faults(AxState(state): AxState<Arc<State>>, Query(which): Query<Which>) -> Reply {
    apply(&state, &which, |s| s.faults = Faults::default())
}

#[derive(Deserialize)]
struct NewToken {
    token: String,
}

async fn rotate_token(
    AxState(state): AxState<Arc<State>>,
    Query(which): Query<Which>,
    Json(body): Json<NewToken>,
) -> Reply {
    apply(&state, &which, |s| s.token = body.token.clone())
}

#[derive(Deserialize)]
struct Packages {
    packages: Vec<String>,
}

async fn set_packages(
    AxState(state): AxState<Arc<State>>,
    Query(which): Query<Which>,
    Json(body): Json<Packages>,
) -> Reply {
    apply(&state, &which, |s| s.packages = body.packages.clone())
}

async fn accounts(AxState(state): AxState<Arc<State>>, Query(which): Query<Which>) -> Reply {
    let mut out = Vec::new();
    each(&state, which.target()?, |s| {
        out.extend(
            s.accounts
                .values()
                .map(|a| json!({"server": s.name, "account": a})),
        )
    })
    .map_err(|e| (StatusCode::NOT_FOUND, Json(json!({ "error": e }))))?;
    Ok(Json(json!({ "accounts": out })))
}

async fn creates(AxState(state): AxState<Arc<State>>, Query(which): Query<Which>) -> Reply {
    let mut by_username: BTreeMap<String, u64> = BTreeMap::new();
    each(&state, which.target()?, |s| {
        for (u, n) in &s.creates {
            *by_username.entry(u.clone()).or_insert(0) += n;
        }
    })
    .map_err(|e| (StatusCode::NOT_FOUND, Json(json!({ "error": e }))))?;
    let duplicates: Vec<&String> = by_username
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(u, _)| u)
        .collect();
    Ok(Json(
        json!({"total": by_username.values().sum::<u64>(), "usernames": by_username.len(), "duplicates": duplicates, "by_username": by_username}),
    ))
}

async fn requests(AxState(state): AxState<Arc<State>>, Query(which): Query<Which>) -> Json<Value> {
    let log = state.requests.lock().unwrap_or_else(|p| p.into_inner());
    let want = which.server.as_deref().map(|s| {
        if s == "agent" {
            "agent".to_owned()
        } else {
            format!("panel-{s}")
        }
    });
    let limit = which.limit.unwrap_or(1000);
    let items: Vec<_> = log
        .iter()
        .rev()
        .filter(|r| want.as_ref().is_none_or(|w| &r.target == w))
        .take(limit)
        .collect();
    Json(json!({ "total": log.len(), "requests": items }))
}

async fn reset(AxState(state): AxState<Arc<State>>) -> Json<Value> {
    crate::reset(&state);
    Json(json!({"ok": true}))
}
