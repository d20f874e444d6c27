//! Sending one signed request and classifying whatever comes back.

use std::error::Error as _;
use std::time::Instant;

use reqwest::Method;
use serde::Serialize;

use crate::api_url::ApiUrl;
use crate::client::{Exchange, RequestRecord, Response};
use crate::error::{ErrorKind, PanelError};
use crate::network::{AddressRefused, NetworkPolicy};
use crate::{agent, panel};

/// The largest answer we read from a Panel; anything bigger is not a Panel answer.
const MAX_BODY_BYTES: usize = 1 << 20;
/// How much of an answer we keep for the provisioning log.
const LOGGED_BODY_BYTES: usize = 8 << 10;
/// JSON keys whose values never leave this process in a log or a record.
const SECRET_KEYS: &[&str] = &[
    "password",
    "api_token",
    "token",
    "secret",
    "secret_key",
    "signature",
];
const REDACTED: &str = "[redacted]";

/// Which signing scheme a request uses, with its key.
pub(crate) enum Signer<'a> {
    Panel(&'a str),
    Agent(&'a str),
}

pub(crate) fn to_body<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing our own plain structs to JSON cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// Replaces the values of secret-looking keys, at any depth.
pub fn redact(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if SECRET_KEYS.iter().any(|s| k.eq_ignore_ascii_case(s)) {
                    *v = serde_json::Value::String(REDACTED.into());
                } else {
                    redact(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

fn redacted_text(bytes: &[u8]) -> String {
    if let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(bytes) {
        redact(&mut json);
        return cap(json.to_string());
    }
    cap(String::from_utf8_lossy(bytes).into_owned())
}

fn cap(mut text: String) -> String {
    if text.len() > LOGGED_BODY_BYTES {
        let mut end = LOGGED_BODY_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("…[truncated]");
    }
    text
}

/// Parses a 2xx body as JSON; an empty body is `null`.
pub(crate) fn parse_json(value: &serde_json::Value) -> Option<serde_json::Value> {
    Some(value.clone())
}

/// What a call whose answer is any JSON expects, and its parser.
pub(crate) type Parser<T> = (&'static str, fn(&serde_json::Value) -> Option<T>);
pub(crate) const ANY_JSON: Parser<serde_json::Value> = ("JSON", parse_json);

/// Where a request goes: the shared client, the base URL, the address policy.
pub(crate) struct Target<'a> {
    pub http: &'a reqwest::Client,
    pub base: &'a ApiUrl,
    pub network: &'a NetworkPolicy,
}

/// Sends one signed request and classifies the outcome. `parse` names what a 2xx
/// JSON body must hold and turns it into the typed answer; `None` means the
/// Panel's answer lacked it. Nothing is sent to a destination `network` refuses.
pub(crate) async fn send<T>(
    target: &Target<'_>,
    signer: &Signer<'_>,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
    parse: (&'static str, impl FnOnce(&serde_json::Value) -> Option<T>),
) -> Exchange<T> {
    let Target {
        http,
        base,
        network,
    } = *target;
    let started = Instant::now();
    let request = RequestRecord {
        method: method.as_str().to_owned(),
        path: path.to_owned(),
        body: body
            .as_deref()
            .and_then(|b| serde_json::from_slice(b).ok())
            .map(|mut v| {
                redact(&mut v);
                v
            }),
    };
    if let Err(e) = network.check_url(base) {
        return Exchange::failed(request, started, e);
    }
    let bytes = body.unwrap_or_default();
    let (timestamp, signature) = match signer {
        Signer::Panel(token) => {
            if token.is_empty() {
                return Exchange::failed(
                    request,
                    started,
                    PanelError::new(ErrorKind::Config, "the server has no api_token set"),
                );
            }
            panel::signed_headers(token, chrono::Utc::now().timestamp(), &bytes)
        }
        Signer::Agent(secret) => {
            let ts = agent::format_timestamp(chrono::Utc::now());
            // The Agent signs the full request path, prefix included.
            let full_path = format!("{}{path}", base.path_prefix());
            let sig = agent::sign(secret, &ts, method.as_str(), &full_path, &bytes);
            (ts, sig)
        }
    };
    let mut builder = http
        .request(method.clone(), base.join(path))
        .header(reqwest::header::ACCEPT, "application/json")
        .header(panel::TIMESTAMP_HEADER, timestamp)
        .header(panel::SIGNATURE_HEADER, signature);
    if !bytes.is_empty() || method == Method::POST || method == Method::PUT {
        builder = builder.header(reqwest::header::CONTENT_TYPE, "application/json");
    }
    if !bytes.is_empty() {
        builder = builder.body(bytes);
    }
    let response = match builder.send().await {
        Ok(r) => r,
        Err(e) => return Exchange::failed(request, started, classify_transport(&e, base)),
    };
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let body = match read_capped(response).await {
        Ok(b) => b,
        Err(e) => {
            let err = classify_transport(&e, base).with_status(status);
            return Exchange::failed(request, started, err);
        }
    };
    let logged = Response {
        status,
        body: redacted_text(&body),
    };
    let result = if (200..300).contains(&status) {
        classify_success(&body, status, parse)
    } else if (300..400).contains(&status) {
        Err(redirected(status, location.as_deref()))
    } else {
        Err(classify_status(status, &body, &method, path))
    };
    Exchange {
        request,
        response: Some(logged),
        result,
        elapsed: started.elapsed(),
    }
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            body.extend_from_slice(&chunk[..MAX_BODY_BYTES - body.len()]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A 3xx: never followed (it would carry the signature, and a create's body,
/// wherever it points), reported with where it pointed.
fn redirected(status: u16, location: Option<&str>) -> PanelError {
    let to = location.map_or_else(
        || "no Location".to_owned(),
        |l| format!("Location: {}", cap_to(l, 200)),
    );
    let mut e = PanelError::new(
        ErrorKind::InvalidResponse,
        format!("the Panel answered {status}, a redirect ({to}); Commerce never follows redirects from a Panel"),
    )
    .with_status(status)
    .with_hint("Set api_url to the address the Panel really serves its API on (often https:// instead of http://, or a different host or path prefix), then test again.");
    e.retryable = false;
    e
}

fn cap_to(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = text[..end].to_owned();
    if end < text.len() {
        out.push('…');
    }
    out
}

/// A 2xx whose JSON lacks what the call needs. The message says what was
/// expected, never what came: a body may echo the request, password included.
fn classify_success<T>(
    body: &[u8],
    status: u16,
    (expected, parse): (&'static str, impl FnOnce(&serde_json::Value) -> Option<T>),
) -> Result<T, PanelError> {
    let json = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(body).map_err(|e| {
            // The parser's position, not its text: serde quotes the bad input.
            PanelError::new(
                ErrorKind::InvalidResponse,
                format!(
                    "the Panel answered {status} but the body is not valid JSON (error at line {} column {}); expected {expected}",
                    e.line(),
                    e.column()
                ),
            )
            .with_status(status)
            .outcome_unknown(true)
        })?
    };
    parse(&json).ok_or_else(|| {
        PanelError::new(
            ErrorKind::InvalidResponse,
            format!(
                "the Panel answered {status} without the expected fields: expected {expected}, got {}",
                shape(&json)
            ),
        )
        .with_status(status)
        .outcome_unknown(true)
    })
}

/// What kind of JSON value came, without any of its content.
fn shape(json: &serde_json::Value) -> &'static str {
    match json {
        serde_json::Value::Null => "an empty body",
        serde_json::Value::Object(_) => "a JSON object without them",
        serde_json::Value::Array(_) => "a JSON array",
        serde_json::Value::String(_) => "a JSON string",
        _ => "a JSON scalar",
    }
}

/// The Panel's own words from an error body: `message`, `error`, `errors`.
fn panel_message(body: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let mut parts = Vec::new();
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => {
            o.get("message").and_then(|m| m.as_str()).map(str::to_owned)
        }
        _ => None,
    };
    if let Some(m) = json.get("message").and_then(text) {
        parts.push(m);
    } else if let Some(m) = json.get("error").and_then(text) {
        parts.push(m);
    }
    match json.get("errors") {
        Some(serde_json::Value::Object(fields)) => {
            for (field, msgs) in fields {
                let msgs: Vec<String> = match msgs {
                    serde_json::Value::Array(a) => a.iter().filter_map(text).collect(),
                    other => text(other).into_iter().collect(),
                };
                if !msgs.is_empty() {
                    parts.push(format!("{field}: {}", msgs.join(" ")));
                }
            }
        }
        Some(serde_json::Value::Array(items)) => parts.extend(items.iter().filter_map(text)),
        _ => {}
    }
    let joined = parts.join("; ");
    (!joined.is_empty()).then(|| cap(joined))
}

fn classify_status(status: u16, body: &[u8], method: &Method, path: &str) -> PanelError {
    let said = panel_message(body);
    let with = |head: String| match &said {
        Some(m) => format!("{head}: {m}"),
        None => head,
    };
    let (kind, message) = match status {
        401 => (
            ErrorKind::Unauthorized,
            with("401 Unauthorized: the Panel rejected the request signature".into()),
        ),
        403 => (
            ErrorKind::Forbidden,
            with("403 Forbidden: the Panel refused this client".into()),
        ),
        404 => (
            ErrorKind::NotFound,
            with(format!("404 Not Found: {method} {path}")),
        ),
        409 => (
            ErrorKind::Conflict,
            with("409 Conflict: the account already exists on the Panel".into()),
        ),
        422 => (
            ErrorKind::Validation,
            with("422 Unprocessable: the Panel rejected the request".into()),
        ),
        429 => (ErrorKind::RateLimited, with("429 Too Many Requests".into())),
        504 => (
            ErrorKind::GatewayTimeout,
            with("504 Gateway Timeout".into()),
        ),
        500..=599 => (
            ErrorKind::ServerError,
            with(format!("{status} server error from the Panel")),
        ),
        _ => (
            ErrorKind::ClientError,
            with(format!("{status} from the Panel for {method} {path}")),
        ),
    };
    // A 5xx other than 503 may come after the Panel acted (a crash or a proxy
    // timeout mid-request): the outcome of a create is then unknown.
    let unknown = matches!(status, 500 | 502 | 504);
    PanelError::new(kind, message)
        .with_status(status)
        .outcome_unknown(unknown)
}

/// Classifies an error raised before an HTTP status arrived.
pub(crate) fn classify_transport(e: &reqwest::Error, base: &ApiUrl) -> PanelError {
    if let Some(refused) = find_source::<AddressRefused>(e) {
        return refused.to_panel_error();
    }
    let chain = error_chain(e);
    let lower = chain.to_ascii_lowercase();
    let host = reqwest::Url::parse(base.as_str())
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    if has_source::<rustls::Error>(e)
        || lower.contains("certificate")
        || lower.contains("tls handshake")
    {
        return PanelError::new(
            ErrorKind::Tls,
            format!(
                "SSL certificate verify failed for {host}: {}",
                tls_reason(&lower, last_line(&chain))
            ),
        );
    }
    if e.is_timeout() {
        let (msg, unknown) = if e.is_connect() {
            (format!("timed out connecting to {host}"), false)
        } else {
            (
                format!("no answer from {host} before the timeout (the request was sent)"),
                true,
            )
        };
        return PanelError::new(ErrorKind::Timeout, msg).outcome_unknown(unknown);
    }
    if lower.contains("dns error")
        || lower.contains("failed to lookup address")
        || lower.contains("name or service not known")
    {
        return PanelError::new(ErrorKind::Dns, format!("Could not resolve host {host}"));
    }
    if e.is_connect() {
        let refused =
            io_kind(e) == Some(std::io::ErrorKind::ConnectionRefused) || lower.contains("refused");
        let msg = if refused {
            format!(
                "Connection refused by {host} (nothing listening on the port in api_url, or a firewall)"
            )
        } else {
            format!("could not connect to {host}: {}", last_line(&chain))
        };
        return PanelError::new(ErrorKind::ConnectionRefused, msg);
    }
    if e.is_decode() || e.is_body() {
        return PanelError::new(
            ErrorKind::ConnectionDropped,
            format!(
                "the connection to {host} broke while reading the answer: {}",
                last_line(&chain)
            ),
        )
        .outcome_unknown(true);
    }
    if e.is_builder() {
        return PanelError::new(
            ErrorKind::Config,
            format!("the request could not be built: {chain}"),
        );
    }
    PanelError::new(
        ErrorKind::ConnectionDropped,
        format!(
            "the connection to {host} closed before the Panel answered: {}",
            last_line(&chain)
        ),
    )
    .outcome_unknown(true)
}

/// Admin words for the common certificate failures.
fn tls_reason<'a>(lower: &str, raw: &'a str) -> std::borrow::Cow<'a, str> {
    let reason = if lower.contains("unknownissuer") {
        "the certificate is not signed by a trusted authority (self-signed or a private CA)"
    } else if lower.contains("expired") {
        "the certificate has expired"
    } else if lower.contains("notvalidforname") {
        "the certificate is not valid for this host name"
    } else {
        return raw.into();
    };
    format!("{reason} ({raw})").into()
}

fn error_chain(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn last_line(chain: &str) -> &str {
    chain.rsplit(": ").next().unwrap_or(chain)
}

fn find_source<E: std::error::Error + 'static>(e: &reqwest::Error) -> Option<&E> {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(found) = s.downcast_ref::<E>() {
            return Some(found);
        }
        if let Some(found) = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<E>())
        {
            return Some(found);
        }
        source = s.source();
    }
    None
}

fn has_source<E: std::error::Error + 'static>(e: &reqwest::Error) -> bool {
    let mut source = e.source();
    while let Some(s) = source {
        if s.is::<E>() {
            return true;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.get_ref().is_some_and(|inner| inner.is::<E>())
        {
            return true;
        }
        source = s.source();
    }
    false
}

fn io_kind(e: &reqwest::Error) -> Option<std::io::ErrorKind> {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = s.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redact_hides_secret_keys_at_any_depth() {
        let mut v = json!({"username": "a", "password": "p", "nested": [{"API_TOKEN": "t"}], "data": {"secret": 1}});
        redact(&mut v);
        assert_eq!(
            v,
            json!({"username": "a", "password": REDACTED, "nested": [{"API_TOKEN": REDACTED}], "data": {"secret": REDACTED}})
        );
    }

    #[test]
    fn panel_message_reads_laravel_style_errors() {
        let body = br#"{"message":"The given data was invalid.","errors":{"package":["Package 'starter' does not exist."]}}"#;
        assert_eq!(
            panel_message(body).as_deref(),
            Some("The given data was invalid.; package: Package 'starter' does not exist.")
        );
        assert_eq!(
            panel_message(br#"{"error":"nope"}"#).as_deref(),
            Some("nope")
        );
        assert_eq!(panel_message(b"<html>"), None);
    }

    #[test]
    fn status_classification_covers_the_failure_table() {
        let cases = [
            (401, ErrorKind::Unauthorized, false),
            (403, ErrorKind::Forbidden, false),
            (404, ErrorKind::NotFound, false),
            (409, ErrorKind::Conflict, false),
            (422, ErrorKind::Validation, false),
            (418, ErrorKind::ClientError, false),
            (429, ErrorKind::RateLimited, true),
            (500, ErrorKind::ServerError, true),
            (503, ErrorKind::ServerError, true),
            (504, ErrorKind::GatewayTimeout, true),
        ];
        for (status, kind, retryable) in cases {
            let e = classify_status(status, b"", &Method::GET, "/api/server/stats");
            assert_eq!(
                (e.kind, e.retryable, e.http_status),
                (kind, retryable, Some(status)),
                "{status}"
            );
            assert!(!e.hint.is_empty());
        }
    }

    #[test]
    fn cap_truncates_on_a_char_boundary() {
        let long = "é".repeat(LOGGED_BODY_BYTES);
        let capped = cap(long);
        assert!(capped.ends_with("…[truncated]"));
        assert!(capped.len() <= LOGGED_BODY_BYTES + "…[truncated]".len());
    }
}
