//! A server's TLS trust as stored and submitted (`{mode, sha256}`), parsed once,
//! and the HTTP client each trust needs (cached per pin, so connection pools
//! are shared).

use std::collections::HashMap;
use std::sync::Mutex;

use opterius::TlsPolicy;
use provisioning::ModuleContext;
use serde::{Deserialize, Serialize};

use crate::domain::FieldErrors;

/// `tls` on server bodies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    /// `verify` (default), `pinned` or `insecure`.
    #[serde(default = "verify")]
    pub mode: String,
    /// Lowercase hex SHA-256 of the Panel's certificate (DER), for `pinned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

fn verify() -> String {
    "verify".into()
}

impl ServerTls {
    /// Checks and normalises the submitted value; errors under `tls.*`.
    pub fn parse(input: Option<&ServerTls>, errors: &mut FieldErrors) -> ServerTls {
        let Some(input) = input else {
            return ServerTls {
                mode: verify(),
                sha256: None,
            };
        };
        let mode = input.mode.trim().to_ascii_lowercase();
        let sha256 = input
            .sha256
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let pin = match sha256.map(TlsPolicy::parse_pin) {
            Some(Ok(pin)) => Some(hex::encode(pin)),
            Some(Err(e)) => {
                errors.add("tls.sha256", e);
                None
            }
            None => None,
        };
        match mode.as_str() {
            "verify" | "insecure" => {}
            "pinned" if sha256.is_none() => errors.add(
                "tls.sha256",
                "pinned needs the SHA-256 of the Panel's certificate",
            ),
            "pinned" => {}
            _ => errors.add("tls.mode", "mode must be verify, pinned or insecure"),
        }
        ServerTls { mode, sha256: pin }
    }

    pub fn policy(&self) -> TlsPolicy {
        match (self.mode.as_str(), self.sha256.as_deref()) {
            ("insecure", _) => TlsPolicy::Insecure,
            ("pinned", Some(pin)) => TlsPolicy::parse_pin(pin)
                .map(TlsPolicy::Pinned)
                .unwrap_or(TlsPolicy::Verify),
            _ => TlsPolicy::Verify,
        }
    }
}

/// One HTTP client per trust policy, built on the process's options.
pub struct HttpClients {
    options: opterius::ClientOptions,
    default: ModuleContext,
    by_policy: Mutex<HashMap<TlsPolicy, ModuleContext>>,
}

impl HttpClients {
    pub fn new(options: opterius::ClientOptions) -> anyhow::Result<Self> {
        let http = options.build().map_err(|e| anyhow::anyhow!(e.message))?;
        Ok(Self {
            options,
            default: ModuleContext { http },
            by_policy: Mutex::new(HashMap::new()),
        })
    }

    /// The default (verifying) context.
    pub fn default_ctx(&self) -> &ModuleContext {
        &self.default
    }

    /// The context for a server with `tls`.
    pub fn ctx_for(&self, tls: &ServerTls) -> ModuleContext {
        let policy = tls.policy();
        if policy == TlsPolicy::Verify {
            return self.default.clone();
        }
        let mut map = self.by_policy.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ctx) = map.get(&policy) {
            return ctx.clone();
        }
        let options = opterius::ClientOptions {
            tls: policy.clone(),
            ..self.options.clone()
        };
        let ctx = match options.build() {
            Ok(http) => ModuleContext { http },
            Err(e) => {
                tracing::error!(error = %e.message, "could not build a TLS client; using the default");
                self.default.clone()
            }
        };
        map.insert(policy, ctx.clone());
        ctx
    }

    /// The certificate the Panel at `url` presents (for "Trust this certificate").
    pub async fn presented_certificate(&self, url: &str) -> Option<provisioning::CertificateInfo> {
        let c = self.options.presented_certificate(url).await?;
        Some(provisioning::CertificateInfo {
            sha256: c.sha256,
            subject: c.subject,
            not_after: c.not_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_needs_a_valid_sha256_and_modes_are_checked() {
        let mut e = FieldErrors::default();
        let t = ServerTls::parse(
            Some(&ServerTls {
                mode: "pinned".into(),
                sha256: Some("AB:".repeat(31) + "AB"),
            }),
            &mut e,
        );
        assert!(e.is_empty());
        assert_eq!(t.sha256.as_deref(), Some("ab".repeat(32).as_str()));
        for bad in [
            ServerTls {
                mode: "pinned".into(),
                sha256: None,
            },
            ServerTls {
                mode: "pinned".into(),
                sha256: Some("xyz".into()),
            },
            ServerTls {
                mode: "trust-me".into(),
                sha256: None,
            },
        ] {
            let mut e = FieldErrors::default();
            ServerTls::parse(Some(&bad), &mut e);
            assert!(!e.is_empty(), "{bad:?}");
        }
    }
}
