//! Commerce: the provisioning service. Orders become hosting accounts on Opterius
//! Panel servers through an apalis job queue on PostgreSQL; every step is logged.

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod crypto;
#[cfg(feature = "demo")]
pub mod demo;
pub mod domain;
pub mod extract;
pub mod front;
pub mod jobs;
pub mod listener;
pub mod mail;
pub mod metrics;
pub mod provisioner;
pub mod runtime;
pub mod state;
pub mod web;

use std::time::Duration;

use axum::Router;
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::front::AppState;

/// The app's own migrations (apalis keeps its own schema).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// The most a request body may weigh.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Opens the workers' pool: `DATABASE_MAX_CONNECTIONS` for the work, plus
/// the one the workers' shared LISTEN holds for good. Its connections are named
/// `commerce` in `pg_stat_activity` (unless DATABASE_URL names them).
pub async fn connect(config: &Config) -> anyhow::Result<sqlx::PgPool> {
    use anyhow::Context as _;
    let options: PgConnectOptions = config
        .database_url
        .parse()
        .context("DATABASE_URL is not a PostgreSQL URL (postgres://user@host:port/database)")?;
    pool_options()
        .max_connections(config.database_max_connections.saturating_add(1))
        .connect_with(match options.get_application_name() {
            Some(_) => options,
            None => options.application_name("commerce"),
        })
        .await
        .with_context(|| "could not connect to PostgreSQL at DATABASE_URL: is it running, and does the database exist?")
}

/// The HTTP side's own pool (`DATABASE_HTTP_CONNECTIONS`, `commerce http` in
/// `pg_stat_activity`), beside the workers' `pool`: a bulkhead. A burst of
/// admin or API requests cannot take the connections jobs need, a busy queue
/// cannot keep the admin out, and a few connections serve requests faster
/// than many: on two cores, 4 instead of 20 cut the admin pages' p99 by a
/// third (BENCHMARKS.md, run 13). It connects when first used.
pub fn http_pool(pool: &sqlx::PgPool, config: &Config) -> sqlx::PgPool {
    let options = (*pool.connect_options()).clone();
    let options = match options.get_application_name() {
        Some("commerce") => options.application_name("commerce http"),
        _ => options,
    };
    pool_options()
        .max_connections(config.database_http_connections)
        .connect_lazy_with(options)
}

/// A pooled connection idle this long is pinged before it is handed out.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// What both pools share. sqlx pings every connection before it hands it out
/// (`test_before_acquire`): one extra round trip per statement, a fifth of an
/// admin page's cost (BENCHMARKS.md, run 14). Here only a connection that sat
/// idle for a second is pinged, so a PostgreSQL restart is still noticed
/// before a statement fails on a dead connection, while a busy pool, whose
/// connections were just used, skips the round trip.
fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_WHEN_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// Applies the app's and apalis's migrations; safe to run again.
pub async fn migrate(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await?;
    jobs::setup(pool).await
}

/// The whole HTTP app: JSON API, health, metrics, admin UI.
pub fn router(state: AppState) -> Router {
    api::router()
        .merge(web::router())
        .with_state(state)
        // A limit on the body extractors (not a raw layer), so an oversized body
        // is answered in the API's JSON error shape.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        // A client must finish sending its body in time (the header read
        // timeout is set on the connection, in `listener`).
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            BODY_READ_TIMEOUT,
        ))
        // No response is ever sniffed into another type (static files included).
        .layer(tower_http::set_header::SetResponseHeaderLayer::if_not_present(
            axum::http::header::X_CONTENT_TYPE_OPTIONS,
            axum::http::HeaderValue::from_static("nosniff"),
        ))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
        }))
}

/// Time a client has to send a request body.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Builds state from config: pool, HTTP client, registry.
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    let pool = connect(&config).await?;
    AppState::new(pool, config)
}
