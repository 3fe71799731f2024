//! MX resolution (RFC 5321 §5.1) with hickory-resolver.
//!
//! * MX hosts sorted by preference, equal preferences shuffled.
//! * Implicit MX (A/AAAA of the domain itself) **only** when the domain has
//!   no MX records (NXDOMAIN or NODATA for MX) — never after a DNS error.
//! * Null MX (RFC 7505, `0 .`) is a permanent failure.
//! * SERVFAIL, REFUSED, timeouts: temporary failures.
//! * Loopback, private, link-local, unspecified and other non-global
//!   addresses are dropped unless `allow_private` (the setting
//!   `MAILSTEAD_ALLOW_PRIVATE_TARGETS=true`) is on.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData};
use rand::seq::SliceRandom;

/// Most MX hosts considered (the rest are ignored).
pub const MAX_MX_HOSTS: usize = 10;

/// One mail host to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name, lower case, without the trailing dot.
    pub host: String,
    /// Its usable addresses, IPv4 first.
    pub addrs: Vec<IpAddr>,
    /// MX preference (0 for an implicit MX).
    pub preference: u16,
}

/// Why resolution failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The domain is not a valid DNS name.
    #[error("invalid domain name {0:?}")]
    InvalidDomain(String),
    /// NXDOMAIN: the domain does not exist.
    #[error("domain {0} does not exist")]
    NoSuchDomain(String),
    /// RFC 7505 null MX: the domain accepts no mail.
    #[error("domain {0} does not accept mail (null MX)")]
    NullMx(String),
    /// Neither MX nor address records.
    #[error("domain {0} has no MX and no address records")]
    NoMailHost(String),
    /// The mail hosts have no address, or only filtered (private) ones.
    #[error("no usable address for the mail hosts of {domain}{}", if *.filtered { " (private addresses filtered)" } else { "" })]
    NoUsableAddress {
        /// The domain.
        domain: String,
        /// Whether some addresses were dropped as private / loopback.
        filtered: bool,
    },
    /// SERVFAIL, REFUSED, timeout, network error: try again later.
    #[error("temporary DNS failure for {name}: {reason}")]
    Temporary {
        /// The name being looked up.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// The resolver could not be built (e.g. unreadable resolv.conf).
    #[error("resolver configuration: {0}")]
    Config(String),
}

impl DnsError {
    /// Permanent failures bounce; the others are retried.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, DnsError::Temporary { .. } | DnsError::Config(_))
    }
}

/// Outcome of one query, classified.
enum Answer<T> {
    Records(T),
    /// NXDOMAIN.
    NoDomain,
    /// NOERROR with no records of the type.
    NoData,
}

