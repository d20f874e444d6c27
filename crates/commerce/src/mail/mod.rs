//! Client mail: an outbox row written in the caller's transaction, a job that
//! renders it (askama, text + HTML) and sends it over SMTP (lettre) or, without
//! `SMTP_URL`, writes it to `MAIL_DIR`; retried with backoff on failure.
//!
//! Reusable for any message: a kind, a template pair, and [`enqueue`]. The
//! password is opened from the service's sealed column only while rendering;
//! the outbox never holds a secret, and no message body is logged.

use std::time::Duration;

use anyhow::Context as _;
use apalis::prelude::TaskBuilder;
use askama::Template;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use rand::RngExt as _;
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::app::orders::password_binding;
use crate::state::Core;

/// The queue of [`SendMailJob`].
pub const QUEUE: &str = "commerce.send_mail";

/// Runs of one message before it is given up (status `failed`).
pub const MAX_ATTEMPTS: i32 = 8;

/// Sends one outbox row, named by its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendMailJob {
    pub key: String,
}

/// What a message tells the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Welcome,
    PasswordChanged,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Welcome => "welcome",
            Self::PasswordChanged => "password_changed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "welcome" => Some(Self::Welcome),
            "password_changed" => Some(Self::PasswordChanged),
            _ => None,
        }
    }
}

/// Checks an `SMTP_URL` without connecting.
pub fn check_smtp_url(url: &str) -> anyhow::Result<()> {
    AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map(|_| ())
        .map_err(|e| {
            anyhow::anyhow!("{e} (use smtp://host:port, ?tls=required for STARTTLS, or smtps://)")
        })
}

/// Checks a `MAIL_FROM` address (`Name <addr>` or `addr`).
pub fn check_from(from: &str) -> anyhow::Result<()> {
    from.parse::<Mailbox>()
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// A fresh outbox key (also the first job's id).
pub fn new_key() -> String {
    ulid::Ulid::generate().to_string()
}

/// Pushes the send job of outbox row `key`, in the caller's transaction.
pub async fn push(
    conn: &mut PgConnection,
    key: &str,
    delay: Option<Duration>,
) -> anyhow::Result<()> {
    let payload = serde_json::to_vec(&SendMailJob {
        key: key.to_owned(),
    })?;
    let mut builder = TaskBuilder::new(payload).max_attempts(3);
    if let Some(d) = delay {
        builder = builder.run_after(d);
    }
    apalis_postgres::queries::push_tasks(conn, QUEUE, vec![builder.build()])
        .await
        .map_err(|e| anyhow::anyhow!("could not enqueue {QUEUE}: {e}"))
}

/// Writes an outbox row for `service_id` and its send job, in `conn`'s
/// transaction; returns the key.
pub async fn enqueue(
    conn: &mut PgConnection,
    service_id: i64,
    kind: Kind,
) -> anyhow::Result<String> {
    let key = new_key();
    // The recipient is the service's client's address as it is now.
    sqlx::query!(
        "INSERT INTO mail_outbox (service_id, kind, recipient, key)
         SELECT s.id, $2, c.email, $3 FROM services s JOIN clients c ON c.id = s.client_id WHERE s.id = $1",
        service_id,
        kind.as_str(),
        &key,
    )
    .execute(&mut *conn)
        .await
        .context("writing the outbox row")?;
    push(conn, &key, None).await?;
    Ok(key)
}

#[derive(Template)]
#[template(path = "mail/welcome.txt")]
struct WelcomeText<'a> {
    m: &'a Fields,
}

#[derive(Template)]
#[template(path = "mail/welcome.html")]
struct WelcomeHtml<'a> {
    m: &'a Fields,
}

#[derive(Template)]
#[template(path = "mail/password_changed.txt")]
struct ChangedText<'a> {
    m: &'a Fields,
}

#[derive(Template)]
#[template(path = "mail/password_changed.html")]
struct ChangedHtml<'a> {
    m: &'a Fields,
}

/// What a template shows.
struct Fields {
    client_name: String,
    domain: String,
    username: String,
    password: String,
    panel_url: String,
}

struct Pending {
    id: i64,
    service_id: i64,
    kind: String,
    recipient: String,
    status: String,
    attempts: i32,
    client_name: String,
    domain: String,
    username: String,
    password_sealed: Vec<u8>,
    panel_url: Option<String>,
}

/// Renders a message: subject, text and HTML.
fn render(kind: Kind, m: &Fields) -> anyhow::Result<(String, String, String)> {
    Ok(match kind {
        Kind::Welcome => (
            format!("Your hosting account for {} is ready", m.domain),
            WelcomeText { m }.render()?,
            WelcomeHtml { m }.render()?,
        ),
        Kind::PasswordChanged => (
            format!("New password for {}", m.domain),
            ChangedText { m }.render()?,
            ChangedHtml { m }.render()?,
        ),
    })
}

