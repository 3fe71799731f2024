//! Data-subject rights through the real binary over HTTPS: the export holds the sent message
//! and the consent history; erasure leaves no trace of the address, the name or the IP in any
//! file under the data dir (redb file, search index files) nor in the server log, keeps the
//! address suppressed as a keyed hash (sends, re-adds and imports refused), keeps the audit
//! chain verifiable, is refused to sales users and can be repeated.

mod common;

use common::{Server, error_of};
use hmac::{Hmac, Mac};
use reqwest::blocking::Response;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

const EMAIL: &str = "zebedee.quux@customers.test";
const FIRST: &str = "Zebedee";
const LAST: &str = "Quixotic-Erasmus";
const IP: &str = "203.0.113.77";
const GENERIC_SECRET: &str = "generic-secret-0123456789";

fn generic_complaint(s: &Server, message_id: u64) -> Response {
    let body = json!({"events": [
        {"id": "g-complaint-1", "type": "complaint", "email": EMAIL, "message_id": message_id}
    ]})
    .to_string();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(GENERIC_SECRET.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let sig = hex::encode(mac.finalize().into_bytes());
    s.client
        .post(s.url("/api/v1/webhooks/generic"))
        .header("Content-Type", "application/json")
        .header("X-Mailstead-Signature", format!("v1={sig}"))
        .header("X-Mailstead-Timestamp", ts)
        .body(body)
        .send()
        .unwrap()
}

fn as_user(s: &Server, token: &str, method: reqwest::Method, path: &str) -> Response {
    s.client
        .request(method, s.url(path))
        .bearer_auth(token)
        .send()
        .unwrap()
}

/// Every file under `dir` whose bytes contain one of `needles` (case-insensitive).
fn files_containing(dir: &Path, needles: &[&str]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let Ok(bytes) = std::fs::read(&p) else {
                continue;
            };
            let lower = bytes.to_ascii_lowercase();
            for n in needles {
                let n = n.to_ascii_lowercase();
                if let Some(at) = lower.windows(n.len()).position(|w| w == n.as_bytes()) {
                    let from = at.saturating_sub(300);
                    let to = (at + n.len() + 100).min(bytes.len());
                    hits.push(format!(
                        "{} contains {n}: …{}…",
                        p.display(),
                        String::from_utf8_lossy(&bytes[from..to])
                    ));
                }
            }
        }
    }
    hits
}

/// Every term in every segment of the search index (as lossy text).
fn index_terms(data: &Path) -> Vec<String> {
    let index = tantivy::Index::open_in_dir(data.join("search")).unwrap();
    let reader = index
        .reader_builder()
        .reload_policy(tantivy::ReloadPolicy::Manual)
        .try_into()
        .unwrap();
    let searcher = reader.searcher();
    let mut out = Vec::new();
    for seg in searcher.segment_readers() {
        for (field, _) in index.schema().fields() {
            let Ok(inv) = seg.inverted_index(field) else {
                continue;
            };
            let mut stream = inv.terms().stream().unwrap();
            while stream.advance() {
                out.push(String::from_utf8_lossy(stream.key()).to_lowercase());
            }
        }
    }
    out
}

fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what} never happened");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn export_consents_erasure_without_trace() {
    let mut s = Server::start_with(&[
        ("MAILSTEAD_GENERIC_WEBHOOK_SECRET", GENERIC_SECRET),
        ("MAILSTEAD_ALLOW_PRIVATE_TARGETS", "true"),
        // nothing answers DNS here: the message waits in the queue
        ("MAILSTEAD_DNS_SERVER", "127.0.0.1:9"),
        ("MAILSTEAD_WEBHOOK_RETRY_BASE_MS", "60000"),
    ]);
    let list = s.post("/api/v1/lists", &json!({"name": "News"}));
    assert_eq!(list.status(), 201);
    let list_id = list.json::<Value>().unwrap()["id"].as_u64().unwrap();
    // an integrator's endpoint that never answers: the outbox keeps the payloads
    let r = s.post(
        "/api/v1/webhook-subscriptions",
        &json!({"url": "https://127.0.0.1:9/hook",
                "events": ["contact.created", "contact.updated", "message.sent", "message.complained"],
                "description": "CRM sync"}),
    );
    assert_eq!(r.status(), 201, "{}", r.text().unwrap_or_default());
    // imported together with other contacts: index segments hold the person beside others,
    // so only a merge can take the person's terms out of them
    let mut csv = String::from("email,first_name,last_name,phone\n");
    for i in 0..40 {
        csv.push_str(&format!("bystander{i}@customers.test,Bystander,,\n"));
        if i == 20 {
            csv.push_str(&format!("{EMAIL},{FIRST},{LAST},+44 7700 900123\n"));
        }
    }
    let job = s.import_csv(csv, &format!("?list={list_id}"));
    assert_eq!(job["created"], 41, "{job}");
    let found = s.get_json("/api/v1/contacts?q=zebedee");
    let id = found["items"][0]["id"].as_u64().unwrap();

    // consents: appended, never overwritten
    let path = format!("/api/v1/contacts/{id}/consents");
    let r = s.post(
        &path,
        &json!({"purpose": "newsletter", "source": "signup form", "ip": IP,
                "wording": "Send me the monthly newsletter"}),
    );
    assert_eq!(r.status(), 201);
    let r = s.post(&path, &json!({"purpose": "newsletter", "withdrawn": true}));
    assert_eq!(r.status(), 201);
    let h = s.get_json(&path);
    let history = h["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{h}");
    assert_eq!(history[0]["ip"], IP);
    assert_eq!(history[0]["wording"], "Send me the monthly newsletter");
    assert_eq!(history[1]["withdrawn"], true);
    assert_eq!(h["current"]["newsletter"], false);
    let (st, e) = error_of(s.post(&path, &json!({"purpose": "bad purpose!"})));
    assert_eq!((st, e["field"].as_str()), (422, Some("purpose")));
    let (st, _) = error_of(s.post(&path, &json!({"purpose": "x", "ip": "not-an-ip"})));
    assert_eq!(st, 422);
    let audit = s.get_json(&format!("/api/v1/audit?record=contact:{id}"));
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["detail"] == "consent granted: newsletter"),
        "{audit}"
    );

    // a transactional message to the contact (waits: DNS does not answer)
    let r = s.post(
        "/api/v1/tx",
        &json!({"from": "news@example.test", "to": [EMAIL],
                "subject": format!("Hello {FIRST}"), "text": format!("Dear {FIRST} {LAST}, welcome.")}),
    );
    assert_eq!(r.status(), 202, "{}", r.text().unwrap_or_default());
    let message_id = r.json::<Value>().unwrap()["message_id"].as_u64().unwrap();
    // put on the suppression list by hand (the audit entry's record names the address)...
    let r = s.post(
        "/api/v1/suppressions",
        &json!({"email": EMAIL, "note": "asked by phone"}),
    );
    assert_eq!(r.status(), 201, "{}", r.text().unwrap_or_default());
    // ... and a complaint about the message
    let r = generic_complaint(&s, message_id);
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());

    // a CRM lead for the same person, with a call logged on it
    let r = s.post(
        "/api/v1/leads",
        &json!({"email": EMAIL, "first_name": FIRST, "last_name": LAST, "company": "Quux Training"}),
    );
    assert_eq!(r.status(), 201, "{}", r.text().unwrap_or_default());
    let lead_id = r.json::<Value>().unwrap()["id"].as_u64().unwrap();
    let r = s.post(
        "/api/v1/activities",
        &json!({"kind": "call", "subject": format!("Call with {FIRST} {LAST}"), "record": format!("lead:{lead_id}")}),
    );
    assert_eq!(r.status(), 201, "{}", r.text().unwrap_or_default());

    // the dispatcher fans events out to the webhook outbox in the background: wait for the
    // person's events to be there before exporting
    wait("the webhook outbox holds the person's events", || {
        let x = s.get_json(&format!("/api/v1/contacts/{id}/export"));
        !x["webhook_deliveries"].as_array().unwrap().is_empty()
    });
    // the export: one JSON attachment with everything
    let r = s.get(&format!("/api/v1/contacts/{id}/export"));
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment"),
    );
    let x: Value = r.json().unwrap();
    assert_eq!(x["contact"]["email"], EMAIL);
    assert_eq!(x["consents"].as_array().unwrap().len(), 2);
    assert_eq!(
        x["consents"][0]["wording"],
        "Send me the monthly newsletter"
    );
    let msgs = x["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1, "{x}");
    assert_eq!(msgs[0]["message"]["subject"], format!("Hello {FIRST}"));
    assert_eq!(msgs[0]["delivery"]["recipient"], EMAIL);
    assert!(!x["feedback"].as_array().unwrap().is_empty(), "{x}");
    assert_eq!(x["suppression"]["reason"], "manual");
    assert!(!x["events"].as_array().unwrap().is_empty());
    assert!(!x["webhook_deliveries"].as_array().unwrap().is_empty());
    assert!(!x["audit"].as_array().unwrap().is_empty());
    assert_eq!(x["lists"][0]["list_name"], "News");
    let leads = &x["other"]["crm_leads"];
    assert_eq!(leads[0]["lead"]["email"], EMAIL, "{x}");
    assert_eq!(
        leads[0]["activities"][0]["subject"],
        format!("Call with {FIRST} {LAST}")
    );
    let audit = s.get_json(&format!("/api/v1/audit?record=contact:{id}"));
    assert_eq!(audit["items"][0]["action"], "export", "{audit}");

    // sales users cannot erase (nor see the contact they do not own)
    let (_, sales) = s.user_with_token("sales@example.test", "sales");
    let erase = format!("/api/v1/contacts/{id}/erase");
    let (st, e) = error_of(as_user(&s, &sales, reqwest::Method::POST, &erase));
    assert_eq!((st, e["code"].as_str()), (403, Some("forbidden")), "{e}");
    let r = as_user(
        &s,
        &sales,
        reqwest::Method::GET,
        &format!("/api/v1/contacts/{id}/export"),
    );
    assert_eq!(r.status(), 404);
    assert_eq!(
        error_of(s.post("/api/v1/contacts/999999/erase", &json!({}))).0,
        404
    );

    // the command line reaches the running server through its control socket
    let o = common::cli(&s.data(), &["gdpr", "export", &id.to_string()], None);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let x: Value = serde_json::from_str(&common::stdout(&o)).unwrap();
    assert_eq!(x["contact"]["email"], EMAIL);
    let page = s.get_json("/api/v1/contacts?q=bystander&limit=100");
    let other = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["email"] == "bystander5@customers.test")
        .and_then(|c| c["id"].as_u64())
        .unwrap();
    let o = common::cli(&s.data(), &["gdpr", "erase", &other.to_string()], None);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let x: Value = serde_json::from_str(&common::stdout(&o)).unwrap();
    assert_eq!(
        (x["already_erased"].as_bool(), x["purged"].as_bool()),
        (Some(false), Some(true)),
        "{x}"
    );
    assert_eq!(s.get(&format!("/api/v1/contacts/{other}")).status(), 404);

    // before: the person is all over the data dir (so the search below means something)
    let needles = [
        EMAIL,
        "zebedee",
        "quixotic",
        IP,
        "7700 900123",
        "bystander5@",
    ];
    let before = files_containing(&s.data(), &needles);
    assert!(
        before.iter().any(|h| h.contains("mailstead.redb")),
        "{before:#?}"
    );
    // the index's term dictionaries are FSTs (no term is stored as plain bytes), so they are
    // read through tantivy: every term of every segment, deleted documents' terms included
    let terms = index_terms(&s.data());
    assert!(terms.iter().any(|t| t.contains("zebedee")), "{terms:?}");

    // erasure
    let r = s.post(&erase, &json!({}));
    assert_eq!(r.status(), 200);
    let e: Value = r.json().unwrap();
    assert_eq!(e["already_erased"], false);
    assert_eq!(e["purged"], true, "{e}");
    assert_eq!(e["removed"]["deliveries"], 1, "{e}");
    assert_eq!(e["removed"]["cancelled"], 1, "{e}");
    assert!(e["removed"]["feedback"].as_u64().unwrap() >= 1, "{e}");
    assert!(e["removed"]["events"].as_u64().unwrap() >= 1, "{e}");
    assert!(e["audit_entries_redacted"].as_u64().unwrap() >= 1, "{e}");
    assert_eq!(s.get(&format!("/api/v1/contacts/{id}")).status(), 404);
    let found = s.get_json("/api/v1/contacts?q=zebedee");
    assert_eq!(found["total"], 0, "{found}");
    let d = s.get_json(&format!("/api/v1/messages/{message_id}"));
    assert!(!d.to_string().to_lowercase().contains("zebedee"), "{d}");

    // the audit chain still verifies, and the erasure is in it without personal data
    let v = s.get_json("/api/v1/audit/verify");
    assert!(v["broken"].is_null(), "{v}");
    let audit = s.get_json(&format!("/api/v1/audit?record=contact:{id}"));
    let text = audit.to_string().to_lowercase();
    assert!(
        !text.contains("zebedee") && !text.contains("quixotic") && !text.contains(IP),
        "{audit}"
    );
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "erase"),
        "{audit}"
    );
    let whole = s
        .get_json("/api/v1/audit?limit=500")
        .to_string()
        .to_lowercase();
    assert!(!whole.contains("zebedee"), "{whole}");
    assert!(whole.contains("suppression:hmac:"), "{whole}");

    // no trace in any file of the data dir, nor in the log
    let hits = files_containing(&s.data(), &needles);
    assert!(hits.is_empty(), "{hits:#?}");
    assert_eq!(
        s.get(&format!("/api/v1/leads/{lead_id}")).status(),
        404,
        "the person's lead went with the erasure"
    );
    let terms = index_terms(&s.data());
    assert!(
        !terms
            .iter()
            .any(|t| t.contains("zebedee") || t.contains("quixotic") || t.contains("7700")),
        "{terms:?}"
    );
    assert!(terms.iter().any(|t| t.contains("bystander")), "{terms:?}");
    assert!(
        !s.log().to_lowercase().contains("zebedee"),
        "the server log names the person"
    );
    let bystander = files_containing(&s.data(), &["bystander7@customers.test"]);
    assert!(!bystander.is_empty(), "other contacts are kept");

    // the keyed hash keeps the address suppressed: no send, no re-add, no import
    let (st, e) = error_of(s.post(
        "/api/v1/tx",
        &json!({"from": "news@example.test", "to": [EMAIL], "subject": "again", "text": "x"}),
    ));
    assert!((400..500).contains(&st), "{st} {e}");
    let r = s.post(
        "/api/v1/tx",
        &json!({"from": "news@example.test", "to": [EMAIL, "bystander3@customers.test"],
                "subject": "again", "text": "x"}),
    );
    assert_eq!(r.status(), 202);
    let v: Value = r.json().unwrap();
    assert_eq!(
        v["suppressed"],
        json!(["(erased)"]),
        "not written down again: {v}"
    );
    let (st, e) = error_of(s.post("/api/v1/contacts", &json!({"email": EMAIL})));
    assert_eq!((st, e["field"].as_str()), (422, Some("email")), "{e}");
    let job = s.import_csv(format!("email,first_name\n{EMAIL},{FIRST}\n"), "");
    assert_eq!(job["created"], 0, "{job}");
    let sup = s.get_json("/api/v1/suppressions?q=erasure");
    assert!(
        sup.to_string().contains("hmac:"),
        "the suppression list shows a keyed hash: {sup}"
    );

    // repeating the erasure is harmless
    let r = s.post(&erase, &json!({}));
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().unwrap()["already_erased"], true);

    // after a restart: still no trace, chain intact, still suppressed
    s.stop();
    let hits = files_containing(&s.data(), &needles);
    assert!(hits.is_empty(), "{hits:#?}");
    assert!(!index_terms(&s.data()).iter().any(|t| t.contains("zebedee")));
    s.spawn();
    wait("the server answers", || {
        s.get("/api/v1/audit/verify").status() == 200
    });
    let v = s.get_json("/api/v1/audit/verify");
    assert!(v["broken"].is_null(), "{v}");
    let (st, _) = error_of(s.post("/api/v1/contacts", &json!({"email": EMAIL})));
    assert_eq!(st, 422);
}

