//! Clients: list and create.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::app::catalog::{self, Client, ClientInput};
use crate::app::page::PageQuery;
use crate::front::AppState;
use crate::web::error::WebResult;
use crate::web::form::{Errors, FormData, form_errors};
use crate::web::page::{Chrome, page_with};
use crate::web::session::{Admin, flash_redirect};
use crate::web::view::{Pager, when};

struct Row {
    id: i64,
    name: String,
    email: String,
    created: String,
}

#[derive(Template)]
#[template(path = "clients/list.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    pager: Pager,
    name: String,
    email: String,
    errors: Errors,
}

async fn render(
    state: &AppState,
    admin: &Admin,
    status: StatusCode,
    q: PageQuery,
    input: ClientInput,
    errors: Errors,
) -> WebResult<Response> {
    let params = q.params();
    let list = catalog::list_clients(&state.pool, params).await?;
    let pager = Pager::new("/admin/clients", &[], &list);
    let rows = list
        .items
        .into_iter()
        .map(|c: Client| Row {
            id: c.id,
            name: c.name,
            email: c.email,
            created: when(c.created_at),
        })
        .collect();
    let t = ListPage {
        chrome: Chrome::new(admin, "clients"),
        rows,
        pager,
        name: input.name,
        email: input.email,
        errors,
    };
    page_with(state, admin, status, &t)
}

pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    Query(q): Query<PageQuery>,
) -> WebResult<Response> {
    let empty = ClientInput {
        email: String::new(),
        name: String::new(),
    };
    render(&state, &admin, StatusCode::OK, q, empty, Errors::default()).await
}

pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    form: FormData,
) -> WebResult<Response> {
    let input = ClientInput {
        email: form.get("email"),
        name: form.get("name"),
    };
    match catalog::create_client(&state.pool, &input).await {
        Ok(c) => Ok(flash_redirect(
            &state,
            "/admin/clients",
            "success",
            &format!("Client {} <{}> added.", c.name, c.email),
        )),
        Err(e) => {
            let errors = form_errors(e)?;
            render(
                &state,
                &admin,
                StatusCode::UNPROCESSABLE_ENTITY,
                PageQuery::default(),
                input,
                errors,
            )
            .await
        }
    }
}
