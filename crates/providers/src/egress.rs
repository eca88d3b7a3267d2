//! Where provider calls may go. Tenants name providers by `base_url`, so every address a
//! call would connect to is checked against the operator's [`EgressPolicy`] first:
//!
//! - an address of one of the node's own listeners (http, raft, cluster, gossip) is
//!   refused unless a `host:port` rule names it;
//! - a special address ([`special`]: loopback, private, unique local, link-local, cloud
//!   metadata, CGNAT, multicast, unspecified, broadcast, reserved, benchmarking,
//!   documentation, and IPv6 forms embedding such an IPv4 address) is refused unless a
//!   CIDR rule contains it or a `host:port` rule names the URL's host and port;
//! - every other address is allowed.
//!
//! Names are resolved by [`PolicyResolver`], which checks every resolved address and
//! refuses the whole lookup if any is denied, so the client connects to exactly the
//! addresses that were checked (a DNS answer mixing a public and a loopback address, or
//! rebinding between check and connect, gets nothing through). IP-literal hosts are never
//! given to a resolver: the provider checks them itself (see [`crate::provider`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Reason: one of the node's own listeners.
pub const OWN_LISTENER: &str = "one of this node's own listeners";
/// Reason: 127.0.0.0/8 or ::1.
pub const LOOPBACK: &str = "loopback address";
/// Reason: 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16.
pub const PRIVATE: &str = "private address";
/// Reason: fc00::/7.
pub const UNIQUE_LOCAL: &str = "unique local address";
/// Reason: 169.254.0.0/16 or fe80::/10.
pub const LINK_LOCAL: &str = "link-local address";
/// Reason: fec0::/10 (deprecated site-local).
pub const SITE_LOCAL: &str = "site-local address";
/// Reason: 169.254.169.254 or fd00:ec2::254.
pub const METADATA: &str = "cloud metadata address";
/// Reason: 100.64.0.0/10.
pub const CGNAT: &str = "shared (cgnat) address";
/// Reason: 224.0.0.0/4 or ff00::/8.
pub const MULTICAST: &str = "multicast address";
/// Reason: 0.0.0.0/8 or ::.
pub const UNSPECIFIED: &str = "unspecified address";
/// Reason: 255.255.255.255.
pub const BROADCAST: &str = "broadcast address";
/// Reason: 240.0.0.0/4 and other reserved or special-purpose ranges.
pub const RESERVED: &str = "reserved address";
/// Reason: 198.18.0.0/15 or 2001:2::/48.
pub const BENCHMARKING: &str = "benchmarking address";
/// Reason: 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32 or 3fff::/20.
pub const DOCUMENTATION: &str = "documentation address";

/// IPv4 ranges refused by default, most specific first.
const V4_RANGES: [(Ipv4Addr, u8, &str); 17] = [
    (Ipv4Addr::new(169, 254, 169, 254), 32, METADATA),
    (Ipv4Addr::new(255, 255, 255, 255), 32, BROADCAST),
    (Ipv4Addr::new(0, 0, 0, 0), 8, UNSPECIFIED),
    (Ipv4Addr::new(127, 0, 0, 0), 8, LOOPBACK),
    (Ipv4Addr::new(10, 0, 0, 0), 8, PRIVATE),
    (Ipv4Addr::new(172, 16, 0, 0), 12, PRIVATE),
    (Ipv4Addr::new(192, 168, 0, 0), 16, PRIVATE),
    (Ipv4Addr::new(169, 254, 0, 0), 16, LINK_LOCAL),
    (Ipv4Addr::new(100, 64, 0, 0), 10, CGNAT),
    (Ipv4Addr::new(192, 0, 2, 0), 24, DOCUMENTATION),
    (Ipv4Addr::new(198, 51, 100, 0), 24, DOCUMENTATION),
    (Ipv4Addr::new(203, 0, 113, 0), 24, DOCUMENTATION),
    // IETF protocol assignments (some clouds serve metadata from 192.0.0.192).
    (Ipv4Addr::new(192, 0, 0, 0), 24, RESERVED),
    (Ipv4Addr::new(198, 18, 0, 0), 15, BENCHMARKING),
    // The deprecated 6to4 relay anycast prefix.
    (Ipv4Addr::new(192, 88, 99, 0), 24, RESERVED),
    (Ipv4Addr::new(224, 0, 0, 0), 4, MULTICAST),
    (Ipv4Addr::new(240, 0, 0, 0), 4, RESERVED),
];

