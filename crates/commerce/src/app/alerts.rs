//! Admin alerts: a row per state change (a service's action failing for good
//! or needing attention, a server going offline or coming back), delivered to
//! `ALERT_WEBHOOK_URL` as a JSON POST and to `ALERT_EMAIL` as a plain-text
//! mail (through the client mail's transport), each channel retried with
//! backoff on its own; recorded only when neither is configured. Texts pass
//! the Redactor before they are stored, and only stored texts are sent.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use provisioning::Redactor;
use serde::Serialize;
use serde_json::json;
use sqlx::PgExecutor;

use crate::app::error::AppResult;
use crate::config::Config;
use crate::state::Core;

/// Delivery attempts per channel before an alert is given up as failed.
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

/// An alert as stored and listed: `status` is the webhook's delivery,
/// `mail_status` the mail's (None: no `ALERT_EMAIL` when it was raised).
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
    pub mail_status: Option<String>,
    pub mail_attempts: i32,
    pub mail_last_error: Option<String>,
}

/// Records an alert (in the caller's transaction, if any); the dispatcher
/// delivers it on every channel `config` names.
pub async fn raise(db: impl PgExecutor<'_>, config: &Config, a: &NewAlert<'_>) -> AppResult<()> {
    let r = Redactor::default();
    sqlx::query!(
        "INSERT INTO alerts (event, service_id, server_id, kind, message, hint, status, mail_status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        a.event,
        a.service_id,
        a.server_id,
        a.kind,
        r.text(a.message),
        a.hint.map(|h| r.text(h)),
        if config.alert_webhook_url.is_some() {
            "pending"
        } else {
            "recorded"
        },
        config.alert_email.as_ref().map(|_| "pending")
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The most recent alerts, newest first.
pub async fn recent(db: impl PgExecutor<'_>, limit: i64) -> AppResult<Vec<Alert>> {
    Ok(sqlx::query_as!(
        Alert,
        "SELECT id, event, service_id, server_id, kind, message, hint, status, attempts, last_error, created_at, sent_at, mail_status, mail_attempts, mail_last_error
         FROM alerts ORDER BY id DESC LIMIT $1",
        limit
    )
    .fetch_all(db)
    .await?)
}

/// Where an alert goes. Each channel keeps its delivery state in its own
/// columns of the row (`status`, `attempts`... and `mail_status`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Channel {
    Webhook,
    Mail,
}

/// Claims up to 20 due alerts of `channel` for 30 s (another process skips
/// them meanwhile), counting the attempt; each with its attempts so far.
async fn claim(state: &Core, channel: Channel) -> anyhow::Result<Vec<(Alert, i32)>> {
    // One statement per channel: the mail's delivery columns are `mail_status`...
    let due = match channel {
        Channel::Webhook => sqlx::query_as!(
            Alert,
            "UPDATE alerts a SET attempts = a.attempts + 1, next_attempt_at = now() + interval '30 seconds',
                    updated_at = now()
             FROM (SELECT id FROM alerts WHERE status = 'pending' AND next_attempt_at <= now()
                   ORDER BY id LIMIT 20 FOR UPDATE SKIP LOCKED) d
             WHERE a.id = d.id
             RETURNING a.id, a.event, a.service_id, a.server_id, a.kind, a.message, a.hint, a.status, a.attempts, a.last_error, a.created_at, a.sent_at, a.mail_status, a.mail_attempts, a.mail_last_error"
        )
        .fetch_all(&state.pool)
        .await?,
        Channel::Mail => sqlx::query_as!(
            Alert,
            "UPDATE alerts a SET mail_attempts = a.mail_attempts + 1, mail_next_attempt_at = now() + interval '30 seconds',
                    updated_at = now()
             FROM (SELECT id FROM alerts WHERE mail_status = 'pending' AND mail_next_attempt_at <= now()
                   ORDER BY id LIMIT 20 FOR UPDATE SKIP LOCKED) d
             WHERE a.id = d.id
             RETURNING a.id, a.event, a.service_id, a.server_id, a.kind, a.message, a.hint, a.status, a.attempts, a.last_error, a.created_at, a.sent_at, a.mail_status, a.mail_attempts, a.mail_last_error"
        )
        .fetch_all(&state.pool)
        .await?,
    };
    Ok(due
        .into_iter()
        .map(|a| {
            let n = match channel {
                Channel::Webhook => a.attempts,
                Channel::Mail => a.mail_attempts,
            };
            (a, n)
        })
        .collect())
}

/// Records one delivery attempt's outcome on `channel`: sent, or the next try
/// after an exponential backoff, or failed after [`MAX_ATTEMPTS`].
async fn settle(
    state: &Core,
    channel: Channel,
    id: i64,
    attempts: i32,
    outcome: Result<(), String>,
) -> anyhow::Result<()> {
    match outcome {
        Ok(()) => {
            match channel {
                Channel::Webhook => sqlx::query!(
                    "UPDATE alerts SET status = 'sent', sent_at = now(), last_error = NULL, updated_at = now()
                     WHERE id = $1",
                    id
                )
                .execute(&state.pool)
                .await?,
                Channel::Mail => sqlx::query!(
                    "UPDATE alerts SET mail_status = 'sent', mail_sent_at = now(), mail_last_error = NULL, updated_at = now()
                     WHERE id = $1",
                    id
                )
                .execute(&state.pool)
                .await?,
            };
        }
        Err(why) => {
            let backoff = Duration::from_millis(500u64 << attempts.clamp(0, 10));
            tracing::warn!(alert.id = id, channel = ?channel, attempts, error = %why, "alert not delivered");
            match channel {
                Channel::Webhook => sqlx::query!(
                    "UPDATE alerts SET last_error = $2, updated_at = now(),
                            status = CASE WHEN $3::int4 >= $4::int4 THEN 'failed' ELSE 'pending' END,
                            next_attempt_at = now() + make_interval(secs => $5)
                     WHERE id = $1",
                    id,
                    why,
                    attempts,
                    MAX_ATTEMPTS,
                    backoff.as_secs_f64()
                )
                .execute(&state.pool)
                .await?,
                Channel::Mail => sqlx::query!(
                    "UPDATE alerts SET mail_last_error = $2, updated_at = now(),
                            mail_status = CASE WHEN $3::int4 >= $4::int4 THEN 'failed' ELSE 'pending' END,
                            mail_next_attempt_at = now() + make_interval(secs => $5)
                     WHERE id = $1",
                    id,
                    why,
                    attempts,
                    MAX_ATTEMPTS,
                    backoff.as_secs_f64()
                )
                .execute(&state.pool)
                .await?,
            };
        }
    }
    Ok(())
}

/// Delivers the webhook alerts that are due; returns how many were sent.
pub async fn deliver_due(state: &Core, client: &reqwest::Client) -> anyhow::Result<usize> {
    let Some(url) = state.config.alert_webhook_url.as_deref() else {
        return Ok(0);
    };
    let mut sent = 0;
    for (a, attempts) in claim(state, Channel::Webhook).await? {
        let body = json!({
            "event": a.event, "service_id": a.service_id, "server_id": a.server_id, "kind": a.kind,
            "message": a.message, "hint": a.hint, "at": a.created_at,
        });
        let outcome = match client.post(url).json(&body).send().await {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => Err(format!("the webhook answered {}", resp.status())),
            Err(e) => Err(format!("could not reach the webhook: {}", without_url(&e))),
        };
        sent += usize::from(outcome.is_ok());
        settle(state, Channel::Webhook, a.id, attempts, outcome).await?;
    }
    Ok(sent)
}

/// Delivers the alert mails that are due; returns how many were sent.
pub async fn deliver_mail_due(state: &Core) -> anyhow::Result<usize> {
    let Some(to) = state.config.alert_email.as_deref() else {
        return Ok(0);
    };
    let mut sent = 0;
    for (a, attempts) in claim(state, Channel::Mail).await? {
        let outcome = match message(&state.config.mail_from, to, &a) {
            Ok(m) => crate::mail::send(state, m, &format!("alert{}-{}", a.id, a.event))
                .await
                .map_err(|e| format!("{e:#}")),
            Err(e) => Err(format!("{e:#}")),
        };
        sent += usize::from(outcome.is_ok());
        settle(state, Channel::Mail, a.id, attempts, outcome).await?;
    }
    Ok(sent)
}

/// What an event is called in a subject line.
fn title(event: &str) -> &str {
    match event {
        "server_offline" => "server offline",
        "server_online" => "server back online",
        "service_failed" => "service failed",
        "service_needs_attention" => "service needs attention",
        "test" => "test alert",
        other => other,
    }
}

/// An alert as a plain-text mail: the stored (redacted) texts and ids only.
fn message(from: &str, to: &str, a: &Alert) -> anyhow::Result<Message> {
    let from: Mailbox = from
        .parse()
        .map_err(|e| anyhow::anyhow!("MAIL_FROM: {e}"))?;
    let to: Mailbox = to
        .parse()
        .map_err(|e| anyhow::anyhow!("ALERT_EMAIL: {e}"))?;
    let about = match (a.server_id, a.service_id) {
        (_, Some(s)) => format!(" (service #{s})"),
        (Some(s), None) => format!(" (server #{s})"),
        (None, None) => String::new(),
    };
    let mut body = format!("{}\n\n", a.message);
    if let Some(h) = &a.hint {
        body.push_str(&format!("Fix: {h}\n\n"));
    }
    body.push_str(&format!("Event: {}\n", a.event));
    if let Some(k) = &a.kind {
        body.push_str(&format!("Kind: {k}\n"));
    }
    if let Some(s) = a.server_id {
        body.push_str(&format!("Server: #{s} (/admin/servers/{s}/edit)\n"));
    }
    if let Some(s) = a.service_id {
        body.push_str(&format!("Service: #{s} (/admin/services/{s})\n"));
    }
    body.push_str(&format!(
        "At: {}\n\nRecent alerts: /admin/alerts\n",
        a.created_at.to_rfc3339()
    ));
    Message::builder()
        .from(from)
        .to(to)
        .subject(format!("Commerce alert: {}{about}", title(&a.event)))
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| anyhow::anyhow!("building the alert mail: {e}"))
}

