//! Recent admin alerts and the "Send test alert" button.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use crate::app::alerts::{self, Alert};
use crate::state::AppState;
use crate::web::error::WebResult;
use crate::web::page::{Chrome, page};
use crate::web::session::{Admin, flash_redirect};

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    chrome: Chrome,
    alerts: Vec<Alert>,
    webhook: bool,
}

/// GET /admin/alerts
pub async fn list(State(state): State<AppState>, admin: Admin) -> WebResult<Response> {
    let t = AlertsPage {
        chrome: Chrome::new(&admin, "alerts"),
        alerts: alerts::recent(&state.pool, 100).await?,
        webhook: state.config.alert_webhook_url.is_some(),
    };
    page(&state, &admin, &t)
}

/// POST /admin/alerts/test
pub async fn send_test(State(state): State<AppState>, admin: Admin) -> WebResult<Response> {
    let webhook = state.config.alert_webhook_url.is_some();
    let message = format!("test alert sent by {}", admin.email);
    alerts::raise(
        &state.pool,
        webhook,
        &alerts::NewAlert {
            event: "test",
            service_id: None,
            server_id: None,
            kind: None,
            message: &message,
            hint: Some("Nothing to fix: this checks that alerts reach you."),
        },
    )
    .await?;
    let note = if webhook {
        "Test alert queued for the webhook; its status below turns sent when it arrives."
    } else {
        "Test alert recorded. No ALERT_WEBHOOK_URL is set, so it is only listed here."
    };
    Ok(flash_redirect(&state, "/admin/alerts", "info", note))
}
