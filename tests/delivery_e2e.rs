//! The delivery path end to end through the real binary: `POST /api/v1/tx`
//! → durable queue → workers → MX lookup at dnsmasq → SMTP to real peers
//! (Postfix smtp-sink, aiosmtpd scripts) on loopback → per-recipient status
//! in `GET /api/v1/messages/{id}`. Delivered messages are checked with
//! dkimpy and Python's email package; failure modes (null MX, DNS errors,
//! 5xx/4xx replies, connections dropped or stalled mid-DATA), bad input and
//! a kill -9 crash test with 10,000 recipients.
//!
//! Every MX host of a test resolves to its own loopback address and all
//! peers of a test listen on the same port (`MAILSTEAD_SMTP_PORT`). A
//! missing peer prints `SKIP …` unless `MAILSTEAD_REQUIRE_PEERS=1`.

mod common;
#[path = "peers/harness.rs"]
mod harness;

use common::{Server, error_of, with_dkim};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::time::{Duration, Instant};

const BOUNCE_DOMAIN: &str = "bounces.mailstead.test";
const HOSTNAME: &str = "mta.mailstead.test";

/// Checks the peers a test needs; false (after a SKIP line) when one is missing.
fn have_peers(test: &str, sink: bool, python: &[&str]) -> bool {
    if harness::dnsmasq_bin().is_none() {
        harness::missing(test, "dnsmasq not found");
        return false;
    }
    if sink && harness::smtp_sink_bin().is_none() {
        harness::missing(test, "Postfix smtp-sink not found (set SMTP_SINK)");
        return false;
    }
    if !python.is_empty() && !harness::python_has(python) {
        harness::missing(
            test,
            &format!("python3 with {} not found", python.join(", ")),
        );
        return false;
    }
    true
}

/// dnsmasq answering NXDOMAIN for unknown names under `.test` plus `records`.
fn dns(records: &[String]) -> harness::Dnsmasq {
    let mut opts = vec!["--local=/test/".to_string()];
    opts.extend(records.iter().cloned());
    harness::dnsmasq(&opts).expect("dnsmasq (installed) starts")
}

/// MX `mx.<domain>` → `ip` for each `(domain, ip)`; each MX host is its own site.
fn mx_records(domains: &[(&str, &str)]) -> Vec<String> {
    let mut out = Vec::new();
    for (d, ip) in domains {
        out.push(format!("--mx-host={d},mx.{d},10"));
        out.push(format!("--host-record=mx.{d},{ip}"));
    }
    out
}

/// A port free on every given loopback address (TCP and UDP).
fn shared_port(ips: &[&str]) -> u16 {
    'next: for _ in 0..100 {
        let port = harness::free_port(ips[0]);
        for ip in &ips[1..] {
            if TcpListener::bind((*ip, port)).is_err() {
                continue 'next;
            }
        }
        return port;
    }
    panic!("no port free on {ips:?}");
}

fn delivery_env(dns: SocketAddr, smtp_port: u16) -> Vec<(String, String)> {
    vec![
        ("MAILSTEAD_DNS_SERVER".into(), dns.to_string()),
        ("MAILSTEAD_SMTP_PORT".into(), smtp_port.to_string()),
        ("MAILSTEAD_ALLOW_PRIVATE_TARGETS".into(), "true".into()),
        ("MAILSTEAD_HOSTNAME".into(), HOSTNAME.into()),
        ("MAILSTEAD_BOUNCE_DOMAIN".into(), BOUNCE_DOMAIN.into()),
    ]
}

