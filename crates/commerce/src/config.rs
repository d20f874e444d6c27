//! One typed configuration, read from the environment (and `.env`), failing fast
//! with a message that names the variable.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::crypto::AppKey;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything the service reads from its environment.
#[derive(Clone)]
pub struct Config {
    pub database_url: String,
    pub database_max_connections: u32,
    /// `DATABASE_HTTP_CONNECTIONS`: the HTTP side's own pool (admin pages and
    /// the API), apart from the workers' so neither can starve the other.
    pub database_http_connections: u32,
    pub app_key: AppKey,
    /// `APP_KEY_PREVIOUS`: the key before a rotation; values sealed under it
    /// still open until `commerce key rotate` re-seals them under `APP_KEY`.
    pub app_key_previous: Option<AppKey>,
    /// Verify Panel TLS certificates (`SSL_VERIFY`).
    pub ssl_verify: bool,
    pub panel_connect_timeout: Duration,
    pub panel_timeout: Duration,
    /// Jobs run at once per job type by one worker process.
    pub worker_concurrency: usize,
    /// Attempts of one action before a transient failure becomes final.
    pub provision_max_attempts: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Servers tested at once by Test all.
    pub sweep_concurrency: usize,
    /// Per-server limit of one Test all probe.
    pub sweep_timeout: Duration,
    pub listen: SocketAddr,
    pub log_format: LogFormat,
    /// Finished job rows older than this are deleted.
    pub job_retention: Duration,
    /// `SECURE_COOKIES`: mark cookies Secure (and name them `__Host-...`).
    /// Unset: Secure unless listening on loopback; see [`Config::cookies_secure`].
    pub secure_cookies: Option<bool>,
    /// `TRUSTED_PROXIES`: peers (CIDRs) whose `X-Forwarded-For` is believed,
    /// for the login throttle's client address.
    pub trusted_proxies: Vec<opterius::Cidr>,
    /// `PANEL_ALLOWED_NETWORKS`: networks Panel calls may reach even though
    /// they are loopback/link-local/..., and where plain http:// is accepted.
    pub panel_networks: opterius::NetworkPolicy,
    /// `HEALTH_SWEEP_INTERVAL_SECS` (default 300; 0 = None = off): every
    /// enabled server is tested on this schedule, by one process at a time.
    pub health_sweep_interval: Option<Duration>,
    /// `ALERT_WEBHOOK_URL`: where admin alerts are POSTed as JSON.
    pub alert_webhook_url: Option<String>,
    /// `ALERT_EMAIL`: where admin alerts are mailed (one message per alert).
    pub alert_email: Option<String>,
    /// `SMTP_URL`: where client mail goes (`smtp://user:pass@host:port`,
    /// `?tls=required` for STARTTLS, `smtps://` for TLS). Unset: files in `mail_dir`.
    pub smtp_url: Option<secrecy::SecretString>,
    /// `MAIL_FROM`: the sender of client mail.
    pub mail_from: String,
    /// `USAGE_SYNC_INTERVAL_SECS`: how often every account's usage is read
    /// (spread over the interval); zero turns the schedule off.
    pub usage_sync_interval: Duration,
    /// `MAIL_DIR`: where messages are written when there is no `SMTP_URL`.
    pub mail_dir: std::path::PathBuf,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_max_connections", &self.database_max_connections)
            .field("database_http_connections", &self.database_http_connections)
            .field("ssl_verify", &self.ssl_verify)
            .field("worker_concurrency", &self.worker_concurrency)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    match get(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("{name}={v:?} is invalid: {e}")),
    }
}

fn flag(get: &impl Fn(&str) -> Option<String>, name: &str, default: bool) -> anyhow::Result<bool> {
    match get(name)
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
    {
        None => Ok(default),
        Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
        Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
        Some(v) => bail!("{name}={v:?} is invalid: use true or false"),
    }
}

