//! Saved segments end to end over real HTTPS: live counts and previews of filters over
//! contacts with tags, attributes and lists, saved segment CRUD, row-level scoping of counts,
//! located filter errors, and counts that follow a contact update at once.

mod common;
use common::*;
use serde_json::{Value, json};

fn count_as(s: &Server, token: &str, filter: &str) -> u64 {
    let r = s
        .client
        .post(s.url("/api/v1/segments/preview"))
        .bearer_auth(token)
        .json(&json!({"filter": filter, "limit": 0}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().unwrap()["count"].as_u64().unwrap()
}

#[test]
fn segments_count_preview_crud_scope_and_errors() {
    let s = Server::start();
    let (sales_id, sales) = s.user_with_token("sam@example.com", "sales");
    let (_, viewer) = s.user_with_token("vic@example.com", "viewer");
    let list: Value = s
        .post("/api/v1/lists", &json!({"name": "Newsletter"}))
        .json()
        .unwrap();
    let list_id = list["id"].as_u64().unwrap();
    let people = [
        json!({"email": "ann@acme.example", "first_name": "Ann", "tags": ["certified"], "attributes": {"country": "DE", "score": 12}, "lists": [list_id], "owner_id": sales_id}),
        json!({"email": "bob@globex.example", "first_name": "Bob", "tags": ["certified", "vip"], "attributes": {"country": "FR"}, "lists": [list_id]}),
        json!({"email": "cem@acme.example", "first_name": "Cem", "attributes": {"country": "DE", "score": 3}}),
    ];
    let mut ids = Vec::new();
    for p in &people {
        let r = s.post("/api/v1/contacts", p);
        assert_eq!(r.status(), 201);
        ids.push(r.json::<Value>().unwrap()["id"].as_u64().unwrap());
    }

    // the issue's example (nobody has engagement yet, so nobody clicked)
    let example = r#"tag = "certified" and attributes.country = "DE" and not clicked_within(90d)"#;
    let r = s.post(
        "/api/v1/segments/preview",
        &json!({"filter": example, "limit": 5}),
    );
    assert_eq!(r.status(), 200);
    let p: Value = r.json().unwrap();
    assert_eq!(p["count"], 1);
    assert_eq!(p["contacts"][0]["email"], "ann@acme.example");

    let p: Value = s
        .post(
            "/api/v1/segments/preview",
            &json!({"filter": format!("list = {list_id} or attributes.score > 10")}),
        )
        .json()
        .unwrap();
    assert_eq!(p["count"], 2);
    assert_eq!(p["contacts"].as_array().unwrap().len(), 2);
    assert_eq!(p["contacts"][0]["first_name"], "Bob", "newest first");

    // saved segment CRUD
    let r = s.post(
        "/api/v1/segments",
        &json!({"name": "Certified in Germany", "filter": example}),
    );
    assert_eq!(r.status(), 201);
    let seg: Value = r.json().unwrap();
    let sid = seg["id"].as_u64().unwrap();
    assert_eq!(seg["filter"], example);
    assert_eq!(
        s.get_json(&format!("/api/v1/segments/{sid}/count"))["count"],
        1
    );
    assert_eq!(s.get_json("/api/v1/segments")["items"][0]["id"], sid);
    let r = s.put(
        &format!("/api/v1/segments/{sid}"),
        &json!({"filter": r#"tag = "certified""#}),
    );
    assert_eq!(r.status(), 200);
    let got = s.get_json(&format!("/api/v1/segments/{sid}"));
    assert_eq!(got["name"], "Certified in Germany");
    assert_eq!(got["filter"], r#"tag = "certified""#);
    assert_eq!(
        s.get_json(&format!("/api/v1/segments/{sid}/count"))["count"],
        2
    );

    // sales see only their own contacts' count; viewers read but cannot change
    let r = s
        .client
        .get(s.url(&format!("/api/v1/segments/{sid}/count")))
        .bearer_auth(&sales)
        .send()
        .unwrap();
    assert_eq!(r.json::<Value>().unwrap()["count"], 1);
    assert_eq!(count_as(&s, &sales, ""), 1);
    assert_eq!(count_as(&s, &viewer, ""), 3);
    let r = s
        .client
        .post(s.url("/api/v1/segments"))
        .bearer_auth(&viewer)
        .json(&json!({"name": "x", "filter": ""}))
        .send()
        .unwrap();
    let (status, e) = error_of(r);
    assert_eq!((status, e["code"].as_str().unwrap()), (403, "forbidden"));

    // a bad filter is a located 422
    let (status, e) = error_of(s.post(
        "/api/v1/segments/preview",
        &json!({"filter": "tag = \"certified\"\n  and opend_within(90d)"}),
    ));
    assert_eq!(status, 422);
    assert_eq!(e["code"], "invalid_filter");
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(2), Some(7))
    );
    assert!(
        e["message"].as_str().unwrap().contains("opened_within"),
        "{e}"
    );
    assert!(e["excerpt"].as_str().unwrap().ends_with("      ^"), "{e}");
    let (status, e) = error_of(s.put(
        &format!("/api/v1/segments/{sid}"),
        &json!({"filter": "created_within(30x)"}),
    ));
    assert_eq!(
        (status, e["code"].as_str().unwrap()),
        (422, "invalid_filter")
    );
    assert_eq!(e["column"], 18, "points at the unit");

    // counts follow a contact update at once
    let r = s.patch(
        &format!("/api/v1/contacts/{}", ids[2]),
        &json!({"tags": ["certified"]}),
    );
    assert_eq!(r.status(), 200);
    assert_eq!(
        s.get_json(&format!("/api/v1/segments/{sid}/count"))["count"],
        3
    );
    assert_eq!(
        s.delete(&format!("/api/v1/contacts/{}", ids[1])).status(),
        204
    );
    assert_eq!(
        s.get_json(&format!("/api/v1/segments/{sid}/count"))["count"],
        2
    );

    // delete, and the audit trail has the three changes
    assert_eq!(s.delete(&format!("/api/v1/segments/{sid}")).status(), 204);
    let (status, _) = error_of(s.get(&format!("/api/v1/segments/{sid}")));
    assert_eq!(status, 404);
    let audit = s.get_json(&format!("/api/v1/audit?record=segment:{sid}"));
    let text = audit.to_string();
    for action in ["\"create\"", "\"update\"", "\"delete\""] {
        assert!(text.contains(action), "{action} missing in {text}");
    }

    let doc = s.get_json("/api/v1/openapi.json");
    for p in [
        "/api/v1/segments",
        "/api/v1/segments/{id}",
        "/api/v1/segments/{id}/count",
        "/api/v1/segments/preview",
    ] {
        assert!(doc["paths"].get(p).is_some(), "openapi lacks {p}");
    }
}
