//! The REST API end to end over real HTTPS: contacts, lists, search, errors, sessions,
//! access control, imports, users and tokens.

mod common;
use common::*;
use serde_json::{Value, json};

#[test]
fn contacts_crud_and_error_shapes() {
    let s = Server::start();
    let r = s.post("/api/v1/contacts", &json!({"email": " Ann.Lee@Example.COM ", "first_name": "Ann", "last_name": "Lee", "company": "Acme", "tags": ["certified"], "attributes": {"country": "DE"}}));
    assert_eq!(r.status(), 201);
    let c: Value = r.json().unwrap();
    let id = c["id"].as_u64().unwrap();
    assert_eq!(c["email"], "ann.lee@example.com");
    assert_eq!(c["attributes"]["country"], "DE");

    let (status, e) =
        error_of(s.post("/api/v1/contacts", &json!({"email": "ann.lee@example.com"})));
    assert_eq!(
        (status, e["code"].as_str().unwrap()),
        (409, "duplicate_email")
    );
    let (status, e) = error_of(s.post("/api/v1/contacts", &json!({"email": "not-an-email"})));
    assert_eq!(
        (
            status,
            e["code"].as_str().unwrap(),
            e["field"].as_str().unwrap()
        ),
        (422, "invalid_email", "email")
    );
    let (status, e) = error_of(s.post(
        "/api/v1/contacts",
        &json!({"email": "x@example.com", "first_name": "a\r\nBcc: evil@example.com"}),
    ));
    assert_eq!((status, e["field"].as_str().unwrap()), (422, "first_name"));

    let r = s.patch(
        &format!("/api/v1/contacts/{id}"),
        &json!({"company": "Globex", "tags": ["certified", "vip"]}),
    );
    assert_eq!(r.status(), 200);
    let got = s.get_json(&format!("/api/v1/contacts/{id}"));
    assert_eq!(got["company"], "Globex");
    assert_eq!(got["tags"], json!(["certified", "vip"]));
    assert_eq!(
        got["first_name"], "Ann",
        "PATCH keeps fields it does not name"
    );

    assert_eq!(s.delete(&format!("/api/v1/contacts/{id}")).status(), 204);
    let (status, e) = error_of(s.get(&format!("/api/v1/contacts/{id}")));
    assert_eq!((status, e["code"].as_str().unwrap()), (404, "not_found"));
    // the email is free again
    assert_eq!(
        s.post("/api/v1/contacts", &json!({"email": "ann.lee@example.com"}))
            .status(),
        201
    );
}

#[test]
fn bad_input_gets_clear_4xx_and_changes_nothing() {
    let s = Server::start();
    assert_eq!(
        s.post("/api/v1/contacts", &json!({"email": "keep@example.com"}))
            .status(),
        201
    );
    let send = |body: &'static [u8], ct: &str| {
        s.client
            .post(s.url("/api/v1/contacts"))
            .bearer_auth(&s.token)
            .header("content-type", ct)
            .body(body)
            .send()
            .unwrap()
    };
    let (st, e) = error_of(send(b"{\"email\": ", "application/json"));
    assert_eq!((st, e["code"].as_str().unwrap()), (400, "invalid_json"));
    let (st, _) = error_of(send(b"{\"email\": 42}", "application/json"));
    assert_eq!(st, 422);
    let (st, _) = error_of(send(
        b"{\"email\": \"a@b.co\", \"shoe_size\": 9}",
        "application/json",
    ));
    assert_eq!(st, 422, "unknown fields are rejected");
    let (st, _) = error_of(send(b"email=a@b.co", "application/x-www-form-urlencoded"));
    assert_eq!(st, 415);
    let big = format!(
        "{{\"email\": \"big@example.com\", \"company\": \"{}\"}}",
        "x".repeat(1024 * 1024 + 4096)
    );
    // its own connection: the server may close it after refusing the body
    let r = s
        .new_client()
        .post(s.url("/api/v1/contacts"))
        .bearer_auth(&s.token)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .unwrap();
    let (st, e) = error_of(r);
    assert_eq!((st, e["code"].as_str().unwrap()), (413, "body_too_large"));
    let (st, _) = error_of(s.get("/api/v1/no-such-thing"));
    assert_eq!(st, 404);
    let (st, _) = error_of(s.get("/api/v1/contacts/not-a-number"));
    assert_eq!(st, 400);
    let (st, _) = error_of(s.client.get(s.url("/api/v1/contacts")).send().unwrap());
    assert_eq!(st, 401);
    let (st, _) = error_of(
        s.client
            .get(s.url("/api/v1/contacts"))
            .bearer_auth("ms_forged")
            .send()
            .unwrap(),
    );
    assert_eq!(st, 401);
    let (st, e) = error_of(s.get("/api/v1/contacts?q=colour:red"));
    assert_eq!((st, e["code"].as_str().unwrap()), (422, "invalid_query"));
    let (st, _) = error_of(s.get("/api/v1/contacts?cursor=garbage"));
    assert_eq!(st, 422);
    let page = s.get_json("/api/v1/contacts");
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["email"], "keep@example.com");
}

