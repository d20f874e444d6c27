//! What a module action returns: success with data, or a classified failure,
//! plus the redacted request and the response for the provisioning log.

use std::time::Duration;

use serde::{Serialize, Serializer};

/// Why an action failed: a wire-level kind, or one of the provisioner's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Panel(opterius::ErrorKind),
    /// No enabled, online server in the product's group has room.
    NoCapacity,
    /// The outcome of an earlier attempt is unknown and must be checked by a person.
    NeedsAttention,
    /// A bug or an unexpected state on our side.
    Internal,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Panel(k) => k.as_str(),
            Self::NoCapacity => "no_capacity",
            Self::NeedsAttention => "needs_attention",
            Self::Internal => "internal",
        }
    }

    pub fn parse(s: &str) -> Self {
        use opterius::ErrorKind as K;
        let all = [
            K::Unauthorized,
            K::Forbidden,
            K::NotFound,
            K::Conflict,
            K::Validation,
            K::RateLimited,
            K::ClientError,
            K::ServerError,
            K::GatewayTimeout,
            K::Timeout,
            K::ConnectionRefused,
            K::ConnectionDropped,
            K::Dns,
            K::Tls,
            K::InvalidResponse,
            K::Config,
        ];
        match s {
            "no_capacity" => Self::NoCapacity,
            "needs_attention" => Self::NeedsAttention,
            _ => all
                .into_iter()
                .find(|k| k.as_str() == s)
                .map_or(Self::Internal, Self::Panel),
        }
    }
}

impl Serialize for FailureKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A classified failure, in the shape every API answer uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    pub hint: String,
    pub retryable: bool,
    /// The request may have been acted on without an answer reaching us.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub outcome_unknown: bool,
    #[serde(skip)]
    pub http_status: Option<u16>,
}

impl Failure {
    pub fn new(
        kind: FailureKind,
        message: impl Into<String>,
        hint: impl Into<String>,
        retryable: bool,
    ) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: hint.into(),
            retryable,
            outcome_unknown: false,
            http_status: None,
        }
    }
}

impl From<opterius::PanelError> for Failure {
    fn from(e: opterius::PanelError) -> Self {
        Self {
            kind: FailureKind::Panel(e.kind),
            message: e.message,
            hint: e.hint,
            retryable: e.retryable,
            outcome_unknown: e.outcome_unknown,
            http_status: e.http_status,
        }
    }
}

/// A successful action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Success {
    pub message: String,
    /// Structured answer (server stats, account info...).
    pub data: serde_json::Value,
    /// The Panel's account id, for creates.
    pub account_id: Option<String>,
}

/// One module action's outcome and the exchange behind it.
#[derive(Debug, Clone)]
pub struct ProvisioningResult {
    pub outcome: Result<Success, Failure>,
    pub request: Option<opterius::RequestRecord>,
    pub response: Option<opterius::Response>,
    pub duration: Duration,
}

impl ProvisioningResult {
    pub fn success(message: impl Into<String>, data: serde_json::Value) -> Self {
        Self::from_outcome(Ok(Success {
            message: message.into(),
            data,
            account_id: None,
        }))
    }

    pub fn failure(failure: Failure) -> Self {
        Self::from_outcome(Err(failure))
    }

    fn from_outcome(outcome: Result<Success, Failure>) -> Self {
        Self {
            outcome,
            request: None,
            response: None,
            duration: Duration::ZERO,
        }
    }

    pub fn is_success(&self) -> bool {
        self.outcome.is_ok()
    }

    /// The HTTP status of the answer, when one arrived.
    pub fn http_status(&self) -> Option<u16> {
        self.response.as_ref().map(|r| r.status)
    }
}
