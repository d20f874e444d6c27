//! `commerce key rotate`: re-seals every stored secret (server credentials,
//! service passwords) under the current `APP_KEY`, opening them with
//! `APP_KEY_PREVIOUS`. In batches, each its own transaction; a value already
//! under the current key is skipped, so an interrupted run just runs again.

use sqlx::PgPool;
use sqlx::types::Json;

use crate::app::orders::password_binding;
use crate::app::servers::secrets_binding;
use crate::crypto::Sealer;

/// How many sealed values a run re-sealed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rotated {
    pub servers: u64,
    pub services: u64,
}

type ServerSecrets = (
    i64,
    Json<std::collections::BTreeMap<String, String>>,
    Vec<u8>,
);

/// Re-seals up to `max_batches` batches of `batch` rows per table (None: all).
pub async fn rotate(
    pool: &PgPool,
    sealer: &Sealer,
    batch: i64,
    max_batches: Option<u32>,
) -> anyhow::Result<Rotated> {
    let mut done = Rotated::default();
    let mut batches = 0u32;
    let more = |b: u32| max_batches.is_none_or(|m| b < m);
    let mut after = 0i64;
    while more(batches) {
        let rows: Vec<ServerSecrets> = sqlx::query!(
            r#"SELECT id, credentials as "credentials: Json<std::collections::BTreeMap<String, String>>",
                      secrets as "secrets!"
               FROM servers
               WHERE secrets IS NOT NULL AND id > $1 ORDER BY id LIMIT $2"#,
            after,
            batch
        )
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| (r.id, r.credentials, r.secrets))
        .collect();
        let Some(last) = rows.last() else { break };
        after = last.0;
        batches += 1;
        let mut tx = pool.begin().await?;
        for (id, fields, sealed) in rows.iter().filter(|r| sealer.needs_reseal(&r.2)) {
            let at = secrets_binding(*id, &fields.0);
            let plain = sealer.open(at, sealed)?;
            // Compare-and-swap: an edit saved meanwhile is not overwritten.
            let updated = sqlx::query!(
                "UPDATE servers SET secrets = $2 WHERE id = $1 AND secrets = $3",
                id,
                sealer.seal(at, &plain),
                sealed
            )
            .execute(&mut *tx)
            .await?;
            done.servers += updated.rows_affected();
        }
        tx.commit().await?;
    }
    let mut after = 0i64;
    while more(batches) {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query!(
            "SELECT id, password_sealed FROM services WHERE id > $1 ORDER BY id LIMIT $2",
            after,
            batch
        )
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| (r.id, r.password_sealed))
        .collect();
        let Some(last) = rows.last() else { break };
        after = last.0;
        batches += 1;
        let mut tx = pool.begin().await?;
        for (id, sealed) in rows.iter().filter(|r| sealer.needs_reseal(&r.1)) {
            let at = password_binding(*id);
            let plain = sealer.open(at, sealed)?;
            let updated = sqlx::query!(
                "UPDATE services SET password_sealed = $2 WHERE id = $1 AND password_sealed = $3",
                id,
                sealer.seal(at, &plain),
                sealed
            )
            .execute(&mut *tx)
            .await?;
            done.services += updated.rows_affected();
        }
        tx.commit().await?;
    }
    Ok(done)
}
