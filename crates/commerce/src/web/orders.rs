//! Orders: place one for a client, watch its service being provisioned live,
//! mark a pending order paid.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::app::catalog;
use crate::app::error::AppError;
use crate::app::orders::{self, OrderInput};
use crate::app::page::{PageParams, PageQuery};
use crate::app::services;
use crate::domain::{FieldErrors, TriggeredBy};
use crate::front::AppState;
use crate::web::error::WebResult;
use crate::web::form::{Errors, FormData, form_errors};
use crate::web::page::{Chrome, Htmx, Id, fragment, page, page_with, vary_htmx};
use crate::web::session::{Admin, flash_redirect};
use crate::web::view::{Choice, auto_setup_label};
use crate::web::view::{ErrorBox, Pager, status_class, when, when_opt};

struct Row {
    id: i64,
    client: String,
    status: String,
    status_class: &'static str,
    domains: String,
    created: String,
}

#[derive(Template)]
#[template(path = "orders/list.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    pager: Pager,
}

pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    Query(q): Query<PageQuery>,
) -> WebResult<Response> {
    let list = orders::list(&state.pool, q.params()).await?;
    let pager = Pager::new("/admin/orders", &[], &list);
    let mut ids: Vec<i64> = list.items.iter().map(|o| o.client_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let clients = catalog::clients_by_id(&state.pool, &ids).await?;
    let mut rows = Vec::new();
    for o in list.items {
        rows.push(Row {
            id: o.id,
            client: clients
                .get(&o.client_id)
                .map(|c| format!("{} <{}>", c.name, c.email))
                .unwrap_or_default(),
            status_class: status_class(&o.status),
            status: o.status,
            domains: o
                .services
                .iter()
                .map(|s| s.domain.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            created: when(o.created_at),
        });
    }
    page(
        &state,
        &admin,
        &ListPage {
            chrome: Chrome::new(&admin, "orders"),
            rows,
            pager,
        },
    )
}

#[derive(Template)]
#[template(path = "orders/new.html")]
struct NewPage {
    chrome: Chrome,
    clients: Vec<Choice>,
    products: Vec<Choice>,
    domain: String,
    errors: Errors,
}

async fn render_new(
    state: &AppState,
    admin: &Admin,
    status: StatusCode,
    client_id: i64,
    product_id: i64,
    domain: String,
    errors: Errors,
) -> WebResult<Response> {
    let clients = catalog::list_clients(
        &state.pool,
        PageParams {
            page: 1,
            per_page: 500,
        },
    )
    .await?;
    let t = NewPage {
        chrome: Chrome::new(admin, "orders"),
        clients: clients
            .items
            .into_iter()
            .map(|c| Choice {
                selected: c.id == client_id,
                value: c.id.to_string(),
                label: format!("{} <{}>", c.name, c.email),
            })
            .collect(),
        products: catalog::list_products(&state.pool)
            .await?
            .into_iter()
            .map(|p| Choice {
                selected: p.id == product_id,
                value: p.id.to_string(),
                label: format!(
                    "{} (package {}, set up {})",
                    p.name,
                    p.package,
                    auto_setup_label(&p.auto_setup).to_lowercase()
                ),
            })
            .collect(),
        domain,
        errors,
    };
    page_with(state, admin, status, &t)
}

pub async fn new(State(state): State<AppState>, admin: Admin) -> WebResult<Response> {
    render_new(
        &state,
        &admin,
        StatusCode::OK,
        0,
        0,
        String::new(),
        Errors::default(),
    )
    .await
}

pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    form: FormData,
) -> WebResult<Response> {
    let mut parse_errors = FieldErrors::default();
    let client_id = form.int("client_id", 0, &mut parse_errors);
    let product_id = form.int("product_id", 0, &mut parse_errors);
    let input = OrderInput {
        client_id: (client_id > 0).then_some(client_id),
        client: None,
        product_id,
        domain: form.get("domain"),
    };
    let result = if parse_errors.is_empty() {
        orders::place(&state, &input, TriggeredBy::Admin).await
    } else {
        Err(AppError::Validation(parse_errors))
    };
    match result {
        Ok(o) => Ok(flash_redirect(
            &state,
            &format!("/admin/orders/{}", o.id),
            "success",
            &format!("Order #{} placed.", o.id),
        )),
        Err(e) => {
            let errors = form_errors(e)?;
            render_new(
                &state,
                &admin,
                StatusCode::UNPROCESSABLE_ENTITY,
                client_id,
                product_id,
                input.domain,
                errors,
            )
            .await
        }
    }
}

/// One step of a service's way to an account.
pub struct Step {
    pub label: String,
    /// `done`, `current`, `failed` or `todo`.
    pub state: &'static str,
    pub note: String,
}

pub struct ServiceProgress {
    pub id: i64,
    pub domain: String,
    pub username: String,
    pub status: String,
    pub status_class: &'static str,
    pub steps: Vec<Step>,
    pub error: Option<ErrorBox>,
}

/// The provisioning progress of one service, as steps.
fn progress_of(d: services::ServiceDetail) -> ServiceProgress {
    let services::ServiceDetail {
        service: s,
        product_package: package,
        product_auto_setup: auto_setup,
        server_name: server,
        ..
    } = d;
    let status = s.status.as_str();
    let has_account = matches!(status, "active" | "suspended" | "terminated");
    let step = |label: &str, state: &'static str, note: String| Step {
        label: label.to_owned(),
        state,
        note,
    };
    let queued = match status {
        "pending" => step(
            "Queued for provisioning",
            "todo",
            format!(
                "This product is set up {}.",
                auto_setup_label(&auto_setup).to_lowercase()
            ),
        ),
        _ => step("Queued for provisioning", "done", String::new()),
    };
    let placed = match (&server, status) {
        (Some(name), _) => step("Server chosen", "done", format!("on {name}")),
        (None, "provisioning") => step(
            "Server chosen",
            "current",
            "choosing a server in the product's group…".into(),
        ),
        (None, "failed") => step("Server chosen", "failed", String::new()),
        _ => step("Server chosen", "todo", String::new()),
    };
    let error = s
        .last_error
        .as_ref()
        .and_then(|e| ErrorBox::from_json(&e.0));
    let created = match status {
        _ if has_account => step(
            "Account created on the Panel",
            "done",
            format!("package {package}"),
        ),
        "provisioning" if error.is_some() => step(
            "Account created on the Panel",
            "current",
            "an attempt failed; retrying automatically".into(),
        ),
        "provisioning" if server.is_some() => step(
            "Account created on the Panel",
            "current",
            format!("creating {} with package {package}…", s.username),
        ),
        "failed" => step("Account created on the Panel", "failed", "stopped".into()),
        _ => step("Account created on the Panel", "todo", String::new()),
    };
    let active = match status {
        "active" => step("Active", "done", when_opt(s.activated_at)),
        "failed" => step("Active", "failed", "needs your attention".into()),
        _ if has_account => step("Active", "done", format!("now {status}")),
        _ => step("Active", "todo", String::new()),
    };
    ServiceProgress {
        id: s.id,
        domain: s.domain.clone(),
        username: s.username.clone(),
        status_class: status_class(status),
        status: s.status.to_string(),
        steps: vec![
            step("Order placed", "done", when(s.created_at)),
            queued,
            placed,
            created,
            active,
        ],
        error,
    }
}

