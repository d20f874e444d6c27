//! Infrastructure → Servers: the list with health badges, the plug icon that
//! tests one row, and "Test all", which streams each result over SSE.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt as _};

use crate::app::catalog;
use crate::app::connection::{self, SweepItem};
use crate::app::servers::{self, ServerRow};
use crate::front::AppState;
use crate::web::error::WebResult;
use crate::web::page::{Chrome, Id, fragment, page};
use crate::web::session::Admin;
use crate::web::view::{DASH, ErrorBox, ago};

/// One server's health badge cell.
pub struct HealthCell {
    pub id: i64,
    pub enabled: bool,
    pub label: &'static str,
    pub class: &'static str,
    /// "checked 2 min ago · 34 ms", or "never checked".
    pub detail: String,
    /// The Panel's name and version from its stats endpoint.
    pub panel: String,
    pub error: Option<ErrorBox>,
    /// While offline: "out of placement since 3 min ago: why".
    pub out_of_placement: Option<String>,
}

fn badge(status: &str) -> (&'static str, &'static str) {
    match status {
        "online" => ("Online", "ok"),
        "offline" => ("Offline", "bad"),
        _ => ("Unknown", "muted"),
    }
}

fn panel_text(name: Option<&str>, version: Option<&str>) -> String {
    match (name, version) {
        (Some(n), Some(v)) => format!("{n} · Panel {v}"),
        (Some(n), None) => n.to_owned(),
        (None, Some(v)) => format!("Panel {v}"),
        (None, None) => String::new(),
    }
}

impl HealthCell {
    pub fn from_row(r: &ServerRow) -> Self {
        let (label, class) = badge(&r.health_status);
        let detail = match (r.last_checked_at, r.latency_ms) {
            (Some(t), Some(ms)) => format!("checked {} · {ms} ms", ago(t)),
            (Some(t), None) => format!("checked {}", ago(t)),
            _ => "never checked".to_owned(),
        };
        let error = (r.health_status == "offline")
            .then(|| {
                r.last_error
                    .as_ref()
                    .and_then(|e| ErrorBox::from_json(&e.0))
            })
            .flatten();
        Self {
            id: r.id,
            enabled: r.enabled,
            label,
            class,
            detail,
            panel: if r.health_status == "online" {
                panel_text(r.panel_name.as_deref(), r.panel_version.as_deref())
            } else {
                String::new()
            },
            error,
            out_of_placement: (r.health_status == "offline").then(|| {
                let since = r.health_since.map_or_else(|| "a while".to_owned(), ago);
                let why = r.health_reason.as_deref().unwrap_or("a failed test");
                format!("out of placement since {since}: {why}")
            }),
        }
    }

    fn from_sweep(item: &SweepItem) -> Self {
        let o = &item.outcome;
        let (label, class) = badge(if o.ok { "online" } else { "offline" });
        let text = |k: &str| {
            o.server
                .as_ref()
                .and_then(|s| s.get(k))
                .and_then(|v| v.as_str())
        };
        Self {
            id: item.server_id,
            enabled: true,
            label,
            class,
            detail: format!("checked just now · {} ms", o.latency_ms),
            panel: panel_text(text("name"), text("version")),
            error: o.error.as_ref().map(ErrorBox::from_failure),
            out_of_placement: (!o.ok).then(|| "out of placement: the test just failed".to_owned()),
        }
    }
}

#[derive(Template)]
#[template(path = "servers/health.html")]
struct HealthFragment<'a> {
    h: &'a HealthCell,
}

struct Row {
    id: i64,
    name: String,
    module: String,
    group: String,
    api_url: String,
    usage: String,
    full: bool,
    enabled: bool,
    /// The badge cell, the same partial the plug icon and the sweep swap in.
    health: HealthCell,
}

#[derive(Template)]
#[template(path = "servers/list.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    has_groups: bool,
}

pub async fn list(State(state): State<AppState>, admin: Admin) -> WebResult<Response> {
    let groups: HashMap<i64, String> = catalog::list_groups(&state.pool)
        .await?
        .into_iter()
        .map(|g| (g.id, g.name))
        .collect();
    let mut rows = Vec::new();
    for r in servers::all(&state.pool).await? {
        let module = state
            .registry
            .get(&r.module)
            .map_or_else(|| r.module.clone(), |m| m.info().label.to_owned());
        let max = if r.max_accounts == 0 {
            "∞".to_owned()
        } else {
            r.max_accounts.to_string()
        };
        rows.push(Row {
            id: r.id,
            name: r.name.clone(),
            module,
            group: groups.get(&r.group_id).cloned().unwrap_or_default(),
            api_url: r
                .credentials
                .0
                .get("api_url")
                .cloned()
                .unwrap_or_else(|| DASH.to_owned()),
            usage: format!("{} / {max}", r.account_count),
            full: r.max_accounts > 0 && r.account_count >= r.max_accounts,
            enabled: r.enabled,
            health: HealthCell::from_row(&r),
        });
    }
    page(
        &state,
        &admin,
        &ListPage {
            chrome: Chrome::new(&admin, "servers"),
            rows,
            has_groups: !groups.is_empty(),
        },
    )
}

/// The plug icon: tests one saved server and answers with its new badge.
pub async fn test_one(
    State(state): State<AppState>,
    _admin: Admin,
    Id(id): Id,
) -> WebResult<Response> {
    connection::test_saved(&state, id).await?;
    let row = servers::get(&state.pool, id).await?;
    fragment(&HealthFragment {
        h: &HealthCell::from_row(&row),
    })
}

/// "Test all": every enabled server concurrently; each badge is sent as an SSE
/// `health` event the moment its result is in, then one `done` event.
pub async fn sweep(State(state): State<AppState>, admin: Admin) -> WebResult<Response> {
    let slot = connection::start_sweep(&state).await?;
    let rows = servers::all(&state.pool).await?;
    let started = Instant::now();
    let online = Arc::new(AtomicUsize::new(0));
    let offline = Arc::new(AtomicUsize::new(0));
    tracing::info!(admin.id = admin.id, servers = rows.len(), "sweep started");
    let (on, off) = (online.clone(), offline.clone());
    let results = connection::sweep(state.core, rows, slot).map(move |item| {
        if item.outcome.ok { &on } else { &off }.fetch_add(1, Ordering::Relaxed);
        let html = HealthFragment {
            h: &HealthCell::from_sweep(&item),
        }
        .render()
        .unwrap_or_default();
        Ok::<_, Infallible>(Event::default().event("health").data(html))
    });
    let done = futures::stream::once(async move {
        let (on, off) = (
            online.load(Ordering::Relaxed),
            offline.load(Ordering::Relaxed),
        );
        let secs = started.elapsed().as_secs_f64();
        Ok(Event::default().event("done").data(format!(
            "Tested {} servers in {secs:.1} s: {on} online, {off} offline.",
            on + off
        )))
    });
    Ok(sse(results.chain(done)))
}

fn sse(s: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    Sse::new(s)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
        .into_response()
}
