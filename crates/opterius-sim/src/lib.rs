//! A faithful fake Opterius Panel (and Agent) for tests, benchmarks and the demo.
//!
//! It verifies signatures and the timestamp window exactly as the seeds say,
//! keeps packages (case-sensitive) and accounts in memory, can act as many Panel
//! servers at once (`/s/{n}`, each with its own token), and injects faults on
//! demand through an unsigned control API under `/_sim`. Every server also
//! speaks the provisioning API the Panel ships (`/api/v1`, Bearer keys,
//! Panel v2.8+), so one process serves both dialects.

mod agent;
mod conn;
mod control;
mod panel;
mod state;
mod v1;
mod verify;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, OriginalUri, State as AxState};
use axum::http::{HeaderMap, Method};
use axum::response::Response;

pub use state::{Account, Faults, RecordedRequest};
use state::{Server, State};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The api_token of server 0; server n > 0 uses `{token}-{n}`.
    pub token: String,
    /// Package names every server starts with (case-sensitive).
    pub packages: Vec<String>,
    /// How many Panel servers to simulate (at `/s/0` .. `/s/{n-1}`; `/` is server 0).
    pub servers: usize,
    /// Accepted X-Timestamp skew in seconds.
    pub window_secs: u64,
    /// Serve HTTPS with a fresh self-signed certificate.
    pub tls: bool,
    /// The Agent's secret_key (served under `/agent`).
    pub agent_secret: String,
    /// The version `/api/server/stats` and `/api/v1/test` report.
    pub version: String,
    /// The v1 API key of server 0; server n > 0 uses `{api_key}-{n}`.
    pub api_key: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            token: "sim-token".into(),
            packages: vec!["Starter".into(), "Pro".into()],
            servers: 1,
            window_secs: opterius::panel::DEFAULT_WINDOW_SECS,
            tls: false,
            agent_secret: "sim-agent-secret".into(),
            version: "2.4.1-sim".into(),
            api_key: "opt_sim0000000000000000000000000000000000000000000000".into(),
        }
    }
}

/// Which simulated server a control call applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    All,
    Server(usize),
    Agent,
}

fn token_for(config: &SimConfig, n: usize) -> String {
    if n == 0 {
        config.token.clone()
    } else {
        format!("{}-{n}", config.token)
    }
}

fn key_for(config: &SimConfig, n: usize) -> String {
    if n == 0 {
        config.api_key.clone()
    } else {
        format!("{}-{n}", config.api_key)
    }
}

fn fresh_server(config: &SimConfig, n: usize) -> Server {
    let mut s = Server::new(
        format!("sim-panel-{n}"),
        token_for(config, n),
        config.packages.clone(),
    );
    s.api_key = key_for(config, n);
    s
}

fn fresh_servers(config: &SimConfig) -> Vec<Mutex<Server>> {
    (0..config.servers.max(1))
        .map(|n| Mutex::new(fresh_server(config, n)))
        .collect()
}

pub(crate) fn reset(state: &State) {
    let config = &state.config;
    for (n, s) in state.servers.iter().enumerate() {
        *s.lock().unwrap_or_else(|p| p.into_inner()) = fresh_server(config, n);
    }
    *state.agent() = Server::new(
        "sim-agent".into(),
        config.agent_secret.clone(),
        config.packages.clone(),
    );
    state
        .requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
}

async fn dispatch(
    AxState(state): AxState<Arc<State>>,
    Extension(kill): Extension<conn::Kill>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    if path == "/agent" || path.starts_with("/agent/") {
        agent::handle(state, kill, method, path, headers, body).await
    } else if v1::is_v1(&path) {
        v1::handle(state, kill, method, path, headers, body).await
    } else {
        panel::handle(state, kill, method, path, headers, body).await
    }
}

