//! The provisioning log viewer: filters, newest first, one page per entry with
//! the redacted request, the response, the error and its fix; retry from there,
//! or "Retry all N like this" for the failed services of a filtered view.

use std::collections::{HashMap, HashSet};

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;

use crate::app::bulk;
use crate::app::log::{self, LogFilter, LogQuery};
use crate::app::servers;
use crate::app::services::Requested;
use crate::domain::{Action, LogStatus, TriggeredBy};
use crate::front::AppState;
use crate::web::error::WebResult;
use crate::web::form::{Errors, FormData};
use crate::web::page::{Chrome, Htmx, Id, fragment, page, vary_htmx};
use crate::web::session::{Admin, flash_redirect};
use crate::web::view::{Choice, DASH, ErrorBox, LogLine, Pager, named_lines, pretty, when_opt};

#[derive(Template)]
#[template(path = "log/list.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<LogLine>,
    pager: Pager,
    /// On a filtered view understood whole: the query of its "Retry all"
    /// confirmation, which counts only when opened.
    retry_all: Option<String>,
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

impl LogQuery {
    /// The filter these fields ask for (50 a page, whatever the query says),
    /// with the fields not understood.
    fn filter(&self) -> (LogFilter, Errors) {
        let (filter, errors) = LogQuery {
            per_page: "50".into(),
            ..self.clone()
        }
        .parse();
        (filter, Errors::from(errors))
    }

    /// The filter fields, as the query string and hidden fields carry them.
    fn params(&self) -> [(&'static str, String); 6] {
        [
            ("service_id", self.service_id.clone()),
            ("server_id", self.server_id.clone()),
            ("action", self.action.clone()),
            ("status", self.status.clone()),
            ("since", self.since.clone()),
            ("until", self.until.clone()),
        ]
    }

    /// The filter fields that are set: what a bulk retry sends.
    fn fields(&self) -> Vec<(&'static str, String)> {
        self.params()
            .into_iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .collect()
    }

    /// The set filter fields as a query string.
    fn query(&self) -> String {
        serde_urlencoded::to_string(self.fields()).unwrap_or_default()
    }

    /// The log view these filters show.
    fn back(&self) -> String {
        format!("/admin/log?{}", self.query())
    }

    fn from_form(form: &FormData) -> Self {
        Self {
            service_id: form.get("service_id"),
            server_id: form.get("server_id"),
            action: form.get("action"),
            status: form.get("status"),
            since: form.get("since"),
            until: form.get("until"),
            page: String::new(),
            per_page: String::new(),
        }
    }
}

/// The confirmation of "Retry all like this" on a filtered view: how many
/// services it retries (those of the matching rows that are failed now) and
/// the filter to send. It is counted when the admin opens it, not on every
/// view of the log: the count reads every matching row and costs more than the
/// page's own rows.
#[derive(Template)]
#[template(path = "log/retry_all.html")]
struct RetryAll {
    csrf: String,
    count: i64,
    fields: Vec<(&'static str, String)>,
}

crate::web::page::embeddable!(RetryAll);

/// The confirmation on a page of its own, for a browser without htmx.
#[derive(Template)]
#[template(path = "log/retry_all_page.html")]
struct RetryAllPage {
    chrome: Chrome,
    back: String,
    confirm: RetryAll,
}

/// GET /admin/log/retry: the confirmation of "Retry all like this", counted
/// now; htmx swaps it into the opened summary, a plain request gets a page.
pub async fn confirm_retry_all(
    State(state): State<AppState>,
    admin: Admin,
    htmx: Htmx,
    Query(q): Query<LogQuery>,
) -> WebResult<Response> {
    let (filter, errors) = q.filter();
    let fields = q.fields();
    if errors.any() || fields.is_empty() {
        return Ok(flash_redirect(
            &state,
            &q.back(),
            "error",
            &unfiltered(&errors, &fields),
        ));
    }
    let confirm = RetryAll {
        csrf: admin.csrf.clone(),
        count: bulk::count_logged(&state.pool, &filter).await?,
        fields,
    };
    if htmx.0 {
        return fragment(&confirm).map(vary_htmx);
    }
    let t = RetryAllPage {
        chrome: Chrome::new(&admin, "log"),
        back: q.back(),
        confirm,
    };
    page(&state, &admin, &t).map(vary_htmx)
}

/// Why a bulk retry with these filters is refused.
fn unfiltered(errors: &Errors, fields: &[(&str, String)]) -> String {
    if fields.is_empty() {
        "Retry all needs a filter (a server, an action, a status or a time): set one and try again."
            .to_owned()
    } else {
        format!("Nothing was retried: {}", errors.all().join("; "))
    }
}

pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    Query(q): Query<LogQuery>,
) -> WebResult<Response> {
    let (filter, mut errors) = q.filter();
    let all_servers = servers::menu(&state).await?;
    let list = match log::list(&state.pool, &filter, filter.page()).await {
        Ok(l) => l,
        Err(e) => {
            errors.0.extend(crate::web::form::form_errors(e)?.0);
            log::list(&state.pool, &LogFilter::default(), filter.page()).await?
        }
    };
    let pager = Pager::new("/admin/log", &q.params(), &list);
    // Only on a filtered view that was understood whole: never "all of them".
    let retry_all = (!q.fields().is_empty() && !errors.any()).then(|| q.query());
    // The names of the page's servers only, not a copy of the whole menu.
    let shown: HashSet<i64> = list.items.iter().filter_map(|e| e.server_id).collect();
    let names: HashMap<i64, String> = all_servers
        .iter()
        .filter(|(id, _)| shown.contains(id))
        .cloned()
        .collect();
    let rows = named_lines(list.items, &names);
    let t = ListPage {
        chrome: Chrome::new(&admin, "log"),
        rows,
        pager,
        retry_all,
        errors,
        service_id: q.service_id.clone(),
        since: q.since.clone(),
        until: q.until.clone(),
        servers: all_servers
            .iter()
            .map(|(id, name)| Choice {
                selected: id.to_string() == q.server_id.trim(),
                value: id.to_string(),
                label: name.clone(),
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
        line: LogLine::named(d.entry, server),
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

/// POST /admin/log/retry: the confirmed "Retry all N like this" of a filtered
/// view: one retry per service of the matching rows that is failed now.
pub async fn retry_all(
    State(state): State<AppState>,
    admin: Admin,
    form: FormData,
) -> WebResult<Response> {
    let q = LogQuery::from_form(&form);
    let (filter, errors) = q.filter();
    let fields = q.fields();
    let back = q.back();
    if errors.any() || fields.is_empty() {
        return Ok(flash_redirect(
            &state,
            &back,
            "error",
            &unfiltered(&errors, &fields),
        ));
    }
    let queued = bulk::retry_logged(&state, &filter, TriggeredBy::Admin).await?;
    tracing::info!(
        admin.id = admin.id,
        count = queued.count,
        "admin queued a bulk retry from the log"
    );
    let note = match form.get("expected").trim().parse::<i64>() {
        Ok(n) if n != queued.count as i64 => {
            format!(" (the page said {n}: some services changed in the meantime)")
        }
        _ => String::new(),
    };
    Ok(flash_redirect(
        &state,
        &back,
        "info",
        &format!("Retry queued for {} services{note}.", queued.count),
    ))
}
