//! The whole delivery path: dnsmasq (MX) → engine (shaping, pooling) →
//! SMTP client → smtp-sink / aiosmtpd, with DKIM-signed, VERP-addressed
//! messages verified by dkimpy and parsed by Python's email package.

#[path = "peers/harness.rs"]
mod harness;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use mailstead::delivery::dkim::{self, Signer};
use mailstead::delivery::{
    ClientConfig, DeliveryJob, DeliveryStatus, Engine, EngineConfig, FailureCause, PreparedMessage,
    RelayConfig, Resolver, ShapingConfig, Stage, Timeouts, TlsPolicy, Verp,
};

const VERP_KEY: &[u8] = b"test-verp-key-0123456789abcdef!!";

fn shaping(extra: serde_json::Value) -> ShapingConfig {
    let mut base = serde_json::json!({
        "global_messages_per_second": 0,
        "default": {"messages_per_minute": 0, "max_connections": 4},
        "connection_wait_secs": 5,
    });
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(base).expect("shaping config")
}

fn engine(
    dns: SocketAddr,
    port: u16,
    shaping: ShapingConfig,
    tweak: impl FnOnce(&mut EngineConfig),
) -> Engine {
    let mut client = ClientConfig::new("mta.mailstead.test").expect("client");
    client.timeouts = Timeouts::uniform(Duration::from_secs(5));
    let mut cfg = EngineConfig::new(client);
    cfg.shaping = shaping;
    cfg.smtp_port = port;
    tweak(&mut cfg);
    let resolver = Resolver::new(Some(dns))
        .expect("resolver")
        .allow_private(true);
    Engine::new(cfg, resolver).expect("engine")
}

fn dns(test: &str, records: &[&str]) -> Option<harness::Dnsmasq> {
    let mut opts = vec!["--local=/test/".to_string()];
    opts.extend(records.iter().map(|s| s.to_string()));
    match harness::dnsmasq(&opts) {
        Ok(d) => Some(d),
        Err(e) => {
            harness::missing(test, &e);
            None
        }
    }
}

