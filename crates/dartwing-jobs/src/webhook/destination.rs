//! Where a webhook may be delivered: public addresses only, unless the operator allowlists a
//! network (`jobs.webhook.allow_private`).
//!
//! The address check runs where the connection is made: names go through [`GuardedResolver`],
//! the HTTP client's resolver, so every connection (each attempt, each retry) connects only to
//! addresses that passed; IP-literal hosts never reach a resolver and are checked by
//! [`DestinationPolicy::check_url`] before each attempt. The URL check also runs at enqueue,
//! so a URL that can be refused without resolving anything is a 422 and no job is stored.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Longest accepted webhook URL, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// IPv4 networks that are not public destinations: "this network", private (RFC 1918),
/// carrier-grade NAT, loopback, link-local (with the cloud metadata address 169.254.169.254),
/// IETF protocol assignments, documentation, the deprecated 6to4 relay, benchmarking,
/// multicast, reserved and broadcast.
const REFUSED_V4: [Ipv4Net; 15] = [
    Ipv4Net::new_assert(Ipv4Addr::new(0, 0, 0, 0), 8),
    Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8),
    Ipv4Net::new_assert(Ipv4Addr::new(100, 64, 0, 0), 10),
    Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8),
    Ipv4Net::new_assert(Ipv4Addr::new(169, 254, 0, 0), 16),
    Ipv4Net::new_assert(Ipv4Addr::new(172, 16, 0, 0), 12),
    Ipv4Net::new_assert(Ipv4Addr::new(192, 0, 0, 0), 24),
    Ipv4Net::new_assert(Ipv4Addr::new(192, 0, 2, 0), 24),
    Ipv4Net::new_assert(Ipv4Addr::new(192, 88, 99, 0), 24),
    Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 0, 0), 16),
    Ipv4Net::new_assert(Ipv4Addr::new(198, 18, 0, 0), 15),
    Ipv4Net::new_assert(Ipv4Addr::new(198, 51, 100, 0), 24),
    Ipv4Net::new_assert(Ipv4Addr::new(203, 0, 113, 0), 24),
    Ipv4Net::new_assert(Ipv4Addr::new(224, 0, 0, 0), 4),
    Ipv4Net::new_assert(Ipv4Addr::new(240, 0, 0, 0), 4),
];

/// Global unicast IPv6 (2000::/3). Everything outside it — unspecified, loopback, IPv4-compatible,
/// discard-only, unique-local (fc00::/7), link-local (fe80::/10), site-local, multicast
/// (ff00::/8) — is refused, except IPv4-mapped and NAT64 addresses, which are judged by the IPv4
/// address they carry.
const GLOBAL_V6: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3);

/// Parts of 2000::/3 that are not public destinations: IETF protocol assignments (with Teredo),
/// documentation (2001:db8::/32 and 3fff::/20) and 6to4, which tunnels to any IPv4 address.
const REFUSED_V6: [Ipv6Net; 4] = [
    Ipv6Net::new_assert(Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
    Ipv6Net::new_assert(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32),
    Ipv6Net::new_assert(Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16),
    Ipv6Net::new_assert(Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),
];

/// The well-known NAT64 prefix (RFC 6052): the last 32 bits are an IPv4 address.
const NAT64: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96);

/// The address a connection really reaches: IPv4-mapped IPv6 (`::ffff:127.0.0.1`) is that IPv4
/// address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Whether `ip` is a public unicast address (not loopback, private, link-local, reserved, …).
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => !REFUSED_V4.iter().any(|net| net.contains(&v4)),
        IpAddr::V6(v6) if NAT64.contains(&v6) => {
            let [.., a, b, c, d] = v6.octets();
            is_public(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
        }
        IpAddr::V6(v6) => GLOBAL_V6.contains(&v6) && !REFUSED_V6.iter().any(|net| net.contains(&v6)),
    }
}

