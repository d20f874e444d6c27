//! What a module action returns: success with data, or a classified failure,
//! plus the redacted request and the response for the provisioning log. Every
//! type here is vendor-neutral: modules translate their wire errors into these.

use std::time::Duration;

use serde::{Serialize, Serializer};

macro_rules! failure_kinds {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $title:literal, $retry:literal, $hint:literal; )*) => {
        /// Why an action failed, in words every module and screen shares.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum FailureKind {
            $( $(#[$doc])* $variant, )*
        }

        impl FailureKind {
            /// Every kind, in the order screens and documents list them.
            pub const ALL: &'static [FailureKind] = &[$(Self::$variant),*];

            /// The snake_case name used in JSON and in the provisioning log.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name,)* }
            }

            /// A short heading for screens.
            pub fn title(self) -> &'static str {
                match self { $(Self::$variant => $title,)* }
            }

            /// Whether trying again later can succeed without anyone changing anything
            /// (the default; a module may decide otherwise for one failure).
            pub fn retryable(self) -> bool {
                match self { $(Self::$variant => $retry,)* }
            }

            /// The generic fix; modules usually give a more precise one.
            pub fn hint(self) -> &'static str {
                match self { $(Self::$variant => $hint,)* }
            }
        }
    };
}

failure_kinds! {
    /// The Panel rejected our credentials.
    Unauthorized = "unauthorized", "401 Unauthorized", false, "The Panel rejected the server's credentials. Set valid credentials on the server, click Test Connection, then Save.";
    /// The Panel refused this client (address, scope, license).
    Forbidden = "forbidden", "403 Forbidden", false, "The Panel refused this client. Check the Panel's access rules for Commerce's address and key, then test again.";
    /// No such account or endpoint.
    NotFound = "not_found", "404 Not Found", false, "The Panel has no such account or endpoint. Check that api_url points at the Panel and that the account still exists there.";
    /// The account (username or domain) already exists.
    Conflict = "conflict", "409 Conflict", false, "An account with this username or domain already exists on the Panel. Check the Panel's account list before retrying; never create a second account for the same service.";
    /// The Panel rejected the payload.
    Validation = "validation", "422 Rejected by the Panel", false, "The Panel rejected the request; its message above says which field. Fix the product or service, then retry.";
    /// The product's package does not exist on the Panel.
    UnknownPackage = "unknown_package", "Unknown package", false, "Package names are case-sensitive: pick one of the Panel's packages (exact case) for the product, then retry.";
    /// The Panel has nowhere to place an account.
    NoPanelServers = "no_available_servers", "No available Panel servers", true, "The Panel has no online server to place the account on. Bring a server online in the Panel; Commerce retries automatically.";
    /// The Panel's license allows no more accounts.
    LicenseLimit = "license_limit", "Panel license limit reached", false, "The Panel's license allows no more accounts. Upgrade the Panel license or remove unused accounts, then retry.";
    /// The Panel asks us to slow down.
    RateLimited = "rate_limited", "429 Too Many Requests", true, "The Panel is rate-limiting requests. Commerce retries with backoff; lower worker concurrency if this persists.";
    /// Any other refusal.
    ClientError = "client_error", "Request refused by the Panel", false, "The Panel refused the request. Check api_url and the Panel version; the Panel's message above says what it expected.";
    /// 5xx other than 504.
    ServerError = "server_error", "Panel server error (5xx)", true, "The Panel had an internal error. Check the Panel server's logs and health; Commerce retries automatically.";
    /// A proxy in front of the Panel gave up waiting.
    GatewayTimeout = "gateway_timeout", "504 Gateway Timeout", true, "Panel is overloaded or Nginx/Apache is not running. Check Panel server health; Commerce retries automatically.";
    /// No answer in time.
    Timeout = "timeout", "Timed out", true, "The Panel did not answer in time. Check Panel server health and load, and the network path between Commerce and the Panel.";
    /// The connection could not be opened.
    ConnectionRefused = "connection_refused", "Connection refused", true, "Connection refused: check the port in api_url, and open that port on the Panel server firewall for the Commerce server's IP.";
    /// The connection closed before an answer.
    ConnectionDropped = "connection_dropped", "Connection dropped", true, "The connection closed before the Panel answered, so the outcome is unknown. Check Panel server health and any proxy in between.";
    /// The host name did not resolve.
    Dns = "dns", "Could not resolve host", false, "Could not resolve host: check the hostname in api_url for typos and that DNS resolves it from the Commerce server.";
    /// The TLS handshake failed.
    Tls = "tls", "SSL certificate verify failed", false, "Install a valid certificate on the Panel, or pin the Panel's certificate on the server (Trust this certificate).";
    /// The answer was not what the Panel should send.
    InvalidResponse = "invalid_response", "Invalid response", true, "The Panel answered with something other than the expected JSON. Check that api_url points at the Panel API, not a website or a proxy error page.";
    /// The configuration itself is unusable.
    Config = "config", "Configuration error", false, "Fix the server's credentials, click Test Connection, then Save.";
    /// The module cannot do this action.
    Unsupported = "unsupported", "Not supported by the module", false, "This server's module cannot do this; use the Panel directly.";
    /// No enabled, online server in the product's group has room.
    NoCapacity = "no_capacity", "No server has room", false, "Add a server to the group, raise max_accounts, or enable a server; then retry the service.";
    /// The outcome must be checked by a person.
    NeedsAttention = "needs_attention", "Needs attention", false, "Check the account on the Panel, then adopt it or retry the service.";
    /// A bug or an unexpected state on our side.
    Internal = "internal", "Internal error", false, "This is a bug in Commerce; report it with this log entry.";
}