/// MX resolver.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
    allow_private: bool,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("allow_private", &self.allow_private)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// `None`: the system configuration (resolv.conf). `Some(addr)`: only
    /// that server, over UDP with TCP fallback, no search domains, no hosts
    /// file and no cache (so tests see exactly what the server answers).
    pub fn new(dns_server: Option<SocketAddr>) -> Result<Self, DnsError> {
        let inner = match dns_server {
            None => {
                let mut builder =
                    TokioResolver::builder_tokio().map_err(|e| DnsError::Config(e.to_string()))?;
                let opts = builder.options_mut();
                opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
                // Names are looked up as given (FQDN), never with search domains.
                opts.ndots = 0;
                builder
                    .build()
                    .map_err(|e| DnsError::Config(e.to_string()))?
            }
            Some(server) => {
                let mut ns = NameServerConfig::udp_and_tcp(server.ip());
                for c in &mut ns.connections {
                    c.port = server.port();
                }
                let config = ResolverConfig::from_parts(None, vec![], vec![ns]);
                let mut builder =
                    TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
                let opts = builder.options_mut();
                opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
                opts.ndots = 0;
                opts.cache_size = 0;
                opts.use_hosts_file = ResolveHosts::Never;
                opts.timeout = Duration::from_secs(2);
                opts.attempts = 1;
                builder
                    .build()
                    .map_err(|e| DnsError::Config(e.to_string()))?
            }
        };
        Ok(Self {
            inner,
            allow_private: false,
        })
    }

    /// Keep loopback / private / link-local targets (tests, lab setups).
    pub fn allow_private(mut self, allow: bool) -> Self {
        self.allow_private = allow;
        self
    }

    /// Whether private targets are kept.
    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// Resolves the mail hosts of `domain`, in the order to try them.
    pub async fn resolve_targets(&self, domain: &str) -> Result<Vec<Target>, DnsError> {
        let name = fqdn(domain)?;
        let display = display_name(&name);
        let mut hosts: Vec<(u16, Name)> = match self.mx(&name).await? {
            Answer::Records(mx) => mx,
            Answer::NoDomain => {
                // NXDOMAIN for MX means the whole name is absent; an A lookup
                // would only repeat it.
                return Err(DnsError::NoSuchDomain(display));
            }
            Answer::NoData => Vec::new(),
        };

        if hosts.is_empty() {
            // Implicit MX: the domain's own addresses (RFC 5321 §5.1).
            return match self.addresses(&name).await? {
                Answer::Records(addrs) => {
                    let (addrs, filtered) = self.filter(addrs);
                    if addrs.is_empty() {
                        Err(DnsError::NoUsableAddress {
                            domain: display,
                            filtered,
                        })
                    } else {
                        Ok(vec![Target {
                            host: display,
                            addrs,
                            preference: 0,
                        }])
                    }
                }
                Answer::NoDomain => Err(DnsError::NoSuchDomain(display)),
                Answer::NoData => Err(DnsError::NoMailHost(display)),
            };
        }

        // Null MX: "." as exchange. Alone it means "no mail"; mixed with real
        // hosts it is a misconfiguration and only the real hosts are used.
        let null = hosts.iter().filter(|(_, h)| h.is_root()).count();
        hosts.retain(|(_, h)| !h.is_root());
        if hosts.is_empty() && null > 0 {
            return Err(DnsError::NullMx(display));
        }

        hosts.sort_by_key(|(p, _)| *p);
        shuffle_equal_preferences(&mut hosts);
        hosts.dedup_by(|a, b| a.1 == b.1);
        hosts.truncate(MAX_MX_HOSTS);

        let mut targets = Vec::with_capacity(hosts.len());
        let mut temporary: Option<DnsError> = None;
        let mut filtered_any = false;
        for (pref, host) in hosts {
            match self.addresses(&host).await {
                Ok(Answer::Records(addrs)) => {
                    let (addrs, filtered) = self.filter(addrs);
                    filtered_any |= filtered;
                    if !addrs.is_empty() {
                        targets.push(Target {
                            host: display_name(&host),
                            addrs,
                            preference: pref,
                        });
                    }
                }
                Ok(Answer::NoDomain | Answer::NoData) => {}
                Err(e) => {
                    if temporary.is_none() {
                        temporary = Some(e);
                    }
                }
            }
        }
        if targets.is_empty() {
            return Err(temporary.unwrap_or(DnsError::NoUsableAddress {
                domain: display,
                filtered: filtered_any,
            }));
        }
        Ok(targets)
    }

    /// Addresses of a configured host (relay, smarthost), IPv4 first, with
    /// no private-address filtering: the operator chose it. IP literals and
    /// `localhost` are answered without a query.
    pub async fn host_addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        let h = host.trim_end_matches('.');
        if let Ok(ip) = h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(vec![ip]);
        }
        if h.eq_ignore_ascii_case("localhost") {
            return Ok(vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ]);
        }
        let name = fqdn(h)?;
        match self.addresses(&name).await? {
            Answer::Records(a) => Ok(a),
            Answer::NoDomain => Err(DnsError::NoSuchDomain(display_name(&name))),
            Answer::NoData => Err(DnsError::NoMailHost(display_name(&name))),
        }
    }

    async fn mx(&self, name: &Name) -> Result<Answer<Vec<(u16, Name)>>, DnsError> {
        match self.inner.mx_lookup(name.clone()).await {
            Ok(lookup) => {
                let mx: Vec<(u16, Name)> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some((mx.preference, mx.exchange.clone())),
                        _ => None,
                    })
                    .collect();
                if mx.is_empty() {
                    Ok(Answer::NoData)
                } else {
                    Ok(Answer::Records(mx))
                }
            }
            Err(e) => classify(name, e),
        }
    }

    async fn addresses(&self, name: &Name) -> Result<Answer<Vec<IpAddr>>, DnsError> {
        match self.inner.lookup_ip(name.clone()).await {
            Ok(lookup) => {
                let mut addrs: Vec<IpAddr> = lookup.iter().collect();
                addrs.sort_by_key(|a| a.is_ipv6());
                addrs.dedup();
                if addrs.is_empty() {
                    Ok(Answer::NoData)
                } else {
                    Ok(Answer::Records(addrs))
                }
            }
            Err(e) => classify(name, e),
        }
    }

    fn filter(&self, addrs: Vec<IpAddr>) -> (Vec<IpAddr>, bool) {
        if self.allow_private {
            return (addrs, false);
        }
        let before = addrs.len();
        let kept: Vec<IpAddr> = addrs.into_iter().filter(is_public).collect();
        let filtered = kept.len() < before;
        (kept, filtered)
    }
}