/// Runs one send: delivers the row's message once, or schedules the next try.
pub async fn run(state: &Core, job: &SendMailJob) -> anyhow::Result<()> {
    let row = sqlx::query_as!(
        Pending,
        r#"SELECT m.id, m.service_id, m.kind, m.recipient, m.status, m.attempts, c.name AS client_name,
                  s.domain, s.username, s.password_sealed, v.credentials->>'api_url' AS panel_url
           FROM mail_outbox m JOIN services s ON s.id = m.service_id JOIN clients c ON c.id = s.client_id
           LEFT JOIN servers v ON v.id = s.server_id
           WHERE m.key = $1"#,
        &job.key,
    )
    .fetch_optional(&state.pool)
    .await?;
    let Some(row) = row else {
        return Ok(());
    };
    if row.status != "pending" {
        return Ok(());
    }
    let kind = Kind::parse(&row.kind).context("unknown mail kind")?;
    let password = state
        .sealer
        .open(password_binding(row.service_id), &row.password_sealed)
        .context("opening the service's password")?;
    let fields = Fields {
        client_name: row.client_name.clone(),
        domain: row.domain.clone(),
        username: row.username.clone(),
        password: String::from_utf8(password).context("password is not UTF-8")?,
        panel_url: row
            .panel_url
            .clone()
            .unwrap_or_else(|| "(ask us for the address)".into()),
    };
    let sent = deliver(state, kind, &row, &fields).await;
    drop(fields);
    let attempts = row.attempts + 1;
    match sent {
        Ok(()) => {
            sqlx::query!(
"UPDATE mail_outbox SET status = 'sent', sent_at = now(), attempts = $2, last_error = NULL,
                        updated_at = now() WHERE id = $1",
row.id,
attempts,
)
            .execute(&state.pool)
            .await?;
            tracing::info!(
                service.id = row.service_id,
                mail.kind = kind.as_str(),
                attempts,
                "mail sent"
            );
        }
        Err(e) => {
            let message = format!("{e:#}");
            let give_up = attempts >= MAX_ATTEMPTS;
            let mut tx = state.pool.begin().await?;
            sqlx::query!(
                "UPDATE mail_outbox SET attempts = $2, last_error = $3, updated_at = now(),
                        status = CASE WHEN $4 THEN 'failed' ELSE status END WHERE id = $1",
                row.id,
                attempts,
                &message,
                give_up,
            )
            .execute(&mut *tx)
            .await?;
            if !give_up {
                push(&mut tx, &job.key, Some(backoff(state, attempts))).await?;
            }
            tx.commit().await?;
            tracing::warn!(service.id = row.service_id, mail.kind = kind.as_str(), attempts, give_up, error = %message, "mail not sent");
        }
    }
    Ok(())
}

/// Exponential backoff with jitter, from the provisioning retry settings.
fn backoff(state: &Core, attempts: i32) -> Duration {
    let c = &state.config;
    let n = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    c.retry_base
        .saturating_mul(1u32 << n)
        .min(c.retry_max)
        .mul_f64(rand::rng().random_range(0.5..=1.0))
}

async fn deliver(state: &Core, kind: Kind, row: &Pending, m: &Fields) -> anyhow::Result<()> {
    let (subject, text, html) = render(kind, m)?;
    let from: Mailbox = state.config.mail_from.parse().context("MAIL_FROM")?;
    let to: Mailbox = row
        .recipient
        .parse()
        .with_context(|| format!("recipient {:?}", row.recipient))?;
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .multipart(MultiPart::alternative_plain_html(text, html))
        .context("building the message")?;
    let name = format!("service{}-{}-{}", row.service_id, kind.as_str(), row.id);
    send(state, message, &name).await
}

/// Sends one built message the configured way: over `SMTP_URL`, or without it
/// as a file in `MAIL_DIR` whose name ends with `name` (unique per message).
pub async fn send(state: &Core, message: Message, name: &str) -> anyhow::Result<()> {
    match &state.config.smtp_url {
        Some(url) => {
            let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                .context("SMTP_URL")?
                .timeout(Some(Duration::from_secs(15)))
                .build();
            transport.send(message).await.context("SMTP")?;
            Ok(())
        }
        None => write_file(&state.config.mail_dir, name, &message.formatted()).await,
    }
}

/// The demo's mailbox: one `.eml` file per message, readable by the owner only.
async fn write_file(dir: &std::path::Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = dir.to_owned();
    let name = format!(
        "{}-{name}.eml",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
    );
    let bytes = bytes.to_vec();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating MAIL_DIR {}", dir.display()))?;
        let path = dir.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        f.write_all(&bytes)?;
        Ok(())
    })
    .await?
}

/// Queues the welcome mail again (the service's current password); returns the key.
pub async fn resend_welcome(state: &Core, service_id: i64) -> crate::app::error::AppResult<String> {
    use crate::app::error::AppError;
    let mut tx = state.pool.begin().await.map_err(AppError::from)?;
    let status: Option<String> = sqlx::query_scalar!(
        "SELECT status FROM services WHERE id = $1 FOR UPDATE",
        service_id,
    )
    .fetch_optional(&mut *tx)
    .await?;
    match status.as_deref() {
        None => return Err(AppError::NotFound("service")),
        Some("active" | "suspended") => {}
        Some(other) => {
            return Err(AppError::conflict(format!(
                "service {service_id} is {other}: a welcome mail needs an active or suspended account"
            )));
        }
    }
    let key = enqueue(&mut tx, service_id, Kind::Welcome).await?;
    tx.commit().await.map_err(AppError::from)?;
    Ok(key)
}
