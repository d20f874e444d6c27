//! `/api/v1` handlers: parse, call the application service, answer. No rules here.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use futures::StreamExt as _;
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::auth::ApiClient;
use crate::api::error::{ApiError, ApiJson, ApiQuery, ApiResult, Id, no_fields, parse_json};
use crate::app::catalog::{self, ClientInput, GroupInput, ProductInput};
use crate::app::connection::{self, UnsavedTest};
use crate::app::log::{self, LogQuery};
use crate::app::orders::{self, OrderInput};
use crate::app::page::PageParams;
use crate::app::servers::{self, ServerInput, ServerPatch};
use crate::app::services::{self, Requested, ServiceAction, ServiceFilter};
use crate::domain::TriggeredBy;
use crate::extract::Action;
use crate::state::AppState;

type Created<T> = (StatusCode, Json<T>);

fn created<T: Serialize>(v: T) -> Created<T> {
    (StatusCode::CREATED, Json(v))
}

pub async fn create_group(
    _: ApiClient,
    State(s): State<AppState>,
    ApiJson(input): ApiJson<GroupInput>,
) -> ApiResult<Created<catalog::Group>> {
    Ok(created(catalog::create_group(&s.pool, &input).await?))
}

pub async fn list_groups(_: ApiClient, State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let items = catalog::list_groups(&s.pool).await?;
    Ok(Json(
        json!({"items": items, "page": 1, "per_page": items.len(), "total": items.len()}),
    ))
}

pub async fn create_server(
    _: ApiClient,
    State(s): State<AppState>,
    ApiJson(input): ApiJson<ServerInput>,
) -> ApiResult<Created<servers::ServerView>> {
    Ok(created(servers::create(&s, &input).await?))
}

pub async fn list_servers(
    _: ApiClient,
    State(s): State<AppState>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Value>> {
    let total = servers::count(&s.pool).await?;
    Ok(Json(
        serde_json::to_value(servers::list(&s.pool, page).await?.total(total)).unwrap_or_default(),
    ))
}

pub async fn get_server(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<servers::ServerView>> {
    Ok(Json(servers::get(&s.pool, id).await?.into()))
}

pub async fn patch_server(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
    ApiJson(patch): ApiJson<ServerPatch>,
) -> ApiResult<Json<servers::ServerView>> {
    Ok(Json(servers::update(&s, id, patch).await?))
}

pub async fn delete_server(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    servers::delete(&s.pool, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_modules(_: ApiClient, State(s): State<AppState>) -> Json<Value> {
    Json(json!(crate::app::modules::list(&s)))
}

pub async fn server_packages(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    Ok(Json(crate::app::modules::server_packages(&s, id).await?))
}

pub async fn test_server(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
    body: axum::body::Bytes,
) -> ApiResult<Json<connection::TestOutcome>> {
    no_fields(&body)?;
    Ok(Json(connection::test_saved(&s, id).await?))
}

pub async fn test_unsaved(
    _: ApiClient,
    State(s): State<AppState>,
    ApiJson(input): ApiJson<UnsavedTest>,
) -> ApiResult<Json<connection::TestOutcome>> {
    Ok(Json(connection::test_unsaved(&s, &input).await?))
}

pub async fn sweep(
    _: ApiClient,
    State(s): State<AppState>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    no_fields(&body)?;
    let slot = connection::start_sweep(&s).await?;
    let started = Instant::now();
    let rows = servers::all(&s.pool).await?;
    let results: Vec<connection::SweepItem> =
        connection::sweep(s.clone(), rows, slot).collect().await;
    Ok(Json(
        json!({"results": results, "elapsed_ms": started.elapsed().as_millis() as u64}),
    ))
}

pub async fn create_product(
    _: ApiClient,
    State(s): State<AppState>,
    ApiJson(input): ApiJson<ProductInput>,
) -> ApiResult<Created<catalog::Product>> {
    Ok(created(catalog::create_product(&s, &input).await?))
}

pub async fn update_product(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
    ApiJson(input): ApiJson<ProductInput>,
) -> ApiResult<Json<catalog::Product>> {
    Ok(Json(catalog::update_product(&s, id, &input).await?))
}

pub async fn list_products(_: ApiClient, State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let items = catalog::list_products(&s.pool).await?;
    Ok(Json(
        json!({"items": items, "page": 1, "per_page": items.len(), "total": items.len()}),
    ))
}

pub async fn get_product(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<catalog::Product>> {
    Ok(Json(catalog::get_product(&s.pool, id).await?))
}

pub async fn create_client(
    _: ApiClient,
    State(s): State<AppState>,
    ApiJson(input): ApiJson<ClientInput>,
) -> ApiResult<Created<catalog::Client>> {
    Ok(created(catalog::create_client(&s.pool, &input).await?))
}

pub async fn list_clients(
    _: ApiClient,
    State(s): State<AppState>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<crate::app::page::Page<catalog::Client>>> {
    Ok(Json(catalog::list_clients(&s.pool, page).await?))
}

pub async fn get_client(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<catalog::Client>> {
    Ok(Json(catalog::get_client(&s.pool, id).await?))
}

/// `Idempotency-Key`: the same key and body answer the first answer again.
pub async fn create_order(
    client: ApiClient,
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    ApiJson(input): ApiJson<OrderInput>,
) -> ApiResult<Created<Value>> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(crate::app::idempotency::IdempotencyKey::parse(
            client.token_id,
            v.to_str().unwrap_or_default(),
        )?),
    };
    let placed = orders::place_once(&s, &input, TriggeredBy::Order, key.as_ref()).await?;
    Ok(match placed {
        orders::Placed::New(view) => created(serde_json::to_value(view).unwrap_or_default()),
        orders::Placed::Replayed(status, body) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED),
            Json(body),
        ),
    })
}

pub async fn list_orders(
    _: ApiClient,
    State(s): State<AppState>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<crate::app::page::Page<orders::OrderView>>> {
    Ok(Json(orders::list(&s.pool, page).await?))
}

pub async fn get_order(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<orders::OrderView>> {
    Ok(Json(orders::get(&s.pool, id).await?))
}

pub async fn pay_order(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
    body: axum::body::Bytes,
) -> ApiResult<Json<orders::OrderView>> {
    no_fields(&body)?;
    Ok(Json(orders::pay(&s, id, TriggeredBy::Api).await?))
}

pub async fn list_services(
    _: ApiClient,
    State(s): State<AppState>,
    ApiQuery(f): ApiQuery<ServiceFilter>,
) -> ApiResult<Json<crate::app::page::Page<services::ServiceView>>> {
    Ok(Json(services::list(&s.pool, &f, f.page()).await?))
}

pub async fn bulk_retry(
    _: ApiClient,
    State(s): State<AppState>,
    ApiJson(f): ApiJson<crate::app::bulk::RetryFilter>,
) -> ApiResult<(StatusCode, Json<crate::app::bulk::Queued>)> {
    let queued = crate::app::bulk::retry_matching(&s, &f.into(), TriggeredBy::Api).await?;
    Ok((StatusCode::ACCEPTED, Json(queued)))
}

pub async fn get_service(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<services::ServiceView>> {
    Ok(Json(services::get(&s.pool, id).await?.into()))
}

pub async fn change_package(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
    ApiJson(input): ApiJson<crate::app::changes::ChangePackage>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let job_id = crate::app::changes::change_package(&s, id, &input, TriggeredBy::Api).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"job_id": job_id}))))
}

pub async fn adopt(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
    ApiJson(input): ApiJson<crate::app::adopt::Adopt>,
) -> ApiResult<Json<services::ServiceView>> {
    Ok(Json(
        crate::app::adopt::adopt(&s, id, &input, TriggeredBy::Api).await?,
    ))
}

pub async fn resend_welcome(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    no_fields(&body)?;
    let key = crate::mail::resend_welcome(&s, id).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"mail": key}))))
}