/// A reqwest error's text without the URL (which may carry a token).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(u) = e.url() {
        text = text.replace(u.as_str(), "the webhook");
    }
    text
}

/// The dispatcher: delivers due alerts about twice a second until `stop`.
pub async fn dispatch(state: Core, mut stop: tokio::sync::watch::Receiver<bool>) {
    if state.config.alert_webhook_url.is_none() && state.config.alert_email.is_none() {
        return;
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    loop {
        if let Err(e) = deliver_due(&state, &client).await {
            tracing::warn!(error = %e, "could not deliver alerts to the webhook");
        }
        if let Err(e) = deliver_mail_due(&state).await {
            tracing::warn!(error = %e, "could not deliver alert mail");
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_mail_names_the_event_and_the_fix_in_plain_text() {
        let a = Alert {
            id: 7,
            event: "server_offline".into(),
            service_id: None,
            server_id: Some(3),
            kind: Some("unauthorized".into()),
            message: "server 3 is offline: the Panel refused the token".into(),
            hint: Some("Copy the token again.".into()),
            status: "recorded".into(),
            attempts: 0,
            last_error: None,
            created_at: Utc::now(),
            sent_at: None,
            mail_status: Some("pending".into()),
            mail_attempts: 0,
            mail_last_error: None,
        };
        let m = message("Hosting <hosting@localhost>", "ops@example.com", &a).expect("message");
        let text = String::from_utf8(m.formatted()).expect("utf8");
        assert!(
            text.contains("Subject: Commerce alert: server offline (server #3)"),
            "{text}"
        );
        assert!(text.contains("To: ops@example.com"), "{text}");
        assert!(text.contains("Fix: Copy the token again."), "{text}");
        assert!(text.contains("Kind: unauthorized"), "{text}");
    }
}