fn start(env: &[(String, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start_with(&env)
}

/// Posts a transactional message; returns its id (asserting 202).
fn send(s: &Server, body: &Value) -> u64 {
    let r = s.post("/api/v1/tx", body);
    let status = r.status();
    let v: Value = r.json().unwrap_or(Value::Null);
    assert_eq!(status, 202, "POST /api/v1/tx {body}: {v}");
    v["message_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no message_id in {v}"))
}

/// Polls `GET /api/v1/messages/{id}` until `done` holds (deadline 60 s).
fn wait_message(s: &Server, id: u64, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = s.get_json(&format!("/api/v1/messages/{id}"));
        if done(&m) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "message {id} never became {what}: {m:#}\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status_is(want: &'static str) -> impl Fn(&Value) -> bool {
    move |m: &Value| m["status"] == want
}

/// The single recipient of a message view.
fn only(m: &Value) -> &Value {
    let r = m["recipients"].as_array().expect("recipients");
    assert_eq!(r.len(), 1, "{m:#}");
    &r[0]
}

fn last_event(d: &Value) -> &Value {
    d["events"]
        .as_array()
        .and_then(|e| e.last())
        .unwrap_or_else(|| panic!("no events: {d:#}"))
}

/// Header lines `name: <value>` of an smtp-sink dump, values without brackets.
fn sink_args(dump: &str, name: &str) -> Vec<String> {
    dump.lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.strip_prefix(name))
        .map(|v| {
            v.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
        .collect()
}

fn wait_files(count: usize, what: &str, files: impl Fn() -> Vec<std::path::PathBuf>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while files().len() < count {
        assert!(
            Instant::now() < deadline,
            "{what}: {} of {count} files",
            files().len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn tx_is_delivered_direct_to_mx_signed_and_verp_addressed() {
    let test = "tx_is_delivered_direct_to_mx_signed_and_verp_addressed";
    if !have_peers(test, true, &["dkim", "nacl"]) {
        return;
    }
    let ip = "127.0.0.2";
    let sink =
        harness::smtp_sink_at(ip, Some(shared_port(&[ip])), &[], true).expect("smtp-sink starts");
    let dns = dns(&mx_records(&[("customers.test", ip), ("partner.test", ip)]));
    let mut s = start(&delivery_env(dns.addr, sink.addr.port()));
    let record = with_dkim(&mut s, "example.test");
    assert_eq!(record.0, "s1._domainkey.example.test");

    let a = send(
        &s,
        &json!({
            "from": "News <news@example.test>",
            "to": ["ann@customers.test", "Bob Partner <bob@partner.test>"],
            "subject": "Hello {{ name }}",
            "html": "<h1>Welcome, {{ name }}</h1><p>Your course starts <b>Monday</b>.</p>",
            "data": {"name": "Ann & Co"},
            "headers": {"X-Campaign": "november"},
        }),
    );
    let b = send(
        &s,
        &json!({
            "from": "news@example.test",
            "to": "Cleo <cleo@customers.test>",
            "reply_to": "desk@example.test",
            "subject": "Receipt",
            "html": "<p>Thanks for your order.</p>",
            "text": "Thanks for your order.",
        }),
    );
    for id in [a, b] {
        let m = wait_message(&s, id, "sent", status_is("sent"));
        for d in m["recipients"].as_array().unwrap() {
            assert_eq!(d["state"], "sent", "{d:#}");
            assert!(d["next_attempt"].is_null(), "{d:#}");
            assert_eq!(d["attempts"], 1);
            let e = last_event(d);
            assert_eq!(e["code"], 250, "the remote reply is recorded: {e}");
            assert!(
                e["text"].as_str().unwrap().contains("Ok"),
                "smtp-sink's reply text: {e}"
            );
            assert_eq!(e["mx"], format!("mx.{}", d["domain"].as_str().unwrap()));
        }
    }
    let log = s.get_json("/api/v1/deliveries?recipient=ann@customers.test");
    assert_eq!(log["items"].as_array().unwrap().len(), 1);
    assert_eq!(log["items"][0]["state"], "sent");
    let q = s.get_json("/api/v1/queue");
    assert_eq!(q["waiting"], 0, "{q}");

    wait_files(3, "smtp-sink dumps", || sink.messages());
    let files = sink.messages();
    assert_eq!(files.len(), 3, "one copy per recipient");
    let crlf = tempfile::tempdir().unwrap();
    let parsed = harness::check_messages(&files, std::slice::from_ref(&record), Some(crlf.path()))
        .expect("check_eml.py");
    assert_eq!(parsed.len(), 3);
    let mut return_paths = Vec::new();
    let mut seen = Vec::new();
    for (file, m) in files.iter().zip(&parsed) {
        assert_eq!(m["dkim"], json!([true]), "{file:?}: {}", m["dkim_errors"]);
        assert_eq!(m["defects"], json!([]), "{file:?}");
        assert_eq!(m["content_type"], "multipart/alternative", "{m}");
        assert!(m["from"].as_str().unwrap().contains("news@example.test"));
        assert!(m["html"].is_string() && m["text"].is_string(), "{m}");
        let dump = std::fs::read_to_string(file).unwrap();
        let rcpts = sink_args(&dump, "X-Rcpt-Args:");
        assert_eq!(rcpts.len(), 1, "one recipient per transaction");
        let rcpt = rcpts[0].clone();
        assert!(m["to"].as_str().unwrap().contains("@"), "{m}");
        let mail_from = sink_args(&dump, "X-Mail-Args:");
        let mail_from = mail_from[0].split_whitespace().next().unwrap().to_string();
        assert!(
            mail_from.ends_with(&format!("@{BOUNCE_DOMAIN}")),
            "VERP return path on the bounce domain: {mail_from}"
        );
        assert!(
            !mail_from.starts_with("news@"),
            "the return path is not the From address"
        );
        return_paths.push(mail_from);
        if rcpt == "cleo@customers.test" {
            assert_eq!(m["subject"], "Receipt");
            assert!(m["to"].as_str().unwrap().contains("cleo@customers.test"));
            assert_eq!(m["text"].as_str().unwrap().trim(), "Thanks for your order.");
        } else {
            assert_eq!(m["subject"], "Hello Ann & Co", "subject personalised");
            let html = m["html"].as_str().unwrap();
            assert!(html.contains("Welcome, Ann &amp; Co"), "escaped: {html}");
            let text = m["text"].as_str().unwrap();
            assert!(
                text.contains("Welcome, Ann & Co") && text.contains("Monday"),
                "text generated from the HTML: {text}"
            );
            assert!(dump.contains("X-Campaign: november"));
        }
        seen.push(rcpt);
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "ann@customers.test",
            "bob@partner.test",
            "cleo@customers.test"
        ]
    );
    return_paths.sort();
    return_paths.dedup();
    assert_eq!(return_paths.len(), 3, "one VERP address per recipient");
    let copies = harness::list_files(crlf.path(), None);
    if let Some((ok, out)) = harness::shared_dkim_verify(&copies, std::slice::from_ref(&record)) {
        assert!(ok && out.contains("3 passed, 0 failed"), "{out}");
    }
}

/// Answers every DNS query with SERVFAIL.
struct ServFail {
    addr: SocketAddr,
    _thread: std::thread::JoinHandle<()>,
}

fn servfail_server() -> ServFail {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            let mut r = buf[..n].to_vec();
            r[2] |= 0x80; // QR
            r[3] = (r[3] & 0xf0) | 0x80 | 2; // RA, SERVFAIL
            let _ = sock.send_to(&r, from);
        }
    });
    ServFail {
        addr,
        _thread: thread,
    }
}

#[test]
fn dns_failures_bounce_or_defer_without_touching_the_a_record() {
    let test = "dns_failures_bounce_or_defer_without_touching_the_a_record";
    if !have_peers(test, false, &[]) {
        return;
    }
    // Every name below has an A record pointing at this trap: a delivery that
    // falls back to it (or connects despite a null MX) shows up as a connection.
    let trap_ip = "127.0.0.9";
    let port = shared_port(&[trap_ip]);
    let trap = TcpListener::bind((trap_ip, port)).unwrap();
    trap.set_nonblocking(true).unwrap();
    let refusing = harness::dnsmasq(&[]).expect("dnsmasq starts"); // REFUSED to all
    let failing = servfail_server();
    let dns = dns(&[
        "--mx-host=nullmx.test,.,0".into(),
        format!("--host-record=nullmx.test,{trap_ip}"),
        format!("--host-record=refused.test,{trap_ip}"),
        format!("--host-record=servfail.test,{trap_ip}"),
        format!("--server=/refused.test/127.0.0.1#{}", refusing.addr.port()),
        format!("--server=/servfail.test/127.0.0.1#{}", failing.addr.port()),
    ]);
    let s = start(&delivery_env(dns.addr, port));
    let tx = |to: &str| {
        send(
            &s,
            &json!({"from": "news@example.test", "to": to, "subject": "s", "text": "t"}),
        )
    };
    let nullmx = tx("ann@nullmx.test");
    let nxdomain = tx("ann@nosuchdomain.test");
    let refused = tx("ann@refused.test");
    let servfail = tx("ann@servfail.test");

    for (id, why) in [(nullmx, "null MX"), (nxdomain, "NXDOMAIN")] {
        let m = wait_message(&s, id, "bounced/failed", |m| {
            m["status"] == "bounced" || m["status"] == "failed"
        });
        let d = only(&m);
        assert!(d["next_attempt"].is_null(), "{why}: final at once: {d:#}");
        assert_eq!(d["attempts"], 1, "{why}: first attempt: {d:#}");
        eprintln!("{why}: {}", last_event(d)["text"]);
    }
    let m = s.get_json(&format!("/api/v1/messages/{nullmx}"));
    let text = last_event(only(&m))["text"]
        .as_str()
        .unwrap()
        .to_lowercase();
    assert!(text.contains("null mx"), "{text}");

    for (id, why) in [(refused, "REFUSED"), (servfail, "SERVFAIL")] {
        let m = wait_message(&s, id, "deferred", status_is("deferred"));
        let d = only(&m);
        assert!(
            d["next_attempt"].is_string(),
            "{why}: a next attempt is scheduled: {d:#}"
        );
        assert_eq!(last_event(d)["state"], "deferred");
        assert!(
            last_event(d)["code"].is_null(),
            "{why}: no SMTP reply: {d:#}"
        );
        eprintln!("{why}: {}", last_event(d)["text"]);
    }
    match trap.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("something connected to the A-record trap: {other:?}"),
    }
    let q = s.get_json("/api/v1/queue");
    assert_eq!(
        q["waiting"], 2,
        "the two DNS failures wait for a retry: {q}"
    );
}