#[test]
fn search_prefix_typos_filters_and_cursor_paging() {
    let s = Server::start();
    let people = [
        (
            "maria.gonzalez@acme.test",
            "Maria",
            "Gonzalez",
            "Acme Training",
            vec!["certified", "pmp"],
        ),
        (
            "john.smith@globex.test",
            "John",
            "Smith",
            "Globex",
            vec!["lead"],
        ),
        (
            "jane.smithson@initech.test",
            "Jane",
            "Smithson",
            "Initech",
            vec!["certified"],
        ),
        ("li.wei@acme.test", "Li", "Wei", "Acme Training", vec![]),
    ];
    for (e, f, l, c, t) in &people {
        assert_eq!(
            s.post(
                "/api/v1/contacts",
                &json!({"email": e, "first_name": f, "last_name": l, "company": c, "tags": t})
            )
            .status(),
            201
        );
    }
    let emails = |q: &str| -> Vec<String> {
        let v = s.get_json(&format!("/api/v1/contacts?q={}", urlencode(q)));
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["email"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(emails("gonz"), vec!["maria.gonzalez@acme.test"], "prefix");
    assert_eq!(
        emails("gonzales"),
        vec!["maria.gonzalez@acme.test"],
        "one typo"
    );
    let smith = emails("smith");
    assert_eq!(
        smith[0], "john.smith@globex.test",
        "exact match ranks above prefix match: {smith:?}"
    );
    assert!(smith.contains(&"jane.smithson@initech.test".to_string()));
    assert_eq!(
        emails("tag:certified company:acme"),
        vec!["maria.gonzalez@acme.test"]
    );
    assert_eq!(
        emails("tag:certified -company:acme"),
        vec!["jane.smithson@initech.test"]
    );
    assert_eq!(
        emails("john smith"),
        vec!["john.smith@globex.test"],
        "two words"
    );
    assert!(emails("zzzzqqq").is_empty());

    for i in 0..23 {
        assert_eq!(
            s.post(
                "/api/v1/contacts",
                &json!({"email": format!("bulk{i}@paging.test"), "tags": ["bulk"]})
            )
            .status(),
            201
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/api/v1/contacts?q=tag:bulk&limit=10&cursor={c}"),
            None => "/api/v1/contacts?q=tag:bulk&limit=10".to_string(),
        };
        let page = s.get_json(&q);
        assert_eq!(page["total"], 23);
        for c in page["items"].as_array().unwrap() {
            seen.push(c["id"].as_u64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut uniq = seen.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!((seen.len(), uniq.len()), (23, 23));
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn session_cookie_csrf_and_login_throttle() {
    let s = Server::start();
    let login = s
        .client
        .post(s.url("/api/v1/session"))
        .json(&json!({"email": ADMIN, "password": PASSWORD}))
        .send()
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    for attr in [
        "__Host-mailstead_session=",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(cookie.contains(attr), "cookie lacks {attr}: {cookie}");
    }
    let body: Value = login.json().unwrap();
    let csrf = body["csrf_token"].as_str().unwrap().to_string();
    assert_eq!(body["user"]["role"], "admin");
    // the cookie alone reads...
    assert_eq!(
        s.client
            .get(s.url("/api/v1/contacts"))
            .send()
            .unwrap()
            .status(),
        200
    );
    // ...but cannot write without the CSRF token
    let (st, e) = error_of(
        s.client
            .post(s.url("/api/v1/contacts"))
            .json(&json!({"email": "c@example.com"}))
            .send()
            .unwrap(),
    );
    assert_eq!((st, e["code"].as_str().unwrap()), (403, "csrf_failed"));
    let r = s
        .client
        .post(s.url("/api/v1/contacts"))
        .header("x-csrf-token", &csrf)
        .json(&json!({"email": "c@example.com"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        s.client
            .get(s.url("/api/v1/session"))
            .send()
            .unwrap()
            .status(),
        200
    );
    let r = s
        .client
        .delete(s.url("/api/v1/session"))
        .header("x-csrf-token", &csrf)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        s.client
            .get(s.url("/api/v1/session"))
            .send()
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        s.client
            .get(s.url("/api/v1/contacts"))
            .send()
            .unwrap()
            .status(),
        401
    );

    // wrong passwords: 401 until the per-account limit, then 429
    let mut codes = Vec::new();
    for _ in 0..12 {
        let r = s
            .client
            .post(s.url("/api/v1/session"))
            .json(&json!({"email": ADMIN, "password": "wrong password"}))
            .send()
            .unwrap();
        codes.push(r.status().as_u16());
    }
    assert_eq!(codes[0], 401);
    assert!(codes.contains(&429), "{codes:?}");
    let metrics = s
        .client
        .get(s.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("mailstead_logins_total{outcome=\"throttled\"}"),
        "{metrics}"
    );
    assert!(
        !s.log().contains("wrong password"),
        "passwords must never be logged"
    );
}

#[test]
fn row_level_access_by_role_and_ownership() {
    let s = Server::start();
    let (_, sales) = s.user_with_token("sam@example.test", "sales");
    let (_, viewer) = s.user_with_token("vic@example.test", "viewer");
    let sales_req =
        |req: reqwest::blocking::RequestBuilder| req.bearer_auth(&sales).send().unwrap();
    let viewer_req =
        |req: reqwest::blocking::RequestBuilder| req.bearer_auth(&viewer).send().unwrap();

    let admin_contact: Value = s
        .post(
            "/api/v1/contacts",
            &json!({"email": "boss-lead@example.com", "last_name": "Shared"}),
        )
        .json()
        .unwrap();
    let r = sales_req(
        s.client
            .post(s.url("/api/v1/contacts"))
            .json(&json!({"email": "mine@example.com", "last_name": "Shared"})),
    );
    assert_eq!(r.status(), 201);
    let mine: Value = r.json().unwrap();

    // sales see their own contact in search, counts and reads; the admin's is invisible (404)
    let page: Value = sales_req(s.client.get(s.url("/api/v1/contacts?q=shared")))
        .json()
        .unwrap();
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["email"], "mine@example.com");
    let r = sales_req(
        s.client
            .get(s.url(&format!("/api/v1/contacts/{}", admin_contact["id"]))),
    );
    assert_eq!(r.status(), 404);
    let r = sales_req(
        s.client
            .patch(s.url(&format!("/api/v1/contacts/{}", admin_contact["id"])))
            .json(&json!({"company": "x"})),
    );
    assert_eq!(r.status(), 404);
    // the admin sees both
    assert_eq!(s.get_json("/api/v1/contacts?q=shared")["total"], 2);

    // viewers read everything but change nothing
    let page: Value = viewer_req(s.client.get(s.url("/api/v1/contacts?q=shared")))
        .json()
        .unwrap();
    assert_eq!(page["total"], 2);
    let (st, e) = error_of(viewer_req(
        s.client
            .patch(s.url(&format!("/api/v1/contacts/{}", mine["id"])))
            .json(&json!({"company": "x"})),
    ));
    assert_eq!((st, e["code"].as_str().unwrap()), (403, "forbidden"));
    let (st, _) = error_of(viewer_req(
        s.client
            .post(s.url("/api/v1/lists"))
            .json(&json!({"name": "nope"})),
    ));
    assert_eq!(st, 403);
    // only admins manage users
    let (st, _) = error_of(sales_req(s.client.get(s.url("/api/v1/users"))));
    assert_eq!(st, 403);
    let users = s.get_json("/api/v1/users");
    let roles: Vec<(&str, &str)> = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["email"].as_str().unwrap(), u["role"].as_str().unwrap()))
        .collect();
    assert!(roles.contains(&("sam@example.test", "sales")) && roles.contains(&(ADMIN, "admin")));
    assert!(users["items"][0]["id"].is_u64());
    assert!(
        users.to_string().find("argon2").is_none(),
        "password hashes never leave the server"
    );
}

#[test]
fn tokens_are_shown_once_listed_and_revocable() {
    let s = Server::start();
    let r = s.post("/api/v1/tokens", &json!({"name": "integration"}));
    assert_eq!(r.status(), 201);
    let t: Value = r.json().unwrap();
    let secret = t["token"].as_str().unwrap().to_string();
    assert!(secret.starts_with("ms_"));
    let list = s.get_json("/api/v1/tokens");
    assert!(
        !list.to_string().contains(&secret),
        "listing never shows the token"
    );
    assert_eq!(
        s.client
            .get(s.url("/api/v1/contacts"))
            .bearer_auth(&secret)
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        s.delete(&format!("/api/v1/tokens/{}", t["id"])).status(),
        204
    );
    assert_eq!(
        s.client
            .get(s.url("/api/v1/contacts"))
            .bearer_auth(&secret)
            .send()
            .unwrap()
            .status(),
        401
    );
}

#[test]
fn lists_crud_and_memberships() {
    let s = Server::start();
    let r = s.post(
        "/api/v1/lists",
        &json!({"name": "Newsletter", "description": "Monthly"}),
    );
    assert_eq!(r.status(), 201);
    let list: Value = r.json().unwrap();
    let lid = list["id"].as_u64().unwrap();
    assert_eq!(
        error_of(s.post("/api/v1/lists", &json!({"name": "newsletter"}))).0,
        422,
        "names are unique"
    );
    let c: Value = s
        .post(
            "/api/v1/contacts",
            &json!({"email": "m@example.com", "lists": [lid]}),
        )
        .json()
        .unwrap();
    assert_eq!(c["lists"][0]["list_id"], lid);
    assert_eq!(c["lists"][0]["status"], "confirmed");
    assert_eq!(
        error_of(s.post(
            "/api/v1/contacts",
            &json!({"email": "n@example.com", "lists": [999]})
        ))
        .0,
        422
    );
    assert_eq!(
        s.get_json(&format!("/api/v1/lists/{lid}"))["member_count"],
        1
    );
    assert_eq!(
        s.get_json(&format!("/api/v1/contacts?q=list:{lid}"))["total"],
        1
    );
    let r = s.patch(
        &format!("/api/v1/lists/{lid}"),
        &json!({"name": "Monthly news"}),
    );
    assert_eq!(r.json::<Value>().unwrap()["name"], "Monthly news");
    assert_eq!(s.delete(&format!("/api/v1/lists/{lid}")).status(), 204);
    let c = s.get_json(&format!("/api/v1/contacts/{}", c["id"]));
    assert_eq!(
        c["lists"],
        json!([]),
        "deleting a list removes its memberships"
    );
    assert_eq!(s.get(&format!("/api/v1/lists/{lid}")).status(), 404);
}

#[test]
fn csv_import_reports_bad_rows_and_keeps_good_ones() {
    let s = Server::start();
    let list: Value = s
        .post("/api/v1/lists", &json!({"name": "Imported"}))
        .json()
        .unwrap();
    let mut csv = Vec::new();
    csv.extend_from_slice(
        "\u{feff}Email Address,First Name,Last Name,Company,TAGS,Job Title\r\n".as_bytes(),
    );
    csv.extend_from_slice(b"ada@example.com,Ada,Lovelace,\"Analytical, Engines Ltd\",\"\"\"pmp\"\",\"\"vip\"\"\",Engineer\r\n");
    csv.extend_from_slice(b"not-an-email,Bad,Row,,,\r\n");
    csv.extend_from_slice(b"grace@example.com,Grace,Hopper,Navy,,Admiral\r\n");
    csv.extend_from_slice(b"bin@example.com,\xff\xfe\x00garbage,x,,,\r\n");
    csv.extend_from_slice(
        format!("long@example.com,{},x,,,\r\n", "y".repeat(10 * 1024 * 1024)).as_bytes(),
    );
    csv.extend_from_slice(b"ADA@example.com,Ada,King,,,Countess\r\n");
    let job = s.import_csv(csv, &format!("?list={}", list["id"]));
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["processed"], 6);
    assert_eq!(job["created"], 2);
    assert_eq!(job["updated"], 1, "the duplicate ADA row updates the first");
    let lines: Vec<u64> = job["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![3, 5, 6], "{job}");
    let msgs = job["errors"].to_string();
    assert!(
        msgs.contains("not a valid email")
            && msgs.contains("UTF-8")
            && msgs.contains("longer than"),
        "{msgs}"
    );

    let page = s.get_json("/api/v1/contacts?q=lovelace");
    assert_eq!(page["total"], 0, "the later row renamed Ada");
    let ada = &s.get_json("/api/v1/contacts?q=email:ada@example.com")["items"][0];
    assert_eq!(ada["last_name"], "King");
    assert_eq!(ada["company"], "Analytical, Engines Ltd");
    assert_eq!(ada["tags"], json!(["pmp", "vip"]));
    assert_eq!(ada["attributes"]["job_title"], "Countess");
    assert_eq!(ada["lists"][0]["list_id"], list["id"]);
    assert_eq!(
        s.get_json(&format!("/api/v1/lists/{}", list["id"]))["member_count"],
        2
    );

    // create mode skips existing contacts; a file without an email column fails clearly
    let job = s.import_csv(
        "email,first_name\ngrace@example.com,G\nnew@example.com,N\n",
        "?mode=create",
    );
    assert_eq!(
        (job["created"].as_u64(), job["skipped"].as_u64()),
        (Some(1), Some(1))
    );
    let job = s.import_csv("name,company\nx,y\n", "");
    assert_eq!(job["status"], "failed");
    assert!(job["message"].as_str().unwrap().contains("no email column"));
    // listmonk export: name + JSON attributes
    let job = s.import_csv(
        "email,name,attributes\nlm@example.com,Lin Mo,\"{\"\"city\"\": \"\"Oslo\"\"}\"\n",
        "",
    );
    assert_eq!(job["created"], 1, "{job}");
    let lm = &s.get_json("/api/v1/contacts?q=email:lm@example.com")["items"][0];
    assert_eq!(
        (
            lm["first_name"].as_str(),
            lm["last_name"].as_str(),
            lm["attributes"]["city"].as_str()
        ),
        (Some("Lin"), Some("Mo"), Some("Oslo"))
    );
    let r = s
        .client
        .post(s.url("/api/v1/imports"))
        .bearer_auth(&s.token)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(error_of(r).0, 415);
}

#[test]
fn openapi_metrics_health_and_console_are_served() {
    let s = Server::start();
    let doc = s.get_json("/api/v1/openapi.json");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/api/v1/contacts",
        "/api/v1/contacts/{id}",
        "/api/v1/imports",
        "/api/v1/lists",
        "/api/v1/users",
        "/api/v1/tokens",
        "/api/v1/session",
    ] {
        assert!(doc["paths"].get(p).is_some(), "openapi lacks {p}");
    }
    let m = s.client.get(s.url("/metrics")).send().unwrap();
    assert!(
        m.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("openmetrics")
    );
    let text = m.text().unwrap();
    assert!(text.contains("mailstead_http_requests_total{"), "{text}");
    assert!(text.contains("mailstead_contacts 0"), "{text}");
    let h = s.client.get(s.url("/healthz")).send().unwrap();
    assert_eq!(h.status(), 200);
    assert_eq!(h.headers()["x-frame-options"], "DENY");
    let page = s.client.get(s.url("/contacts/42")).send().unwrap();
    assert_eq!(page.status(), 200, "client-side routes get the console");
    assert!(
        page.text()
            .unwrap()
            .to_lowercase()
            .contains("<!doctype html")
    );
}
