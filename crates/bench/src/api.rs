//! Small HTTP clients: the service's `/api/v1` (bearer token) and the
//! simulator's unsigned `/_sim` control API, plus the setup both runs share.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::procs::SimProc;

/// One answer: status and JSON body (`Value::Null` when not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

/// A client for the service's JSON API.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

/// An HTTP client for loopback: no proxy, generous pool, bounded time.
pub fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")
}

async fn answer(r: reqwest::Response) -> anyhow::Result<Answer> {
    let status = r.status().as_u16();
    let text = r.text().await.context("reading the answer")?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Answer { status, body, text })
}

impl Api {
    pub fn new(base: &str, token: &str) -> anyhow::Result<Self> {
        Ok(Self {
            http: http_client(Duration::from_secs(120))?,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Any method, with an optional JSON body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        answer(
            req.send()
                .await
                .with_context(|| format!("request to {path}"))?,
        )
        .await
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Answer> {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Answer> {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// POST that must answer 201; returns the body.
    pub async fn create(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let a = self.post(path, body).await?;
        if a.status != 201 {
            bail!("POST {path} answered {}: {}", a.status, a.text);
        }
        Ok(a.body)
    }

    /// A server group, `servers` simulated servers in it (sim servers
    /// `first..first+servers`), and an on-order product using package Starter.
    pub async fn setup_catalog(
        &self,
        sim: &SimProc,
        first: usize,
        servers: usize,
        label: &str,
    ) -> anyhow::Result<Catalog> {
        let group = self
            .create(
                "/api/v1/server-groups",
                &json!({"name": format!("{label} group"), "placement": "least_full"}),
            )
            .await?;
        let group_id = id_of(&group)?;
        let server_ids = self
            .register_servers(sim, group_id, first..first + servers, label, 16)
            .await?;
        let product = self
            .create(
                "/api/v1/products",
                &json!({"name": format!("{label} hosting"), "module": "opterius", "group_id": group_id,
                        "package": "Starter", "disk_limit_mb": 1024, "bandwidth_limit_mb": 10240,
                        "auto_setup": "on_order"}),
            )
            .await?;
        Ok(Catalog {
            group_id,
            product_id: id_of(&product)?,
            server_ids,
        })
    }

    /// Registers simulated servers `range` in `group_id`, `width` at a time;
    /// returns their ids in range order.
    pub async fn register_servers(
        &self,
        sim: &SimProc,
        group_id: i64,
        range: std::ops::Range<usize>,
        label: &str,
        width: usize,
    ) -> anyhow::Result<Vec<i64>> {
        let results: Vec<anyhow::Result<i64>> = futures::stream::iter(range)
            .map(|n| {
                let body = json!({"name": format!("{label} panel {n}"), "module": "opterius",
                    "group_id": group_id, "max_accounts": 0, "enabled": true,
                    "credentials": {"api_url": sim.server_url(n), "api_token": sim.server_token(n)}});
                async move { id_of(&self.create("/api/v1/servers", &body).await?) }
            })
            .buffered(width)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// `clients` clients; returns their ids.
    pub async fn create_clients(&self, clients: usize, label: &str) -> anyhow::Result<Vec<i64>> {
        let results: Vec<anyhow::Result<i64>> = futures::stream::iter(0..clients)
            .map(|i| {
                let body = json!({"email": format!("{label}{i}@bench.test"), "name": format!("Client {label} {i}")});
                async move { id_of(&self.create("/api/v1/clients", &body).await?) }
            })
            .buffered(16)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Places `n` orders with at most `width` requests in flight. Domain i is
    /// `{prefix}{i}.bench.test` (so its username is `{prefix}{i}`).
    pub async fn place_orders(
        &self,
        n: usize,
        width: usize,
        product_id: i64,
        client_ids: &[i64],
        prefix: &str,
    ) -> anyhow::Result<Placed> {
        anyhow::ensure!(!client_ids.is_empty(), "no clients to order for");
        let started = Instant::now();
        let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let latencies: Vec<Option<f64>> = futures::stream::iter(0..n)
            .map(|i| {
                let body = json!({"client_id": client_ids[i % client_ids.len()],
                                  "product_id": product_id,
                                  "domain": format!("{prefix}{i}.bench.test")});
                let failures = failures.clone();
                async move {
                    let t = Instant::now();
                    match self.post("/api/v1/orders", &body).await {
                        Ok(a) if a.status == 201 => Some(t.elapsed().as_secs_f64() * 1000.0),
                        Ok(a) => {
                            push(&failures, format!("order {i}: {} {}", a.status, a.text));
                            None
                        }
                        Err(e) => {
                            push(&failures, format!("order {i}: {e:#}"));
                            None
                        }
                    }
                }
            })
            .buffer_unordered(width)
            .collect()
            .await;
        let failures = std::mem::take(&mut *failures.lock().unwrap_or_else(|p| p.into_inner()));
        Ok(Placed {
            latencies_ms: latencies.into_iter().flatten().collect(),
            failures,
            elapsed: started.elapsed(),
        })
    }
}

fn push(v: &std::sync::Mutex<Vec<String>>, s: String) {
    v.lock().unwrap_or_else(|p| p.into_inner()).push(s);
}

/// The `id` of a created resource.
pub fn id_of(v: &Value) -> anyhow::Result<i64> {
    v.get("id")
        .and_then(Value::as_i64)
        .with_context(|| format!("no id in {v}"))
}

/// What [`Api::setup_catalog`] created.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub group_id: i64,
    pub product_id: i64,
    pub server_ids: Vec<i64>,
}

/// The outcome of placing orders.
#[derive(Debug)]
pub struct Placed {
    pub latencies_ms: Vec<f64>,
    pub failures: Vec<String>,
    pub elapsed: Duration,
}

/// The simulator's control API.
pub struct SimControl {
    http: reqwest::Client,
    base: String,
}

impl SimControl {
    pub fn new(sim: &SimProc) -> anyhow::Result<Self> {
        Ok(Self {
            http: http_client(Duration::from_secs(30))?,
            base: sim.base.clone(),
        })
    }

    /// Sets the faults of server `n` (None: every server).
    pub async fn faults(&self, server: Option<usize>, faults: &Value) -> anyhow::Result<()> {
        let which = server.map_or_else(|| "all".to_owned(), |n| n.to_string());
        let r = self
            .http
            .post(format!("{}/_sim/faults?server={which}", self.base))
            .json(faults)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("setting sim faults answered {}", r.status());
        }
        Ok(())
    }

    /// Forgets accounts, faults and requests.
    pub async fn reset(&self) -> anyhow::Result<()> {
        let r = self
            .http
            .post(format!("{}/_sim/reset", self.base))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "sim reset answered {}", r.status());
        Ok(())
    }

    /// `GET /_sim/creates`: {total, usernames, duplicates, by_username}.
    pub async fn creates(&self) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{}/_sim/creates", self.base))
            .send()
            .await?
            .json()
            .await?)
    }

    /// How many accounts the simulated servers hold.
    pub async fn account_count(&self) -> anyhow::Result<usize> {
        let v: Value = self
            .http
            .get(format!("{}/_sim/accounts", self.base))
            .send()
            .await?
            .json()
            .await?;
        Ok(v.get("accounts")
            .and_then(Value::as_array)
            .map_or(0, Vec::len))
    }
}
