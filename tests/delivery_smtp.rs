//! The SMTP client against real peers on loopback: Postfix smtp-sink and
//! scripted aiosmtpd servers (tests/peers/smtp_peer.py). Every delivered
//! message is parsed with Python's email package and its DKIM signatures
//! verified with dkimpy.

#[path = "peers/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use mailstead::delivery::dkim::{self, Signer};
use mailstead::delivery::shaping::{RateLimitSignal, classify_rate_limit};
use mailstead::delivery::smtp::tls::TlsPolicy;
use mailstead::delivery::{
    ClientConfig, ConnectOptions, DeliveryStatus, FailureCause, PreparedMessage, RelayConfig,
    SmtpConnection, Stage, Timeouts,
};

fn client(timeout: Duration) -> ClientConfig {
    let mut c = ClientConfig::new("mta.mailstead.test").expect("client config");
    c.timeouts = Timeouts::uniform(timeout);
    c
}

struct Keys {
    signer: Signer,
    records: Vec<(String, String)>,
}

fn keys(with_ed25519: bool) -> Keys {
    let rsa = dkim::generate_rsa().expect("rsa key");
    let mut signer =
        Signer::new("example.test", "s2024", rsa.private_pem().as_bytes()).expect("signer");
    let mut records = vec![(
        dkim::record_name("s2024", "example.test"),
        rsa.txt_value.clone(),
    )];
    if with_ed25519 {
        let ed = dkim::generate_ed25519().expect("ed25519 key");
        signer = signer
            .with_ed25519("e2024", ed.private_pem().as_bytes())
            .expect("ed25519 signer");
        records.push((
            dkim::record_name("e2024", "example.test"),
            ed.txt_value.clone(),
        ));
    }
    Keys { signer, records }
}

fn signed(keys: &Keys, to: &str, id: usize, size: usize) -> PreparedMessage {
    let raw = harness::newsletter("news@example.test", to, &format!("Issue {id}"), id, size);
    PreparedMessage::new(&keys.signer.sign(&raw).expect("sign"))
}

/// Parses and DKIM-verifies `files`; also runs ../shared/tools/dkim_verify.py.
fn verify_all(
    files: &[std::path::PathBuf],
    keys: &Keys,
    expected_sigs: usize,
) -> Vec<serde_json::Value> {
    let crlf = tempfile::tempdir().expect("tempdir");
    let parsed =
        harness::check_messages(files, &keys.records, Some(crlf.path())).expect("check_eml.py");
    assert_eq!(parsed.len(), files.len());
    for m in &parsed {
        let summary = format!(
            "{} dkim={} errors={} defects={}",
            m["file"], m["dkim"], m["dkim_errors"], m["defects"]
        );
        assert_eq!(m["dkim_signatures"], expected_sigs, "{summary}");
        let results = m["dkim"].as_array().expect("dkim results");
        assert!(results.iter().all(|r| r == true), "DKIM failed: {summary}");
        assert_eq!(m["defects"].as_array().map(Vec::len), Some(0), "{summary}");
    }
    let copies = harness::list_files(crlf.path(), None);
    if let Some((ok, out)) = harness::shared_dkim_verify(&copies, &keys.records) {
        assert!(ok, "shared dkim_verify.py: {out}");
        assert!(
            out.contains(&format!("{} passed, 0 failed", files.len() * expected_sigs)),
            "{out}"
        );
    }
    parsed
}

