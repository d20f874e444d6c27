//! Translates the wire crate's errors, records and exchanges into the
//! vendor-neutral words of the `provisioning` crate, and the credential checks
//! both Opterius dialects share.

use std::time::Duration;

use opterius::{ErrorKind, Exchange, PanelError};
use provisioning::{
    CertificateInfo, Credentials, Failure, FailureKind, FieldErrors, ProvisioningResult,
    RequestRecord, ResponseRecord, Success,
};

/// The neutral kind of a wire kind.
pub(crate) fn kind(k: ErrorKind) -> FailureKind {
    match k {
        ErrorKind::Unauthorized => FailureKind::Unauthorized,
        ErrorKind::Forbidden => FailureKind::Forbidden,
        ErrorKind::NotFound => FailureKind::NotFound,
        ErrorKind::Conflict => FailureKind::Conflict,
        ErrorKind::Validation => FailureKind::Validation,
        ErrorKind::UnknownPackage => FailureKind::UnknownPackage,
        ErrorKind::NoAvailableServers => FailureKind::NoPanelServers,
        ErrorKind::LicenseLimit => FailureKind::LicenseLimit,
        ErrorKind::RateLimited => FailureKind::RateLimited,
        ErrorKind::ClientError => FailureKind::ClientError,
        ErrorKind::ServerError => FailureKind::ServerError,
        ErrorKind::GatewayTimeout => FailureKind::GatewayTimeout,
        ErrorKind::Timeout => FailureKind::Timeout,
        ErrorKind::ConnectionRefused => FailureKind::ConnectionRefused,
        ErrorKind::ConnectionDropped => FailureKind::ConnectionDropped,
        ErrorKind::Dns => FailureKind::Dns,
        ErrorKind::Tls => FailureKind::Tls,
        ErrorKind::InvalidResponse => FailureKind::InvalidResponse,
        ErrorKind::Config => FailureKind::Config,
    }
}

pub(crate) fn failure(e: PanelError) -> Failure {
    Failure {
        kind: kind(e.kind),
        message: e.message,
        hint: e.hint,
        retryable: e.retryable,
        outcome_unknown: e.outcome_unknown,
        certificate: e.certificate.map(|c| {
            Box::new(CertificateInfo {
                sha256: c.sha256,
                subject: c.subject,
                not_after: c.not_after,
            })
        }),
        retry_after: e.retry_after,
        existing_account_id: e.existing_account_id,
        http_status: e.http_status,
    }
}

/// A configuration failure with the wire crate's hint for `dialect`.
pub(crate) fn config(message: impl Into<String>, hint: &str) -> Failure {
    Failure::new(FailureKind::Config, message, hint, false)
}

/// Turns a client exchange into a result, with `ok` describing the success
/// (or refusing it, for answers that are not a success after all).
pub(crate) fn finish<T>(
    ex: Exchange<T>,
    ok: impl FnOnce(T) -> Result<Success, Failure>,
) -> ProvisioningResult {
    ProvisioningResult {
        outcome: ex.result.map_err(failure).and_then(ok),
        request: Some(RequestRecord {
            method: ex.request.method,
            path: ex.request.path,
            body: ex.request.body,
        }),
        response: ex.response.map(|r| ResponseRecord {
            status: r.status,
            body: r.body,
        }),
        duration: ex.elapsed,
    }
}

/// A result decided before any call.
pub(crate) fn refused(failure: Failure) -> ProvisioningResult {
    ProvisioningResult {
        duration: Duration::ZERO,
        ..ProvisioningResult::failure(failure)
    }
}

pub(crate) fn plain(
    message: &str,
) -> impl FnOnce(serde_json::Value) -> Result<Success, Failure> + '_ {
    move |data| {
        Ok(Success {
            message: message.to_owned(),
            data,
            account_id: None,
        })
    }
}

/// The field errors every Opterius dialect shares: a parsable `api_url` and a
/// non-blank `secret` (the token or key the dialect signs or sends with).
pub(crate) fn url_and_secret_errors(creds: &Credentials, secret: &str) -> FieldErrors {
    let mut errors = FieldErrors::new();
    if let Err(e) = opterius::ApiUrl::parse(creds.field("api_url").unwrap_or_default()) {
        errors
            .entry("api_url".into())
            .or_default()
            .push(e.to_string());
    }
    if creds
        .secrets
        .get(secret)
        .is_none_or(|t| secrecy::ExposeSecret::expose_secret(t).trim().is_empty())
    {
        errors
            .entry(secret.into())
            .or_default()
            .push(format!("{secret} is required"));
    }
    errors
}
