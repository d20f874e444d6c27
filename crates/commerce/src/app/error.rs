//! The application error: what went wrong in terms a handler can answer with.

use crate::domain::FieldErrors;

/// Errors of the application services, mapped to HTTP by the web layer.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("validation failed")]
    Validation(FieldErrors),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict {
        message: String,
        fields: Option<FieldErrors>,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict {
            message: message.into(),
            fields: None,
        }
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let mut f = FieldErrors::default();
        f.add(field, message);
        Self::Validation(f)
    }
}

/// Seconds a client is told to wait (`Retry-After`) while the database is unreachable.
pub const RETRY_AFTER_SECS: u32 = 5;

impl AppError {
    /// True when the cause is the database being down, restarting or out of
    /// connections (answered 503 with `Retry-After`, not 500): whatever context
    /// was added on the way up, the `sqlx::Error` in the chain decides.
    pub fn is_database_unavailable(&self) -> bool {
        match self {
            Self::Internal(e) => database_unavailable(e),
            _ => false,
        }
    }
}

/// Whether an error's chain holds a lost or unobtainable database connection.
pub fn database_unavailable(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<sqlx::Error>())
        .any(connection_lost)
}

/// A pool that cannot hand out a connection, a connection that broke (reset,
/// EOF, refused), or PostgreSQL saying it is shutting down, starting up or
/// full (SQLSTATE classes 08 and 57P, and 53300 too_many_connections).
pub fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "53300"),
        _ => false,
    }
}

impl From<FieldErrors> for AppError {
    fn from(f: FieldErrors) -> Self {
        Self::Validation(f)
    }
}

/// Constraint names we answer with a field message instead of a 500.
const CONSTRAINTS: &[(&str, &str, &str, bool)] = &[
    (
        "servers_name_key",
        "name",
        "a server with this name already exists",
        true,
    ),
    (
        "server_groups_name_key",
        "name",
        "a server group with this name already exists",
        true,
    ),
    (
        "products_name_key",
        "name",
        "a product with this name already exists",
        true,
    ),
    (
        "clients_email_key",
        "email",
        "a client with this email already exists",
        true,
    ),
    (
        "servers_group_id_fkey",
        "group_id",
        "no server group has this id",
        false,
    ),
    (
        "products_group_id_fkey",
        "group_id",
        "no server group has this id",
        false,
    ),
    (
        "orders_client_id_fkey",
        "client_id",
        "no client has this id",
        false,
    ),
    (
        "services_product_id_fkey",
        "product_id",
        "no product has this id",
        false,
    ),
    (
        "servers_capacity_check",
        "max_accounts",
        "max_accounts is below the number of accounts already on this server",
        false,
    ),
];

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        // Text PostgreSQL cannot store (a NUL character) is bad input, not a crash.
        if let Some(db) = e.as_database_error()
            && matches!(db.code().as_deref(), Some("22021" | "22P05"))
        {
            let mut f = FieldErrors::default();
            f.add(
                "body",
                "text must not contain NUL (\\u0000) or other unencodable characters",
            );
            return Self::Validation(f);
        }
        if let Some(db) = e.as_database_error()
            && let Some(name) = db.constraint()
        {
            // On delete, a foreign key violation means the row is still referenced.
            if db.is_foreign_key_violation() && db.message().contains("update or delete") {
                return Self::conflict(
                    "it is still in use: remove or move what refers to it first",
                );
            }
            if let Some((_, field, msg, conflict)) = CONSTRAINTS.iter().find(|c| c.0 == name) {
                let mut f = FieldErrors::default();
                f.add(field, *msg);
                return if *conflict {
                    Self::Conflict {
                        message: (*msg).to_owned(),
                        fields: Some(f),
                    }
                } else {
                    Self::Validation(f)
                };
            }
        }
        Self::Internal(anyhow::Error::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_database_connection_is_unavailable_whatever_context_it_carries() {
        let reset = || sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        for lost in [sqlx::Error::PoolTimedOut, sqlx::Error::PoolClosed, reset()] {
            assert!(connection_lost(&lost), "{lost}");
            let wrapped = anyhow::Error::new(lost).context("loading the service");
            assert!(AppError::Internal(wrapped).is_database_unavailable());
        }
        assert!(AppError::from(reset()).is_database_unavailable());
        for other in [
            sqlx::Error::RowNotFound,
            sqlx::Error::Protocol("bad".into()),
        ] {
            assert!(!connection_lost(&other), "{other}");
        }
        assert!(!AppError::Internal(anyhow::anyhow!("a bug")).is_database_unavailable());
        assert!(!AppError::NotFound("service").is_database_unavailable());
    }
}