/// IPv6 ranges refused by default (after the embedded-IPv4 forms), most specific first.
const V6_RANGES: [(Ipv6Addr, u8, &str); 12] = [
    (
        Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
        128,
        METADATA,
    ),
    // Local-use NAT64 (RFC 8215): translated by a gateway inside the network.
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48, RESERVED),
    // Discard-only (RFC 6666).
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64, RESERVED),
    // Teredo tunnels.
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32, RESERVED),
    (Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0), 48, BENCHMARKING),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        DOCUMENTATION,
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        DOCUMENTATION,
    ),
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, UNIQUE_LOCAL),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, LINK_LOCAL),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, SITE_LOCAL),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, MULTICAST),
    // Everything else under ::/8 that is not handled above (::, ::1, embedded IPv4).
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 8, RESERVED),
];

fn mask4(prefix_len: u8) -> u32 {
    match prefix_len {
        0 => 0,
        n => u32::MAX << (32 - u32::from(n.min(32))),
    }
}

fn mask6(prefix_len: u8) -> u128 {
    match prefix_len {
        0 => 0,
        n => u128::MAX << (128 - u32::from(n.min(128))),
    }
}

fn in_v4(ip: Ipv4Addr, net: Ipv4Addr, prefix_len: u8) -> bool {
    let m = mask4(prefix_len);
    u32::from(ip) & m == u32::from(net) & m
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix_len: u8) -> bool {
    let m = mask6(prefix_len);
    u128::from(ip) & m == u128::from(net) & m
}

/// Why `ip` is refused by default, or `None` for an ordinary (public unicast) address.
/// IPv4-mapped (`::ffff:a.b.c.d`), IPv4-translated (`::ffff:0:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`) and 6to4 (`2002::/16`)
/// addresses are judged by the IPv4 address they embed.
pub fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    V4_RANGES
        .iter()
        .find(|(net, len, _)| in_v4(ip, *net, *len))
        .map(|(_, _, why)| *why)
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip == Ipv6Addr::UNSPECIFIED {
        return Some(UNSPECIFIED);
    }
    if ip == Ipv6Addr::LOCALHOST {
        return Some(LOOPBACK);
    }
    if let Some(v4) = embedded_v4(ip) {
        return special_v4(v4);
    }
    V6_RANGES
        .iter()
        .find(|(net, len, _)| in_v6(ip, *net, *len))
        .map(|(_, _, why)| *why)
}

/// The IPv4 address an IPv6 address stands for (mapped, translated, compatible, NAT64,
/// 6to4), if it is one of those forms.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    let mapped = Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0);
    let translated = Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, 0, 0);
    let compatible = Ipv6Addr::UNSPECIFIED;
    let nat64 = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0);
    let six_to_four = Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0);
    if in_v6(ip, mapped, 96)
        || in_v6(ip, translated, 96)
        || in_v6(ip, compatible, 96)
        || in_v6(ip, nat64, 96)
    {
        return Some(low32);
    }
    if in_v6(ip, six_to_four, 16) {
        return Some(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32));
    }
    None
}

/// `ip` with an IPv4-mapped IPv6 address turned into its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        IpAddr::V4(_) => ip,
    }
}

/// `host` without the brackets of an IPv6 literal (`[::1]` -> `::1`).
fn unbracket(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// One `providers.egress.allow` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EgressRule {
    /// Addresses in a network (`127.0.0.0/8`, `::1/128`; a bare address is a /32 or /128).
    Cidr {
        /// The network address (host bits cleared).
        network: IpAddr,
        /// Prefix length: 0..=32 for IPv4, 0..=128 for IPv6.
        prefix_len: u8,
    },
    /// One host as written in a provider URL, and a port (`localhost:11434`).
    HostPort {
        /// Lowercase host name or IP address (IPv6 without brackets).
        host: String,
        /// Port.
        port: u16,
    },
}

