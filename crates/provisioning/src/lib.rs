//! Provisioning modules' common ground: the `ProvisioningModule` trait and its
//! capabilities, `AccountRef`, what an action returns (vendor-neutral failure
//! kinds, the request and response records), the registry that resolves modules
//! by id, and account naming. It names no vendor: the modules live in their own
//! crates. Modules are pure: they get what they need as arguments and never
//! touch the database.

mod module;
mod naming;
mod redact;
mod registry;
mod result;

pub use module::{
    AccountRef, AccountSpec, Capability, CredentialField, Credentials, FieldErrors, InputType,
    ModuleContext, ModuleInfo, ProvisioningModule,
};
pub use naming::{generate_password, username_base, username_candidate};
pub use redact::{REDACTED, Redactor};
pub use registry::Registry;
pub use result::{
    CertificateInfo, Failure, FailureKind, ProvisioningResult, RequestRecord, ResponseRecord,
    Success,
};
