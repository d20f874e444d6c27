//! `ApiUrl`: a Panel (or Agent) base URL, parsed once and trusted afterwards.

use std::fmt;

/// A base URL: http or https, a host, an optional path prefix, no trailing
/// slash, no query or fragment. Endpoint paths are appended to it verbatim.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct ApiUrl(String);

/// Why a string is not a usable `api_url`; the text is shown next to the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiUrlError {
    #[error("api_url is required")]
    Empty,
    #[error("api_url must not end with a slash: use {0}")]
    TrailingSlash(String),
    #[error("api_url must start with http:// or https://")]
    Scheme,
    #[error("api_url is not a valid URL: {0}")]
    Invalid(String),
    #[error("api_url must not carry a query string or fragment")]
    QueryOrFragment,
    #[error("api_url must not contain a user name or password")]
    Userinfo,
}

impl ApiUrl {
    /// Parses `raw` (surrounding whitespace ignored).
    pub fn parse(raw: &str) -> Result<Self, ApiUrlError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(ApiUrlError::Empty);
        }
        let lower = raw.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(ApiUrlError::Scheme);
        }
        if raw.ends_with('/') {
            return Err(ApiUrlError::TrailingSlash(
                raw.trim_end_matches('/').to_owned(),
            ));
        }
        let url = reqwest::Url::parse(raw).map_err(|e| ApiUrlError::Invalid(e.to_string()))?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(ApiUrlError::Invalid("it has no host name".into()));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ApiUrlError::QueryOrFragment);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ApiUrlError::Userinfo);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The full URL of an endpoint path such as `/api/server/stats`.
    pub fn join(&self, path: &str) -> String {
        format!("{}{}", self.0, path)
    }

    /// The path prefix (`/panel` for `https://host/panel`), empty when none.
    pub fn path_prefix(&self) -> String {
        reqwest::Url::parse(&self.0)
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default()
    }
}

impl fmt::Display for ApiUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_host_port_and_path_prefix() {
        assert!(ApiUrl::parse("https://panel.example.com").is_ok());
        let u = ApiUrl::parse("http://127.0.0.1:8443/s/7").expect("valid");
        assert_eq!(
            u.join("/api/server/stats"),
            "http://127.0.0.1:8443/s/7/api/server/stats"
        );
        assert_eq!(u.path_prefix(), "/s/7");
    }

    #[test]
    fn trailing_slash_gets_a_clear_error() {
        assert_eq!(
            ApiUrl::parse("https://panel.example.com/"),
            Err(ApiUrlError::TrailingSlash(
                "https://panel.example.com".into()
            ))
        );
        assert!(
            ApiUrl::parse("https://panel.example.com/")
                .expect_err("slash")
                .to_string()
                .contains("must not end with a slash")
        );
    }

    #[test]
    fn rejects_other_schemes_queries_and_garbage() {
        assert_eq!(ApiUrl::parse("ftp://x"), Err(ApiUrlError::Scheme));
        assert_eq!(ApiUrl::parse("panel.example.com"), Err(ApiUrlError::Scheme));
        assert_eq!(ApiUrl::parse(""), Err(ApiUrlError::Empty));
        assert_eq!(
            ApiUrl::parse("https://x.com?a=1"),
            Err(ApiUrlError::QueryOrFragment)
        );
        assert_eq!(
            ApiUrl::parse("https://u:p@x.com"),
            Err(ApiUrlError::Userinfo)
        );
        assert!(matches!(
            ApiUrl::parse("https://exa mple.com"),
            Err(ApiUrlError::Invalid(_))
        ));
    }
}