pub async fn change_password(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    no_fields(&body)?;
    let job_id = crate::app::changes::change_password(&s, id, TriggeredBy::Api).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"job_id": job_id}))))
}

/// `POST /services/{id}/{create,suspend,unsuspend,terminate,retry,sync}`;
/// terminate is irreversible and needs `{"confirm": "<the service's domain>"}`.
/// Every body is parsed strictly: an unknown field is a 422 that names it.
pub async fn service_action(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
    Action(action): Action,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let ServiceAction::Lifecycle(requested) = action else {
        // The other actions have routes of their own, which match first.
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("{} has its own route", action.label()),
        ));
    };
    // An empty body is the default.
    let present = !body.iter().all(u8::is_ascii_whitespace);
    let details = match requested {
        Requested::Terminate => {
            let confirm = if present {
                parse_json::<services::Terminate>(&body)?.confirm
            } else {
                None
            };
            let domain = services::get(&s.pool, id).await?.domain;
            if !confirm.is_some_and(|c| c.trim().eq_ignore_ascii_case(&domain)) {
                return Err(crate::app::error::AppError::field(
                    "confirm",
                    format!("terminate deletes the account and its data on the Panel: send {{\"confirm\": \"{domain}\"}} to confirm"),
                )
                .into());
            }
            services::Details::None
        }
        Requested::Suspend if present => services::Details::Suspend(parse_json(&body)?),
        Requested::Suspend => services::Details::Suspend(services::Suspend::default()),
        Requested::Unsuspend if present => services::Details::Unsuspend(parse_json(&body)?),
        _ => {
            no_fields(&body)?;
            services::Details::None
        }
    };
    let job_id = services::request_with(&s, id, requested, &details, TriggeredBy::Api).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"job_id": job_id}))))
}

pub async fn list_log(
    _: ApiClient,
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> ApiResult<Json<crate::app::page::Page<log::LogEntry>>> {
    let (f, errors) = q.parse();
    errors
        .into_result()
        .map_err(crate::app::error::AppError::from)?;
    Ok(Json(log::list(&s.pool, &f, f.page()).await?))
}

pub async fn get_log(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<log::LogDetail>> {
    Ok(Json(log::get(&s.pool, id).await?))
}
