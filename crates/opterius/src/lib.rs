//! The Opterius wire contract.
//!
//! Byte-exact HMAC signing and verification for the Opterius Panel REST API
//! and the Opterius Agent API, typed HTTP clients for both and for the
//! `/api/v1` that Panel v2.8+ ships, and an error taxonomy that tells an admin
//! what went wrong and how to fix it. This crate knows nothing of databases or web frameworks.

pub mod agent;
mod api_url;
mod client;
mod error;
mod http;
mod network;
pub mod panel;
pub mod tls;
mod types;
mod v1;

pub use agent::{AgentClient, AgentCreateAccount};
pub use api_url::{ApiUrl, ApiUrlError};
pub use client::{ClientOptions, Exchange, PanelClient, RequestRecord, Response};
pub use error::{CertificateInfo, ErrorKind, PanelError};
pub use http::redact;
pub use network::{AddressRefused, Cidr, NetworkPolicy};
pub use tls::TlsPolicy;
pub use types::{AccountInfo, CreateAccount, CreatedAccount, ServerStats};
pub use v1::{V1Answer, V1Client, V1CreateAccount};
