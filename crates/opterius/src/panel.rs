//! Panel request signing (the HMAC-signed Panel API).
//!
//! `X-Timestamp` carries Unix seconds; `X-Signature` is the lowercase hex
//! HMAC-SHA256 of the timestamp string immediately followed by the exact body
//! bytes (empty for GET, DELETE and bodiless POST), keyed with the `api_token`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Header carrying the Unix timestamp (seconds) used in the signature.
pub const TIMESTAMP_HEADER: &str = "X-Timestamp";
/// Header carrying the lowercase hex HMAC-SHA256 signature.
pub const SIGNATURE_HEADER: &str = "X-Signature";
/// Default accepted clock skew between signer and verifier, in seconds.
pub const DEFAULT_WINDOW_SECS: u64 = 300;

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8], timestamp: &str, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.as_bytes());
    mac.update(body);
    mac
}

/// Signs `timestamp + body` with `api_token`, returning lowercase hex.
pub fn sign(api_token: &str, timestamp: &str, body: &[u8]) -> String {
    hex::encode(
        mac(api_token.as_bytes(), timestamp, body)
            .finalize()
            .into_bytes(),
    )
}

/// Both header values for a request sent at `unix_now`.
pub fn signed_headers(api_token: &str, unix_now: i64, body: &[u8]) -> (String, String) {
    let timestamp = unix_now.to_string();
    let signature = sign(api_token, &timestamp, body);
    (timestamp, signature)
}

/// Why a signed request was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("X-Timestamp is not a Unix timestamp in seconds")]
    MalformedTimestamp,
    #[error("X-Timestamp is {skew_secs} s old; the window is {window_secs} s")]
    Stale { skew_secs: i64, window_secs: u64 },
    #[error("X-Timestamp is {skew_secs} s in the future; the window is {window_secs} s")]
    Future { skew_secs: i64, window_secs: u64 },
    #[error("X-Signature is not hex")]
    MalformedSignature,
    #[error("X-Signature does not match")]
    BadSignature,
}

/// Verifies a Panel request as the Panel does: the timestamp must be within
/// `window_secs` of `unix_now` either way, and the signature is compared in
/// constant time.
pub fn verify(
    api_token: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    unix_now: i64,
    window_secs: u64,
) -> Result<(), VerifyError> {
    let timestamp = timestamp.ok_or(VerifyError::MissingHeader(TIMESTAMP_HEADER))?;
    let signature = signature.ok_or(VerifyError::MissingHeader(SIGNATURE_HEADER))?;
    if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::MalformedTimestamp);
    }
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| VerifyError::MalformedTimestamp)?;
    check_window(unix_now - ts, window_secs)?;
    let expected = hex::decode(signature).map_err(|_| VerifyError::MalformedSignature)?;
    mac(api_token.as_bytes(), timestamp, body)
        .verify_slice(&expected)
        .map_err(|_| VerifyError::BadSignature)
}

