//! Campaigns end to end through the real binary: templates and campaigns over the API, the
//! sender queueing one personalised, DKIM-signed message per recipient with both
//! List-Unsubscribe headers, delivered over SMTP to Postfix's smtp-sink on loopback (MX from
//! dnsmasq) and verified with dkimpy; pause and resume mid-send and a kill -9 mid-send
//! without duplicates; a one-click unsubscribe that the next campaign honours; open and
//! click tracking; and bad input refused with located errors before anything is sent.

mod common;
#[path = "peers/harness.rs"]
mod harness;

use common::{Server, error_of, trusting_client, with_dkim};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const POSTAL: &str = "Northwind Training Ltd, 12 Harbour Street, Leith EH6 6QB, United Kingdom";
const PUBLIC_URL: &str = "https://mail.example.test";

const BODY: &str = r#"<mj-section><mj-column>
  <mj-text><h1>Hello {{ contact.first_name | default("there") }},</h1>
  <p>Your certification path for {{ campaign.name }} is ready.</p></mj-text>
  <mj-button href="{{ tracked("https://training.example.test/path?from=mail&x=1") }}">See your path</mj-button>
</mj-column></mj-section>"#;

fn have_peers(test: &str) -> bool {
    if harness::dnsmasq_bin().is_none() {
        harness::missing(test, "dnsmasq not found");
        return false;
    }
    if harness::smtp_sink_bin().is_none() {
        harness::missing(test, "Postfix smtp-sink not found (set SMTP_SINK)");
        return false;
    }
    if !harness::python_has(&["dkim", "nacl"]) {
        harness::missing(test, "python3 with dkimpy and pynacl not found");
        return false;
    }
    true
}

struct Lab {
    _shaping: tempfile::TempDir,
    sink: harness::SmtpSink,
    _dns: harness::Dnsmasq,
    s: Server,
    record: (String, String),
}

