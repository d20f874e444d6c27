//! What needs an admin: failed and needs-attention services grouped by server
//! and error kind with the fix, each with retry, a link to adopt, and dismiss
//! (off the page until it fails again); and the bulk retry behind "Retry all
//! N like this".

use std::collections::HashMap;

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use crate::app::attention::{self, Dismissed};
use crate::app::bulk::{self, RetryFilter};
use crate::app::servers;
use crate::app::services::ServiceFilter;
use crate::domain::{StoredFailure, TriggeredBy};
use crate::front::AppState;
use crate::web::error::WebResult;
use crate::web::form::FormData;
use crate::web::page::{Chrome, Id, page};
use crate::web::session::{Admin, flash_redirect};
use crate::web::view::{DASH, ago};

/// Services shown per group; the group's count and its bulk retry cover all.
const PER_GROUP: usize = 20;

struct Item {
    id: i64,
    domain: String,
    message: String,
    updated: String,
}

struct Group {
    server_id: Option<i64>,
    server: String,
    kind: String,
    title: String,
    hint: String,
    count: usize,
    items: Vec<Item>,
    /// The query string of the services list (and bulk retry) for this group.
    query: String,
}

#[derive(Template)]
#[template(path = "attention.html")]
struct AttentionPage {
    chrome: Chrome,
    groups: Vec<Group>,
    /// Failed services dismissed from this page (the latest few) and how many.
    dismissed: Vec<DismissedLine>,
    dismissed_total: i64,
}

struct DismissedLine {
    id: i64,
    domain: String,
    by: String,
    when: String,
}

impl From<Dismissed> for DismissedLine {
    fn from(d: Dismissed) -> Self {
        Self {
            id: d.service_id,
            domain: d.domain,
            by: d.admin_email,
            when: ago(d.created_at),
        }
    }
}

/// GET /admin/attention
pub async fn page_handler(State(state): State<AppState>, admin: Admin) -> WebResult<Response> {
    let rows = attention::failed(&state.pool).await?;
    let mut ids: Vec<i64> = rows.iter().filter_map(|r| r.server_id).collect();
    ids.dedup();
    let names: HashMap<i64, String> = servers::names(&state.pool, &ids).await?;
    let mut groups: Vec<Group> = Vec::new();
    for r in rows {
        let e = r
            .last_error
            .map(|j| StoredFailure::of(&j.0))
            .unwrap_or_default();
        let kind = e.kind;
        let same = groups
            .last()
            .is_some_and(|g| g.server_id == r.server_id && g.kind == kind);
        if !same {
            let mut query = vec![
                ("status", "failed".to_owned()),
                ("dismissed", "0".to_owned()),
            ];
            if let Some(id) = r.server_id {
                query.push(("server_id", id.to_string()));
            }
            if !kind.is_empty() {
                query.push(("kind", kind.clone()));
            }
            groups.push(Group {
                server_id: r.server_id,
                server: r
                    .server_id
                    .and_then(|id| names.get(&id).cloned())
                    .unwrap_or_else(|| DASH.to_owned()),
                title: provisioning::FailureKind::ALL
                    .iter()
                    .find(|k| k.as_str() == kind)
                    .map_or_else(|| kind.clone(), |k| k.title().to_owned()),
                kind,
                hint: e.hint,
                count: 0,
                items: Vec::new(),
                query: serde_urlencoded::to_string(&query).unwrap_or_default(),
            });
        }
        if let Some(g) = groups.last_mut() {
            g.count += 1;
            if g.items.len() < PER_GROUP {
                g.items.push(Item {
                    id: r.id,
                    domain: r.domain,
                    message: e.message,
                    updated: ago(r.updated_at),
                });
            }
        }
    }
    let (dismissed, dismissed_total) = attention::dismissed(&state.pool, 20).await?;
    let t = AttentionPage {
        chrome: Chrome::new(&admin, "attention"),
        groups,
        dismissed: dismissed.into_iter().map(DismissedLine::from).collect(),
        dismissed_total,
    };
    page(&state, &admin, &t)
}

fn opt(form: &FormData, name: &str) -> Option<String> {
    Some(form.get(name).trim().to_owned()).filter(|v| !v.is_empty())
}

fn id(form: &FormData, name: &str) -> Option<i64> {
    opt(form, name).and_then(|v| v.parse().ok())
}

/// POST /admin/services/retry: the confirmed "Retry all N like this".
pub async fn bulk_retry(
    State(state): State<AppState>,
    admin: Admin,
    form: FormData,
) -> WebResult<Response> {
    let filter = RetryFilter {
        status: opt(&form, "status"),
        server_id: id(&form, "server_id"),
        product_id: id(&form, "product_id"),
        client_id: id(&form, "client_id"),
        q: opt(&form, "q"),
        kind: opt(&form, "kind"),
    };
    let mut filter = ServiceFilter::from(filter);
    filter.dismissed = opt(&form, "dismissed");
    let back: Vec<(&str, String)> = [
        "status",
        "server_id",
        "product_id",
        "client_id",
        "q",
        "kind",
        "dismissed",
    ]
    .into_iter()
    .filter_map(|k| opt(&form, k).map(|v| (k, v)))
    .collect();
    let to = match opt(&form, "back").as_deref() {
        Some("attention") => "/admin/attention".to_owned(),
        _ => format!(
            "/admin/services?{}",
            serde_urlencoded::to_string(&back).unwrap_or_default()
        ),
    };
    let queued = bulk::retry_matching(&state, &filter, TriggeredBy::Admin).await?;
    tracing::info!(
        admin.id = admin.id,
        count = queued.count,
        "admin queued a bulk retry"
    );
    let expected = id(&form, "expected");
    let note = match expected {
        Some(n) if n != queued.count as i64 => {
            format!(" (the page said {n}: some services changed in the meantime)")
        }
        _ => String::new(),
    };
    Ok(flash_redirect(
        &state,
        &to,
        "info",
        &format!("Retry queued for {} services{note}.", queued.count),
    ))
}

/// POST /admin/attention/{id}/dismiss: off the page until the service fails
/// again; who and when are kept.
pub async fn dismiss(
    State(state): State<AppState>,
    admin: Admin,
    Id(id): Id,
) -> WebResult<Response> {
    attention::dismiss(&state.pool, id, admin.id, &admin.email).await?;
    tracing::info!(
        admin.id = admin.id,
        service.id = id,
        "admin dismissed a failed service from Needs attention"
    );
    Ok(flash_redirect(
        &state,
        "/admin/attention",
        "info",
        &format!(
            "Service #{id} dismissed from Needs attention. Its history is kept; it comes back if it fails again."
        ),
    ))
}
