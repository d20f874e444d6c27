//! Admin sessions: a random cookie value, stored only as its SHA-256, with its
//! CSRF token, an absolute expiry and an idle timeout. The cookie itself is the
//! web layer's; this module keeps the rows.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::app::error::AppResult;
use crate::crypto::{random_token, sha256_hex};

/// How long a login lasts at most (absolute lifetime).
pub const SESSION_HOURS: i64 = 12;
/// A session unused this long ends (idle timeout).
pub const SESSION_IDLE_MINUTES: i64 = 30;

/// The admin a live session belongs to.
pub struct SessionAdmin {
    pub id: i64,
    pub email: String,
    pub csrf: String,
}

/// Starts a session for `admin_id` (and clears expired ones); returns the
/// cookie value.
pub async fn start(db: &PgPool, admin_id: i64) -> AppResult<String> {
    let value = random_token(32);
    let expires: DateTime<Utc> = Utc::now() + chrono::Duration::hours(SESSION_HOURS);
    sqlx::query!("DELETE FROM admin_sessions WHERE expires_at < now()")
        .execute(db)
        .await?;
    sqlx::query!(
        "INSERT INTO admin_sessions (id, admin_id, csrf_token, expires_at) VALUES ($1, $2, $3, $4)",
        sha256_hex(&value),
        admin_id,
        random_token(32),
        expires,
    )
    .execute(db)
    .await?;
    Ok(value)
}

/// Ends the session whose cookie value is `value`.
pub async fn end(db: &PgPool, value: &str) -> AppResult<()> {
    sqlx::query!(
        "DELETE FROM admin_sessions WHERE id = $1",
        sha256_hex(value)
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The admin of the session whose cookie value is `value`, if it is live;
/// activity keeps it alive (written at most once a minute).
pub async fn current(db: &PgPool, value: &str) -> AppResult<Option<SessionAdmin>> {
    let sid = sha256_hex(value);
    let row = sqlx::query!(
        r#"SELECT s.admin_id, u.email, s.csrf_token, s.last_seen_at < now() - interval '1 minute' AS "stale!"
           FROM admin_sessions s JOIN admin_users u ON u.id = s.admin_id
           WHERE s.id = $1 AND s.expires_at > now()
             AND s.last_seen_at > now() - make_interval(mins => $2)"#,
        sid,
        i32::try_from(SESSION_IDLE_MINUTES).unwrap_or(30),
    )
    .fetch_optional(db)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    if row.stale {
        sqlx::query!(
            "UPDATE admin_sessions SET last_seen_at = now() WHERE id = $1",
            sid
        )
        .execute(db)
        .await?;
    }
    Ok(Some(SessionAdmin {
        id: row.admin_id,
        email: row.email,
        csrf: row.csrf_token,
    }))
}
