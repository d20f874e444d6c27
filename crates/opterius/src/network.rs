//! Where a Panel call may go: the address policy (`PANEL_ALLOWED_NETWORKS`),
//! checked on IP-literal hosts before a request is sent and on every resolved
//! address at connect time (a resolver wrapper, so DNS rebinding gains nothing).
//!
//! Loopback, link-local (cloud metadata included), unspecified, broadcast and
//! multicast addresses are refused unless inside an allowed network; plain
//! `http://` is accepted only for addresses inside an allowed network.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use crate::api_url::ApiUrl;
use crate::error::{ErrorKind, PanelError};

/// One network in CIDR notation (`127.0.0.0/8`, `fd00::/8`, or a bare address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let (addr, prefix) = raw.split_once('/').unwrap_or((raw, ""));
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{raw:?} is not an IP network (use CIDR, e.g. 10.0.0.0/8)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{raw:?} has an invalid prefix length"))?
        };
        Ok(Self {
            addr: canonical(addr),
            prefix,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// IPv4-mapped IPv6 addresses are checked as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Why an address is special, or None for ordinary (public or private) space.
fn special(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_link_local() {
        Some("link-local, where cloud metadata services live")
    } else if ip.is_unspecified() || ip.octets()[0] == 0 {
        Some("unspecified")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.is_broadcast() {
        Some("broadcast")
    } else {
        None
    }
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.segments()[0] & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else {
        None
    }
}

/// A Panel address the policy refuses; raised before any connection is made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host} resolves to {ip}, {reason}")]
pub struct AddressRefused {
    pub host: String,
    pub ip: IpAddr,
    pub reason: String,
}

impl AddressRefused {
    pub(crate) fn to_panel_error(&self) -> PanelError {
        PanelError::new(
            ErrorKind::Config,
            format!("refused to contact the Panel: {self}"),
        )
        .with_hint(
            "Commerce does not call loopback, link-local (cloud metadata), multicast or unspecified addresses, nor plain http:// outside PANEL_ALLOWED_NETWORKS. Point api_url at the Panel's real https:// address, or, for a Panel that really is on such a network, add that network to PANEL_ALLOWED_NETWORKS.",
        )
    }
}

/// The address policy of one process; cheap to clone (shared state inside).
#[derive(Clone, Default)]
pub struct NetworkPolicy {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    allowed: Vec<Cidr>,
    /// Host names used with `http://`: their addresses must be inside an
    /// allowed network too, at connect time (so rebinding them gains nothing).
    plaintext_hosts: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for NetworkPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkPolicy")
            .field("allowed", &self.inner.allowed)
            .finish_non_exhaustive()
    }
}

impl NetworkPolicy {
    pub fn new(allowed: Vec<Cidr>) -> Self {
        Self {
            inner: Arc::new(Inner {
                allowed,
                plaintext_hosts: Mutex::default(),
            }),
        }
    }

    /// Parses a comma list of CIDRs (`PANEL_ALLOWED_NETWORKS`); empty is none.
    pub fn parse_list(raw: &str) -> Result<Self, String> {
        let allowed = raw
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Cidr::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(allowed))
    }

    pub fn allowed(&self) -> &[Cidr] {
        &self.inner.allowed
    }

    fn inside_allowed(&self, ip: IpAddr) -> bool {
        self.inner.allowed.iter().any(|n| n.contains(ip))
    }

    /// Whether a call may connect to `ip` (for `host`), over plain HTTP or not.
    pub fn check(&self, host: &str, ip: IpAddr, plaintext: bool) -> Result<(), AddressRefused> {
        if self.inside_allowed(ip) {
            return Ok(());
        }
        let refuse = |reason: String| AddressRefused {
            host: host.to_owned(),
            ip,
            reason,
        };
        if let Some(what) = special(ip) {
            return Err(refuse(format!(
                "a {what} address outside PANEL_ALLOWED_NETWORKS"
            )));
        }
        if plaintext {
            return Err(refuse(
                "and plain http:// is only allowed inside PANEL_ALLOWED_NETWORKS: use https://"
                    .into(),
            ));
        }
        Ok(())
    }

    fn is_plaintext_host(&self, host: &str) -> bool {
        self.inner
            .plaintext_hosts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&host.to_ascii_lowercase())
    }

    /// Checks a request's destination before it is sent: IP-literal hosts here
    /// (reqwest resolves no literal), host names at connect time by `resolver`.
    pub fn check_url(&self, base: &ApiUrl) -> Result<(), PanelError> {
        let url = reqwest::Url::parse(base.as_str())
            .map_err(|e| PanelError::new(ErrorKind::Config, format!("bad api_url: {e}")))?;
        let plaintext = url.scheme() != "https";
        let host = url.host_str().unwrap_or_default();
        if host.is_empty() {
            return Err(PanelError::new(ErrorKind::Config, "api_url has no host"));
        }
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        if literal.is_none() && plaintext {
            self.inner
                .plaintext_hosts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(host.to_ascii_lowercase());
        }
        match literal {
            Some(ip) => self
                .check(host, ip, plaintext)
                .map_err(|e| e.to_panel_error()),
            None => Ok(()),
        }
    }

    /// Wraps `inner` (or the system resolver) so every resolved address is
    /// checked when a connection is opened.
    pub fn resolver(
        &self,
        inner: Option<Arc<dyn reqwest::dns::Resolve>>,
    ) -> Arc<dyn reqwest::dns::Resolve> {
        Arc::new(GuardedResolver {
            inner,
            policy: self.clone(),
        })
    }
}

