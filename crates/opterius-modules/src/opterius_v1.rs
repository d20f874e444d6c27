//! The `opterius_v1` module: the provisioning API the Opterius Panel ships
//! (v2.8.x): Bearer keys, accounts named by username.

use async_trait::async_trait;
use opterius::{ApiUrl, NetworkPolicy, V1Answer, V1Client, V1CreateAccount};
use provisioning::{
    AccountRef, AccountSpec, Capability, CredentialField, Credentials, Failure, FailureKind,
    FieldErrors, InputType, ModuleContext, ModuleInfo, ProvisioningModule, ProvisioningResult,
    Success,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::wire::{self, finish, refused};

/// The longest username the Panel accepts.
pub const PANEL_USERNAME_MAX: usize = 32;
/// The shortest password the Panel accepts.
pub const PANEL_PASSWORD_MIN: usize = 8;

const CONFIG_HINT: &str = "Fix the server's credentials (api_url such as https://panel.example.com:8443 without a trailing slash, api_key from Panel → Server Mode → Settings → API), click Test Connection, then Save.";

/// Opterius Panel v2.8+, `moduleId = 'opterius_v1'`.
pub struct OpteriusV1Module {
    info: ModuleInfo,
    /// `PANEL_ALLOWED_NETWORKS`: checked on IP-literal and plain-http api_urls
    /// before sending (the HTTP client checks resolved names at connect time).
    network: NetworkPolicy,
}

impl Default for OpteriusV1Module {
    fn default() -> Self {
        Self::new()
    }
}

impl OpteriusV1Module {
    /// The module under the strict default address policy; see `with_network`.
    pub fn new() -> Self {
        Self {
            info: ModuleInfo {
                id: "opterius_v1",
                label: "Opterius Panel v2.8+ (API key)",
                description: "Creates and manages hosting accounts on Opterius Panel v2.8 and later through its /api/v1 provisioning API, with an opt_ API key.",
                credential_fields: vec![
                    CredentialField {
                        name: "api_url",
                        label: "Panel URL",
                        input_type: InputType::Url,
                        required: true,
                        secret: false,
                        placeholder: "https://panel.example.com:8443",
                        help: "The Panel's address, usually port 8443, no trailing slash.",
                    },
                    CredentialField {
                        name: "api_key",
                        label: "API key",
                        input_type: InputType::Password,
                        required: true,
                        secret: true,
                        placeholder: "opt_...",
                        help: "Key from Panel → Server Mode → Settings → API, with the account.* scopes.",
                    },
                    CredentialField {
                        name: "panel_server_id",
                        label: "Panel server id",
                        input_type: InputType::Number,
                        required: false,
                        secret: false,
                        placeholder: "",
                        help: "Optional: the Panel server to place accounts on (a key tied to a server overrides it).",
                    },
                ],
                capabilities: Capability::ALL.to_vec(),
            },
            network: NetworkPolicy::default(),
        }
    }

    /// Where this module's calls may go (`PANEL_ALLOWED_NETWORKS`).
    pub fn with_network(mut self, network: NetworkPolicy) -> Self {
        self.network = network;
        self
    }

    fn client(&self, ctx: &ModuleContext, creds: &Credentials) -> Result<V1Client, Failure> {
        let url = ApiUrl::parse(creds.field("api_url").unwrap_or_default())
            .map_err(|e| wire::config(e.to_string(), CONFIG_HINT))?;
        let key = creds
            .secrets
            .get("api_key")
            .filter(|t| !t.expose_secret().trim().is_empty())
            .ok_or_else(|| wire::config("the server has no api_key set", CONFIG_HINT))?;
        Ok(V1Client::new(ctx.http.clone(), url, key.clone()).with_network(self.network.clone()))
    }

    async fn with_client<F, Fut>(
        &self,
        ctx: &ModuleContext,
        creds: &Credentials,
        f: F,
    ) -> ProvisioningResult
    where
        F: FnOnce(V1Client) -> Fut,
        Fut: std::future::Future<Output = ProvisioningResult>,
    {
        match self.client(ctx, creds) {
            Ok(c) => f(c).await,
            Err(e) => refused(e),
        }
    }
}

/// The Panel's optional server id.
fn panel_server_id(creds: &Credentials) -> Result<Option<i64>, String> {
    creds
        .field("panel_server_id")
        .map(|v| {
            v.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| "panel_server_id must be a positive whole number".to_owned())
        })
        .transpose()
}

