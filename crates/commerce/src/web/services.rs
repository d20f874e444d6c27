//! Services: filtered list, detail page with live status and lifecycle actions.
//! Terminate needs the domain typed back.

use std::collections::HashMap;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use crate::app::catalog;
use crate::app::error::AppError;
use crate::app::log;
use crate::app::services::{self, Requested, ServiceAction, ServiceFilter};
use crate::domain::ServiceStatus;
use crate::extract::Action;
use crate::front::AppState;
use crate::web::actions::{Queue, queue};
use crate::web::error::{WebError, WebResult};
use crate::web::form::FormData;
use crate::web::page::{Chrome, Htmx, Id, fragment, page, vary_htmx};
use crate::web::session::{Admin, flash_redirect};
use crate::web::view::{Choice, LogLine};
use crate::web::view::{DASH, ErrorBox, Pager, ago, status_class, when_opt};

struct Row {
    id: i64,
    domain: String,
    username: String,
    product: String,
    server: String,
    status: String,
    status_class: &'static str,
    updated: String,
    error: String,
}

#[derive(Template)]
#[template(path = "services/list.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    pager: Pager,
    q: String,
    client_id: String,
    order_id: String,
    statuses: Vec<Choice>,
    servers: Vec<Choice>,
    products: Vec<Choice>,
    kinds: Vec<Choice>,
    /// With a filter set: how many services a bulk retry would queue, and the
    /// filters to send with it.
    bulk: Option<Bulk>,
}

struct Bulk {
    count: i64,
    fields: Vec<(&'static str, String)>,
    /// No status filter: only failed services are retried.
    failed_only: bool,
}

fn choice(value: String, label: String, current: Option<&str>) -> Choice {
    Choice {
        selected: current == Some(value.as_str()),
        value,
        label,
    }
}

pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    q: Result<Query<ServiceFilter>, QueryRejection>,
) -> WebResult<Response> {
    let Query(f) = q.map_err(|e| WebError::BadRequest(e.body_text()))?;
    let list = services::list(&state.pool, &f, f.page()).await?;
    let catalog::Menus {
        servers: server_rows,
        products: product_rows,
    } = catalog::menus(&state.pool).await?;
    let server_names: HashMap<i64, String> = server_rows.iter().cloned().collect();
    let product_names: HashMap<i64, String> = product_rows.iter().cloned().collect();
    let params = [
        ("status", f.status.clone().unwrap_or_default()),
        (
            "server_id",
            f.server_id.map(|v| v.to_string()).unwrap_or_default(),
        ),
        (
            "product_id",
            f.product_id.map(|v| v.to_string()).unwrap_or_default(),
        ),
        ("q", f.q.clone().unwrap_or_default()),
        ("kind", f.kind.clone().unwrap_or_default()),
        (
            "client_id",
            f.client_id.map(|v| v.to_string()).unwrap_or_default(),
        ),
        (
            "order_id",
            f.order_id.map(|v| v.to_string()).unwrap_or_default(),
        ),
        ("dismissed", f.dismissed.clone().unwrap_or_default()),
    ];
    let pager = Pager::new("/admin/services", &params, &list);
    let listed = list.matched();
    let rows = list
        .items
        .into_iter()
        .map(|s| Row {
            id: s.id,
            product: product_names
                .get(&s.product_id)
                .cloned()
                .unwrap_or_default(),
            server: s
                .server_id
                .and_then(|id| server_names.get(&id).cloned())
                .unwrap_or_else(|| DASH.to_owned()),
            status_class: status_class(&s.status),
            updated: ago(s.updated_at),
            error: s
                .last_error
                .as_ref()
                .and_then(ErrorBox::from_json)
                .map(|e| e.title)
                .unwrap_or_default(),
            status: s.status,
            domain: s.domain,
            username: s.username,
        })
        .collect();
    let sid = f.server_id.map(|v| v.to_string());
    let pid = f.product_id.map(|v| v.to_string());
    let filtered = f.status.is_some()
        || f.server_id.is_some()
        || f.product_id.is_some()
        || f.client_id.is_some()
        || f.kind.is_some()
        || f.dismissed.is_some()
        || f.q.as_deref().is_some_and(|q| !q.trim().is_empty());
    let bulk = match filtered {
        true => {
            // With a status filter the retry selects exactly the listed
            // services, so the list's own capped count is the figure.
            let count = match f.status {
                Some(_) => listed,
                None => crate::app::bulk::count_matching(&state.pool, &f).await?,
            };
            let fields = params
                .iter()
                .filter(|(k, v)| !v.is_empty() && *k != "order_id")
                .map(|(k, v)| (*k, v.clone()))
                .collect();
            (count > 0).then_some(Bulk {
                count,
                fields,
                failed_only: f.status.is_none(),
            })
        }
        false => None,
    };
    let t = ListPage {
        chrome: Chrome::new(&admin, "services"),
        rows,
        pager,
        q: f.q.clone().unwrap_or_default(),
        client_id: f.client_id.map(|v| v.to_string()).unwrap_or_default(),
        order_id: f.order_id.map(|v| v.to_string()).unwrap_or_default(),
        statuses: ServiceStatus::ALL
            .iter()
            .map(|s| choice(s.as_str().into(), s.as_str().into(), f.status.as_deref()))
            .collect(),
        servers: server_rows
            .into_iter()
            .map(|(id, name)| choice(id.to_string(), name, sid.as_deref()))
            .collect(),
        products: product_rows
            .into_iter()
            .map(|(id, name)| choice(id.to_string(), name, pid.as_deref()))
            .collect(),
        kinds: provisioning::FailureKind::ALL
            .iter()
            .map(|k| choice(k.as_str().into(), k.title().into(), f.kind.as_deref()))
            .collect(),
        bulk,
    };
    page(&state, &admin, &t)
}

