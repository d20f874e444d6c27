//! The `opterius` module: Opterius Panel servers over the Panel's HMAC-signed REST API.

use async_trait::async_trait;
use opterius::{ApiUrl, CreateAccount, NetworkPolicy, PanelClient};
use provisioning::{
    AccountRef, AccountSpec, Capability, CredentialField, Credentials, Failure, FieldErrors,
    InputType, ModuleContext, ModuleInfo, ProvisioningModule, ProvisioningResult, Success,
};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::wire::{self, finish, plain, refused};

/// Opterius Panel, `moduleId = 'opterius'`, the HMAC-signed API.
pub struct OpteriusModule {
    info: ModuleInfo,
    /// `PANEL_ALLOWED_NETWORKS`: checked on IP-literal and plain-http api_urls
    /// before sending (the HTTP client checks resolved names at connect time).
    network: NetworkPolicy,
}

impl Default for OpteriusModule {
    fn default() -> Self {
        Self::new()
    }
}

impl OpteriusModule {
    /// The module under the strict default address policy; see `with_network`.
    pub fn new() -> Self {
        Self {
            info: ModuleInfo {
                id: "opterius",
                label: "Opterius Panel",
                description: "Creates, suspends, unsuspends and terminates hosting accounts on Opterius Panel servers over HMAC-SHA256 signed API requests.",
                credential_fields: vec![
                    CredentialField {
                        name: "api_url",
                        label: "API URL",
                        input_type: InputType::Url,
                        required: true,
                        secret: false,
                        placeholder: "https://panel.example.com",
                        help: "Panel base URL, no trailing slash.",
                    },
                    CredentialField {
                        name: "api_token",
                        label: "API token",
                        input_type: InputType::Password,
                        required: true,
                        secret: true,
                        placeholder: "eyJ...",
                        help: "Token from Panel → Settings → API.",
                    },
                ],
                capabilities: Capability::BASIC.to_vec(),
            },
            network: NetworkPolicy::default(),
        }
    }

    /// Where this module's calls may go (`PANEL_ALLOWED_NETWORKS`).
    pub fn with_network(mut self, network: NetworkPolicy) -> Self {
        self.network = network;
        self
    }

    fn client(&self, ctx: &ModuleContext, creds: &Credentials) -> Result<PanelClient, Failure> {
        let config = |msg: String| wire::config(msg, opterius::ErrorKind::Config.hint());
        let url = ApiUrl::parse(creds.field("api_url").unwrap_or_default())
            .map_err(|e| config(e.to_string()))?;
        let token = creds
            .secrets
            .get("api_token")
            .filter(|t| !t.expose_secret().trim().is_empty())
            .ok_or_else(|| config("the server has no api_token set".into()))?;
        Ok(PanelClient::new(ctx.http.clone(), url, token.clone())
            .with_network(self.network.clone()))
    }
}

/// The account changes that share one shape: call, then a fixed message.
#[derive(Clone, Copy)]
enum Change {
    Suspend,
    Unsuspend,
    Terminate,
}

impl OpteriusModule {
    async fn change(
        &self,
        ctx: &ModuleContext,
        creds: &Credentials,
        account: &AccountRef,
        change: Change,
    ) -> ProvisioningResult {
        let client = match self.client(ctx, creds) {
            Ok(c) => c,
            Err(f) => return refused(f),
        };
        let account_id = match panel_id(account) {
            Ok(id) => id,
            Err(f) => return refused(f),
        };
        let (exchange, message) = match change {
            Change::Suspend => (
                client.suspend_account(account_id).await,
                "Account suspended",
            ),
            Change::Unsuspend => (
                client.unsuspend_account(account_id).await,
                "Account unsuspended",
            ),
            Change::Terminate => (
                client.terminate_account(account_id).await,
                "Account terminated",
            ),
        };
        finish(exchange, plain(message))
    }
}

/// This dialect names accounts by the Panel's id only.
fn panel_id(account: &AccountRef) -> Result<&str, Failure> {
    account.panel_id.as_deref().ok_or_else(|| {
        wire::config(
            format!(
                "the Panel never gave an account id for {}; this Panel dialect names accounts by id only",
                account.username
            ),
            "Record the account's Panel id on the service (adopt it), then retry.",
        )
    })
}

#[async_trait]
impl ProvisioningModule for OpteriusModule {
    fn info(&self) -> &ModuleInfo {
        &self.info
    }

