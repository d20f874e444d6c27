//! Parse, don't validate: input newtypes whose `parse` returns a field error, and
//! the status enums the database constrains.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Per-field validation messages, as the API and forms show them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FieldErrors(pub BTreeMap<String, Vec<String>>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keeps `Ok` values, records `Err` messages under `field`.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|e| self.add(field, e)).ok()
    }

    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

/// A hosting domain: a valid lowercase hostname with at least two labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Domain(String);

impl Domain {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let d = raw.trim().trim_end_matches('.').to_ascii_lowercase();
        if d.is_empty() {
            return Err("domain is required".into());
        }
        if d.len() > 253 {
            return Err("domain is longer than 253 characters".into());
        }
        let labels: Vec<&str> = d.split('.').collect();
        if labels.len() < 2 {
            return Err(format!(
                "{d:?} is not a full domain name (e.g. example.com)"
            ));
        }
        for label in &labels {
            let ok = !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(format!(
                    "{d:?} is not a valid hostname: use letters, digits and hyphens (punycode for IDNs)"
                ));
            }
        }
        if labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!(
                "{d:?} looks like an IP address; a domain name is required"
            ));
        }
        Ok(Self(d))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address (shape check only; the Panel gets it verbatim).
pub fn parse_email(raw: &str) -> Result<String, String> {
    let e = raw.trim();
    let Some((local, host)) = e.split_once('@') else {
        return Err("email must look like name@example.com".into());
    };
    if local.is_empty()
        || host.is_empty()
        || !host.contains('.')
        || e.len() > 254
        || e.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err("email must look like name@example.com".into());
    }
    Ok(e.to_owned())
}

/// A required display name, trimmed, at most `max` characters.
pub fn parse_name(raw: &str, what: &str, max: usize) -> Result<String, String> {
    let n = raw.trim();
    if n.is_empty() {
        return Err(format!("{what} is required"));
    }
    if n.chars().count() > max {
        return Err(format!("{what} is longer than {max} characters"));
    }
    if n.chars().any(char::is_control) {
        return Err(format!("{what} must not contain control characters"));
    }
    Ok(n.to_owned())
}

/// A package name, exactly as configured in Panel → Packages (case-sensitive):
/// surrounding whitespace is an error, not something to trim away silently.
pub fn parse_package(raw: &str) -> Result<String, String> {
    if raw.trim().is_empty() {
        return Err("package is required: copy the exact name from Panel → Packages".into());
    }
    if raw.trim() != raw {
        return Err(
            "package has leading or trailing spaces; the Panel compares names exactly".into(),
        );
    }
    if raw.len() > 128 || raw.chars().any(char::is_control) {
        return Err("package must be at most 128 printable characters".into());
    }
    Ok(raw.to_owned())
}

/// A non-negative limit in MB.
pub fn parse_limit(value: i64, what: &str) -> Result<i64, String> {
    if value < 0 {
        Err(format!("{what} must be a non-negative integer"))
    } else {
        Ok(value)
    }
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some(Self::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        // Stored as its text; a value the enum does not know is a decode
        // error naming it, never silently some other variant.
        impl sqlx::Type<sqlx::Postgres> for $name {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <str as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $name {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                Self::parse(text).ok_or_else(|| {
                    format!("unknown {} {text:?} in the database", stringify!($name)).into()
                })
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.as_str(), buf)
            }
        }
    };
}

string_enum!(
    /// Where new services of a group go.
    Placement { LeastFull => "least_full", Fill => "fill" }
);
string_enum!(
    /// When a product's account is created.
    AutoSetup { OnOrder => "on_order", OnPayment => "on_payment", Manual => "manual" }
);
string_enum!(
    /// A service's lifecycle.
    ServiceStatus {
        Pending => "pending",
        Provisioning => "provisioning",
        Active => "active",
        Suspended => "suspended",
        Terminated => "terminated",
        Failed => "failed",
    }
);
string_enum!(
    /// What a provisioning run does.
    Action {
        Create => "create",
        Suspend => "suspend",
        Unsuspend => "unsuspend",
        Terminate => "terminate",
        Info => "info",
        TestConnection => "test_connection",
        ChangePackage => "change_package",
        ChangePassword => "change_password",
    }
);
string_enum!(
    /// Why a service is suspended: an unsuspend on payment lifts only `overdue`.
    SuspendReason { Overdue => "overdue", Abuse => "abuse", Other => "other" }
);
string_enum!(
    /// Who started a provisioning run.
    TriggeredBy { Admin => "admin", Api => "api", Order => "order", System => "system" }
);
string_enum!(
    /// A provisioning log row's state.
    LogStatus { Pending => "pending", Success => "success", Failed => "failed" }
);
string_enum!(
    /// A server's last known reachability.
    Health { Online => "online", Offline => "offline", Unknown => "unknown" }
);

