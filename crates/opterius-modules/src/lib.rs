//! The Opterius provisioning modules, outside the vendor-neutral trait's crate:
//! `opterius` (the Panel's HMAC-signed dialect) and `opterius_v1` (the Bearer-key
//! `/api/v1` the Panel ships), and the translation of the wire crate's errors
//! and records into the `provisioning` crate's words.

mod opterius;
mod opterius_v1;
mod wire;

use std::sync::Arc;

pub use opterius::OpteriusModule;
pub use opterius_v1::OpteriusV1Module;
use provisioning::Registry;

/// A registry with every built-in module, calling only where `network` allows.
pub fn builtin(network: &::opterius::NetworkPolicy) -> Registry {
    let mut r = Registry::empty();
    r.register(Arc::new(
        OpteriusModule::new().with_network(network.clone()),
    ));
    r.register(Arc::new(
        OpteriusV1Module::new().with_network(network.clone()),
    ));
    r
}
