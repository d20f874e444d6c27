//! Per-server TLS trust: verify against the system's roots (default), trust
//! exactly one pinned certificate (SHA-256 of its DER, for self-signed Panels,
//! checked by our own rustls verifier), or no checks at all; and reading the
//! certificate a Panel presents, so an admin can pin it.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::error::{CertificateInfo, ErrorKind, PanelError};

/// How one server's certificate is trusted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum TlsPolicy {
    /// The system's trusted roots, host name checked.
    #[default]
    Verify,
    /// Exactly this certificate (SHA-256 of its DER), whoever signed it.
    Pinned([u8; 32]),
    /// No certificate checks.
    Insecure,
}

impl TlsPolicy {
    /// Reads a pin: 64 hex digits, `:` separators and case allowed.
    pub fn parse_pin(text: &str) -> Result<[u8; 32], String> {
        let hex_digits: String = text
            .trim()
            .chars()
            .filter(|c| *c != ':')
            .collect::<String>()
            .to_ascii_lowercase();
        let bytes = hex::decode(&hex_digits)
            .map_err(|_| "sha256 must be the certificate's SHA-256 in hex".to_owned())?;
        bytes
            .try_into()
            .map_err(|_| "sha256 must be 64 hex digits (32 bytes)".to_owned())
    }
}

/// Lowercase hex SHA-256 of a certificate's DER.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

fn algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

fn config_with(verifier: Arc<dyn ServerCertVerifier>) -> Result<rustls::ClientConfig, PanelError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PanelError::new(ErrorKind::Config, format!("TLS setup failed: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// The rustls configuration that trusts exactly `pin`.
pub(crate) fn pinned_config(pin: [u8; 32]) -> Result<rustls::ClientConfig, PanelError> {
    config_with(Arc::new(Pinned {
        pin,
        algs: algorithms(),
    }))
}

/// Accepts the one certificate whose SHA-256 is the pin; signatures of the
/// handshake are still checked against that certificate's key.
#[derive(Debug)]
struct Pinned {
    pin: [u8; 32],
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if got == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "certificate pin mismatch: the Panel presented sha256 {}, the server pins {}",
                hex::encode(got),
                hex::encode(self.pin)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Records the leaf certificate, then refuses it: nothing is ever sent over
/// the connection.
#[derive(Debug)]
struct Recorder {
    seen: Arc<Mutex<Option<Vec<u8>>>>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(end_entity.to_vec());
        Err(rustls::Error::General("certificate recorded".into()))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Fingerprint, subject and expiry of a DER certificate.
pub fn describe(der: &[u8]) -> CertificateInfo {
    let (subject, not_after) = match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => (
            cert.subject().to_string(),
            chrono::DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
        ),
        Err(_) => (String::new(), String::new()),
    };
    CertificateInfo {
        sha256: fingerprint(der),
        subject,
        not_after,
    }
}

impl crate::client::ClientOptions {
    /// The certificate the server at `url` presents, read with a one-off
    /// handshake that is refused as soon as the certificate is seen.
    pub async fn presented_certificate(&self, url: &str) -> Option<CertificateInfo> {
        // Only where a Panel call may go (IP literals here, names at connect).
        let base = crate::ApiUrl::parse(url).ok()?;
        self.network.check_url(&base).ok()?;
        let seen = Arc::new(Mutex::new(None));
        let config = config_with(Arc::new(Recorder {
            seen: seen.clone(),
            algs: algorithms(),
        }))
        .ok()?;
        let client = self.builder().use_preconfigured_tls(config).build().ok()?;
        let _ = client.get(url).send().await;
        let der = seen.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        Some(describe(&der))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_read_with_or_without_colons() {
        let hex = "ab".repeat(32);
        assert_eq!(TlsPolicy::parse_pin(&hex), Ok([0xab; 32]));
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(TlsPolicy::parse_pin(&colons), Ok([0xab; 32]));
        assert!(TlsPolicy::parse_pin("abcd").is_err());
        assert!(TlsPolicy::parse_pin(&"zz".repeat(32)).is_err());
    }
}