/// Whether a username meets the Panel's rules: 1-32 letters, digits, `-`, `_`.
pub fn username_ok(u: &str) -> bool {
    (1..=PANEL_USERNAME_MAX).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A `result: warning` is not a success: the Panel kept something half-done.
fn not_warning(what: &str, answer: &V1Answer) -> Result<(), Failure> {
    if !answer.warning {
        return Ok(());
    }
    let mut f = Failure::new(
        FailureKind::NeedsAttention,
        format!(
            "The Panel answered with a warning to the {what}: {}",
            answer.message
        ),
        "The Panel kept the account but its server agent failed. Fix the Panel server (see the Panel's message), then retry the service: Commerce adopts the account the Panel kept instead of creating another.",
        false,
    );
    f.existing_account_id = id_text(answer.data.get("account_id"));
    // The Panel acted: never place the account elsewhere or give its slot back.
    f.outcome_unknown = true;
    Err(f)
}

fn id_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

fn done(what: &'static str) -> impl FnOnce(V1Answer) -> Result<Success, Failure> {
    move |a| {
        not_warning(what, &a)?;
        Ok(Success {
            message: if a.message.is_empty() {
                what.to_owned()
            } else {
                a.message
            },
            data: a.data,
            account_id: None,
        })
    }
}

#[async_trait]
impl ProvisioningModule for OpteriusV1Module {
    fn info(&self) -> &ModuleInfo {
        &self.info
    }

    fn validate_credentials(&self, creds: &Credentials) -> Result<(), FieldErrors> {
        let mut errors = wire::url_and_secret_errors(creds, "api_key");
        if let Err(e) = panel_server_id(creds) {
            errors.entry("panel_server_id".into()).or_default().push(e);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    async fn create_account(
        &self,
        ctx: &ModuleContext,
        creds: &Credentials,
        spec: &AccountSpec,
    ) -> ProvisioningResult {
        let password = spec.password.expose_secret();
        if !username_ok(&spec.username) || password.chars().count() < PANEL_PASSWORD_MIN {
            return refused(Failure::of(
                FailureKind::Internal,
                format!(
                    "username {:?} or the generated password does not meet the Panel's rules (username 1-32 letters, digits, - or _; password at least 8); nothing was sent",
                    spec.username
                ),
            ));
        }
        let server_id = match panel_server_id(creds) {
            Ok(id) => id,
            Err(e) => return refused(wire::config(e, CONFIG_HINT)),
        };
        let client_name = if spec.client_name.trim().is_empty() {
            spec.email.clone()
        } else {
            spec.client_name.clone()
        };
        let payload = V1CreateAccount {
            domain: spec.domain.clone(),
            username: spec.username.clone(),
            password: password.to_owned(),
            package: spec.package.clone(),
            client_email: spec.email.clone(),
            client_name,
            server_id,
            whmcs_service_id: Some(spec.service_id),
            whmcs_client_id: None,
        };
        self.with_client(ctx, creds, |c| async move {
            finish(c.create_account(&payload).await, |a| {
                not_warning("create", &a)?;
                // The create's account_id is informational: the Panel names
                // accounts by username, which is what we keep when it is absent.
                let id = id_text(a.data.get("account_id")).unwrap_or_else(|| spec.username.clone());
                Ok(Success {
                    message: format!(
                        "Account {} created on the Panel (account id {id})",
                        spec.username
                    ),
                    data: json!({"account_id": id, "username": spec.username, "server_ip": a.data.get("server_ip")}),
                    account_id: Some(id),
                })
            })
        })
        .await
    }

    async fn suspend_account(
        &self,
        ctx: &ModuleContext,
        creds: &Credentials,
        account: &AccountRef,
        reason: Option<&str>,
    ) -> ProvisioningResult {
        self.with_client(ctx, creds, |c| async move {
            finish(
                c.suspend(&account.username, reason).await,
                done("Account suspended"),
            )
        })
        .await
    }

    async fn unsuspend_account(
        &self,
        ctx: &ModuleContext,
        creds: &Credentials,
        account: &AccountRef,
    ) -> ProvisioningResult {
        self.with_client(ctx, creds, |c| async move {
            finish(
                c.unsuspend(&account.username).await,
                done("Account unsuspended"),
            )
        })
        .await
    }

    async fn terminate_account(
        &self,
        ctx: &ModuleContext,
        creds: &Credentials,
        account: &AccountRef,
    ) -> ProvisioningResult {
        self.with_client(ctx, creds, |c| async move {
            finish(
                c.terminate(&account.username).await,
                done("Account terminated"),
            )
        })
        .await
    }

    async fn account_info(
        &self,
        ctx: &ModuleContext,
        creds: &Credentials,
        account: &AccountRef,
    ) -> ProvisioningResult {
        self.usage(ctx, creds, account).await
    }

    async fn usage(
        &self,
        ctx: &ModuleContext,
        creds: &Credentials,
        account: &AccountRef,
    ) -> ProvisioningResult {
        self.with_client(ctx, creds, |c| async move {
            finish(c.usage(&account.username).await, |a| {
                not_warning("usage lookup", &a)?;
                let d = &a.data;
                let suspended = d.get("suspended").and_then(Value::as_bool);
                Ok(Success {
                    message: format!(
                        "Account {} is {}",
                        account.username,
                        match suspended {
                            Some(true) => "suspended",
                            Some(false) => "active",
                            None => "present",
                        }
                    ),
                    data: json!({
                        "username": d.get("username"),
                        "domain": d.get("domain"),
                        "status": suspended.map(|s| if s { "suspended" } else { "active" }),
                        "disk_used_mb": d.get("disk_used_mb"),
                        "disk_limit_mb": d.get("disk_limit"),
                        "bandwidth_used_mb": d.get("bw_used_mb"),
                    }),
                    account_id: account.panel_id.clone(),
                })
            })
        })
        .await
    }

    async fn test_connection(
        &self,
        ctx: &ModuleContext,
        creds: &Credentials,
    ) -> ProvisioningResult {
        self.with_client(ctx, creds, |c| async move {
            finish(c.test().await, |a| {
                not_warning("connection test", &a)?;
                let text = |k: &str| a.data.get(k).and_then(Value::as_str).map(str::to_owned);
                let (name, version) = (text("panel"), text("version"));
                Ok(Success {
                    message: format!(
                        "Connected to {} (version {})",
                        name.as_deref().unwrap_or("the Panel"),
                        version.as_deref().unwrap_or("unknown")
                    ),
                    data: json!({"name": name, "version": version}),
                    account_id: None,
                })
            })
        })
        .await
    }

    async fn change_package(
        &self,
        ctx: &ModuleContext,
        creds: &Credentials,
        account: &AccountRef,
        package: &str,
    ) -> ProvisioningResult {
        self.with_client(ctx, creds, |c| async move {
            finish(
                c.change_package(&account.username, package).await,
                done("Package changed"),
            )
        })
        .await
    }

    async fn change_password(
        &self,
        ctx: &ModuleContext,
        creds: &Credentials,
        account: &AccountRef,
        password: &SecretString,
    ) -> ProvisioningResult {
        if password.expose_secret().chars().count() < PANEL_PASSWORD_MIN {
            return refused(Failure::of(
                FailureKind::Internal,
                "the new password is shorter than the Panel's 8 characters; nothing was sent",
            ));
        }
        self.with_client(ctx, creds, |c| async move {
            finish(
                c.change_password(&account.username, password.expose_secret())
                    .await,
                done("Password changed"),
            )
        })
        .await
    }

    async fn list_packages(&self, ctx: &ModuleContext, creds: &Credentials) -> ProvisioningResult {
        self.with_client(ctx, creds, |c| async move {
            finish(c.packages().await, |a| {
                let Value::Array(items) = a.data else {
                    return Err(Failure::of(
                        FailureKind::InvalidResponse,
                        "the Panel's package list is not a list",
                    ));
                };
                let names: Vec<&str> = items
                    .iter()
                    .filter_map(|p| p.get("name").and_then(Value::as_str))
                    .collect();
                Ok(Success {
                    message: format!(
                        "The Panel has {} package(s): {}",
                        names.len(),
                        names.join(", ")
                    ),
                    data: Value::Array(items.clone()),
                    account_id: None,
                })
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_usernames_and_passwords_meet_the_panels_rules() {
        for d in [
            "alice.example.com",
            "www.Bob-Shop.co.uk",
            "42.net",
            "averyveryverylongdomainname.com",
        ] {
            let base = provisioning::username_base(d);
            for n in [0, 7, 99_999] {
                let u = provisioning::username_candidate(&base, n);
                assert!(username_ok(&u), "{u}");
            }
        }
        assert!(provisioning::generate_password(20).len() >= PANEL_PASSWORD_MIN);
        assert!(!username_ok("has space") && !username_ok(&"a".repeat(33)) && !username_ok(""));
    }

    #[test]
    fn api_key_is_the_secret_and_server_id_is_optional() {
        let m = OpteriusV1Module::new();
        assert_eq!(
            m.info().secret_fields().collect::<Vec<_>>(),
            vec!["api_key"]
        );
        let mut c = Credentials::default();
        c.fields
            .insert("api_url".into(), "https://p.example.com:8443".into());
        c.secrets
            .insert("api_key".into(), SecretString::from("opt_x".to_owned()));
        assert!(m.validate_credentials(&c).is_ok());
        c.fields.insert("panel_server_id".into(), "three".into());
        assert!(
            m.validate_credentials(&c)
                .expect_err("bad id")
                .contains_key("panel_server_id")
        );
    }
}
