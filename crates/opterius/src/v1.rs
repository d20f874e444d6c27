//! The typed client for the provisioning API the Panel ships (v2.8.x):
//! Bearer keys, fixed paths under `/api/v1`, accounts named by
//! username in the body, `{result, message, data}` answers, and the admin fix
//! for each of its refusals.

use std::time::{Duration, Instant};

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use crate::api_url::ApiUrl;
use crate::client::{Exchange, RequestRecord, Response};
use crate::error::{ErrorKind, PanelError};
use crate::http;
use crate::network::NetworkPolicy;

/// Where a v1 key is made; every key hint points there.
const KEY_PLACE: &str = "Panel → Server Mode → Settings → API";

/// A successful (or half-successful) v1 answer.
#[derive(Debug, Clone, PartialEq)]
pub struct V1Answer {
    /// `result: "warning"`: the Panel kept something but did not finish.
    pub warning: bool,
    pub message: String,
    pub data: Value,
}

/// The body of `POST /api/v1/accounts/create`.
#[derive(Clone, PartialEq, Eq)]
pub struct V1CreateAccount {
    pub domain: String,
    pub username: String,
    pub password: String,
    pub package: String,
    pub client_email: String,
    pub client_name: String,
    pub server_id: Option<i64>,
    pub whmcs_service_id: Option<i64>,
    pub whmcs_client_id: Option<i64>,
}

impl std::fmt::Debug for V1CreateAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V1CreateAccount")
            .field("domain", &self.domain)
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("package", &self.package)
            .field("client_email", &self.client_email)
            .field("server_id", &self.server_id)
            .finish_non_exhaustive()
    }
}

/// A JSON object without empty optional fields: the Panel turns `""` into null
/// and fails on some of them (a suspend with `"reason": ""` answers 500).
#[derive(Default)]
struct Body(Map<String, Value>);

impl Body {
    fn text(mut self, k: &str, v: &str) -> Self {
        if !v.trim().is_empty() {
            self.0.insert(k.into(), Value::String(v.to_owned()));
        }
        self
    }

    fn secret(mut self, k: &str, v: &str) -> Self {
        // Passwords are not trimmed by the Panel: sent exactly.
        if !v.is_empty() {
            self.0.insert(k.into(), Value::String(v.to_owned()));
        }
        self
    }

    fn int(mut self, k: &str, v: Option<i64>) -> Self {
        if let Some(v) = v {
            self.0.insert(k.into(), json!(v));
        }
        self
    }
}

/// A client for one Panel's `/api/v1`: its `api_url` and secret `api_key`.
#[derive(Clone)]
pub struct V1Client {
    http: reqwest::Client,
    base: ApiUrl,
    key: SecretString,
    network: NetworkPolicy,
}

impl std::fmt::Debug for V1Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V1Client")
            .field("api_url", &self.base)
            .finish_non_exhaustive()
    }
}

impl V1Client {
    pub fn new(http: reqwest::Client, base: ApiUrl, api_key: SecretString) -> Self {
        Self {
            http,
            base,
            key: api_key,
            network: NetworkPolicy::default(),
        }
    }

    /// Checks IP-literal api_urls and plain-http hosts against `network` (the
    /// client's resolver checks host names at connect time).
    pub fn with_network(mut self, network: NetworkPolicy) -> Self {
        self.network = network;
        self
    }

    /// `POST /api/v1/test`: `data: {panel, version}`.
    pub async fn test(&self) -> Exchange<V1Answer> {
        self.call(Method::POST, "/api/v1/test", None).await
    }

    /// `GET /api/v1/packages`: `data: [{name, disk_quota, bandwidth, php_default}]`.
    pub async fn packages(&self) -> Exchange<V1Answer> {
        self.call(Method::GET, "/api/v1/packages", None).await
    }

    /// `POST /api/v1/accounts/create`: `data: {account_id, username, domain, server_ip}`.
    pub async fn create_account(&self, a: &V1CreateAccount) -> Exchange<V1Answer> {
        let body = Body::default()
            .text("domain", &a.domain)
            .text("username", &a.username)
            .secret("password", &a.password)
            .text("package", &a.package)
            .text("client_email", &a.client_email)
            .text("client_name", &a.client_name)
            .int("server_id", a.server_id)
            .int("whmcs_service_id", a.whmcs_service_id)
            .int("whmcs_client_id", a.whmcs_client_id);
        self.call(Method::POST, "/api/v1/accounts/create", Some(body))
            .await
    }

