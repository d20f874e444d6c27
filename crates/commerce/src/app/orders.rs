//! Orders: client, order and service written in one transaction, with the
//! create job enqueued in that same transaction when the product says so.

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgConnection, PgExecutor};

use crate::app::catalog::{self, ClientInput};
use crate::app::error::{AppError, AppResult};
use crate::app::idempotency::{self, Claim, IdempotencyKey};
use crate::app::page::{Page, PageParams, fetch_page};
use crate::app::services::{self, ServiceRow};
use crate::domain::{Action, AutoSetup, Domain, FieldErrors, ServiceStatus, TriggeredBy};
use crate::state::Core;

pub const PASSWORD_PURPOSE: &str = "services.password";

/// What a service's sealed password is bound to: its row.
pub fn password_binding(service_id: i64) -> crate::crypto::Binding<'static> {
    crate::crypto::Binding::new(PASSWORD_PURPOSE, service_id, "")
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderInput {
    pub client_id: Option<i64>,
    pub client: Option<ClientInput>,
    pub product_id: i64,
    pub domain: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrderService {
    pub id: i64,
    pub status: String,
    pub domain: String,
    pub username: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrderView {
    pub id: i64,
    pub status: String,
    pub client_id: i64,
    pub created_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub services: Vec<OrderService>,
}

#[derive(FromRow)]
struct OrderRow {
    id: i64,
    status: String,
    client_id: i64,
    created_at: DateTime<Utc>,
    paid_at: Option<DateTime<Utc>>,
}

pub async fn get(db: impl PgExecutor<'_> + Copy, id: i64) -> AppResult<OrderView> {
    let o = sqlx::query_as!(
        OrderRow,
        "SELECT id, status, client_id, created_at, paid_at FROM orders WHERE id = $1",
        id
    )
    .fetch_optional(db)
    .await?
    .ok_or(AppError::NotFound("order"))?;
    let rows = services::of_order(db, id).await?;
    Ok(view(o, rows.into_iter()))
}

pub async fn list(db: impl PgExecutor<'_> + Copy, page: PageParams) -> AppResult<Page<OrderView>> {
    let orders: Page<OrderRow> = fetch_page(
        db,
        "id, status, client_id, created_at, paid_at",
        "orders",
        |_: &mut sqlx::QueryBuilder<sqlx::Postgres>| {},
        page,
    )
    .await?;
    let ids: Vec<i64> = orders.items.iter().map(|o| o.id).collect();
    // One query for the services of the whole page, not one per order.
    let services = services::of_orders(db, &ids).await?;
    Ok(orders.map(|o| {
        let id = o.id;
        view(o, services.iter().filter(|s| s.order_id == id).cloned())
    }))
}

fn view(o: OrderRow, services: impl Iterator<Item = ServiceRow>) -> OrderView {
    OrderView {
        id: o.id,
        status: o.status,
        client_id: o.client_id,
        created_at: o.created_at,
        paid_at: o.paid_at,
        services: services
            .map(|s| OrderService {
                id: s.id,
                status: s.status.to_string(),
                domain: s.domain,
                username: s.username,
            })
            .collect(),
    }
}

/// Inserts the service with the first free username derived from the domain.
async fn insert_service(
    conn: &mut PgConnection,
    state: &Core,
    order_id: i64,
    client_id: i64,
    product_id: i64,
    domain: &Domain,
    status: ServiceStatus,
) -> AppResult<ServiceRow> {
    let base = provisioning::username_base(domain.as_str());
    let password = secrecy::SecretString::from(provisioning::generate_password(20));
    // The row id is part of what the password is sealed to: take it first.
    let id =
        sqlx::query_scalar!(r#"SELECT nextval(pg_get_serial_sequence('services', 'id')) as "id!""#)
            .fetch_one(&mut *conn)
            .await?;
    let sealed = state
        .sealer
        .seal(password_binding(id), password.expose_secret().as_bytes());
    for n in 0..100_000u32 {
        let username = provisioning::username_candidate(&base, n);
        let row = services::insert(
            &mut *conn,
            id,
            order_id,
            client_id,
            product_id,
            domain.as_str(),
            &username,
            &sealed,
            status,
        )
        .await?;
        if let Some(row) = row {
            return Ok(row);
        }
    }
    Err(AppError::conflict(format!(
        "no free username left for {}",
        domain.as_str()
    )))
}

/// Places an order. Everything is written in one transaction; the create job is
/// part of it when the product's auto-setup is "on order".
pub async fn place(state: &Core, input: &OrderInput, by: TriggeredBy) -> AppResult<OrderView> {
    match place_once(state, input, by, None).await? {
        Placed::New(view) => Ok(view),
        Placed::Replayed(..) => Err(AppError::conflict("unexpected replay without a key")),
    }
}

/// What `place_once` did.
pub enum Placed {
    New(OrderView),
    /// The key was used before with this request: its first answer.
    Replayed(u16, serde_json::Value),
}

/// Places an order at most once per `Idempotency-Key`: the key, the request's
/// fingerprint and the answer are written in the order's own transaction.
pub async fn place_once(
    state: &Core,
    input: &OrderInput,
    by: TriggeredBy,
    key: Option<&IdempotencyKey>,
) -> AppResult<Placed> {
    let mut errors = FieldErrors::default();
    let domain = errors.check("domain", Domain::parse(&input.domain));
    let new_client = match (&input.client_id, &input.client) {
        (Some(_), Some(_)) => {
            errors.add("client", "give client_id or client, not both");
            None
        }
        (None, None) => {
            errors.add("client_id", "client_id or client {email, name} is required");
            None
        }
        (None, Some(c)) => match c.parse("client.") {
            Ok(parsed) => Some(parsed),
            Err(e) => {
                errors.0.extend(e.0);
                None
            }
        },
        (Some(_), None) => None,
    };
    if input.product_id <= 0 {
        errors.add("product_id", "product_id is required");
    }
    errors.into_result()?;
    let domain = domain.ok_or_else(|| AppError::field("domain", "domain is required"))?;

    let mut tx = state.pool.begin().await.map_err(AppError::from)?;
    if let Some(key) = key {
        let fingerprint =
            crate::crypto::sha256_hex(&serde_json::to_string(input).unwrap_or_default());
        if let Claim::Replay(status, body) = idempotency::claim(&mut tx, key, &fingerprint).await? {
            return Ok(Placed::Replayed(status, body));
        }
    }
    let client_id = match (input.client_id, new_client) {
        (Some(id), _) => {
            catalog::get_client(&mut *tx, id)
                .await
                .map_err(|_| AppError::field("client_id", "no client has this id"))?;
            id
        }
        (None, Some((email, name))) => catalog::upsert_client(&mut *tx, &email, &name).await?,
        (None, None) => {
            return Err(AppError::field(
                "client_id",
                "client_id or client is required",
            ));
        }
    };
    let product = catalog::get_product(&mut *tx, input.product_id)
        .await
        .map_err(|_| AppError::field("product_id", "no product has this id"))?;
    let order = sqlx::query_as!(
        OrderRow,
        "INSERT INTO orders (client_id) VALUES ($1) RETURNING id, status, client_id, created_at, paid_at",
        client_id
    )
    .fetch_one(&mut *tx)
    .await?;
    let on_order = AutoSetup::parse(&product.auto_setup) == Some(AutoSetup::OnOrder);
    let status = if on_order {
        ServiceStatus::Provisioning
    } else {
        ServiceStatus::Pending
    };
    let service = insert_service(
        &mut tx, state, order.id, client_id, product.id, &domain, status,
    )
    .await?;
    if on_order {
        services::queue_action(&mut tx, state, &service, Action::Create, by).await?;
    }
    let (order_id, service_id) = (order.id, service.id);
    // Answer from what was just written: no second read.
    let answer = view(order, std::iter::once(service));
    if let Some(key) = key {
        let body = serde_json::to_value(&answer).unwrap_or_default();
        idempotency::save(&mut tx, key, 201, &body).await?;
    }
    tx.commit().await.map_err(AppError::from)?;
    tracing::info!(order.id = order_id, service.id = service_id, "order placed");
    Ok(Placed::New(answer))
}

/// Marks an order paid and queues creates for its on-payment products.
pub async fn pay(state: &Core, order_id: i64, by: TriggeredBy) -> AppResult<OrderView> {
    let mut tx = state.pool.begin().await.map_err(AppError::from)?;
    let status = sqlx::query_scalar!(
        "SELECT status FROM orders WHERE id = $1 FOR UPDATE",
        order_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    match status.as_deref() {
        None => return Err(AppError::NotFound("order")),
        Some("pending") => {}
        Some(other) => {
            return Err(AppError::conflict(format!(
                "order {order_id} is {other}, not pending"
            )));
        }
    }
    sqlx::query!(
        "UPDATE orders SET status = 'paid', paid_at = now(), updated_at = now() WHERE id = $1",
        order_id
    )
    .execute(&mut *tx)
    .await?;
    let waiting = services::lock_waiting_for_payment(&mut tx, order_id).await?;
    for service in &waiting {
        services::queue_action(&mut tx, state, service, Action::Create, by).await?;
    }
    tx.commit().await.map_err(AppError::from)?;
    get(&state.pool, order_id).await
}