fn plain(id: usize) -> PreparedMessage {
    PreparedMessage::new(
        format!("From: news@example.test\r\nTo: x@y.test\r\nSubject: {id}\r\nMessage-ID: <{id}@example.test>\r\n\r\nbody {id}\r\n")
            .as_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_delivers_signed_verp_campaign() {
    let test = "engine_delivers_signed_verp_campaign";
    let sink = peer_or_skip!(test, harness::smtp_sink(&[], true));
    if !harness::python_has(&["dkim", "nacl"]) {
        harness::missing(test, "python3 with dkimpy and pynacl");
        return;
    }
    let Some(dns) = dns(
        test,
        &[
            "--mx-host=customers.test,mx1.customers.test,10",
            "--host-record=mx1.customers.test,127.0.0.1",
            "--mx-host=partner.test,in.partner.test,10",
            "--host-record=in.partner.test,127.0.0.1",
        ],
    ) else {
        return;
    };
    let engine = engine(
        dns.addr,
        sink.addr.port(),
        shaping(serde_json::json!({})),
        |_| {},
    );
    let rsa = dkim::generate_rsa().expect("rsa");
    let signer = Signer::new("example.test", "mail", rsa.private_pem().as_bytes()).expect("signer");
    let records = vec![(
        dkim::record_name("mail", "example.test"),
        rsa.txt_value.clone(),
    )];
    let verp = Verp::new(VERP_KEY, "bounces.example.test").expect("verp");

    let recipients: Vec<String> = (0..30)
        .map(|i| {
            let domain = if i % 3 == 0 {
                "partner.test"
            } else {
                "customers.test"
            };
            format!("reader{i}@{domain}")
        })
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, rcpt) in recipients.iter().enumerate() {
        let engine = engine.clone();
        let raw = harness::newsletter("news@example.test", rcpt, "November issue", i, 20_000);
        let msg = PreparedMessage::new(&signer.sign(&raw).expect("sign"));
        let from = verp.return_path(7_000 + i as u64, i as u32);
        let rcpt = vec![rcpt.clone()];
        tasks.spawn(async move {
            let out = engine
                .deliver(&DeliveryJob {
                    mail_from: &from,
                    recipients: &rcpt,
                    message: &msg,
                })
                .await;
            (i, out)
        });
    }
    while let Some(res) = tasks.join_next().await {
        let (i, out) = res.expect("task");
        assert_eq!(out.len(), 1);
        match &out[0].status {
            DeliveryStatus::Delivered { host, tls, .. } => {
                assert!(host == "mx1.customers.test" || host == "in.partner.test");
                assert!(!tls);
            }
            other => panic!("message {i}: {other:?}"),
        }
    }
    assert!(engine.idle_connections() > 0, "connections are pooled");
    assert!(
        engine.idle_connections() <= 8,
        "at most max_connections per site"
    );
    engine.shutdown().await;
    assert_eq!(engine.idle_connections(), 0);

    let start = std::time::Instant::now();
    while sink.messages().len() < 30 && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let files = sink.messages();
    assert_eq!(files.len(), 30);
    let crlf = tempfile::tempdir().expect("tempdir");
    let parsed =
        harness::check_messages(&files, &records, Some(crlf.path())).expect("check_eml.py");
    for (file, m) in files.iter().zip(&parsed) {
        assert_eq!(
            m["dkim"],
            serde_json::json!([true]),
            "{} {}",
            m["file"],
            m["dkim_errors"]
        );
        assert_eq!(m["defects"], serde_json::json!([]));
        // The envelope as smtp-sink saw it: VERP sender decodes to the
        // recipient the message was addressed to.
        let dump = std::fs::read_to_string(file).expect("dump");
        let mail_args = dump
            .lines()
            .find_map(|l| l.strip_prefix("X-Mail-Args: <"))
            .and_then(|l| l.split('>').next())
            .expect("X-Mail-Args");
        let (msg_id, idx) = verp.decode(mail_args).expect("VERP decodes");
        assert_eq!(msg_id, 7_000 + u64::from(idx));
        let rcpt_arg = dump
            .lines()
            .find_map(|l| l.strip_prefix("X-Rcpt-Args: <"))
            .and_then(|l| l.split('>').next())
            .expect("X-Rcpt-Args");
        assert_eq!(rcpt_arg, recipients[idx as usize]);
        assert_eq!(m["to"], recipients[idx as usize]);
    }
    let copies = harness::list_files(crlf.path(), None);
    if let Some((ok, out)) = harness::shared_dkim_verify(&copies, &records) {
        assert!(ok && out.contains("30 passed, 0 failed"), "{out}");
    }
}

#[tokio::test]
async fn engine_reuses_connections_up_to_the_profile_limit() {
    let test = "engine_reuses_connections_up_to_the_profile_limit";
    let peer = peer_or_skip!(test, harness::py_peer("accept", &[]));
    let Some(dns) = dns(
        test,
        &[
            "--mx-host=lab.test,mx.lab.test,10",
            "--host-record=mx.lab.test,127.0.0.1",
        ],
    ) else {
        return;
    };
    let cfg = shaping(serde_json::json!({
        "profiles": {"lab": {"mx_suffixes": ["lab.test"], "max_connections": 1,
                             "max_messages_per_connection": 3, "messages_per_minute": 0}}
    }));
    let engine = engine(dns.addr, peer.addr.port(), cfg, |_| {});
    for i in 0..7 {
        let rcpt = vec![format!("r{i}@lab.test")];
        let out = engine
            .deliver(&DeliveryJob {
                mail_from: "b@example.test",
                recipients: &rcpt,
                message: &plain(i),
            })
            .await;
        assert!(out[0].status.is_delivered(), "{out:?}");
    }
    // the last QUITs run in the background
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        peer.count("ehlo"),
        3,
        "3 + 3 + 1 messages over 3 connections"
    );
    assert_eq!(peer.count("data"), 7);
    let site = engine.shaper().site("lab.test");
    assert_eq!(site.profile().name, "lab");
}

#[tokio::test]
async fn engine_fails_over_to_the_next_mx() {
    let test = "engine_fails_over_to_the_next_mx";
    let sink = peer_or_skip!(test, harness::smtp_sink(&[], false));
    let Some(dns) = dns(
        test,
        &[
            "--mx-host=failover.test,mx1.failover.test,10",
            "--mx-host=failover.test,mx2.failover.test,20",
            // nothing listens on 127.0.0.2 at the sink's port
            "--host-record=mx1.failover.test,127.0.0.2",
            "--host-record=mx2.failover.test,127.0.0.1",
        ],
    ) else {
        return;
    };
    let engine = engine(
        dns.addr,
        sink.addr.port(),
        shaping(serde_json::json!({})),
        |c| c.max_idle = Duration::from_millis(300),
    );
    let reaper = engine.spawn_reaper(Duration::from_millis(100));
    let rcpt = vec!["someone@failover.test".to_string()];
    let out = engine
        .deliver(&DeliveryJob {
            mail_from: "b@example.test",
            recipients: &rcpt,
            message: &plain(1),
        })
        .await;
    match &out[0].status {
        DeliveryStatus::Delivered { host, .. } => assert_eq!(host, "mx2.failover.test"),
        other => panic!("{other:?}"),
    }
    assert_eq!(engine.idle_connections(), 1);
    // the reaper closes it once idle for max_idle
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(engine.idle_connections(), 0);
    drop(engine);
    tokio::time::timeout(Duration::from_secs(2), reaper)
        .await
        .expect("reaper ends with the engine")
        .expect("reaper task");
}