impl EgressRule {
    /// Whether this CIDR rule contains `ip` (always false for a `host:port` rule).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self, ip) {
            (
                Self::Cidr {
                    network: IpAddr::V4(net),
                    prefix_len,
                },
                IpAddr::V4(ip),
            ) => in_v4(ip, *net, *prefix_len),
            (
                Self::Cidr {
                    network: IpAddr::V6(net),
                    prefix_len,
                },
                IpAddr::V6(ip),
            ) => in_v6(ip, *net, *prefix_len),
            _ => false,
        }
    }

    /// Whether this `host:port` rule names `host` (as written in the URL, either case,
    /// IPv6 with or without brackets) and `port` (always false for a CIDR rule).
    pub fn names(&self, host: &str, port: u16) -> bool {
        match self {
            Self::HostPort {
                host: rule_host,
                port: rule_port,
            } => {
                if *rule_port != port {
                    return false;
                }
                let host = unbracket(host);
                match (rule_host.parse::<IpAddr>(), host.parse::<IpAddr>()) {
                    (Ok(a), Ok(b)) => canonical(a) == canonical(b),
                    _ => rule_host.eq_ignore_ascii_case(host),
                }
            }
            Self::Cidr { .. } => false,
        }
    }
}

impl fmt::Display for EgressRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cidr {
                network,
                prefix_len,
            } => write!(f, "{network}/{prefix_len}"),
            Self::HostPort { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Self::HostPort { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// A `providers.egress.allow` entry that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("providers.egress.allow entry {entry:?}: {problem}")]
pub struct EgressConfigError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub problem: String,
}

fn bad(entry: &str, problem: impl Into<String>) -> EgressConfigError {
    EgressConfigError {
        entry: entry.to_string(),
        problem: problem.into(),
    }
}

fn parse_rule(entry: &str) -> Result<EgressRule, EgressConfigError> {
    let s = entry.trim();
    if s.is_empty() {
        return Err(bad(entry, "is empty"));
    }
    if let Some((net, len)) = s.split_once('/') {
        let ip: IpAddr = unbracket(net).parse().map_err(|_| {
            bad(
                entry,
                "is not a cidr: the part before '/' is not an ip address",
            )
        })?;
        let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
        let prefix_len = len
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| bad(entry, format!("the prefix length must be 0 to {max}")))?;
        let network = match ip {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask4(prefix_len))),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask6(prefix_len))),
        };
        return Ok(EgressRule::Cidr {
            network,
            prefix_len,
        });
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        let prefix_len = if ip.is_ipv4() { 32 } else { 128 };
        return Ok(EgressRule::Cidr {
            network: ip,
            prefix_len,
        });
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest
            .split_once("]:")
            .ok_or_else(|| bad(entry, "expected [ipv6 address]:port"))?;
        let ip: Ipv6Addr = h
            .parse()
            .map_err(|_| bad(entry, "the part in brackets is not an ipv6 address"))?;
        (ip.to_string(), p)
    } else {
        let (h, p) = s.rsplit_once(':').ok_or_else(|| {
            bad(
                entry,
                "expected a cidr (10.0.0.0/8), an ip address (10.1.2.3) or host:port (localhost:11434)",
            )
        })?;
        if h.contains(':') {
            return Err(bad(
                entry,
                "an ipv6 address with a port must be written [address]:port",
            ));
        }
        if h.is_empty()
            || !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return Err(bad(entry, "the host is not a valid host name"));
        }
        (h.to_ascii_lowercase(), p)
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| bad(entry, "the port must be 1 to 65535"))?;
    Ok(EgressRule::HostPort { host, port })
}

/// A refused connection: which address, and why. Never carries response content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("egress to {target} refused: {reason} (allow it with providers.egress.allow)")]
pub struct EgressDenied {
    /// The host as written in the URL.
    pub host: String,
    /// The address that would have been connected to.
    pub addr: SocketAddr,
    /// Why (one of this module's reason constants).
    pub reason: &'static str,
    /// `addr`, or `host (addr)` when the host is a name.
    pub target: String,
}

impl EgressDenied {
    fn new(host: &str, addr: SocketAddr, reason: &'static str) -> Self {
        // For a name, only the name and port: the resolved address would tell a tenant
        // where internal names point. The log has the address (`addr`).
        let target = if unbracket(host).parse::<IpAddr>().is_ok() {
            addr.to_string()
        } else {
            format!("{host}:{}", addr.port())
        };
        Self {
            host: host.to_string(),
            addr,
            reason,
            target,
        }
    }
}

