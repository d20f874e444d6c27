//! The simulator's memory: servers with their tokens, packages and accounts, the
//! faults to inject, and a record of every request.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Faults injected into a server's answers, set through the control API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Delay before every answer.
    pub latency_ms: u64,
    /// Fraction (0..=1) of requests answered 503 before acting.
    pub error_rate: f64,
    /// Fraction (0..=1) of requests that hang without an answer before acting.
    pub hang_rate: f64,
    /// Answer every request with this status (401, 403, 422, 504...) before acting.
    pub status: Option<u16>,
    /// Never answer.
    pub hang: bool,
    /// Close the connection without answering, before acting.
    pub drop_connection: bool,
    /// Act, then answer 200 with a truncated JSON body.
    pub malformed_json: bool,
    /// Act (create the account...), then close the connection: the reply is lost.
    pub lose_reply: bool,
    /// Act, then send the status, the headers and half of the body, then close
    /// the connection: the reply breaks while it is being read.
    pub cut_body: bool,
    /// Answer a create for a taken username 409 without naming the account
    /// that holds it (a Panel build whose 409 carries only a message).
    pub conflict_without_id: bool,
    /// Add secret-keyed fields (password, api_token, token, secret, secret_key,
    /// signature), top level and nested, to every JSON answer, with values the
    /// client never sent: `sim-leak-{key}`.
    pub secret_fields: bool,
    /// Answer with this status and a body that echoes the request body, before
    /// acting: 2xx the body under `request` (no account id), 4xx a `message`
    /// quoting it, 5xx the raw bytes as text. A Panel that leaks what it got.
    pub echo: Option<u16>,
    /// Answer with this 3xx status and `location`, before acting.
    pub redirect: Option<u16>,
    /// The `Location` of `redirect`.
    pub location: Option<String>,
    /// Apply the faults above (not latency) to the next N matching requests only.
    pub remaining: Option<u64>,
    /// Only requests to this action: create, suspend, unsuspend, terminate, info,
    /// stats (seed); test, packages, create, suspend, unsuspend, terminate,
    /// password, package, usage (v1).
    pub only: Option<String>,
    /// Act, then answer this status (a Panel that commits and then fails).
    pub status_after_act: Option<u16>,
    /// Fraction (0..=1) of successful requests answered 503 after acting.
    pub after_act_error_rate: f64,
    /// v1: answer 429 with this `Retry-After` (seconds) before acting.
    pub retry_after_secs: Option<u64>,
    /// v1: the key has expired (401).
    pub key_expired: bool,
    /// v1: the key's IP allow-list lacks the caller (403).
    pub ip_denied: bool,
    /// v1: the key's scopes (`account.create`...); unset means `*`.
    pub scopes: Option<Vec<String>>,
    /// v1: a create keeps the account but answers `result: warning`.
    pub warning: bool,
    /// v1: no Panel server is online to place accounts on (422).
    pub no_servers: bool,
    /// v1: the license allows this many accounts (422 beyond it).
    pub license_limit: Option<u64>,
}

/// One account as the Panel keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub id: u64,
    pub username: String,
    pub domain: String,
    pub package: String,
    pub email: String,
    pub disk_limit_mb: i64,
    pub bandwidth_limit_mb: i64,
    pub suspended: bool,
}

/// One simulated Panel server.
#[derive(Debug)]
pub struct Server {
    pub name: String,
    pub token: String,
    pub packages: Vec<String>,
    pub accounts: BTreeMap<u64, Account>,
    pub next_id: u64,
    pub faults: Faults,
    /// Accounts actually created, per username (should never exceed 1).
    pub creates: HashMap<String, u64>,
    /// The v1 API key (`opt_...`).
    pub api_key: String,
    /// What a v1 create said beyond the account: client_name, whmcs_service_id, server_id.
    pub v1_meta: HashMap<u64, serde_json::Value>,
    /// The password each account was created with, per username, so tests can
    /// check the one the client generated is the one the Panel got.
    pub passwords: HashMap<String, String>,
}

impl Server {
    pub fn new(name: String, token: String, packages: Vec<String>) -> Self {
        Self {
            name,
            token,
            packages,
            accounts: BTreeMap::new(),
            next_id: 1001,
            faults: Faults::default(),
            creates: HashMap::new(),
            api_key: String::new(),
            v1_meta: HashMap::new(),
            passwords: HashMap::new(),
        }
    }

    pub fn find_username(&self, username: &str) -> Option<&Account> {
        self.accounts.values().find(|a| a.username == username)
    }
}

/// One request as the simulator saw it.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedRequest {
    /// `panel-N` or `agent`.
    pub target: String,
    pub method: String,
    pub path: String,
    pub status: Option<u16>,
    /// What the simulator did: answered, hung, dropped, lost_reply, unauthorized...
    pub outcome: String,
    /// When the answer (or the fault) was recorded: the request's end.
    pub at: chrono::DateTime<chrono::Utc>,
    /// When the request arrived; with `at`, what was in flight at once.
    pub started_at: chrono::DateTime<chrono::Utc>,
}

/// Everything the simulator holds.
#[derive(Debug)]
pub struct State {
    pub servers: Vec<Mutex<Server>>,
    pub agent: Mutex<Server>,
    pub requests: Mutex<Vec<RecordedRequest>>,
    pub config: crate::SimConfig,
}

/// The most requests kept in memory; older ones are dropped.
const MAX_RECORDED: usize = 500_000;

impl State {
    pub fn record(&self, req: RecordedRequest) {
        let mut log = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() >= MAX_RECORDED {
            log.drain(..MAX_RECORDED / 10);
        }
        log.push(req);
    }

    /// Locks server `n` (the root path is server 0).
    pub fn server(&self, n: usize) -> Option<std::sync::MutexGuard<'_, Server>> {
        self.servers
            .get(n)
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn agent(&self) -> std::sync::MutexGuard<'_, Server> {
        self.agent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the fault to apply to one request to `action`, consuming one of
    /// `remaining` when set.
    pub fn take_fault(server: &mut Server, action: &str) -> Faults {
        let f = &mut server.faults;
        if f.only.as_deref().is_some_and(|o| o != action) || f.remaining == Some(0) {
            return Faults {
                latency_ms: f.latency_ms,
                ..Faults::default()
            };
        }
        let current = f.clone();
        if let Some(n) = f.remaining.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                *f = Faults {
                    latency_ms: f.latency_ms,
                    ..Faults::default()
                };
            }
        }
        current
    }
}