#[tokio::test]
async fn engine_puts_rate_limited_site_on_hold() {
    let test = "engine_puts_rate_limited_site_on_hold";
    let peer = peer_or_skip!(test, harness::py_peer("ratelimit", &[]));
    let Some(dns) = dns(
        test,
        &[
            "--mx-host=throttled.test,mx.throttled.test,10",
            "--host-record=mx.throttled.test,127.0.0.1",
        ],
    ) else {
        return;
    };
    let engine = engine(
        dns.addr,
        peer.addr.port(),
        shaping(serde_json::json!({"hold_base_secs": 120})),
        |_| {},
    );
    let rcpt = vec!["a@throttled.test".to_string()];
    let job = DeliveryJob {
        mail_from: "b@example.test",
        recipients: &rcpt,
        message: &plain(1),
    };
    let out = engine.deliver(&job).await;
    assert!(
        matches!(&out[0].status, DeliveryStatus::Deferred(f) if f.reply().map(|r| r.code) == Some(421)),
        "{out:?}"
    );
    let site = engine.shaper().site("throttled.test");
    let until = engine.shaper().on_hold(&site).expect("on hold");
    let left = until
        .duration_since(std::time::SystemTime::now())
        .expect("future");
    assert!(left > Duration::from_secs(100) && left <= Duration::from_secs(120));

    let out = engine.deliver(&job).await;
    match &out[0].status {
        DeliveryStatus::Deferred(f) => {
            assert_eq!(f.stage, Stage::Shaping);
            assert!(matches!(f.cause, FailureCause::SiteOnHold { .. }));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(peer.count("ehlo"), 1, "no connection while on hold");
}

#[tokio::test]
async fn engine_remembers_broken_tls_and_goes_plain() {
    let test = "engine_remembers_broken_tls_and_goes_plain";
    let peer = peer_or_skip!(test, harness::py_peer("tls-broken", &[]));
    let Some(dns) = dns(
        test,
        &[
            "--mx-host=oldtls.test,mx.oldtls.test,10",
            "--host-record=mx.oldtls.test,127.0.0.1",
        ],
    ) else {
        return;
    };
    let engine = engine(
        dns.addr,
        peer.addr.port(),
        shaping(serde_json::json!({})),
        |_| {},
    );
    let rcpt = vec!["a@oldtls.test".to_string()];
    let job = DeliveryJob {
        mail_from: "b@example.test",
        recipients: &rcpt,
        message: &plain(1),
    };
    let out = engine.deliver(&job).await;
    assert!(
        matches!(&out[0].status, DeliveryStatus::Delivered { tls: false, .. }),
        "{out:?}"
    );
    assert!(engine.is_tls_broken("mx.oldtls.test"));
    assert_eq!(peer.count("starttls"), 1);
    engine.shutdown().await;
    // A new connection no longer tries STARTTLS.
    let out = engine.deliver(&job).await;
    assert!(out[0].status.is_delivered());
    assert_eq!(peer.count("starttls"), 1);
    assert_eq!(peer.count("ehlo"), 3);
}

#[tokio::test]
async fn engine_dns_and_address_outcomes() {
    let test = "engine_dns_and_address_outcomes";
    let hole = harness::black_hole();
    let Some(dns) = dns(
        test,
        &[
            "--mx-host=nullmx.test,.,0",
            "--mx-host=fine.test,mx.fine.test,10",
            "--host-record=mx.fine.test,127.0.0.1",
            &format!("--server=/dead.test/127.0.0.1#{}", hole.addr.port()),
        ],
    ) else {
        return;
    };
    // Port 9 (discard) is closed on loopback: connection refused.
    let engine = engine(dns.addr, 9, shaping(serde_json::json!({})), |c| {
        c.client.timeouts = Timeouts::uniform(Duration::from_secs(2));
    });
    let rcpts: Vec<String> = [
        "a@nullmx.test",
        "b@nosuch.test",
        "c@dead.test",
        "not an address",
        "d@fine.test",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = engine
        .deliver(&DeliveryJob {
            mail_from: "b@example.test",
            recipients: &rcpts,
            message: &plain(1),
        })
        .await;
    assert!(
        matches!(&out[0].status, DeliveryStatus::Bounced(f) if f.stage == Stage::Dns),
        "{:?}",
        out[0]
    );
    assert!(
        matches!(&out[1].status, DeliveryStatus::Bounced(f) if f.stage == Stage::Dns),
        "{:?}",
        out[1]
    );
    assert!(
        matches!(&out[2].status, DeliveryStatus::Deferred(f) if f.stage == Stage::Dns),
        "{:?}",
        out[2]
    );
    assert!(
        matches!(&out[3].status, DeliveryStatus::Bounced(f) if f.stage == Stage::Validate),
        "{:?}",
        out[3]
    );
    // connection refused never bounces
    assert!(
        matches!(&out[4].status, DeliveryStatus::Deferred(f) if f.stage == Stage::Connect),
        "{:?}",
        out[4]
    );
    assert!(out.iter().zip(&rcpts).all(|(o, r)| &o.recipient == r));
}

#[tokio::test]
async fn engine_relay_mode_and_required_tls() {
    let test = "engine_relay_mode_and_required_tls";
    if !harness::python_has(&["aiosmtpd"]) {
        harness::missing(test, "python3 with aiosmtpd");
        return;
    }
    // A self-made CA and a relay that requires STARTTLS and AUTH.
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("cert");
    let (cert_path, key_path) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert_path, cert.pem()).expect("write");
    std::fs::write(&key_path, key.serialize_pem()).expect("write");
    let peer = peer_or_skip!(
        test,
        harness::py_peer(
            "accept",
            &[
                "--tls-cert",
                &cert_path.display().to_string(),
                "--tls-key",
                &key_path.display().to_string(),
                "--auth",
                "apikey:SG.secret",
            ]
        )
    );
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).expect("root");

    // DNS must not be consulted in relay mode: the resolver points at a hole.
    let hole = harness::black_hole();
    let relay = RelayConfig::parse(&format!(
        "smtp://apikey:SG.secret@localhost:{}",
        peer.addr.port()
    ))
    .expect("url");
    let mut client = ClientConfig::with_roots("mta.mailstead.test", roots).expect("client");
    client.timeouts = Timeouts::uniform(Duration::from_secs(5));
    let mut cfg = EngineConfig::new(client);
    cfg.shaping = shaping(serde_json::json!({}));
    cfg.relay = Some(relay);
    let relay_engine =
        Engine::new(cfg, Resolver::new(Some(hole.addr)).expect("resolver")).expect("engine");
    let rcpts = vec!["x@gmail.example".to_string(), "y@yahoo.example".to_string()];
    let out = relay_engine
        .deliver(&DeliveryJob {
            mail_from: "b@example.test",
            recipients: &rcpts,
            message: &plain(1),
        })
        .await;
    for o in &out {
        assert!(
            matches!(&o.status, DeliveryStatus::Delivered { tls: true, .. }),
            "{o:?}"
        );
    }
    let envs: Vec<_> = peer.messages().iter().map(|m| peer.envelope(m)).collect();
    assert_eq!(envs.len(), 2, "one transaction per domain");
    assert!(
        envs.iter()
            .all(|e| e["auth"] == "apikey" && e["tls"] == true)
    );
    relay_engine.shutdown().await;

    // Required TLS for a domain whose MX offers no STARTTLS: deferred.
    let sink = peer_or_skip!(test, harness::smtp_sink(&[], false));
    let Some(dns) = dns(
        test,
        &[
            "--mx-host=secure.test,mx.secure.test,10",
            "--host-record=mx.secure.test,127.0.0.1",
        ],
    ) else {
        return;
    };
    let engine = engine(
        dns.addr,
        sink.addr.port(),
        shaping(serde_json::json!({})),
        |c| {
            c.tls_policies =
                HashMap::from([("secure.test".to_string(), TlsPolicy::RequireVerified)]);
        },
    );
    let rcpt = vec!["a@secure.test".to_string()];
    let out = engine
        .deliver(&DeliveryJob {
            mail_from: "b@example.test",
            recipients: &rcpt,
            message: &plain(2),
        })
        .await;
    assert!(
        matches!(&out[0].status, DeliveryStatus::Deferred(f) if f.stage == Stage::StartTls && matches!(f.cause, FailureCause::Tls(_))),
        "{out:?}"
    );
}