struct ActionButton {
    action: &'static str,
    label: &'static str,
    class: &'static str,
}

#[derive(Template)]
#[template(path = "services/panel.html")]
struct Panel {
    id: i64,
    csrf: String,
    polling: bool,
    poll_url: String,
    status: String,
    status_class: &'static str,
    username: String,
    server: String,
    server_id: i64,
    panel_account_id: String,
    product: String,
    package: String,
    order_id: i64,
    client: String,
    created: String,
    activated: String,
    suspended: String,
    terminated: String,
    error: Option<ErrorBox>,
    outcome_unknown: bool,
    actions: Vec<ActionButton>,
    /// The module can set a new password (shown for live accounts only).
    can_change_password: bool,
    /// Products of the same module to move to (empty: no package change).
    package_choices: Vec<Choice>,
    log: Vec<LogLine>,
    /// Why the module's missing actions are not offered ("" when all are).
    cannot_note: String,
    /// Where the Panel disagreed at the last sync ("" if it agreed).
    drift: String,
    /// When the last welcome mail went out ("" if never).
    welcome_sent: String,
    can_resend_welcome: bool,
    /// Offer the suspend form (reason + note).
    can_suspend: bool,
    /// Offer unsuspend; an abuse suspension asks for a ticked confirmation.
    can_unsuspend: bool,
    reasons: Vec<Choice>,
    /// Why it is suspended (label) and the admin's note; empty when not.
    suspension_reason: String,
    suspension_note: String,
    abuse: bool,
}

#[derive(Deserialize, Default)]
pub struct Watch {
    /// The service's `updated_at` (µs) before an action: poll until it moves.
    watch: Option<i64>,
    #[serde(default)]
    n: u32,
}

/// Polls stop after this many seconds even if nothing changed.
const MAX_POLLS: u32 = 120;

