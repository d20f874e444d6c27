//! Resolves provisioning modules by id.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::module::ProvisioningModule;

/// Every module this process knows, by id.
#[derive(Clone)]
pub struct Registry {
    modules: BTreeMap<&'static str, Arc<dyn ProvisioningModule>>,
}

impl Registry {
    pub fn empty() -> Self {
        Self {
            modules: BTreeMap::new(),
        }
    }

    pub fn register(&mut self, module: Arc<dyn ProvisioningModule>) {
        self.modules.insert(module.info().id, module);
    }

    pub fn get(&self, id: &str) -> Option<Arc<dyn ProvisioningModule>> {
        self.modules.get(id).cloned()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.modules.contains_key(id)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn ProvisioningModule>> {
        self.modules.values()
    }

    /// The known ids, for "unknown module" messages.
    pub fn ids(&self) -> Vec<&'static str> {
        self.modules.keys().copied().collect()
    }
}
