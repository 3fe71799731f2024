//! MX resolution against a real DNS server (dnsmasq on a loopback port).

#[path = "peers/harness.rs"]
mod harness;

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use mailstead::delivery::mx::{DnsError, Resolver, site_key};

fn records() -> Vec<String> {
    [
        // Unknown names under .test are NXDOMAIN.
        "--local=/test/",
        // Ordered MX with two equal preferences.
        "--mx-host=multi.test,mx-b.multi.test,10",
        "--mx-host=multi.test,mx-a.multi.test,10",
        "--mx-host=multi.test,mx-c.multi.test,20",
        "--mx-host=multi.test,mx-d.multi.test,5",
        "--host-record=mx-a.multi.test,127.0.0.11",
        "--host-record=mx-b.multi.test,127.0.0.12",
        "--host-record=mx-c.multi.test,127.0.0.13",
        "--host-record=mx-d.multi.test,127.0.0.14,::1",
        // No MX: implicit MX from the A record.
        "--host-record=aonly.test,127.0.0.2",
        // Null MX (RFC 7505).
        "--mx-host=nullmx.test,.,0",
        "--host-record=nullmx.test,127.0.0.3",
        // An MX whose first host does not resolve.
        "--mx-host=halfbroken.test,gone.halfbroken.test,10",
        "--mx-host=halfbroken.test,mx.halfbroken.test,20",
        "--host-record=mx.halfbroken.test,127.0.0.4",
        // Google-hosted style names share one site.
        "--mx-host=workspace.test,aspmx.l.google.com,1",
        "--mx-host=workspace.test,alt1.aspmx.l.google.com,5",
        "--host-record=aspmx.l.google.com,127.0.0.5",
        "--host-record=alt1.aspmx.l.google.com,127.0.0.6",
        // Upstream refuses: a DNS error, even though an A record exists.
        "--host-record=refused.test,127.0.0.7",
        // Upstream never answers: timeout, even though an A record exists.
        "--host-record=dead.test,127.0.0.8",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// dnsmasq with the records above; `refused.test` forwarded to a second
/// dnsmasq that refuses everything, `dead.test` to a port that never answers.
fn dns(test: &str) -> Option<(harness::Dnsmasq, harness::Dnsmasq, harness::BlackHole)> {
    // No data at all: answers REFUSED to every query.
    let upstream = match harness::dnsmasq(&[]) {
        Ok(d) => d,
        Err(e) => {
            harness::missing(test, &e);
            return None;
        }
    };
    let hole = harness::black_hole();
    let mut opts = records();
    opts.push(format!(
        "--server=/refused.test/127.0.0.1#{}",
        upstream.addr.port()
    ));
    opts.push(format!(
        "--server=/dead.test/127.0.0.1#{}",
        hole.addr.port()
    ));
    match harness::dnsmasq(&opts) {
        Ok(d) => Some((d, upstream, hole)),
        Err(e) => {
            harness::missing(test, &e);
            None
        }
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[tokio::test]
async fn mx_order_shuffle_and_implicit_mx() {
    let Some((dns, _up, _hole)) = dns("mx_order_shuffle_and_implicit_mx") else {
        return;
    };
    let r = Resolver::new(Some(dns.addr))
        .expect("resolver")
        .allow_private(true);

    let mut seen_first_of_tie = HashSet::new();
    for _ in 0..24 {
        let t = r.resolve_targets("multi.test").await.expect("multi.test");
        let hosts: Vec<&str> = t.iter().map(|t| t.host.as_str()).collect();
        assert_eq!(hosts.len(), 4);
        assert_eq!(hosts[0], "mx-d.multi.test");
        assert_eq!(hosts[3], "mx-c.multi.test");
        let tie: HashSet<&str> = hosts[1..3].iter().copied().collect();
        assert_eq!(tie, HashSet::from(["mx-a.multi.test", "mx-b.multi.test"]));
        seen_first_of_tie.insert(hosts[1].to_string());
        assert_eq!(t[0].preference, 5);
        assert_eq!(t[0].addrs, vec![ip("127.0.0.14"), ip("::1")], "IPv4 first");
    }
    assert_eq!(seen_first_of_tie.len(), 2, "equal preferences are shuffled");

    let t = r.resolve_targets("AOnly.Test.").await.expect("implicit MX");
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].host, "aonly.test");
    assert_eq!(t[0].addrs, vec![ip("127.0.0.2")]);
    assert_eq!(t[0].preference, 0);

    let t = r
        .resolve_targets("halfbroken.test")
        .await
        .expect("second MX resolves");
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].host, "mx.halfbroken.test");

    let t = r
        .resolve_targets("workspace.test")
        .await
        .expect("workspace");
    assert_eq!(site_key(&t), "google.com");
}