#[derive(Template)]
#[template(path = "orders/progress.html")]
struct Progress {
    order_id: i64,
    polling: bool,
    services: Vec<ServiceProgress>,
}

crate::web::page::embeddable!(Progress);

/// One statement for the whole order, however many services it has: this is
/// what the page polls every second while provisioning.
async fn progress_view(state: &AppState, order_id: i64) -> WebResult<Progress> {
    let services: Vec<ServiceProgress> = services::details_of_order(&state.pool, order_id)
        .await?
        .into_iter()
        .map(progress_of)
        .collect();
    if services.is_empty() {
        // Every order has a service: none means no such order.
        orders::get(&state.pool, order_id).await?;
    }
    Ok(Progress {
        order_id,
        polling: services.iter().any(|s| s.status == "provisioning"),
        services,
    })
}

#[derive(Template)]
#[template(path = "orders/show.html")]
struct ShowPage {
    chrome: Chrome,
    id: i64,
    status: String,
    status_class: &'static str,
    client: String,
    client_email: String,
    created: String,
    paid: String,
    progress: Progress,
}

/// The order page; htmx's poll of the same URL (every second while
/// provisioning) gets its live progress only.
pub async fn show(
    State(state): State<AppState>,
    admin: Admin,
    htmx: Htmx,
    Id(id): Id,
) -> WebResult<Response> {
    let progress = progress_view(&state, id).await?;
    if htmx.0 {
        return fragment(&progress).map(vary_htmx);
    }
    let order = orders::get(&state.pool, id).await?;
    let client = catalog::get_client(&state.pool, order.client_id).await?;
    page(
        &state,
        &admin,
        &ShowPage {
            chrome: Chrome::new(&admin, "orders"),
            id,
            status_class: status_class(&order.status),
            status: order.status,
            client: client.name,
            client_email: client.email,
            created: when(order.created_at),
            paid: when_opt(order.paid_at),
            progress,
        },
    )
    .map(vary_htmx)
}

pub async fn pay(State(state): State<AppState>, _admin: Admin, Id(id): Id) -> WebResult<Response> {
    let to = format!("/admin/orders/{id}");
    Ok(match orders::pay(&state, id, TriggeredBy::Admin).await {
        Ok(_) => flash_redirect(&state, &to, "success", &format!("Order #{id} marked paid.")),
        Err(AppError::Conflict { message, .. }) => flash_redirect(&state, &to, "error", &message),
        Err(e) => return Err(e.into()),
    })
}
