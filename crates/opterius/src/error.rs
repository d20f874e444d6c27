//! The error taxonomy: every failure a Panel call can meet, with the admin-facing
//! fix from the Panel documentation's "Common Failures" table for Test Connection.

use serde::{Deserialize, Serialize};

/// What kind of failure a Panel or Agent call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// 401: signature rejected (wrong or expired token, or clock skew).
    Unauthorized,
    /// 403: Commerce's IP is not allowed (or the license check failed on the Agent).
    Forbidden,
    /// 404: no such account, or api_url points at the wrong place.
    NotFound,
    /// 409: the account (username) already exists.
    Conflict,
    /// 422: the Panel rejected the payload, typically the package name.
    Validation,
    /// The package does not exist on the Panel (v1: 404 with the Panel's list).
    UnknownPackage,
    /// v1: the Panel has no online server to place an account on.
    NoAvailableServers,
    /// v1: the Panel's license allows no more accounts.
    LicenseLimit,
    /// 429: the Panel asks us to slow down.
    RateLimited,
    /// Any other 4xx.
    ClientError,
    /// 5xx other than 504.
    ServerError,
    /// 504: a proxy in front of the Panel gave up waiting.
    GatewayTimeout,
    /// No answer within the configured timeout.
    Timeout,
    /// The connection could not be opened (refused, unreachable).
    ConnectionRefused,
    /// The connection closed after the request was sent, before an answer.
    ConnectionDropped,
    /// The host name did not resolve.
    Dns,
    /// TLS handshake failed, typically an untrusted certificate.
    Tls,
    /// The Panel answered with something that is not the expected JSON.
    InvalidResponse,
    /// The configuration itself is unusable (bad api_url, missing token).
    Config,
}

impl ErrorKind {
    /// The snake_case name used in JSON and in the provisioning log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Validation => "validation",
            Self::UnknownPackage => "unknown_package",
            Self::NoAvailableServers => "no_available_servers",
            Self::LicenseLimit => "license_limit",
            Self::RateLimited => "rate_limited",
            Self::ClientError => "client_error",
            Self::ServerError => "server_error",
            Self::GatewayTimeout => "gateway_timeout",
            Self::Timeout => "timeout",
            Self::ConnectionRefused => "connection_refused",
            Self::ConnectionDropped => "connection_dropped",
            Self::Dns => "dns",
            Self::Tls => "tls",
            Self::InvalidResponse => "invalid_response",
            Self::Config => "config",
        }
    }

    /// Whether trying again later can succeed without anyone changing anything.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            Self::RateLimited
                | Self::NoAvailableServers
                | Self::ServerError
                | Self::GatewayTimeout
                | Self::Timeout
                | Self::ConnectionRefused
                | Self::ConnectionDropped
                | Self::InvalidResponse
        )
    }

    /// The fix an admin should apply, from the Panel documentation's failure table where it has one.
    pub fn hint(self) -> &'static str {
        match self {
            Self::Unauthorized => {
                "The api_token is wrong or expired. Generate a new token in Panel → Settings → API, paste it into the server's api_token field, click Test Connection, then Save. If the token is right, check that this server's clock is synced (NTP): the Panel rejects requests whose X-Timestamp is outside its window."
            }
            Self::Forbidden => {
                "Commerce's IP is not in the Panel's allowlist. Add the Commerce server's IP to the Panel allowlist (Panel IP restriction), then test again."
            }
            Self::NotFound => {
                "The Panel has no such account or endpoint. Check that api_url points at the Panel (including any path prefix) and that the account still exists on the Panel."
            }
            Self::Conflict => {
                "An account with this username already exists on the Panel. Check the Panel's account list before retrying; never create a second account for the same service."
            }
            Self::Validation => {
                "The Panel rejected the request. Package names are case-sensitive: log in to Panel → Packages, copy the exact name string into the product's package field, then retry."
            }
            Self::UnknownPackage => {
                "Package names are case-sensitive: pick one of the packages the Panel lists (exact case) for the product, then retry."
            }
            Self::NoAvailableServers => {
                "The Panel has no online server to place the account on: bring a server online in the Panel (Server Mode → Servers); Commerce retries automatically."
            }
            Self::LicenseLimit => {
                "The Panel's license allows no more accounts: upgrade the Panel license or remove unused accounts on the Panel, then retry."
            }
            Self::RateLimited => {
                "The Panel is rate-limiting requests. Commerce retries with backoff; lower worker concurrency if this persists."
            }
            Self::ClientError => {
                "The Panel refused the request. Check api_url and the Panel version; the Panel's message above says what it expected."
            }
            Self::ServerError => {
                "The Panel had an internal error. Check the Panel server's logs and health; Commerce retries automatically."
            }
            Self::GatewayTimeout => {
                "Panel is overloaded or Nginx/Apache is not running. Check Panel server health; Commerce retries automatically."
            }
            Self::Timeout => {
                "The Panel did not answer in time. Check Panel server health and load, and the network path between Commerce and the Panel."
            }
            Self::ConnectionRefused => {
                "Connection refused: check the port in api_url, and open that port on the Panel server firewall for the Commerce server's IP."
            }
            Self::ConnectionDropped => {
                "The connection closed before the Panel answered, so the outcome is unknown. Check Panel server health and any proxy in between; check the Panel before creating again."
            }
            Self::Dns => {
                "Could not resolve host: check the hostname in api_url for typos and that DNS resolves it from the Commerce server."
            }
            Self::Tls => {
                "SSL certificate verify failed: install a valid certificate on the Panel, or, for a self-signed Panel you trust, pin its certificate on the server (Trust this certificate after checking its SHA-256 fingerprint on the Panel). SSL_VERIFY=false in Commerce's .env turns the checks off for every server."
            }
            Self::InvalidResponse => {
                "The Panel answered with something other than the expected JSON. Check that api_url points at the Panel API, not a website or a proxy error page."
            }
            Self::Config => {
                "Fix the server's credentials (api_url without a trailing slash, api_token set), click Test Connection, then Save."
            }
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The certificate a Panel presented, for an admin deciding whether to pin it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateInfo {
    /// Lowercase hex SHA-256 of the leaf certificate (DER).
    pub sha256: String,
    pub subject: String,
    /// RFC 3339 end of validity.
    pub not_after: String,
}

/// A failed Panel or Agent call, classified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct PanelError {
    pub kind: ErrorKind,
    /// What happened, including the Panel's own message when it gave one.
    pub message: String,
    /// What to do about it.
    pub hint: String,
    pub retryable: bool,
    /// The request may have reached the Panel and been acted on, but no answer
    /// came back ("sent, no answer"): creating again could make a duplicate.
    pub outcome_unknown: bool,
    /// The HTTP status when the Panel (or a proxy) answered.
    pub http_status: Option<u16>,
    /// The Panel's `Retry-After`, on a 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<std::time::Duration>,
    /// On a 409: the Panel's id of the account holding the name, when it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing_account_id: Option<String>,
    /// On a TLS failure: the certificate the Panel presented, when we saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Box<CertificateInfo>>,
}

impl PanelError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: kind.hint().to_owned(),
            retryable: kind.retryable(),
            outcome_unknown: false,
            http_status: None,
            retry_after: None,
            existing_account_id: None,
            certificate: None,
        }
    }

    /// The same failure with an admin fix more precise than the kind's.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = hint.into();
        self
    }

    pub(crate) fn with_http(self, status: u16) -> Self {
        self.with_status(status)
    }

    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.http_status = Some(status);
        self
    }

    pub(crate) fn outcome_unknown(mut self, unknown: bool) -> Self {
        self.outcome_unknown = unknown;
        self
    }
}
