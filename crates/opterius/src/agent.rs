//! Opterius Agent request signing and a typed Agent client.
//!
//! Signature = lowercase hex HMAC-SHA256(secret, timestamp + METHOD + path + body),
//! where the timestamp is RFC 3339 UTC, the method is uppercase, the path has its
//! leading slash and no query string, and the body is the raw bytes sent.

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::Sha256;

use crate::api_url::ApiUrl;
use crate::client::Exchange;
use crate::http::{self, Signer};
use crate::network::NetworkPolicy;
use crate::panel::{SIGNATURE_HEADER, TIMESTAMP_HEADER, VerifyError, check_window};

/// The Agent rejects timestamps more than five minutes from its clock.
pub const WINDOW_SECS: u64 = 300;

/// The exact string the Agent signs; the query string is not part of the path.
pub fn string_to_sign(timestamp: &str, method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let mut msg = Vec::with_capacity(timestamp.len() + method.len() + path.len() + body.len());
    msg.extend_from_slice(timestamp.as_bytes());
    msg.extend_from_slice(method.to_ascii_uppercase().as_bytes());
    msg.extend_from_slice(path.as_bytes());
    msg.extend_from_slice(body);
    msg
}

/// Formats `at` the way the Agent expects: `2026-04-08T14:32:00Z`.
pub fn format_timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn mac(secret: &str, msg: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!());
    mac.update(msg);
    mac
}

/// Signs one Agent request, returning lowercase hex.
pub fn sign(secret: &str, timestamp: &str, method: &str, path: &str, body: &[u8]) -> String {
    hex::encode(
        mac(secret, &string_to_sign(timestamp, method, path, body))
            .finalize()
            .into_bytes(),
    )
}

/// Verifies an Agent request as the Agent does: RFC 3339 timestamp within five
/// minutes of `now` either way, constant-time signature comparison.
pub fn verify(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    method: &str,
    path: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), VerifyError> {
    let timestamp = timestamp.ok_or(VerifyError::MissingHeader(TIMESTAMP_HEADER))?;
    let signature = signature.ok_or(VerifyError::MissingHeader(SIGNATURE_HEADER))?;
    let at =
        DateTime::parse_from_rfc3339(timestamp).map_err(|_| VerifyError::MalformedTimestamp)?;
    check_window((now - at.with_timezone(&Utc)).num_seconds(), WINDOW_SECS)?;
    let expected = hex::decode(signature).map_err(|_| VerifyError::MalformedSignature)?;
    mac(secret, &string_to_sign(timestamp, method, path, body))
        .verify_slice(&expected)
        .map_err(|_| VerifyError::BadSignature)
}

/// Account payload for `POST /account/create` on the Agent.
#[derive(Clone, Serialize)]
pub struct AgentCreateAccount {
    pub username: String,
    pub domain: String,
    pub email: String,
    pub password: String,
    pub package_id: i64,
}

impl std::fmt::Debug for AgentCreateAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentCreateAccount")
            .field("username", &self.username)
            .field("domain", &self.domain)
            .field("email", &self.email)
            .field("password", &"[redacted]")
            .field("package_id", &self.package_id)
            .finish()
    }
}

#[derive(Serialize)]
struct UsernameBody<'a> {
    username: &'a str,
}

/// A typed client for the Opterius Agent API.
#[derive(Clone)]
pub struct AgentClient {
    http: reqwest::Client,
    base: ApiUrl,
    secret: SecretString,
    network: NetworkPolicy,
}

impl AgentClient {
    /// A client under the strict default address policy; see `with_network`.
    pub fn new(http: reqwest::Client, base: ApiUrl, secret: SecretString) -> Self {
        Self {
            http,
            base,
            secret,
            network: NetworkPolicy::default(),
        }
    }

