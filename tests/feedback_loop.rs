//! The feedback loop end to end through the real binary: mail sent over SMTP to real peers
//! (aiosmtpd) with VERP return paths; bounces and complaints injected over real SMTP
//! (Python's smtplib) into the bounce listener; the suppression list, the contact's
//! feedback and later sends reflect them. Also: the listener is not a relay, and its size,
//! rate and dialogue limits hold.

mod common;
#[path = "peers/harness.rs"]
mod harness;

use common::{Server, error_of};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BOUNCE_DOMAIN: &str = "bounces.mailstead.test";

/// Sends `data` with Python's smtplib; returns its JSON verdict.
fn smtplib_send(port: u16, mail_from: &str, rcpts: &[&str], data: &[u8]) -> Value {
    let script = r#"
import json, smtplib, sys
host, port, sender, rcpts = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].split(",")
data = sys.stdin.buffer.read()
def dec(v): return v.decode(errors="replace") if isinstance(v, bytes) else str(v)
try:
    with smtplib.SMTP(host, port, timeout=30) as s:
        refused = s.sendmail(sender, rcpts, data)
        print(json.dumps({"ok": True, "refused": {k: [c, dec(t)] for k, (c, t) in refused.items()}}))
except smtplib.SMTPRecipientsRefused as e:
    print(json.dumps({"ok": False, "error": "recipients_refused",
                      "refused": {k: [c, dec(t)] for k, (c, t) in e.recipients.items()}}))
except smtplib.SMTPResponseException as e:
    print(json.dumps({"ok": False, "error": type(e).__name__, "code": e.smtp_code, "text": dec(e.smtp_error)}))
"#;
    let mut child = Command::new("python3")
        .args([
            "-c",
            script,
            "127.0.0.1",
            &port.to_string(),
            mail_from,
            &rcpts.join(","),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("smtplib said: {}", String::from_utf8_lossy(&out.stdout)))
}

/// An RFC 3464 delivery status notification for `rcpt`.
fn dsn(rcpt: &str, status: &str, diagnostic: &str, nonce: &str) -> Vec<u8> {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.customers.test>\r\n\
         To: {BOUNCE_DOMAIN}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Message-ID: <{nonce}@mx.customers.test>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\
         \r\n\
         --B\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         This is the mail system at host mx.customers.test. Your message could not be delivered.\r\n\
         \r\n\
         --B\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.customers.test\r\n\
         \r\n\
         Final-Recipient: rfc822; {rcpt}\r\n\
         Action: failed\r\n\
         Status: {status}\r\n\
         Diagnostic-Code: smtp; {diagnostic}\r\n\
         \r\n\
         --B--\r\n"
    )
    .into_bytes()
}

/// An RFC 5965 complaint about a message sent to `rcpt`.
fn arf(rcpt: &str) -> Vec<u8> {
    format!(
        "From: feedback@fbl.customers.test\r\n\
         To: abuse@{BOUNCE_DOMAIN}\r\n\
         Subject: FW: Complaint\r\n\
         Message-ID: <arf-1@fbl.customers.test>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\
         \r\n\
         --F\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         This is an email abuse report.\r\n\
         --F\r\n\
         Content-Type: message/feedback-report\r\n\
         \r\n\
         Feedback-Type: abuse\r\n\
         User-Agent: FBL/1.0\r\n\
         Version: 1\r\n\
         Original-Rcpt-To: <{rcpt}>\r\n\
         \r\n\
         --F\r\n\
         Content-Type: message/rfc822\r\n\
         \r\n\
         From: news@example.test\r\n\
         To: {rcpt}\r\n\
         Subject: November news\r\n\
         \r\n\
         Hello\r\n\
         --F--\r\n"
    )
    .into_bytes()
}

fn listener_env(port: u16, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("MAILSTEAD_BOUNCE_LISTEN", format!("127.0.0.1:{port}")),
        ("MAILSTEAD_BOUNCE_DOMAIN", BOUNCE_DOMAIN.to_string()),
        ("MAILSTEAD_HOSTNAME", "mta.mailstead.test".to_string()),
        ("MAILSTEAD_ALLOW_PRIVATE_TARGETS", "true".to_string()),
    ];
    env.extend(extra.iter().cloned());
    env
}

