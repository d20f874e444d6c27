//! A module that panics is recorded on the service and in the log.

use std::sync::Arc;

use async_trait::async_trait;
use opterius_sim::SimConfig;
use provisioning::{
    AccountRef, AccountSpec, Credentials, ModuleContext, ModuleInfo, ProvisioningModule,
    ProvisioningResult,
};
use serde_json::json;

use crate::support::TestApp;

/// A module whose create panics, to prove panics are caught and recorded.
struct Panicky(ModuleInfo);

#[async_trait]
impl ProvisioningModule for Panicky {
    fn info(&self) -> &ModuleInfo {
        &self.0
    }
    fn validate_credentials(&self, _: &Credentials) -> Result<(), provisioning::FieldErrors> {
        Ok(())
    }
    async fn create_account(
        &self,
        _: &ModuleContext,
        _: &Credentials,
        _: &AccountSpec,
    ) -> ProvisioningResult {
        panic!("simulated bug in a module")
    }
    async fn suspend_account(
        &self,
        _: &ModuleContext,
        _: &Credentials,
        _: &AccountRef,
        _: Option<&str>,
    ) -> ProvisioningResult {
        unreachable!()
    }
    async fn unsuspend_account(
        &self,
        _: &ModuleContext,
        _: &Credentials,
        _: &AccountRef,
    ) -> ProvisioningResult {
        unreachable!()
    }
    async fn terminate_account(
        &self,
        _: &ModuleContext,
        _: &Credentials,
        _: &AccountRef,
    ) -> ProvisioningResult {
        unreachable!()
    }
    async fn account_info(
        &self,
        _: &ModuleContext,
        _: &Credentials,
        _: &AccountRef,
    ) -> ProvisioningResult {
        unreachable!()
    }
    async fn test_connection(&self, _: &ModuleContext, _: &Credentials) -> ProvisioningResult {
        unreachable!()
    }
}

#[tokio::test]
async fn a_panicking_module_is_recorded_on_the_service_and_in_the_log() {
    let app = TestApp::spawn_custom(SimConfig::default(), &[], |state| {
        let mut registry = opterius_modules::builtin(&state.config.panel_networks);
        registry.register(Arc::new(Panicky(ModuleInfo {
            id: "panicky",
            label: "Panicky",
            description: "panics",
            credential_fields: vec![],
            capabilities: provisioning::Capability::BASIC.to_vec(),
        })));
        state.registry = Arc::new(registry);
    })
    .await;
    let group = app.group("G", "least_full").await;
    app.post(
        "/api/v1/servers",
        json!({"name": "p", "module": "panicky", "group_id": group, "credentials": {}}),
    )
    .await;
    let product = app
        .post(
            "/api/v1/products",
            json!({"name": "P", "module": "panicky", "group_id": group, "package": "X"}),
        )
        .await["id"]
        .as_i64()
        .expect("id");
    let sid = app.order(product, "panic.example.com").await.service_id();
    let service = app.settle(sid, &["failed"]).await;
    let err = service.last_error.as_ref().expect("a stored failure");
    assert_eq!(err.kind, "internal");
    assert!(err.message.contains("simulated bug in a module"), "{err:?}");
    let log = app.log_for(sid).await;
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].status.as_str(), log[0].error_kind()),
        ("failed", "internal")
    );
    app.finish().await;
}
