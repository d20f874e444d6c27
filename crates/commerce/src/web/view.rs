//! Presentation helpers: dates, labels, error boxes and pagination links.

use chrono::{DateTime, Utc};
use serde_json::Value;

pub const DASH: &str = "—";

/// An absolute timestamp, to the second.
pub fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub fn when_opt(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| DASH.to_owned(), when)
}

/// How long ago, roughly.
pub fn ago(t: DateTime<Utc>) -> String {
    let s = (Utc::now() - t).num_seconds().max(0);
    match s {
        0..=4 => "just now".to_owned(),
        5..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// The title an admin recognises for a failure kind (the Panel documentation's wording).
pub fn kind_title(kind: &str) -> String {
    let k = provisioning::FailureKind::parse(kind);
    if k.as_str() == kind {
        k.title().to_owned()
    } else {
        kind.replace('_', " ")
    }
}

/// A classified failure as the UI shows it: what happened and how to fix it.
#[derive(Debug, Clone)]
pub struct ErrorBox {
    pub title: String,
    pub message: String,
    pub hint: String,
    /// When the provisioner will try again by itself, if it will.
    pub next_retry: String,
}

impl ErrorBox {
    /// From the JSON the app stores (`{kind, message, hint, retryable, ...}`).
    pub fn from_json(v: &Value) -> Option<Self> {
        let f = crate::domain::StoredFailure::of(v);
        if f.is_empty() {
            return None;
        }
        Some(Self {
            title: kind_title(&f.kind),
            message: f.message,
            hint: f.hint,
            next_retry: f.next_retry_at.map(when).unwrap_or_default(),
        })
    }

    pub fn from_failure(f: &provisioning::Failure) -> Self {
        Self {
            title: kind_title(f.kind.as_str()),
            message: f.message.clone(),
            hint: f.hint.clone(),
            next_retry: String::new(),
        }
    }
}

/// The CSS class of a status badge.
pub fn status_class(status: &str) -> &'static str {
    match status {
        "active" | "success" | "online" | "paid" => "ok",
        "failed" | "offline" | "cancelled" => "bad",
        "suspended" => "warn",
        "provisioning" | "pending" => "busy",
        _ => "muted",
    }
}

/// Pretty-printed JSON for `<pre>` blocks.
pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Previous/next links that keep the list's filters.
pub struct Pager {
    pub summary: String,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    /// `base` is the path; `params` the filters (empty values are dropped).
    pub fn new<T>(base: &str, params: &[(&str, String)], list: &crate::app::page::Page<T>) -> Self {
        let (page, per_page, shown) = (list.page, list.per_page, list.items.len());
        let total = list.total.unwrap_or_default();
        let plus = if list.total_capped { "+" } else { "" };
        let link = |p: i64| {
            let mut q: Vec<(&str, String)> = params
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .cloned()
                .collect();
            q.push(("page", p.to_string()));
            format!(
                "{base}?{}",
                serde_urlencoded::to_string(&q).unwrap_or_default()
            )
        };
        let first = page.saturating_sub(1).saturating_mul(per_page);
        let summary = if total == 0 {
            "Nothing to show".to_owned()
        } else {
            format!(
                "{}–{} of {total}{plus}",
                first.saturating_add(1),
                first.saturating_add(shown as i64)
            )
        };
        Self {
            summary,
            prev: (page > 1).then(|| link(page - 1)),
            next: (first.saturating_add(shown as i64) < total
                || (list.total_capped && shown as i64 == per_page))
                .then(|| link(page.saturating_add(1))),
        }
    }
}

/// One option of a `<select>`.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// How a product's `auto_setup` reads in the admin.
pub fn auto_setup_label(v: &str) -> &'static str {
    match v {
        "on_order" => "When ordered",
        "on_payment" => "When paid",
        _ => "Manually",
    }
}

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

impl From<crate::app::log::LogEntry> for LogLine {
    fn from(e: crate::app::log::LogEntry) -> Self {
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

impl LogLine {
    /// The line of `e`, naming its server `server` (unknown: `#id`).
    pub fn named(e: crate::app::log::LogEntry, server: Option<String>) -> Self {
        let mut line = Self::from(e);
        if let Some(name) = server {
            line.server = name;
        }
        line
    }
}

/// Log rows as table lines, with server names instead of ids.
pub async fn lines(
    state: &crate::front::AppState,
    entries: Vec<crate::app::log::LogEntry>,
) -> crate::web::error::WebResult<Vec<LogLine>> {
    let mut ids: Vec<i64> = entries.iter().filter_map(|e| e.server_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let names = crate::app::servers::names(&state.pool, &ids).await?;
    Ok(named_lines(entries, &names))
}

/// Log rows as table lines, naming each server from `names` (by id).
pub fn named_lines(
    entries: Vec<crate::app::log::LogEntry>,
    names: &std::collections::HashMap<i64, String>,
) -> Vec<LogLine> {
    entries
        .into_iter()
        .map(|e| {
            let server = e.server_id.and_then(|id| names.get(&id).cloned());
            LogLine::named(e, server)
        })
        .collect()
}

/// The reason select of the suspend form: value and label.
pub const REASONS: &[(&str, &str)] = &[
    ("overdue", "Overdue payment"),
    ("abuse", "Abuse"),
    ("other", "Other"),
];