/// The live panel of service `id`, and the service row it was built from.
async fn panel_view(
    state: &AppState,
    admin: &Admin,
    id: i64,
    w: &Watch,
) -> WebResult<(Panel, services::ServiceRow)> {
    let d = services::detail(&state.pool, id).await?;
    let s = &d.service;
    let server = d.server_name.clone().unwrap_or_else(|| DASH.to_owned());
    let recent = log::recent_of_service(&state.pool, id, 10).await?;
    let status = s.status();
    let changed = w
        .watch
        .is_none_or(|before| s.updated_at.timestamp_micros() > before);
    let polling = status == ServiceStatus::Provisioning || (!changed && w.n < MAX_POLLS);
    let mut actions = Vec::new();
    let button = |action, label, class| ActionButton {
        action,
        label,
        class,
    };
    if status == ServiceStatus::Pending {
        actions.push(button("create", "Create account now", ""));
    }
    if s.last_error.is_some() && status != ServiceStatus::Provisioning {
        actions.push(button("retry", "Retry failed action", ""));
    }
    let needs_attention = s
        .last_error
        .as_ref()
        .is_some_and(|e| crate::domain::StoredFailure::of(&e.0).kind == "needs_attention");
    if needs_attention && s.server_id.is_some() && s.panel_account_id.is_none() {
        actions.push(button("adopt", "Adopt the Panel's account", "secondary"));
    }
    // Only what the server's module can do is offered.
    let live = matches!(status, ServiceStatus::Active | ServiceStatus::Suspended);
    let module = d.server_module.clone().filter(|_| live);
    let can = |c| {
        module
            .as_deref()
            .is_some_and(|m| crate::app::modules::can(state, m, c))
    };
    let can_change_password = can(provisioning::Capability::ChangePassword);
    let package_choices = if can(provisioning::Capability::ChangePackage) {
        catalog::list_products(&state.pool)
            .await?
            .into_iter()
            .filter(|p| Some(p.module.as_str()) == module.as_deref() && p.id != s.product_id)
            .map(|p| Choice {
                value: p.id.to_string(),
                label: format!("{} ({})", p.name, p.package),
                selected: false,
            })
            .collect()
    } else {
        Vec::new()
    };
    let package_choices_empty = package_choices.is_empty();
    let panel = Panel {
        id,
        csrf: admin.csrf.clone(),
        polling,
        poll_url: format!(
            "/admin/services/{id}?watch={}&n={}",
            w.watch.unwrap_or(0),
            w.n + 1
        ),
        status: s.status.to_string(),
        status_class: status_class(s.status.as_str()),
        username: s.username.clone(),
        server,
        server_id: s.server_id.unwrap_or_default(),
        panel_account_id: s
            .panel_account_id
            .clone()
            .unwrap_or_else(|| DASH.to_owned()),
        product: d.product_name.clone(),
        package: d.product_package.clone(),
        order_id: s.order_id,
        client: format!("{} <{}>", d.client_name, d.client_email),
        created: when_opt(Some(s.created_at)),
        activated: when_opt(s.activated_at),
        suspended: when_opt(s.suspended_at),
        terminated: when_opt(s.terminated_at),
        error: s
            .last_error
            .as_ref()
            .and_then(|e| ErrorBox::from_json(&e.0)),
        outcome_unknown: s.create_outcome_unknown,
        actions,
        can_change_password,
        package_choices,
        log: recent
            .into_iter()
            .map(|(entry, server)| LogLine::named(entry, server))
            .collect(),
        welcome_sent: d
            .welcome_sent_at
            .map(|t| when_opt(Some(t)))
            .unwrap_or_default(),
        can_resend_welcome: live,
        drift: s.drift.clone().unwrap_or_default(),
        cannot_note: match module.as_deref() {
            Some(m) if !can_change_password || package_choices_empty => {
                let mut missing = Vec::new();
                if !can(provisioning::Capability::ChangePackage) {
                    missing.push("change packages");
                }
                if !can_change_password {
                    missing.push("set passwords");
                }
                if missing.is_empty() {
                    String::new()
                } else {
                    format!(
                        "The {m} module cannot {} on the Panel, so those actions are not offered: do them on the Panel itself.",
                        missing.join(" or ")
                    )
                }
            }
            _ => String::new(),
        },
        can_suspend: status == ServiceStatus::Active,
        can_unsuspend: status == ServiceStatus::Suspended,
        reasons: crate::web::view::REASONS
            .iter()
            .map(|(v, l)| Choice {
                value: (*v).to_owned(),
                label: (*l).to_owned(),
                selected: *v == "other",
            })
            .collect(),
        suspension_reason: match (status, s.suspension_reason.as_deref()) {
            (ServiceStatus::Suspended | ServiceStatus::Provisioning, Some(r)) => {
                crate::web::view::REASONS
                    .iter()
                    .find(|(v, _)| *v == r)
                    .map_or(r, |(_, l)| *l)
                    .to_owned()
            }
            _ => String::new(),
        },
        suspension_note: s.suspension_note.clone().unwrap_or_default(),
        abuse: s.suspension_reason.as_deref() == Some("abuse"),
    };
    Ok((panel, d.service))
}