fn classify<T>(name: &Name, e: NetError) -> Result<Answer<T>, DnsError> {
    match &e {
        NetError::Dns(HickoryDnsError::NoRecordsFound(nr)) => match nr.response_code {
            ResponseCode::NXDomain => Ok(Answer::NoDomain),
            ResponseCode::NoError => Ok(Answer::NoData),
            code => Err(DnsError::Temporary {
                name: display_name(name),
                reason: format!("response code {code}"),
            }),
        },
        NetError::Dns(HickoryDnsError::ResponseCode(code)) => Err(DnsError::Temporary {
            name: display_name(name),
            reason: format!("response code {code}"),
        }),
        _ => Err(DnsError::Temporary {
            name: display_name(name),
            reason: e.to_string(),
        }),
    }
}

fn fqdn(domain: &str) -> Result<Name, DnsError> {
    let d = domain.trim().trim_end_matches('.');
    if d.is_empty() || d.len() > 253 || d.chars().any(|c| c.is_control() || c == ' ' || c == '@') {
        return Err(DnsError::InvalidDomain(domain.to_string()));
    }
    let mut name = Name::from_utf8(d).map_err(|_| DnsError::InvalidDomain(domain.to_string()))?;
    name.set_fqdn(true);
    Ok(name)
}

fn display_name(name: &Name) -> String {
    let s = name.to_ascii().to_ascii_lowercase();
    s.trim_end_matches('.').to_string()
}

fn shuffle_equal_preferences(hosts: &mut [(u16, Name)]) {
    let mut rng = rand::rng();
    let mut start = 0;
    while start < hosts.len() {
        let pref = hosts[start].0;
        let end = hosts[start..]
            .iter()
            .position(|(p, _)| *p != pref)
            .map_or(hosts.len(), |n| start + n);
        hosts[start..end].shuffle(&mut rng);
        start = end;
    }
}

/// Whether `ip` is a globally routable unicast address (not loopback,
/// private, CGNAT, link-local, unspecified, multicast, documentation, …).
pub fn is_public(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(&v4);
            }
            let seg = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
                || (seg[0] == 0x0064 && seg[1] == 0xff9b && seg[2] == 1) // local NAT64
                || seg[0] == 0x0100 && seg[1..4] == [0, 0, 0]) // discard-only
        }
    }
}