/// Rejects an age (now - timestamp) outside the window, either direction.
pub(crate) fn check_window(age_secs: i64, window_secs: u64) -> Result<(), VerifyError> {
    let window = i64::try_from(window_secs).unwrap_or(i64::MAX);
    if age_secs > window {
        Err(VerifyError::Stale {
            skew_secs: age_secs,
            window_secs,
        })
    } else if age_secs < -window {
        Err(VerifyError::Future {
            skew_secs: -age_secs,
            window_secs,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "eyJ-test-token";

    fn hmac_hex(key: &str, msg: &[u8]) -> String {
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(key.as_bytes()).expect("key");
        m.update(msg);
        hex::encode(m.finalize().into_bytes())
    }

    #[test]
    fn empty_body_signs_the_timestamp_alone() {
        let sig = sign(TOKEN, "1776211200", b"");
        assert_eq!(sig, hmac_hex(TOKEN, b"1776211200"));
        assert_eq!(sig.len(), 64);
        assert!(
            sig.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }

    #[test]
    fn known_vector_matches_rfc4231_style_hmac() {
        // HMAC-SHA256(key="key", "The quick brown fox jumps over the lazy dog")
        let sig = sign("key", "The quick brown fox ", b"jumps over the lazy dog");
        assert_eq!(
            sig,
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn utf8_body_is_signed_as_its_bytes() {
        let body = "{\"domain\":\"café.example\",\"name\":\"Zoë ✓\"}";
        let sig = sign(TOKEN, "1700000000", body.as_bytes());
        assert_eq!(sig, hmac_hex(TOKEN, format!("1700000000{body}").as_bytes()));
    }

    #[test]
    fn whitespace_and_newlines_in_body_are_significant() {
        let compact = sign(TOKEN, "1700000000", b"{\"a\":1}");
        let spaced = sign(TOKEN, "1700000000", b"{ \"a\": 1 }\n");
        assert_ne!(compact, spaced);
        assert_eq!(spaced, hmac_hex(TOKEN, b"1700000000{ \"a\": 1 }\n"));
    }

    #[test]
    fn delete_signs_with_empty_body() {
        let (ts, sig) = signed_headers(TOKEN, 1_700_000_123, b"");
        assert_eq!(ts, "1700000123");
        assert_eq!(sig, hmac_hex(TOKEN, b"1700000123"));
        assert_eq!(
            verify(TOKEN, Some(&ts), Some(&sig), b"", 1_700_000_123, 300),
            Ok(())
        );
    }

    #[test]
    fn verify_accepts_a_fresh_signature() {
        let body = b"{\"username\":\"alice\"}";
        let (ts, sig) = signed_headers(TOKEN, 1000, body);
        assert_eq!(
            verify(TOKEN, Some(&ts), Some(&sig), body, 1000 + 300, 300),
            Ok(())
        );
        assert_eq!(
            verify(TOKEN, Some(&ts), Some(&sig), body, 1000 - 300, 300),
            Ok(())
        );
    }

    #[test]
    fn verify_rejects_tampered_body() {
        let (ts, sig) = signed_headers(TOKEN, 1000, b"{\"package\":\"Starter\"}");
        assert_eq!(
            verify(
                TOKEN,
                Some(&ts),
                Some(&sig),
                b"{\"package\":\"Pro\"}",
                1000,
                300
            ),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn verify_rejects_wrong_token() {
        let (ts, sig) = signed_headers(TOKEN, 1000, b"");
        assert_eq!(
            verify("another-token", Some(&ts), Some(&sig), b"", 1000, 300),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn verify_rejects_stale_and_future_timestamps() {
        let (ts, sig) = signed_headers(TOKEN, 1000, b"");
        assert_eq!(
            verify(TOKEN, Some(&ts), Some(&sig), b"", 1301, 300),
            Err(VerifyError::Stale {
                skew_secs: 301,
                window_secs: 300
            })
        );
        assert_eq!(
            verify(TOKEN, Some(&ts), Some(&sig), b"", 699, 300),
            Err(VerifyError::Future {
                skew_secs: 301,
                window_secs: 300
            })
        );
    }

    #[test]
    fn verify_rejects_missing_and_malformed_headers() {
        let (ts, sig) = signed_headers(TOKEN, 1000, b"");
        assert_eq!(
            verify(TOKEN, None, Some(&sig), b"", 1000, 300),
            Err(VerifyError::MissingHeader(TIMESTAMP_HEADER))
        );
        assert_eq!(
            verify(TOKEN, Some(&ts), None, b"", 1000, 300),
            Err(VerifyError::MissingHeader(SIGNATURE_HEADER))
        );
        assert_eq!(
            verify(TOKEN, Some("-5"), Some(&sig), b"", 1000, 300),
            Err(VerifyError::MalformedTimestamp)
        );
        assert_eq!(
            verify(TOKEN, Some(&ts), Some("zz"), b"", 1000, 300),
            Err(VerifyError::MalformedSignature)
        );
    }
}
