//! The API's answers as tests read them: typed, so a test says
//! `service.status` and `entry.outcome()` rather than indexing JSON by key.
//! Unknown fields are ignored here on purpose: the contract tests
//! (`api_contract`, the OpenAPI test) check the exact shape.

use serde::Deserialize;
use serde_json::Value;

/// A classified failure as stored on a service (`last_error`) or a log row
/// (`error`), and on a server's health.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Failure {
    pub kind: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub hint: String,
    #[serde(default)]
    pub retryable: Option<bool>,
    #[serde(default)]
    pub next_retry_at: Option<String>,
    /// The call was sent and its outcome is not known (never retried blind).
    #[serde(default)]
    pub outcome_unknown: Option<bool>,
    /// On a service's `last_error`: the action that failed, and when.
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub at: Option<String>,
}

/// `GET /api/v1/services/{id}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Service {
    pub status: String,
    pub domain: String,
    pub username: String,
    pub product_id: i64,
    pub server_id: Option<i64>,
    pub panel_account_id: Option<String>,
    pub last_error: Option<Failure>,
    pub terminated_at: Option<String>,
    pub usage: Option<Value>,
    pub panel_status: Option<String>,
    pub suspension_reason: Option<String>,
    pub suspension_note: Option<String>,
    /// Where the Panel disagreed with us at the last sync.
    pub drift: Option<String>,
}

impl Service {
    /// The kind of the stored failure, `""` when there is none.
    pub fn error_kind(&self) -> &str {
        self.last_error.as_ref().map_or("", |e| e.kind.as_str())
    }
}

/// One provisioning log row, `GET /api/v1/provisioning-log`.
#[derive(Debug, Clone, Deserialize)]
pub struct LogEntry {
    pub id: i64,
    pub service_id: Option<i64>,
    pub server_id: Option<i64>,
    pub action: String,
    /// The outcome: `pending`, `success`, `failed` …
    pub status: String,
    pub attempt: i32,
    pub http_status: Option<i32>,
    pub error: Option<Failure>,
    pub message: Option<String>,
    pub triggered_by: String,
}

impl LogEntry {
    /// `(action, status)`: what was tried and how it ended.
    pub fn outcome(&self) -> (&str, &str) {
        (self.action.as_str(), self.status.as_str())
    }

    /// The kind of the recorded failure, `""` when there is none.
    pub fn error_kind(&self) -> &str {
        self.error.as_ref().map_or("", |e| e.kind.as_str())
    }
}

/// A server's health: `online`, `offline` or `unknown`, and why.
#[derive(Debug, Clone, Deserialize)]
pub struct Health {
    pub status: String,
    pub last_error: Option<Failure>,
    pub panel_name: Option<String>,
    pub panel_version: Option<String>,
    pub since: Option<String>,
    pub reason: Option<String>,
}

/// `GET /api/v1/servers/{id}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Server {
    pub account_count: i64,
    pub health: Health,
}

/// A connection test's answer (`POST /api/v1/servers/{id}/test`).
#[derive(Debug, Clone, Deserialize)]
pub struct ConnectionTest {
    pub ok: bool,
    pub error: Option<Failure>,
}

impl ConnectionTest {
    /// The kind of the failure, `""` when the test passed.
    pub fn error_kind(&self) -> &str {
        self.error.as_ref().map_or("", |e| e.kind.as_str())
    }
}

/// One server's result in a Test all (`POST /api/v1/servers/sweep`).
#[derive(Debug, Clone, Deserialize)]
pub struct SweepItem {
    pub server_id: i64,
    #[serde(flatten)]
    pub outcome: ConnectionTest,
}

/// A Test all's answer.
#[derive(Debug, Clone, Deserialize)]
pub struct Sweep {
    pub results: Vec<SweepItem>,
}

/// A service as an order lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderService {
    pub id: i64,
    pub domain: String,
    pub username: String,
}

/// `POST /api/v1/orders`, `GET /api/v1/orders/{id}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Order {
    pub id: i64,
    pub services: Vec<OrderService>,
}

impl Order {
    /// The order's (first) service.
    pub fn service_id(&self) -> i64 {
        self.services.first().expect("the order has a service").id
    }
}

/// One page of a list.
#[derive(Debug, Clone, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: Option<i64>,
}

/// Reads a JSON answer as `T`, naming the body when it does not fit.
pub fn parse<T: serde::de::DeserializeOwned>(what: &str, body: Value) -> T {
    serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("{what}: {e} in {body}"))
}
