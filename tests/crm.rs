//! The CRM end to end over real HTTPS: CRUD of leads, accounts, opportunities and activities,
//! lead conversion (fresh, with an existing contact and account, atomic under an injected
//! failure), the access matrix of every role against own / other / unassigned records, the
//! pipeline board, timelines, training records and bad input.

mod common;
use common::*;
use reqwest::blocking::Response;
use serde_json::{Value, json};

const FAST: (&str, &str) = ("MAILSTEAD_API_REQUESTS_PER_SECOND", "100000");

fn call(s: &Server, token: &str, method: &str, path: &str, body: Option<&Value>) -> Response {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut r = s.client.request(m, s.url(path)).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(b);
    }
    r.send().unwrap()
}

fn created(r: Response) -> Value {
    let st = r.status();
    let text = r.text().unwrap();
    assert_eq!(st, 201, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn id(v: &Value) -> u64 {
    v["id"].as_u64().unwrap_or_else(|| panic!("no id in {v}"))
}

fn admin_id(s: &Server) -> u64 {
    let users = s.get_json("/api/v1/users");
    let list = users["items"]
        .as_array()
        .or(users.as_array())
        .unwrap()
        .clone();
    list.iter().find(|u| u["email"] == ADMIN).map(id).unwrap()
}

fn ids_of(page: &Value) -> Vec<u64> {
    let mut v: Vec<u64> = page["items"].as_array().unwrap().iter().map(id).collect();
    v.sort_unstable();
    v
}

#[test]
fn crud_of_each_kind_with_filters_timeline_and_training() {
    let s = Server::start_with(&[FAST]);
    // leads
    let l = created(s.post("/api/v1/leads", &json!({"first_name": "Ann", "last_name": "Lee", "email": "Ann@Globex.example", "company": "Globex Training", "job_title": "Training Manager", "source": "webinar", "score": 40})));
    let lid = id(&l);
    assert_eq!(l["status"], "new");
    assert_eq!(l["email"], "ann@globex.example");
    let l2 = created(s.post(
        "/api/v1/leads",
        &json!({"first_name": "Bob", "company": "Initech", "status": "contacted"}),
    ));
    let (st, e) = error_of(s.post("/api/v1/leads", &json!({"email": "ann@globex.example"})));
    assert_eq!(st, 409, "duplicate lead email: {e}");
    let r = s.patch(
        &format!("/api/v1/leads/{lid}"),
        &json!({"status": "qualified", "consent": {"purpose": "newsletter", "source": "form"}}),
    );
    assert_eq!(r.status(), 200);
    let got = s.get_json(&format!("/api/v1/leads/{lid}"));
    assert_eq!(got["status"], "qualified");
    assert_eq!(
        got["first_name"], "Ann",
        "PATCH keeps fields it does not name"
    );
    assert_eq!(got["consents"][0]["purpose"], "newsletter");
    assert_eq!(
        ids_of(&s.get_json("/api/v1/leads?status=qualified")),
        vec![lid]
    );
    assert_eq!(ids_of(&s.get_json("/api/v1/leads?q=glob")), vec![lid]);
    assert_eq!(ids_of(&s.get_json("/api/v1/leads?q=ini")), vec![id(&l2)]);
    assert_eq!(s.get_json("/api/v1/leads/count")["count"], 2);
    assert_eq!(s.get_json("/api/v1/leads/count?status=new")["count"], 0);
    // the rules score Ann's title 20 (training 10, manager 10); the 40 she was created with
    // stays, as a manual +20 over the rules; Bob scores nothing
    let sorted = s.get_json("/api/v1/leads?sort=-score");
    assert_eq!(sorted["items"][0]["id"], lid);
    assert_eq!(sorted["items"][0]["score"], 40);
    assert_eq!(sorted["items"][0]["score_adjustment"], 20);
    // cursor paging
    let p1 = s.get_json("/api/v1/leads?limit=1");
    assert_eq!(p1["total"], 2);
    let cur = p1["next_cursor"].as_str().unwrap();
    let p2 = s.get_json(&format!("/api/v1/leads?limit=1&cursor={cur}"));
    assert_ne!(p1["items"][0]["id"], p2["items"][0]["id"]);
    assert!(p2["next_cursor"].is_null());

    // accounts with a parent
    let parent = created(s.post(
        "/api/v1/accounts",
        &json!({"name": "Globex Group", "domain": "globex-group.example", "industry": "training"}),
    ));
    let child = created(s.post("/api/v1/accounts", &json!({"name": "Globex Training", "parent_id": id(&parent), "address": {"city": "Berlin", "country": "DE"}})));
    assert_eq!(child["address"]["city"], "Berlin");
    assert_eq!(
        ids_of(&s.get_json(&format!("/api/v1/accounts?parent={}", id(&parent)))),
        vec![id(&child)]
    );
    let (st, _) = error_of(s.delete(&format!("/api/v1/accounts/{}", id(&parent))));
    assert_eq!(st, 409, "an account with sub-accounts is not deleted");

    // opportunities
    let o = created(s.post("/api/v1/opportunities", &json!({"name": "ISO 27001 lead auditor x12", "account_id": id(&child), "programme": "ISO 27001", "amount": "14400.5", "currency": "eur", "stage": "proposal", "expected_close": "2027-03-31"})));
    let oid = id(&o);
    assert_eq!(
        (
            o["amount"].as_str(),
            o["currency"].as_str(),
            o["probability"].as_u64()
        ),
        (Some("14400.50"), Some("EUR"), Some(50))
    );
    let o2 = created(s.post(
        "/api/v1/opportunities",
        &json!({"name": "Team licence", "amount": 1000, "currency": "JPY"}),
    ));
    assert_eq!(
        (o2["amount"].as_str(), o2["stage"].as_str()),
        (Some("1000"), Some("prospecting"))
    );
    let r = s.patch(
        &format!("/api/v1/opportunities/{oid}"),
        &json!({"stage": "negotiation"}),
    );
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().unwrap()["probability"], 80);
    assert_eq!(
        ids_of(&s.get_json("/api/v1/opportunities?stage=negotiation")),
        vec![oid]
    );
    assert_eq!(
        ids_of(&s.get_json(&format!("/api/v1/opportunities?account={}", id(&child)))),
        vec![oid]
    );
    let board = s.get_json("/api/v1/pipeline");
    let col = |name: &str| {
        board["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["stage"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(col("negotiation")["count"], 1);
    assert_eq!(
        col("negotiation")["totals"],
        json!([{"currency": "EUR", "amount": "14400.50", "weighted": "11520.40"}])
    );
    assert_eq!(col("prospecting")["totals"][0]["weighted"], "100");
    assert_eq!(col("negotiation")["cards"][0]["id"], oid);

    // activities on the lead, and the lead's timeline
    let a = created(s.post("/api/v1/activities", &json!({"kind": "task", "subject": "Send syllabus", "record": format!("lead:{lid}"), "due": "2027-01-15"})));
    assert_eq!(a["done"], false);
    let r = s.patch(
        &format!("/api/v1/activities/{}", id(&a)),
        &json!({"done": true}),
    );
    assert_eq!(r.status(), 200);
    assert_eq!(
        ids_of(&s.get_json(&format!("/api/v1/activities?record=lead:{lid}"))),
        vec![id(&a)]
    );
    let tl = s.get_json(&format!("/api/v1/records/lead/{lid}/timeline"));
    let kinds: Vec<&str> = tl
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"activity") && kinds.contains(&"audit"),
        "{tl}"
    );
    let audit = s.get_json(&format!("/api/v1/audit?record=opportunity:{oid}"));
    assert!(
        audit.to_string().contains("negotiation"),
        "stage change audited: {audit}"
    );

    // training records and the expiring query
    let c = created(s.post(
        "/api/v1/contacts",
        &json!({"email": "cert@example.com", "account_id": id(&child)}),
    ));
    assert_eq!(c["account_id"], id(&child));
    let cid = id(&c);
    let soon = time::OffsetDateTime::now_utc().date() + time::Duration::days(30);
    let later = time::OffsetDateTime::now_utc().date() + time::Duration::days(300);
    let fmt = |d: time::Date| format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day());
    let cert = created(s.post(
        &format!("/api/v1/contacts/{cid}/certifications"),
        &json!({"name": "ISO 9001 auditor", "issued": "2024-01-10", "expires": fmt(soon)}),
    ));
    created(s.post(
        &format!("/api/v1/contacts/{cid}/certifications"),
        &json!({"name": "Six Sigma", "issued": "2024-01-10", "expires": fmt(later)}),
    ));
    created(s.post(
        &format!("/api/v1/contacts/{cid}/enrolments"),
        &json!({"programme": "Lead auditor", "start": "2026-02-01", "status": "in_progress"}),
    ));
    assert_eq!(
        s.get_json(&format!("/api/v1/contacts/{cid}/enrolments"))
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let exp = s.get_json("/api/v1/certifications/expiring?days=60");
    assert_eq!(
        exp.as_array().unwrap().iter().map(id).collect::<Vec<_>>(),
        vec![id(&cert)]
    );
    assert_eq!(
        s.get_json("/api/v1/certifications/expiring?days=365")
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (st, _) = error_of(s.post(
        &format!("/api/v1/contacts/{cid}/certifications"),
        &json!({"name": "X", "issued": "2024-13-01"}),
    ));
    assert_eq!(st, 422);
    assert_eq!(
        s.delete(&format!(
            "/api/v1/contacts/{cid}/certifications/{}",
            id(&cert)
        ))
        .status(),
        204
    );
    assert_eq!(
        s.get_json("/api/v1/certifications/expiring?days=60")
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // deletes
    assert_eq!(s.delete(&format!("/api/v1/leads/{lid}")).status(), 204);
    assert_eq!(error_of(s.get(&format!("/api/v1/leads/{lid}"))).0, 404);
    assert_eq!(
        error_of(s.get(&format!("/api/v1/activities/{}", id(&a)))).0,
        404,
        "a deleted lead's activities go with it"
    );
    assert_eq!(
        s.delete(&format!("/api/v1/opportunities/{oid}")).status(),
        204
    );
    assert_eq!(s.get_json("/api/v1/opportunities/count")["count"], 1);
    assert_eq!(s.get_json("/api/v1/leads/count")["count"], 1);
    // the OpenAPI lists the new routes
    let api = s.get_json("/api/v1/openapi.json");
    for p in [
        "/api/v1/leads",
        "/api/v1/leads/{id}/convert",
        "/api/v1/pipeline",
        "/api/v1/records/{kind}/{id}/timeline",
    ] {
        assert!(api["paths"].get(p).is_some(), "{p} missing from OpenAPI");
    }
}

#[test]
fn conversion_fresh_and_into_existing_records() {
    let s = Server::start_with(&[FAST]);
    // fresh: new contact, account (named after the company, with the email's domain), opportunity
    let lead = created(s.post("/api/v1/leads", &json!({"first_name": "Cleo", "last_name": "Park", "email": "cleo@umbrella.example", "company": "Umbrella Learning", "industry": "pharma", "country": "FR"})));
    let lid = id(&lead);
    let act = created(s.post(
        "/api/v1/activities",
        &json!({"kind": "call", "subject": "Intro call", "record": format!("lead:{lid}")}),
    ));
    let r = s.post(&format!("/api/v1/leads/{lid}/convert"), &json!({"create_opportunity": true, "opportunity": {"name": "GMP course", "amount": "5000", "currency": "EUR", "stage": "qualification", "expected_close": "2027-06-30"}}));
    assert_eq!(r.status(), 200);
    let out: Value = r.json().unwrap();
    let (cid, aid, oid) = (
        out["contact_id"].as_u64().unwrap(),
        out["account_id"].as_u64().unwrap(),
        out["opportunity_id"].as_u64().unwrap(),
    );
    let contact = s.get_json(&format!("/api/v1/contacts/{cid}"));
    assert_eq!(
        (contact["email"].as_str(), contact["account_id"].as_u64()),
        (Some("cleo@umbrella.example"), Some(aid))
    );
    let account = s.get_json(&format!("/api/v1/accounts/{aid}"));
    assert_eq!(
        (account["name"].as_str(), account["domain"].as_str()),
        (Some("Umbrella Learning"), Some("umbrella.example"))
    );
    let opp = s.get_json(&format!("/api/v1/opportunities/{oid}"));
    assert_eq!(
        (
            opp["lead_id"].as_u64(),
            opp["account_id"].as_u64(),
            opp["contact_id"].as_u64(),
            opp["amount"].as_str(),
            opp["stage"].as_str()
        ),
        (
            Some(lid),
            Some(aid),
            Some(cid),
            Some("5000.00"),
            Some("qualification")
        )
    );
    let lead = s.get_json(&format!("/api/v1/leads/{lid}"));
    assert_eq!(
        (
            lead["status"].as_str(),
            lead["converted_contact_id"].as_u64(),
            lead["converted_account_id"].as_u64(),
            lead["converted_opportunity_id"].as_u64()
        ),
        (Some("converted"), Some(cid), Some(aid), Some(oid))
    );
    assert_eq!(
        s.get_json(&format!("/api/v1/activities/{}", id(&act)))["record"],
        format!("contact:{cid}")
    );
    assert_eq!(
        ids_of(&s.get_json(&format!("/api/v1/leads?contact={cid}"))),
        vec![lid],
        "contact -> lead link"
    );
    // the contact is searchable at once (search index kept in step)
    assert_eq!(s.get_json("/api/v1/contacts?q=cleo")["total"], 1);
    // converting again: 409, nothing changes
    let (st, e) = error_of(s.post(&format!("/api/v1/leads/{lid}/convert"), &json!({})));
    assert_eq!((st, e["code"].as_str()), (409, Some("conflict")));
    assert_eq!(s.get_json("/api/v1/accounts/count")["count"], 1);
    // the event log has the conversion for integrators
    let audit = s.get_json(&format!("/api/v1/audit?record=lead:{lid}"));
    assert!(audit.to_string().contains("conversion"), "{audit}");

    // into existing records: the contact exists (by email), the account by company name
    let existing_contact = created(s.post(
        "/api/v1/contacts",
        &json!({"email": "dan@initech.example", "first_name": "Dan"}),
    ));
    let existing_account = created(s.post("/api/v1/accounts", &json!({"name": "Initech"})));
    let l2 = created(s.post(
        "/api/v1/leads",
        &json!({"first_name": "Daniel", "email": "DAN@initech.example", "company": "initech"}),
    ));
    let r = s.post(
        &format!("/api/v1/leads/{}/convert", id(&l2)),
        &json!({"create_opportunity": false}),
    );
    assert_eq!(r.status(), 200);
    let out: Value = r.json().unwrap();
    assert_eq!(
        out,
        json!({"contact_id": id(&existing_contact), "account_id": id(&existing_account), "opportunity_id": null})
    );
    assert_eq!(
        s.get_json(&format!("/api/v1/contacts/{}", id(&existing_contact)))["first_name"],
        "Dan",
        "an existing contact is linked, not overwritten"
    );
    assert_eq!(
        s.get_json("/api/v1/contacts?q=initech")["total"],
        1,
        "no second contact"
    );
    // matched by email domain when the company name differs; empty body uses the defaults
    let l3 = created(s.post(
        "/api/v1/leads",
        &json!({"email": "eve@umbrella.example", "company": "Umbrella Corp (FR)"}),
    ));
    let r = s
        .client
        .post(s.url(&format!("/api/v1/leads/{}/convert", id(&l3))))
        .bearer_auth(&s.token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().unwrap()["account_id"], aid);
    assert_eq!(s.get_json("/api/v1/contacts?q=eve")["total"], 1);
    assert_eq!(s.get_json("/api/v1/accounts/count")["count"], 2);
}

#[test]
fn conversion_is_atomic_under_an_injected_failure() {
    for step in ["contact", "lead"] {
        let s = Server::start_with(&[FAST, ("MAILSTEAD_TEST_FAIL_CONVERT_AFTER", step)]);
        let lead = created(s.post(
            "/api/v1/leads",
            &json!({"first_name": "Fay", "email": "fay@stark.example", "company": "Stark Academy"}),
        ));
        let lid = id(&lead);
        let act = created(s.post(
            "/api/v1/activities",
            &json!({"kind": "note", "subject": "Met at expo", "record": format!("lead:{lid}")}),
        ));
        let audit_before = s.get_json("/api/v1/audit?limit=500").to_string();
        let r = s.post(&format!("/api/v1/leads/{lid}/convert"), &json!({"create_opportunity": true, "opportunity": {"amount": "100", "currency": "USD"}}));
        assert_eq!(r.status(), 500, "step {step}");
        // nothing changed: no contact, account or opportunity; lead and activity as before
        assert_eq!(
            s.get_json("/api/v1/contacts?q=fay")["total"],
            0,
            "step {step}"
        );
        assert!(s.store_contact_absent("fay@stark.example"));
        assert_eq!(s.get_json("/api/v1/accounts/count")["count"], 0);
        assert_eq!(s.get_json("/api/v1/opportunities/count")["count"], 0);
        assert_eq!(s.get_json(&format!("/api/v1/leads/{lid}")), lead);
        assert_eq!(s.get_json(&format!("/api/v1/activities/{}", id(&act))), act);
        assert_eq!(
            s.get_json("/api/v1/audit?limit=500").to_string(),
            audit_before,
            "no audit entry of the failed conversion"
        );
    }
}

trait StoreCheck {
    fn store_contact_absent(&self, email: &str) -> bool;
}

impl StoreCheck for Server {
    /// The contact's creation event is not in the audit trail nor the contact in a list.
    fn store_contact_absent(&self, email: &str) -> bool {
        let all = self.get_json("/api/v1/contacts?limit=100");
        !all.to_string().contains(email)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Owner {
    Own,
    Other,
    Unassigned,
}

const KINDS: [&str; 4] = ["leads", "accounts", "opportunities", "activities"];
const ROLES: [&str; 5] = ["admin", "manager", "sales", "marketing", "viewer"];

fn sees(role: &str, kind: &str, owner: Owner) -> bool {
    match role {
        "sales" => owner == Owner::Own || (owner == Owner::Unassigned && kind == "leads"),
        _ => true,
    }
}

/// The status a change (PATCH or DELETE) answers.
fn change_status(role: &str, kind: &str, owner: Owner, ok: u16) -> u16 {
    if !sees(role, kind, owner) {
        404
    } else if role == "viewer" || (role == "marketing" && kind == "opportunities") {
        403
    } else {
        ok
    }
}

fn owner_field(kind: &str) -> &'static str {
    if kind == "leads" {
        "assigned_to"
    } else {
        "owner_id"
    }
}

fn body_for(kind: &str, n: usize, owner: Option<u64>) -> Value {
    let mut b = match kind {
        "leads" => {
            json!({"first_name": format!("matrix{n}"), "email": format!("m{n}@matrix.example")})
        }
        "accounts" => json!({"name": format!("matrix{n} ltd")}),
        "opportunities" => {
            json!({"name": format!("matrix{n} deal"), "amount": "1000", "currency": "EUR"})
        }
        _ => json!({"kind": "note", "subject": format!("matrix{n} note")}),
    };
    b[owner_field(kind)] = json!(owner);
    b
}

fn patch_for(kind: &str) -> Value {
    match kind {
        "leads" => json!({"score": 5}),
        "accounts" => json!({"industry": "training"}),
        "opportunities" => json!({"programme": "ISO 14001"}),
        _ => json!({"done": true}),
    }
}

#[test]
fn access_matrix() {
    let s = Server::start_with(&[FAST]);
    let admin = admin_id(&s);
    let mut users: Vec<(&str, u64, String)> = vec![("admin", admin, s.token.clone())];
    for role in &ROLES[1..] {
        let (uid, tok) = s.user_with_token(&format!("{role}@example.test"), role);
        users.push((role, uid, tok));
    }
    let (other, _) = s.user_with_token("other@example.test", "sales");
    let mut n = 0;
    let mut make = |kind: &str, owner: Option<u64>| -> u64 {
        n += 1;
        id(&created(s.post(
            &format!("/api/v1/{kind}"),
            &body_for(kind, n, owner),
        )))
    };
    // kind -> role -> owner class -> record id
    let mut records = std::collections::BTreeMap::new();
    for kind in KINDS {
        let other_id = make(kind, Some(other));
        let none_id = make(kind, None);
        for (role, uid, _) in &users {
            let own = make(kind, Some(*uid));
            records.insert(
                (kind, *role),
                [
                    (Owner::Own, own),
                    (Owner::Other, other_id),
                    (Owner::Unassigned, none_id),
                ],
            );
        }
    }
    for (role, uid, tok) in &users {
        for kind in KINDS {
            let mine = records[&(kind, *role)];
            // get and update
            for (class, rid) in mine {
                let r = call(&s, tok, "GET", &format!("/api/v1/{kind}/{rid}"), None);
                let want = if sees(role, kind, class) { 200 } else { 404 };
                assert_eq!(r.status().as_u16(), want, "{role} GET {kind} {class:?}");
                if want == 200 && kind == "opportunities" {
                    let v: Value = r.json().unwrap();
                    let amount_shown = !v["amount"].is_null();
                    assert_eq!(
                        amount_shown,
                        *role != "marketing",
                        "{role} amount of {class:?}"
                    );
                }
                let r = call(
                    &s,
                    tok,
                    "PATCH",
                    &format!("/api/v1/{kind}/{rid}"),
                    Some(&patch_for(kind)),
                );
                assert_eq!(
                    r.status().as_u16(),
                    change_status(role, kind, class, 200),
                    "{role} PATCH {kind} {class:?}"
                );
            }
            // list, search and count return exactly the visible records
            let all: Vec<u64> = records
                .iter()
                .filter(|((k, _), _)| *k == kind)
                .flat_map(|(_, recs)| recs.iter().map(|(_, i)| *i))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let owner_of = |rid: u64| -> Owner {
                for ((k, r), recs) in &records {
                    for (class, i) in recs {
                        if *k == kind && *i == rid && (*class != Owner::Own || r == role) {
                            return *class;
                        }
                    }
                }
                Owner::Other
            };
            let expected: Vec<u64> = all
                .iter()
                .copied()
                .filter(|r| sees(role, kind, owner_of(*r)))
                .collect();
            let list = call(&s, tok, "GET", &format!("/api/v1/{kind}?limit=100"), None)
                .json::<Value>()
                .unwrap();
            assert_eq!(ids_of(&list), expected, "{role} lists {kind}");
            assert_eq!(
                list["total"].as_u64().unwrap(),
                expected.len() as u64,
                "{role} list total {kind}"
            );
            let count = call(&s, tok, "GET", &format!("/api/v1/{kind}/count"), None)
                .json::<Value>()
                .unwrap();
            assert_eq!(
                count["count"].as_u64().unwrap(),
                expected.len() as u64,
                "{role} counts {kind}"
            );
            let search = call(
                &s,
                tok,
                "GET",
                &format!("/api/v1/{kind}/count?q=matrix"),
                None,
            )
            .json::<Value>()
            .unwrap();
            assert_eq!(
                search["count"].as_u64().unwrap(),
                expected.len() as u64,
                "{role} searches {kind}"
            );
            let r = call(&s, tok, "GET", &format!("/api/v1/{kind}/export"), None);
            assert_eq!(r.status(), 200, "{role} exports {kind}");
            let csv = r.text().unwrap();
            assert_eq!(
                csv.lines().count() - 1,
                expected.len(),
                "{role} exports {kind}: {csv}"
            );
            if kind == "opportunities" {
                assert_eq!(
                    csv.contains("1000.00"),
                    *role != "marketing",
                    "{role} export amounts"
                );
            }
            let mine_filter = call(
                &s,
                tok,
                "GET",
                &format!("/api/v1/{kind}?owner={uid}&limit=100"),
                None,
            )
            .json::<Value>()
            .unwrap();
            assert_eq!(
                ids_of(&mine_filter),
                vec![mine[0].1],
                "{role} filters {kind} by owner"
            );
            // create for somebody else
            let r = call(
                &s,
                tok,
                "POST",
                &format!("/api/v1/{kind}"),
                Some(&body_for(kind, 900, Some(other))),
            );
            let want = match *role {
                "viewer" => 403,
                "marketing" if kind == "opportunities" => 403,
                "sales" => 403,
                _ => 201,
            };
            assert_eq!(
                r.status().as_u16(),
                want,
                "{role} creates {kind} for another user"
            );
            if want == 201 {
                let v: Value = r.json().unwrap();
                assert_eq!(
                    call(
                        &s,
                        &s.token,
                        "DELETE",
                        &format!("/api/v1/{kind}/{}", id(&v)),
                        None
                    )
                    .status(),
                    204
                );
            }
        }
        // the pipeline board: counts as the list, sums hidden from marketing
        let board = call(&s, tok, "GET", "/api/v1/pipeline", None)
            .json::<Value>()
            .unwrap();
        let prospecting = &board["stages"][0];
        let expected = if *role == "sales" {
            1
        } else {
            1 + 1 + users.len() as u64
        };
        assert_eq!(
            prospecting["count"].as_u64().unwrap(),
            expected,
            "{role} board count"
        );
        assert_eq!(
            prospecting["totals"].is_null(),
            *role == "marketing",
            "{role} board totals"
        );
        if *role != "marketing" {
            let total = format!("{}.00", 1000 * expected);
            assert_eq!(
                prospecting["totals"][0]["amount"], total,
                "{role} board sum"
            );
        }
    }
    // deletes: denied ones leave the record; allowed ones are tried on fresh records
    for (role, uid, tok) in &users {
        for kind in KINDS {
            for (class, rid) in records[&(kind, *role)] {
                let want = change_status(role, kind, class, 204);
                let target = if want == 204 {
                    make(
                        kind,
                        match class {
                            Owner::Own => Some(*uid),
                            Owner::Other => Some(other),
                            Owner::Unassigned => None,
                        },
                    )
                } else {
                    rid
                };
                let r = call(&s, tok, "DELETE", &format!("/api/v1/{kind}/{target}"), None);
                assert_eq!(r.status().as_u16(), want, "{role} DELETE {kind} {class:?}");
                let still = call(
                    &s,
                    &s.token,
                    "GET",
                    &format!("/api/v1/{kind}/{target}"),
                    None,
                )
                .status();
                assert_eq!(
                    still == 200,
                    want != 204,
                    "{role} DELETE {kind} {class:?} took effect"
                );
            }
        }
    }
    // conversion: viewers may not, sales not another's lead, marketing not with an opportunity
    let lead = make("leads", Some(other));
    let tok = |role: &str| users.iter().find(|u| u.0 == role).unwrap().2.clone();
    assert_eq!(
        call(
            &s,
            &tok("viewer"),
            "POST",
            &format!("/api/v1/leads/{lead}/convert"),
            Some(&json!({}))
        )
        .status(),
        403
    );
    assert_eq!(
        call(
            &s,
            &tok("sales"),
            "POST",
            &format!("/api/v1/leads/{lead}/convert"),
            Some(&json!({}))
        )
        .status(),
        404
    );
    assert_eq!(
        call(
            &s,
            &tok("marketing"),
            "POST",
            &format!("/api/v1/leads/{lead}/convert"),
            Some(&json!({"create_opportunity": true}))
        )
        .status(),
        403
    );
    assert_eq!(
        s.get_json(&format!("/api/v1/leads/{lead}"))["status"],
        "new"
    );
    // timelines follow the record's visibility
    assert_eq!(
        call(
            &s,
            &tok("sales"),
            "GET",
            &format!("/api/v1/records/lead/{lead}/timeline"),
            None
        )
        .status(),
        404
    );
    assert_eq!(
        call(
            &s,
            &tok("viewer"),
            "GET",
            &format!("/api/v1/records/lead/{lead}/timeline"),
            None
        )
        .status(),
        200
    );
}

#[test]
fn bad_input_gets_clear_4xx_and_changes_nothing() {
    let s = Server::start_with(&[FAST]);
    let acc_a = created(s.post("/api/v1/accounts", &json!({"name": "A"})));
    let acc_b = created(s.post(
        "/api/v1/accounts",
        &json!({"name": "B", "parent_id": id(&acc_a)}),
    ));
    let acc_c = created(s.post(
        "/api/v1/accounts",
        &json!({"name": "C", "parent_id": id(&acc_b)}),
    ));
    let opp = created(s.post(
        "/api/v1/opportunities",
        &json!({"name": "Deal", "amount": "10", "currency": "GBP"}),
    ));
    let lead = created(s.post("/api/v1/leads", &json!({"email": "gil@example.org"})));
    let before = |path: &str| s.get_json(path);
    let opp_path = format!("/api/v1/opportunities/{}", id(&opp));
    let opp_before = before(&opp_path);
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (json!({"stage": "closing"}), 422, "unknown_stage", "stage"),
        (json!({"amount": "-5"}), 422, "invalid_amount", "amount"),
        (json!({"amount": -5}), 422, "invalid_amount", "amount"),
        (json!({"amount": "12,50"}), 422, "invalid_amount", "amount"),
        (json!({"amount": "ten"}), 422, "invalid_amount", "amount"),
        (json!({"amount": true}), 422, "invalid_amount", "amount"),
        (json!({"amount": "1.234"}), 422, "invalid_amount", "amount"),
        (
            json!({"currency": "EURO"}),
            422,
            "invalid_currency",
            "currency",
        ),
        (
            json!({"currency": "ABC"}),
            422,
            "invalid_currency",
            "currency",
        ),
        (json!({"owner_id": 9999}), 422, "invalid_field", "owner_id"),
        (
            json!({"account_id": 9999}),
            422,
            "invalid_field",
            "account_id",
        ),
        (
            json!({"expected_close": "next week"}),
            422,
            "invalid_field",
            "expected_close",
        ),
        // a valid field with an invalid one: nothing of it is applied
        (
            json!({"name": "Renamed", "stage": "won", "currency": "XXQ"}),
            422,
            "invalid_currency",
            "currency",
        ),
    ];
    for (body, status, code, field) in cases {
        let (st, e) = error_of(s.patch(&opp_path, &body));
        assert_eq!(
            (
                st,
                e["code"].as_str().unwrap(),
                e["field"].as_str().unwrap()
            ),
            (status, code, field),
            "{body}"
        );
        assert!(!e["message"].as_str().unwrap().is_empty());
    }
    assert_eq!(
        before(&opp_path),
        opp_before,
        "no bad PATCH changed the opportunity"
    );
    let (st, e) = error_of(s.post(
        "/api/v1/opportunities",
        &json!({"name": "X", "amount": "-1"}),
    ));
    assert_eq!((st, e["code"].as_str().unwrap()), (422, "invalid_amount"));
    assert_eq!(s.get_json("/api/v1/opportunities/count")["count"], 1);
    // parent cycles
    let a_path = format!("/api/v1/accounts/{}", id(&acc_a));
    let (st, e) = error_of(s.patch(&a_path, &json!({"parent_id": id(&acc_c)})));
    assert_eq!((st, e["code"].as_str().unwrap()), (422, "invalid_parent"));
    let (st, _) = error_of(s.patch(&a_path, &json!({"parent_id": id(&acc_a)})));
    assert_eq!(st, 422);
    let (st, _) = error_of(s.patch(&a_path, &json!({"parent_id": 4242})));
    assert_eq!(st, 422);
    assert!(s.get_json(&a_path)["parent_id"].is_null());
    // assigning to a user who does not exist
    let lead_path = format!("/api/v1/leads/{}", id(&lead));
    let (st, e) = error_of(s.patch(&lead_path, &json!({"assigned_to": 777, "score": 9})));
    assert_eq!((st, e["field"].as_str().unwrap()), (422, "assigned_to"));
    assert_eq!(s.get_json(&lead_path), lead);
    let (st, _) = error_of(s.post(
        "/api/v1/leads",
        &json!({"email": "h@example.org", "assigned_to": 777}),
    ));
    assert_eq!(st, 422);
    let (st, _) = error_of(s.patch(&lead_path, &json!({"status": "converted"})));
    assert_eq!(st, 422, "a lead is converted only by conversion");
    let (st, _) = error_of(s.patch(&lead_path, &json!({"status": "won"})));
    assert_eq!(st, 422);
    // conversion with bad opportunity input changes nothing
    let (st, e) = error_of(s.post(
        &format!("{lead_path}/convert"),
        &json!({"create_opportunity": true, "opportunity": {"stage": "nope"}}),
    ));
    assert_eq!((st, e["code"].as_str().unwrap()), (422, "unknown_stage"));
    let (st, _) = error_of(s.post(
        &format!("{lead_path}/convert"),
        &json!({"create_opportunity": true, "opportunity": {"amount": "-3"}}),
    ));
    assert_eq!(st, 422);
    let (st, _) = error_of(s.post(
        &format!("{lead_path}/convert"),
        &json!({"create_opportunity": "yes"}),
    ));
    assert_eq!(st, 422);
    assert_eq!(s.get_json(&lead_path), lead);
    assert_eq!(s.get_json("/api/v1/contacts?q=gil")["total"], 0);
    assert_eq!(s.get_json("/api/v1/accounts/count")["count"], 3);
    // lists: bad filters and sorts
    for q in [
        "status=won",
        "stage=closing",
        "owner=bob",
        "sort=colour",
        "cursor=zzz",
    ] {
        let path = if q.starts_with("stage") {
            format!("/api/v1/opportunities?{q}")
        } else {
            format!("/api/v1/leads?{q}")
        };
        let (st, _) = error_of(s.get(&path));
        assert_eq!(st, 422, "{q}");
    }
    let (st, _) = error_of(s.get("/api/v1/records/spaceship/1/timeline"));
    assert_eq!(st, 422);
    // stage table: a stage with opportunities cannot be removed; bad tables are refused
    let (st, _) = error_of(
        s.client
            .put(s.url("/api/v1/pipeline/stages"))
            .bearer_auth(&s.token)
            .json(&json!([{"name": "won", "probability": 100}]))
            .send()
            .unwrap(),
    );
    assert_eq!(st, 409, "prospecting still has an opportunity");
    let (st, _) = error_of(
        s.client
            .put(s.url("/api/v1/pipeline/stages"))
            .bearer_auth(&s.token)
            .json(&json!([{"name": "prospecting", "probability": 120}]))
            .send()
            .unwrap(),
    );
    assert_eq!(st, 422);
    let r = s.client.put(s.url("/api/v1/pipeline/stages")).bearer_auth(&s.token).json(&json!([{"name": "prospecting", "probability": 15}, {"name": "demo", "probability": 40}, {"name": "won", "probability": 100}, {"name": "lost", "probability": 0}])).send().unwrap();
    assert_eq!(r.status(), 200);
    let r = s.patch(&opp_path, &json!({"stage": "demo"}));
    assert_eq!(r.json::<Value>().unwrap()["probability"], 40);
}

/// An import report's (created, updated, failed).
fn counts(rep: &Value) -> (Option<u64>, Option<u64>, Option<u64>) {
    (
        rep["created"].as_u64(),
        rep["updated"].as_u64(),
        rep["failed"].as_u64(),
    )
}

/// Posts a CSV import that must be accepted; returns its report.
fn import(s: &Server, token: &str, path: &str, csv: &str) -> Value {
    let r = post_csv(s, token, path, csv);
    assert_eq!(r.status(), 200);
    r.json().unwrap()
}

fn post_csv(s: &Server, token: &str, path: &str, csv: &str) -> Response {
    s.client
        .post(s.url(path))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv.to_string())
        .send()
        .unwrap()
}

#[test]
fn csv_import_and_export() {
    let s = Server::start_with(&[FAST]);
    let csv = "First_Name,Email,Company,Score,Status\n\
               Ann,ann@x.example,Acme,10,new\n\
               Bob,not-an-email,Acme,5,new\n\
               Ann B,ANN@x.example,,20,contacted\n\
               Cy,cy@x.example,Acme,abc,new\n\
               Di,di@x.example,Acme,1,won\n";
    let r = post_csv(&s, &s.token, "/api/v1/leads/import", csv);
    assert_eq!(r.status(), 200);
    let rep: Value = r.json().unwrap();
    assert_eq!(counts(&rep), (Some(1), Some(1), Some(3)), "{rep}");
    let lines: Vec<u64> = rep["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![3, 5, 6], "{rep}");
    let leads = s.get_json("/api/v1/leads");
    assert_eq!(leads["total"], 1);
    assert_eq!(
        (
            leads["items"][0]["first_name"].as_str(),
            leads["items"][0]["score"].as_u64(),
            leads["items"][0]["company"].as_str()
        ),
        (Some("Ann B"), Some(20), Some("Acme")),
        "a later row updates the earlier one; empty cells keep values"
    );

    // accounts: export, then import the export again (rows match by id and name: updates)
    created(s.post(
        "/api/v1/accounts",
        &json!({"name": "Acme", "domain": "acme.example", "address": {"city": "Lyon"}}),
    ));
    created(s.post("/api/v1/accounts", &json!({"name": "=HYPERLINK(\"x\")"})));
    let r = s.get("/api/v1/accounts/export");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let export = r.text().unwrap();
    assert!(export.starts_with("id,name,domain"), "{export}");
    assert!(export.contains("Lyon"));
    assert!(
        export.contains("'=HYPERLINK"),
        "formulas are defused: {export}"
    );
    let rep = import(&s, &s.token, "/api/v1/accounts/import", &export);
    assert_eq!(counts(&rep), (Some(0), Some(2), Some(0)), "{rep}");
    // a new account by import, with its address
    let rep = import(
        &s,
        &s.token,
        "/api/v1/accounts/import",
        "name,city,parent_id\nGlobex,Paris,4242\nInitech,Oslo,\n",
    );
    assert_eq!(counts(&rep), (Some(1), Some(0), Some(1)), "{rep}");
    assert!(
        rep["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("4242")
    );
    let accounts = s.get_json("/api/v1/accounts?q=initech");
    assert_eq!(accounts["items"][0]["address"]["city"], "Oslo");
    // opportunities: bad amounts and currencies are row errors
    let rep = import(
        &s,
        &s.token,
        "/api/v1/opportunities/import",
        "name,amount,currency,stage\nA,100,EUR,proposal\nB,-1,EUR,\nC,5,EURO,\nD,5,EUR,closing\n",
    );
    assert_eq!(counts(&rep), (Some(1), Some(0), Some(3)), "{rep}");
    // who may import: viewers not at all, sales only their own
    let (_, viewer) = s.user_with_token("v@example.test", "viewer");
    let (sales_id, sales) = s.user_with_token("s@example.test", "sales");
    assert_eq!(
        post_csv(&s, &viewer, "/api/v1/leads/import", "email\nz@x.example\n").status(),
        403
    );
    let rep = import(
        &s,
        &sales,
        "/api/v1/leads/import",
        &format!("email,assigned_to\nmine@x.example,{sales_id}\nyours@x.example,1\n"),
    );
    assert_eq!(counts(&rep), (Some(1), Some(0), Some(1)), "{rep}");
    let (st, _) = error_of(post_csv(
        &s,
        &s.token,
        "/api/v1/leads/import",
        "colour,size\nred,9\n",
    ));
    assert_eq!(st, 422, "a header without any known column");
}

#[test]
fn lead_scores_follow_the_rules_and_engagement_with_a_breakdown() {
    let s = Server::start_with(&[FAST]);
    // a decision maker at a mid-sized finance company in Germany, and a student
    let boss = created(s.post(
        "/api/v1/leads",
        &json!({"email": "hanna.berg@bank.example", "first_name": "Hanna", "job_title": "Head of Training",
                "company": "Nordbank", "company_size": "250-500", "industry": "Finance", "country": "DE"}),
    ));
    let student = created(s.post(
        "/api/v1/leads",
        &json!({"email": "sam@student.example", "first_name": "Sam", "job_title": "Student"}),
    ));
    // default rules: head 15 + training 10 + size 15 + finance 10 + DE 5
    assert_eq!(boss["score"], 55, "{boss}");
    assert_eq!(student["score"], 0, "{student}");
    let sc = s.get_json(&format!("/api/v1/leads/{}/score", id(&boss)));
    assert_eq!(sc["fit"], 55, "{sc}");
    assert!(
        sc["breakdown"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["rule"] == "fit: job_title contains \"head\"" && p["points"] == 15.0),
        "{sc}"
    );
    // sorted by score, highest first
    let page = s.get_json("/api/v1/leads?sort=-score");
    assert_eq!(page["items"][0]["id"], boss["id"], "{page}");

    // new rules: students count too; every lead is rescored at once
    let mut rules = s.get_json("/api/v1/leads/scoring-rules");
    rules["fit"]
        .as_array_mut()
        .unwrap()
        .push(json!({"field": "job_title", "contains": "student", "points": 60}));
    let r = s
        .client
        .put(s.url("/api/v1/leads/scoring-rules"))
        .bearer_auth(&s.token)
        .json(&rules)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    assert_eq!(
        s.get_json(&format!("/api/v1/leads/{}", id(&student)))["score"],
        60
    );
    let page = s.get_json("/api/v1/leads?sort=-score");
    assert_eq!(page["items"][0]["id"], student["id"], "{page}");
    // the stored scores filter lists: Hanna 55, Sam 60
    let at_least = |m: &str| ids_of(&s.get_json(&format!("/api/v1/leads?min_score={m}")));
    assert_eq!(at_least("55"), {
        let mut v = vec![id(&boss), id(&student)];
        v.sort_unstable();
        v
    });
    assert_eq!(at_least("56"), vec![id(&student)]);
    assert_eq!(at_least("61"), Vec::<u64>::new());
    assert_eq!(at_least("-5").len(), 2);
    let (st, e) = error_of(s.get("/api/v1/leads?min_score=lots"));
    assert!(st == 400 || st == 422, "{st} {e}");
    // a score set by hand is kept as an adjustment: it still moves with the rules
    let r = s.patch(
        &format!("/api/v1/leads/{}", id(&student)),
        &json!({"score": 75}),
    );
    assert_eq!(r.status(), 200);
    let sc = s.get_json(&format!("/api/v1/leads/{}/score", id(&student)));
    assert_eq!(
        (sc["score"].as_i64(), sc["adjustment"].as_i64()),
        (Some(75), Some(15)),
        "{sc}"
    );
    assert!(
        sc["breakdown"].to_string().contains("manual adjustment"),
        "{sc}"
    );
    let mut raised = rules.clone();
    let last = raised["fit"].as_array().unwrap().len() - 1;
    raised["fit"][last]["points"] = json!(70);
    assert_eq!(s.put("/api/v1/leads/scoring-rules", &raised).status(), 200);
    assert_eq!(
        s.get_json(&format!("/api/v1/leads/{}", id(&student)))["score"],
        85
    );
    assert_eq!(s.put("/api/v1/leads/scoring-rules", &rules).status(), 200);
    // three rule changes, each audited
    let audit = s.get_json("/api/v1/audit?record=setting:crm_scoring_rules");
    assert_eq!(audit["items"].as_array().unwrap().len(), 3, "{audit}");

    // a bad rule is named; sales may not change the rules
    rules["fit"][0]["field"] = json!("shoe_size");
    let (st, e) = error_of(
        s.client
            .put(s.url("/api/v1/leads/scoring-rules"))
            .bearer_auth(&s.token)
            .json(&rules)
            .send()
            .unwrap(),
    );
    assert_eq!(st, 422, "{e}");
    assert!(e["message"].as_str().unwrap().contains("fit[0]"), "{e}");
    let (_, sales) = s.user_with_token("rep@example.test", "sales");
    let r = call(
        &s,
        &sales,
        "PUT",
        "/api/v1/leads/scoring-rules",
        Some(&rules),
    );
    assert_eq!(r.status(), 403);

    // engagement: a sign-up form by the lead's address adds 15 (fresh, no decay yet)
    let list = created(s.post("/api/v1/lists", &json!({"name": "News"})));
    let r = s
        .new_client()
        .post(s.url(&format!("/f/{}", id(&list))))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=hanna.berg%40bank.example")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let sc = s.get_json(&format!("/api/v1/leads/{}/score", id(&boss)));
    assert_eq!(sc["engagement"], 15, "{sc}");
    assert_eq!(sc["score"], 70, "{sc}");
}

#[test]
fn tasks_due_the_team_directory_and_an_accounts_contacts() {
    let s = Server::start_with(&[FAST]);
    let (rep, sales) = s.user_with_token("rep@example.test", "sales");
    // tasks: overdue, due today, due tomorrow, done today, and a note
    let today = time::OffsetDateTime::now_utc().date();
    let day = |d: i64| (today + time::Duration::days(d)).to_string();
    let task = |subject: &str, due: String, owner: u64| {
        id(&created(s.post(
            "/api/v1/activities",
            &json!({"kind": "task", "subject": subject, "due": due, "owner_id": owner}),
        )))
    };
    let overdue = task("Call back Globex", day(-2), rep);
    let today_t = task("Send the quote", day(0), rep);
    let tomorrow = task("Prepare the demo", day(1), rep);
    let done = task("Book the room", day(0), rep);
    let other = task("Admin's own task", day(0), admin_id(&s));
    assert_eq!(
        s.patch(
            &format!("/api/v1/activities/{done}"),
            &json!({"done": true})
        )
        .status(),
        200
    );
    created(s.post(
        "/api/v1/activities",
        &json!({"kind": "note", "subject": "Met at the fair"}),
    ));
    let due_today = format!(
        "/api/v1/activities?kind=task&done=false&due_before={}&sort=due",
        day(0)
    );
    let page = s.get_json(&due_today);
    let got: Vec<u64> = page["items"].as_array().unwrap().iter().map(id).collect();
    assert_eq!(got.len(), 3, "{page}");
    assert_eq!(got[0], overdue, "overdue first: {page}");
    assert!(got.contains(&today_t) && got.contains(&other) && !got.contains(&tomorrow));
    // the sales rep sees their own only; `owner=me` the same
    let mine = call(&s, &sales, "GET", &format!("{due_today}&owner=me"), None)
        .json::<Value>()
        .unwrap();
    let mut want = vec![overdue, today_t];
    want.sort_unstable();
    assert_eq!(ids_of(&mine), want, "{mine}");
    let done_page = s.get_json("/api/v1/activities?done=true");
    assert_eq!(ids_of(&done_page), vec![done]);
    let (st, e) = error_of(s.get("/api/v1/activities?due_before=tomorrow"));
    assert_eq!(st, 422, "{e}");
    assert_eq!(e["field"], "due_before", "{e}");

    // the directory: every user for assignment, to any role; user admin stays admin-only
    let dir = call(&s, &sales, "GET", "/api/v1/users/directory", None);
    assert_eq!(dir.status(), 200);
    let dir: Value = dir.json().unwrap();
    let emails: Vec<&str> = dir["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert!(
        emails.contains(&ADMIN) && emails.contains(&"rep@example.test"),
        "{dir}"
    );
    assert!(dir["items"][0].get("password_hash").is_none());
    assert_eq!(call(&s, &sales, "GET", "/api/v1/users", None).status(), 403);

    // an account's contacts, found by `account:ID`; deleting the account unlinks them
    let acc = id(&created(
        s.post("/api/v1/accounts", &json!({"name": "Globex"})),
    ));
    let other_acc = id(&created(
        s.post("/api/v1/accounts", &json!({"name": "Initech"})),
    ));
    let c1 = id(&created(s.post(
        "/api/v1/contacts",
        &json!({"email": "ann@globex.example", "account_id": acc}),
    )));
    let c2 = id(&created(s.post(
        "/api/v1/contacts",
        &json!({"email": "bob@globex.example", "account_id": acc}),
    )));
    let c3 = id(&created(s.post(
        "/api/v1/contacts",
        &json!({"email": "cy@initech.example", "account_id": other_acc}),
    )));
    let mut want = vec![c1, c2];
    want.sort_unstable();
    assert_eq!(
        ids_of(&s.get_json(&format!("/api/v1/contacts?q=account:{acc}"))),
        want
    );
    let (st, e) = error_of(s.get("/api/v1/contacts?q=account:globex"));
    assert_eq!(st, 422, "{e}");
    // a sales rep may not delete an account they do not own: nothing is unlinked
    assert_eq!(
        call(
            &s,
            &sales,
            "DELETE",
            &format!("/api/v1/accounts/{acc}"),
            None
        )
        .status(),
        404
    );
    assert_eq!(
        s.get_json(&format!("/api/v1/contacts/{c1}"))["account_id"],
        acc
    );
    assert_eq!(s.delete(&format!("/api/v1/accounts/{acc}")).status(), 204);
    for c in [c1, c2] {
        let v = s.get_json(&format!("/api/v1/contacts/{c}"));
        assert!(v["account_id"].is_null(), "{v}");
    }
    assert_eq!(
        s.get_json(&format!("/api/v1/contacts/{c3}"))["account_id"],
        other_acc
    );
    assert_eq!(
        s.get_json(&format!("/api/v1/contacts?q=account:{acc}"))["total"],
        0
    );
    let hist = s.get_json(&format!("/api/v1/audit?record=account:{acc}"));
    assert!(hist.to_string().contains("2 contacts unlinked"), "{hist}");
}

#[test]
fn renewals_and_lead_scores_select_campaign_audiences() {
    let s = Server::start_with(&[FAST]);
    let today = time::OffsetDateTime::now_utc().date();
    let day = |d: i64| (today + time::Duration::days(d)).to_string();
    let contact = |email: &str| {
        id(&created(
            s.post("/api/v1/contacts", &json!({"email": email})),
        ))
    };
    let (soon, later, lapsed, none) = (
        contact("soon@renewals.example"),
        contact("later@renewals.example"),
        contact("lapsed@renewals.example"),
        contact("none@renewals.example"),
    );
    let certify = |c: u64, name: &str, expires: String| {
        id(&created(s.post(
            &format!("/api/v1/contacts/{c}/certifications"),
            &json!({"name": name, "issued": "2024-01-10", "expires": expires}),
        )))
    };
    let soon_cert = certify(soon, "ITIL 4 Foundation", day(10));
    certify(later, "PRINCE2 Practitioner", day(100));
    certify(lapsed, "ITIL 4 Foundation", day(-1));
    // leads: Later's address scores by its job title, None's does not
    let hot = created(s.post(
        "/api/v1/leads",
        &json!({"email": "later@renewals.example", "job_title": "Head of Training"}),
    ));
    assert!(hot["score"].as_i64().unwrap() > 0, "{hot}");
    created(s.post(
        "/api/v1/leads",
        &json!({"email": "none@renewals.example", "job_title": "Student"}),
    ));
    let matching = |filter: &str| -> Vec<u64> {
        let r = s.post(
            "/api/v1/segments/preview",
            &json!({"filter": filter, "limit": 100}),
        );
        let v: Value = r.json().unwrap();
        let mut ids: Vec<u64> = v["contacts"]
            .as_array()
            .unwrap_or_else(|| panic!("{filter}: {v}"))
            .iter()
            .map(id)
            .collect();
        ids.sort_unstable();
        assert_eq!(v["count"], ids.len() as u64, "{filter}: {v}");
        ids
    };
    assert_eq!(matching("certification_expires_within(60d)"), vec![soon]);
    assert_eq!(
        matching("certification_expires_within(365d)"),
        vec![soon, later]
    );
    assert_eq!(matching(r#"certified("itil")"#), vec![soon]);
    assert_eq!(
        matching(r#"not certified("ITIL") and email_domain = "renewals.example""#),
        vec![later, lapsed, none]
    );
    let score = hot["score"].as_i64().unwrap();
    assert_eq!(matching(&format!("lead_score >= {score}")), vec![later]);
    assert_eq!(
        matching(&format!("lead_score > {score}")),
        Vec::<u64>::new()
    );
    assert_eq!(matching(&format!("lead_score < {score}")), vec![none]);
    assert_eq!(matching("lead_score >= 0"), vec![later, none]);
    // a saved segment follows the records: the renewal is done, nobody is due
    let seg = created(s.post(
        "/api/v1/segments",
        &json!({"name": "Renewals due", "filter": "certification_expires_within(60d)"}),
    ));
    let count =
        |seg: &Value| s.get_json(&format!("/api/v1/segments/{}/count", id(seg)))["count"].clone();
    assert_eq!(count(&seg), 1);
    assert_eq!(
        s.delete(&format!(
            "/api/v1/contacts/{soon}/certifications/{soon_cert}"
        ))
        .status(),
        204
    );
    assert_eq!(count(&seg), 0);
    // bad input is located
    let (st, e) = error_of(s.post(
        "/api/v1/segments/preview",
        &json!({"filter": "lead_score >= \"hot\""}),
    ));
    assert_eq!(st, 422, "{e}");
    assert!(e["message"].as_str().unwrap().contains("number"), "{e}");
}

#[test]
fn a_manager_with_a_team_sees_the_teams_records_and_the_unassigned() {
    let s = Server::start_with(&[FAST]);
    let user = |email: &str, role: &str, team: Option<&str>| -> u64 {
        let mut body = json!({"email": email, "role": role, "password": PASSWORD});
        if let Some(t) = team {
            body["team"] = json!(t);
        }
        id(&created(s.post("/api/v1/users", &body)))
    };
    let north_rep = user("north.rep@example.test", "sales", Some("North"));
    let south_rep = user("south.rep@example.test", "sales", Some("south"));
    let lead_of = |owner: Option<u64>, name: &str| {
        id(&created(s.post(
            "/api/v1/leads",
            &json!({"first_name": name, "assigned_to": owner}),
        )))
    };
    let north_lead = lead_of(Some(north_rep), "Nora");
    let south_lead = lead_of(Some(south_rep), "Sam");
    let free_lead = lead_of(None, "Fay");
    let north_opp = id(&created(s.post(
        "/api/v1/opportunities",
        &json!({"name": "North deal", "owner_id": north_rep}),
    )));
    let south_opp = id(&created(s.post(
        "/api/v1/opportunities",
        &json!({"name": "South deal", "owner_id": south_rep}),
    )));
    // a manager in the north team (team names compare case-insensitively)
    let (boss, boss_token) = s.user_with_token("north.boss@example.test", "manager");
    let r = s.patch(&format!("/api/v1/users/{boss}"), &json!({"team": "north"}));
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().unwrap()["team"], "north");
    let get = |path: &str| call(&s, &boss_token, "GET", path, None);
    let mut want = vec![north_lead, free_lead];
    want.sort_unstable();
    assert_eq!(ids_of(&get("/api/v1/leads").json().unwrap()), want);
    assert_eq!(
        get("/api/v1/leads/count").json::<Value>().unwrap()["count"],
        2
    );
    assert_eq!(get(&format!("/api/v1/leads/{south_lead}")).status(), 404);
    assert_eq!(
        ids_of(&get("/api/v1/opportunities").json().unwrap()),
        vec![north_opp]
    );
    assert_eq!(
        get(&format!("/api/v1/opportunities/{south_opp}")).status(),
        404
    );
    let board: Value = get("/api/v1/pipeline").json().unwrap();
    let cards: u64 = board["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|st| st["count"].as_u64().unwrap())
        .sum();
    assert_eq!(cards, 1, "{board}");
    let csv = get("/api/v1/leads/export").text().unwrap();
    assert!(
        csv.contains("Nora") && csv.contains("Fay") && !csv.contains("Sam"),
        "{csv}"
    );
    // assigns within the team only
    let r = call(
        &s,
        &boss_token,
        "PATCH",
        &format!("/api/v1/leads/{free_lead}"),
        Some(&json!({"assigned_to": north_rep})),
    );
    assert_eq!(r.status(), 200);
    let r = call(
        &s,
        &boss_token,
        "PATCH",
        &format!("/api/v1/leads/{north_lead}"),
        Some(&json!({"assigned_to": south_rep})),
    );
    assert_eq!(r.status(), 403);
    assert_eq!(
        s.get_json(&format!("/api/v1/leads/{north_lead}"))["assigned_to"],
        north_rep
    );
    // out of the team: everything again; the change is a permission change in the audit
    let r = s.patch(&format!("/api/v1/users/{boss}"), &json!({"team": ""}));
    assert!(r.json::<Value>().unwrap()["team"].is_null());
    assert_eq!(
        get("/api/v1/leads/count").json::<Value>().unwrap()["count"],
        3
    );
    let audit = s.get_json(&format!("/api/v1/audit?record=user:{boss}"));
    assert!(audit.to_string().contains("\"permission\""), "{audit}");
    // a bad team name is named
    let (st, e) = error_of(s.patch(
        &format!("/api/v1/users/{boss}"),
        &json!({"team": "x".repeat(41)}),
    ));
    assert_eq!((st, e["field"].as_str()), (422, Some("team")), "{e}");
    // the directory shows teams
    let dir = s.get_json("/api/v1/users/directory");
    assert!(dir.to_string().contains("\"team\":\"North\""), "{dir}");
}