#[test]
fn a_leads_person_is_exported_and_erased_without_trace() {
    const LEAD_EMAIL: &str = "quentin.prospect@prospects.test";
    const LEAD_LAST: &str = "Leadbetter-Smythe";
    let mut s = Server::start_with(&[("MAILSTEAD_API_REQUESTS_PER_SECOND", "100000")]);
    let (rep, sales) = s.user_with_token("rep@example.test", "sales");
    let (_, other_rep) = s.user_with_token("rep2@example.test", "sales");
    let lead = s.post(
        "/api/v1/leads",
        &json!({"email": LEAD_EMAIL, "first_name": "Quentin", "last_name": LEAD_LAST,
                "phone": "+44 20 7946 0991", "company": "Prospects Ltd", "assigned_to": rep}),
    );
    assert_eq!(lead.status(), 201);
    let lead_id = lead.json::<Value>().unwrap()["id"].as_u64().unwrap();
    let note = s.post(
        "/api/v1/activities",
        &json!({"kind": "call", "subject": format!("Called Quentin {LEAD_LAST}"), "record": format!("lead:{lead_id}")}),
    );
    assert_eq!(note.status(), 201);
    // a message to the address, so the delivery log holds it
    let r = s.post(
        "/api/v1/tx",
        &json!({"from": "sales@example.test", "to": [LEAD_EMAIL], "subject": "Your quote", "text": "Hello Quentin"}),
    );
    assert_eq!(r.status(), 202);

    // the owner exports it: the lead, its activity and the message; no contact
    let export = format!("/api/v1/leads/{lead_id}/export");
    let r = as_user(&s, &sales, reqwest::Method::GET, &export);
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(&format!("lead-{lead_id}-export.json"))
    );
    let x: Value = r.json().unwrap();
    assert!(x["contact"].is_null(), "{x}");
    assert_eq!(
        x["other"]["crm_leads"][0]["lead"]["email"], LEAD_EMAIL,
        "{x}"
    );
    assert_eq!(
        x["other"]["crm_leads"][0]["activities"][0]["kind"], "call",
        "{x}"
    );
    assert!(
        x["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["delivery"]["recipient"] == LEAD_EMAIL),
        "{x}"
    );
    // another rep cannot see the lead: 404, as if it did not exist; sales may not erase
    assert_eq!(
        as_user(&s, &other_rep, reqwest::Method::GET, &export).status(),
        404
    );
    let erase = format!("/api/v1/leads/{lead_id}/erase");
    assert_eq!(
        as_user(&s, &sales, reqwest::Method::POST, &erase).status(),
        403
    );
    assert_eq!(s.get(&format!("/api/v1/leads/{lead_id}")).status(), 200);

    // an admin erases it: no trace in any file, the address stays suppressed
    let r = s.post(&erase, &json!({}));
    assert_eq!(r.status(), 200);
    let e: Value = r.json().unwrap();
    assert!(e["contact_id"].is_null(), "{e}");
    assert!(e["removed"]["deliveries"].as_u64().unwrap() >= 1, "{e}");
    assert_eq!(s.get(&format!("/api/v1/leads/{lead_id}")).status(), 404);
    let (st, e) = error_of(s.post("/api/v1/contacts", &json!({"email": LEAD_EMAIL})));
    assert_eq!((st, e["field"].as_str()), (422, Some("email")), "{e}");
    let hist = s.get_json(&format!("/api/v1/audit?record=lead:{lead_id}"));
    assert!(hist.to_string().contains("erase"), "{hist}");
    assert!(
        !hist.to_string().to_lowercase().contains(LEAD_EMAIL),
        "{hist}"
    );
    s.stop();
    let hits = files_containing(&s.data(), &[LEAD_EMAIL, LEAD_LAST, "7946 0991"]);
    assert!(hits.is_empty(), "{hits:#?}");
    s.spawn();
    wait("the server answers", || {
        s.get("/api/v1/audit/verify").status() == 200
    });
    let v = s.get_json("/api/v1/audit/verify");
    assert!(v["broken"].is_null(), "{v}");

    // a lead whose person is a contact: the contact's export and erasure, lead included
    const BOTH: &str = "both.ways@prospects.test";
    let c = s.post(
        "/api/v1/contacts",
        &json!({"email": BOTH, "first_name": "Bo"}),
    );
    assert_eq!(c.status(), 201);
    let cid = c.json::<Value>().unwrap()["id"].as_u64().unwrap();
    let l2 = s.post("/api/v1/leads", &json!({"email": BOTH, "first_name": "Bo"}));
    let l2 = l2.json::<Value>().unwrap()["id"].as_u64().unwrap();
    let x = s.get_json(&format!("/api/v1/leads/{l2}/export"));
    assert_eq!(x["contact"]["id"], cid, "{x}");
    assert_eq!(x["other"]["crm_leads"][0]["lead"]["id"], l2, "{x}");
    let r = s.post(&format!("/api/v1/leads/{l2}/erase"), &json!({}));
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().unwrap()["contact_id"], cid);
    assert_eq!(s.get(&format!("/api/v1/contacts/{cid}")).status(), 404);
    assert_eq!(s.get(&format!("/api/v1/leads/{l2}")).status(), 404);

    // a lead without an address: its export holds it and nobody else's records
    let l3 = s.post(
        "/api/v1/leads",
        &json!({"first_name": "Nameless", "last_name": "Walkin", "company": "Fair stand"}),
    );
    let l3 = l3.json::<Value>().unwrap()["id"].as_u64().unwrap();
    let x = s.get_json(&format!("/api/v1/leads/{l3}/export"));
    assert!(x["contact"].is_null(), "{x}");
    assert_eq!(x["other"]["crm_leads"].as_array().unwrap().len(), 1, "{x}");
    assert_eq!(x["other"]["crm_leads"][0]["lead"]["id"], l3, "{x}");
    assert_eq!(x["messages"], json!([]), "{x}");
    let r = s.post(&format!("/api/v1/leads/{l3}/erase"), &json!({}));
    assert_eq!(r.status(), 200);
    assert_eq!(s.get(&format!("/api/v1/leads/{l3}")).status(), 404);
}
