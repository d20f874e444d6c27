//! Infrastructure → Server groups: list and create.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use crate::app::catalog::{self, GroupInput};
use crate::app::servers;
use crate::front::AppState;
use crate::web::error::WebResult;
use crate::web::form::{Errors, FormData, form_errors};
use crate::web::page::{Chrome, page_with};
use crate::web::session::{Admin, flash_redirect};

struct Row {
    name: String,
    placement: String,
    servers: usize,
    online: usize,
}

#[derive(Template)]
#[template(path = "groups/list.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    name: String,
    placement: String,
    errors: Errors,
}

async fn render(
    state: &AppState,
    admin: &Admin,
    status: StatusCode,
    name: String,
    placement: String,
    errors: Errors,
) -> WebResult<Response> {
    let all = servers::all(&state.pool).await?;
    let rows = catalog::list_groups(&state.pool)
        .await?
        .into_iter()
        .map(|g| {
            let members = all.iter().filter(|s| s.group_id == g.id);
            Row {
                servers: members.clone().count(),
                online: members.filter(|s| s.health_status == "online").count(),
                name: g.name,
                placement: match g.placement.as_str() {
                    "fill" => "Fill until full".to_owned(),
                    _ => "Least full first".to_owned(),
                },
            }
        })
        .collect();
    let t = ListPage {
        chrome: Chrome::new(admin, "groups"),
        rows,
        name,
        placement,
        errors,
    };
    page_with(state, admin, status, &t)
}

pub async fn list(State(state): State<AppState>, admin: Admin) -> WebResult<Response> {
    render(
        &state,
        &admin,
        StatusCode::OK,
        String::new(),
        "least_full".into(),
        Errors::default(),
    )
    .await
}

pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    form: FormData,
) -> WebResult<Response> {
    let input = GroupInput {
        name: form.get("name"),
        placement: form.get("placement"),
    };
    match catalog::create_group(&state.pool, &input).await {
        Ok(g) => Ok(flash_redirect(
            &state,
            "/admin/groups",
            "success",
            &format!("Server group {} created.", g.name),
        )),
        Err(e) => {
            let errors = form_errors(e)?;
            render(
                &state,
                &admin,
                StatusCode::UNPROCESSABLE_ENTITY,
                input.name,
                input.placement,
                errors,
            )
            .await
        }
    }
}
