//! Server groups, products and clients: validated create, read and list.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgExecutor};

use crate::app::error::{AppError, AppResult};
use crate::app::page::{Page, PageParams, fetch_page};
use crate::domain::{
    AutoSetup, FieldErrors, Placement, parse_email, parse_limit, parse_name, parse_package,
};
use crate::state::Core;

#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct Group {
    pub id: i64,
    pub name: String,
    #[schema(value_type = crate::domain::Placement)]
    pub placement: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupInput {
    pub name: String,
    #[serde(default = "least_full")]
    #[schema(value_type = crate::domain::Placement)]
    pub placement: String,
}

fn least_full() -> String {
    "least_full".into()
}

pub async fn create_group(db: impl PgExecutor<'_>, input: &GroupInput) -> AppResult<Group> {
    let mut errors = FieldErrors::default();
    let name = errors.check("name", parse_name(&input.name, "name", 100));
    let placement = errors.check(
        "placement",
        Placement::parse(&input.placement)
            .ok_or_else(|| "placement must be least_full or fill".to_owned()),
    );
    errors.into_result()?;
    Ok(sqlx::query_as!(
        Group,
        "INSERT INTO server_groups (name, placement) VALUES ($1, $2) RETURNING id, name, placement, created_at, updated_at",
        name,
        placement.map(Placement::as_str)
    )
    .fetch_one(db)
    .await?)
}

pub async fn list_groups(db: impl PgExecutor<'_>) -> AppResult<Vec<Group>> {
    Ok(sqlx::query_as!(
        Group,
        "SELECT id, name, placement, created_at, updated_at FROM server_groups ORDER BY name"
    )
    .fetch_all(db)
    .await?)
}

#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub module: String,
    pub group_id: i64,
    pub package: String,
    pub disk_limit_mb: i64,
    pub bandwidth_limit_mb: i64,
    #[schema(value_type = crate::domain::AutoSetup)]
    pub auto_setup: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    pub name: String,
    pub module: String,
    pub group_id: i64,
    pub package: String,
    #[serde(default)]
    pub disk_limit_mb: i64,
    #[serde(default)]
    pub bandwidth_limit_mb: i64,
    #[serde(default = "on_order")]
    #[schema(value_type = crate::domain::AutoSetup)]
    pub auto_setup: String,
}

fn on_order() -> String {
    "on_order".into()
}

fn parse_product(
    state: &Core,
    input: &ProductInput,
) -> AppResult<(String, String, AutoSetup, i64, i64)> {
    let mut errors = FieldErrors::default();
    let name = errors.check("name", parse_name(&input.name, "name", 100));
    if !state.registry.contains(&input.module) {
        errors.add(
            "module",
            format!(
                "unknown module {:?}; known: {}",
                input.module,
                state.registry.ids().join(", ")
            ),
        );
    }
    let package = errors.check("package", parse_package(&input.package));
    let disk = errors.check(
        "disk_limit_mb",
        parse_limit(input.disk_limit_mb, "disk_limit_mb"),
    );
    let bw = errors.check(
        "bandwidth_limit_mb",
        parse_limit(input.bandwidth_limit_mb, "bandwidth_limit_mb"),
    );
    let auto = errors.check(
        "auto_setup",
        AutoSetup::parse(&input.auto_setup)
            .ok_or_else(|| "auto_setup must be on_order, on_payment or manual".to_owned()),
    );
    if input.group_id <= 0 {
        errors.add("group_id", "group_id is required");
    }
    errors.into_result()?;
    Ok((
        name.unwrap_or_default(),
        package.unwrap_or_default(),
        auto.unwrap_or(AutoSetup::Manual),
        disk.unwrap_or_default(),
        bw.unwrap_or_default(),
    ))
}

pub async fn create_product(state: &Core, input: &ProductInput) -> AppResult<Product> {
    let (name, package, auto, disk, bw) = parse_product(state, input)?;
    Ok(sqlx::query_as!(
        Product,
        "INSERT INTO products (name, module, group_id, package, disk_limit_mb, bandwidth_limit_mb, auto_setup)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING id, name, module, group_id, package, disk_limit_mb, bandwidth_limit_mb, auto_setup, created_at, updated_at",
        name,
        &input.module,
        input.group_id,
        package,
        disk,
        bw,
        auto.as_str()
    )
    .fetch_one(&state.pool)
    .await?)
}