/// Why a webhook URL is refused. The text speaks only of the URL the caller gave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    /// Longer than [`MAX_URL_LEN`].
    #[error("the webhook URL is longer than {MAX_URL_LEN} characters")]
    TooLong,
    /// Not a URL.
    #[error("the webhook URL is not a valid absolute URL")]
    Invalid,
    /// Not http(s), or http in production mode.
    #[error("the webhook URL must use {0}")]
    Scheme(&'static str),
    /// Carries `user:password@`.
    #[error("the webhook URL must not carry a user name or password")]
    Credentials,
    /// No host.
    #[error("the webhook URL needs a host")]
    NoHost,
    /// An IP literal outside the public address space (and not allowlisted).
    #[error("the webhook URL points to a loopback, private, link-local or reserved address")]
    Address,
}

impl UrlRefusal {
    /// Whether the refusal is about the destination's address (rather than the URL's form).
    pub fn is_destination(&self) -> bool {
        matches!(self, UrlRefusal::Address)
    }
}

/// The destination rules of one node: public addresses, plus the operator's allowlisted
/// networks; https only in production mode.
#[derive(Debug, Clone, Default)]
pub struct DestinationPolicy {
    allow: Vec<IpNet>,
    https_only: bool,
}

impl DestinationPolicy {
    /// A policy admitting public addresses and `allow`; `https_only` refuses `http://` URLs.
    pub fn new(allow: Vec<IpNet>, https_only: bool) -> Self {
        Self { allow, https_only }
    }

    /// Whether only `https://` URLs are accepted (production mode).
    pub fn https_only(&self) -> bool {
        self.https_only
    }

    /// Whether a connection to `ip` is permitted.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allow.iter().any(|net| net.contains(&ip)) || is_public(ip)
    }

    /// Parses and checks a webhook URL: length, http(s) (https only in production), no
    /// credentials, a host, and for an IP-literal host the address itself. The URL parser
    /// normalizes decimal, octal and hex IPv4 spellings (`http://2130706433/`,
    /// `http://0177.0.0.1/`) to the address they mean, so those are judged as that address.
    /// Names are judged when they are resolved, at every connection.
    pub fn check_url(&self, url: &str) -> Result<Url, UrlRefusal> {
        if url.len() > MAX_URL_LEN {
            return Err(UrlRefusal::TooLong);
        }
        let parsed = Url::parse(url).map_err(|_| UrlRefusal::Invalid)?;
        match (parsed.scheme(), self.https_only) {
            ("https", _) | ("http", false) => {}
            (_, true) => return Err(UrlRefusal::Scheme("https")),
            (_, false) => return Err(UrlRefusal::Scheme("http or https")),
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(UrlRefusal::Credentials);
        }
        let ip = match parsed.host() {
            None => return Err(UrlRefusal::NoHost),
            Some(url::Host::Domain("")) => return Err(UrlRefusal::NoHost),
            Some(url::Host::Domain(_)) => None,
            Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        };
        if ip.is_some_and(|ip| !self.permits(ip)) {
            return Err(UrlRefusal::Address);
        }
        Ok(parsed)
    }
}

/// The error a resolution ends with when every address of the name was refused; delivery
/// finds it in the client error's source chain.
#[derive(Debug, thiserror::Error)]
#[error("refused destination")]
pub struct RefusedDestination;

/// The HTTP client's resolver: resolves with the system resolver, then keeps only the addresses
/// the policy permits. A name with no permitted address fails with [`RefusedDestination`], so
/// the client never connects to it.
pub struct GuardedResolver {
    policy: Arc<DestinationPolicy>,
}

