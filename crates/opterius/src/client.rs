//! The typed Panel client: the six endpoints of the HMAC-signed Panel API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::api_url::ApiUrl;
use crate::error::{ErrorKind, PanelError};
use crate::http::{self, Signer};
use crate::network::NetworkPolicy;
use crate::types::{AccountInfo, CreateAccount, CreatedAccount, ServerStats};

/// HTTP settings shared by every Panel and Agent call of a process.
#[derive(Clone)]
pub struct ClientOptions {
    /// Time allowed to open the TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Time allowed for the whole exchange.
    pub timeout: Duration,
    /// Verify the Panel's TLS certificate (`SSL_VERIFY`); on unless turned off.
    pub verify_tls: bool,
    /// Resolve host names with this instead of the system resolver.
    pub resolver: Option<Arc<dyn reqwest::dns::Resolve>>,
    /// Where calls may go (`PANEL_ALLOWED_NETWORKS`); checked on every
    /// resolved address at connect time.
    pub network: NetworkPolicy,
    /// How this client trusts certificates (per server; `verify_tls: false`
    /// overrides it with no checks).
    pub tls: crate::tls::TlsPolicy,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            verify_tls: true,
            resolver: None,
            network: NetworkPolicy::default(),
            tls: crate::tls::TlsPolicy::Verify,
        }
    }
}

impl ClientOptions {
    /// Builds the process-wide HTTP client (connection pool) from these options.
    pub fn build(&self) -> Result<reqwest::Client, PanelError> {
        let mut builder = self.builder();
        if let (true, crate::tls::TlsPolicy::Pinned(pin)) = (self.verify_tls, &self.tls) {
            builder = builder.use_preconfigured_tls(crate::tls::pinned_config(*pin)?);
        }
        builder.build().map_err(|e| {
            PanelError::new(
                ErrorKind::Config,
                format!("could not build the HTTP client: {e}"),
            )
        })
    }

    /// The builder every client of this process starts from.
    pub(crate) fn builder(&self) -> reqwest::ClientBuilder {
        // reqwest is built without a bundled crypto provider: use ring, once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let insecure = !self.verify_tls || self.tls == crate::tls::TlsPolicy::Insecure;
        reqwest::Client::builder()
            .user_agent(concat!("opterius-commerce/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .tls_danger_accept_invalid_certs(insecure)
            // A Panel never redirects an API call; following one would carry
            // the signature (and a create's body) to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(self.network.resolver(self.resolver.clone()))
    }
}

/// What was sent, with secrets redacted: what the provisioning log records.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestRecord {
    pub method: String,
    /// The endpoint path relative to `api_url`.
    pub path: String,
    /// The JSON body with `password`, tokens and secrets replaced.
    pub body: Option<serde_json::Value>,
}

/// What came back, when anything did (secret-looking JSON keys redacted, capped).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// One call: the record of the request, the answer if one arrived, the result.
#[derive(Debug)]
pub struct Exchange<T> {
    pub request: RequestRecord,
    pub response: Option<Response>,
    pub result: Result<T, PanelError>,
    pub elapsed: Duration,
}

impl<T> Exchange<T> {
    pub(crate) fn failed(request: RequestRecord, started: Instant, error: PanelError) -> Self {
        Self {
            request,
            response: None,
            result: Err(error),
            elapsed: started.elapsed(),
        }
    }
}

/// A client for one Panel server: its `api_url` and secret `api_token`.
#[derive(Clone)]
pub struct PanelClient {
    http: reqwest::Client,
    base: ApiUrl,
    token: SecretString,
    network: NetworkPolicy,
}

impl std::fmt::Debug for PanelClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PanelClient")
            .field("api_url", &self.base)
            .finish_non_exhaustive()
    }
}

/// Percent-encodes an account id for use as one path segment.
fn segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl PanelClient {
    /// A client under the strict default address policy; see `with_network`.
    pub fn new(http: reqwest::Client, base: ApiUrl, api_token: SecretString) -> Self {
        Self {
            http,
            base,
            token: api_token,
            network: NetworkPolicy::default(),
        }
    }

    /// Checks IP-literal api_urls and plain-http hosts against `network` (the
    /// same policy the HTTP client's resolver enforces for host names).
    pub fn with_network(mut self, network: NetworkPolicy) -> Self {
        self.network = network;
        self
    }

    pub fn api_url(&self) -> &ApiUrl {
        &self.base
    }

    async fn call<T>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        parse: (&'static str, impl FnOnce(&serde_json::Value) -> Option<T>),
    ) -> Exchange<T> {
        let signer = Signer::Panel(self.token.expose_secret());
        let target = http::Target {
            http: &self.http,
            base: &self.base,
            network: &self.network,
        };
        http::send(&target, &signer, method, path, body, parse).await
    }

    /// `POST /api/accounts`: the new account's id on success. The exchange's
    /// request record is built from the account's declared fields.
    pub async fn create_account(&self, account: &CreateAccount) -> Exchange<CreatedAccount> {
        let mut exchange = self
            .call(
                Method::POST,
                "/api/accounts",
                Some(http::to_body(account)),
                (
                    "an account id (`id` or `account_id`)",
                    CreatedAccount::from_json,
                ),
            )
            .await;
        exchange.request.body = Some(account.record());
        exchange
    }

    /// `POST /api/accounts/{id}/suspend` (bodiless, signed over an empty body).
    pub async fn suspend_account(&self, id: &str) -> Exchange<serde_json::Value> {
        let path = format!("/api/accounts/{}/suspend", segment(id));
        self.call(Method::POST, &path, None, http::ANY_JSON).await
    }

    /// `POST /api/accounts/{id}/unsuspend`.
    pub async fn unsuspend_account(&self, id: &str) -> Exchange<serde_json::Value> {
        let path = format!("/api/accounts/{}/unsuspend", segment(id));
        self.call(Method::POST, &path, None, http::ANY_JSON).await
    }

    /// `DELETE /api/accounts/{id}`: irreversible.
    pub async fn terminate_account(&self, id: &str) -> Exchange<serde_json::Value> {
        let path = format!("/api/accounts/{}", segment(id));
        self.call(Method::DELETE, &path, None, http::ANY_JSON).await
    }

    /// `GET /api/accounts/{id}`.
    pub async fn account_info(&self, id: &str) -> Exchange<AccountInfo> {
        let path = format!("/api/accounts/{}", segment(id));
        self.call(
            Method::GET,
            &path,
            None,
            (
                "a JSON object describing the account",
                AccountInfo::from_json,
            ),
        )
        .await
    }

    /// `GET /api/server/stats`: what Test Connection calls.
    pub async fn server_stats(&self) -> Exchange<ServerStats> {
        self.call(
            Method::GET,
            "/api/server/stats",
            None,
            (
                "a JSON object with the server's stats",
                ServerStats::from_json,
            ),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn account_ids_are_percent_encoded_as_one_segment() {
        assert_eq!(segment("42"), "42");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
