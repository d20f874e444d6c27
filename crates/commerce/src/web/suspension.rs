//! Suspend with a reason and a note; unsuspend, with an explicit confirmation
//! before an abuse suspension is lifted (checked here, not only in the page).

use axum::extract::State;
use axum::response::Response;

use crate::app::services::{self, Details, Requested, Suspend};
use crate::domain::SuspendReason;
use crate::front::AppState;
use crate::web::actions::{Queue, queue};
use crate::web::error::WebResult;
use crate::web::form::FormData;
use crate::web::page::Id;
use crate::web::session::{Admin, flash_redirect};

pub async fn suspend(
    State(state): State<AppState>,
    admin: Admin,
    Id(id): Id,
    form: FormData,
) -> WebResult<Response> {
    let reason = SuspendReason::parse(form.get("reason").trim()).unwrap_or(SuspendReason::Other);
    let note = form.get("note");
    let details = Details::Suspend(Suspend {
        reason: Some(reason),
        note: Some(note),
    });
    queue(
        &state,
        &admin,
        id,
        Queue::With(Requested::Suspend, details),
        "Suspend",
    )
    .await
}

pub async fn unsuspend(
    State(state): State<AppState>,
    admin: Admin,
    Id(id): Id,
    form: FormData,
) -> WebResult<Response> {
    let s = services::get(&state.pool, id).await?;
    if s.suspension_reason.as_deref() == Some(SuspendReason::Abuse.as_str())
        && form.get("confirm_abuse") != "yes"
    {
        return Ok(flash_redirect(
            &state,
            &format!("/admin/services/{id}"),
            "error",
            "Nothing was sent: this service is suspended for abuse. Tick the confirmation to lift it.",
        ));
    }
    queue(
        &state,
        &admin,
        id,
        Queue::With(Requested::Unsuspend, Details::None),
        "Unsuspend",
    )
    .await
}