fn is_public_v4(v4: &Ipv4Addr) -> bool {
    let o = v4.octets();
    !(v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // CGNAT 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || o[0] >= 240) // reserved
}

/// The "site" of a set of targets: the registrable domain of the most
/// preferred MX host, so that every domain hosted by one provider shares
/// one key (all Google-hosted domains → `google.com`, Microsoft 365 →
/// `outlook.com`, Yahoo → `yahoodns.net`). Connections, rate limits and
/// holds are kept per site.
///
/// Accepts the targets (`&[Target]`, `&Vec<Target>`) or one host name
/// (`&str`, `&String`, e.g. the host of a delivery outcome).
pub fn site_key<S: SiteKeySource + ?Sized>(source: &S) -> String {
    source.site_key()
}

/// Something a site key can be computed from (see [`site_key`]).
pub trait SiteKeySource {
    /// The site key.
    fn site_key(&self) -> String;
}

impl SiteKeySource for [Target] {
    fn site_key(&self) -> String {
        match self.iter().min_by_key(|t| t.preference) {
            Some(t) => site_key_for_host(&t.host),
            None => String::new(),
        }
    }
}

impl<const N: usize> SiteKeySource for [Target; N] {
    fn site_key(&self) -> String {
        self.as_slice().site_key()
    }
}

impl SiteKeySource for Vec<Target> {
    fn site_key(&self) -> String {
        self.as_slice().site_key()
    }
}

impl SiteKeySource for str {
    fn site_key(&self) -> String {
        site_key_for_host(self)
    }
}

impl SiteKeySource for String {
    fn site_key(&self) -> String {
        site_key_for_host(self)
    }
}

/// The site key of one host name (see [`site_key`]).
pub fn site_key_for_host(host: &str) -> String {
    let reg = registrable_domain(host);
    match reg.as_str() {
        // Google's MX are under google.com; some legacy ones under googlemail.com.
        "googlemail.com" => "google.com".to_string(),
        // Hotmail/Outlook.com consumer MX live in outlook.com too.
        "hotmail.com" | "olc.protection.outlook.com" => "outlook.com".to_string(),
        _ => reg,
    }
}

/// Second-level labels under which country-code TLDs register names
/// (`example.co.uk`). A heuristic instead of the full Public Suffix List:
/// good enough to group MX hosts of one provider.
const SECOND_LEVEL: &[&str] = &[
    "ac", "co", "com", "edu", "gov", "gob", "go", "mil", "ne", "net", "nom", "or", "org", "ltd",
    "plc", "sch", "gen", "biz", "info",
];

/// Registrable domain of a host name by the heuristic above: the last two
/// labels, or three when the TLD is a two-letter country code and the
/// second-level label is a common registration category.
pub fn registrable_domain(host: &str) -> String {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    let n = labels.len();
    if n <= 2 {
        return host;
    }
    let tld = labels[n - 1];
    let sld = labels[n - 2];
    let take = if tld.len() == 2 && SECOND_LEVEL.contains(&sld) {
        3
    } else {
        2
    };
    labels[n - take.min(n)..].join(".")
}

/// Reads `MAILSTEAD_ALLOW_PRIVATE_TARGETS` (`true`/`1`/`yes` enable).
pub fn allow_private_targets_from_env() -> bool {
    std::env::var("MAILSTEAD_ALLOW_PRIVATE_TARGETS")
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

/// Whether an address is in one of the ranges [`is_public`] rejects
/// (exposed for the engine's relay / literal checks).
pub fn is_private(ip: &IpAddr) -> bool {
    !is_public(ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn t(host: &str, pref: u16) -> Target {
        Target {
            host: host.into(),
            addrs: vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))],
            preference: pref,
        }
    }

    #[test]
    fn site_keys() {
        assert_eq!(
            site_key(&[t("alt1.aspmx.l.google.com", 5), t("aspmx.l.google.com", 1)]),
            "google.com"
        );
        assert_eq!(
            site_key(&[t("gmail-smtp-in.l.google.com", 5)]),
            "google.com"
        );
        assert_eq!(site_key(&[t("aspmx2.googlemail.com", 10)]), "google.com");
        assert_eq!(site_key(&[t("mta5.am0.yahoodns.net", 1)]), "yahoodns.net");
        assert_eq!(
            site_key(&[t("example-com.mail.protection.outlook.com", 0)]),
            "outlook.com"
        );
        assert_eq!(
            site_key(&[t("hotmail-com.olc.protection.outlook.com", 2)]),
            "outlook.com"
        );
        assert_eq!(site_key(&[t("mx1.mail.example.co.uk", 1)]), "example.co.uk");
        assert_eq!(site_key(&[t("MX.Example.COM.", 1)]), "example.com");
        assert_eq!(site_key(&[t("localhost", 1)]), "localhost");
        assert_eq!(site_key::<[Target]>(&[]), "");
        assert_eq!(site_key("alt4.aspmx.l.google.com"), "google.com");
        assert_eq!(site_key(&"mx.Example.org".to_string()), "example.org");
        assert_eq!(site_key(&vec![t("mx1.example.net", 5)]), "example.net");
    }

    #[test]
    fn public_addresses() {
        let p = |s: &str| is_public(&s.parse().unwrap());
        assert!(p("8.8.8.8"));
        assert!(p("2a00:1450:4001::1b"));
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.4",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
        ] {
            assert!(!p(s), "{s} should not be public");
        }
    }

    #[test]
    fn shuffle_keeps_preference_order() {
        let mut hosts: Vec<(u16, Name)> = (0..20)
            .map(|i| {
                (
                    (i % 3) as u16 * 10,
                    Name::from_ascii(format!("h{i}.example.")).unwrap(),
                )
            })
            .collect();
        hosts.sort_by_key(|(p, _)| *p);
        shuffle_equal_preferences(&mut hosts);
        assert!(hosts.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_eq!(hosts.len(), 20);
    }

    #[test]
    fn server_errors_are_temporary_never_nodata() {
        use hickory_resolver::net::NoRecords;
        use hickory_resolver::proto::op::Query;
        let name = Name::from_ascii("example.org.").unwrap();
        let servfail = NetError::Dns(HickoryDnsError::ResponseCode(ResponseCode::ServFail));
        assert!(matches!(
            classify::<()>(&name, servfail),
            Err(DnsError::Temporary { .. })
        ));
        let nr = |code| {
            NetError::Dns(HickoryDnsError::NoRecordsFound(NoRecords::new(
                Query::default(),
                code,
            )))
        };
        assert!(matches!(
            classify::<()>(&name, nr(ResponseCode::ServFail)),
            Err(DnsError::Temporary { .. })
        ));
        assert!(matches!(
            classify::<()>(&name, nr(ResponseCode::NXDomain)),
            Ok(Answer::NoDomain)
        ));
        assert!(matches!(
            classify::<()>(&name, nr(ResponseCode::NoError)),
            Ok(Answer::NoData)
        ));
        assert!(matches!(
            classify::<()>(&name, NetError::Timeout),
            Err(DnsError::Temporary { .. })
        ));
    }

    #[test]
    fn invalid_domains() {
        assert!(fqdn("").is_err());
        assert!(fqdn("a b.com").is_err());
        assert!(fqdn("x@y.com").is_err());
        assert!(fqdn("exämple.org").is_ok());
    }

    #[test]
    fn unknown_v6_is_public_check() {
        let ip = IpAddr::V6(Ipv6Addr::new(0x2606, 0x4700, 0, 0, 0, 0, 0, 0x1111));
        assert!(is_public(&ip));
    }
}
