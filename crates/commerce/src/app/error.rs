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
