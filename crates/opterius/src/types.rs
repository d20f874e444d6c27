//! Panel payloads and answers (the HMAC-signed API).

use serde::{Deserialize, Serialize};

/// The body of `POST /api/accounts`.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreateAccount {
    pub username: String,
    pub password: String,
    pub domain: String,
    pub package: String,
    pub email: String,
    pub disk_limit_mb: i64,
    pub bandwidth_limit_mb: i64,
}

impl CreateAccount {
    /// What the provisioning log records of this request: its declared
    /// fields, the password replaced (never the bytes that went on the wire).
    pub fn record(&self) -> serde_json::Value {
        serde_json::json!({
            "username": self.username,
            "password": "[redacted]",
            "domain": self.domain,
            "package": self.package,
            "email": self.email,
            "disk_limit_mb": self.disk_limit_mb,
            "bandwidth_limit_mb": self.bandwidth_limit_mb,
        })
    }
}

impl std::fmt::Debug for CreateAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateAccount")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("domain", &self.domain)
            .field("package", &self.package)
            .field("email", &self.email)
            .field("disk_limit_mb", &self.disk_limit_mb)
            .field("bandwidth_limit_mb", &self.bandwidth_limit_mb)
            .finish()
    }
}

/// The Panel's answer to a create: the new account's id, read tolerantly from
/// `id`, `account_id`, `data.id` or `data.account_id`, number or string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatedAccount {
    pub id: String,
}

impl CreatedAccount {
    /// Reads an account id from a Panel answer, if it names one.
    pub fn from_json(value: &serde_json::Value) -> Option<Self> {
        fn id_of(v: &serde_json::Value) -> Option<String> {
            ["id", "account_id"].iter().find_map(|k| match v.get(k)? {
                serde_json::Value::Number(n) => Some(n.to_string()),
                serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                _ => None,
            })
        }
        id_of(value)
            .or_else(|| value.get("data").and_then(id_of))
            .map(|id| Self { id })
    }
}

/// `GET /api/server/stats`: what Test Connection shows on success.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerStats {
    /// The Panel server's name (`name`, `server_name` or `hostname`).
    pub name: Option<String>,
    /// The Panel version.
    pub version: Option<String>,
    /// The whole stats payload as the Panel sent it.
    pub raw: serde_json::Value,
}

impl ServerStats {
    pub(crate) fn from_json(value: &serde_json::Value) -> Option<Self> {
        let obj = value.get("data").filter(|d| d.is_object()).unwrap_or(value);
        if !obj.is_object() {
            return None;
        }
        let text = |keys: &[&str]| {
            keys.iter().find_map(|k| match obj.get(*k)? {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        Some(Self {
            name: text(&["name", "server_name", "hostname"]),
            version: text(&["version", "panel_version"]),
            raw: value.clone(),
        })
    }
}

/// `GET /api/accounts/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountInfo {
    pub id: Option<String>,
    pub username: Option<String>,
    pub domain: Option<String>,
    pub status: Option<String>,
    pub raw: serde_json::Value,
}

impl AccountInfo {
    pub(crate) fn from_json(value: &serde_json::Value) -> Option<Self> {
        let obj = value.get("data").filter(|d| d.is_object()).unwrap_or(value);
        if !obj.is_object() {
            return None;
        }
        let text = |k: &str| match obj.get(k)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        Some(Self {
            id: text("id").or_else(|| text("account_id")),
            username: text("username"),
            domain: text("domain"),
            status: text("status").or_else(|| {
                obj.get("suspended")?
                    .as_bool()
                    .map(|s| if s { "suspended" } else { "active" }.to_owned())
            }),
            raw: value.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn created_account_id_is_read_tolerantly() {
        for (body, want) in [
            (json!({"id": 42}), "42"),
            (json!({"id": "acc_7"}), "acc_7"),
            (json!({"account_id": 9}), "9"),
            (json!({"data": {"id": "x1"}}), "x1"),
            (json!({"data": {"account_id": 1001}}), "1001"),
            (json!({"success": true, "data": {"account_id": "55"}}), "55"),
        ] {
            assert_eq!(
                CreatedAccount::from_json(&body).map(|a| a.id).as_deref(),
                Some(want),
                "{body}"
            );
        }
        assert_eq!(CreatedAccount::from_json(&json!({"ok": true})), None);
        assert_eq!(CreatedAccount::from_json(&json!({"id": null})), None);
        assert_eq!(CreatedAccount::from_json(&json!({"id": ""})), None);
    }

    #[test]
    fn debug_of_create_payload_hides_the_password() {
        let p = CreateAccount {
            username: "alice".into(),
            password: "S3cret!pass-word".into(),
            domain: "alice.example".into(),
            package: "Starter".into(),
            email: "a@example.com".into(),
            disk_limit_mb: 1,
            bandwidth_limit_mb: 2,
        };
        assert!(!format!("{p:?}").contains("S3cret"));
    }
}
