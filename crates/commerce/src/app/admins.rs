//! Admin users with argon2 password hashes, computed on the blocking pool (a
//! hash takes tens of milliseconds of CPU; on the async workers it would stall
//! every request). Setting a password ends the admin's sessions.

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use sqlx::PgExecutor;

use crate::app::error::{AppError, AppResult};
use crate::domain::{FieldErrors, parse_email};

pub async fn create(db: impl PgExecutor<'_>, email: &str, password: &str) -> AppResult<i64> {
    let mut errors = FieldErrors::default();
    let email = errors.check("email", parse_email(email));
    if password.chars().count() < 10 {
        errors.add("password", "password must be at least 10 characters");
    }
    errors.into_result()?;
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
    })
    .await
    .map_err(|e| anyhow::anyhow!("hashing task: {e}"))??;
    let id = sqlx::query_scalar!(
        "INSERT INTO admin_users (email, password_hash) VALUES ($1, $2)
         ON CONFLICT ((lower(email))) DO UPDATE SET password_hash = EXCLUDED.password_hash, updated_at = now()
         RETURNING id",
        email,
        hash
    )
    .fetch_one(db)
    .await
    .map_err(AppError::from)?;
    Ok(id)
}

/// Sets (or resets) an admin's password and ends every session they had.
pub async fn set_password(pool: &sqlx::PgPool, email: &str, password: &str) -> AppResult<i64> {
    let id = create(pool, email, password).await?;
    sqlx::query!("DELETE FROM admin_sessions WHERE admin_id = $1", id)
        .execute(pool)
        .await?;
    Ok(id)
}

/// The admin's id when the password matches. The hash runs on the blocking
/// pool once a permit of `gate` is free (bounded CPU and memory under a flood).
pub async fn verify(
    db: impl PgExecutor<'_>,
    email: &str,
    password: &str,
    gate: &tokio::sync::Semaphore,
) -> AppResult<Option<i64>> {
    let row = sqlx::query!(
        "SELECT id, password_hash FROM admin_users WHERE lower(email) = lower($1)",
        email.trim()
    )
    .fetch_optional(db)
    .await?
    .map(|r| (r.id, r.password_hash));
    let _permit = gate
        .acquire()
        .await
        .map_err(|e| anyhow::anyhow!("hashing gate: {e}"))?;
    let password = password.to_owned();
    let found = tokio::task::spawn_blocking(move || {
        let Some((id, hash)) = row else {
            // Spend the same time as a real check, so timing does not reveal emails.
            let _ = Argon2::default()
                .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng));
            return Ok(None);
        };
        let parsed = PasswordHash::new(&hash).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
        Ok::<_, anyhow::Error>(
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
                .then_some(id),
        )
    })
    .await
    .map_err(|e| anyhow::anyhow!("hashing task: {e}"))??;
    Ok(found)
}