struct GuardedResolver {
    inner: Option<Arc<dyn reqwest::dns::Resolve>>,
    policy: NetworkPolicy,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let inner = self.inner.clone();
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = match inner {
                Some(r) => r.resolve(name).await?.collect(),
                None => tokio::net::lookup_host((host.as_str(), 0))
                    .await
                    .map_err(|e| Box::new(e) as BoxError)?
                    .collect(),
            };
            let plaintext = policy.is_plaintext_host(&host);
            let mut refused = None;
            let ok: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| match policy.check(&host, a.ip(), plaintext) {
                    Ok(()) => true,
                    Err(e) => {
                        refused.get_or_insert(e);
                        false
                    }
                })
                .collect();
            match (ok.is_empty(), refused) {
                (true, Some(e)) => Err(Box::new(e) as BoxError),
                _ => Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn cidrs_parse_and_match() {
        let net = Cidr::parse("127.0.0.0/8").expect("cidr");
        assert!(net.contains(ip("127.1.2.3")));
        assert!(net.contains(ip("::ffff:127.0.0.1")));
        assert!(!net.contains(ip("128.0.0.1")));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope").is_err());
        assert!(
            Cidr::parse("0.0.0.0/0")
                .expect("all")
                .contains(ip("8.8.8.8"))
        );
        assert!(
            Cidr::parse("fd00::/8")
                .expect("ula")
                .contains(ip("fd12::1"))
        );
        assert!(
            Cidr::parse("192.0.2.7")
                .expect("one")
                .contains(ip("192.0.2.7"))
        );
    }

    #[test]
    fn special_space_is_refused_unless_allowed() {
        let strict = NetworkPolicy::default();
        for bad in [
            "127.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "fe80::1",
            "::ffff:169.254.169.254",
        ] {
            assert!(strict.check("h", ip(bad), false).is_err(), "{bad}");
        }
        for good in ["10.1.2.3", "192.168.1.1", "8.8.8.8", "fd00::1"] {
            assert!(strict.check("h", ip(good), false).is_ok(), "{good}");
        }
        let local = NetworkPolicy::parse_list("127.0.0.0/8, ::1/128").expect("list");
        assert!(local.check("h", ip("127.0.0.1"), true).is_ok());
        assert!(local.check("h", ip("169.254.169.254"), false).is_err());
    }

    #[test]
    fn plain_http_needs_an_allowed_network() {
        let p = NetworkPolicy::parse_list("10.0.0.0/8").expect("list");
        assert!(p.check("h", ip("10.0.0.5"), true).is_ok());
        let e = p.check("h", ip("192.168.1.5"), true).expect_err("http");
        assert!(e.to_string().contains("https://"), "{e}");
        assert!(p.check("h", ip("192.168.1.5"), false).is_ok());
    }

    #[test]
    fn ip_literal_urls_are_checked_before_sending() {
        let strict = NetworkPolicy::default();
        let e = strict
            .check_url(&ApiUrl::parse("https://169.254.169.254/latest").expect("url"))
            .expect_err("metadata");
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(e.message.contains("169.254.169.254"), "{}", e.message);
        assert!(
            strict
                .check_url(&ApiUrl::parse("https://[::1]:8443").expect("url"))
                .is_err()
        );
        assert!(
            strict
                .check_url(&ApiUrl::parse("https://203.0.113.9").expect("url"))
                .is_ok()
        );
        strict
            .check_url(&ApiUrl::parse("http://panel.example.com").expect("url"))
            .expect("names are checked when resolved");
        assert!(strict.is_plaintext_host("PANEL.example.com"));
    }
}