/// dnsmasq sends customers.test to smtp-sink on `ip`; the server signs for example.test.
fn lab(ip: &str, per_second: u32) -> Lab {
    let port = harness::free_port(ip);
    let sink = harness::smtp_sink_at(ip, Some(port), &[], true).expect("smtp-sink starts");
    let dns = harness::dnsmasq(&[
        "--local=/test/".to_string(),
        "--mx-host=customers.test,mx.customers.test,10".to_string(),
        format!("--host-record=mx.customers.test,{ip}"),
    ])
    .expect("dnsmasq starts");
    // the built-in per-site limit (300 a minute) would make a 1,000-recipient test take minutes
    let shaping = tempfile::tempdir().unwrap();
    let shaping_file = shaping.path().join("shaping.toml");
    std::fs::write(
        &shaping_file,
        "global_messages_per_second = 5000\n[default]\nmax_connections = 10\nmessages_per_minute = 600000\n",
    )
    .unwrap();
    let env = [
        ("MAILSTEAD_SHAPING_FILE", shaping_file.display().to_string()),
        ("MAILSTEAD_DNS_SERVER", dns.addr.to_string()),
        ("MAILSTEAD_SMTP_PORT", port.to_string()),
        ("MAILSTEAD_ALLOW_PRIVATE_TARGETS", "true".into()),
        ("MAILSTEAD_HOSTNAME", "mta.example.test".into()),
        ("MAILSTEAD_BOUNCE_DOMAIN", "bounces.example.test".into()),
        ("MAILSTEAD_PUBLIC_URL", PUBLIC_URL.into()),
        ("MAILSTEAD_POSTAL_ADDRESS", POSTAL.into()),
        ("MAILSTEAD_BRAND_COMPANY_NAME", "Northwind Training".into()),
        (
            "MAILSTEAD_CAMPAIGN_MESSAGES_PER_SECOND",
            per_second.to_string(),
        ),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut s = Server::start_with(&env);
    let record = with_dkim(&mut s, "example.test");
    Lab {
        _shaping: shaping,
        sink,
        _dns: dns,
        s,
        record,
    }
}

fn created(r: reqwest::blocking::Response, what: &str) -> Value {
    let status = r.status();
    let v: Value = r.json().unwrap_or(Value::Null);
    assert_eq!(status, 201, "{what}: {v}");
    v
}

/// A list with `n` contacts u0000@customers.test … named First0000 ….
fn audience(s: &Server, n: usize) -> u64 {
    let list = created(
        s.post("/api/v1/lists", &json!({"name": "Certified professionals"})),
        "list",
    );
    let id = list["id"].as_u64().unwrap();
    let mut csv = String::from("email,first_name,last_name\n");
    for i in 0..n {
        csv.push_str(&format!("u{i:04}@customers.test,First{i:04},Tester\n"));
    }
    let job = s.import_csv(csv, &format!("?list={id}"));
    assert_eq!(job["created"], n as u64, "{job}");
    id
}

fn campaign(s: &Server, name: &str, template: u64, list: u64) -> u64 {
    let c = created(
        s.post(
            "/api/v1/campaigns",
            &json!({"name": name, "subject": "Your path, {{ contact.first_name | default(\"friend\") }}",
                    "from": "Northwind Training <academy@example.test>", "template_id": template,
                    "audience": {"lists": [list]}}),
        ),
        "campaign",
    );
    assert_eq!(c["status"], "draft");
    c["id"].as_u64().unwrap()
}

fn act(s: &Server, id: u64, verb: &str) -> Value {
    let r = s.post(&format!("/api/v1/campaigns/{id}/{verb}"), &json!({}));
    let status = r.status();
    let v: Value = r.json().unwrap_or(Value::Null);
    assert_eq!(status, 200, "{verb}: {v}");
    v
}

fn wait_for(s: &Server, what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} never happened\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits until campaign `id`'s stats show `delivered` and nothing pending.
fn wait_delivered(s: &Server, id: u64, delivered: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let c = s.get_json(&format!("/api/v1/campaigns/{id}"));
        if c["status"] == "finished" && c["stats"]["pending"] == 0 {
            assert_eq!(c["stats"]["delivered"], delivered, "{c:#}");
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "campaign {id} never delivered {delivered}: {c:#}\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// smtp-sink dumps, once each is complete (smtp-sink writes the file while receiving).
fn dumps(sink: &harness::SmtpSink, at_least: usize) -> Vec<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let files = sink.messages();
        let complete = files.len() >= at_least
            && files.iter().all(|f| {
                std::fs::read_to_string(f)
                    .is_ok_and(|d| d.contains("X-Rcpt-Args:") && d.contains("\n\n"))
            });
        if complete {
            return files;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {at_least} complete dumps",
            files.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn header(eml: &str, name: &str) -> Option<String> {
    let head = eml
        .split("\n\n")
        .next()
        .unwrap_or("")
        .replace("\r\n", "\n")
        .replace("\n ", " ")
        .replace("\n\t", " ");
    head.lines()
        .find(|l| {
            l.len() > name.len()
                && l[..name.len()].eq_ignore_ascii_case(name)
                && l.as_bytes()[name.len()] == b':'
        })
        .map(|l| l[name.len() + 1..].trim().to_string())
}

/// The recipient of an smtp-sink dump (`X-Rcpt-Args: <addr>`).
fn rcpt_of(dump: &str) -> String {
    dump.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("X-Rcpt-Args:"))
        .map(|v| {
            v.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
        .unwrap_or_default()
}

/// recipient -> dumps addressed to them, among `files`.
fn by_recipient(files: &[PathBuf]) -> HashMap<String, Vec<PathBuf>> {
    let mut out: HashMap<String, Vec<PathBuf>> = HashMap::new();
    for f in files {
        let dump = std::fs::read_to_string(f).unwrap();
        out.entry(rcpt_of(&dump)).or_default().push(f.clone());
    }
    out
}

fn template(s: &Server) -> u64 {
    created(
        s.post(
            "/api/v1/templates",
            &json!({"name": "Certification path", "mjml": BODY}),
        ),
        "template",
    )["id"]
        .as_u64()
        .unwrap()
}

#[test]
fn campaign_to_1000_contacts_exactly_once_signed_unsubscribable_and_tracked() {
    let test = "campaign_to_1000_contacts_exactly_once_signed_unsubscribable_and_tracked";
    if !have_peers(test) {
        return;
    }
    let lab = lab("127.0.0.31", 250);
    let s = &lab.s;
    let list = audience(s, 1000);
    let tpl = template(s);
    let id = campaign(s, "Spring certification", tpl, list);

    // start, then pause mid-send: nothing more is queued while paused
    let c = act(s, id, "start");
    assert_eq!(c["status"], "sending");
    assert_eq!(c["audience_size"], 1000);
    wait_for(s, "the first batches", 60, || {
        s.get_json(&format!("/api/v1/campaigns/{id}"))["queued"]
            .as_u64()
            .unwrap()
            >= 100
    });
    let paused = act(s, id, "pause");
    assert_eq!(paused["status"], "paused");
    std::thread::sleep(Duration::from_millis(300)); // a batch rendered before the pause is dropped
    let at_pause = s.get_json(&format!("/api/v1/campaigns/{id}"))["queued"]
        .as_u64()
        .unwrap();
    assert!(at_pause < 1000, "paused mid-send ({at_pause} queued)");
    std::thread::sleep(Duration::from_millis(1500));
    let later = s.get_json(&format!("/api/v1/campaigns/{id}"));
    assert_eq!(later["queued"], at_pause, "nothing queued while paused");
    assert_eq!(later["status"], "paused");
    let (status, e) = error_of(s.post(&format!("/api/v1/campaigns/{id}/start"), &json!({})));
    assert_eq!(status, 409, "{e}");
    act(s, id, "resume");
    wait_delivered(s, id, 1000);
    let files = dumps(&lab.sink, 1000);
    assert_eq!(files.len(), 1000, "exactly one message per recipient");
    let per = by_recipient(&files);
    assert_eq!(per.len(), 1000, "1000 distinct recipients");
    assert!(per.values().all(|v| v.len() == 1));

    // every message verifies with dkimpy and is personalised and unsubscribable
    let parsed = harness::check_messages(&files, std::slice::from_ref(&lab.record), None)
        .expect("check_eml.py");
    assert_eq!(parsed.len(), 1000);
    let mut one_click = HashMap::new();
    let mut html_of = HashMap::new();
    for (f, m) in files.iter().zip(&parsed) {
        assert_eq!(m["dkim"], json!([true]), "{f:?}: {}", m["dkim_errors"]);
        let dump = std::fs::read_to_string(f).unwrap();
        let rcpt = rcpt_of(&dump);
        let n = &rcpt[1..5];
        let text = m["text"].as_str().unwrap();
        assert!(text.contains(&format!("Hello First{n}")), "{rcpt}: {text}");
        assert!(
            text.contains("Northwind Training Ltd"),
            "postal address in the footer"
        );
        assert_eq!(
            m["subject"].as_str().unwrap(),
            format!("Your path, First{n}")
        );
        let lu = header(&dump, "List-Unsubscribe").expect("List-Unsubscribe");
        let https = lu
            .split(['<', '>'])
            .find(|p| p.starts_with(&format!("{PUBLIC_URL}/u/")))
            .unwrap_or_else(|| panic!("no https URL in {lu}"))
            .to_string();
        assert!(lu.contains("<mailto:unsubscribe+"), "{lu}");
        assert_eq!(
            header(&dump, "List-Unsubscribe-Post").as_deref(),
            Some("List-Unsubscribe=One-Click")
        );
        one_click.insert(rcpt.clone(), https);
        html_of.insert(rcpt, m["html"].as_str().unwrap().to_string());
    }

    // tracking: the open pixel and the click redirect of one recipient
    let anon = trusting_client(&s.data());
    let html = &html_of["u0042@customers.test"];
    let pixel = html
        .split('"')
        .find(|p| p.starts_with(&format!("{PUBLIC_URL}/o/")))
        .expect("open pixel")
        .replace("&amp;", "&");
    let click = html
        .split('"')
        .find(|p| p.starts_with(&format!("{PUBLIC_URL}/c/")))
        .expect("tracked link")
        .replace("&amp;", "&");
    let local = |u: &str| s.url(u.trim_start_matches(PUBLIC_URL));
    let browser = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    let r = anon
        .get(local(&pixel))
        .header("user-agent", browser)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/gif");
    // Apple Mail Privacy Protection's bare user agent: a machine open
    anon.get(local(&pixel))
        .header("user-agent", "Mozilla/5.0")
        .send()
        .unwrap();
    let no_redirects = reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects
        .get(local(&click))
        .header("user-agent", browser)
        .send()
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "https://training.example.test/path?from=mail&x=1"
    );
    // the same token with another target is no open redirect
    let evil = click.split("?u=").next().unwrap().to_string() + "?u=https%3A%2F%2Fevil.example%2F";
    let r = no_redirects.get(local(&evil)).send().unwrap();
    assert_eq!(r.status(), 404);
    let stats = s.get_json(&format!("/api/v1/campaigns/{id}"))["stats"].clone();
    assert_eq!(stats["opens"], 2, "{stats}");
    assert_eq!(stats["unique_opens"], 1, "{stats}");
    assert_eq!(stats["machine_opens"], 1, "{stats}");
    assert_eq!(stats["clicks"], 1, "{stats}");
    // a person's open and click count for segments; the machine open does not
    for (filter, want) in [
        ("opened_within(1d)", 1),
        ("clicked_within(1d)", 1),
        ("sent_within(1d)", 1000),
    ] {
        let r = s.post(
            "/api/v1/segments/preview",
            &json!({"filter": filter, "limit": 1}),
        );
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().unwrap()["count"], want, "{filter}");
    }
    let report = s.get_json(&format!("/api/v1/campaigns/{id}/report"));
    assert_eq!(
        report["links"][0]["url"],
        "https://training.example.test/path?from=mail&x=1"
    );
    assert_eq!(report["domains"][0]["domain"], "customers.test");
    assert_eq!(report["domains"][0]["delivered"], 1000);

    // the CRM timeline of a contact (and of a lead with its address) shows the mail: sent,
    // delivered, and the person's open and click, not the machine's
    let email_kinds = |record: &str| -> Vec<String> {
        let items = s.get_json(&format!("/api/v1/records/{record}/timeline"));
        let mut kinds: Vec<String> = items
            .as_array()
            .unwrap_or_else(|| panic!("{items}"))
            .iter()
            .filter(|i| i["kind"].as_str().unwrap().starts_with("email."))
            .inspect(|i| assert_eq!(i["campaign_id"], id, "{i}"))
            .map(|i| i["kind"].as_str().unwrap().to_string())
            .collect();
        kinds.sort();
        kinds
    };
    let contact_id = |email: &str| {
        s.get_json(&format!("/api/v1/contacts?q=email:{email}"))["items"][0]["id"]
            .as_u64()
            .unwrap()
    };
    let engaged = contact_id("u0042@customers.test");
    assert_eq!(
        email_kinds(&format!("contact/{engaged}")),
        [
            "email.clicked",
            "email.delivered",
            "email.opened",
            "email.sent"
        ]
    );
    let quiet = contact_id("u0043@customers.test");
    assert_eq!(
        email_kinds(&format!("contact/{quiet}")),
        ["email.delivered", "email.sent"]
    );
    let lead = created(
        s.post(
            "/api/v1/leads",
            &json!({"email": "u0042@customers.test", "first_name": "U42"}),
        ),
        "lead",
    );
    assert_eq!(
        email_kinds(&format!("lead/{}", lead["id"])),
        [
            "email.clicked",
            "email.delivered",
            "email.opened",
            "email.sent"
        ]
    );
    // an account shows its contacts' mail, named; an opportunity its primary contact's
    let acc = created(
        s.post("/api/v1/accounts", &json!({"name": "Customers"})),
        "account",
    );
    let r = s.patch(
        &format!("/api/v1/contacts/{engaged}"),
        &json!({"account_id": acc["id"]}),
    );
    assert_eq!(r.status(), 200);
    assert_eq!(
        email_kinds(&format!("account/{}", acc["id"])),
        [
            "email.clicked",
            "email.delivered",
            "email.opened",
            "email.sent"
        ]
    );
    let items = s.get_json(&format!("/api/v1/records/account/{}/timeline", acc["id"]));
    assert!(
        items.to_string().contains("(to u0042@customers.test)"),
        "{items}"
    );
    let opp = created(
        s.post(
            "/api/v1/opportunities",
            &json!({"name": "Renewal", "account_id": acc["id"], "contact_id": quiet}),
        ),
        "opportunity",
    );
    assert_eq!(
        email_kinds(&format!("opportunity/{}", opp["id"])),
        ["email.delivered", "email.sent"]
    );

    // one-click unsubscribe; the next campaign skips that contact
    let url = &one_click["u0007@customers.test"];
    let r = anon
        .post(local(url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let stats = s.get_json(&format!("/api/v1/campaigns/{id}"))["stats"].clone();
    assert_eq!(stats["unsubscribes"], 1, "{stats}");
    let report = s.get_json(&format!("/api/v1/campaigns/{id}/report"));
    let per_hour: u64 = report["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["unsubscribes"].as_u64().unwrap())
        .sum();
    assert_eq!(per_hour, 1, "the unsubscribe is on the timeline: {report}");

    let before: HashSet<PathBuf> = files.into_iter().collect();
    let second = campaign(s, "Summer certification", tpl, list);
    act(s, second, "start");
    wait_delivered(s, second, 999);
    let new: Vec<PathBuf> = dumps(&lab.sink, 1999)
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    assert_eq!(new.len(), 999);
    let per = by_recipient(&new);
    assert_eq!(per.len(), 999);
    assert!(
        !per.contains_key("u0007@customers.test"),
        "the unsubscribed contact got the next campaign"
    );
}

#[test]
fn campaign_survives_kill_9_mid_send_without_duplicates() {
    let test = "campaign_survives_kill_9_mid_send_without_duplicates";
    if !have_peers(test) {
        return;
    }
    let mut lab = lab("127.0.0.32", 300);
    let list = audience(&lab.s, 600);
    let tpl = template(&lab.s);
    let id = campaign(&lab.s, "Renewal reminder", tpl, list);
    act(&lab.s, id, "start");
    wait_for(&lab.s, "a few batches", 60, || {
        lab.s.get_json(&format!("/api/v1/campaigns/{id}"))["queued"]
            .as_u64()
            .unwrap()
            >= 150
    });
    lab.s.kill9();
    lab.s.spawn();
    let s = &lab.s;
    let c = wait_delivered(s, id, 600);
    assert_eq!(c["queued"], 600, "{c}");
    std::thread::sleep(Duration::from_millis(500));
    let per = by_recipient(&dumps(&lab.sink, 600));
    assert_eq!(per.len(), 600, "every recipient got the campaign");
    let dups: usize = per.values().map(|v| v.len() - 1).sum();
    // the campaign queued each recipient once (above); only deliveries in flight at the kill
    // may go out twice (delivery_concurrency, 64 by default)
    assert!(dups <= 64, "{dups} duplicates");
}

#[test]
fn bad_campaign_input_is_refused_before_anything_is_sent() {
    let s = Server::start_with(&[
        ("MAILSTEAD_POSTAL_ADDRESS", POSTAL),
        ("MAILSTEAD_BRAND_COMPANY_NAME", "Northwind Training"),
    ]);
    // template errors are located
    let (status, e) = error_of(s.post(
        "/api/v1/templates",
        &json!({"name": "broken", "mjml": "<mj-section><mj-column>\n<mj-text>Hi {{ contact.first_name | default(\"x\") </mj-text></mj-column></mj-section>"}),
    ));
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["code"], "invalid_template");
    assert_eq!(e["line"], 2, "{e}");
    let (status, e) = error_of(s.post(
        "/api/v1/templates",
        &json!({"name": "bad mjml", "mjml": "<mj-section><mj-column><mj-text>Hi</mj-column></mj-section>"}),
    ));
    assert_eq!(status, 422, "{e}");
    let (status, e) = error_of(s.post(
        "/api/v1/templates",
        &json!({"name": "missing var", "mjml": "<mj-section><mj-column><mj-text>Hi {{ contact.first_name }}</mj-text></mj-column></mj-section>"}),
    ));
    assert_eq!(status, 422, "a variable without a fallback: {e}");
    assert!(e["message"].as_str().unwrap().contains("default"), "{e}");
    let (status, e) = error_of(s.post("/api/v1/templates", &json!({"name": "x"})));
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["field"], "mjml");

    let tpl = template(&s);
    let list = created(s.post("/api/v1/lists", &json!({"name": "L"})), "list")["id"]
        .as_u64()
        .unwrap();
    // a campaign with an unknown list, a bad sender, a missing field
    for (body, field) in [
        (
            json!({"name": "a", "subject": "s", "from": "academy@example.test", "template_id": tpl, "audience": {"lists": [999]}}),
            "audience.lists",
        ),
        (
            json!({"name": "a", "subject": "s", "from": "not an address", "template_id": tpl, "audience": {"lists": [list]}}),
            "from",
        ),
        (
            json!({"name": "a", "subject": "s", "from": "academy@example.test", "template_id": 999, "audience": {"lists": [list]}}),
            "template_id",
        ),
        (
            json!({"name": "a", "from": "academy@example.test", "template_id": tpl, "audience": {"lists": [list]}}),
            "subject",
        ),
    ] {
        let (status, e) = error_of(s.post("/api/v1/campaigns", &body));
        assert_eq!(status, 422, "{body}: {e}");
        assert_eq!(e["field"], field, "{body}: {e}");
    }
    // the subject's own template syntax is located at once
    let (status, e) = error_of(s.post(
        "/api/v1/campaigns",
        &json!({"name": "a", "subject": "Hi {{ contact.first_name ", "from": "academy@example.test", "template_id": tpl, "audience": {"lists": [list]}}),
    ));
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["field"], "subject", "{e}");
    assert_eq!(e["line"], 1, "{e}");
    // a campaign whose template broke after it was drafted is refused at start
    let id = campaign(&s, "drafted", tpl, list);
    let r = s
        .new_client()
        .put(s.url(&format!("/api/v1/templates/{tpl}")))
        .bearer_auth(&s.token)
        .json(&json!({"mjml": "<mj-section><mj-column><mj-text>{{ contact.first_name }}</mj-text></mj-column></mj-section>"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 422, "the template update itself is checked");
    let (status, e) = error_of(s.post(&format!("/api/v1/campaigns/{id}/test"), &json!({"to": []})));
    assert!(status == 422 || status == 503, "{status} {e}");
    assert_eq!(
        s.get_json(&format!("/api/v1/campaigns/{id}"))["status"],
        "draft"
    );

    let id = campaign(&s, "ok", tpl, list);
    // a schedule in the past, a time that is no time
    let (status, e) = error_of(s.post(
        &format!("/api/v1/campaigns/{id}/schedule"),
        &json!({"at": "2020-01-01T09:00:00Z"}),
    ));
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["field"], "at");
    let (status, _) = error_of(s.post(
        &format!("/api/v1/campaigns/{id}/schedule"),
        &json!({"at": "next tuesday"}),
    ));
    assert_eq!(status, 422);
    // lifecycle rules
    let (status, e) = error_of(s.post(&format!("/api/v1/campaigns/{id}/pause"), &json!({})));
    assert_eq!(status, 409, "pausing a draft: {e}");
    let sched = act_with(&s, id, "schedule", json!({"at": "2099-01-31T09:00:00Z"}));
    assert_eq!(sched["status"], "scheduled");
    let cancelled = act(&s, id, "cancel");
    assert_eq!(cancelled["status"], "cancelled");
    let (status, _) = error_of(s.post(&format!("/api/v1/campaigns/{id}/start"), &json!({})));
    assert_eq!(status, 409, "starting a cancelled campaign");
    let (status, _) = error_of(s.patch(&format!("/api/v1/campaigns/{id}"), &json!({"name": "x"})));
    assert_eq!(status, 409, "editing a cancelled campaign");

    // a viewer reads but cannot create or send
    let (_, viewer) = s.user_with_token("viewer@example.test", "viewer");
    let r = s
        .new_client()
        .post(s.url("/api/v1/campaigns"))
        .bearer_auth(&viewer)
        .json(&json!({"name": "a", "subject": "s", "from": "academy@example.test", "template_id": tpl, "audience": {"lists": [list]}}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = s
        .new_client()
        .get(s.url(&format!("/api/v1/campaigns/{id}")))
        .bearer_auth(&viewer)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn bulk_templates_need_a_postal_address() {
    let s = Server::start_with(&[("MAILSTEAD_BRAND_COMPANY_NAME", "Northwind Training")]);
    let (status, e) = error_of(s.post(
        "/api/v1/templates",
        &json!({"name": "Certification path", "mjml": BODY}),
    ));
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["field"], "postal_address", "{e}");
}

fn act_with(s: &Server, id: u64, verb: &str, body: Value) -> Value {
    let r = s.post(&format!("/api/v1/campaigns/{id}/{verb}"), &body);
    let status = r.status();
    let v: Value = r.json().unwrap_or(Value::Null);
    assert_eq!(status, 200, "{verb}: {v}");
    v
}

#[test]
fn double_opt_in_form_records_consent_and_resists_bots() {
    let test = "double_opt_in_form_records_consent_and_resists_bots";
    if !have_peers(test) {
        return;
    }
    let lab = lab("127.0.0.33", 0);
    let s = &lab.s;
    let list = created(
        s.post(
            "/api/v1/lists",
            &json!({"name": "Exam dates", "opt_in": "double"}),
        ),
        "list",
    )["id"]
        .as_u64()
        .unwrap();
    let embed = s.get_json(&format!("/api/v1/lists/{list}/form"));
    let html = embed["html"].as_str().unwrap();
    assert!(
        html.contains(&format!("/f/{list}")) && html.contains("name=\"website\""),
        "{html}"
    );
    let anon = trusting_client(&s.data());
    let form = |body: &str| {
        anon.post(s.url(&format!("/f/{list}")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string())
            .send()
            .unwrap()
    };
    // a bot fills the honeypot: thanked, nothing stored
    let r = form("email=bot%40customers.test&first_name=Bot&website=http%3A%2F%2Fspam.example");
    assert_eq!(r.status(), 200);
    let found = s.get_json("/api/v1/contacts?q=email:bot@customers.test");
    assert_eq!(found["total"], 0, "{found}");
    // garbage is refused with a message
    let r = form("email=not-an-address");
    assert_eq!(r.status(), 422);
    // a person signs up: unconfirmed, with the wording, time and address as proof
    let r = form("email=Dana%40customers.test&first_name=Dana&last_name=Ng");
    assert_eq!(r.status(), 200);
    assert!(r.text().unwrap().contains("Check your inbox"));
    let found = s.get_json("/api/v1/contacts?q=email:dana@customers.test");
    let id = found["items"][0]["id"].as_u64().expect("contact created");
    let c = s.get_json(&format!("/api/v1/contacts/{id}"));
    assert_eq!(c["lists"][0]["status"], "unconfirmed", "{c}");
    let consent = &c["consents"][0];
    assert_eq!(consent["ip"], "127.0.0.1");
    assert!(
        consent["wording"].as_str().unwrap().contains("Exam dates"),
        "{consent}"
    );
    // the confirmation mail arrives over SMTP; its link confirms (a GET only shows a button)
    let dump = std::fs::read_to_string(&dumps(&lab.sink, 1)[0]).unwrap();
    assert_eq!(rcpt_of(&dump), "dana@customers.test");
    let flat = dump
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    let link = flat
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
        .find(|p| p.starts_with(&format!("{PUBLIC_URL}/confirm/")))
        .unwrap_or_else(|| panic!("no confirmation link in {dump}"))
        .to_string();
    let path = link.trim_start_matches(PUBLIC_URL).to_string();
    let r = anon.get(s.url(&path)).send().unwrap();
    assert_eq!(r.status(), 200);
    let c = s.get_json(&format!("/api/v1/contacts/{id}"));
    assert_eq!(
        c["lists"][0]["status"], "unconfirmed",
        "a GET does not confirm"
    );
    let r = anon.post(s.url(&path)).send().unwrap();
    assert_eq!(r.status(), 200);
    let c = s.get_json(&format!("/api/v1/contacts/{id}"));
    assert_eq!(c["lists"][0]["status"], "confirmed", "{c}");
    assert_eq!(c["consents"].as_array().unwrap().len(), 2, "{c}");
    // a forged token changes nothing
    let mut forged = path.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'a' { 'b' } else { 'a' });
    assert_eq!(anon.post(s.url(&forged)).send().unwrap().status(), 404);
    // per-address rate limit on the public pages
    let mut limited = false;
    for _ in 0..80 {
        if anon
            .get(s.url(&format!("/f/{list}")))
            .send()
            .unwrap()
            .status()
            == 429
        {
            limited = true;
            break;
        }
    }
    assert!(limited, "the public form is rate limited per address");
}

#[test]
fn ab_subject_test_picks_the_most_opened_and_non_openers_get_a_resend() {
    let test = "ab_subject_test_picks_the_most_opened_and_non_openers_get_a_resend";
    if !have_peers(test) {
        return;
    }
    let lab = lab("127.0.0.34", 0);
    let s = &lab.s;
    let list = audience(s, 40);
    let tpl = template(s);
    let c = created(
        s.post(
            "/api/v1/campaigns",
            &json!({"name": "Exam season", "subject": "fallback", "from": "academy@example.test",
                    "template_id": tpl, "audience": {"lists": [list]},
                    "ab_test": {"subjects": ["Exam dates are out", "Your exam seat is waiting"],
                                "sample_percent": 50, "wait_minutes": 1, "metric": "opens"}}),
        ),
        "campaign",
    );
    let id = c["id"].as_u64().unwrap();
    act(s, id, "start");
    // the sample (20 of 40) goes out, split between the subjects, then the sender waits
    let files = dumps(&lab.sink, 20);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        lab.sink.messages().len(),
        20,
        "only the sample before the winner is known"
    );
    // people open three messages with the second subject and one with the first
    let anon = trusting_client(&s.data());
    let browser = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    let mut opened = HashSet::new();
    let (mut first, mut second) = (0, 0);
    let parsed = harness::check_messages(&files, &[], None).expect("check_eml.py");
    for (f, m) in files.iter().zip(&parsed) {
        let subject = m["subject"].as_str().unwrap_or_default();
        let want = if subject.contains("seat") && second < 3 {
            second += 1;
            true
        } else if subject.contains("dates") && first < 1 {
            first += 1;
            true
        } else {
            false
        };
        if !want {
            continue;
        }
        let pixel = m["html"]
            .as_str()
            .unwrap_or_default()
            .split('"')
            .find(|p| p.starts_with(&format!("{PUBLIC_URL}/o/")))
            .unwrap_or_else(|| panic!("no pixel in {f:?}"))
            .to_string();
        let r = anon
            .get(s.url(pixel.trim_start_matches(PUBLIC_URL)))
            .header("user-agent", browser)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        opened.insert(rcpt_of(&std::fs::read_to_string(f).unwrap()));
    }
    assert_eq!((first, second), (1, 3), "both subjects were in the sample");
    let c = wait_delivered(s, id, 40);
    assert_eq!(c["ab_test"]["winner"], 1, "{c:#}");
    let report = s.get_json(&format!("/api/v1/campaigns/{id}/report"));
    assert_eq!(report["variants"][1]["winner"], true, "{report:#}");
    assert_eq!(report["variants"][1]["unique_opens"], 3, "{report:#}");
    let all = dumps(&lab.sink, 40);
    let rest: Vec<String> = all
        .iter()
        .filter(|f| !files.contains(f))
        .map(|f| header(&std::fs::read_to_string(f).unwrap(), "Subject").unwrap_or_default())
        .collect();
    assert_eq!(rest.len(), 20);
    assert!(rest.iter().all(|s| s.contains("seat")), "{rest:?}");

    // resend to the non-openers: everyone but the four who opened
    let again = created(
        s.post(
            "/api/v1/campaigns",
            &json!({"name": "Exam season (resend)", "subject": "Last call for exam seats",
                    "from": "academy@example.test", "template_id": tpl,
                    "audience": {"non_openers_of": id}}),
        ),
        "resend",
    );
    let again_id = again["id"].as_u64().unwrap();
    let started = act(s, again_id, "start");
    assert_eq!(started["audience_size"], 36, "{started}");
    wait_delivered(s, again_id, 36);
    let resent: HashSet<String> = dumps(&lab.sink, 76)
        .iter()
        .filter(|f| !all.contains(f))
        .map(|f| rcpt_of(&std::fs::read_to_string(f).unwrap()))
        .collect();
    assert_eq!(resent.len(), 36);
    assert!(resent.is_disjoint(&opened), "openers are left out");
}

#[test]
fn a_saved_segment_is_a_campaign_audience() {
    let s = Server::start_with(&[
        ("MAILSTEAD_POSTAL_ADDRESS", POSTAL),
        ("MAILSTEAD_BRAND_COMPANY_NAME", "Northwind Training"),
    ]);
    for (i, tags) in [["certified"], ["certified"], ["prospect"]]
        .iter()
        .enumerate()
    {
        created(
            s.post(
                "/api/v1/contacts",
                &json!({"email": format!("p{i}@customers.test"), "tags": tags}),
            ),
            "contact",
        );
    }
    let seg = created(
        s.post(
            "/api/v1/segments",
            &json!({"name": "Certified", "filter": "tag = \"certified\""}),
        ),
        "segment",
    );
    let tpl = template(&s);
    let c = created(
        s.post(
            "/api/v1/campaigns",
            &json!({"name": "Renewals", "subject": "Renew", "from": "academy@example.test",
                    "template_id": tpl, "audience": {"segment": seg["id"]}}),
        ),
        "campaign",
    );
    let id = c["id"].as_u64().unwrap();
    let (status, e) = error_of(s.post(
        "/api/v1/campaigns",
        &json!({"name": "x", "subject": "x", "from": "academy@example.test",
                "template_id": tpl, "audience": {"segment": 999}}),
    ));
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["field"], "audience.segment");
    // the editor's live count: members less the suppressed
    let count = |a: Value| -> Value {
        let r = s.post("/api/v1/campaigns/audience-count", &a);
        assert_eq!(r.status(), 200);
        r.json::<Value>().unwrap()["count"].clone()
    };
    assert_eq!(count(json!({"segment": seg["id"]})), 2);
    created(
        s.post(
            "/api/v1/suppressions",
            &json!({"email": "p1@customers.test"}),
        ),
        "suppression",
    );
    assert_eq!(count(json!({"segment": seg["id"]})), 1);
    let (status, _) =
        error_of(s.post("/api/v1/campaigns/audience-count", &json!({"lists": [999]})));
    assert_eq!(status, 422);
    let started = act(&s, id, "start");
    assert_eq!(started["audience_size"], 2, "{started}");
}

#[test]
fn tracking_can_be_switched_off_per_campaign() {
    let test = "tracking_can_be_switched_off_per_campaign";
    if !have_peers(test) {
        return;
    }
    let lab = lab("127.0.0.35", 0);
    let s = &lab.s;
    let list = audience(s, 2);
    let tpl = template(s);
    let c = created(
        s.post(
            "/api/v1/campaigns",
            &json!({"name": "Quiet", "subject": "Hello", "from": "academy@example.test",
                    "template_id": tpl, "audience": {"lists": [list]},
                    "track_opens": false, "track_clicks": false}),
        ),
        "campaign",
    );
    let id = c["id"].as_u64().unwrap();
    act(s, id, "start");
    wait_delivered(s, id, 2);
    let files = dumps(&lab.sink, 2);
    let parsed = harness::check_messages(&files, &[], None).expect("check_eml.py");
    for m in &parsed {
        let html = m["html"].as_str().unwrap();
        assert!(!html.contains(&format!("{PUBLIC_URL}/o/")), "no open pixel");
        assert!(
            !html.contains(&format!("{PUBLIC_URL}/c/")),
            "no click redirect"
        );
        assert!(
            html.contains("https://training.example.test/path?from=mail&amp;x=1"),
            "the link goes straight to its target"
        );
        assert!(
            html.contains(&format!("{PUBLIC_URL}/u/")),
            "the unsubscribe link stays"
        );
    }
}

#[test]
fn local_time_sending_waits_for_each_recipients_zone() {
    let s = Server::start_with(&[
        ("MAILSTEAD_POSTAL_ADDRESS", POSTAL),
        ("MAILSTEAD_BRAND_COMPANY_NAME", "Northwind Training"),
        ("MAILSTEAD_ALLOW_PRIVATE_TARGETS", "true"),
    ]);
    let list = created(s.post("/api/v1/lists", &json!({"name": "World"})), "list")["id"]
        .as_u64()
        .unwrap();
    // the current UTC time of day is 14 hours past in Kiritimati (UTC+14) and 11 hours ahead
    // in Pago Pago (UTC-11)
    for (email, tz) in [
        ("kiri@customers.test", "Pacific/Kiritimati"),
        ("pago@customers.test", "Pacific/Pago_Pago"),
    ] {
        created(
            s.post(
                "/api/v1/contacts",
                &json!({"email": email, "lists": [list], "attributes": {"timezone": tz}}),
            ),
            "contact",
        );
    }
    let tpl = template(&s);
    let id = campaign(&s, "Good morning", tpl, list);
    let (status, e) = error_of(s.patch(
        &format!("/api/v1/campaigns/{id}"),
        &json!({"local_time": "25:00"}),
    ));
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["field"], "local_time");
    let now = time::OffsetDateTime::now_utc();
    let hhmm = format!("{:02}:{:02}", now.hour(), now.minute());
    let r = s.patch(
        &format!("/api/v1/campaigns/{id}"),
        &json!({"local_time": hhmm}),
    );
    assert_eq!(r.status(), 200);
    let c = act(&s, id, "start");
    assert_eq!(c["audience_size"], 2);
    wait_for(&s, "the Kiritimati recipient", 30, || {
        s.get_json(&format!("/api/v1/campaigns/{id}"))["queued"] == 1
    });
    std::thread::sleep(Duration::from_secs(2));
    let c = s.get_json(&format!("/api/v1/campaigns/{id}"));
    assert_eq!(c["queued"], 1, "Pago Pago waits for its morning: {c}");
    assert_eq!(c["status"], "sending");
    let log = s.get_json("/api/v1/deliveries?recipient=kiri@customers.test");
    assert_eq!(log["items"].as_array().unwrap().len(), 1, "{log}");
    let log = s.get_json("/api/v1/deliveries?recipient=pago@customers.test");
    assert_eq!(log["items"].as_array().unwrap().len(), 0, "{log}");
}

#[test]
fn a_test_send_is_personalised_and_leaves_the_campaign_a_draft() {
    let test = "a_test_send_is_personalised_and_leaves_the_campaign_a_draft";
    if !have_peers(test) {
        return;
    }
    let lab = lab("127.0.0.36", 0);
    let s = &lab.s;
    let list = audience(s, 1);
    let tpl = template(s);
    let id = campaign(s, "Proof", tpl, list);
    let r = s.post(
        &format!("/api/v1/campaigns/{id}/test"),
        &json!({"to": ["u0000@customers.test", "Guest <guest@customers.test>"]}),
    );
    assert!(r.status().is_success(), "{}", r.text().unwrap_or_default());
    let files = dumps(&lab.sink, 2);
    let parsed = harness::check_messages(&files, &[], None).expect("check_eml.py");
    let mut subjects: Vec<&str> = parsed
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    subjects.sort_unstable();
    // the contact's own name; sample values for an address that is no contact
    assert_eq!(
        subjects,
        ["[Test] Your path, Ada", "[Test] Your path, First0000"]
    );
    for m in &parsed {
        assert_eq!(m["dkim_signatures"], 1, "signed like the real send");
        assert!(m["list_unsubscribe"].is_string(), "{m}");
        let html = m["html"].as_str().unwrap();
        assert!(
            !html.contains(&format!("{PUBLIC_URL}/o/")),
            "a test send is not tracked"
        );
    }
    let c = s.get_json(&format!("/api/v1/campaigns/{id}"));
    assert_eq!(c["status"], "draft", "{c}");
    assert_eq!(c["stats"]["queued"], 0, "{c}");
}