    /// Checks IP-literal and plain-http destinations against `network`.
    pub fn with_network(mut self, network: NetworkPolicy) -> Self {
        self.network = network;
        self
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Exchange<serde_json::Value> {
        let signer = Signer::Agent(self.secret.expose_secret());
        let target = http::Target {
            http: &self.http,
            base: &self.base,
            network: &self.network,
        };
        http::send(&target, &signer, method, path, body, http::ANY_JSON).await
    }

    /// `POST /account/create`.
    pub async fn create_account(
        &self,
        account: &AgentCreateAccount,
    ) -> Exchange<serde_json::Value> {
        self.call(
            Method::POST,
            "/account/create",
            Some(http::to_body(account)),
        )
        .await
    }

    /// `POST /account/suspend`.
    pub async fn suspend_account(&self, username: &str) -> Exchange<serde_json::Value> {
        self.call(
            Method::POST,
            "/account/suspend",
            Some(http::to_body(&UsernameBody { username })),
        )
        .await
    }

    /// `POST /account/unsuspend`.
    pub async fn unsuspend_account(&self, username: &str) -> Exchange<serde_json::Value> {
        self.call(
            Method::POST,
            "/account/unsuspend",
            Some(http::to_body(&UsernameBody { username })),
        )
        .await
    }

    /// `POST /account/delete`: irreversible.
    pub async fn delete_account(&self, username: &str) -> Exchange<serde_json::Value> {
        self.call(
            Method::POST,
            "/account/delete",
            Some(http::to_body(&UsernameBody { username })),
        )
        .await
    }

    /// `GET /health`.
    pub async fn health(&self) -> Exchange<serde_json::Value> {
        self.call(Method::GET, "/health", None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const SECRET: &str = "your-secret-key-here";

    fn hmac_hex(msg: &[u8]) -> String {
        hex::encode(mac(SECRET, msg).finalize().into_bytes())
    }

    #[test]
    fn seed_002_example_string_is_reproduced_exactly() {
        let msg = string_to_sign(
            "2026-04-08T14:32:00Z",
            "POST",
            "/account/create",
            br#"{"username":"alice","domain":"alice.example.com"}"#,
        );
        assert_eq!(
            String::from_utf8(msg).expect("utf8"),
            r#"2026-04-08T14:32:00ZPOST/account/create{"username":"alice","domain":"alice.example.com"}"#
        );
    }

    #[test]
    fn timestamp_is_rfc3339_utc_seconds() {
        let at = Utc
            .with_ymd_and_hms(2026, 4, 8, 14, 32, 0)
            .single()
            .expect("date");
        assert_eq!(format_timestamp(at), "2026-04-08T14:32:00Z");
    }

    #[test]
    fn method_is_uppercased_and_query_excluded() {
        let a = sign(
            SECRET,
            "2026-04-08T14:32:00Z",
            "get",
            "/health?verbose=1&x=2",
            b"",
        );
        assert_eq!(a, hmac_hex(b"2026-04-08T14:32:00ZGET/health"));
    }

    #[test]
    fn verify_accepts_within_five_minutes_and_rejects_beyond() {
        let ts = "2026-04-08T14:32:00Z";
        let body = br#"{"username":"alice"}"#;
        let sig = sign(SECRET, ts, "POST", "/account/suspend", body);
        let at = Utc
            .with_ymd_and_hms(2026, 4, 8, 14, 32, 0)
            .single()
            .expect("date");
        let ok = |now| {
            verify(
                SECRET,
                Some(ts),
                Some(&sig),
                "POST",
                "/account/suspend",
                body,
                now,
            )
        };
        assert_eq!(ok(at + chrono::Duration::seconds(300)), Ok(()));
        assert_eq!(ok(at - chrono::Duration::seconds(300)), Ok(()));
        assert!(matches!(
            ok(at + chrono::Duration::seconds(301)),
            Err(VerifyError::Stale { .. })
        ));
        assert!(matches!(
            ok(at - chrono::Duration::seconds(301)),
            Err(VerifyError::Future { .. })
        ));
    }

    #[test]
    fn verify_rejects_tampered_body_wrong_secret_wrong_method_or_path() {
        let ts = "2026-04-08T14:32:00Z";
        let now = Utc
            .with_ymd_and_hms(2026, 4, 8, 14, 33, 0)
            .single()
            .expect("date");
        let sig = sign(
            SECRET,
            ts,
            "POST",
            "/account/delete",
            br#"{"username":"bob"}"#,
        );
        let check = |secret, method, path, body: &[u8]| {
            verify(secret, Some(ts), Some(&sig), method, path, body, now)
        };
        assert_eq!(
            check(SECRET, "POST", "/account/delete", br#"{"username":"bob"}"#),
            Ok(())
        );
        assert_eq!(
            check(SECRET, "POST", "/account/delete", br#"{"username":"eve"}"#),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            check("other", "POST", "/account/delete", br#"{"username":"bob"}"#),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            check(SECRET, "PUT", "/account/delete", br#"{"username":"bob"}"#),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            check(SECRET, "POST", "/account/suspend", br#"{"username":"bob"}"#),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn verify_rejects_non_rfc3339_timestamp() {
        let now = Utc::now();
        assert_eq!(
            verify(
                SECRET,
                Some("1776211200"),
                Some("00"),
                "GET",
                "/health",
                b"",
                now
            ),
            Err(VerifyError::MalformedTimestamp)
        );
    }
}