    fn validate_credentials(&self, creds: &Credentials) -> Result<(), FieldErrors> {
        let errors = wire::url_and_secret_errors(creds, "api_token");
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
        let client = match self.client(ctx, creds) {
            Ok(c) => c,
            Err(f) => return refused(f),
        };
        let payload = CreateAccount {
            username: spec.username.clone(),
            password: spec.password.expose_secret().to_owned(),
            domain: spec.domain.clone(),
            package: spec.package.clone(),
            email: spec.email.clone(),
            disk_limit_mb: spec.disk_limit_mb,
            bandwidth_limit_mb: spec.bandwidth_limit_mb,
        };
        finish(client.create_account(&payload).await, |created| {
            Ok(Success {
                message: format!(
                    "Account {} created on the Panel with id {}",
                    spec.username, created.id
                ),
                data: json!({ "account_id": created.id, "username": spec.username }),
                account_id: Some(created.id),
            })
        })
    }

    async fn suspend_account(
        &self,
        ctx: &ModuleContext,
        creds: &Credentials,
        account: &AccountRef,
        _reason: Option<&str>,
    ) -> ProvisioningResult {
        // The HMAC API's suspend has no reason field.
        self.change(ctx, creds, account, Change::Suspend).await
    }

    async fn unsuspend_account(
        &self,
        ctx: &ModuleContext,
        creds: &Credentials,
        account: &AccountRef,
    ) -> ProvisioningResult {
        self.change(ctx, creds, account, Change::Unsuspend).await
    }

    async fn terminate_account(
        &self,
        ctx: &ModuleContext,
        creds: &Credentials,
        account: &AccountRef,
    ) -> ProvisioningResult {
        self.change(ctx, creds, account, Change::Terminate).await
    }

    fn can_look_up(&self, account: &AccountRef) -> bool {
        // The HMAC API names accounts by id only: nothing to look up without one.
        account.panel_id.is_some()
    }

    async fn account_info(
        &self,
        ctx: &ModuleContext,
        creds: &Credentials,
        account: &AccountRef,
    ) -> ProvisioningResult {
        let account_id = match panel_id(account) {
            Ok(id) => id,
            Err(f) => return refused(f),
        };
        match self.client(ctx, creds) {
            Ok(c) => finish(c.account_info(account_id).await, |info| {
                Ok(Success {
                    message: format!(
                        "Account {} is {}",
                        account_id,
                        info.status.as_deref().unwrap_or("present")
                    ),
                    data: serde_json::to_value(&info).unwrap_or_default(),
                    account_id: info.id.clone(),
                })
            }),
            Err(f) => refused(f),
        }
    }

    async fn test_connection(
        &self,
        ctx: &ModuleContext,
        creds: &Credentials,
    ) -> ProvisioningResult {
        match self.client(ctx, creds) {
            Ok(c) => finish(c.server_stats().await, |stats| {
                Ok(Success {
                    message: format!(
                        "Connected to {} (version {})",
                        stats.name.as_deref().unwrap_or("the Panel"),
                        stats.version.as_deref().unwrap_or("unknown")
                    ),
                    data: json!({ "name": stats.name, "version": stats.version, "stats": stats.raw }),
                    account_id: None,
                })
            }),
            Err(f) => refused(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn creds(url: &str, token: &str) -> Credentials {
        let mut c = Credentials::default();
        c.fields.insert("api_url".into(), url.into());
        c.secrets
            .insert("api_token".into(), SecretString::from(token.to_owned()));
        c
    }

    #[test]
    fn metadata_marks_api_token_secret() {
        let m = OpteriusModule::new();
        assert_eq!(
            (m.info().id, m.info().label),
            ("opterius", "Opterius Panel")
        );
        assert_eq!(
            m.info().secret_fields().collect::<Vec<_>>(),
            vec!["api_token"]
        );
    }

    #[test]
    fn credentials_are_validated_per_field() {
        let m = OpteriusModule::new();
        assert!(
            m.validate_credentials(&creds("https://p.example.com", "t"))
                .is_ok()
        );
        let errs = m
            .validate_credentials(&creds("https://p.example.com/", ""))
            .expect_err("invalid");
        assert!(errs["api_url"][0].contains("must not end with a slash"));
        assert!(errs["api_token"][0].contains("required"));
    }
}
