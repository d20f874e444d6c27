//! `Idempotency-Key` for order placement: the key, a fingerprint of the
//! request and the saved answer live in one row written in the same
//! transaction as the order, so a client retrying after a timeout gets the
//! first answer again and never a second order. Keys live 24 hours.

use serde_json::Value;
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::app::error::{AppError, AppResult};

/// How long a key is remembered (at least; pruned after).
pub const KEY_TTL_HOURS: i32 = 24;

/// A validated `Idempotency-Key` header value, scoped to the API token.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub token_id: i64,
    pub key: String,
}

impl IdempotencyKey {
    /// 1 to 255 visible ASCII characters.
    pub fn parse(token_id: i64, raw: &str) -> AppResult<Self> {
        let key = raw.trim();
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AppError::field(
                "Idempotency-Key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            ));
        }
        Ok(Self {
            token_id,
            key: key.to_owned(),
        })
    }
}

/// What the key says about this request.
pub enum Claim {
    /// First use (or an expired key): go ahead, then `save` in the same tx.
    Fresh,
    /// Seen with the same request: answer this again.
    Replay(u16, Value),
}

/// Claims `key` for a request with `fingerprint`, inside the caller's
/// transaction. A concurrent request with the same key waits on the row until
/// the first one commits (then replays) or rolls back (then proceeds).
pub async fn claim(
    tx: &mut PgConnection,
    key: &IdempotencyKey,
    fingerprint: &str,
) -> AppResult<Claim> {
    let fresh = sqlx::query_scalar!(
        "INSERT INTO idempotency_keys (token_id, key, fingerprint) VALUES ($1, $2, $3)
         ON CONFLICT (token_id, key) DO UPDATE
             SET fingerprint = EXCLUDED.fingerprint, status = NULL, response = NULL,
                 created_at = now(), updated_at = now()
             WHERE idempotency_keys.created_at < now() - make_interval(hours => $4)
         RETURNING 1",
        key.token_id,
        &key.key,
        fingerprint,
        KEY_TTL_HOURS
    )
    .fetch_optional(&mut *tx)
    .await?;
    if fresh.is_some() {
        return Ok(Claim::Fresh);
    }
    let row = sqlx::query!(
        r#"SELECT fingerprint, status, response as "response: Json<Value>"
           FROM idempotency_keys WHERE token_id = $1 AND key = $2"#,
        key.token_id,
        &key.key
    )
    .fetch_one(&mut *tx)
    .await?;
    let (seen, status, response) = (row.fingerprint, row.status, row.response);
    if seen != fingerprint {
        return Err(AppError::field(
            "Idempotency-Key",
            "this Idempotency-Key was already used with a different request body",
        ));
    }
    match (status, response) {
        (Some(status), Some(body)) => {
            Ok(Claim::Replay(u16::try_from(status).unwrap_or(200), body.0))
        }
        _ => Err(AppError::conflict(
            "a request with this Idempotency-Key is still being processed",
        )),
    }
}

/// Saves the answer for `key`, in the transaction that made the effect.
pub async fn save(
    tx: &mut PgConnection,
    key: &IdempotencyKey,
    status: u16,
    body: &Value,
) -> AppResult<()> {
    sqlx::query!(
        "UPDATE idempotency_keys SET status = $3, response = $4, updated_at = now()
         WHERE token_id = $1 AND key = $2",
        key.token_id,
        &key.key,
        i16::try_from(status).unwrap_or(200),
        body
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Deletes keys older than twice their lifetime; returns how many.
pub async fn prune(db: impl sqlx::PgExecutor<'_>) -> AppResult<u64> {
    let done = sqlx::query!(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)",
        KEY_TTL_HOURS * 2
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
