//! One-click unsubscribe end to end through the real binary: bulk mail through the API gets
//! signed List-Unsubscribe (https + mailto) and List-Unsubscribe-Post headers; a POST of
//! `List-Unsubscribe=One-Click` to the https URL unsubscribes at once with no login, cookie or
//! redirect; a GET only shows a page; the preference centre resubscribes; mail to the mailto
//! address (over SMTP into the bounce listener) unsubscribes too; forged tokens change nothing.

mod common;
#[path = "peers/harness.rs"]
mod harness;

use common::{Server, error_of, trusting_client};
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BOUNCE_DOMAIN: &str = "bounces.mailstead.test";

fn header(eml: &str, name: &str) -> Option<String> {
    // unfold continuation lines first
    let head = eml
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .replace("\r\n ", " ");
    head.lines()
        .find(|l| {
            l.len() > name.len()
                && l[..name.len()].eq_ignore_ascii_case(name)
                && l.as_bytes()[name.len()] == b':'
        })
        .map(|l| l[name.len() + 1..].trim().to_string())
}

fn wait(what: &str, s: &Server, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} never happened\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn smtp_send(port: u16, rcpt: &str) -> String {
    let script = r#"
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30) as s:
    s.sendmail("ann@customers.test", [sys.argv[2]], b"Subject: unsubscribe\r\n\r\nplease\r\n")
    print("sent")