impl GuardedResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: Arc<DestinationPolicy>) -> Self {
        Self { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let permitted: Vec<SocketAddr> = resolved.filter(|addr| policy.permits(addr.ip())).collect();
            if permitted.is_empty() {
                return Err(Box::new(RefusedDestination) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_not_public() {
        for refused in [
            "0.0.0.0",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.1.2.3",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.251",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "100::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "2001::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "3fff::1",
        ] {
            assert!(!is_public(ip(refused)), "{refused} must be refused");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "198.17.255.255",
            "223.255.255.255",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2606:4700:4700::1111",
            "2a00:1450:4001:81b::200e",
        ] {
            assert!(is_public(ip(public)), "{public} is public");
        }
    }

    #[test]
    fn the_allowlist_opens_only_its_networks() {
        let policy = DestinationPolicy::new(vec!["127.0.0.1/32".parse().unwrap()], false);
        assert!(policy.permits(ip("127.0.0.1")));
        assert!(
            policy.permits(ip("::ffff:127.0.0.1")),
            "mapped form of an allowed address"
        );
        assert!(!policy.permits(ip("127.0.0.2")));
        assert!(!policy.permits(ip("::1")));
        assert!(!policy.permits(ip("10.0.0.1")));
        assert!(policy.permits(ip("8.8.8.8")));
    }

    #[test]
    fn urls_are_checked_after_normalization() {
        let policy = DestinationPolicy::default();
        for (url, refusal) in [
            ("http://127.0.0.1/", UrlRefusal::Address),
            ("http://2130706433/", UrlRefusal::Address),
            ("http://0177.0.0.1/", UrlRefusal::Address),
            ("http://0x7f.1/", UrlRefusal::Address),
            ("http://127.1/", UrlRefusal::Address),
            ("http://[::1]:8080/", UrlRefusal::Address),
            ("http://[::ffff:127.0.0.1]/", UrlRefusal::Address),
            ("http://[::ffff:7f00:1]/", UrlRefusal::Address),
            ("http://169.254.169.254/latest/meta-data/", UrlRefusal::Address),
            ("http://10.1.2.3/", UrlRefusal::Address),
            ("http://192.168.0.1/", UrlRefusal::Address),
            ("http://0.0.0.0/", UrlRefusal::Address),
            ("http://user:pass@example.com/", UrlRefusal::Credentials),
            ("http://user@example.com/", UrlRefusal::Credentials),
            ("ftp://example.com/", UrlRefusal::Scheme("http or https")),
            ("file:///etc/passwd", UrlRefusal::Scheme("http or https")),
            ("gopher://127.0.0.1/", UrlRefusal::Scheme("http or https")),
            ("example.com/hook", UrlRefusal::Invalid),
            ("http://", UrlRefusal::Invalid),
        ] {
            assert_eq!(policy.check_url(url).err(), Some(refusal), "{url}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(policy.check_url(&long).err(), Some(UrlRefusal::TooLong));
        assert!(policy.check_url("https://hooks.example.com:8443/in?x=1").is_ok());
        assert!(
            policy.check_url("http://localhost:9/").is_ok(),
            "names are judged when resolved"
        );
        let production = DestinationPolicy::new(Vec::new(), true);
        assert_eq!(
            production.check_url("http://hooks.example.com/").err(),
            Some(UrlRefusal::Scheme("https"))
        );
        assert!(production.check_url("https://hooks.example.com/").is_ok());
    }

    #[tokio::test]
    async fn the_resolver_drops_refused_addresses() {
        let refusing = GuardedResolver::new(Arc::new(DestinationPolicy::default()));
        let name: Name = "localhost".parse().unwrap();
        let error = refusing.resolve(name).await.err().expect("localhost is refused");
        assert!(error.downcast_ref::<RefusedDestination>().is_some(), "{error}");

        let allowing = GuardedResolver::new(Arc::new(DestinationPolicy::new(
            vec!["127.0.0.0/8".parse().unwrap()],
            false,
        )));
        let name: Name = "localhost".parse().unwrap();
        let addrs: Vec<SocketAddr> = allowing.resolve(name).await.expect("allowed").collect();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.is_ipv4()), "{addrs:?}");
    }
}