fn start(env: &[(&'static str, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start_with(&env)
}

fn wait_for(what: &str, s: &Server, mut done: impl FnMut() -> Option<Value>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = done() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never happened\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn create_contact(s: &Server, body: Value) -> u64 {
    let r = s.post("/api/v1/contacts", &body);
    assert_eq!(r.status(), 201, "create contact");
    r.json::<Value>().unwrap()["id"].as_u64().unwrap()
}

fn suppression(s: &Server, email: &str) -> Option<Value> {
    let r = s.get(&format!("/api/v1/suppressions/{email}"));
    match r.status().as_u16() {
        200 => Some(r.json().unwrap()),
        404 => None,
        other => panic!("GET suppression {email}: {other}"),
    }
}

#[test]
fn bounces_over_smtp_suppress_the_right_contact_and_later_sends_skip_it() {
    let test = "bounces_over_smtp_suppress_the_right_contact_and_later_sends_skip_it";
    if harness::dnsmasq_bin().is_none() {
        return harness::missing(test, "dnsmasq not found");
    }
    if !harness::python_has(&["aiosmtpd"]) {
        return harness::missing(test, "python3 with aiosmtpd not found");
    }
    let ip = "127.0.0.7";
    let port = harness::free_port(ip);
    let peer = harness::py_peer_at(ip, port, "reject-some", &[]).expect("aiosmtpd peer");
    let dns = harness::dnsmasq(&[
        "--local=/test/".to_string(),
        "--mx-host=customers.test,mx.customers.test,10".to_string(),
        format!("--host-record=mx.customers.test,{ip}"),
    ])
    .expect("dnsmasq");
    let listen = harness::free_port("127.0.0.1");
    let s = start(&listener_env(
        listen,
        &[
            ("MAILSTEAD_DNS_SERVER", dns.addr.to_string()),
            ("MAILSTEAD_SMTP_PORT", port.to_string()),
        ],
    ));
    let ann = create_contact(
        &s,
        json!({"email": "ann@customers.test", "first_name": "Ann"}),
    );
    let bob_id = create_contact(&s, json!({"email": "bob@customers.test"}));

    // 1. A message to Ann and Bob is delivered; each copy has its own VERP return path.
    let r = s.post(
        "/api/v1/tx",
        &json!({"from": "news@example.test", "to": ["ann@customers.test", "bob@customers.test"],
                "subject": "Welcome", "text": "Hello"}),
    );
    assert_eq!(r.status(), 202);
    let msg = r.json::<Value>().unwrap()["message_id"].as_u64().unwrap();
    wait_for("two deliveries", &s, || {
        (peer.messages().len() == 2).then_some(Value::Null)
    });
    let mut verp_of = std::collections::HashMap::new();
    for m in peer.messages() {
        let env = peer.envelope(&m);
        let rcpt = env["rcpt_tos"][0].as_str().unwrap().to_string();
        verp_of.insert(rcpt, env["mail_from"].as_str().unwrap().to_string());
    }
    let ann_verp = verp_of["ann@customers.test"].clone();
    assert!(
        ann_verp.ends_with(&format!("@{BOUNCE_DOMAIN}")),
        "{ann_verp}"
    );

    // 2. Ann's mailbox is deleted later; the remote site's DSN comes back to her VERP
    //    address over SMTP. The report names a different spelling of the address: the
    //    VERP token decides whom it is about.
    let bounce = dsn(
        "ANN@customers.test",
        "5.1.1",
        "550 5.1.1 <ann@customers.test>: Recipient address rejected: User unknown in virtual mailbox table",
        "dsn-1",
    );
    let v = smtplib_send(listen, "", &[&ann_verp], &bounce);
    assert_eq!(v["ok"], true, "{v}");
    let sup = suppression(&s, "ann@customers.test").expect("Ann is suppressed");
    assert_eq!(sup["reason"], "hard_bounce", "{sup}");
    assert_eq!(sup["source"], "bounce-listener");
    assert_eq!(
        sup["history"][0]["message"], msg,
        "linked to the message: {sup}"
    );
    assert!(
        suppression(&s, "bob@customers.test").is_none(),
        "Bob is not"
    );
    let fb = s.get_json(&format!("/api/v1/contacts/{ann}/feedback"));
    assert_eq!(fb["suppression"]["reason"], "hard_bounce");
    assert_eq!(fb["feedback"][0]["reason"], "userunknown");
    assert_eq!(fb["feedback"][0]["action"], "suppressed");
    let fb_bob = s.get_json(&format!("/api/v1/contacts/{bob_id}/feedback"));
    assert!(fb_bob["suppression"].is_null());

    // 3. The same DSN again (an SMTP retry) is applied once.
    let v = smtplib_send(listen, "", &[&ann_verp], &bounce);
    assert_eq!(v["ok"], true, "{v}");
    let fb = s.get_json(&format!("/api/v1/contacts/{ann}/feedback"));
    assert_eq!(fb["feedback"].as_array().unwrap().len(), 1, "{fb}");

    // 4. Later sends leave Ann out; a send only to her is refused with a clear reason.
    let r = s.post(
        "/api/v1/tx",
        &json!({"from": "news@example.test", "to": ["ann@customers.test", "bob@customers.test"],
                "subject": "Second", "text": "Hello again"}),
    );
    assert_eq!(r.status(), 202);
    let v: Value = r.json().unwrap();
    assert_eq!(v["suppressed"], json!(["ann@customers.test"]), "{v}");
    wait_for("one more delivery, to Bob only", &s, || {
        (peer.messages().len() == 3).then_some(Value::Null)
    });
    let last = peer.messages().pop().unwrap();
    assert_eq!(
        peer.envelope(&last)["rcpt_tos"],
        json!(["bob@customers.test"])
    );
    let (status, e) = error_of(s.post(
        "/api/v1/tx",
        &json!({"from": "news@example.test", "to": "ann@customers.test", "subject": "x", "text": "x"}),
    ));
    assert_eq!(status, 422);
    assert_eq!(e["code"], "suppressed", "{e}");

    // 5. A synchronous 550 5.1.1 from the MX suppresses too; a 5.7.1 policy rejection is
    //    the sender's problem and does not.
    let r = s.post(
        "/api/v1/tx",
        &json!({"from": "news@example.test",
                "to": ["bad-cleo@customers.test", "policy-dan@customers.test"],
                "subject": "x", "text": "x"}),
    );
    assert_eq!(r.status(), 202);
    let cleo = wait_for("Cleo's rejection recorded", &s, || {
        suppression(&s, "bad-cleo@customers.test")
    });
    assert_eq!(cleo["reason"], "hard_bounce");
    assert_eq!(cleo["source"], "smtp");
    let log = wait_for("Dan's rejection recorded", &s, || {
        let l = s.get_json("/api/v1/feedback");
        l["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["email"] == "policy-dan@customers.test")
            .then_some(l)
    });
    let dan = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["email"] == "policy-dan@customers.test")
        .unwrap();
    assert_eq!(dan["action"], "sender_problem", "{dan}");
    assert!(suppression(&s, "policy-dan@customers.test").is_none());

    // 6. Removing Ann from the list by hand lets mail reach her again.
    assert_eq!(
        s.delete("/api/v1/suppressions/ann@customers.test").status(),
        204
    );
    let r = s.post(
        "/api/v1/tx",
        &json!({"from": "news@example.test", "to": "ann@customers.test", "subject": "Back", "text": "Hi"}),
    );
    assert_eq!(r.status(), 202);
}

#[test]
fn complaints_unsubscribe_and_soft_bounces_count_to_the_threshold() {
    let test = "complaints_unsubscribe_and_soft_bounces_count_to_the_threshold";
    if !harness::python_has(&["smtplib"]) {
        return harness::missing(test, "python3 not found");
    }
    let listen = harness::free_port("127.0.0.1");
    let s = start(&listener_env(
        listen,
        &[("MAILSTEAD_SOFT_BOUNCE_LIMIT", "2".to_string())],
    ));
    let list = s.post("/api/v1/lists", &json!({"name": "Newsletter"}));
    assert_eq!(list.status(), 201);
    let list_id = list.json::<Value>().unwrap()["id"].as_u64().unwrap();
    let carol = create_contact(
        &s,
        json!({"email": "carol@customers.test", "lists": [list_id]}),
    );

    // An ARF complaint to abuse@: unsubscribed from every list and suppressed.
    let v = smtplib_send(
        listen,
        "",
        &[&format!("abuse@{BOUNCE_DOMAIN}")],
        &arf("carol@customers.test"),
    );
    assert_eq!(v["ok"], true, "{v}");
    let c = s.get_json(&format!("/api/v1/contacts/{carol}"));
    let memberships = c["lists"].as_array().unwrap();
    assert!(!memberships.is_empty(), "{c}");
    assert!(
        memberships.iter().all(|m| m["status"] == "unsubscribed"),
        "{c}"
    );
    let sup = suppression(&s, "carol@customers.test").expect("suppressed");
    assert_eq!(sup["reason"], "complaint");

    // Soft bounces (mailbox full) to postmaster@: counted, suppressed at the second.
    let full = |n: &str| dsn("dave@customers.test", "4.2.2", "452 4.2.2 Mailbox full", n);
    let to = format!("postmaster@{BOUNCE_DOMAIN}");
    assert_eq!(smtplib_send(listen, "", &[&to], &full("s1"))["ok"], true);
    assert!(
        suppression(&s, "dave@customers.test").is_none(),
        "one is not enough"
    );
    let log = s.get_json("/api/v1/feedback");
    assert_eq!(log["items"][0]["action"], "counted", "{log}");
    assert_eq!(smtplib_send(listen, "", &[&to], &full("s2"))["ok"], true);
    let sup = suppression(&s, "dave@customers.test").expect("suppressed at the limit");
    assert_eq!(sup["reason"], "soft_bounces");

    // Manual additions and the CSV export.
    let r = s.post(
        "/api/v1/suppressions",
        &json!({"email": "Eve@Customers.test", "note": "asked by phone"}),
    );
    assert_eq!(r.status(), 201);
    let (status, e) = error_of(s.post("/api/v1/suppressions", &json!({"email": "not an address"})));
    assert_eq!(status, 422, "{e}");
    let (status, e) = error_of(s.post(
        "/api/v1/suppressions",
        &json!({"email": "x@customers.test", "reason": "because"}),
    ));
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["field"], "reason");
    let page = s.get_json("/api/v1/suppressions?q=customers");
    assert_eq!(page["total"], 3, "{page}");
    let emails: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        [
            "carol@customers.test",
            "dave@customers.test",
            "eve@customers.test"
        ]
    );
    let csv = s.get("/api/v1/suppressions/export").text().unwrap();
    assert!(
        csv.starts_with("email,reason,source,detail,created_at"),
        "{csv}"
    );
    assert!(
        csv.contains("eve@customers.test,manual,manual,asked by phone"),
        "{csv}"
    );
}

/// A raw SMTP dialogue: sends each line, returns each reply (multi-line replies joined).
struct Dialogue {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Dialogue {
    fn open(port: u16) -> (Dialogue, String) {
        let w = TcpStream::connect(("127.0.0.1", port)).unwrap();
        w.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut d = Dialogue {
            r: BufReader::new(w.try_clone().unwrap()),
            w,
        };
        let greeting = d.reply();
        (d, greeting)
    }
    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if self.r.read_line(&mut line).unwrap_or(0) == 0 {
                return all;
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }
    fn say(&mut self, line: &str) -> String {
        self.w.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        self.reply()
    }
    fn send_raw(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).unwrap();
    }
}

#[test]
fn the_listener_is_no_relay_and_holds_its_limits() {
    let listen = harness::free_port("127.0.0.1");
    let s = start(&listener_env(
        listen,
        &[
            ("MAILSTEAD_BOUNCE_MAX_BYTES", "4096".to_string()),
            ("MAILSTEAD_BOUNCE_MESSAGES_PER_MINUTE", "4".to_string()),
        ],
    ));
    let (mut d, greeting) = Dialogue::open(listen);
    assert!(greeting.starts_with("220 "), "{greeting}");
    assert!(d.say("MAIL FROM:<>").starts_with("503"), "EHLO first");
    let ehlo = d.say("EHLO client.test");
    assert!(ehlo.contains("SIZE 4096"), "{ehlo}");
    assert!(d.say("DATA").starts_with("503"), "no DATA before RCPT");
    assert!(
        d.say("MAIL FROM:<> SIZE=100000").starts_with("552"),
        "SIZE over the limit"
    );
    assert!(d.say("MAIL FROM:<spammer@evil.test>").starts_with("250"));
    // relay attempts and forged tokens are refused
    for rcpt in [
        "victim@gmail.com",
        "someone@customers.test",
        &format!("b+AAAAAAAAAAAAAAAAAAAAAAAA@{BOUNCE_DOMAIN}"),
        &format!("nobody@{BOUNCE_DOMAIN}"),
        &format!("postmaster@{BOUNCE_DOMAIN}@gmail.com"),
    ] {
        let r = d.say(&format!("RCPT TO:<{rcpt}>"));
        assert!(r.starts_with("550 5.7.1"), "{rcpt}: {r}");
    }
    assert!(d.say("DATA").starts_with("503"), "still no valid recipient");
    // an over-size message is refused after the data, and the dialogue stays in step
    assert!(d.say("RSET").starts_with("250"));
    assert!(d.say("MAIL FROM:<>").starts_with("250"));
    assert!(
        d.say(&format!("RCPT TO:<Postmaster@{BOUNCE_DOMAIN}>"))
            .starts_with("250")
    );
    assert!(d.say("DATA").starts_with("354"));
    d.send_raw(b"Subject: big\r\n\r\n");
    for _ in 0..100 {
        d.send_raw(&[b'x'; 100]);
        d.send_raw(b"\r\n");
    }
    let r = d.say(".");
    assert!(r.starts_with("552"), "{r}");
    // garbage that is not a message at all gets a clear permanent answer
    assert!(d.say("MAIL FROM:<>").starts_with("250"));
    assert!(
        d.say(&format!("RCPT TO:<abuse@{BOUNCE_DOMAIN}>"))
            .starts_with("250")
    );
    assert!(d.say("DATA").starts_with("354"));
    d.send_raw(b"\x00\x01\x02 not a message\r\n");
    let r = d.say(".");
    assert!(r.starts_with("554 5.6.0"), "{r}");
    // the per-client rate limit (4 per minute; 3 MAIL commands so far)
    assert!(d.say("MAIL FROM:<>").starts_with("250"));
    assert!(d.say("RSET").starts_with("250"));
    let r = d.say("MAIL FROM:<>");
    assert!(r.starts_with("450 4.7.1"), "{r}");
    assert!(d.say("QUIT").starts_with("221"));

    // an over-long command line ends the session without harm
    // (the server may close the connection while the line is still being written)
    let (mut d, _) = Dialogue::open(listen);
    let _ = d.w.write_all(&vec![b'A'; 100_000]);
    let _ = d.w.write_all(b"\r\n");
    let _ = d.reply();
    // the server is fine and nothing was recorded
    assert_eq!(s.get("/healthz").status(), 200);
    assert_eq!(s.get_json("/api/v1/feedback")["items"], json!([]));
    assert_eq!(s.get_json("/api/v1/suppressions")["total"], 0);
}

#[test]
fn a_polled_bounce_mailbox_is_applied_and_emptied() {
    let test = "a_polled_bounce_mailbox_is_applied_and_emptied";
    if !harness::python_has(&["asyncio"]) {
        return harness::missing(test, "python3 not found");
    }
    let pop = harness::pop3_peer("bounces@example.test", "s3cret pass").expect("pop3 peer");
    std::fs::write(
        pop.dir.path().join("1.eml"),
        dsn(
            "frank@customers.test",
            "5.1.1",
            "550 5.1.1 user unknown",
            "p1",
        ),
    )
    .unwrap();
    std::fs::write(pop.dir.path().join("2.eml"), arf("gina@customers.test")).unwrap();
    std::fs::write(
        pop.dir.path().join("3.eml"),
        b"\x00\x01 garbage, not a message",
    )
    .unwrap();
    let s = start(&[
        ("MAILSTEAD_BOUNCE_DOMAIN", BOUNCE_DOMAIN.to_string()),
        ("MAILSTEAD_ALLOW_PRIVATE_TARGETS", "true".to_string()),
        (
            "MAILSTEAD_BOUNCE_MAILBOX",
            format!(
                "pop3://bounces%40example.test:s3cret%20pass@127.0.0.1:{}",
                pop.port
            ),
        ),
        ("MAILSTEAD_BOUNCE_MAILBOX_INTERVAL_SECS", "1".to_string()),
    ]);
    let frank = wait_for("Frank suppressed", &s, || {
        suppression(&s, "frank@customers.test")
    });
    assert_eq!(frank["reason"], "hard_bounce");
    assert_eq!(frank["source"], "mailbox");
    let gina = wait_for("Gina suppressed", &s, || {
        suppression(&s, "gina@customers.test")
    });
    assert_eq!(gina["reason"], "complaint");
    // every message (the garbage too) is deleted once handled, at QUIT
    wait_for("the mailbox emptied", &s, || {
        harness::list_files(pop.dir.path(), Some("eml"))
            .is_empty()
            .then_some(Value::Null)
    });
    let cmds = pop.commands();
    assert!(cmds.contains(&"DELE".to_string()) && cmds.contains(&"QUIT".to_string()));
    assert!(
        !s.log().contains("s3cret"),
        "the mailbox password never reaches the log"
    );
}
