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
use crate::front::AppState;

type Created<T> = (StatusCode, Json<T>);

/// `202 {job_id}`: the job that carries the action out.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobQueued {
    pub job_id: String,
}

/// What a sweep found: one result per enabled server.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SweepResults {
    pub results: Vec<connection::SweepItem>,
    pub elapsed_ms: u64,
}

/// A list that is never paged: one page holding everything.
fn one_page<T>(items: Vec<T>) -> crate::app::page::Page<T> {
    let n = i64::try_from(items.len()).unwrap_or(i64::MAX);
    crate::app::page::Page {
        items,
        page: 1,
        per_page: n,
        total: Some(n),
        total_capped: false,
    }
}

fn created<T: Serialize>(v: T) -> Created<T> {
    (StatusCode::CREATED, Json(v))
}

#[utoipa::path(
    post,
    path = "/api/v1/server-groups",
    summary = "Create a server group",
    request_body = GroupInput,
    responses((status = 201, description = "Created", body = catalog::Group)),
)]
pub async fn create_group(
    _: ApiClient,
    State(s): State<AppState>,
    ApiJson(input): ApiJson<GroupInput>,
) -> ApiResult<Created<catalog::Group>> {
    Ok(created(catalog::create_group(&s.pool, &input).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/server-groups",
    summary = "List server groups",
    responses((status = 200, description = "Every group (one page)", body = crate::app::page::Page<catalog::Group>)),
)]
pub async fn list_groups(
    _: ApiClient,
    State(s): State<AppState>,
) -> ApiResult<Json<crate::app::page::Page<catalog::Group>>> {
    Ok(Json(one_page(catalog::list_groups(&s.pool).await?)))
}

#[utoipa::path(
    post,
    path = "/api/v1/servers",
    summary = "Add a server (secrets are stored encrypted, never returned)",
    request_body = ServerInput,
    responses((status = 201, description = "Created", body = servers::ServerView)),
)]
pub async fn create_server(
    _: ApiClient,
    State(s): State<AppState>,
    ApiJson(input): ApiJson<ServerInput>,
) -> ApiResult<Created<servers::ServerView>> {
    Ok(created(servers::create(&s, &input).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/servers",
    summary = "List servers",
    params(PageParams),
    responses((status = 200, description = "A page of servers", body = crate::app::page::Page<servers::ServerView>)),
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/servers/{id}",
    summary = "Get a server",
    params(("id" = i64, Path, description = "the row id (a positive integer)")),
    responses((status = 200, description = "The server", body = servers::ServerView)),
)]
pub async fn get_server(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<servers::ServerView>> {
    Ok(Json(servers::get(&s.pool, id).await?.into()))
}

#[utoipa::path(
    patch,
    path = "/api/v1/servers/{id}",
    summary = "Update a server; without api_token the stored one is kept",
    params(("id" = i64, Path, description = "the row id (a positive integer)")),
    request_body = ServerPatch,
    responses((status = 200, description = "The server", body = servers::ServerView)),
)]
pub async fn patch_server(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
    ApiJson(patch): ApiJson<ServerPatch>,
) -> ApiResult<Json<servers::ServerView>> {
    Ok(Json(servers::update(&s, id, patch).await?))
}

#[utoipa::path(
    delete,
    path = "/api/v1/servers/{id}",
    summary = "Delete a server with no services",
    params(("id" = i64, Path, description = "the row id (a positive integer)")),
    responses((status = 204, description = "Deleted")),
)]
pub async fn delete_server(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    servers::delete(&s, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/api/v1/modules",
    summary = "Modules with their credential fields and capabilities",
    responses((status = 200, description = "Every module", body = Vec<crate::app::modules::ModuleView>)),
)]
pub async fn list_modules(_: ApiClient, State(s): State<AppState>) -> Json<Value> {
    Json(json!(crate::app::modules::list(&s)))
}

