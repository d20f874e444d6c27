//! Submitted forms, and validation messages shown next to their fields.

use std::collections::BTreeMap;

use axum::extract::{FromRequest, Request};

use crate::app::error::AppError;
use crate::domain::FieldErrors;
use crate::web::error::WebError;

/// An urlencoded form as its name/value pairs (repeated names kept).
pub struct FormData(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequest<S> for FormData {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::Form::<Vec<(String, String)>>::from_request(req, state)
            .await
            .map(|f| Self(f.0))
            .map_err(|e| WebError::BadRequest(format!("could not read the form: {e}")))
    }
}

impl FormData {
    /// The first value of `name`, or "".
    pub fn get(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// Values whose names start with `prefix`, keyed by the rest of the name.
    pub fn prefixed(&self, prefix: &str) -> BTreeMap<String, String> {
        self.0
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_owned(), v.clone())))
            .collect()
    }

    /// A whole number; blank is `blank`; anything else is a field error.
    pub fn int(&self, name: &str, blank: i64, errors: &mut FieldErrors) -> i64 {
        let raw = self.get(name);
        let raw = raw.trim();
        if raw.is_empty() {
            return blank;
        }
        raw.parse().unwrap_or_else(|_| {
            errors.add(name, "enter a whole number");
            blank
        })
    }
}

/// Field messages for a form.
#[derive(Debug, Clone, Default)]
pub struct Errors(pub BTreeMap<String, Vec<String>>);

impl Errors {
    pub fn any(&self) -> bool {
        !self.0.is_empty()
    }

    pub fn has(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    /// The messages for `field`, joined.
    pub fn of(&self, field: &str) -> String {
        self.0.get(field).map(|m| m.join("; ")).unwrap_or_default()
    }

    /// `aria-invalid` for a field: "true" when it has an error, else "".
    pub fn invalid(&self, field: &str) -> &'static str {
        if self.has(field) { "true" } else { "" }
    }

    /// Every message, as "field: message", for the summary above a form.
    pub fn all(&self) -> Vec<String> {
        self.0
            .iter()
            .flat_map(|(k, v)| v.iter().map(move |m| format!("{}: {m}", label_of(k))))
            .collect()
    }
}

fn label_of(field: &str) -> String {
    field
        .strip_prefix("credentials.")
        .unwrap_or(field)
        .replace('_', " ")
}

impl From<FieldErrors> for Errors {
    fn from(f: FieldErrors) -> Self {
        Self(f.0)
    }
}

/// Splits an app error into form messages (shown on the form) or a real error.
pub fn form_errors(e: AppError) -> Result<Errors, WebError> {
    match e {
        AppError::Validation(f) => Ok(f.into()),
        AppError::Conflict {
            fields: Some(f), ..
        } => Ok(f.into()),
        AppError::Conflict {
            message,
            fields: None,
        } => {
            let mut f = FieldErrors::default();
            f.add("form", message);
            Ok(f.into())
        }
        other => Err(other.into()),
    }
}
