//! Provisioning modules: the `ProvisioningModule` trait, what its actions return,
//! the registry that resolves modules by id, and the modules themselves
//! (`opterius` first). Modules are pure: they get what they need as arguments and
//! never touch the database.

mod module;
mod naming;
mod opterius_module;
mod redact;
mod registry;
mod result;

pub use module::{
    AccountSpec, CredentialField, Credentials, FieldErrors, InputType, ModuleContext, ModuleInfo,
    ProvisioningModule,
};
pub use naming::{generate_password, username_base, username_candidate};
pub use opterius_module::OpteriusModule;
pub use redact::{REDACTED, Redactor};
pub use registry::Registry;
pub use result::{Failure, FailureKind, ProvisioningResult, Success};