    /// `POST /api/v1/accounts/suspend` (also 200 when already suspended).
    pub async fn suspend(&self, username: &str, reason: Option<&str>) -> Exchange<V1Answer> {
        let body = Body::default()
            .text("username", username)
            .text("reason", reason.unwrap_or_default());
        self.call(Method::POST, "/api/v1/accounts/suspend", Some(body))
            .await
    }

    /// `POST /api/v1/accounts/unsuspend` (also 200 when already active).
    pub async fn unsuspend(&self, username: &str) -> Exchange<V1Answer> {
        let body = Body::default().text("username", username);
        self.call(Method::POST, "/api/v1/accounts/unsuspend", Some(body))
            .await
    }

    /// `POST /api/v1/accounts/terminate`: irreversible.
    pub async fn terminate(&self, username: &str) -> Exchange<V1Answer> {
        let body = Body::default().text("username", username);
        self.call(Method::POST, "/api/v1/accounts/terminate", Some(body))
            .await
    }

    /// `POST /api/v1/accounts/password`.
    pub async fn change_password(&self, username: &str, password: &str) -> Exchange<V1Answer> {
        let body = Body::default()
            .text("username", username)
            .secret("password", password);
        self.call(Method::POST, "/api/v1/accounts/password", Some(body))
            .await
    }

    /// `POST /api/v1/accounts/package` (the Panel's records only).
    pub async fn change_package(&self, username: &str, package: &str) -> Exchange<V1Answer> {
        let body = Body::default()
            .text("username", username)
            .text("package", package);
        self.call(Method::POST, "/api/v1/accounts/package", Some(body))
            .await
    }

    /// `POST /api/v1/accounts/usage`: `data: {username, domain, suspended,
    /// disk_used_mb, disk_limit, bw_used_mb}`.
    pub async fn usage(&self, username: &str) -> Exchange<V1Answer> {
        let body = Body::default().text("username", username);
        self.call(Method::POST, "/api/v1/accounts/usage", Some(body))
            .await
    }

    async fn call(&self, method: Method, path: &str, body: Option<Body>) -> Exchange<V1Answer> {
        let started = Instant::now();
        let body = body.map(|b| Value::Object(b.0));
        let request = RequestRecord {
            method: method.as_str().to_owned(),
            path: path.to_owned(),
            body: body.clone().map(|mut v| {
                http::redact(&mut v);
                v
            }),
        };
        let key = self.key.expose_secret().trim();
        if key.is_empty() {
            let e = PanelError::new(ErrorKind::Config, "the server has no api_key set")
                .with_hint(no_key_hint());
            return Exchange::failed(request, started, e);
        }
        if let Err(e) = self.network.check_url(&self.base) {
            return Exchange::failed(request, started, e);
        }
        // Always JSON both ways: without Accept the Panel answers a failed
        // validation with a 302; without Content-Type it reads no fields.
        let mut builder = self
            .http
            .request(method.clone(), self.base.join(path))
            .bearer_auth(key)
            .header(reqwest::header::ACCEPT, "application/json")
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(body) = &body {
            builder = builder.body(body.to_string());
        }
        let response = match builder.send().await {
            Ok(r) => r,
            Err(e) => {
                let err = http::classify_transport(&e, &self.base);
                return Exchange::failed(request, started, err);
            }
        };
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = match http::read_capped(response).await {
            Ok(b) => b,
            Err(e) => {
                let mut err = http::classify_transport(&e, &self.base);
                err.http_status = Some(status);
                return Exchange::failed(request, started, err);
            }
        };
        let logged = Response {
            status,
            body: http::redacted_text(&bytes),
        };
        let result = if (200..300).contains(&status) {
            answer(status, &bytes)
        } else if (300..400).contains(&status) {
            Err(http::redirected(status, location.as_deref()))
        } else {
            let mut e = classify(status, &bytes, &method, path);
            e.retry_after = retry_after.filter(|_| status == 429);
            Err(e)
        };
        Exchange {
            request,
            response: Some(logged),
            result,
            elapsed: started.elapsed(),
        }
    }
}

