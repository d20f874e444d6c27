//! The dashboard: services by status, server health, recent failures.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use crate::app::dashboard;
use crate::app::log::{self, LogFilter};
use crate::app::page::PageParams;
use crate::domain::ServiceStatus;
use crate::front::AppState;
use crate::web::error::WebResult;
use crate::web::page::{Chrome, page};
use crate::web::session::Admin;
use crate::web::view::{LogLine, status_class};

struct Tile {
    label: String,
    count: i64,
    class: &'static str,
    href: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    services: Vec<Tile>,
    servers: Vec<Tile>,
    failures: Vec<LogLine>,
    summary: String,
}

pub async fn show(State(state): State<AppState>, admin: Admin) -> WebResult<Response> {
    let (state, admin) = (&state, &admin);
    let by_status = dashboard::services_by_status(&state.pool).await?;
    let count =
        |s: &str, list: &[(String, i64)]| list.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
    let services = ServiceStatus::ALL
        .iter()
        .map(|s| Tile {
            label: s.as_str().to_owned(),
            count: count(s.as_str(), &by_status),
            class: status_class(s.as_str()),
            href: format!("/admin/services?status={}", s.as_str()),
        })
        .collect();
    let mut services: Vec<Tile> = services;
    services.push(Tile {
        label: "drift".to_owned(),
        count: dashboard::services_with_drift(&state.pool).await?,
        class: "warning",
        href: "/admin/services?drift=1".to_owned(),
    });
    let by_health = dashboard::servers_by_health(&state.pool).await?;
    let servers = ["online", "offline", "unknown"]
        .iter()
        .map(|h| Tile {
            label: (*h).to_owned(),
            count: count(h, &by_health),
            class: status_class(h),
            href: "/admin/servers".to_owned(),
        })
        .collect();
    let failed = log::list(
        &state.pool,
        &LogFilter {
            status: Some("failed".into()),
            ..Default::default()
        },
        PageParams {
            page: 1,
            per_page: 10,
        },
    )
    .await?
    .items;
    let failures = crate::web::view::lines(state, failed).await?;
    let t = DashboardPage {
        chrome: Chrome::new(admin, "dashboard"),
        summary: {
            let n: i64 = by_status.iter().map(|(_, n)| n).sum();
            let m: i64 = by_health.iter().map(|(_, n)| n).sum();
            format!(
                "{n} service{} on {m} enabled server{}.",
                if n == 1 { "" } else { "s" },
                if m == 1 { "" } else { "s" }
            )
        },
        services,
        servers,
        failures,
    };
    page(state, admin, &t)
}
