//! `Redactor`: the one place that removes an attempt's secrets from anything we
//! store or show. It knows every secret of the attempt (the account password,
//! every secret credential) in each form it can take on the wire: raw,
//! JSON-escaped (serde and PHP styles), percent-encoded and form-encoded.

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::module::Credentials;
use crate::result::{Failure, ProvisioningResult, Success};

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Secrets shorter than this are not searched for: replacing a two-letter
/// "secret" would shred every message. Generated passwords and tokens are long.
const MIN_SECRET_LEN: usize = 4;

/// Replaces the secrets it was built from, in every encoding, in text and JSON.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Every encoded form of every secret, longest first.
    needles: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("forms", &self.needles.len())
            .finish_non_exhaustive()
    }
}

impl Redactor {
    /// A redactor for one attempt: every secret credential of the server, and
    /// `extra` (the account password, ...).
    pub fn for_attempt(creds: &Credentials, extra: &[&SecretString]) -> Self {
        let mut r = Self::default();
        for s in creds.secrets.values().chain(extra.iter().copied()) {
            r.add(s.expose_secret());
        }
        r
    }

    /// Adds one secret value, in all its forms.
    pub fn add(&mut self, secret: &str) {
        if secret.chars().count() < MIN_SECRET_LEN {
            return;
        }
        for form in forms(secret) {
            if !form.is_empty() && !self.needles.contains(&form) {
                self.needles.push(form);
            }
        }
        self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    }

    /// `text` with every known secret replaced.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), REDACTED);
            }
        }
        out
    }

    /// Redacts every string (and object key) of `value`, at any depth.
    pub fn json(&self, value: &mut Value) {
        match value {
            Value::String(s) => *s = self.text(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.json(v)),
            Value::Object(map) => {
                let taken = std::mem::take(map);
                for (k, mut v) in taken {
                    self.json(&mut v);
                    map.insert(self.text(&k), v);
                }
            }
            _ => {}
        }
    }

    /// A copy of `failure` whose message and hint hold no secret.
    pub fn failure(&self, failure: &Failure) -> Failure {
        Failure {
            message: self.text(&failure.message),
            hint: self.text(&failure.hint),
            ..failure.clone()
        }
    }

    /// A copy of `success` whose message, data and account id hold no secret.
    pub fn success(&self, success: &Success) -> Success {
        let mut data = success.data.clone();
        self.json(&mut data);
        Success {
            message: self.text(&success.message),
            data,
            account_id: success.account_id.as_deref().map(|a| self.text(a)),
        }
    }

    /// The whole result, redacted: outcome, request record and response.
    pub fn result(&self, result: &ProvisioningResult) -> ProvisioningResult {
        let mut out = result.clone();
        out.outcome = match &result.outcome {
            Ok(s) => Ok(self.success(s)),
            Err(f) => Err(self.failure(f)),
        };
        if let Some(req) = out.request.as_mut() {
            req.path = self.text(&req.path);
            if let Some(body) = req.body.as_mut() {
                self.json(body);
            }
        }
        if let Some(resp) = out.response.as_mut() {
            resp.body = self.text(&resp.body);
        }
        out
    }
}

/// The forms a secret can take in a body, a URL or a message.
fn forms(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json
        .strip_prefix('"')
        .and_then(|j| j.strip_suffix('"'))
        .unwrap_or_default()
        .to_owned();
    let mut out = vec![
        secret.to_owned(),
        json.clone(),
        // PHP's json_encode (the Panel is Laravel) also escapes `/` and non-ASCII.
        php_json(&json),
        percent(secret, false, true),
        percent(secret, false, false),
        percent(secret, true, true),
        percent(secret, true, false),
    ];
    out.dedup();
    out
}

fn php_json(serde_json_escaped: &str) -> String {
    let mut out = String::with_capacity(serde_json_escaped.len());
    for c in serde_json_escaped.chars() {
        match c {
            '/' => out.push_str("\\/"),
            c if !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Percent-encoding of every byte outside the unreserved set; `form` is
/// `application/x-www-form-urlencoded` (space as `+`, `~` encoded).
fn percent(secret: &str, form: bool, upper: bool) -> String {
    let mut out = String::with_capacity(secret.len() * 3);
    for b in secret.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_')
            || (b == b'~' && !form)
            || (b == b'*' && form);
        if keep {
            out.push(char::from(b));
        } else if b == b' ' && form {
            out.push('+');
        } else if upper {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PW: &str = "p@ss/wörd \"x\"+1~";

    fn redactor() -> Redactor {
        let mut r = Redactor::default();
        r.add(PW);
        r
    }

    #[test]
    fn every_wire_form_of_a_secret_is_replaced() {
        let r = redactor();
        let raw_json = serde_json::to_string(&json!({ "password": PW })).expect("json");
        let cases = [
            PW.to_owned(),
            raw_json,
            r#"{"password":"p@ss\/w\u00f6rd \"x\"+1~"}"#.to_owned(),
            "password=p%40ss%2Fw%C3%B6rd+%22x%22%2B1%7E".to_owned(),
            "p%40ss%2fw%c3%b6rd%20%22x%22%2b1~".to_owned(),
        ];
        for case in cases {
            let out = r.text(&case);
            assert!(out.contains(REDACTED), "{case} -> {out}");
            assert!(
                !out.contains("w\\u00f6rd") && !out.contains("wörd"),
                "{out}"
            );
            assert!(!out.contains("%C3%B6") && !out.contains("%c3%b6"), "{out}");
        }
    }

    #[test]
    fn json_values_and_keys_are_redacted_at_any_depth() {
        let r = redactor();
        let mut v = json!({"a": [{"msg": format!("bad {PW}")}], PW: 1, "n": 2});
        r.json(&mut v);
        assert_eq!(
            v,
            json!({"a": [{"msg": "bad [redacted]"}], "[redacted]": 1, "n": 2})
        );
    }

    #[test]
    fn short_values_are_not_treated_as_secrets() {
        let mut r = Redactor::default();
        r.add("ab");
        assert_eq!(r.text("ab cd"), "ab cd");
    }

    #[test]
    fn debug_shows_no_secret() {
        assert!(!format!("{:?}", redactor()).contains("ss"));
    }
}