fn no_key_hint() -> String {
    format!(
        "Create an API key in {KEY_PLACE} (it starts with opt_), paste it into the server's api_key field, click Test Connection, then Save."
    )
}

/// The scope a path needs, for "Insufficient permissions."
fn scope_of(path: &str) -> Option<&'static str> {
    Some(match path.rsplit('/').next()? {
        "create" => "account.create",
        "suspend" => "account.suspend",
        "unsuspend" => "account.unsuspend",
        "terminate" => "account.terminate",
        "password" => "account.password",
        "package" => "account.package",
        _ => return None,
    })
}

/// A 2xx answer: `{result, message, data}`.
fn answer(status: u16, bytes: &[u8]) -> Result<V1Answer, PanelError> {
    let invalid = |what: String| {
        PanelError::new(ErrorKind::InvalidResponse, what)
            .outcome_unknown(true)
            .with_http(status)
    };
    let json: Value = serde_json::from_slice(bytes).map_err(|e| {
        invalid(format!(
            "the Panel answered {status} but the body is not valid JSON ({e})"
        ))
    })?;
    let message = json
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let data = json.get("data").cloned().unwrap_or(Value::Null);
    match json.get("result").and_then(Value::as_str) {
        Some("success") => Ok(V1Answer {
            warning: false,
            message,
            data,
        }),
        Some("warning") => Ok(V1Answer {
            warning: true,
            message,
            data,
        }),
        Some("error") => Err(PanelError::new(
            ErrorKind::ClientError,
            format!("the Panel answered {status} with result error: {message}"),
        )
        .with_http(status)),
        // Never the body itself: a Panel that echoes the request would put the
        // password into the message.
        _ => Err(invalid(format!(
            "the Panel answered {status} without the expected \"result\" field (success, warning or error)"
        ))),
    }
}