/// A failure as the provisioner stores it in a service's `last_error`:
/// `{kind, message, hint, retryable, action, at, next_retry_at}`, read back as
/// one typed value instead of by key. A field that is missing, null or of
/// another type reads as empty, so an old or hand-edited row still shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredFailure {
    pub kind: String,
    pub message: String,
    pub hint: String,
    pub next_retry_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl StoredFailure {
    pub fn of(v: &serde_json::Value) -> Self {
        let text = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Self {
            kind: text("kind"),
            message: text("message"),
            hint: text("hint"),
            next_retry_at: v
                .get("next_retry_at")
                .and_then(serde_json::Value::as_str)
                .and_then(|s| s.parse().ok()),
        }
    }

    /// Nothing to show: neither a kind nor a message.
    pub fn is_empty(&self) -> bool {
        self.kind.is_empty() && self.message.is_empty()
    }
}

/// How a provisioning failure reads on the wire (`error`, `last_error`):
/// `{kind, message, hint, retryable}`. Its schema for the OpenAPI document is
/// built from [`provisioning::FailureKind::ALL`], so a new kind is documented
/// the moment it exists.
pub struct ProvisioningErrorSchema;

impl utoipa::PartialSchema for ProvisioningErrorSchema {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use provisioning::FailureKind;
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let kinds = FailureKind::ALL
            .iter()
            .map(|k| format!("`{}`: {}", k.as_str(), k.title()))
            .collect::<Vec<_>>()
            .join("; ");
        ObjectBuilder::new()
            .description(Some(
                "A classified provisioning failure: what went wrong and what to do about it",
            ))
            .property(
                "kind",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(FailureKind::ALL.iter().map(|k| k.as_str())))
                    .description(Some(kinds)),
            )
            .required("kind")
            .property("message", ObjectBuilder::new().schema_type(Type::String))
            .required("message")
            .property(
                "hint",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("the fix an admin can apply")),
            )
            .property("retryable", ObjectBuilder::new().schema_type(Type::Boolean))
            .required("retryable")
            .into()
    }
}

impl utoipa::ToSchema for ProvisioningErrorSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "ProvisioningError".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_hostnames() {
        assert_eq!(
            Domain::parse(" Shop.Example.COM. ").expect("ok").as_str(),
            "shop.example.com"
        );
        for bad in [
            "",
            "localhost",
            "a..b",
            "-a.com",
            "a_b.com",
            "exa mple.com",
            "<script>.com",
            "1.2.3.4",
            "x.com'; drop",
        ] {
            assert!(Domain::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_with_control_characters_are_rejected() {
        assert!(parse_email("a@b.co").is_ok());
        assert!(parse_email("nul\u{0}@x.test").is_err());
        assert!(parse_email("tab\t@x.test").is_err());
    }

    #[test]
    fn package_names_are_kept_exact() {
        assert_eq!(parse_package("Starter").expect("ok"), "Starter");
        assert!(parse_package(" Starter").is_err());
        assert!(parse_package("").is_err());
    }

    #[test]
    fn enums_round_trip_their_text() {
        for s in ServiceStatus::ALL {
            assert_eq!(ServiceStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(Placement::parse("fill"), Some(Placement::Fill));
        assert_eq!(AutoSetup::parse("whenever"), None);
    }

    #[test]
    fn a_stored_failure_reads_typed_and_tolerates_missing_or_odd_fields() {
        let f = StoredFailure::of(&serde_json::json!({
            "kind": "timeout", "message": "no answer", "hint": "check the Panel",
            "retryable": true, "next_retry_at": "2026-12-01T10:00:00Z"
        }));
        assert_eq!(f.kind, "timeout");
        assert_eq!(f.message, "no answer");
        assert_eq!(f.hint, "check the Panel");
        assert_eq!(
            f.next_retry_at.map(|t| t.to_rfc3339()),
            Some("2026-12-01T10:00:00+00:00".into())
        );
        let odd = StoredFailure::of(&serde_json::json!({"kind": null, "message": 7, "hint": "h"}));
        assert!(odd.is_empty());
        assert_eq!(odd.hint, "h");
        assert!(StoredFailure::of(&serde_json::json!("not an object")).is_empty());
    }
}