#[utoipa::path(
    get,
    path = "/api/v1/servers/{id}/packages",
    summary = "The Panel's packages (409 when the server's module cannot list them)",
    params(("id" = i64, Path, description = "the row id (a positive integer)")),
    responses((status = 200, description = "`{items: [{name, ...}]}` as the Panel lists them", body = serde_json::Value)),
)]
pub async fn server_packages(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    Ok(Json(crate::app::modules::server_packages(&s, id).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/servers/{id}/test",
    summary = "Test a saved server and store the result",
    params(("id" = i64, Path, description = "the row id (a positive integer)")),
    responses((status = 200, description = "The outcome", body = connection::TestOutcome)),
)]
pub async fn test_server(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
    body: axum::body::Bytes,
) -> ApiResult<Json<connection::TestOutcome>> {
    no_fields(&body)?;
    Ok(Json(connection::test_saved(&s, id).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/servers/test",
    summary = "Test unsaved credentials (with server_id, a blank secret means the stored one)",
    request_body = UnsavedTest,
    responses((status = 200, description = "The outcome", body = connection::TestOutcome)),
)]
pub async fn test_unsaved(
    _: ApiClient,
    State(s): State<AppState>,
    ApiJson(input): ApiJson<UnsavedTest>,
) -> ApiResult<Json<connection::TestOutcome>> {
    Ok(Json(connection::test_unsaved(&s, &input).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/servers/sweep",
    summary = "Test every enabled server concurrently",
    responses((status = 200, description = "One result per server", body = SweepResults)),
)]
pub async fn sweep(
    _: ApiClient,
    State(s): State<AppState>,
    body: axum::body::Bytes,
) -> ApiResult<Json<SweepResults>> {
    no_fields(&body)?;
    let slot = connection::start_sweep(&s).await?;
    let started = Instant::now();
    let rows = servers::all(&s.pool).await?;
    let results: Vec<connection::SweepItem> = connection::sweep(s.core.clone(), rows, slot)
        .collect()
        .await;
    Ok(Json(SweepResults {
        results,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/products",
    summary = "Create a product",
    request_body = ProductInput,
    responses((status = 201, description = "Created", body = catalog::Product)),
)]
pub async fn create_product(
    _: ApiClient,
    State(s): State<AppState>,
    ApiJson(input): ApiJson<ProductInput>,
) -> ApiResult<Created<catalog::Product>> {
    Ok(created(catalog::create_product(&s, &input).await?))
}

#[utoipa::path(
    put,
    path = "/api/v1/products/{id}",
    summary = "Replace a product's settings",
    params(("id" = i64, Path, description = "the row id (a positive integer)")),
    request_body = ProductInput,
    responses((status = 200, description = "The product", body = catalog::Product)),
)]
pub async fn update_product(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
    ApiJson(input): ApiJson<ProductInput>,
) -> ApiResult<Json<catalog::Product>> {
    Ok(Json(catalog::update_product(&s, id, &input).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/products",
    summary = "List products",
    responses((status = 200, description = "Every product (one page)", body = crate::app::page::Page<catalog::Product>)),
)]
pub async fn list_products(
    _: ApiClient,
    State(s): State<AppState>,
) -> ApiResult<Json<crate::app::page::Page<catalog::Product>>> {
    Ok(Json(one_page(catalog::list_products(&s.pool).await?)))
}

#[utoipa::path(
    get,
    path = "/api/v1/products/{id}",
    summary = "Get a product",
    params(("id" = i64, Path, description = "the row id (a positive integer)")),
    responses((status = 200, description = "The product", body = catalog::Product)),
)]
pub async fn get_product(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<catalog::Product>> {
    Ok(Json(catalog::get_product(&s.pool, id).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/clients",
    summary = "Create a client",
    request_body = ClientInput,
    responses((status = 201, description = "Created", body = catalog::Client)),
)]
pub async fn create_client(
    _: ApiClient,
    State(s): State<AppState>,
    ApiJson(input): ApiJson<ClientInput>,
) -> ApiResult<Created<catalog::Client>> {
    Ok(created(catalog::create_client(&s.pool, &input).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/clients",
    summary = "List clients",
    params(PageParams),
    responses((status = 200, description = "A page of clients", body = crate::app::page::Page<catalog::Client>)),
)]
pub async fn list_clients(
    _: ApiClient,
    State(s): State<AppState>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<crate::app::page::Page<catalog::Client>>> {
    Ok(Json(catalog::list_clients(&s.pool, page).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/clients/{id}",
    summary = "Get a client",
    params(("id" = i64, Path, description = "the row id (a positive integer)")),
    responses((status = 200, description = "The client", body = catalog::Client)),
)]
pub async fn get_client(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<catalog::Client>> {
    Ok(Json(catalog::get_client(&s.pool, id).await?))
}

/// `Idempotency-Key`: the same key and body answer the first answer again.
#[utoipa::path(
    post,
    path = "/api/v1/orders",
    summary = "Place an order (client, order and service in one transaction). With an Idempotency-Key header, the same key and body answer the first answer again; the same key with another body gets 422; keys live 24 h",
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retried request safe: the same key and body answer the first answer again")),
    request_body = OrderInput,
    responses((status = 201, description = "Placed (or the first answer, replayed)", body = orders::OrderView)),
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/orders",
    summary = "List orders",
    params(PageParams),
    responses((status = 200, description = "A page of orders", body = crate::app::page::Page<orders::OrderView>)),
)]
pub async fn list_orders(
    _: ApiClient,
    State(s): State<AppState>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<crate::app::page::Page<orders::OrderView>>> {
    Ok(Json(orders::list(&s.pool, page).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/orders/{id}",
    summary = "Get an order",
    params(("id" = i64, Path, description = "the row id (a positive integer)")),
    responses((status = 200, description = "The order", body = orders::OrderView)),
)]
pub async fn get_order(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<orders::OrderView>> {
    Ok(Json(orders::get(&s.pool, id).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/orders/{id}/pay",
    summary = "Mark an order paid; queues on-payment provisioning",
    params(("id" = i64, Path, description = "the row id (a positive integer)")),
    responses((status = 200, description = "The order", body = orders::OrderView)),
)]
pub async fn pay_order(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
    body: axum::body::Bytes,
) -> ApiResult<Json<orders::OrderView>> {
    no_fields(&body)?;
    Ok(Json(orders::pay(&s, id, TriggeredBy::Api).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/services",
    summary = "List services (filters: status, server_id, product_id, client_id, order_id, q, kind, drift)",
    params(ServiceFilter, crate::app::page::PageQuery),
    responses((status = 200, description = "A page of services", body = crate::app::page::Page<services::ServiceView>)),
)]
pub async fn list_services(
    _: ApiClient,
    State(s): State<AppState>,
    ApiQuery(f): ApiQuery<ServiceFilter>,
) -> ApiResult<Json<crate::app::page::Page<services::ServiceView>>> {
    Ok(Json(services::list(&s.pool, &f, f.page()).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/services/retry",
    summary = "Queue a retry for every service the filters select (status, default failed; server_id, product_id, client_id, q, kind = the last error's kind); answers {count, job_ids}",
    request_body = crate::app::bulk::RetryFilter,
    responses((status = 202, description = "Queued", body = crate::app::bulk::Queued)),
)]
pub async fn bulk_retry(
    _: ApiClient,
    State(s): State<AppState>,
    ApiJson(f): ApiJson<crate::app::bulk::RetryFilter>,
) -> ApiResult<(StatusCode, Json<crate::app::bulk::Queued>)> {
    let queued = crate::app::bulk::retry_matching(&s, &f.into(), TriggeredBy::Api).await?;
    Ok((StatusCode::ACCEPTED, Json(queued)))
}

#[utoipa::path(
    get,
    path = "/api/v1/services/{id}",
    summary = "Get a service (never its password)",
    params(("id" = i64, Path, description = "the row id (a positive integer)")),
    responses((status = 200, description = "The service", body = services::ServiceView)),
)]
pub async fn get_service(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<services::ServiceView>> {
    Ok(Json(services::get(&s.pool, id).await?.into()))
}

#[utoipa::path(
    post,
    path = "/api/v1/services/{id}/change-package",
    summary = "Queue a move to another product's package (same module) on the Panel",
    params(("id" = i64, Path, description = "the row id (a positive integer)")),
    request_body = crate::app::changes::ChangePackage,
    responses((status = 202, description = "Queued", body = JobQueued)),
)]
pub async fn change_package(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
    ApiJson(input): ApiJson<crate::app::changes::ChangePackage>,
) -> ApiResult<(StatusCode, Json<JobQueued>)> {
    let job_id = crate::app::changes::change_package(&s, id, &input, TriggeredBy::Api).await?;
    Ok((StatusCode::ACCEPTED, Json(JobQueued { job_id })))
}

#[utoipa::path(
    post,
    path = "/api/v1/services/{id}/adopt",
    summary = "Settle a failed create as active on the account the Panel holds (by id, or looked up by username)",
    params(("id" = i64, Path, description = "the row id (a positive integer)")),
    request_body = crate::app::adopt::Adopt,
    responses((status = 200, description = "The service, active", body = services::ServiceView)),
)]
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

#[utoipa::path(
    post,
    path = "/api/v1/services/{id}/resend-welcome",
    summary = "Queue the welcome mail again (the client's login with the service's current password; never in the answer)",
    params(("id" = i64, Path, description = "the row id (a positive integer)")),
    responses((status = 202, description = "Queued: `{mail}` names the outbox row", body = serde_json::Value)),
)]
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

#[utoipa::path(
    post,
    path = "/api/v1/services/{id}/change-password",
    summary = "Queue a new generated password on the Panel (never returned)",
    params(("id" = i64, Path, description = "the row id (a positive integer)")),
    responses((status = 202, description = "Queued", body = JobQueued)),
)]
pub async fn change_password(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<JobQueued>)> {
    no_fields(&body)?;
    let job_id = crate::app::changes::change_password(&s, id, TriggeredBy::Api).await?;
    Ok((StatusCode::ACCEPTED, Json(JobQueued { job_id })))
}

/// `POST /services/{id}/{create,suspend,unsuspend,terminate,retry,sync}`;
/// terminate is irreversible and needs `{"confirm": "<the service's domain>"}`.
/// Every body is parsed strictly: an unknown field is a 422 that names it.
#[utoipa::path(
    post,
    path = "/api/v1/services/{id}/{action}",
    summary = "Queue create, suspend, unsuspend, terminate, retry or sync (read usage and status from the Panel). Suspend takes an optional Suspend body {reason: overdue|abuse|other (default other), note}; unsuspend an optional Unsuspend body {only_if_reason}, 409 with nothing sent when the service is suspended for another reason. Terminate is irreversible and needs a Terminate body {\"confirm\": \"<the service's domain>\"}; retry never re-runs a failed terminate. Any other field is a 422",
    params(("id" = i64, Path, description = "the service id"), ("action" = String, Path, description = "create, suspend, unsuspend, terminate, retry or sync")),
    responses((status = 202, description = "Queued", body = JobQueued)),
)]
pub async fn service_action(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
    Action(action): Action,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<JobQueued>)> {
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
    Ok((StatusCode::ACCEPTED, Json(JobQueued { job_id })))
}

#[utoipa::path(
    get,
    path = "/api/v1/provisioning-log",
    summary = "List provisioning log entries (filters: service_id, server_id, action, status, since, until)",
    params(LogQuery),
    responses((status = 200, description = "A page of entries, newest first", body = crate::app::page::Page<log::LogEntry>)),
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/provisioning-log/{id}",
    summary = "Get one entry with its redacted request and response",
    params(("id" = i64, Path, description = "the row id (a positive integer)")),
    responses((status = 200, description = "The entry", body = log::LogDetail)),
)]
pub async fn get_log(
    _: ApiClient,
    State(s): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<log::LogDetail>> {
    Ok(Json(log::get(&s.pool, id).await?))
}
