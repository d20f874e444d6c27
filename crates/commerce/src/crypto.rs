//! Secrets at rest: AES-256-GCM under `APP_KEY`, and hashes for tokens.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use anyhow::{Context, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

/// The 32-byte application key. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct AppKey([u8; 32]);

impl std::fmt::Debug for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppKey([redacted])")
    }
}

impl AppKey {
    /// Parses `base64:<32 bytes in base64>` (or bare base64).
    pub fn parse(raw: &str) -> anyhow::Result<Self> {
        let raw = raw.trim();
        if raw.is_empty() {
            bail!(
                "APP_KEY is not set: generate one with `commerce key generate` (or `echo base64:$(openssl rand -base64 32)`) and put it in .env"
            );
        }
        let b64 = raw.strip_prefix("base64:").unwrap_or(raw);
        let bytes = STANDARD
            .decode(b64)
            .context("APP_KEY is malformed: expected base64:<44 base64 characters>; generate one with `commerce key generate`")?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| anyhow!("APP_KEY must decode to 32 bytes, got {}; generate one with `commerce key generate`", b.len()))?;
        Ok(Self(key))
    }

    /// A fresh random key in the `base64:` form `.env` takes.
    pub fn generate() -> String {
        let key = Aes256Gcm::generate_key(OsRng);
        format!("base64:{}", STANDARD.encode(key))
    }
}

/// Seals and opens secrets. `purpose` is bound into each ciphertext, so a sealed
/// server token cannot be replayed as a service password.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl Sealer {
    pub fn new(key: &AppKey) -> Self {
        Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.0)),
        }
    }

    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        // Encryption with a valid key and in-memory buffers cannot fail.
        let ct = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: purpose.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, purpose: &str, sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != VERSION {
            bail!("sealed {purpose} is malformed");
        }
        let nonce = Nonce::from_slice(&sealed[1..=NONCE_LEN]);
        self.cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[1 + NONCE_LEN..],
                    aad: purpose.as_bytes(),
                },
            )
            .map_err(|_| {
                anyhow!("cannot decrypt {purpose}: was APP_KEY changed since it was stored?")
            })
    }
}

/// Lowercase hex SHA-256, for API tokens and session ids (stored hashed).
pub fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// A random URL-safe token of `bytes` random bytes.
pub fn random_token(bytes: usize) -> String {
    use rand::RngExt as _;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(&mut buf[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_round_trip_and_are_bound_to_their_purpose() {
        let key = AppKey::parse(&AppKey::generate()).expect("key");
        let s = Sealer::new(&key);
        let sealed = s.seal("servers.secrets", b"tok-123");
        assert!(!sealed.windows(7).any(|w| w == b"tok-123"));
        assert_eq!(
            s.open("servers.secrets", &sealed).expect("open"),
            b"tok-123"
        );
        assert!(s.open("services.password", &sealed).is_err());
        let other = Sealer::new(&AppKey::parse(&AppKey::generate()).expect("key"));
        assert!(
            other
                .open("servers.secrets", &sealed)
                .expect_err("wrong key")
                .to_string()
                .contains("APP_KEY")
        );
    }

    #[test]
    fn app_key_errors_say_how_to_generate_one() {
        assert!(
            AppKey::parse("")
                .expect_err("empty")
                .to_string()
                .contains("commerce key generate")
        );
        assert!(
            AppKey::parse("base64:!!!")
                .expect_err("bad")
                .to_string()
                .contains("malformed")
        );
        assert!(
            AppKey::parse("base64:AAAA")
                .expect_err("short")
                .to_string()
                .contains("32 bytes")
        );
        assert!(
            format!("{:?}", AppKey::parse(&AppKey::generate()).expect("key")).contains("redacted")
        );
    }
}
