//! The Opterius wire contract.
//!
//! Byte-exact HMAC signing and verification for the Opterius Panel REST API
//! (seeds 000/001) and the Opterius Agent API (seed 002), typed HTTP clients for
//! both, and an error taxonomy that tells an admin what went wrong and how to fix
//! it. This crate knows nothing of databases or web frameworks.

pub mod agent;
mod api_url;
mod client;
mod error;
mod http;
mod network;
pub mod panel;
mod types;

pub use agent::{AgentClient, AgentCreateAccount};
pub use api_url::{ApiUrl, ApiUrlError};
pub use client::{ClientOptions, Exchange, PanelClient, RequestRecord, Response};
pub use error::{ErrorKind, PanelError};
pub use http::redact;
pub use network::{AddressRefused, Cidr, NetworkPolicy};
pub use types::{AccountInfo, CreateAccount, CreatedAccount, ServerStats};
