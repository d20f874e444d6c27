//! Admin users with argon2 password hashes.

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
    let salt = SaltString::generate(&mut OsRng);
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))?
        .to_string();
    let id = sqlx::query_scalar(
        "INSERT INTO admin_users (email, password_hash) VALUES ($1, $2)
         ON CONFLICT ((lower(email))) DO UPDATE SET password_hash = EXCLUDED.password_hash, updated_at = now()
         RETURNING id",
    )
    .bind(email)
    .bind(hash)
    .fetch_one(db)
    .await
    .map_err(AppError::from)?;
    Ok(id)
}

/// The admin's id when the password matches.
pub async fn verify(
    db: impl PgExecutor<'_>,
    email: &str,
    password: &str,
) -> AppResult<Option<i64>> {
    let row: Option<(i64, String)> =
        sqlx::query_as("SELECT id, password_hash FROM admin_users WHERE lower(email) = lower($1)")
            .bind(email.trim())
            .fetch_optional(db)
            .await?;
    let Some((id, hash)) = row else {
        // Spend the same time as a real check, so timing does not reveal emails.
        let _ =
            Argon2::default().hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng));
        return Ok(None);
    };
    let parsed = PasswordHash::new(&hash).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
        .then_some(id))
}
