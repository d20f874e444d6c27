//! The provisioning log viewer: filters, newest first, one page per entry with
//! the redacted request, the response, the error and its fix; retry from there.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;

use crate::app::log::{self, LogEntry, LogFilter, LogQuery};
use crate::app::servers;
use crate::app::services::Requested;
use crate::domain::{Action, LogStatus};
use crate::state::AppState;
use crate::web::error::WebResult;
use crate::web::form::Errors;
use crate::web::page::{Chrome, Id, page};
use crate::web::session::Admin;
use crate::web::view::Choice;
use crate::web::view::{DASH, ErrorBox, Pager, ago, pretty, status_class, when, when_opt};

/// One log row in a table.
pub struct LogLine {
    pub id: i64,
    pub when: String,
    pub ago: String,
    pub action: String,
    pub status: String,
    pub status_class: &'static str,
    pub service_id: i64,
    pub server: String,
    pub attempt: i32,
    pub http: String,
    pub duration: String,
    pub message: String,
    pub triggered_by: String,
}

impl From<LogEntry> for LogLine {
    fn from(e: LogEntry) -> Self {
        let error = e.error.as_ref().and_then(|j| ErrorBox::from_json(&j.0));
        Self {
            id: e.id,
            when: when(e.created_at),
            ago: ago(e.created_at),
            status_class: status_class(&e.status),
            service_id: e.service_id.unwrap_or_default(),
            server: e
                .server_id
                .map_or_else(|| DASH.to_owned(), |s| format!("#{s}")),
            attempt: e.attempt,
            http: e
                .http_status
                .map_or_else(|| DASH.to_owned(), |h| h.to_string()),
            duration: e
                .duration_ms
                .map_or_else(|| DASH.to_owned(), |d| format!("{d} ms")),
            message: match error {
                Some(err) => format!("{}: {}", err.title, err.message),
                None => e.message.clone().unwrap_or_default(),
            },
            action: e.action,
            status: e.status,
            triggered_by: e.triggered_by,
        }
    }
}

/// Log rows as table lines, with server names instead of ids.
pub async fn lines(state: &AppState, entries: Vec<LogEntry>) -> WebResult<Vec<LogLine>> {
    let mut ids: Vec<i64> = entries.iter().filter_map(|e| e.server_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let names = servers::names(&state.pool, &ids).await?;
    Ok(entries
        .into_iter()
        .map(|e| {
            let server = e.server_id.and_then(|id| names.get(&id).cloned());
            let mut line = LogLine::from(e);
            if let Some(name) = server {
                line.server = name;
            }
            line
        })
        .collect())
}

#[derive(Template)]
#[template(path = "log/list.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<LogLine>,
    pager: Pager,
    errors: Errors,
    service_id: String,
    since: String,
    until: String,
    servers: Vec<Choice>,
    actions: Vec<Choice>,
    statuses: Vec<Choice>,
}

fn choices(all: impl Iterator<Item = &'static str>, current: &str) -> Vec<Choice> {
    all.map(|v| Choice {
        value: v.to_owned(),
        label: v.replace('_', " "),
        selected: v == current,
    })
    .collect()
}

pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    Query(q): Query<LogQuery>,
) -> WebResult<Response> {
    // The viewer shows 50 a page, whatever the query says.
    let (filter, parse_errors) = LogQuery {
        per_page: "50".into(),
        ..q.clone()
    }
    .parse();
    let mut errors = Errors::from(parse_errors);
    let all_servers = servers::name_list(&state.pool).await?;
    let names: HashMap<i64, String> = all_servers.iter().cloned().collect();
    let list = match log::list(&state.pool, &filter, filter.page()).await {
        Ok(l) => l,
        Err(e) => {
            errors.0.extend(crate::web::form::form_errors(e)?.0);
            log::list(&state.pool, &LogFilter::default(), filter.page()).await?
        }
    };
    let params = [
        ("service_id", q.service_id.clone()),
        ("server_id", q.server_id.clone()),
        ("action", q.action.clone()),
        ("status", q.status.clone()),
        ("since", q.since.clone()),
        ("until", q.until.clone()),
    ];
    let pager = Pager::new("/admin/log", &params, &list);
    let rows = list
        .items
        .into_iter()
        .map(|e| {
            let server = e.server_id.and_then(|id| names.get(&id).cloned());
            let mut line = LogLine::from(e);
            if let Some(name) = server {
                line.server = name;
            }
            line
        })
        .collect();
    let t = ListPage {
        chrome: Chrome::new(&admin, "log"),
        rows,
        pager,
        errors,
        service_id: q.service_id.clone(),
        since: q.since.clone(),
        until: q.until.clone(),
        servers: all_servers
            .into_iter()
            .map(|(id, name)| Choice {
                selected: id.to_string() == q.server_id.trim(),
                value: id.to_string(),
                label: name,
            })
            .collect(),
        actions: choices(Action::ALL.iter().map(|a| a.as_str()), &q.action),
        statuses: choices(LogStatus::ALL.iter().map(|s| s.as_str()), &q.status),
    };
    page(&state, &admin, &t)
}

#[derive(Template)]
#[template(path = "log/show.html")]
struct ShowPage {
    chrome: Chrome,
    line: LogLine,
    module: String,
    server_id: i64,
    job_id: String,
    finished: String,
    request: String,
    response: String,
    error: Option<ErrorBox>,
    can_retry: bool,
}

pub async fn show(State(state): State<AppState>, admin: Admin, Id(id): Id) -> WebResult<Response> {
    let d = log::get(&state.pool, id).await?;
    let server = match d.entry.server_id {
        Some(sid) => servers::get(&state.pool, sid).await.ok().map(|s| s.name),
        None => None,
    };
    let error = d
        .entry
        .error
        .as_ref()
        .and_then(|e| ErrorBox::from_json(&e.0));
    let t = ShowPage {
        chrome: Chrome::new(&admin, "log"),
        module: d.entry.module.clone(),
        server_id: d.entry.server_id.unwrap_or_default(),
        job_id: d.entry.job_id.clone().unwrap_or_else(|| DASH.to_owned()),
        finished: when_opt(d.entry.finished_at),
        request: d.request.as_ref().map(|j| pretty(&j.0)).unwrap_or_default(),
        response: d
            .response
            .as_ref()
            .map(|j| pretty(&j.0))
            .unwrap_or_default(),
        can_retry: d.entry.status == "failed" && d.entry.service_id.is_some(),
        error,
        line: {
            let mut line = LogLine::from(d.entry);
            if let Some(name) = server {
                line.server = name;
            }
            line
        },
    };
    page(&state, &admin, &t)
}

/// Retries the failed action of this entry's service.
pub async fn retry(State(state): State<AppState>, admin: Admin, Id(id): Id) -> WebResult<Response> {
    let d = log::get(&state.pool, id).await?;
    let Some(service_id) = d.entry.service_id else {
        return Err(crate::web::error::WebError::Conflict(
            "This log entry belongs to no service, so there is nothing to retry.".into(),
        ));
    };
    crate::web::actions::queue(
        &state,
        &admin,
        service_id,
        crate::web::actions::Queue::Plain(Requested::Retry),
        "Retry",
    )
    .await
}
