//! The trait every provisioning module implements, and what it is given.

use std::collections::BTreeMap;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::Serialize;

use crate::result::ProvisioningResult;

/// How a credential field is entered on the server form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputType {
    Text,
    Url,
    Password,
    Number,
}

/// One credential field a module needs on its servers.
#[derive(Debug, Clone, Serialize)]
pub struct CredentialField {
    pub name: &'static str,
    pub label: &'static str,
    pub input_type: InputType,
    pub required: bool,
    /// Stored encrypted, masked on forms, never sent back to a browser or client.
    pub secret: bool,
    pub placeholder: &'static str,
    pub help: &'static str,
}

/// What a module is, for menus, forms and validation.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleInfo {
    pub id: &'static str,
    pub label: &'static str,
    pub description: &'static str,
    pub credential_fields: Vec<CredentialField>,
}

impl ModuleInfo {
    /// The names of the secret fields.
    pub fn secret_fields(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.credential_fields
            .iter()
            .filter(|f| f.secret)
            .map(|f| f.name)
    }
}

/// A server's credentials: plain fields and secret ones, by field name.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub fields: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, SecretString>,
}

impl Credentials {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }
}

/// The account to create, fixed before the first attempt.
#[derive(Debug, Clone)]
pub struct AccountSpec {
    pub username: String,
    pub password: SecretString,
    pub domain: String,
    pub package: String,
    pub email: String,
    pub disk_limit_mb: i64,
    pub bandwidth_limit_mb: i64,
}

/// What the process lends a module: the shared HTTP client (connection pool,
/// timeouts, TLS verification setting, no redirects, the address check at
/// connect time) and the address policy it was built with.
#[derive(Clone)]
pub struct ModuleContext {
    pub http: reqwest::Client,
    /// `PANEL_ALLOWED_NETWORKS`: where calls may go; clients check IP-literal
    /// and plain-http destinations with it before sending.
    pub network: opterius::NetworkPolicy,
}

/// Field errors by field name, shown next to the fields.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// A provisioning module: one kind of hosting control panel.
#[async_trait]
pub trait ProvisioningModule: Send + Sync {
    fn info(&self) -> &ModuleInfo;

    /// Checks credentials before they are stored or used.
    fn validate_credentials(&self, creds: &Credentials) -> Result<(), FieldErrors>;

    async fn create_account(
        &self,
        ctx: &ModuleContext,
        creds: &Credentials,
        spec: &AccountSpec,
    ) -> ProvisioningResult;
    async fn suspend_account(
        &self,
        ctx: &ModuleContext,
        creds: &Credentials,
        account_id: &str,
    ) -> ProvisioningResult;
    async fn unsuspend_account(
        &self,
        ctx: &ModuleContext,
        creds: &Credentials,
        account_id: &str,
    ) -> ProvisioningResult;
    async fn terminate_account(
        &self,
        ctx: &ModuleContext,
        creds: &Credentials,
        account_id: &str,
    ) -> ProvisioningResult;
    async fn account_info(
        &self,
        ctx: &ModuleContext,
        creds: &Credentials,
        account_id: &str,
    ) -> ProvisioningResult;
    /// A lightweight authenticated call: server name and version, or why not.
    async fn test_connection(&self, ctx: &ModuleContext, creds: &Credentials)
    -> ProvisioningResult;
}