impl Config {
    /// Reads the process environment (after loading `.env` if present).
    pub fn from_env() -> anyhow::Result<Self> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads configuration through `get`, so tests need not touch the process env.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let database_url = get("DATABASE_URL")
            .filter(|v| !v.trim().is_empty())
            .context("DATABASE_URL is not set: point it at PostgreSQL, e.g. postgres://postgres@127.0.0.1:5432/commerce")?;
        let app_key = AppKey::parse(get("APP_KEY").as_deref().unwrap_or_default())?;
        let app_key_previous = match get("APP_KEY_PREVIOUS").filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(raw) => Some(
                AppKey::parse(&raw)
                    .map_err(|e| anyhow::anyhow!("APP_KEY_PREVIOUS is invalid: {e}"))?,
            ),
        };
        let secs = |name: &str, default: u64| parse(&get, name, default).map(Duration::from_secs);
        let millis =
            |name: &str, default: u64| parse(&get, name, default).map(Duration::from_millis);
        let log_format = match get("LOG_FORMAT")
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("" | "text" | "pretty") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("LOG_FORMAT={other:?} is invalid: use text or json"),
        };
        let config = Self {
            database_url,
            database_max_connections: parse(&get, "DATABASE_MAX_CONNECTIONS", 20)?,
            database_http_connections: parse(&get, "DATABASE_HTTP_CONNECTIONS", 4)?,
            app_key,
            app_key_previous,
            ssl_verify: flag(&get, "SSL_VERIFY", true)?,
            panel_connect_timeout: secs("PANEL_CONNECT_TIMEOUT_SECS", 5)?,
            panel_timeout: secs("PANEL_TIMEOUT_SECS", 15)?,
            worker_concurrency: parse(&get, "WORKER_CONCURRENCY", 64)?,
            provision_max_attempts: parse(&get, "PROVISION_MAX_ATTEMPTS", 6)?,
            retry_base: millis("RETRY_BASE_MS", 5_000)?,
            retry_max: millis("RETRY_MAX_MS", 600_000)?,
            sweep_concurrency: parse(&get, "SWEEP_CONCURRENCY", 256)?,
            sweep_timeout: secs("SWEEP_TIMEOUT_SECS", 10)?,
            listen: parse(
                &get,
                "LISTEN_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8080)),
            )?,
            log_format,
            job_retention: secs("JOB_RETENTION_SECS", 7 * 24 * 3600)?,
            secure_cookies: match get("SECURE_COOKIES").filter(|v| !v.trim().is_empty()) {
                None => None,
                Some(_) => Some(flag(&get, "SECURE_COOKIES", false)?),
            },
            trusted_proxies: get("TRUSTED_PROXIES")
                .unwrap_or_default()
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(opterius::Cidr::parse)
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("TRUSTED_PROXIES is invalid: {e}"))?,
            panel_networks: opterius::NetworkPolicy::parse_list(
                &get("PANEL_ALLOWED_NETWORKS").unwrap_or_default(),
            )
            .map_err(|e| anyhow::anyhow!("PANEL_ALLOWED_NETWORKS is invalid: {e}"))?,
            health_sweep_interval: Some(secs("HEALTH_SWEEP_INTERVAL_SECS", 300)?)
                .filter(|d| !d.is_zero()),
            alert_webhook_url: match get("ALERT_WEBHOOK_URL").map(|v| v.trim().to_owned()) {
                Some(v) if v.is_empty() => None,
                Some(v) => match reqwest::Url::parse(&v) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => Some(v),
                    _ => {
                        bail!("ALERT_WEBHOOK_URL={v:?} is invalid: use an http:// or https:// URL")
                    }
                },
                None => None,
            },
            alert_email: get("ALERT_EMAIL")
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty()),
            smtp_url: get("SMTP_URL")
                .filter(|v| !v.trim().is_empty())
                .map(|v| secrecy::SecretString::from(v.trim().to_owned())),
            mail_from: get("MAIL_FROM")
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| "Hosting <hosting@localhost>".into()),
            usage_sync_interval: secs("USAGE_SYNC_INTERVAL_SECS", 21_600)?,
            mail_dir: get("MAIL_DIR")
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| "./data/mail".into())
                .into(),
        };
        if let Some(url) = &config.smtp_url {
            crate::mail::check_smtp_url(secrecy::ExposeSecret::expose_secret(url))
                .map_err(|e| anyhow::anyhow!("SMTP_URL is invalid: {e}"))?;
        }
        crate::mail::check_from(&config.mail_from)
            .map_err(|e| anyhow::anyhow!("MAIL_FROM is invalid: {e}"))?;
        if let Some(to) = &config.alert_email {
            crate::mail::check_from(to).map_err(|e| {
                anyhow::anyhow!(
                    "ALERT_EMAIL={to:?} is invalid: {e} (use one address, e.g. ops@example.com)"
                )
            })?;
        }
        for (name, n) in [
            ("DATABASE_MAX_CONNECTIONS", config.database_max_connections),
            (
                "DATABASE_HTTP_CONNECTIONS",
                config.database_http_connections,
            ),
        ] {
            if n == 0 {
                bail!("{name} must be at least 1");
            }
        }
        if config.worker_concurrency == 0 {
            bail!("WORKER_CONCURRENCY must be at least 1");
        }
        if config.provision_max_attempts == 0 {
            bail!("PROVISION_MAX_ATTEMPTS must be at least 1");
        }
        if config.sweep_concurrency == 0 {
            bail!("SWEEP_CONCURRENCY must be at least 1");
        }
        Ok(config)
    }

    /// Whether cookies are Secure: as set, else unless listening on loopback
    /// (a browser reaching a non-loopback address should be doing so over TLS,
    /// through a proxy that terminates it).
    pub fn cookies_secure(&self) -> bool {
        self.secure_cookies
            .unwrap_or(!self.listen.ip().is_loopback())
    }

    /// HTTP settings for Panel calls.
    pub fn client_options(&self) -> opterius::ClientOptions {
        opterius::ClientOptions {
            connect_timeout: self.panel_connect_timeout,
            timeout: self.panel_timeout,
            verify_tls: self.ssl_verify,
            network: self.panel_networks.clone(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const KEY: &str = "base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn defaults_apply_when_only_required_settings_are_given() {
        let c = Config::from_lookup(lookup(&[
            ("DATABASE_URL", "postgres://x"),
            ("APP_KEY", KEY),
        ]))
        .expect("config");
        assert!(c.ssl_verify);
        assert_eq!(c.panel_timeout, Duration::from_secs(15));
        assert_eq!(c.panel_connect_timeout, Duration::from_secs(5));
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(
            (c.database_max_connections, c.database_http_connections),
            (20, 4)
        );
        assert!(!c.cookies_secure(), "loopback by default: plain http works");
        let public = Config::from_lookup(lookup(&[
            ("DATABASE_URL", "postgres://x"),
            ("APP_KEY", KEY),
            ("LISTEN_ADDR", "0.0.0.0:8080"),
        ]))
        .expect("config");
        assert!(public.cookies_secure(), "Secure unless on loopback");
    }

    #[test]
    fn errors_name_the_variable() {
        let e = Config::from_lookup(lookup(&[("APP_KEY", KEY)])).expect_err("missing url");
        assert!(e.to_string().contains("DATABASE_URL"));
        let e = Config::from_lookup(lookup(&[
            ("DATABASE_URL", "p"),
            ("APP_KEY", KEY),
            ("SSL_VERIFY", "maybe"),
        ]))
        .expect_err("bad flag");
        assert!(e.to_string().contains("SSL_VERIFY"));
        let e = Config::from_lookup(lookup(&[
            ("DATABASE_URL", "p"),
            ("APP_KEY", KEY),
            ("PANEL_TIMEOUT_SECS", "x"),
        ]))
        .expect_err("bad number");
        assert!(e.to_string().contains("PANEL_TIMEOUT_SECS"));
        for name in ["DATABASE_MAX_CONNECTIONS", "DATABASE_HTTP_CONNECTIONS"] {
            let e = Config::from_lookup(lookup(&[
                ("DATABASE_URL", "p"),
                ("APP_KEY", KEY),
                (name, "0"),
            ]))
            .expect_err("an empty pool");
            assert_eq!(e.to_string(), format!("{name} must be at least 1"));
        }
        let c = Config::from_lookup(lookup(&[
            ("DATABASE_URL", "p"),
            ("APP_KEY", KEY),
            ("SSL_VERIFY", "false"),
        ]))
        .expect("ok");
        assert!(!c.ssl_verify);
    }

    #[test]
    fn alert_email_is_optional_and_checked() {
        let base = [("DATABASE_URL", "p"), ("APP_KEY", KEY)];
        let c = Config::from_lookup(lookup(&base)).expect("config");
        assert_eq!(c.alert_email, None);
        let c = Config::from_lookup(lookup(&[
            base[0],
            base[1],
            ("ALERT_EMAIL", " ops@example.com "),
        ]))
        .expect("config");
        assert_eq!(c.alert_email.as_deref(), Some("ops@example.com"));
        let e = Config::from_lookup(lookup(&[
            base[0],
            base[1],
            ("ALERT_EMAIL", "not an address"),
        ]))
        .expect_err("bad address");
        assert!(e.to_string().contains("ALERT_EMAIL"), "{e}");
    }
}