/// Classifies a non-2xx v1 answer, with the fix for each case the v1 API documents.
pub(crate) fn classify(status: u16, bytes: &[u8], method: &Method, path: &str) -> PanelError {
    let said = http::panel_message(bytes).unwrap_or_default();
    let lower = said.to_ascii_lowercase();
    let with = |head: &str| {
        if said.is_empty() {
            head.to_owned()
        } else {
            format!("{head}: {said}")
        }
    };
    let e = match status {
        401 if lower.contains("expired") => PanelError::new(
            ErrorKind::Unauthorized,
            with("401 Unauthorized"),
        )
        .with_hint(format!(
            "The API key has expired. Create a new key in {KEY_PLACE}, paste it into the server's api_key field, click Test Connection, then Save."
        )),
        401 if lower.contains("required") => PanelError::new(
            ErrorKind::Unauthorized,
            with("401 Unauthorized: no API key reached the Panel"),
        )
        .with_hint(no_key_hint()),
        401 => PanelError::new(ErrorKind::Unauthorized, with("401 Unauthorized")).with_hint(
            format!(
                "The Panel does not know this API key (mistyped or revoked). Create a key in {KEY_PLACE}, paste it into the server's api_key field, click Test Connection, then Save."
            ),
        ),
        403 if lower.contains("ip address") => PanelError::new(
            ErrorKind::Forbidden,
            with("403 Forbidden"),
        )
        .with_hint(format!(
            "The key has an IP allow-list without this Commerce server's address. Add this server's IP to the key's allow-list in {KEY_PLACE}, then test again."
        )),
        403 if lower.contains("permission") => {
            let hint = match scope_of(path) {
                Some(scope) => format!(
                    "The API key lacks the {scope} scope. Edit the key in {KEY_PLACE} and grant {scope} (or *), then retry."
                ),
                None => format!(
                    "The API key lacks a scope this call needs. Edit the key in {KEY_PLACE} and grant the account.* scopes Commerce uses (or *)."
                ),
            };
            PanelError::new(ErrorKind::Forbidden, with("403 Forbidden")).with_hint(hint)
        }
        403 => PanelError::new(ErrorKind::Forbidden, with("403 Forbidden")),
        404 if lower.contains("package") => {
            let available = said
                .split_once("Available:")
                .map(|(_, list)| list.trim().trim_end_matches('.').to_owned())
                .filter(|l| !l.is_empty());
            let hint = match available {
                Some(list) => format!(
                    "Package names are case-sensitive and the Panel has: {list}. Set the product's package to one of these, exactly, then retry."
                ),
                None => "Package names are case-sensitive and the Panel has none. Create the package on the Panel, or pick another, then retry.".to_owned(),
            };
            PanelError::new(ErrorKind::UnknownPackage, with("404 Unknown package")).with_hint(hint)
        }
        404 if lower.contains("account not found") => PanelError::new(
            ErrorKind::NotFound,
            with("404 Not Found"),
        )
        .with_hint(
            "The Panel has no account with this username: it was removed on the Panel, or the service points at another server. Check Panel → Accounts.",
        ),
        404 => PanelError::new(
            ErrorKind::NotFound,
            with(&format!("404 Not Found: {method} {path}")),
        )
        .with_hint(
            "The Panel has no such endpoint: check that api_url is the Panel's address (usually https://host:8443, without /api) and that the Panel is v2.8 or later.",
        ),
        405 => PanelError::new(
            ErrorKind::ClientError,
            with(&format!("405 Method Not Allowed: {method} {path}")),
        ),
        409 if lower.contains("domain") => PanelError::new(
            ErrorKind::Conflict,
            with("409 Conflict"),
        )
        .with_hint(
            "Another account on the Panel already has this domain. Check Panel → Accounts: if it is this service's account, adopt it; if not, the domain is hosted elsewhere on the Panel and must be removed there first.",
        ),
        409 => PanelError::new(ErrorKind::Conflict, with("409 Conflict")),
        422 if lower.contains("no available servers") => {
            PanelError::new(ErrorKind::NoAvailableServers, with("422 Unprocessable"))
        }
        422 if lower.contains("limit reached") => {
            PanelError::new(ErrorKind::LicenseLimit, with("422 Unprocessable"))
        }
        422 => PanelError::new(ErrorKind::Validation, with("422 Unprocessable")).with_hint(
            "The Panel rejected the request; its message above names the field. Usernames: letters, digits, - and _, at most 32; passwords: at least 8 characters; package names are case-sensitive.",
        ),
        _ => http::classify_status(status, bytes, method, path),
    };
    let unknown = matches!(status, 500 | 502 | 504);
    e.with_http(status).outcome_unknown(unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(status: u16, body: &str, path: &str) -> PanelError {
        classify(status, body.as_bytes(), &Method::POST, path)
    }

    #[test]
    fn refusals_get_their_own_fix() {
        let e = kind_of(
            401,
            r#"{"result":"error","message":"API key has expired."}"#,
            "/api/v1/test",
        );
        assert_eq!(e.kind, ErrorKind::Unauthorized);
        assert!(e.hint.contains("expired") && e.hint.contains(KEY_PLACE));
        let e = kind_of(
            401,
            r#"{"result":"error","message":"API key required. Use Authorization: Bearer <key>"}"#,
            "/api/v1/test",
        );
        assert!(
            e.hint.contains("Create an API key in") && e.message.contains("no API key reached"),
            "{e:?}"
        );
        let e = kind_of(
            403,
            r#"{"result":"error","message":"IP address not allowed."}"#,
            "/api/v1/test",
        );
        assert!(e.hint.contains("allow-list"), "{}", e.hint);
        let e = kind_of(
            403,
            r#"{"result":"error","message":"Insufficient permissions."}"#,
            "/api/v1/accounts/password",
        );
        assert!(e.hint.contains("account.password"), "{}", e.hint);
        let e = kind_of(
            404,
            r#"{"result":"error","message":"Package 'starter' not found. Available: Starter, Pro"}"#,
            "/api/v1/accounts/create",
        );
        assert_eq!(e.kind, ErrorKind::UnknownPackage);
        assert!(e.hint.contains("Starter, Pro"), "{}", e.hint);
        let e = kind_of(
            422,
            r#"{"result":"error","message":"Account limit reached (5/5)."}"#,
            "/api/v1/accounts/create",
        );
        assert_eq!((e.kind, e.retryable), (ErrorKind::LicenseLimit, false));
    }

    #[test]
    fn empty_optional_fields_are_never_sent() {
        let b = Body::default()
            .text("username", "a")
            .text("reason", "")
            .int("server_id", None);
        assert_eq!(Value::Object(b.0), json!({"username": "a"}));
    }
}
