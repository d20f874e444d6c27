//! Queueing a service action from an admin button: the one path every
//! handler that offers one (the service page, suspension, the log) goes
//! through, so the flash and the page that watches for the end are the same.

use axum::response::Response;

use crate::app::error::AppError;
use crate::app::services::{self, Requested};
use crate::domain::TriggeredBy;
use crate::front::AppState;
use crate::web::error::WebResult;
use crate::web::session::{Admin, flash_redirect};

/// What an admin button queues.
pub enum Queue {
    Plain(Requested),
    /// A suspend's reason or an unsuspend's condition with it.
    With(Requested, services::Details),
    Adopt,
    ChangePassword,
    ChangePackage(i64),
    ResendWelcome,
}

/// Queues an action and returns to the service page, which watches for its end.
pub async fn queue(
    state: &AppState,
    admin: &Admin,
    id: i64,
    requested: Queue,
    what: &str,
) -> WebResult<Response> {
    let before = services::get(&state.pool, id).await?.updated_at;
    let to = format!("/admin/services/{id}");
    let queued = match requested {
        Queue::Plain(r) => services::request(state, id, r, TriggeredBy::Admin).await,
        Queue::With(r, d) => services::request_with(state, id, r, &d, TriggeredBy::Admin).await,
        Queue::ResendWelcome => crate::mail::resend_welcome(state, id).await,
        Queue::ChangePassword => {
            crate::app::changes::change_password(state, id, TriggeredBy::Admin).await
        }
        Queue::Adopt => {
            let input = crate::app::adopt::Adopt::default();
            crate::app::adopt::adopt(state, id, &input, TriggeredBy::Admin)
                .await
                .map(|s| {
                    format!(
                        "adopted as Panel account {}",
                        s.panel_account_id.unwrap_or_default()
                    )
                })
        }
        Queue::ChangePackage(product_id) => {
            let input = crate::app::changes::ChangePackage { product_id };
            crate::app::changes::change_package(state, id, &input, TriggeredBy::Admin).await
        }
    };
    match queued {
        Ok(job) => {
            tracing::info!(admin.id = admin.id, service.id = id, job.id = %job, "admin queued {what}");
            Ok(flash_redirect(
                state,
                &format!("{to}?watch={}", before.timestamp_micros()),
                "info",
                &format!("{what} queued; this page updates when it is done."),
            ))
        }
        Err(AppError::Conflict { message, .. }) => {
            Ok(flash_redirect(state, &to, "error", &message))
        }
        Err(AppError::Validation(f)) => {
            let message =
                f.0.values()
                    .flatten()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ");
            Ok(flash_redirect(state, &to, "error", &message))
        }
        Err(e) => Err(e.into()),
    }
}