/// Which provider addresses may be connected to. The default refuses every special
/// address and names no own listeners.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Exceptions to the default refusals (`providers.egress.allow`).
    pub allow: Vec<EgressRule>,
    /// The node's own listeners (http, raft, cluster, gossip); include advertised
    /// addresses too when listeners are bound to `0.0.0.0`/`::` and private ranges are
    /// allowed by CIDR.
    pub own_listeners: Vec<SocketAddr>,
}

impl EgressPolicy {
    /// A policy with these exceptions and own listeners.
    pub fn new(allow: Vec<EgressRule>, own_listeners: Vec<SocketAddr>) -> Self {
        Self {
            allow,
            own_listeners,
        }
    }

    /// Reads `providers.egress.allow` entries: CIDRs (`127.0.0.0/8`, `::1/128`), bare
    /// addresses (`10.1.2.3` = /32) or `host:port` (`localhost:11434`, `[::1]:8000`).
    pub fn parse(entries: &[String]) -> Result<Vec<EgressRule>, EgressConfigError> {
        entries.iter().map(|e| parse_rule(e)).collect()
    }

    /// Whether a `host:port` rule names `host` and `port`.
    fn named(&self, host: &str, port: u16) -> bool {
        self.allow.iter().any(|r| r.names(host, port))
    }

    /// Whether a CIDR rule contains `ip` (or its IPv4 form, for an IPv4-mapped address).
    fn cidr_allows(&self, ip: IpAddr) -> bool {
        let canon = canonical(ip);
        self.allow
            .iter()
            .any(|r| r.contains(ip) || r.contains(canon))
    }

    /// Whether `addr` may reach one of the node's own listeners: the same address, or the
    /// same port on a special address when the listener is bound to `0.0.0.0`/`::`, or
    /// the same port on a loopback/unspecified address when it is bound to loopback.
    fn is_own_listener(&self, addr: SocketAddr) -> bool {
        let ip = canonical(addr.ip());
        let why = special(ip);
        self.own_listeners.iter().any(|l| {
            if l.port() != addr.port() {
                return false;
            }
            let lip = canonical(l.ip());
            if lip == ip {
                return true;
            }
            if lip.is_unspecified() {
                return why.is_some();
            }
            if lip.is_loopback() {
                return matches!(why, Some(LOOPBACK) | Some(UNSPECIFIED));
            }
            false
        })
    }