impl FailureKind {
    /// The kind named `s`; unknown names are `Internal`.
    pub fn parse(s: &str) -> Self {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .unwrap_or(Self::Internal)
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FailureKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The Panel's certificate, when a TLS check failed: what an admin needs to pin it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateInfo {
    /// Lowercase hex SHA-256 of the leaf certificate (DER).
    pub sha256: String,
    pub subject: String,
    /// RFC 3339 end of validity.
    pub not_after: String,
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
    /// The certificate the Panel presented, when the TLS check failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Box<CertificateInfo>>,
    /// Wait at least this long before retrying (the Panel's `Retry-After`).
    #[serde(skip)]
    pub retry_after: Option<Duration>,
    /// On a conflict: the Panel's id of the account that holds the name, when
    /// the Panel said.
    #[serde(skip)]
    pub existing_account_id: Option<String>,
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
            certificate: None,
            retry_after: None,
            existing_account_id: None,
            http_status: None,
        }
    }

    /// A failure with the kind's own hint and retry decision.
    pub fn of(kind: FailureKind, message: impl Into<String>) -> Self {
        Self::new(kind, message, kind.hint(), kind.retryable())
    }

    /// The module cannot do `action`.
    pub fn unsupported(module: &str, action: &str) -> Self {
        Self::of(
            FailureKind::Unsupported,
            format!("the {module} module cannot {action}"),
        )
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

/// What was sent, with secrets redacted: what the provisioning log records.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestRecord {
    pub method: String,
    /// The endpoint path relative to the server's address.
    pub path: String,
    /// The body with passwords, keys and secrets replaced.
    pub body: Option<serde_json::Value>,
}

/// What came back, when anything did (secret-looking values redacted, capped).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseRecord {
    pub status: u16,
    pub body: String,
}

/// One module action's outcome and the exchange behind it.
#[derive(Debug, Clone)]
pub struct ProvisioningResult {
    pub outcome: Result<Success, Failure>,
    pub request: Option<RequestRecord>,
    pub response: Option<ResponseRecord>,
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

    /// The failure's kind, if the action failed.
    pub fn failure_kind(&self) -> Option<FailureKind> {
        self.outcome.as_ref().err().map(|f| f.kind)
    }

    /// The HTTP status of the answer, when one arrived.
    pub fn http_status(&self) -> Option<u16> {
        self.response.as_ref().map(|r| r.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_and_has_a_title_and_hint() {
        for k in FailureKind::ALL {
            assert_eq!(FailureKind::parse(k.as_str()), *k);
            assert!(!k.title().is_empty() && !k.hint().is_empty(), "{k}");
        }
        assert_eq!(FailureKind::parse("no-such-kind"), FailureKind::Internal);
    }
}