#[test]
fn smtp_replies_bounce_or_defer_and_a_stalled_peer_blocks_nobody() {
    let test = "smtp_replies_bounce_or_defer_and_a_stalled_peer_blocks_nobody";
    if !have_peers(test, true, &["aiosmtpd"]) {
        return;
    }
    let ips = [
        "127.0.0.2",
        "127.0.0.3",
        "127.0.0.4",
        "127.0.0.5",
        "127.0.0.6",
        "127.0.0.7",
    ];
    let port = shared_port(&ips);
    let ok = harness::smtp_sink_at(ips[0], Some(port), &[], true).expect("smtp-sink");
    let peer = |ip: &str, mode: &str| {
        harness::py_peer_at(ip, port, mode, &[]).unwrap_or_else(|e| panic!("{mode} peer: {e}"))
    };
    let reject = peer(ips[1], "reject-some");
    let defer = peer(ips[2], "defer-mail");
    let ratelimit = peer(ips[3], "ratelimit");
    let dropper = peer(ips[4], "drop-data");
    let stall = peer(ips[5], "stall-data");
    let dns = dns(&mx_records(&[
        ("ok.test", ips[0]),
        ("reject.test", ips[1]),
        ("defer.test", ips[2]),
        ("busy.test", ips[3]),
        ("drop.test", ips[4]),
        ("stall.test", ips[5]),
    ]));
    let s = start(&delivery_env(dns.addr, port));
    let tx = |to: &str| {
        send(
            &s,
            &json!({"from": "news@example.test", "to": to, "subject": "s", "html": "<p>hi</p>"}),
        )
    };

    // A stalled DATA holds one connection; everything else keeps flowing.
    let stalled = tx("ann@stall.test");
    let deadline = Instant::now() + Duration::from_secs(30);
    while stall.count("stalled") == 0 {
        assert!(
            Instant::now() < deadline,
            "the stall peer never got the data"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let unknown = tx("bad1@reject.test");
    let policy = tx("policy1@reject.test");
    let greylisted = tx("later1@reject.test");
    let fine = tx("fine@reject.test");
    let mail_451 = tx("ann@defer.test");
    let rate_421 = tx("ann@busy.test");
    let dropped = tx("ann@drop.test");
    let healthy = tx("ann@ok.test");

    let t0 = Instant::now();
    let m = wait_message(&s, healthy, "sent", status_is("sent"));
    assert_eq!(last_event(only(&m))["code"], 250);
    eprintln!("healthy sent after {:?}", t0.elapsed());
    let m = wait_message(&s, fine, "sent", status_is("sent"));
    assert_eq!(last_event(only(&m))["code"], 250);

    let m = wait_message(&s, unknown, "bounced", status_is("bounced"));
    let d = only(&m);
    let e = last_event(d);
    assert_eq!(
        (e["code"].clone(), e["enhanced"].clone()),
        (json!(550), json!("5.1.1"))
    );
    assert_eq!(d["policy"], false, "user unknown is a hard bounce: {d:#}");
    assert!(d["next_attempt"].is_null());
    assert!(e["text"].as_str().unwrap().contains("User unknown"), "{e}");

    let m = wait_message(&s, policy, "bounced", status_is("bounced"));
    let d = only(&m);
    assert_eq!(last_event(d)["enhanced"], "5.7.1");
    assert_eq!(d["policy"], true, "5.7.x is flagged as policy: {d:#}");
    assert!(d["next_attempt"].is_null());

    for (id, code, why) in [
        (greylisted, 450, "450 at RCPT"),
        (mail_451, 451, "451 at MAIL"),
        (rate_421, 421, "421 at RCPT"),
    ] {
        let m = wait_message(&s, id, "deferred", status_is("deferred"));
        let d = only(&m);
        assert!(d["next_attempt"].is_string(), "{why}: {d:#}");
        assert_eq!(last_event(d)["code"], code, "{why}: {d:#}");
        assert_eq!(d["attempts"], 1, "{why}: {d:#}");
    }
    eprintln!("4xx deferred after {:?}", t0.elapsed());
    let m = wait_message(&s, dropped, "deferred", status_is("deferred"));
    let d = only(&m);
    assert!(d["next_attempt"].is_string(), "dropped mid-DATA: {d:#}");
    eprintln!("dropped mid-DATA: {}", last_event(d)["text"]);

    // Still waiting for the stalled server's reply; then it goes away.
    let m = s.get_json(&format!("/api/v1/messages/{stalled}"));
    assert_eq!(m["status"], "sending", "{m:#}");
    drop(stall);
    let m = wait_message(&s, stalled, "deferred", status_is("deferred"));
    let d = only(&m);
    assert!(d["next_attempt"].is_string(), "stalled then closed: {d:#}");
    eprintln!(
        "stalled mid-DATA: {} after {:?}",
        last_event(d)["text"],
        t0.elapsed()
    );

    // After all that, a new message still goes out.
    let again = tx("bob@ok.test");
    wait_message(&s, again, "sent", status_is("sent"));
    wait_files(2, "smtp-sink dumps", || ok.messages());
    assert_eq!(reject.count("data"), 1, "only fine@ got through");
    assert_eq!(
        defer.count("data") + ratelimit.count("data") + dropper.count("data"),
        0
    );
    let q = s.get_json("/api/v1/queue");
    assert_eq!(q["waiting"], 5, "five deferred deliveries wait: {q}");
}

#[test]
fn bad_tx_input_is_refused_and_nothing_is_queued() {
    let s = Server::start_with(&[
        ("MAILSTEAD_MAX_MESSAGE_BYTES", "20000"),
        ("MAILSTEAD_HOSTNAME", HOSTNAME),
    ]);
    let base = json!({"from": "news@example.test", "to": "ann@example.test",
                      "subject": "Hi", "html": "<p>hi</p>"});
    let with = |patch: Value| {
        let mut b = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b
    };
    let long_local = format!("{}@example.test", "a".repeat(65));
    let long_addr = format!("a@{}.test", vec!["b".repeat(60); 5].join("."));
    let many: Vec<String> = (0..51).map(|i| format!("r{i}@example.test")).collect();
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        ("no @", with(json!({"to": "not-an-email"})), Some("to")),
        (
            "no dot in the domain",
            with(json!({"to": "ann@localhost"})),
            Some("to"),
        ),
        (
            "local part > 64",
            with(json!({"to": long_local})),
            Some("to"),
        ),
        ("address > 254", with(json!({"to": long_addr})), Some("to")),
        (
            "CRLF in to",
            with(json!({"to": "ann@example.test\r\nBcc: x@evil.test"})),
            Some("to"),
        ),
        (
            "LF in to name",
            with(json!({"to": "Ann\nBcc: x@evil.test <ann@example.test>"})),
            Some("to"),
        ),
        (
            "CRLF in from",
            with(json!({"from": "news@example.test\r\nBcc: x@evil.test"})),
            Some("from"),
        ),
        (
            "CRLF in reply_to",
            with(json!({"reply_to": "a@example.test\r\nX: y"})),
            Some("reply_to"),
        ),
        ("bad from", with(json!({"from": "news"})), Some("from")),
        (
            "CRLF in subject",
            with(json!({"subject": "Hi\r\nBcc: x@evil.test"})),
            Some("subject"),
        ),
        (
            "CRLF in the rendered subject",
            with(json!({"subject": "Hi {{ name }}", "data": {"name": "Ann\r\nBcc: x@evil.test"}})),
            Some("subject"),
        ),
        (
            "CRLF in a header",
            with(json!({"headers": {"X-Tag": "a\r\nBcc: x@evil.test"}})),
            Some("headers"),
        ),
        (
            "colon in a header name",
            with(json!({"headers": {"X-A: b": "c"}})),
            Some("headers"),
        ),
        (
            "reserved Bcc",
            with(json!({"headers": {"Bcc": "x@evil.test"}})),
            Some("headers"),
        ),
        (
            "reserved DKIM-Signature",
            with(json!({"headers": {"dkim-signature": "v=1"}})),
            Some("headers"),
        ),
        (
            "reserved Return-Path",
            with(json!({"headers": {"Return-Path": "<x@evil.test>"}})),
            Some("headers"),
        ),
        (
            "reserved From",
            with(json!({"headers": {"From": "x@evil.test"}})),
            Some("headers"),
        ),
        (
            "template syntax error",
            with(json!({"html": "<p>{% if %}</p>"})),
            Some("html"),
        ),
        (
            "unclosed template block",
            with(json!({"html": "<p>\n{% for x in y %}</p>"})),
            Some("html"),
        ),
        (
            "over max_message_bytes",
            with(json!({"html": format!("<p>{}</p>", "x ".repeat(15_000))})),
            Some("html"),
        ),
        ("no recipient", with(json!({"to": []})), Some("to")),
        ("51 recipients", with(json!({"to": many})), Some("to")),
        ("missing from", with(json!({"from": null})), None),
        ("unknown field", with(json!({"bcc": "x@evil.test"})), None),
        ("to is a number", with(json!({"to": 7})), None),
    ];
    for (what, body, field) in &cases {
        let r = s.post("/api/v1/tx", body);
        let (status, e) = error_of(r);
        assert!((400..500).contains(&status), "{what}: {status} {e}");
        assert_ne!(status, 404, "{what}");
        if let Some(f) = field {
            assert_eq!(status, 422, "{what}: {e}");
            assert_eq!(e["field"], *f, "{what}: {e}");
        }
        assert!(!e["message"].as_str().unwrap().is_empty(), "{what}");
    }
    let (_, e) = error_of(s.post("/api/v1/tx", &cases[17].1));
    assert!(
        e["message"].as_str().unwrap().contains("line 1"),
        "template errors are located: {e}"
    );
    // Not JSON at all.
    let r = s
        .client
        .post(s.url("/api/v1/tx"))
        .bearer_auth(&s.token)
        .header("content-type", "application/json")
        .body("{\"from\": ")
        .send()
        .unwrap();
    let (status, _) = error_of(r);
    assert_eq!(status, 400);

    let q = s.get_json("/api/v1/queue");
    assert_eq!(q["waiting"], 0, "{q}");
    assert_eq!(q["sites"], json!({}), "nothing was queued: {q}");
    let log = s.get_json("/api/v1/deliveries");
    assert_eq!(log["items"], json!([]), "{log}");
    assert_eq!(s.get("/api/v1/messages/1").status(), 404);
    // and the same server accepts a good message
    let id = send(&s, &base);
    assert_eq!(
        s.get_json("/api/v1/queue")["sites"]["example.test"]["waiting"],
        1
    );
    assert!(id >= 1);
}

/// A pseudo-random number from the clock (printed, so a run can be understood).
fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    t.as_nanos() as u64 ^ 0x9e37_79b9_7f4a_7c15
}

fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[test]
fn kill_9_while_delivering_10000_recipients_loses_none() {
    let test = "kill_9_while_delivering_10000_recipients_loses_none";
    if !have_peers(test, true, &[]) {
        return;
    }
    const N: usize = 10_000;
    const PER_REQUEST: usize = 50;
    const DOMAINS: usize = 64;
    const CONCURRENCY: usize = 32;
    let ip = "127.0.0.2";
    let sink =
        harness::smtp_sink_at(ip, Some(shared_port(&[ip])), &[], true).expect("smtp-sink starts");
    let domains: Vec<String> = (0..DOMAINS).map(|i| format!("d{i}.test")).collect();
    let pairs: Vec<(&str, &str)> = domains.iter().map(|d| (d.as_str(), ip)).collect();
    let dns = dns(&mx_records(&pairs));
    let mut env = delivery_env(dns.addr, sink.addr.port());
    env.push((
        "MAILSTEAD_DELIVERY_CONCURRENCY".into(),
        CONCURRENCY.to_string(),
    ));
    let mut s = start(&env);

    let mut rng = seed();
    eprintln!("{test}: seed {rng}");
    let kill_at = [
        1_500 + (next(&mut rng) % 2_500) as usize,
        5_500 + (next(&mut rng) % 3_000) as usize,
    ];
    let started = Instant::now();
    let mut acked: Vec<String> = Vec::with_capacity(N);
    for req in 0..N / PER_REQUEST {
        let to: Vec<String> = (0..PER_REQUEST)
            .map(|j| {
                let k = req * PER_REQUEST + j;
                format!("r{k}@{}", domains[k % DOMAINS])
            })
            .collect();
        send(
            &s,
            &json!({"from": "news@example.test", "to": to, "subject": "Crash test {{ n }}",
                    "html": "<p>Hello</p>", "data": {"n": req}}),
        );
        acked.extend(to);
    }
    eprintln!(
        "{test}: {N} recipients acknowledged in {:?}",
        started.elapsed()
    );
    let count = || harness::list_files(sink.dump.as_ref().unwrap().path(), None).len();
    for (i, at) in kill_at.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(120);
        while count() < *at {
            assert!(
                Instant::now() < deadline,
                "delivery stalled before kill {i}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s.kill9();
        eprintln!(
            "{test}: kill -9 #{} with {} delivered after {:?}",
            i + 1,
            count(),
            started.elapsed()
        );
        s.spawn();
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let q = s.get_json("/api/v1/queue");
        let sent: u64 = q["sites"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v["sent"].as_u64().unwrap())
            .sum();
        if q["waiting"] == 0 && sent == N as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "queue not drained: {sent} sent, {q}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("{test}: queue drained after {:?}", started.elapsed());
    s.stop();

    // Every acknowledged recipient got the message; duplicates only from
    // deliveries in flight at a kill.
    let mut got: HashMap<String, usize> = HashMap::new();
    let files = harness::list_files(sink.dump.as_ref().unwrap().path(), None);
    for f in &files {
        let mut head = [0u8; 1024];
        let n = std::io::Read::read(&mut std::fs::File::open(f).unwrap(), &mut head).unwrap();
        let head = String::from_utf8_lossy(&head[..n]).to_string();
        for r in sink_args(&head, "X-Rcpt-Args:") {
            *got.entry(r).or_default() += 1;
        }
    }
    let missing: Vec<&String> = acked.iter().filter(|r| !got.contains_key(*r)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged recipients never got the message, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(got.len(), N, "no recipient that was not sent to");
    let duplicates: usize = got.values().map(|c| c - 1).sum();
    eprintln!(
        "{test}: {} transactions for {N} recipients: {duplicates} duplicates after 2 kills",
        files.len()
    );
    assert!(
        duplicates <= CONCURRENCY * kill_at.len(),
        "{duplicates} duplicates > {CONCURRENCY} in flight × {} kills",
        kill_at.len()
    );
    eprintln!("{test}: checked after {:?}", started.elapsed());
    assert!(
        s.log().contains("queued again"),
        "the requeue at start is logged"
    );
}