#[tokio::test]
async fn permanent_dns_failures() {
    let Some((dns, _up, _hole)) = dns("permanent_dns_failures") else {
        return;
    };
    let r = Resolver::new(Some(dns.addr))
        .expect("resolver")
        .allow_private(true);

    let e = r.resolve_targets("nullmx.test").await.expect_err("null MX");
    assert_eq!(e, DnsError::NullMx("nullmx.test".into()));
    assert!(e.is_permanent());

    let e = r
        .resolve_targets("nosuchdomain.test")
        .await
        .expect_err("NXDOMAIN");
    assert_eq!(e, DnsError::NoSuchDomain("nosuchdomain.test".into()));
    assert!(e.is_permanent());

    let e = r
        .resolve_targets("bad domain.test")
        .await
        .expect_err("invalid");
    assert!(matches!(e, DnsError::InvalidDomain(_)));

    // Private addresses are dropped unless allowed.
    let strict = Resolver::new(Some(dns.addr)).expect("resolver");
    let e = strict
        .resolve_targets("aonly.test")
        .await
        .expect_err("private filtered");
    assert_eq!(
        e,
        DnsError::NoUsableAddress {
            domain: "aonly.test".into(),
            filtered: true
        }
    );
    // Configured hosts (relay) are not filtered.
    assert_eq!(
        strict.host_addresses("aonly.test").await,
        Ok(vec![ip("127.0.0.2")])
    );
    assert_eq!(
        strict.host_addresses("192.0.2.7").await,
        Ok(vec![ip("192.0.2.7")])
    );
    assert_eq!(
        strict.host_addresses("localhost").await.map(|v| v[0]),
        Ok(ip("127.0.0.1"))
    );
    assert!(strict.host_addresses("nosuch.test").await.is_err());
    let e = strict
        .resolve_targets("multi.test")
        .await
        .expect_err("private filtered");
    assert!(
        matches!(e, DnsError::NoUsableAddress { filtered: true, .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn dns_errors_are_temporary_and_never_fall_back_to_a() {
    let Some((dns, _up, _hole)) = dns("dns_errors_are_temporary") else {
        return;
    };
    let r = Resolver::new(Some(dns.addr))
        .expect("resolver")
        .allow_private(true);

    // The upstream answers REFUSED for the MX query; the A record exists
    // locally but must not be used.
    let e = r
        .resolve_targets("refused.test")
        .await
        .expect_err("refused");
    eprintln!("refused.test: {e}");
    assert!(matches!(e, DnsError::Temporary { .. }), "{e:?}");
    assert!(!e.is_permanent());

    // The upstream never answers: a timeout, again no A fallback.
    let start = Instant::now();
    let e = r.resolve_targets("dead.test").await.expect_err("timeout");
    eprintln!("dead.test: {e} after {:?}", start.elapsed());
    assert!(matches!(e, DnsError::Temporary { .. }), "{e:?}");
    assert!(start.elapsed() < Duration::from_secs(10));

    // A server that does not answer at all.
    let hole = harness::black_hole();
    let r = Resolver::new(Some(hole.addr)).expect("resolver");
    let e = r
        .resolve_targets("example.test")
        .await
        .expect_err("no server");
    assert!(matches!(e, DnsError::Temporary { .. }), "{e:?}");
}