"#;
    let mut child = Command::new("python3")
        .args(["-c", script, &port.to_string(), rcpt])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().flush().unwrap();
    let o = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn one_click_unsubscribe_preferences_and_mailto() {
    let test = "one_click_unsubscribe_preferences_and_mailto";
    if harness::dnsmasq_bin().is_none() {
        return harness::missing(test, "dnsmasq not found");
    }
    if !harness::python_has(&["aiosmtpd"]) {
        return harness::missing(test, "python3 with aiosmtpd not found");
    }
    let ip = "127.0.0.8";
    let port = harness::free_port(ip);
    let peer = harness::py_peer_at(ip, port, "accept", &[]).expect("aiosmtpd peer");
    let dns = harness::dnsmasq(&[
        "--local=/test/".to_string(),
        "--mx-host=customers.test,mx.customers.test,10".to_string(),
        format!("--host-record=mx.customers.test,{ip}"),
    ])
    .expect("dnsmasq");
    let listen = harness::free_port("127.0.0.1");
    let env = [
        ("MAILSTEAD_DNS_SERVER", dns.addr.to_string()),
        ("MAILSTEAD_SMTP_PORT", port.to_string()),
        ("MAILSTEAD_ALLOW_PRIVATE_TARGETS", "true".to_string()),
        ("MAILSTEAD_BOUNCE_DOMAIN", BOUNCE_DOMAIN.to_string()),
        ("MAILSTEAD_BOUNCE_LISTEN", format!("127.0.0.1:{listen}")),
        (
            "MAILSTEAD_PUBLIC_URL",
            "https://mail.example.test".to_string(),
        ),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let s = Server::start_with(&env);
    let list = s.post(
        "/api/v1/lists",
        &json!({"name": "Course news", "description": "New dates and programmes"}),
    );
    assert_eq!(list.status(), 201);
    let list_id = list.json::<Value>().unwrap()["id"].as_u64().unwrap();
    let mut ids = Vec::new();
    for e in ["ann@customers.test", "bob@customers.test"] {
        let r = s.post("/api/v1/contacts", &json!({"email": e, "lists": [list_id]}));
        assert_eq!(r.status(), 201);
        ids.push(r.json::<Value>().unwrap()["id"].as_u64().unwrap());
    }

    // list_unsubscribe needs one recipient per message
    let (status, e) = error_of(s.post(
        "/api/v1/tx",
        &json!({"from": "news@example.test", "to": ["ann@customers.test", "bob@customers.test"],
                "subject": "x", "text": "x", "list_unsubscribe": true}),
    ));
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["field"], "list_unsubscribe");

    for to in ["ann@customers.test", "bob@customers.test"] {
        let r = s.post(
            "/api/v1/tx",
            &json!({"from": "news@example.test", "to": to, "subject": "November dates",
                    "text": "New course dates", "list_unsubscribe": true}),
        );
        assert_eq!(r.status(), 202);
    }
    wait("two deliveries", &s, || peer.messages().len() == 2);
    let mut urls = std::collections::HashMap::new();
    for m in peer.messages() {
        let rcpt = peer.envelope(&m)["rcpt_tos"][0]
            .as_str()
            .unwrap()
            .to_string();
        let eml = std::fs::read_to_string(&m).unwrap();
        let lu = header(&eml, "List-Unsubscribe").expect("List-Unsubscribe");
        assert_eq!(
            header(&eml, "List-Unsubscribe-Post").as_deref(),
            Some("List-Unsubscribe=One-Click")
        );
        let https = lu
            .split(['<', '>'])
            .find(|p| p.starts_with("https://mail.example.test/u/"))
            .unwrap_or_else(|| panic!("no https URL in {lu}"))
            .to_string();
        let mailto = lu
            .split(['<', '>'])
            .find(|p| p.starts_with("mailto:unsubscribe+"))
            .unwrap_or_else(|| panic!("no mailto in {lu}"))
            .to_string();
        urls.insert(rcpt, (https, mailto));
    }
    let (ann_url, _) = urls["ann@customers.test"].clone();
    let path = ann_url.trim_start_matches("https://mail.example.test");
    let anon = trusting_client(&s.data());
    let status_of = |id: u64| -> Value {
        let c = s.get_json(&format!("/api/v1/contacts/{id}"));
        c["lists"][0]["status"].clone()
    };

    // a GET (a link scanner, a preview) changes nothing
    let page = anon.get(s.url(path)).send().unwrap();
    assert_eq!(page.status(), 200, "GET {path}");
    let html = page.text().unwrap();
    assert!(
        html.contains("Unsubscribe") && html.contains("an…@customers.test"),
        "{html}"
    );
    assert_eq!(status_of(ids[0]), "confirmed");

    // a forged token is refused and changes nothing
    let mut forged = path.to_string();
    let last = forged.pop().unwrap();
    forged.push(if last == 'a' { 'b' } else { 'a' });
    let r = anon
        .post(s.url(&forged))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(status_of(ids[0]), "confirmed");

    // RFC 8058 one-click: no login, no cookie, no redirect, 2xx, effective at once
    let r = anon
        .post(s.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.url().path(), path, "no redirect");
    assert!(r.headers().get("set-cookie").is_none());
    assert_eq!(status_of(ids[0]), "unsubscribed");
    let c = s.get_json(&format!("/api/v1/contacts/{}", ids[0]));
    let consent = c["consents"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(consent["withdrawn"], true, "{c}");
    assert_eq!(consent["source"], "unsubscribe:one-click");
    assert!(consent["ip"].as_str().is_some());
    let sup = s.get_json("/api/v1/suppressions/ann@customers.test");
    assert_eq!(sup["reason"], "unsubscribed");
    // the audit trail names the recipient and their address as the actor of both changes
    let audit = s.get_json("/api/v1/audit?actor=recipient");
    let actions: Vec<(&str, &str)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["record"].as_str().unwrap()))
        .collect();
    let contact = format!("contact:{}", ids[0]);
    assert_eq!(
        actions,
        [
            ("update", contact.as_str()),
            ("suppress", "suppression:ann@customers.test")
        ]
    );
    assert_eq!(audit["items"][0]["detail"], "unsubscribe:one-click");
    assert!(audit["items"][0]["changes"]["lists"].is_object());
    assert!(audit["items"][0]["ip"].is_string());
    // the next bulk send skips Ann
    let (status, e) = error_of(s.post(
        "/api/v1/tx",
        &json!({"from": "news@example.test", "to": "ann@customers.test", "subject": "x",
                "text": "x", "list_unsubscribe": true}),
    ));
    assert_eq!(status, 422);
    assert_eq!(e["code"], "suppressed");
    // doing it again is harmless
    let r = anon
        .post(s.url(path))
        .body("List-Unsubscribe=One-Click")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);

    // the preference centre (linked from the unsubscribe page) takes her back
    let prefs = html
        .split('"')
        .find(|p| p.starts_with("https://mail.example.test/p/"))
        .expect("a preferences link")
        .trim_start_matches("https://mail.example.test")
        .to_string();
    let page = anon.get(s.url(&prefs)).send().unwrap().text().unwrap();
    assert!(
        page.contains("Course news") && page.contains("unsubscribed from all"),
        "{page}"
    );
    let r = anon
        .post(s.url(&prefs))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("list={list_id}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().unwrap().contains("saved"));
    assert_eq!(status_of(ids[0]), "confirmed");
    assert_eq!(
        s.get("/api/v1/suppressions/ann@customers.test").status(),
        404,
        "resubscribing lifts the unsubscribe suppression"
    );

    // Bob mails the mailto address through the bounce listener
    let (_, bob_mailto) = urls["bob@customers.test"].clone();
    let addr = bob_mailto
        .trim_start_matches("mailto:")
        .split('?')
        .next()
        .unwrap()
        .to_string();
    assert!(addr.ends_with(&format!("@{BOUNCE_DOMAIN}")), "{addr}");
    let out = smtp_send(listen, &addr);
    assert!(out.contains("sent"), "{out}");
    assert_eq!(status_of(ids[1]), "unsubscribed");
    let c = s.get_json(&format!("/api/v1/contacts/{}", ids[1]));
    assert_eq!(
        c["consents"].as_array().unwrap().last().unwrap()["source"],
        "unsubscribe:mailto"
    );
}