#[derive(Template)]
#[template(path = "services/show.html")]
struct ShowPage {
    chrome: Chrome,
    id: i64,
    domain: String,
    can_terminate: bool,
    panel: Panel,
}

crate::web::page::embeddable!(Panel);

/// The service page; htmx's poll of the same URL gets its live panel.
pub async fn show(
    State(state): State<AppState>,
    admin: Admin,
    htmx: Htmx,
    Id(id): Id,
    Query(w): Query<Watch>,
) -> WebResult<Response> {
    let (panel, s) = panel_view(&state, &admin, id, &w).await?;
    if htmx.0 {
        return fragment(&panel).map(vary_htmx);
    }
    let t = ShowPage {
        chrome: Chrome::new(&admin, "services"),
        id,
        can_terminate: !matches!(
            s.status(),
            ServiceStatus::Terminated | ServiceStatus::Provisioning
        ),
        domain: s.domain,
        panel,
    };
    page(&state, &admin, &t).map(vary_htmx)
}

/// The buttons that need no form: `/admin/services/{id}/{action}`. Terminate
/// and change-package have routes of their own (they carry a form).
pub async fn action(
    State(state): State<AppState>,
    admin: Admin,
    Id(id): Id,
    Action(action): Action,
) -> WebResult<Response> {
    let queued = match action {
        ServiceAction::Lifecycle(Requested::Terminate) | ServiceAction::ChangePackage => {
            return Err(WebError::BadRequest(format!(
                "{} needs its form: use the button on the service page.",
                action.label()
            )));
        }
        ServiceAction::Lifecycle(r) => Queue::Plain(r),
        ServiceAction::ChangePassword => Queue::ChangePassword,
        ServiceAction::ResendWelcome => Queue::ResendWelcome,
        ServiceAction::Adopt => Queue::Adopt,
    };
    queue(&state, &admin, id, queued, action.label()).await
}

/// Terminate, only with the service's domain typed back exactly.
pub async fn terminate(
    State(state): State<AppState>,
    admin: Admin,
    Id(id): Id,
    form: FormData,
) -> WebResult<Response> {
    let s = services::get(&state.pool, id).await?;
    let typed = form.get("confirm_domain");
    if !typed.trim().eq_ignore_ascii_case(&s.domain) {
        return Ok(flash_redirect(
            &state,
            &format!("/admin/services/{id}"),
            "error",
            &format!(
                "Nothing was terminated: the domain you typed does not match {}. Type it exactly to confirm.",
                s.domain
            ),
        ));
    }
    queue(
        &state,
        &admin,
        id,
        Queue::Plain(Requested::Terminate),
        "Terminate",
    )
    .await
}

/// Moves the account to another product's package (the select on the page).
pub async fn change_package(
    State(state): State<AppState>,
    admin: Admin,
    Id(id): Id,
    form: FormData,
) -> WebResult<Response> {
    let mut errors = crate::domain::FieldErrors::default();
    let product = form.int("product_id", 0, &mut errors);
    queue(
        &state,
        &admin,
        id,
        Queue::ChangePackage(product),
        "Package change",
    )
    .await
}

#[derive(Template)]
#[template(path = "services/adopt.html")]
struct AdoptPage {
    chrome: Chrome,
    id: i64,
    domain: String,
    username: String,
    facts: Vec<(String, String)>,
    error: String,
}

/// What the Panel holds for the service, with the confirm button (a POST to
/// `/admin/services/{id}/adopt`).
pub async fn adopt_preview(
    State(state): State<AppState>,
    admin: Admin,
    Id(id): Id,
) -> WebResult<Response> {
    let s = services::get(&state.pool, id).await?;
    let (facts, error) = match crate::app::adopt::preview(&state, id).await {
        Ok(f) => (f, String::new()),
        Err(AppError::Conflict { message, .. }) => (Vec::new(), message),
        Err(e) => return Err(e.into()),
    };
    let t = AdoptPage {
        chrome: Chrome::new(&admin, "services"),
        id,
        domain: s.domain,
        username: s.username,
        facts,
        error,
    };
    page(&state, &admin, &t)
}

/// The confirmed adopt (from the preview page).
pub async fn adopt(State(state): State<AppState>, admin: Admin, Id(id): Id) -> WebResult<Response> {
    queue(
        &state,
        &admin,
        id,
        Queue::Adopt,
        "Adopting the Panel's account",
    )
    .await
}
