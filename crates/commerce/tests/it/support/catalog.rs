//! Catalog setup for tests, one builder instead of copied group/server/product
//! creation: `Catalog::on(&app).package("Pro").servers(2).build().await`.

use serde_json::{Value, json};

use super::TestApp;

/// Which Panel dialect the servers and the product speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Module {
    /// `opterius`: the HMAC-signed Panel API (seed).
    Seed,
    /// `opterius_v1`: `/api/v1`, Panel 2.8+.
    V1,
}

impl Module {
    fn name(self) -> &'static str {
        match self {
            Module::Seed => "opterius",
            Module::V1 => "opterius_v1",
        }
    }
}

/// What a built catalog holds.
#[derive(Debug, Clone)]
pub struct CatalogIds {
    pub group_id: i64,
    /// The first server.
    pub server_id: i64,
    /// Every server, in the order they were added (simulated Panel 0, 1 …).
    pub server_ids: Vec<i64>,
    pub product_id: i64,
}

/// A group, its servers on the simulated Panels, and one product.
pub struct Catalog<'a> {
    app: &'a TestApp,
    module: Module,
    package: String,
    auto_setup: String,
    servers: usize,
    max_accounts: i64,
    /// The v1 servers' pinned certificate (a self-signed simulator).
    pinned: Option<String>,
}

impl<'a> Catalog<'a> {
    /// Defaults: the seed module, package `Starter`, `auto_setup: on_order`,
    /// one server with no account limit, `least_full` placement.
    pub fn on(app: &'a TestApp) -> Self {
        Self {
            app,
            module: Module::Seed,
            package: "Starter".into(),
            auto_setup: "on_order".into(),
            servers: 1,
            max_accounts: 0,
            pinned: None,
        }
    }

    /// The same, for the `opterius_v1` module.
    pub fn v1(app: &'a TestApp) -> Self {
        Self {
            module: Module::V1,
            ..Self::on(app)
        }
    }

    pub fn package(mut self, package: &str) -> Self {
        self.package = package.into();
        self
    }

    pub fn auto_setup(mut self, auto_setup: &str) -> Self {
        self.auto_setup = auto_setup.into();
        self
    }

    /// How many servers, on simulated Panels 0, 1 … (the simulator has 4 by default).
    pub fn servers(mut self, n: usize) -> Self {
        self.servers = n;
        self
    }

    /// Each server's account limit (0: none).
    pub fn max_accounts(mut self, n: i64) -> Self {
        self.max_accounts = n;
        self
    }

    /// Pins each v1 server to the certificate with this SHA-256 (the
    /// simulator started with `tls: true`).
    pub fn pinned(mut self, sha256: &str) -> Self {
        self.pinned = Some(sha256.into());
        self
    }

    pub async fn build(self) -> CatalogIds {
        let app = self.app;
        let (group_name, product_name) = match self.module {
            Module::Seed => ("Shared EU", "Starter plan"),
            Module::V1 => ("Panel 2.8", "Starter v1"),
        };
        let group_id = id(app
            .post(
                "/api/v1/server-groups",
                json!({"name": group_name, "placement": "least_full"}),
            )
            .await);
        let mut server_ids = Vec::with_capacity(self.servers);
        for n in 0..self.servers {
            let id = match self.module {
                Module::Seed => {
                    app.add_server(&format!("panel-{n}"), group_id, n, self.max_accounts)
                        .await
                }
                Module::V1 => {
                    let name = if n == 0 {
                        "panel-v1".to_owned()
                    } else {
                        format!("panel-v1-{n}")
                    };
                    app.add_v1_server_pinned(&name, group_id, n, self.pinned.as_deref())
                        .await
                }
            };
            server_ids.push(id);
        }
        let product_id = id(app
            .post(
                "/api/v1/products",
                json!({"name": product_name, "module": self.module.name(), "group_id": group_id,
                       "package": self.package, "disk_limit_mb": 1024, "bandwidth_limit_mb": 10240,
                       "auto_setup": self.auto_setup}),
            )
            .await);
        CatalogIds {
            group_id,
            server_id: server_ids.first().copied().unwrap_or_default(),
            server_ids,
            product_id,
        }
    }
}

fn id(created: Value) -> i64 {
    created["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no id in {created}"))
}

impl TestApp {
    /// A group with no servers or products, for tests that build their own.
    pub async fn group(&self, name: &str, placement: &str) -> i64 {
        id(self
            .post(
                "/api/v1/server-groups",
                json!({"name": name, "placement": placement}),
            )
            .await)
    }

    /// A seed-module server on simulated Panel `sim_server`.
    pub async fn add_server(
        &self,
        name: &str,
        group_id: i64,
        sim_server: usize,
        max_accounts: i64,
    ) -> i64 {
        id(self
            .post(
                "/api/v1/servers",
                json!({"name": name, "module": "opterius", "group_id": group_id, "max_accounts": max_accounts, "enabled": true,
                       "credentials": {"api_url": self.sim.server_url(sim_server), "api_token": self.sim.token(sim_server)}}),
            )
            .await)
    }

    /// A v1 server on simulated Panel `n`; its key is stored, never shown.
    pub async fn add_v1_server(&self, name: &str, group_id: i64, n: usize) -> i64 {
        self.add_v1_server_pinned(name, group_id, n, None).await
    }

    /// [`TestApp::add_v1_server`], pinned to a certificate when `sha256` is given.
    pub async fn add_v1_server_pinned(
        &self,
        name: &str,
        group_id: i64,
        n: usize,
        sha256: Option<&str>,
    ) -> i64 {
        let mut body = json!({"name": name, "module": "opterius_v1", "group_id": group_id, "enabled": true,
               "credentials": {"api_url": self.sim.server_url(n), "api_key": self.sim.api_key(n), "panel_server_id": "1"}});
        if let Some(pin) = sha256 {
            body["tls"] = json!({"mode": "pinned", "sha256": pin});
        }
        let s = self.post("/api/v1/servers", body).await;
        assert_eq!(s["secrets_set"], json!(["api_key"]), "{s}");
        assert!(s["credentials"].get("api_key").is_none());
        id(s)
    }

    /// A product in `group_id` with `package` (no limits).
    pub async fn product(
        &self,
        name: &str,
        module: Module,
        group_id: i64,
        package: &str,
        auto_setup: &str,
    ) -> i64 {
        id(self
            .post(
                "/api/v1/products",
                json!({"name": name, "module": module.name(), "group_id": group_id,
                       "package": package, "auto_setup": auto_setup}),
            )
            .await)
    }
}
