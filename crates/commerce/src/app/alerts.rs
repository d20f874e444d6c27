//! Admin alerts: a row per state change (a service failing for good or
//! needing attention, a server going offline or coming back), delivered to
//! `ALERT_WEBHOOK_URL` as a JSON POST with retries; recorded only when no
//! webhook is configured. Texts pass the Redactor before they are stored.

use std::time::Duration;

use chrono::{DateTime, Utc};
use provisioning::Redactor;
use serde::Serialize;
use serde_json::json;
use sqlx::PgExecutor;

use crate::app::error::AppResult;
use crate::state::AppState;

/// Delivery attempts before an alert is given up as failed.
const MAX_ATTEMPTS: i32 = 5;

/// An alert to raise.
pub struct NewAlert<'a> {
    pub event: &'a str,
    pub service_id: Option<i64>,
    pub server_id: Option<i64>,
    pub kind: Option<&'a str>,
    pub message: &'a str,
    pub hint: Option<&'a str>,
}

/// An alert as stored and listed.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Alert {
    pub id: i64,
    pub event: String,
    pub service_id: Option<i64>,
    pub server_id: Option<i64>,
    pub kind: Option<String>,
    pub message: String,
    pub hint: Option<String>,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// Records an alert (in the caller's transaction, if any); the dispatcher
/// delivers it when a webhook is configured.
pub async fn raise(db: impl PgExecutor<'_>, webhook: bool, a: &NewAlert<'_>) -> AppResult<()> {
    let r = Redactor::default();
    sqlx::query(
        "INSERT INTO alerts (event, service_id, server_id, kind, message, hint, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(a.event)
    .bind(a.service_id)
    .bind(a.server_id)
    .bind(a.kind)
    .bind(r.text(a.message))
    .bind(a.hint.map(|h| r.text(h)))
    .bind(if webhook { "pending" } else { "recorded" })
    .execute(db)
    .await?;
    Ok(())
}

/// The most recent alerts, newest first.
pub async fn recent(db: impl PgExecutor<'_>, limit: i64) -> AppResult<Vec<Alert>> {
    Ok(sqlx::query_as(
        "SELECT id, event, service_id, server_id, kind, message, hint, status, attempts, last_error, created_at, sent_at
         FROM alerts ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Delivers the alerts that are due; returns how many were sent.
pub async fn deliver_due(state: &AppState, client: &reqwest::Client) -> anyhow::Result<usize> {
    let Some(url) = state.config.alert_webhook_url.as_deref() else {
        return Ok(0);
    };
    // Claimed for 30 s: another process skips them meanwhile.
    let due: Vec<Alert> = sqlx::query_as(
        "UPDATE alerts a SET attempts = a.attempts + 1, next_attempt_at = now() + interval '30 seconds', updated_at = now()
         FROM (SELECT id FROM alerts WHERE status = 'pending' AND next_attempt_at <= now()
               ORDER BY id LIMIT 20 FOR UPDATE SKIP LOCKED) d
         WHERE a.id = d.id
         RETURNING a.id, a.event, a.service_id, a.server_id, a.kind, a.message, a.hint, a.status, a.attempts,
                   a.last_error, a.created_at, a.sent_at",
    )
    .fetch_all(&state.pool)
    .await?;
    let mut sent = 0;
    for a in due {
        let body = json!({
            "event": a.event, "service_id": a.service_id, "server_id": a.server_id, "kind": a.kind,
            "message": a.message, "hint": a.hint, "at": a.created_at,
        });
        let outcome = match client.post(url).json(&body).send().await {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => Err(format!("the webhook answered {}", resp.status())),
            Err(e) => Err(format!("could not reach the webhook: {}", without_url(&e))),
        };
        match outcome {
            Ok(()) => {
                sent += 1;
                sqlx::query("UPDATE alerts SET status = 'sent', sent_at = now(), last_error = NULL, updated_at = now() WHERE id = $1")
                    .bind(a.id)
                    .execute(&state.pool)
                    .await?;
            }
            Err(why) => {
                let backoff = Duration::from_millis(500u64 << a.attempts.clamp(0, 10));
                tracing::warn!(alert.id = a.id, attempts = a.attempts, error = %why, "alert not delivered");
                sqlx::query(
                    "UPDATE alerts SET last_error = $2, updated_at = now(),
                            status = CASE WHEN attempts >= $3 THEN 'failed' ELSE 'pending' END,
                            next_attempt_at = now() + make_interval(secs => $4)
                     WHERE id = $1",
                )
                .bind(a.id)
                .bind(why)
                .bind(MAX_ATTEMPTS)
                .bind(backoff.as_secs_f64())
                .execute(&state.pool)
                .await?;
            }
        }
    }
    Ok(sent)
}

/// A reqwest error's text without the URL (which may carry a token).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(u) = e.url() {
        text = text.replace(u.as_str(), "the webhook");
    }
    text
}

/// The dispatcher: delivers due alerts about once a second until `stop`.
pub async fn dispatch(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    if state.config.alert_webhook_url.is_none() {
        return;
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    loop {
        if let Err(e) = deliver_due(&state, &client).await {
            tracing::warn!(error = %e, "could not deliver alerts");
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
