//! Application services: validation and orchestration between the web layer,
//! the database and the provisioning modules. Handlers call these, nothing else.

pub mod admins;
pub mod adopt;
pub mod alerts;
pub mod attention;
pub mod bulk;
pub mod catalog;
pub mod changes;
pub mod connection;
pub mod dashboard;
pub mod error;
pub mod idempotency;
pub mod keys;
pub mod log;
pub mod modules;
pub mod orders;
pub mod page;
pub mod readiness;
pub mod schedule;
pub mod servers;
pub mod services;
pub mod sessions;
pub mod tls;
pub mod tokens;
pub mod usage_schedule;
