//! `commerce demo`: a working system out of the box. Starts an in-process Panel
//! simulator, seeds demo servers, products and a client (idempotently), prints
//! an admin login, then serves with workers.

use std::net::SocketAddr;

use anyhow::Context as _;
use opterius_sim::{Sim, SimConfig};

use crate::app::catalog::{self, GroupInput, ProductInput};
use crate::app::servers::{self, ServerInput};
use crate::front::AppState;

/// Demo admin login, printed at startup.
pub const ADMIN_EMAIL: &str = "admin@demo.test";
const SIM_TOKEN: &str = "demo-panel-token";
/// Simulated Panels: the first speak the HMAC-signed Panel API (`opterius`), the
/// rest the shipped v2.8 API with keys (`opterius_v1`); the simulator serves both.
const SERVERS: usize = 5;
const SEED_SERVERS: usize = 3;

fn err(e: crate::app::error::AppError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

async fn group(state: &AppState, name: &str) -> anyhow::Result<i64> {
    let groups = catalog::list_groups(&state.pool).await.map_err(err)?;
    Ok(match groups.iter().find(|g| g.name == name) {
        Some(g) => g.id,
        None => {
            catalog::create_group(
                &state.pool,
                &GroupInput {
                    name: name.into(),
                    placement: "least_full".into(),
                },
            )
            .await
            .map_err(err)?
            .id
        }
    })
}

/// Seeds (or refreshes) the demo catalog pointing at `sim`.
pub async fn seed(state: &AppState, sim: &Sim) -> anyhow::Result<()> {
    let group_id = group(state, "Demo shared hosting").await?;
    let v1_group = group(state, "Demo Panel 2.8 (API key)").await?;
    let existing = servers::all(&state.pool).await.map_err(err)?;
    for n in 0..SERVERS {
        let v1 = n >= SEED_SERVERS;
        let name = if v1 {
            format!("demo-panel-v1-{}", n - SEED_SERVERS + 1)
        } else {
            format!("demo-panel-{}", n + 1)
        };
        let credentials = if v1 {
            [
                ("api_url".to_owned(), sim.server_url(n)),
                ("api_key".to_owned(), sim.api_key(n)),
            ]
        } else {
            [
                ("api_url".to_owned(), sim.server_url(n)),
                ("api_token".to_owned(), sim.token(n)),
            ]
        };
        let input = ServerInput {
            name: name.clone(),
            module: if v1 { "opterius_v1" } else { "opterius" }.into(),
            group_id: if v1 { v1_group } else { group_id },
            max_accounts: 500,
            max_concurrent: servers::DEFAULT_MAX_CONCURRENT,
            enabled: true,
            credentials: credentials.into(),
            tls: None,
        };
        // The simulator listens on a new port each start: keep the servers pointing at it.
        match existing.iter().find(|s| s.name == name) {
            Some(s) => {
                servers::replace(state, s.id, &input, None)
                    .await
                    .map_err(err)?;
            }
            None => {
                servers::create(state, &input).await.map_err(err)?;
            }
        }
    }
    let products = catalog::list_products(&state.pool).await.map_err(err)?;
    for (name, module, group_id, package, disk, bw, auto) in [
        (
            "Starter hosting",
            "opterius",
            group_id,
            "Starter",
            5_120,
            51_200,
            "on_order",
        ),
        (
            "Pro hosting",
            "opterius",
            group_id,
            "Pro",
            20_480,
            204_800,
            "on_payment",
        ),
        (
            "Panel 2.8 Starter",
            "opterius_v1",
            v1_group,
            "Starter",
            5_120,
            51_200,
            "on_order",
        ),
    ] {
        if !products.iter().any(|p| p.name == name) {
            let input = ProductInput {
                name: name.into(),
                module: module.into(),
                group_id,
                package: package.into(),
                disk_limit_mb: disk,
                bandwidth_limit_mb: bw,
                auto_setup: auto.into(),
            };
            catalog::create_product(state, &input).await.map_err(err)?;
        }
    }
    catalog::upsert_client(&state.pool, "jane@example.com", "Jane Example")
        .await
        .map_err(err)?;
    Ok(())
}

/// Runs the demo: simulator, seed, admin login, serve with workers.
pub async fn run(state: AppState, listen: SocketAddr) -> anyhow::Result<()> {
    let sim = Sim::start_local(SimConfig {
        token: SIM_TOKEN.into(),
        servers: SERVERS,
        ..Default::default()
    })
    .await
    .context("starting the Panel simulator")?;
    seed(&state, &sim).await?;
    let password = provisioning::generate_password(16);
    crate::app::admins::set_password(&state.pool, ADMIN_EMAIL, &password)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let token =
        crate::app::tokens::create(&state.pool, "demo", crate::app::tokens::Scope::Admin).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    println!();
    println!("  Commerce demo is running at http://{addr}/");
    println!("  Admin login:  {ADMIN_EMAIL}  /  {password}");
    println!("  API token:    {token}");
    println!(
        "  Simulated Opterius Panel: {} ({SEED_SERVERS} HMAC servers, {} v2.8 API-key servers; faults via {}/_sim)",
        sim.url(),
        SERVERS - SEED_SERVERS,
        sim.url()
    );
    println!("  Stop with Ctrl-C.");
    println!();
    crate::runtime::serve(state, listener, true).await
}
