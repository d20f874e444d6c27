//! Secrets at rest: AES-256-GCM under `APP_KEY`, and hashes for tokens.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use anyhow::{Context, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// The first format: version byte, nonce, ciphertext; AAD = the purpose only.
const LEGACY: u8 = 1;
/// Version byte, key id, nonce, ciphertext; AAD binds purpose, row and more.
const VERSION: u8 = 2;
const KEY_ID_LEN: usize = 4;
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

/// Where a sealed value belongs: the ciphertext is bound to it (AES-GCM
/// associated data), so it cannot be moved to another row, another column or,
/// for server secrets, another `api_url`.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// `table.column`, e.g. `servers.secrets`.
    pub purpose: &'a str,
    pub row_id: i64,
    /// Anything else the value is only valid with (a server's `api_url`).
    pub context: &'a str,
}

impl<'a> Binding<'a> {
    pub fn new(purpose: &'a str, row_id: i64, context: &'a str) -> Self {
        Self {
            purpose,
            row_id,
            context,
        }
    }

    fn aad(&self) -> Vec<u8> {
        format!(
            "commerce/v2\0{}\0{}\0{}",
            self.purpose, self.row_id, self.context
        )
        .into_bytes()
    }
}

/// Seals and opens secrets under `APP_KEY`; opens values sealed under
/// `APP_KEY_PREVIOUS` too, so `commerce key rotate` can re-seal them.
#[derive(Clone)]
pub struct Sealer {
    /// The current key first, then the previous one.
    keys: Vec<([u8; KEY_ID_LEN], Aes256Gcm)>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

fn key_id(key: &AppKey) -> [u8; KEY_ID_LEN] {
    let digest = Sha256::new()
        .chain_update(b"commerce app key id\0")
        .chain_update(key.0)
        .finalize();
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    id
}

impl Sealer {
    pub fn new(key: &AppKey) -> Self {
        Self::with_previous(key, None)
    }

    /// A sealer that also opens values sealed under `previous`.
    pub fn with_previous(key: &AppKey, previous: Option<&AppKey>) -> Self {
        let keys = std::iter::once(key)
            .chain(previous)
            .map(|k| {
                (
                    key_id(k),
                    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&k.0)),
                )
            })
            .collect();
        Self { keys }
    }

    /// The current key's id, as stored in every sealed value.
    pub fn key_id(&self) -> [u8; KEY_ID_LEN] {
        self.keys[0].0
    }

    pub fn seal(&self, at: Binding<'_>, plaintext: &[u8]) -> Vec<u8> {
        let (id, cipher) = &self.keys[0];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = at.aad();
        // Encryption with a valid key and in-memory buffers cannot fail.
        let ct = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + KEY_ID_LEN + NONCE_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Whether `sealed` is not yet under the current key in the current format.
    pub fn needs_reseal(&self, sealed: &[u8]) -> bool {
        !(sealed.first() == Some(&VERSION)
            && sealed.get(1..=KEY_ID_LEN) == Some(&self.key_id()[..]))
    }

    pub fn open(&self, at: Binding<'_>, sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
        let purpose = at.purpose;
        let wrong = || {
            anyhow!(
                "cannot decrypt {purpose} of row {}: it was sealed for another row or address, or APP_KEY changed (set the old key as APP_KEY_PREVIOUS and run `commerce key rotate`)",
                at.row_id
            )
        };
        match sealed.first() {
            Some(&VERSION) if sealed.len() >= 1 + KEY_ID_LEN + NONCE_LEN => {
                let id = &sealed[1..=KEY_ID_LEN];
                let (_, cipher) = self
                    .keys
                    .iter()
                    .find(|(k, _)| k[..] == *id)
                    .ok_or_else(|| {
                        anyhow!(
                            "cannot decrypt {purpose}: it was sealed under a key that is neither APP_KEY nor APP_KEY_PREVIOUS"
                        )
                    })?;
                let nonce = Nonce::from_slice(&sealed[1 + KEY_ID_LEN..1 + KEY_ID_LEN + NONCE_LEN]);
                let aad = at.aad();
                cipher
                    .decrypt(
                        nonce,
                        Payload {
                            msg: &sealed[1 + KEY_ID_LEN + NONCE_LEN..],
                            aad: &aad,
                        },
                    )
                    .map_err(|_| wrong())
            }
            // Values written before key ids: bound to the purpose only. They
            // open (with either key) until `commerce key rotate` re-seals them.
            Some(&LEGACY) if sealed.len() > NONCE_LEN => {
                let nonce = Nonce::from_slice(&sealed[1..=NONCE_LEN]);
                self.keys
                    .iter()
                    .find_map(|(_, cipher)| {
                        cipher
                            .decrypt(
                                nonce,
                                Payload {
                                    msg: &sealed[1 + NONCE_LEN..],
                                    aad: purpose.as_bytes(),
                                },
                            )
                            .ok()
                    })
                    .ok_or_else(wrong)
            }
            _ => bail!("sealed {purpose} is malformed"),
        }
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

    fn key() -> AppKey {
        AppKey::parse(&AppKey::generate()).expect("key")
    }

    #[test]
    fn sealed_values_round_trip_and_are_bound_to_purpose_row_and_address() {
        let s = Sealer::new(&key());
        let at = Binding::new("servers.secrets", 7, "https://panel.example.com");
        let sealed = s.seal(at, b"tok-123");
        assert!(!sealed.windows(7).any(|w| w == b"tok-123"));
        assert_eq!(s.open(at, &sealed).expect("open"), b"tok-123");
        for other in [
            Binding::new("services.password", 7, "https://panel.example.com"),
            Binding::new("servers.secrets", 8, "https://panel.example.com"),
            Binding::new("servers.secrets", 7, "https://elsewhere.example.com"),
        ] {
            assert!(s.open(other, &sealed).is_err(), "{other:?}");
        }
        let other = Sealer::new(&key());
        assert!(
            other
                .open(at, &sealed)
                .expect_err("wrong key")
                .to_string()
                .contains("APP_KEY")
        );
    }

    #[test]
    fn a_previous_key_opens_old_values_until_they_are_resealed() {
        let (old, new) = (key(), key());
        let at = Binding::new("services.password", 1, "");
        let sealed = Sealer::new(&old).seal(at, b"pw");
        let rotating = Sealer::with_previous(&new, Some(&old));
        assert!(rotating.needs_reseal(&sealed));
        assert_eq!(rotating.open(at, &sealed).expect("previous key"), b"pw");
        let resealed = rotating.seal(at, b"pw");
        assert!(!rotating.needs_reseal(&resealed));
        assert_eq!(
            Sealer::new(&new).open(at, &resealed).expect("new key"),
            b"pw"
        );
        assert!(Sealer::new(&old).open(at, &resealed).is_err());
    }

    #[test]
    fn legacy_values_bound_to_the_purpose_only_still_open() {
        let k = key();
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&k.0));
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: b"legacy",
                    aad: b"servers.secrets",
                },
            )
            .expect("encrypt");
        let mut sealed = vec![LEGACY];
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ct);
        let s = Sealer::new(&k);
        assert!(s.needs_reseal(&sealed));
        let at = Binding::new("servers.secrets", 3, "https://p.example.com");
        assert_eq!(s.open(at, &sealed).expect("legacy"), b"legacy");
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
