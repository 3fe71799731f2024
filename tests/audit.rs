//! The audit trail end to end: the real binary records creates, updates, deletes, logins,
//! permission changes, suppressions, imports and exports with actor, source address and
//! before/after values; only admins and managers read it; secrets never reach it; and
//! `mailstead audit verify` finds an entry edited in the store file.

mod common;
use common::*;
use serde_json::{Value, json};

fn entries(s: &Server, query: &str) -> Vec<Value> {
    s.get_json(&format!("/api/v1/audit{query}"))["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn actions(items: &[Value]) -> Vec<&str> {
    items
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

#[test]
fn changes_logins_and_permissions_are_recorded_with_actor_ip_and_values() {
    let s = Server::start();

    // contacts: create, update, delete
    let r = s.post(
        "/api/v1/contacts",
        &json!({"email": "ann@example.com", "first_name": "Ann", "company": "Acme"}),
    );
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().unwrap()["id"].as_u64().unwrap();
    let r = s.patch(
        &format!("/api/v1/contacts/{id}"),
        &json!({"company": "Globex", "first_name": "Ann"}),
    );
    assert_eq!(r.status(), 200);
    assert_eq!(s.delete(&format!("/api/v1/contacts/{id}")).status(), 204);

    let items = entries(&s, &format!("?record=contact:{id}"));
    assert_eq!(
        actions(&items),
        ["delete", "update", "create"],
        "{items:#?}"
    );
    for e in &items {
        assert_eq!(e["actor"], "user:1");
        assert_eq!(e["actor_email"], ADMIN);
        assert_eq!(e["ip"], "127.0.0.1");
        assert_eq!(e["record"], format!("contact:{id}"));
        assert_eq!(e["hash"].as_str().unwrap().len(), 64);
    }
    let update = &items[1]["changes"];
    assert_eq!(
        update.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["company"],
        "only changed fields: {update}"
    );
    assert_eq!(update["company"]["before"], "Acme");
    assert_eq!(update["company"]["after"], "Globex");
    let create = &items[2]["changes"];
    assert_eq!(create["email"]["before"], Value::Null);
    assert_eq!(create["email"]["after"], "ann@example.com");
    assert_eq!(items[0]["changes"]["company"]["before"], "Globex");
    assert_eq!(items[0]["changes"]["company"]["after"], Value::Null);

    // logins, failed and successful, from the client's address
    let browser = s.new_client();
    let login = |password: &str| {
        browser
            .post(s.url("/api/v1/session"))
            .json(&json!({"email": ADMIN, "password": password}))
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(login("not the password"), 401);
    assert_eq!(login(PASSWORD), 200);
    let r = browser
        .post(s.url("/api/v1/session"))
        .json(&json!({"email": "nobody@example.com", "password": "whatever123"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let items = entries(&s, "?record=user:1");
    let logins: Vec<&Value> = items
        .iter()
        .filter(|e| e["action"] == "login" || e["action"] == "login_failed")
        .collect();
    assert_eq!(
        actions(&logins.iter().map(|e| (*e).clone()).collect::<Vec<_>>()),
        ["login", "login_failed"]
    );
    assert_eq!(logins[0]["actor"], "user:1");
    assert_eq!(logins[1]["actor"], "anonymous");
    for e in &logins {
        assert_eq!(e["ip"], "127.0.0.1");
    }
    let unknown = entries(&s, "?record=user:unknown");
    assert_eq!(actions(&unknown), ["login_failed"]);
    assert!(!unknown[0].to_string().contains("nobody@example.com"));

    // users: creation, a role change (permission) with a new password, deletion
    let r = s.post(
        "/api/v1/users",
        &json!({"email": "sam@example.com", "role": "sales", "password": "sams secret password"}),
    );
    assert_eq!(r.status(), 201);
    let sam = r.json::<Value>().unwrap()["id"].as_u64().unwrap();
    let r = s.patch(
        &format!("/api/v1/users/{sam}"),
        &json!({"role": "marketing", "password": "another secret password"}),
    );
    assert_eq!(r.status(), 200);
    let items = entries(&s, &format!("?record=user:{sam}"));
    assert_eq!(actions(&items), ["permission", "create"]);
    assert_eq!(items[0]["changes"]["role"]["before"], "sales");
    assert_eq!(items[0]["changes"]["role"]["after"], "marketing");
    assert_eq!(items[0]["changes"]["password"]["after"], "(changed)");
    assert_eq!(items[1]["changes"]["email"]["after"], "sam@example.com");
    assert_eq!(s.delete(&format!("/api/v1/users/{sam}")).status(), 204);
    assert_eq!(
        entries(&s, &format!("?record=user:{sam}"))[0]["action"],
        "delete"
    );

    // lists, tokens, suppressions
    let r = s.post("/api/v1/lists", &json!({"name": "News"}));
    assert_eq!(r.status(), 201);
    let list = r.json::<Value>().unwrap()["id"].as_u64().unwrap();
    assert_eq!(
        s.patch(
            &format!("/api/v1/lists/{list}"),
            &json!({"name": "Newsletter"})
        )
        .status(),
        200
    );
    assert_eq!(s.delete(&format!("/api/v1/lists/{list}")).status(), 204);
    let items = entries(&s, &format!("?record=list:{list}"));
    assert_eq!(actions(&items), ["delete", "update", "create"]);
    assert_eq!(items[1]["changes"]["name"]["before"], "News");
    assert_eq!(items[1]["changes"]["name"]["after"], "Newsletter");

    let r = s.post("/api/v1/tokens", &json!({"name": "ci"}));
    assert_eq!(r.status(), 201);
    let created: Value = r.json().unwrap();
    let token_secret = created["token"].as_str().unwrap().to_string();
    let tid = created["id"].as_u64().unwrap();
    assert_eq!(s.delete(&format!("/api/v1/tokens/{tid}")).status(), 204);
    let items = entries(&s, &format!("?record=token:{tid}"));
    assert_eq!(actions(&items), ["token_revoke", "token_create"]);
    assert_eq!(items[0]["changes"]["revoked"]["after"], true);

    assert_eq!(
        s.post(
            "/api/v1/suppressions",
            &json!({"email": "gone@example.com"})
        )
        .status(),
        201
    );
    assert_eq!(
        s.delete("/api/v1/suppressions/gone@example.com").status(),
        204
    );
    let items = entries(&s, "?record=suppression:gone@example.com");
    assert_eq!(actions(&items), ["unsuppress", "suppress"]);
    assert_eq!(s.get("/api/v1/suppressions/export").status(), 200);
    assert_eq!(
        entries(&s, "?record=suppressions:list")[0]["action"],
        "export"
    );

    // an import is one entry, not one per row
    let job = s.import_csv("email,first_name\nx1@example.com,X\nx2@example.com,Y\n", "");
    let items = entries(&s, &format!("?record=import:{}", job["id"]));
    assert_eq!(actions(&items), ["import"]);
    assert!(
        items[0]["detail"].as_str().unwrap().contains("2 created"),
        "{}",
        items[0]
    );
    let all = entries(&s, "?limit=500");
    assert!(
        !all.iter()
            .any(|e| e["changes"]["email"]["after"] == "x1@example.com"),
        "imported rows are not audited one by one"
    );

    // the server's settings were recorded at start, by the system
    let settings = entries(&s, "?record=settings:server");
    assert_eq!(actions(&settings), ["setting"]);
    assert_eq!(settings[0]["actor"], "system");

    // filters and paging
    let by_admin = entries(&s, "?actor=1&limit=3");
    assert_eq!(by_admin.len(), 3);
    assert!(by_admin.iter().all(|e| e["actor"] == "user:1"));
    let page = s.get_json("/api/v1/audit?limit=2");
    let next = page["next"].as_u64().unwrap();
    let older = entries(&s, &format!("?limit=2&before={next}"));
    assert!(older[0]["seq"].as_u64().unwrap() < next);
    let (status, e) = error_of(s.get("/api/v1/audit?since=yesterday"));
    assert_eq!((status, e["field"].as_str().unwrap()), (422, "since"));
    let (status, _) = error_of(s.get("/api/v1/audit?record=42"));
    assert_eq!(status, 422);
    assert!(entries(&s, "?since=2999-01-01T00:00:00Z").is_empty());

    // secrets never reach an entry
    let export = s.get("/api/v1/audit/export");
    assert_eq!(export.status(), 200);
    let text = export.text().unwrap();
    assert!(text.lines().count() >= all.len());
    for secret in [
        PASSWORD,
        "not the password",
        "sams secret password",
        "another secret password",
        token_secret.as_str(),
        s.token.as_str(),
        "$argon2",
        "csrf",
    ] {
        assert!(!text.contains(secret), "the audit log contains '{secret}'");
    }
    let csv = s.get("/api/v1/audit/export?format=csv&record=list:1");
    assert_eq!(csv.status(), 200);
    let csv = csv.text().unwrap();
    assert!(
        csv.starts_with("seq,at,actor,actor_email,ip,action,record,detail,field,before,after,hash")
    );
    assert!(csv.contains("Newsletter"));

    // the exports were recorded too; the chain is intact
    assert!(
        entries(&s, "?record=audit:log")
            .iter()
            .any(|e| e["detail"].as_str().unwrap().contains("csv"))
    );
    let report = s.get_json("/api/v1/audit/verify");
    assert_eq!(report["broken"], Value::Null, "{report}");
    assert!(report["entries"].as_u64().unwrap() > 20);
}

#[test]
fn only_admins_and_managers_read_the_log() {
    let s = Server::start();
    let as_user =
        |token: &str, path: &str| s.client.get(s.url(path)).bearer_auth(token).send().unwrap();
    for role in ["sales", "marketing", "viewer"] {
        let (_, token) = s.user_with_token(&format!("{role}@example.com"), role);
        for path in [
            "/api/v1/audit",
            "/api/v1/audit/export",
            "/api/v1/audit/verify",
        ] {
            let (status, e) = error_of(as_user(&token, path));
            assert_eq!(
                (status, e["code"].as_str().unwrap()),
                (403, "forbidden"),
                "{role} {path}"
            );
        }
    }
    let (_, manager) = s.user_with_token("mia@example.com", "manager");
    assert_eq!(as_user(&manager, "/api/v1/audit").status(), 200);
    assert_eq!(as_user(&manager, "/api/v1/audit/export").status(), 200);
    assert_eq!(as_user(&manager, "/api/v1/audit/verify").status(), 403);

    let doc = s.get_json("/api/v1/openapi.json");
    for p in [
        "/api/v1/audit",
        "/api/v1/audit/export",
        "/api/v1/audit/verify",
    ] {
        assert!(doc["paths"].get(p).is_some(), "openapi lacks {p}");
    }
    assert!(doc["components"]["schemas"].get("AuditEntry").is_some());
}

#[test]
fn audit_verify_finds_an_entry_edited_in_the_store_file() {
    let mut s = Server::start();
    let r = s.post(
        "/api/v1/contacts",
        &json!({"email": "eve@example.com", "company": "Acme"}),
    );
    let id = r.json::<Value>().unwrap()["id"].as_u64().unwrap();
    s.patch(
        &format!("/api/v1/contacts/{id}"),
        &json!({"company": "Globex"}),
    );
    let update = entries(&s, &format!("?record=contact:{id}"))[0].clone();
    assert_eq!(update["action"], "update");
    let seq = update["seq"].as_u64().unwrap();

    // while the server runs, through its control socket
    let o = cli(&s.data(), &["audit", "verify"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("audit chain intact: "),
        "{}",
        stdout(&o)
    );
    let o = cli(
        &s.data(),
        &["audit", "export", "--record", &format!("contact:{id}")],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["changes"]["company"]["after"], "Globex");

    s.stop();
    let o = cli(&s.data(), &["audit", "verify"], None);
    assert!(o.status.success(), "offline: {}", stderr(&o));

    // someone with the file changes what the update said
    {
        use redb::ReadableDatabase;
        let table: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("audit");
        let db = redb::Database::open(s.data().join("mailstead.redb")).unwrap();
        let mut entry: Value = {
            let rtx = db.begin_read().unwrap();
            let t = rtx.open_table(table).unwrap();
            serde_json::from_slice(t.get(seq).unwrap().unwrap().value()).unwrap()
        };
        entry["changes"]["company"]["after"] = json!("Evil Corp");
        let wtx = db.begin_write().unwrap();
        wtx.open_table(table)
            .unwrap()
            .insert(seq, serde_json::to_vec(&entry).unwrap().as_slice())
            .unwrap();
        wtx.commit().unwrap();
    }
    let o = cli(&s.data(), &["audit", "verify"], None);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("audit chain broken at entry {seq}")) && err.contains("company"),
        "{err}"
    );

    // the running server reports it too, over the API and the control socket
    s.spawn();
    let report = s.get_json("/api/v1/audit/verify");
    assert_eq!(report["broken"]["seq"].as_u64(), Some(seq), "{report}");
    let o = cli(&s.data(), &["audit", "verify"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("broken at entry {seq}")),
        "{}",
        stderr(&o)
    );
}