    /// Whether a call to `host` (as written in the URL) may connect to `addr`.
    pub fn check(&self, host: &str, addr: SocketAddr) -> Result<(), EgressDenied> {
        let named = self.named(host, addr.port());
        if self.is_own_listener(addr) {
            return if named {
                Ok(())
            } else {
                Err(EgressDenied::new(host, addr, OWN_LISTENER))
            };
        }
        match special(addr.ip()) {
            None => Ok(()),
            Some(_) if named || self.cidr_allows(addr.ip()) => Ok(()),
            Some(reason) => Err(EgressDenied::new(host, addr, reason)),
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A `reqwest` resolver for one provider's host and port: resolves with the system
/// resolver, refuses the whole lookup if any address is denied, and returns only the
/// checked addresses (the client then connects to exactly those).
#[derive(Debug, Clone)]
pub struct PolicyResolver {
    policy: Arc<EgressPolicy>,
    host: String,
    port: u16,
}

impl PolicyResolver {
    /// A resolver for `host` (a name, as written in the URL) and `port`.
    pub fn new(policy: Arc<EgressPolicy>, host: impl Into<String>, port: u16) -> Self {
        Self {
            policy,
            host: host.into(),
            port,
        }
    }

    /// Resolves `name` and checks every address (what the client's lookups run).
    pub async fn lookup(&self, name: &str) -> Result<Vec<SocketAddr>, BoxError> {
        // The client only ever connects to the provider's own host (no redirects, no
        // proxies): any other name is a bug, and is not resolved.
        if !name.eq_ignore_ascii_case(&self.host) {
            return Err(format!(
                "refusing to resolve {name:?}: this client only connects to {:?}",
                self.host
            )
            .into());
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, self.port)).await?.collect();
        if addrs.is_empty() {
            return Err(format!("{name} resolved to no addresses").into());
        }
        for addr in &addrs {
            self.policy.check(&self.host, *addr)?;
        }
        Ok(addrs)
    }
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        let name = name.as_str().to_string();
        Box::pin(async move {
            let addrs = this.lookup(&name).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok::<reqwest::dns::Addrs, BoxError>(addrs)
        })
    }
}

/// The [`EgressDenied`] somewhere in `err`'s source chain, if a policy check caused it.
pub fn find_denied<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a EgressDenied> {
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(d) = e.downcast_ref::<EgressDenied>() {
            return Some(d);
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn rules(entries: &[&str]) -> Vec<EgressRule> {
        let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        EgressPolicy::parse(&entries).unwrap()
    }

    #[test]
    fn every_special_class_is_named() {
        let cases = [
            ("127.0.0.1", LOOPBACK),
            ("127.255.255.254", LOOPBACK),
            ("::1", LOOPBACK),
            ("10.0.0.1", PRIVATE),
            ("10.255.255.255", PRIVATE),
            ("172.16.0.1", PRIVATE),
            ("172.31.255.255", PRIVATE),
            ("192.168.1.1", PRIVATE),
            ("fc00::1", UNIQUE_LOCAL),
            ("fd12:3456::1", UNIQUE_LOCAL),
            ("169.254.1.1", LINK_LOCAL),
            ("fe80::1", LINK_LOCAL),
            ("febf::1", LINK_LOCAL),
            ("fec0::1", SITE_LOCAL),
            ("169.254.169.254", METADATA),
            ("fd00:ec2::254", METADATA),
            ("100.64.0.1", CGNAT),
            ("100.127.255.255", CGNAT),
            ("100.100.100.200", CGNAT),
            ("224.0.0.1", MULTICAST),
            ("239.255.255.250", MULTICAST),
            ("ff02::1", MULTICAST),
            ("0.0.0.0", UNSPECIFIED),
            ("0.1.2.3", UNSPECIFIED),
            ("::", UNSPECIFIED),
            ("255.255.255.255", BROADCAST),
            ("240.0.0.1", RESERVED),
            ("255.255.255.254", RESERVED),
            ("192.0.0.192", RESERVED),
            ("192.88.99.1", RESERVED),
            ("100::1", RESERVED),
            ("2001::1", RESERVED),
            ("64:ff9b:1::1", RESERVED),
            ("198.18.0.1", BENCHMARKING),
            ("198.19.255.255", BENCHMARKING),
            ("2001:2::1", BENCHMARKING),
            ("192.0.2.1", DOCUMENTATION),
            ("198.51.100.1", DOCUMENTATION),
            ("203.0.113.1", DOCUMENTATION),
            ("2001:db8::1", DOCUMENTATION),
            ("3fff::1", DOCUMENTATION),
        ];
        for (addr, why) in cases {
            assert_eq!(special(ip(addr)), Some(why), "{addr}");
        }
    }

    #[test]
    fn ipv6_forms_are_judged_by_their_embedded_ipv4() {
        let cases = [
            ("::ffff:127.0.0.1", Some(LOOPBACK)),
            ("::ffff:169.254.169.254", Some(METADATA)),
            ("::ffff:10.0.0.1", Some(PRIVATE)),
            ("::ffff:8.8.8.8", None),
            ("::ffff:0:127.0.0.1", Some(LOOPBACK)),
            ("::127.0.0.1", Some(LOOPBACK)),
            ("::10.1.2.3", Some(PRIVATE)),
            ("::8.8.8.8", None),
            ("64:ff9b::127.0.0.1", Some(LOOPBACK)),
            ("64:ff9b::a9fe:a9fe", Some(METADATA)),
            ("64:ff9b::8.8.8.8", None),
            ("2002:7f00:1::", Some(LOOPBACK)),
            ("2002:a9fe:a9fe::1", Some(METADATA)),
            ("2002:c0a8:101::1", Some(PRIVATE)),
            ("2002:808:808::1", None),
        ];
        for (addr, want) in cases {
            assert_eq!(special(ip(addr)), want, "{addr}");
        }
    }

    #[test]
    fn public_addresses_are_ordinary() {
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.255.255",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "2001:4860:4860::8888",
        ] {
            assert_eq!(special(ip(addr)), None, "{addr}");
        }
    }

    #[test]
    fn rules_parse_and_bad_entries_are_named() {
        assert_eq!(
            rules(&[
                "127.0.0.0/8",
                "::1/128",
                "10.1.2.3",
                " 10.9.9.9/8 ",
                "[::1]/128"
            ]),
            vec![
                EgressRule::Cidr {
                    network: ip("127.0.0.0"),
                    prefix_len: 8
                },
                EgressRule::Cidr {
                    network: ip("::1"),
                    prefix_len: 128
                },
                EgressRule::Cidr {
                    network: ip("10.1.2.3"),
                    prefix_len: 32
                },
                EgressRule::Cidr {
                    network: ip("10.0.0.0"),
                    prefix_len: 8
                },
                EgressRule::Cidr {
                    network: ip("::1"),
                    prefix_len: 128
                },
            ]
        );
        assert_eq!(
            rules(&["LocalHost:11434", "127.0.0.1:8000", "[::1]:8000"]),
            vec![
                EgressRule::HostPort {
                    host: "localhost".into(),
                    port: 11434
                },
                EgressRule::HostPort {
                    host: "127.0.0.1".into(),
                    port: 8000
                },
                EgressRule::HostPort {
                    host: "::1".into(),
                    port: 8000
                },
            ]
        );
        assert_eq!(rules(&["[::1]:8000"])[0].to_string(), "[::1]:8000");
        assert_eq!(rules(&["10.0.0.0/8"])[0].to_string(), "10.0.0.0/8");
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "host/8",
            "localhost",
            "localhost:0",
            "localhost:70000",
            "localhost:http",
            ":80",
            "[::1]8000",
            "[nope]:80",
            "a b:80",
            "http://h:80",
        ] {
            let err = EgressPolicy::parse(&[bad.to_string()]).unwrap_err();
            assert_eq!(err.entry, bad);
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn default_policy_refuses_special_and_allows_public() {
        let p = EgressPolicy::default();
        let err = p.check("127.0.0.1", sa("127.0.0.1:9000")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "egress to 127.0.0.1:9000 refused: loopback address (allow it with providers.egress.allow)"
        );
        let err = p
            .check("evil.example", sa("169.254.169.254:80"))
            .unwrap_err();
        assert_eq!(err.reason, METADATA);
        assert!(err
            .to_string()
            .starts_with("egress to evil.example:80 refused"));
        assert!(
            !err.to_string().contains("169.254"),
            "the resolved address of a name is not shown"
        );
        assert!(p.check("[::1]", sa("[::1]:80")).is_err());
        assert!(p.check("x", sa("[::ffff:127.0.0.1]:80")).is_err());
        assert!(p.check("api.openai.com", sa("104.18.6.192:443")).is_ok());
        assert!(p.check("x", sa("[2606:4700::1]:443")).is_ok());
    }

    #[test]
    fn cidr_rules_allow_what_they_contain() {
        let p = EgressPolicy::new(rules(&["127.0.0.0/8", "fd00::/8"]), vec![]);
        assert!(p.check("127.0.0.1", sa("127.0.0.1:9000")).is_ok());
        assert!(p.check("127.9.9.9", sa("127.9.9.9:1")).is_ok());
        assert!(
            p.check("x", sa("[::ffff:127.0.0.1]:1")).is_ok(),
            "mapped form"
        );
        assert!(p.check("x", sa("[fd00::5]:1")).is_ok());
        assert!(p.check("x", sa("[::1]:1")).is_err(), "::1 is not in 127/8");
        assert!(p.check("x", sa("10.0.0.1:1")).is_err());
        assert!(
            p.check("x", sa("[fd00:ec2::254]:80")).is_ok(),
            "an operator's CIDR covers metadata too"
        );
        let all = EgressPolicy::new(rules(&["0.0.0.0/0"]), vec![]);
        assert!(all.check("x", sa("10.1.1.1:1")).is_ok());
        assert!(all.check("x", sa("[::1]:1")).is_err());
    }

    #[test]
    fn host_port_rules_match_the_host_as_written_and_the_port() {
        let p = EgressPolicy::new(
            rules(&["localhost:11434", "127.0.0.1:8000", "[::1]:8001"]),
            vec![],
        );
        assert!(p.check("localhost", sa("127.0.0.1:11434")).is_ok());
        assert!(p.check("LOCALHOST", sa("[::1]:11434")).is_ok());
        assert!(p.check("localhost", sa("127.0.0.1:11435")).is_err());
        assert!(p.check("127.0.0.1", sa("127.0.0.1:8000")).is_ok());
        assert!(p.check("127.0.0.1", sa("127.0.0.1:8001")).is_err());
        // Another name resolving to the allowed address is not the allowed host.
        assert!(p.check("evil.example", sa("127.0.0.1:8000")).is_err());
        assert!(p.check("[::1]", sa("[::1]:8001")).is_ok());
        assert!(p.check("::1", sa("[::1]:8001")).is_ok());
    }

    #[test]
    fn own_listeners_are_refused_unless_named() {
        let own = vec![
            sa("127.0.0.1:8080"),
            sa("0.0.0.0:7000"),
            sa("10.0.0.5:7100"),
            sa("[::]:7200"),
        ];
        let p = EgressPolicy::new(
            rules(&["127.0.0.0/8", "10.0.0.0/8", "::1/128"]),
            own.clone(),
        );
        let err = p.check("127.0.0.1", sa("127.0.0.1:8080")).unwrap_err();
        assert_eq!(err.reason, OWN_LISTENER);
        assert!(err.to_string().contains("127.0.0.1:8080"));
        assert!(
            p.check("x", sa("127.0.0.2:8080")).is_err(),
            "all of 127/8 is lo"
        );
        assert!(p.check("x", sa("0.0.0.0:8080")).is_err());
        assert!(p.check("x", sa("[::ffff:127.0.0.1]:8080")).is_err());
        assert!(p.check("x", sa("127.0.0.1:8081")).is_ok(), "another port");
        // Bound to 0.0.0.0: the port on loopback and on private addresses.
        assert!(p.check("x", sa("127.0.0.1:7000")).is_err());
        assert!(p.check("x", sa("10.1.2.3:7000")).is_err());
        assert!(p.check("x", sa("8.8.8.8:7000")).is_ok());
        assert!(p.check("x", sa("10.0.0.5:7100")).is_err());
        assert!(p.check("x", sa("10.0.0.6:7100")).is_ok());
        assert!(p.check("x", sa("[::1]:7200")).is_err());
        // Named exactly: allowed.
        let named = EgressPolicy::new(rules(&["127.0.0.1:8080"]), own);
        assert!(named.check("127.0.0.1", sa("127.0.0.1:8080")).is_ok());
        assert!(named.check("localhost", sa("127.0.0.1:8080")).is_err());
    }

    #[test]
    fn denied_is_found_in_an_error_chain() {
        // Shaped like hyper-util's ConnectError: a boxed cause returned by source().
        #[derive(Debug)]
        struct Outer(BoxError);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("dns error")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&*self.0)
            }
        }
        let denied = EgressPolicy::default()
            .check("localhost", sa("127.0.0.1:1"))
            .unwrap_err();
        let outer = Outer(Box::new(denied.clone()));
        assert_eq!(find_denied(&outer), Some(&denied));
        let plain = Outer("nope".into());
        assert_eq!(find_denied(&plain), None);
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_resolving_to_loopback() {
        let deny = PolicyResolver::new(Arc::new(EgressPolicy::default()), "localhost", 9);
        let err = deny.lookup("localhost").await.unwrap_err();
        let denied = find_denied(&*err).unwrap();
        assert_eq!(denied.reason, LOOPBACK);
        let allow = PolicyResolver::new(
            Arc::new(EgressPolicy::new(rules(&["localhost:9"]), vec![])),
            "localhost",
            9,
        );
        let addrs = allow.lookup("localhost").await.unwrap();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.port() == 9 && a.ip().is_loopback()));
        assert!(
            allow.lookup("example.com").await.is_err(),
            "only its own host"
        );
    }
}
