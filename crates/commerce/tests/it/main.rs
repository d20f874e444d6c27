//! Integration tests: real PostgreSQL, the real worker pool and HTTP server, the
//! in-process Panel simulator. One binary for the crate.

mod alerts;
mod api;
mod api_contract;
mod attention;
mod cluster;
mod harness;
mod lifecycle;
mod log_viewer;
mod ops;
mod outage;
mod placement;
mod promises;
mod provisioning;
mod security;
mod support;
mod ui;
mod v1;
