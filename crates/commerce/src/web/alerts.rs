//! Recent admin alerts and the "Send test alert" button.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use crate::app::alerts::{self, Alert};
use crate::front::AppState;
use crate::web::error::WebResult;
use crate::web::page::{Chrome, page};
use crate::web::session::{Admin, flash_redirect};

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    chrome: Chrome,
    alerts: Vec<Alert>,
    webhook: bool,
    email: bool,
}

/// GET /admin/alerts
pub async fn list(State(state): State<AppState>, admin: Admin) -> WebResult<Response> {
    let t = AlertsPage {
        chrome: Chrome::new(&admin, "alerts"),
        alerts: alerts::recent(&state.pool, 100).await?,
        webhook: state.config.alert_webhook_url.is_some(),
        email: state.config.alert_email.is_some(),
    };
    page(&state, &admin, &t)
}

/// POST /admin/alerts/test
pub async fn send_test(State(state): State<AppState>, admin: Admin) -> WebResult<Response> {
    let message = format!("test alert sent by {}", admin.email);
    alerts::raise(
        &state.pool,
        &state.config,
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
    let c = &state.config;
    let note = match (c.alert_webhook_url.is_some(), c.alert_email.is_some()) {
        (true, true) => {
            "Test alert queued for the webhook and ALERT_EMAIL; its delivery below turns sent when it arrives."
        }
        (true, false) => {
            "Test alert queued for the webhook; its status below turns sent when it arrives."
        }
        (false, true) => {
            "Test alert queued for ALERT_EMAIL; its mail status below turns sent when it goes out."
        }
        (false, false) => {
            "Test alert recorded. Neither ALERT_WEBHOOK_URL nor ALERT_EMAIL is set, so it is only listed here."
        }
    };
    Ok(flash_redirect(&state, "/admin/alerts", "info", note))
}