/// Replaces a product's settings; services already placed keep their accounts.
pub async fn update_product(state: &Core, id: i64, input: &ProductInput) -> AppResult<Product> {
    let (name, package, auto, disk, bw) = parse_product(state, input)?;
    sqlx::query_as!(
        Product,
        "UPDATE products SET name = $2, module = $3, group_id = $4, package = $5, disk_limit_mb = $6,
                bandwidth_limit_mb = $7, auto_setup = $8, updated_at = now()
         WHERE id = $1
         RETURNING id, name, module, group_id, package, disk_limit_mb, bandwidth_limit_mb, auto_setup, created_at, updated_at",
        id,
        name,
        &input.module,
        input.group_id,
        package,
        disk,
        bw,
        auto.as_str()
    )
    .fetch_optional(&state.pool)
    .await?
    .ok_or(AppError::NotFound("product"))
}

pub async fn get_product(db: impl PgExecutor<'_>, id: i64) -> AppResult<Product> {
    sqlx::query_as!(
        Product,
        "SELECT id, name, module, group_id, package, disk_limit_mb, bandwidth_limit_mb, auto_setup, created_at, updated_at FROM products WHERE id = $1",
        id
    )
    .fetch_optional(db)
    .await?
    .ok_or(AppError::NotFound("product"))
}

/// The servers and the products by name (id, name), for the menus and the
/// name columns of a list, in one statement.
pub async fn menus(db: impl PgExecutor<'_>) -> AppResult<Menus> {
    let mut menus = Menus::default();
    let rows = sqlx::query!(
        r#"SELECT true AS "server!", id AS "id!", name AS "name!" FROM servers
           UNION ALL SELECT false, id, name FROM products
           ORDER BY 1 DESC, 3, 2"#
    )
    .fetch_all(db)
    .await?;
    for r in rows {
        let list = if r.server {
            &mut menus.servers
        } else {
            &mut menus.products
        };
        list.push((r.id, r.name));
    }
    Ok(menus)
}

/// What [`menus`] reads.
#[derive(Debug, Default)]
pub struct Menus {
    pub servers: Vec<(i64, String)>,
    pub products: Vec<(i64, String)>,
}

pub async fn list_products(db: impl PgExecutor<'_>) -> AppResult<Vec<Product>> {
    Ok(sqlx::query_as!(
        Product,
        "SELECT id, name, module, group_id, package, disk_limit_mb, bandwidth_limit_mb, auto_setup, created_at, updated_at FROM products ORDER BY name"
    )
    .fetch_all(db)
    .await?)
}

#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct Client {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientInput {
    pub email: String,
    pub name: String,
}

impl ClientInput {
    pub fn parse(&self, prefix: &str) -> Result<(String, String), FieldErrors> {
        let mut errors = FieldErrors::default();
        let email = errors.check(&format!("{prefix}email"), parse_email(&self.email));
        let name = errors.check(
            &format!("{prefix}name"),
            parse_name(&self.name, "name", 200),
        );
        errors.into_result()?;
        Ok((email.unwrap_or_default(), name.unwrap_or_default()))
    }
}

pub async fn create_client(db: impl PgExecutor<'_>, input: &ClientInput) -> AppResult<Client> {
    let (email, name) = input.parse("")?;
    Ok(sqlx::query_as!(
        Client,
        "INSERT INTO clients (email, name) VALUES ($1, $2) RETURNING id, email, name, created_at, updated_at",
        email,
        name
    )
    .fetch_one(db)
    .await?)
}

/// The client with this email, created if new (orders for returning clients).
pub async fn upsert_client(db: impl PgExecutor<'_>, email: &str, name: &str) -> AppResult<i64> {
    Ok(sqlx::query_scalar!(
        "INSERT INTO clients (email, name) VALUES ($1, $2)
         ON CONFLICT ((lower(email))) DO UPDATE SET updated_at = now() RETURNING id",
        email,
        name
    )
    .fetch_one(db)
    .await?)
}

pub async fn get_client(db: impl PgExecutor<'_>, id: i64) -> AppResult<Client> {
    sqlx::query_as!(
        Client,
        "SELECT id, email, name, created_at, updated_at FROM clients WHERE id = $1",
        id
    )
    .fetch_optional(db)
    .await?
    .ok_or(AppError::NotFound("client"))
}

pub async fn list_clients(
    db: impl PgExecutor<'_> + Copy,
    page: PageParams,
) -> AppResult<Page<Client>> {
    Ok(fetch_page(
        db,
        "id, email, name, created_at, updated_at",
        "clients",
        |_: &mut sqlx::QueryBuilder<sqlx::Postgres>| {},
        page,
    )
    .await?)
}

/// The clients `ids` names, by id: one indexed read for a page of orders.
pub async fn clients_by_id(
    db: impl PgExecutor<'_>,
    ids: &[i64],
) -> AppResult<std::collections::HashMap<i64, Client>> {
    let rows = sqlx::query_as!(
        Client,
        "SELECT id, email, name, created_at, updated_at FROM clients WHERE id = ANY($1)",
        ids
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|c| (c.id, c)).collect())
}