#[tokio::test]
async fn sink_pipelines_reuses_and_messages_verify() {
    let sink = peer_or_skip!(
        "sink_pipelines_reuses_and_messages_verify",
        harness::smtp_sink(&[], true)
    );
    if !harness::python_has(&["dkim", "nacl"]) {
        harness::missing(
            "sink_pipelines_reuses_and_messages_verify",
            "python3 with dkimpy and pynacl",
        );
        return;
    }
    let keys = keys(true);
    let cfg = client(Duration::from_secs(10));
    let opts = ConnectOptions::mx("localhost", sink.addr, TlsPolicy::Opportunistic);
    let mut conn = SmtpConnection::connect(&cfg, &opts).await.expect("connect");
    assert!(
        conn.extensions().pipelining,
        "smtp-sink announces PIPELINING"
    );
    assert!(!conn.is_tls());

    for id in 0..3 {
        let rcpts = vec![
            format!("reader{id}@example.org"),
            format!("other{id}@example.org"),
        ];
        let msg = signed(&keys, &rcpts[0], id, 20_000);
        let out = conn
            .send(&format!("bounces+{id}@bounces.example.test"), &rcpts, &msg)
            .await;
        assert_eq!(out.len(), 2);
        for o in &out {
            assert!(o.status.is_delivered(), "{o:?}");
        }
    }
    assert_eq!(conn.transactions(), 3);
    assert!(conn.is_usable());
    conn.quit().await;

    // smtp-sink writes the dump when the transaction ends.
    let start = Instant::now();
    while sink.messages().len() < 3 && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let files = sink.messages();
    assert_eq!(files.len(), 3);
    let parsed = verify_all(&files, &keys, 2);
    for m in &parsed {
        let html = m["html"].as_str().expect("html part").replace("\r\n", "\n");
        assert!(html.len() > 19_000);
        assert!(
            html.contains("\n.a line that starts with a dot\n"),
            "dot-stuffing undone"
        );
        let text = m["text"].as_str().expect("text part").replace("\r\n", "\n");
        assert!(text.contains("\n.\n..two dots\n"), "{text:?}");
        assert!(
            m["list_unsubscribe"]
                .as_str()
                .is_some_and(|s| s.contains("https://example.test/u/"))
        );
    }
    // Dump file names are random within a second: compare as a set.
    let mut senders = Vec::new();
    for f in &files {
        let dump = std::fs::read_to_string(f).expect("dump");
        assert!(dump.contains("X-Helo-Args: mta.mailstead.test"));
        assert_eq!(dump.matches("X-Rcpt-Args:").count(), 2);
        let from = dump
            .lines()
            .find_map(|l| l.strip_prefix("X-Mail-Args: "))
            .expect("X-Mail-Args")
            .to_string();
        senders.push(from);
    }
    senders.sort();
    assert_eq!(
        senders,
        (0..3)
            .map(|i| format!("<bounces+{i}@bounces.example.test>"))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn sink_soft_and_hard_rejections() {
    let sink = peer_or_skip!(
        "sink_soft_and_hard_rejections",
        harness::smtp_sink(&["-r", "RCPT"], false)
    );
    let cfg = client(Duration::from_secs(5));
    let opts = ConnectOptions::mx("localhost", sink.addr, TlsPolicy::Disabled);
    let mut conn = SmtpConnection::connect(&cfg, &opts).await.expect("connect");
    let msg = PreparedMessage::new(b"From: a@example.test\r\n\r\nx\r\n");
    let out = conn
        .send("a@example.test", &["b@example.org".to_string()], &msg)
        .await;
    match &out[0].status {
        DeliveryStatus::Deferred(f) => {
            assert_eq!(f.stage, Stage::RcptTo);
            assert_eq!(f.reply().map(|r| r.code), Some(450));
        }
        other => panic!("{other:?}"),
    }
    // the connection survives an all-rejected transaction (RSET) and can be reused
    assert!(conn.is_usable());
    let out = conn
        .send("a@example.test", &["c@example.org".to_string()], &msg)
        .await;
    assert!(out[0].status.is_deferred());
    conn.quit().await;

    let sink = peer_or_skip!(
        "sink_soft_and_hard_rejections",
        harness::smtp_sink(&["-f", "DATA"], false)
    );
    let opts = ConnectOptions::mx("localhost", sink.addr, TlsPolicy::Disabled);
    let mut conn = SmtpConnection::connect(&cfg, &opts).await.expect("connect");
    let out = conn
        .send("a@example.test", &["b@example.org".to_string()], &msg)
        .await;
    match &out[0].status {
        DeliveryStatus::Bounced(f) => {
            assert_eq!(f.stage, Stage::Data);
            assert_eq!(f.reply().map(|r| r.code), Some(500));
            assert!(!f.suggests_suppression());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn peer_per_recipient_results() {
    let peer = peer_or_skip!(
        "peer_per_recipient_results",
        harness::py_peer("reject-some", &[])
    );
    let keys = keys(false);
    let cfg = client(Duration::from_secs(5));
    let opts = ConnectOptions::mx("localhost", peer.addr, TlsPolicy::Disabled);
    let mut conn = SmtpConnection::connect(&cfg, &opts).await.expect("connect");
    let rcpts: Vec<String> = ["good1", "bad1", "policy1", "later1", "good2"]
        .iter()
        .map(|l| format!("{l}@example.org"))
        .collect();
    let msg = signed(&keys, &rcpts[0], 1, 2_000);
    let out = conn.send("bounces@example.test", &rcpts, &msg).await;
    assert!(out[0].status.is_delivered());
    assert!(out[4].status.is_delivered());
    match &out[1].status {
        DeliveryStatus::Bounced(f) => {
            assert_eq!(
                f.reply()
                    .and_then(|r| r.enhanced)
                    .map(|e| e.to_string())
                    .as_deref(),
                Some("5.1.1")
            );
            assert!(f.suggests_suppression());
            assert!(!f.is_policy());
        }
        other => panic!("{other:?}"),
    }
    match &out[2].status {
        DeliveryStatus::Bounced(f) => {
            assert!(f.is_policy(), "5.7.1 is policy");
            assert!(!f.suggests_suppression(), "never suppress on policy");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&out[3].status, DeliveryStatus::Deferred(f) if f.reply().map(|r| r.code) == Some(450))
    );
    conn.quit().await;

    let files = peer.messages();
    assert_eq!(files.len(), 1);
    let env = peer.envelope(&files[0]);
    assert_eq!(
        env["rcpt_tos"],
        serde_json::json!(["good1@example.org", "good2@example.org"])
    );
    if harness::python_has(&["dkim", "nacl"]) {
        verify_all(&files, &keys, 1);
    }
}

#[tokio::test]
async fn peer_too_many_recipients_continues_on_same_connection() {
    let peer = peer_or_skip!(
        "peer_too_many_recipients",
        harness::py_peer("too-many", &[])
    );
    let cfg = client(Duration::from_secs(5));
    let opts = ConnectOptions::mx("localhost", peer.addr, TlsPolicy::Disabled);
    let mut conn = SmtpConnection::connect(&cfg, &opts).await.expect("connect");
    let rcpts: Vec<String> = (0..5).map(|i| format!("r{i}@example.org")).collect();
    let msg = PreparedMessage::new(b"From: a@example.test\r\nSubject: t\r\n\r\nbody\r\n");
    let out = conn.send("a@example.test", &rcpts, &msg).await;
    assert!(out.iter().all(|o| o.status.is_delivered()), "{out:?}");
    assert_eq!(conn.transactions(), 3);
    assert_eq!(peer.messages().len(), 3);
    assert_eq!(peer.count("ehlo"), 1);
}

#[tokio::test]
async fn peer_connection_dropped_mid_data() {
    let peer = peer_or_skip!(
        "peer_connection_dropped_mid_data",
        harness::py_peer("drop-data", &[])
    );
    let cfg = client(Duration::from_secs(5));
    let opts = ConnectOptions::mx("localhost", peer.addr, TlsPolicy::Disabled);
    let mut conn = SmtpConnection::connect(&cfg, &opts).await.expect("connect");
    let keys = keys(false);
    let msg = signed(&keys, "a@example.org", 1, 300_000);
    let out = conn
        .send("a@example.test", &["a@example.org".to_string()], &msg)
        .await;
    match &out[0].status {
        DeliveryStatus::Deferred(f) => {
            assert_eq!(f.stage, Stage::DataEnd);
            assert!(
                matches!(
                    f.cause,
                    FailureCause::ConnectionClosed | FailureCause::Io(_)
                ),
                "{f:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!conn.is_usable());
}

#[tokio::test]
async fn peer_never_answers_after_data() {
    let peer = peer_or_skip!(
        "peer_never_answers_after_data",
        harness::py_peer("stall-data", &[])
    );
    let mut cfg = client(Duration::from_secs(5));
    cfg.timeouts.data_end = Duration::from_millis(800);
    let opts = ConnectOptions::mx("localhost", peer.addr, TlsPolicy::Disabled);
    let mut conn = SmtpConnection::connect(&cfg, &opts).await.expect("connect");
    let msg = PreparedMessage::new(b"From: a@example.test\r\n\r\nx\r\n");
    let start = Instant::now();
    let out = conn
        .send("a@example.test", &["a@example.org".to_string()], &msg)
        .await;
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(
        matches!(&out[0].status, DeliveryStatus::Deferred(f) if f.stage == Stage::DataEnd && f.cause == FailureCause::Timeout),
        "{out:?}"
    );
    assert!(!conn.is_usable());
}

#[tokio::test]
async fn peer_never_greets() {
    let peer = peer_or_skip!("peer_never_greets", harness::py_peer("stall-greeting", &[]));
    let cfg = client(Duration::from_millis(700));
    let opts = ConnectOptions::mx("localhost", peer.addr, TlsPolicy::Disabled);
    let err = SmtpConnection::connect(&cfg, &opts)
        .await
        .expect_err("must time out");
    assert_eq!(err.failure.stage, Stage::Greeting);
    assert_eq!(err.failure.cause, FailureCause::Timeout);
    assert!(!err.tls_failed);
}

#[tokio::test]
async fn peer_sends_garbage() {
    let peer = peer_or_skip!("peer_sends_garbage", harness::py_peer("garbage", &[]));
    let cfg = client(Duration::from_secs(3));
    let opts = ConnectOptions::mx("localhost", peer.addr, TlsPolicy::Disabled);
    let err = SmtpConnection::connect(&cfg, &opts)
        .await
        .expect_err("garbage");
    assert_eq!(err.failure.stage, Stage::Ehlo);
    assert!(
        matches!(&err.failure.cause, FailureCause::Protocol(s) if s.contains("HTTP/1.1")),
        "{err:?}"
    );

    let peer = peer_or_skip!("peer_sends_garbage", harness::py_peer("long-line", &[]));
    let opts = ConnectOptions::mx("localhost", peer.addr, TlsPolicy::Disabled);
    let err = SmtpConnection::connect(&cfg, &opts)
        .await
        .expect_err("long line");
    assert!(
        matches!(&err.failure.cause, FailureCause::Protocol(s) if s.contains("too long")),
        "{err:?}"
    );
}

#[tokio::test]
async fn peer_rate_limit_and_deferrals() {
    let peer = peer_or_skip!(
        "peer_rate_limit_and_deferrals",
        harness::py_peer("ratelimit", &[])
    );
    let cfg = client(Duration::from_secs(3));
    let msg = PreparedMessage::new(b"From: a@example.test\r\n\r\nx\r\n");
    let opts = ConnectOptions::mx("localhost", peer.addr, TlsPolicy::Disabled);
    let mut conn = SmtpConnection::connect(&cfg, &opts).await.expect("connect");
    let out = conn
        .send(
            "a@example.test",
            &["a@example.org".to_string(), "b@example.org".to_string()],
            &msg,
        )
        .await;
    let f = out[0].status.failure().expect("failure");
    assert!(out[0].status.is_deferred());
    let reply = f.reply().expect("reply");
    assert_eq!(reply.code, 421);
    assert_eq!(classify_rate_limit(reply), Some(RateLimitSignal::YahooTs));
    assert!(out[1].status.is_deferred());
    assert!(!conn.is_usable(), "421 closes the session");

    let peer = peer_or_skip!(
        "peer_rate_limit_and_deferrals",
        harness::py_peer("defer-mail", &[])
    );
    let opts = ConnectOptions::mx("localhost", peer.addr, TlsPolicy::Disabled);
    let mut conn = SmtpConnection::connect(&cfg, &opts).await.expect("connect");
    let out = conn
        .send("a@example.test", &["a@example.org".to_string()], &msg)
        .await;
    assert!(matches!(&out[0].status, DeliveryStatus::Deferred(f) if f.stage == Stage::MailFrom));
    assert!(conn.is_usable());

    let peer = peer_or_skip!(
        "peer_rate_limit_and_deferrals",
        harness::py_peer("reject-data", &[])
    );
    let opts = ConnectOptions::mx("localhost", peer.addr, TlsPolicy::Disabled);
    let mut conn = SmtpConnection::connect(&cfg, &opts).await.expect("connect");
    let out = conn
        .send("a@example.test", &["a@example.org".to_string()], &msg)
        .await;
    match &out[0].status {
        DeliveryStatus::Bounced(f) => {
            assert_eq!(f.stage, Stage::DataEnd);
            assert!(f.is_policy());
            assert!(!f.suggests_suppression());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn peer_size_utf8_8bit_and_injection() {
    let peer = peer_or_skip!(
        "peer_size_utf8_8bit_and_injection",
        harness::py_peer("accept", &[])
    );
    let cfg = client(Duration::from_secs(5));
    let opts = ConnectOptions::mx("localhost", peer.addr, TlsPolicy::Disabled);
    let mut conn = SmtpConnection::connect(&cfg, &opts).await.expect("connect");
    assert_eq!(conn.extensions().size, Some(10 * 1024 * 1024));
    assert!(!conn.extensions().smtputf8);

    // SIZE: refused before DATA
    let big = PreparedMessage::new(&vec![b'a'; 11 * 1024 * 1024]);
    let out = conn
        .send("a@example.test", &["a@example.org".to_string()], &big)
        .await;
    assert!(
        matches!(&out[0].status, DeliveryStatus::Bounced(f) if matches!(f.cause, FailureCause::MessageTooLarge { .. }))
    );

    // CR/LF injection and over-long addresses never reach the server
    let msg = PreparedMessage::new(
        "From: a@example.test\r\nSubject: 8bit\r\n\r\nnaïve café\r\n".as_bytes(),
    );
    let rcpts = vec![
        "ok@example.org".to_string(),
        "evil@example.org>\r\nRCPT TO:<victim@example.org".to_string(),
        format!("{}@example.org", "x".repeat(65)),
        "jösé@example.org".to_string(),
    ];
    let out = conn.send("a@example.test", &rcpts, &msg).await;
    assert!(out[0].status.is_delivered(), "{out:?}");
    assert!(
        matches!(&out[1].status, DeliveryStatus::Bounced(f) if f.stage == Stage::Validate && f.suggests_suppression())
    );
    assert!(matches!(&out[2].status, DeliveryStatus::Bounced(f) if f.stage == Stage::Validate));
    assert!(
        matches!(&out[3].status, DeliveryStatus::Bounced(f) if f.cause == FailureCause::SmtpUtf8Unsupported)
    );
    let bad_sender = conn.send("a@example.test\r\nDATA", &rcpts[..1], &msg).await;
    assert!(
        matches!(&bad_sender[0].status, DeliveryStatus::Bounced(f) if !f.suggests_suppression())
    );
    conn.quit().await;

    let files = peer.messages();
    assert_eq!(files.len(), 1);
    let env = peer.envelope(&files[0]);
    assert_eq!(env["rcpt_tos"], serde_json::json!(["ok@example.org"]));
    let opts_list = env["mail_options"].as_array().expect("options");
    assert!(opts_list.iter().any(|o| o == "BODY=8BITMIME"), "{env}");
    assert!(
        opts_list
            .iter()
            .any(|o| o.as_str().is_some_and(|s| s.starts_with("SIZE="))),
        "{env}"
    );

    // with SMTPUTF8 on the server the UTF-8 address goes through
    let peer = peer_or_skip!(
        "peer_size_utf8_8bit_and_injection",
        harness::py_peer("accept", &["--smtputf8"])
    );
    let opts = ConnectOptions::mx("localhost", peer.addr, TlsPolicy::Disabled);
    let mut conn = SmtpConnection::connect(&cfg, &opts).await.expect("connect");
    let out = conn
        .send("a@example.test", &["jösé@example.org".to_string()], &msg)
        .await;
    assert!(out[0].status.is_delivered(), "{out:?}");
    let env = peer.envelope(&peer.messages()[0]);
    assert!(
        env["mail_options"]
            .as_array()
            .is_some_and(|o| o.iter().any(|x| x == "SMTPUTF8")),
        "{env}"
    );
}

/// A CA and a server certificate for localhost / 127.0.0.1, written to `dir`.
fn tls_files(dir: &std::path::Path) -> (rustls::RootCertStore, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("params");
    let cert = params.signed_by(&key, &issuer).expect("server cert");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).expect("root");
    (
        roots,
        cert_path.display().to_string(),
        key_path.display().to_string(),
    )
}

#[tokio::test]
async fn starttls_verified_relay_with_auth() {
    if !harness::python_has(&["aiosmtpd"]) {
        harness::missing("starttls_verified_relay_with_auth", "python3 with aiosmtpd");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (roots, cert, key) = tls_files(dir.path());
    let peer = peer_or_skip!(
        "starttls_verified_relay_with_auth",
        harness::py_peer(
            "accept",
            &[
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--auth",
                "relayuser:s3cr@t"
            ]
        )
    );
    let mut cfg = ClientConfig::with_roots("mta.mailstead.test", roots).expect("config");
    cfg.timeouts = Timeouts::uniform(Duration::from_secs(5));
    let relay = RelayConfig::parse(&format!(
        "smtp://relayuser:s3cr%40t@127.0.0.1:{}",
        peer.addr.port()
    ))
    .expect("relay url");
    assert_eq!(relay.tls, TlsPolicy::RequireVerified);
    let creds = relay.credentials.clone().expect("credentials");
    let opts = ConnectOptions {
        host: &relay.host,
        addr: peer.addr,
        tls: relay.tls,
        implicit_tls: relay.implicit_tls,
        credentials: Some(&creds),
        allow_plaintext_auth: relay.allow_plaintext_auth(),
    };
    let mut conn = SmtpConnection::connect(&cfg, &opts)
        .await
        .expect("relay connect");
    assert!(conn.is_tls() && conn.is_tls_verified());
    let msg = PreparedMessage::new(b"From: a@example.test\r\nSubject: relay\r\n\r\nvia relay\r\n");
    let out = conn
        .send("a@example.test", &["x@example.org".to_string()], &msg)
        .await;
    assert!(out[0].status.is_delivered(), "{out:?}");
    assert!(matches!(
        &out[0].status,
        DeliveryStatus::Delivered { tls: true, .. }
    ));
    conn.quit().await;
    let env = peer.envelope(&peer.messages()[0]);
    assert_eq!(env["tls"], true);
    assert_eq!(env["auth"], "relayuser");

    // wrong password: an Auth failure, not a crash or a bounce
    let wrong = relay::creds("relayuser", "nope");
    let opts_wrong = ConnectOptions {
        credentials: Some(&wrong),
        ..opts.clone()
    };
    let err = SmtpConnection::connect(&cfg, &opts_wrong)
        .await
        .expect_err("bad password");
    assert_eq!(err.failure.stage, Stage::Auth);

    // verification against other roots fails, and is not "tls_failed" (no plain retry)
    let other = ClientConfig::new("mta.mailstead.test").expect("config");
    let v = ConnectOptions::mx("localhost", peer.addr, TlsPolicy::RequireVerified);
    let err = SmtpConnection::connect(&other, &v)
        .await
        .expect_err("unknown CA");
    assert_eq!(err.failure.stage, Stage::StartTls);
    assert!(matches!(err.failure.cause, FailureCause::Tls(_)));
    assert!(!err.tls_failed);

    // opportunistic TLS accepts any certificate
    let o = ConnectOptions::mx("localhost", peer.addr, TlsPolicy::Opportunistic);
    let conn = SmtpConnection::connect(&other, &o)
        .await
        .expect("opportunistic");
    assert!(conn.is_tls() && !conn.is_tls_verified());
}

#[tokio::test]
async fn tls_required_but_not_offered_and_broken_tls() {
    let sink = peer_or_skip!(
        "tls_required_but_not_offered",
        harness::smtp_sink(&[], false)
    );
    let cfg = client(Duration::from_secs(3));
    let opts = ConnectOptions::mx("localhost", sink.addr, TlsPolicy::RequireVerified);
    let err = SmtpConnection::connect(&cfg, &opts)
        .await
        .expect_err("no STARTTLS");
    assert_eq!(err.failure.stage, Stage::StartTls);
    assert!(!err.tls_failed);

    let peer = peer_or_skip!(
        "tls_required_but_not_offered",
        harness::py_peer("tls-broken", &[])
    );
    let opts = ConnectOptions::mx("localhost", peer.addr, TlsPolicy::Opportunistic);
    let err = SmtpConnection::connect(&cfg, &opts)
        .await
        .expect_err("broken TLS");
    assert!(
        err.tls_failed,
        "caller is told to retry in plain text: {err:?}"
    );
    let plain = ConnectOptions::mx("localhost", peer.addr, TlsPolicy::Disabled);
    let mut conn = SmtpConnection::connect(&cfg, &plain).await.expect("plain");
    let msg = PreparedMessage::new(b"From: a@example.test\r\n\r\nx\r\n");
    let out = conn
        .send("a@example.test", &["a@example.org".to_string()], &msg)
        .await;
    assert!(matches!(
        &out[0].status,
        DeliveryStatus::Delivered { tls: false, .. }
    ));
}

#[tokio::test]
async fn plaintext_relay_auth_only_when_allowed() {
    let peer = peer_or_skip!(
        "plaintext_relay_auth_only_when_allowed",
        harness::py_peer("accept", &["--auth", "u:p", "--plain-auth-ok"])
    );
    let cfg = client(Duration::from_secs(3));
    let creds = relay::creds("u", "p");
    let mut opts = ConnectOptions {
        host: "127.0.0.1",
        addr: peer.addr,
        tls: TlsPolicy::Disabled,
        implicit_tls: false,
        credentials: Some(&creds),
        allow_plaintext_auth: false,
    };
    let err = SmtpConnection::connect(&cfg, &opts)
        .await
        .expect_err("refuses plain AUTH");
    assert_eq!(err.failure.stage, Stage::Auth);
    assert_eq!(peer.count("auth"), 0, "credentials never sent");
    opts.allow_plaintext_auth = true;
    let mut conn = SmtpConnection::connect(&cfg, &opts)
        .await
        .expect("plain auth allowed");
    let msg = PreparedMessage::new(b"From: a@example.test\r\n\r\nx\r\n");
    let out = conn
        .send("a@example.test", &["a@example.org".to_string()], &msg)
        .await;
    assert!(out[0].status.is_delivered());
}

mod relay {
    pub fn creds(u: &str, p: &str) -> mailstead::delivery::Credentials {
        mailstead::delivery::Credentials::new(u, p)
    }
}

#[tokio::test]
async fn smtps_implicit_tls_relay() {
    if !harness::python_has(&["aiosmtpd"]) {
        harness::missing("smtps_implicit_tls_relay", "python3 with aiosmtpd");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (roots, cert, key) = tls_files(dir.path());
    let peer = peer_or_skip!(
        "smtps_implicit_tls_relay",
        harness::py_peer(
            "accept",
            &[
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--implicit-tls",
                "--auth",
                "u:p",
                "--plain-auth-ok"
            ]
        )
    );
    let mut cfg = ClientConfig::with_roots("mta.mailstead.test", roots).expect("config");
    cfg.timeouts = Timeouts::uniform(Duration::from_secs(5));
    let relay =
        RelayConfig::parse(&format!("smtps://u:p@localhost:{}", peer.addr.port())).expect("url");
    assert!(relay.implicit_tls);
    let creds = relay.credentials.clone().expect("creds");
    let opts = ConnectOptions {
        host: &relay.host,
        addr: peer.addr,
        tls: relay.tls,
        implicit_tls: true,
        credentials: Some(&creds),
        allow_plaintext_auth: false,
    };
    let mut conn = SmtpConnection::connect(&cfg, &opts)
        .await
        .expect("smtps connect");
    assert!(conn.is_tls() && conn.is_tls_verified());
    assert!(!conn.extensions().starttls);
    let msg = PreparedMessage::new(b"From: a@example.test\r\n\r\nover smtps\r\n");
    let out = conn
        .send("a@example.test", &["x@example.org".to_string()], &msg)
        .await;
    assert!(
        matches!(&out[0].status, DeliveryStatus::Delivered { tls: true, .. }),
        "{out:?}"
    );
    conn.quit().await;
    assert_eq!(peer.envelope(&peer.messages()[0])["auth"], "u");
}

#[tokio::test]
async fn sink_hangs_up_mid_transaction() {
    let test = "sink_hangs_up_mid_transaction";
    let msg = PreparedMessage::new(b"From: a@example.test\r\n\r\nx\r\n");
    let rcpts = vec!["a@example.org".to_string(), "b@example.org".to_string()];
    let cfg = client(Duration::from_secs(5));

    // 421 to MAIL, then disconnect: the 421 is the outcome, not "closed".
    let sink = peer_or_skip!(test, harness::smtp_sink(&["-Q", "MAIL"], false));
    let opts = ConnectOptions::mx("localhost", sink.addr, TlsPolicy::Disabled);
    let mut conn = SmtpConnection::connect(&cfg, &opts).await.expect("connect");
    let out = conn.send("s@example.test", &rcpts, &msg).await;
    for o in &out {
        match &o.status {
            DeliveryStatus::Deferred(f) => {
                assert_eq!(f.stage, Stage::MailFrom);
                assert_eq!(f.reply().map(|r| r.code), Some(421), "{f:?}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(!conn.is_usable());

    // Silent disconnect after RCPT.
    let sink = peer_or_skip!(test, harness::smtp_sink(&["-q", "RCPT"], false));
    let opts = ConnectOptions::mx("localhost", sink.addr, TlsPolicy::Disabled);
    let mut conn = SmtpConnection::connect(&cfg, &opts).await.expect("connect");
    let out = conn.send("s@example.test", &rcpts, &msg).await;
    for o in &out {
        assert!(
            matches!(&o.status, DeliveryStatus::Deferred(f) if f.stage == Stage::RcptTo && f.cause == FailureCause::ConnectionClosed),
            "{o:?}"
        );
    }

    // 550 after DATA while the client is still writing (smtp-sink -A 0).
    let sink = peer_or_skip!(test, harness::smtp_sink(&["-A", "0"], false));
    let opts = ConnectOptions::mx("localhost", sink.addr, TlsPolicy::Disabled);
    let mut conn = SmtpConnection::connect(&cfg, &opts).await.expect("connect");
    let big = PreparedMessage::new(&vec![b'x'; 4 * 1024 * 1024]);
    let out = conn.send("s@example.test", &rcpts[..1], &big).await;
    let f = out[0].status.failure().expect("failed");
    assert_eq!(f.stage, Stage::DataEnd, "{f:?}");
    assert!(!conn.is_usable());
}
