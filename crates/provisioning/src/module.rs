//! The trait every provisioning module implements, and what it is given.

use std::collections::BTreeMap;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::Serialize;

use crate::result::{Failure, ProvisioningResult};

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

/// An action a module may be able to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    Create,
    Suspend,
    Unsuspend,
    Terminate,
    Info,
    TestConnection,
    ChangePackage,
    ChangePassword,
    Usage,
    ListPackages,
}

impl Capability {
    pub const ALL: &'static [Capability] = &[
        Self::Create,
        Self::Suspend,
        Self::Unsuspend,
        Self::Terminate,
        Self::Info,
        Self::TestConnection,
        Self::ChangePackage,
        Self::ChangePassword,
        Self::Usage,
        Self::ListPackages,
    ];

    /// What every module can do: the actions of the first wave.
    pub const BASIC: &'static [Capability] = &[
        Self::Create,
        Self::Suspend,
        Self::Unsuspend,
        Self::Terminate,
        Self::Info,
        Self::TestConnection,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Suspend => "suspend",
            Self::Unsuspend => "unsuspend",
            Self::Terminate => "terminate",
            Self::Info => "info",
            Self::TestConnection => "test_connection",
            Self::ChangePackage => "change_package",
            Self::ChangePassword => "change_password",
            Self::Usage => "usage",
            Self::ListPackages => "list_packages",
        }
    }
}

/// What a module is, for menus, forms and validation.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleInfo {
    pub id: &'static str,
    pub label: &'static str,
    pub description: &'static str,
    pub credential_fields: Vec<CredentialField>,
    pub capabilities: Vec<Capability>,
}

impl ModuleInfo {
    /// The names of the secret fields.
    pub fn secret_fields(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.credential_fields
            .iter()
            .filter(|f| f.secret)
            .map(|f| f.name)
    }

    pub fn can(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
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

/// An account on a Panel, by every name we know it under: the Panel's id (once
/// the Panel gave one), and the username and domain fixed before the first call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRef {
    pub panel_id: Option<String>,
    pub username: String,
    pub domain: String,
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
    /// The client's name, for Panels that keep one.
    pub client_name: String,
    /// Commerce's id of the service, so the account is traceable on the Panel.
    pub service_id: i64,
}

impl AccountSpec {
    /// The account this spec creates, before the Panel names it.
    pub fn account_ref(&self) -> AccountRef {
        AccountRef {
            panel_id: None,
            username: self.username.clone(),
            domain: self.domain.clone(),
        }
    }
}

/// What the process lends a module: the HTTP client for the server's TLS trust
/// (connection pool, timeouts, no redirects, the address check at connect
/// time). Modules hold their own address policy for IP-literal destinations.
#[derive(Clone)]
pub struct ModuleContext {
    pub http: reqwest::Client,
}

/// Field errors by field name, shown next to the fields.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// A provisioning module: one kind of hosting control panel. The actions beyond
/// the first wave answer `unsupported` unless a module says otherwise (and lists
/// them in its capabilities).
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
    /// `reason` is for the Panel's records where it keeps one (never empty
    /// when given); modules without the notion ignore it.
    async fn suspend_account(
        &self,
        ctx: &ModuleContext,
        creds: &Credentials,
        account: &AccountRef,
        reason: Option<&str>,
    ) -> ProvisioningResult;
    async fn unsuspend_account(
        &self,
        ctx: &ModuleContext,
        creds: &Credentials,
        account: &AccountRef,
    ) -> ProvisioningResult;
    /// Terminating an account the Panel no longer has answers `not_found`; the
    /// provisioner counts that as done.
    async fn terminate_account(
        &self,
        ctx: &ModuleContext,
        creds: &Credentials,
        account: &AccountRef,
    ) -> ProvisioningResult;
    /// Whether `account_info` can find `account` from what is known of it (a
    /// Panel that names accounts only by id cannot before it gave one).
    fn can_look_up(&self, _account: &AccountRef) -> bool {
        self.info().can(crate::Capability::Info)
    }
    /// The account as the Panel has it: success data carries at least
    /// `username` and `domain` when the Panel says them.
    async fn account_info(
        &self,
        ctx: &ModuleContext,
        creds: &Credentials,
        account: &AccountRef,
    ) -> ProvisioningResult;
    /// A lightweight authenticated call: server name and version, or why not.
    async fn test_connection(&self, ctx: &ModuleContext, creds: &Credentials)
    -> ProvisioningResult;

    async fn change_package(
        &self,
        _ctx: &ModuleContext,
        _creds: &Credentials,
        _account: &AccountRef,
        _package: &str,
    ) -> ProvisioningResult {
        ProvisioningResult::failure(Failure::unsupported(self.info().id, "change packages"))
    }

    async fn change_password(
        &self,
        _ctx: &ModuleContext,
        _creds: &Credentials,
        _account: &AccountRef,
        _password: &SecretString,
    ) -> ProvisioningResult {
        ProvisioningResult::failure(Failure::unsupported(self.info().id, "change passwords"))
    }

    /// Disk and bandwidth use: data `{disk_used_mb, disk_limit_mb, bandwidth_used_mb}`.
    async fn usage(
        &self,
        _ctx: &ModuleContext,
        _creds: &Credentials,
        _account: &AccountRef,
    ) -> ProvisioningResult {
        ProvisioningResult::failure(Failure::unsupported(self.info().id, "report usage"))
    }

    /// The Panel's packages: data `[{name, ...}]`, names in the Panel's exact case.
    async fn list_packages(
        &self,
        _ctx: &ModuleContext,
        _creds: &Credentials,
    ) -> ProvisioningResult {
        ProvisioningResult::failure(Failure::unsupported(self.info().id, "list packages"))
    }
}
