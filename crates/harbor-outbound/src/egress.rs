//! The egress wall: every connection the broker opens to the outside (notifications over HTTP
//! and MQTT, forwarding to context sources, `@context` fetches, JWKS) is checked here against
//! the operator's policy, on the address it actually connects to.
//!
//! By default the broker connects only to public addresses. Loopback, private (RFC 1918, unique
//! local), shared (100.64/10), link-local (where the cloud metadata service lives), multicast,
//! unspecified and other special-purpose addresses are refused unless `egress_allow` names them
//! (`host:port`, `host`, an IP address or a CIDR block), or, for the private ranges only,
//! `egress_allow_private` is set for a closed city network. Loopback and the metadata service
//! stay refused under `egress_allow_private`: only an explicit entry opens them.
//!
//! Names are checked after resolution, inside the HTTP client's own resolver, so the address
//! that was checked is the address connected to and DNS rebinding cannot slip past the check.
//! The resolver of a client knows the port it serves, because each client serves one
//! destination (`Egress::http_client`).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use ipnet::IpNet;
use parking_lot::Mutex;
use reqwest::Url;

/// Why a destination is refused. Its text names the destination and the setting that would
/// allow it, for the operator or client who reads it in a 400 or a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Why no address of a destination can be connected to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Blocked {
    /// The policy refuses it: permanent until the policy or the destination changes.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The name did not resolve: may pass later.
    #[error("{0}")]
    Unresolved(String),
}

/// One entry of `egress_allow`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allow {
    /// An address block, any port (`10.1.0.0/16`, `127.0.0.1`, `::1`).
    Net(IpNet),
    /// One address and port (`127.0.0.1:9000`, `[::1]:9000`).
    Socket(SocketAddr),
    /// A host name, on one port or any (`broker.city.internal:1883`, `ctx.city.internal`),
    /// whatever it resolves to: the operator trusts that name.
    Host(String, Option<u16>),
}

/// The operator's egress policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    allow: Vec<Allow>,
    allow_private: bool,
}

impl EgressPolicy {
    /// The policy from `egress_allow` entries and `egress_allow_private`; an entry that does
    /// not parse is an error naming it.
    pub fn new<S: AsRef<str>>(allow: &[S], allow_private: bool) -> Result<Self, String> {
        let allow = allow
            .iter()
            .map(|e| parse_entry(e.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(EgressPolicy {
            allow,
            allow_private,
        })
    }

    /// A policy that lets everything through: for tests of code that is not about egress.
    pub fn open() -> Self {
        EgressPolicy::new(&["0.0.0.0/0", "::/0"], true).expect("valid entries")
    }

    /// Whether the broker may connect to `ip:port`, reached through `host` (as written in the
    /// URI, lower case). `Err` says why not.
    pub fn check(&self, host: &str, ip: IpAddr, port: u16) -> Result<(), Refused> {
        let ip = canonical(ip);
        let class = classify(ip);
        if class == Class::Public {
            return Ok(());
        }
        let host = host.trim_end_matches('.');
        let listed = self.allow.iter().any(|a| match a {
            Allow::Net(net) => net.contains(&ip),
            Allow::Socket(s) => canonical(s.ip()) == ip && s.port() == port,
            Allow::Host(h, p) => h == host && p.is_none_or(|p| p == port),
        });
        if listed || (self.allow_private && class == Class::Private) {
            return Ok(());
        }
        let through =
            if host.parse::<IpAddr>().is_ok() || host.trim_matches(['[', ']']) == ip.to_string() {
                String::new()
            } else {
                format!("{host} resolves to ")
            };
        let setting = if class == Class::Private {
            "egress_allow, or egress_allow_private for a closed network"
        } else {
            "egress_allow"
        };
        Err(Refused(format!(
            "the broker does not connect to {host_port}: {through}{ip}, a {what} address, which the egress policy refuses (allow it with {setting})",
            host_port = display_host_port(host, port),
            what = class.describe(),
        )))
    }

    /// What can be decided from the URI alone, before any name is resolved: the scheme, and the
    /// address when the host is an IP literal or `localhost`. `Ok` means "not refused yet".
    pub fn check_uri(&self, uri: &str, schemes: &[&str]) -> Result<(), Refused> {
        let url = Url::parse(uri.trim())
            .map_err(|e| Refused(format!("{uri:?} is not a valid URI ({e})")))?;
        let scheme = url.scheme();
        if !schemes.contains(&scheme) {
            return Err(Refused(format!(
                "scheme \"{scheme}\" is not allowed here; use {}",
                schemes.join(", ")
            )));
        }
        let Some(port) = url.port_or_known_default().or(default_port(scheme)) else {
            return Err(Refused(format!("{uri:?} has no port")));
        };
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check(&ip.to_string(), IpAddr::V4(ip), port),
            Some(url::Host::Ipv6(ip)) => self.check(&format!("[{ip}]"), IpAddr::V6(ip), port),
            // Hosts of non-special schemes (mqtt) stay opaque to the URL parser: an address
            // written there is still an address.
            Some(url::Host::Domain(name)) if name.parse::<IpAddr>().is_ok() => {
                self.check(name, name.parse().expect("checked"), port)
            }
            Some(url::Host::Domain(name)) if is_localhost(name) => {
                self.check(name, IpAddr::V4(Ipv4Addr::LOCALHOST), port)
            }
            Some(url::Host::Domain(_)) => Ok(()),
            None => Err(Refused(format!("{uri:?} has no host"))),
        }
    }

    /// Resolves `host` and keeps the addresses the policy allows on `port`; refuses when none
    /// remains. IP literals are checked without a lookup.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Blocked> {
        let bare = host.trim_matches(['[', ']']);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            self.check(host, ip, port)?;
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let found: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| Blocked::Unresolved(format!("cannot resolve {host}: {e}")))?
            .collect();
        let mut refusal = None;
        let allowed: Vec<SocketAddr> = found
            .into_iter()
            .filter(|a| match self.check(host, a.ip(), port) {
                Ok(()) => true,
                Err(r) => {
                    refusal.get_or_insert(r);
                    false
                }
            })
            .collect();
        match (allowed.is_empty(), refusal) {
            (false, _) => Ok(allowed),
            (true, Some(r)) => Err(Blocked::Refused(r)),
            (true, None) => Err(Blocked::Unresolved(format!(
                "{host} resolves to no address"
            ))),
        }
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "mqtt" => Some(1883),
        "mqtts" => Some(8883),
        _ => None,
    }
}

fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    name.eq_ignore_ascii_case("localhost") || name.to_ascii_lowercase().ends_with(".localhost")
}

fn display_host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn parse_entry(entry: &str) -> Result<Allow, String> {
    let e = entry.trim();
    let bad = |why: &str| format!("egress_allow entry {entry:?}: {why}");
    if e.is_empty() {
        return Err(bad("is empty"));
    }
    if e.contains("://") {
        return Err(bad(
            "is a URL; write host:port, a host name, an IP address or a CIDR block",
        ));
    }
    if e.contains('/') {
        return IpNet::from_str(e)
            .map(|n| Allow::Net(n.trunc()))
            .map_err(|_| bad("is not a CIDR block such as 10.0.0.0/8"));
    }
    if let Ok(ip) = e.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(Allow::Net(IpNet::from(ip)));
    }
    if let Ok(socket) = e.parse::<SocketAddr>() {
        if socket.port() == 0 {
            return Err(bad("port 0 is not a port"));
        }
        return Ok(Allow::Socket(socket));
    }
    let (host, port) = match e.rsplit_once(':') {
        Some((h, p)) => {
            let port = p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?;
            (h, Some(port))
        }
        None => (e, None),
    };
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !valid {
        return Err(bad(
            "is not host:port, a host name, an IP address or a CIDR block",
        ));
    }
    Ok(Allow::Host(host.to_ascii_lowercase(), port))
}

/// What kind of address an IP is, for the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Public,
    /// RFC 1918, unique local (fc00::/7), shared address space (100.64/10): a city's own
    /// network; `egress_allow_private` opens these.
    Private,
    Loopback,
    /// 169.254/16 and fe80::/10: the cloud metadata service lives here.
    LinkLocal,
    Multicast,
    /// Unspecified, broadcast, documentation, benchmarking, reserved, IPv4-embedding
    /// translation prefixes and the like: nothing a notification should go to.
    Special,
}

impl Class {
    fn describe(self) -> &'static str {
        match self {
            Class::Public => "public",
            Class::Private => "private",
            Class::Loopback => "loopback",
            Class::LinkLocal => "link-local (cloud metadata)",
            Class::Multicast => "multicast",
            Class::Special => "special-purpose",
        }
    }
}

/// An IPv4 address written as IPv6 (`::ffff:127.0.0.1`, `::127.0.0.1`) is judged as the IPv4
/// address it reaches.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                // IPv4-compatible (deprecated, ::a.b.c.d), except :: and ::1.
                if s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1) {
                    IpAddr::V4(Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32))
                } else {
                    IpAddr::V6(v6)
                }
            }
        },
        v4 => v4,
    }
}

fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Class::Loopback
    } else if ip.is_link_local() {
        Class::LinkLocal
    } else if ip.is_multicast() {
        Class::Multicast
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        Class::Private
    } else if a == 0
        || a >= 240
        || ip.is_broadcast()
        || ip.is_documentation()
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
        || (a == 192 && b == 88 && c == 99)
    {
        Class::Special
    } else {
        Class::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> Class {
    let s = ip.segments();
    if ip.is_loopback() {
        Class::Loopback
    } else if ip.is_unspecified() {
        Class::Special
    } else if ip.is_multicast() {
        Class::Multicast
    } else if s[0] & 0xffc0 == 0xfe80 {
        Class::LinkLocal
    } else if s[0] & 0xfe00 == 0xfc00 || s[0] & 0xffc0 == 0xfec0 {
        Class::Private
    } else if s[0] == 0x64 && s[1] == 0xff9b
        || s[0] == 0x2002
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || (s[0] == 0x2001 && s[1] == 0)
        || s[0] == 0x0100 && s[1..4] == [0, 0, 0]
    {
        // NAT64 and 6to4 embed an IPv4 address that could be anything; Teredo, discard-only
        // and documentation prefixes are nothing to notify either.
        Class::Special
    } else if s[0] & 0xe000 == 0x2000 {
        Class::Public
    } else {
        Class::Special
    }
}

/// The egress wall with the HTTP clients behind it: one client per destination (scheme, host,
/// port, purpose), whose resolver checks every address against the policy for that port.
/// Cheap to clone; clones share clients.
#[derive(Clone)]
pub struct Egress {
    inner: Arc<EgressInner>,
}

struct EgressInner {
    policy: EgressPolicy,
    clients: Mutex<HashMap<ClientKey, reqwest::Client>>,
    tls: rustls::ClientConfig,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    purpose: Purpose,
    scheme: String,
    host: String,
    port: u16,
}

/// What an HTTP client is for; each has its own settings (user agent, header case, redirects
/// never followed by the client itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    Notify,
    Source,
    Context,
    Keys,
}

/// Destinations remembered at once; past this the cache is emptied and clients are made anew
/// (connections are then re-opened, nothing else is lost).
const MAX_CLIENTS: usize = 1024;

impl fmt::Debug for Egress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Egress")
            .field("policy", &self.inner.policy)
            .finish()
    }
}

impl Egress {
    pub fn new(policy: EgressPolicy) -> Self {
        Egress {
            inner: Arc::new(EgressInner {
                policy,
                clients: Mutex::new(HashMap::new()),
                tls: crate::tls::client_config(),
            }),
        }
    }

    pub fn policy(&self) -> &EgressPolicy {
        &self.inner.policy
    }

    /// A client for `url`'s destination, or the reason the broker will not connect there.
    /// A host name is checked when the client resolves it, for every connection it opens.
    pub fn http_client(&self, url: &Url, purpose: Purpose) -> Result<reqwest::Client, Refused> {
        self.inner
            .policy
            .check_uri(url.as_str(), &["http", "https"])?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let port = url.port_or_known_default().unwrap_or(80);
        let key = ClientKey {
            purpose,
            scheme: url.scheme().to_string(),
            host: host.clone(),
            port,
        };
        let mut clients = self.inner.clients.lock();
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        let resolver = Arc::new(WallResolver {
            policy: self.inner.policy.clone(),
            host,
            port,
        });
        let builder = reqwest::Client::builder()
            .use_preconfigured_tls(self.inner.tls.clone())
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(resolver)
            // No proxy from the environment: a proxy would connect where the wall cannot see.
            .no_proxy()
            .user_agent(concat!("infoharbor/", env!("CARGO_PKG_VERSION")));
        let builder = match purpose {
            // Header names go out as the subscription wrote them (`receiverInfo` keys,
            // `Link`): receivers that look headers up case-sensitively find them.
            Purpose::Notify | Purpose::Source => builder.http1_title_case_headers(),
            Purpose::Context | Purpose::Keys => builder,
        };
        let client = builder
            .build()
            .map_err(|e| Refused(format!("cannot build an HTTP client: {e}")))?;
        clients.insert(key, client.clone());
        Ok(client)
    }
}

/// The resolver of one client: resolves its one host and lets through only the addresses the
/// policy allows on its port.
struct WallResolver {
    policy: EgressPolicy,
    host: String,
    port: u16,
}

impl reqwest::dns::Resolve for WallResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let expected = self.host.clone();
        let port = self.port;
        Box::pin(async move {
            let asked = name.as_str().to_ascii_lowercase();
            // A client serves one destination; any other name is a redirect or a bug, never a
            // way around the wall.
            if asked != expected {
                return Err(Box::new(Refused(format!(
                    "the client for {expected} was asked to resolve {asked}"
                )))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs = policy.resolve(&asked, port).await.map_err(|b| match b {
                Blocked::Refused(r) => Box::new(r) as Box<dyn std::error::Error + Send + Sync>,
                Blocked::Unresolved(why) => why.into(),
            })?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The refusal behind a reqwest error, when the wall caused it.
pub fn refusal_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(r) = c.downcast_ref::<Refused>() {
            return Some(r);
        }
        cause = c.source();
    }
    None
}

#[cfg(test)]
mod tests;
