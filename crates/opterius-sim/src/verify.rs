//! The simulator's own signature checks for the HMAC-signed Panel API and the Agent API
//! (Agent), written apart from the client's `opterius::panel` and
//! `opterius::agent`: HMAC is built here from SHA-256 (RFC 2104), so a formula
//! bug shared by the client's signer and verifier still fails every test that
//! talks to the simulator.

use sha2::{Digest as _, Sha256};

/// SHA-256's block size, in bytes (RFC 2104's B).
const BLOCK: usize = 64;

/// HMAC-SHA256(key, message), following RFC 2104 step by step.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Lowercase hex, as both seeds send it.
pub(crate) fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn signature_matches(expected: &[u8; 32], sent: &str) -> Result<(), String> {
    if sent.len() != 64 || !sent.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("X-Signature is not 64 hex digits".into());
    }
    // Either case of hex names the same bytes.
    if same(
        lower_hex(expected).as_bytes(),
        sent.to_ascii_lowercase().as_bytes(),
    ) {
        Ok(())
    } else {
        Err("X-Signature does not match".into())
    }
}

fn within(age_secs: i64, window_secs: u64) -> Result<(), String> {
    if age_secs.unsigned_abs() > window_secs {
        let when = if age_secs > 0 { "old" } else { "in the future" };
        Err(format!(
            "X-Timestamp is {} s {when}; the window is {window_secs} s",
            age_secs.unsigned_abs()
        ))
    } else {
        Ok(())
    }
}

/// Panel HMAC API: `X-Timestamp` is Unix seconds within `window_secs` of `now`;
/// `X-Signature` is HMAC-SHA256(timestamp + body, api_token).
pub(crate) fn panel(
    token: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
    window_secs: u64,
) -> Result<(), String> {
    let timestamp = timestamp.ok_or("missing X-Timestamp header")?;
    let signature = signature.ok_or("missing X-Signature header")?;
    if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err("X-Timestamp is not a Unix timestamp in seconds".into());
    }
    let sent: i64 = timestamp
        .parse()
        .map_err(|_| "X-Timestamp is out of range".to_owned())?;
    within(now.saturating_sub(sent), window_secs)?;
    let mut message = timestamp.as_bytes().to_vec();
    message.extend_from_slice(body);
    signature_matches(&hmac_sha256(token.as_bytes(), &message), signature)
}

/// Agent API: `X-Timestamp` is RFC 3339 within five minutes of `now`;
/// `X-Signature` is HMAC-SHA256(secret, timestamp + METHOD + path + body).
pub(crate) fn agent(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    method: &str,
    path: &str,
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), String> {
    let timestamp = timestamp.ok_or("missing X-Timestamp header")?;
    let signature = signature.ok_or("missing X-Signature header")?;
    let sent = chrono::DateTime::parse_from_rfc3339(timestamp)
        .map_err(|_| "X-Timestamp is not an RFC 3339 time".to_owned())?;
    within((now - sent.to_utc()).num_seconds(), 300)?;
    let mut message = Vec::new();
    for part in [
        timestamp.as_bytes(),
        method.as_bytes(),
        path.as_bytes(),
        body,
    ] {
        message.extend_from_slice(part);
    }
    signature_matches(&hmac_sha256(secret.as_bytes(), &message), signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2 (a short key) and case 6 (a key longer than a block).
    #[test]
    fn hmac_matches_the_rfc_4231_vectors() {
        assert_eq!(
            lower_hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            lower_hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    /// Vectors computed outside Rust: `printf '1776211200{"a":1}' | openssl
    /// dgst -sha256 -hmac tok` and `printf
    /// '2026-04-08T14:32:00ZPOST/account/create{}' | openssl dgst -sha256 -hmac key`.
    #[test]
    fn seed_formulas_match_vectors_computed_with_openssl() {
        assert_eq!(
            panel(
                "tok",
                Some("1776211200"),
                Some("6e5d0a7b6c1c7a8b4d35b36f1d0b7d0b3b2d3c4e2d8c1a3a7e8a0b4f2c1d0e9f"),
                b"{\"a\":1}",
                1_776_211_200,
                300
            ),
            Err("X-Signature does not match".into()),
            "a wrong signature is refused"
        );
        let ok = lower_hex(&hmac_sha256(b"tok", b"1776211200{\"a\":1}"));
        assert_eq!(ok, OPENSSL_PANEL);
        assert_eq!(
            panel(
                "tok",
                Some("1776211200"),
                Some(&ok),
                b"{\"a\":1}",
                1_776_211_500,
                300
            ),
            Ok(())
        );
        let at = chrono::DateTime::parse_from_rfc3339("2026-04-08T14:32:00Z")
            .expect("time")
            .to_utc();
        assert_eq!(
            agent(
                "key",
                Some("2026-04-08T14:32:00Z"),
                Some(OPENSSL_AGENT),
                "POST",
                "/account/create",
                b"{}",
                at
            ),
            Ok(())
        );
    }

    const OPENSSL_PANEL: &str = "2181abfcfd18fdfb1825df7ae293b20afc42f9fb86636339b318d6ff1ea207f7";
    const OPENSSL_AGENT: &str = "4bee45a0c62a8859b4a49788d7242f482040dc8c3bb6bb7d20276ff7067055a9";

    #[test]
    fn timestamps_outside_the_window_are_refused_either_way() {
        let sig = lower_hex(&hmac_sha256(b"t", b"1000"));
        assert!(panel("t", Some("1000"), Some(&sig), b"", 1300, 300).is_ok());
        assert!(panel("t", Some("1000"), Some(&sig), b"", 700, 300).is_ok());
        assert!(
            panel("t", Some("1000"), Some(&sig), b"", 1301, 300)
                .is_err_and(|e| e.contains("301 s old"))
        );
        assert!(
            panel("t", Some("1000"), Some(&sig), b"", 699, 300)
                .is_err_and(|e| e.contains("in the future"))
        );
        assert!(panel("t", Some("-5"), Some(&sig), b"", 1000, 300).is_err());
        assert!(panel("t", None, Some(&sig), b"", 1000, 300).is_err());
        assert!(panel("t", Some("1000"), Some("zz"), b"", 1000, 300).is_err());
    }
}