/// A running simulator; dropping it stops it.
pub struct Sim {
    state: Arc<State>,
    certificate: Option<Vec<u8>>,
    base_url: String,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sim {
    /// Binds `listen` (port 0 picks a free port) and serves in the background.
    pub async fn start(config: SimConfig, listen: SocketAddr) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (tls, certificate) = if config.tls {
            let (acceptor, der) = conn::self_signed()?;
            (Some(acceptor), Some(der))
        } else {
            (None, None)
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let state = Arc::new(State {
            servers: fresh_servers(&config),
            agent: Mutex::new(Server::new(
                "sim-agent".into(),
                config.agent_secret.clone(),
                config.packages.clone(),
            )),
            requests: Mutex::new(Vec::new()),
            config,
        });
        let app = Router::new()
            .fallback(dispatch)
            .with_state(state.clone())
            .merge(control::router(state.clone()));
        let task = tokio::spawn(conn::serve(listener, app, tls));
        Ok(Self {
            state,
            certificate,
            base_url: format!("{scheme}://{addr}"),
            addr,
            task,
        })
    }

    /// Starts on a free loopback port.
    pub async fn start_local(config: SimConfig) -> anyhow::Result<Self> {
        Self::start(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// The self-signed certificate (DER) it serves, with `tls`.
    pub fn certificate_der(&self) -> Option<&[u8]> {
        self.certificate.as_deref()
    }

    /// The api_url of server 0.
    pub fn url(&self) -> &str {
        &self.base_url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The api_url of server `n`.
    pub fn server_url(&self, n: usize) -> String {
        format!("{}/s/{n}", self.base_url)
    }

    /// The Agent's base URL.
    pub fn agent_url(&self) -> String {
        format!("{}/agent", self.base_url)
    }

    /// The current v1 API key of server `n`.
    pub fn api_key(&self, n: usize) -> String {
        self.state
            .server(n)
            .map(|s| s.api_key.clone())
            .unwrap_or_default()
    }

    /// What v1 creates said beyond the account (client_name, whmcs_service_id,
    /// server_id), by Panel account id, on server `n`.
    pub fn v1_meta(&self, n: usize) -> BTreeMap<u64, serde_json::Value> {
        self.state
            .server(n)
            .map(|s| s.v1_meta.iter().map(|(k, v)| (*k, v.clone())).collect())
            .unwrap_or_default()
    }

    /// The current api_token of server `n`.
    pub fn token(&self, n: usize) -> String {
        self.state
            .server(n)
            .map(|s| s.token.clone())
            .unwrap_or_default()
    }

    pub fn set_faults(&self, target: Target, faults: Faults) {
        let _ = control::each(&self.state, target, |s| s.faults = faults.clone());
    }

    pub fn clear_faults(&self) {
        self.set_faults(Target::All, Faults::default());
    }

    /// Rotates a token, as an admin regenerating it in Panel → Settings → API.
    pub fn rotate_token(&self, target: Target, token: &str) {
        let _ = control::each(&self.state, target, |s| s.token = token.to_owned());
    }

    pub fn set_packages(&self, target: Target, packages: &[&str]) {
        let _ = control::each(&self.state, target, |s| {
            s.packages = packages.iter().map(|p| (*p).to_owned()).collect()
        });
    }

    /// The accounts server `n` (or the agent) holds.
    pub fn accounts(&self, target: Target) -> Vec<Account> {
        let mut out = Vec::new();
        let _ = control::each(&self.state, target, |s| {
            out.extend(s.accounts.values().cloned())
        });
        out
    }

    /// Accounts actually created per username, summed over `target`.
    pub fn creates(&self, target: Target) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        let _ = control::each(&self.state, target, |s| {
            for (u, n) in &s.creates {
                *out.entry(u.clone()).or_insert(0) += n;
            }
        });
        out
    }

    /// The password server `n` created `username` with, if it holds it.
    pub fn password_of(&self, n: usize, username: &str) -> Option<String> {
        self.state
            .server(n)
            .and_then(|s| s.passwords.get(username).cloned())
    }

    /// Every request seen, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Forgets accounts, faults and requests; tokens and packages go back to the start.
    pub fn reset(&self) {
        reset(&self.state);
    }
}
