//! Catalog → Products: the package name must match the Panel's exactly.

use std::collections::HashMap;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use crate::app::catalog::{self, ProductInput};
use crate::app::error::AppError;
use crate::domain::{AutoSetup, FieldErrors};
use crate::front::AppState;
use crate::web::error::WebResult;
use crate::web::form::{Errors, FormData, form_errors};
use crate::web::page::{Chrome, Id, page, page_with};
use crate::web::product_package::PackageField;
use crate::web::session::{Admin, flash_redirect};
use crate::web::view::{Choice, auto_setup_label};

fn mb(v: i64) -> String {
    if v == 0 {
        "Unlimited".to_owned()
    } else if v % 1024 == 0 {
        format!("{} GB", v / 1024)
    } else {
        format!("{v} MB")
    }
}

struct Row {
    id: i64,
    name: String,
    module: String,
    group: String,
    package: String,
    disk: String,
    bandwidth: String,
    auto_setup: &'static str,
}

#[derive(Template)]
#[template(path = "products/list.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
}

pub async fn list(State(state): State<AppState>, admin: Admin) -> WebResult<Response> {
    let groups: HashMap<i64, String> = catalog::list_groups(&state.pool)
        .await?
        .into_iter()
        .map(|g| (g.id, g.name))
        .collect();
    let rows = catalog::list_products(&state.pool)
        .await?
        .into_iter()
        .map(|p| Row {
            id: p.id,
            module: state
                .registry
                .get(&p.module)
                .map_or_else(|| p.module.clone(), |m| m.info().label.to_owned()),
            group: groups.get(&p.group_id).cloned().unwrap_or_default(),
            disk: mb(p.disk_limit_mb),
            bandwidth: mb(p.bandwidth_limit_mb),
            auto_setup: auto_setup_label(&p.auto_setup),
            name: p.name,
            package: p.package,
        })
        .collect();
    page(
        &state,
        &admin,
        &ListPage {
            chrome: Chrome::new(&admin, "products"),
            rows,
        },
    )
}

#[derive(Template)]
#[template(path = "products/form.html")]
struct FormPage {
    chrome: Chrome,
    title: String,
    action: String,
    name: String,
    package: PackageField,
    disk: String,
    bandwidth: String,
    modules: Vec<Choice>,
    groups: Vec<Choice>,
    auto_setups: Vec<Choice>,
    errors: Errors,
}

crate::web::page::embeddable!(PackageField);

struct Values {
    name: String,
    module: String,
    group_id: i64,
    package: String,
    disk: String,
    bandwidth: String,
    auto_setup: String,
}

async fn render(
    state: &AppState,
    admin: &Admin,
    status: StatusCode,
    id: Option<i64>,
    v: Values,
    errors: Errors,
) -> WebResult<Response> {
    let groups = catalog::list_groups(&state.pool).await?;
    let mut package = PackageField::build(state, &v.module, v.group_id, &v.package).await;
    package.error = errors.has("package").then(|| errors.of("package"));
    let t = FormPage {
        chrome: Chrome::new(admin, "products"),
        title: if id.is_some() {
            format!("Edit product {}", v.name)
        } else {
            "New product".to_owned()
        },
        action: id.map_or_else(
            || "/admin/products".to_owned(),
            |i| format!("/admin/products/{i}"),
        ),
        modules: state
            .registry
            .all()
            .map(|m| Choice {
                value: m.info().id.to_owned(),
                label: m.info().label.to_owned(),
                selected: m.info().id == v.module,
            })
            .collect(),
        groups: groups
            .into_iter()
            .map(|g| Choice {
                selected: g.id == v.group_id,
                value: g.id.to_string(),
                label: g.name,
            })
            .collect(),
        auto_setups: AutoSetup::ALL
            .iter()
            .map(|a| Choice {
                value: a.as_str().to_owned(),
                label: auto_setup_label(a.as_str()).to_owned(),
                selected: a.as_str() == v.auto_setup,
            })
            .collect(),
        name: v.name,
        package,
        disk: v.disk,
        bandwidth: v.bandwidth,
        errors,
    };
    page_with(state, admin, status, &t)
}

pub async fn new(State(state): State<AppState>, admin: Admin) -> WebResult<Response> {
    let v = Values {
        name: String::new(),
        module: "opterius".into(),
        group_id: 0,
        package: String::new(),
        disk: "0".into(),
        bandwidth: "0".into(),
        auto_setup: "on_order".into(),
    };
    render(&state, &admin, StatusCode::OK, None, v, Errors::default()).await
}

pub async fn edit(State(state): State<AppState>, admin: Admin, Id(id): Id) -> WebResult<Response> {
    let p = catalog::get_product(&state.pool, id).await?;
    let v = Values {
        name: p.name,
        module: p.module,
        group_id: p.group_id,
        package: p.package,
        disk: p.disk_limit_mb.to_string(),
        bandwidth: p.bandwidth_limit_mb.to_string(),
        auto_setup: p.auto_setup,
    };
    render(
        &state,
        &admin,
        StatusCode::OK,
        Some(id),
        v,
        Errors::default(),
    )
    .await
}

async fn save(
    state: AppState,
    admin: Admin,
    id: Option<i64>,
    form: FormData,
) -> WebResult<Response> {
    let mut parse_errors = FieldErrors::default();
    let input = ProductInput {
        name: form.get("name"),
        module: form.get("module"),
        group_id: form.int("group_id", 0, &mut parse_errors),
        package: form.get("package"),
        disk_limit_mb: form.int("disk_limit_mb", 0, &mut parse_errors),
        bandwidth_limit_mb: form.int("bandwidth_limit_mb", 0, &mut parse_errors),
        auto_setup: form.get("auto_setup"),
    };
    let result = if !parse_errors.is_empty() {
        Err(AppError::Validation(parse_errors))
    } else if let Some(id) = id {
        catalog::update_product(&state, id, &input).await
    } else {
        catalog::create_product(&state, &input).await
    };
    match result {
        Ok(p) => Ok(flash_redirect(
            &state,
            "/admin/products",
            "success",
            &format!("Product {} saved (package \"{}\").", p.name, p.package),
        )),
        Err(e) => {
            let errors = form_errors(e)?;
            let v = Values {
                name: input.name,
                module: input.module,
                group_id: input.group_id,
                package: input.package,
                disk: form.get("disk_limit_mb"),
                bandwidth: form.get("bandwidth_limit_mb"),
                auto_setup: input.auto_setup,
            };
            render(
                &state,
                &admin,
                StatusCode::UNPROCESSABLE_ENTITY,
                id,
                v,
                errors,
            )
            .await
        }
    }
}

pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    form: FormData,
) -> WebResult<Response> {
    save(state, admin, None, form).await
}

pub async fn update(
    State(state): State<AppState>,
    admin: Admin,
    Id(id): Id,
    form: FormData,
) -> WebResult<Response> {
    save(state, admin, Some(id), form).await
}
