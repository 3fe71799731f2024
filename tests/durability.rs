//! Crash safety and the store/index relationship: SIGKILL loses no acknowledged write, the
//! search index is rebuilt from the store when its directory is deleted, backups taken while
//! the server runs restore, and a held data dir is refused quickly with a clear message.

mod common;
use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[test]
fn sigkill_loses_no_acknowledged_write() {
    let mut s = Server::start();
    // writers run concurrently; the kill lands while requests are still in flight
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(u64, String)>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut threads = Vec::new();
    for t in 0..4 {
        let client = s.client.clone();
        let url = s.url("/api/v1/contacts");
        let token = s.token.clone();
        let acked = acked.clone();
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let email = format!("w{t}-{i}@crash.test");
                let r = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"email": email, "last_name": "Crashtest"}))
                    .send();
                if let Ok(r) = r
                    && r.status() == 201
                {
                    let id = r.json::<Value>().unwrap()["id"].as_u64().unwrap();
                    acked.lock().unwrap().push((id, email));
                }
                i += 1;
            }
        }));
    }
    let start = Instant::now();
    while acked.lock().unwrap().len() < 60 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    s.kill9();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 60,
        "only {} writes acknowledged",
        acked.len()
    );
    s.spawn();
    for (id, email) in &acked {
        let c = s.get_json(&format!("/api/v1/contacts/{id}"));
        assert_eq!(c["email"], email.as_str());
    }
    // and the index agrees with the store after recovery
    let total = s.get_json("/api/v1/contacts?q=crashtest")["total"]
        .as_u64()
        .unwrap();
    assert!(
        total >= acked.len() as u64,
        "index has {total}, acknowledged {}",
        acked.len()
    );
    let store_total = s.get_json("/api/v1/contacts")["total"].as_u64().unwrap();
    assert_eq!(total, store_total);
}

#[test]
fn deleted_search_index_is_rebuilt_from_the_store() {
    let mut s = Server::start();
    for i in 0..40 {
        assert_eq!(s.post("/api/v1/contacts", &json!({"email": format!("r{i}@rebuild.test"), "company": "Rebuild Corp", "tags": ["t"]})).status(), 201);
    }
    let victim: Value = s.get_json("/api/v1/contacts?q=email:r7@rebuild.test");
    assert_eq!(
        s.delete(&format!("/api/v1/contacts/{}", victim["items"][0]["id"]))
            .status(),
        204
    );
    s.stop();
    std::fs::remove_dir_all(s.data().join("search")).unwrap();
    s.spawn();
    assert_eq!(
        s.get_json("/api/v1/contacts?q=company:rebuild")["total"],
        39
    );
    assert_eq!(
        s.get_json("/api/v1/contacts?q=email:r7@rebuild.test")["total"],
        0
    );
    assert!(s.log().contains("building the search index from the store"));
    // a clean restart opens the index without rebuilding it
    s.stop();
    let before = s.log().matches("building the search index").count();
    s.spawn();
    assert_eq!(s.log().matches("building the search index").count(), before);
    assert_eq!(s.get_json("/api/v1/contacts?q=rebuild")["total"], 39);
}

#[test]
fn backup_while_running_and_restore_round_trip() {
    let mut s = Server::start();
    let keep: Value = s
        .post(
            "/api/v1/contacts",
            &json!({"email": "keep@backup.test", "first_name": "Kept"}),
        )
        .json()
        .unwrap();
    let list: Value = s
        .post("/api/v1/lists", &json!({"name": "Backed up"}))
        .json()
        .unwrap();
    let backup = s.dir.path().join("snapshot.redb");
    let o = cli(&s.data(), &["backup", backup.to_str().unwrap()], None);
    assert!(o.status.success(), "backup failed: {}", stderr(&o));
    assert!(stdout(&o).contains("running server"), "{}", stdout(&o));
    // changes after the backup are undone by the restore
    assert_eq!(
        s.delete(&format!("/api/v1/contacts/{}", keep["id"]))
            .status(),
        204
    );
    assert_eq!(
        s.post("/api/v1/contacts", &json!({"email": "later@backup.test"}))
            .status(),
        201
    );
    // restore refuses while the server holds the data dir
    let o = cli(&s.data(), &["restore", backup.to_str().unwrap()], None);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("in use by a running mailstead server"),
        "{}",
        stderr(&o)
    );
    s.stop();
    let o = cli(&s.data(), &["restore", backup.to_str().unwrap()], None);
    assert!(o.status.success(), "restore failed: {}", stderr(&o));
    s.spawn();
    let c = s.get_json(&format!("/api/v1/contacts/{}", keep["id"]));
    assert_eq!(c["first_name"], "Kept");
    assert_eq!(
        s.get_json("/api/v1/contacts?q=email:later@backup.test")["total"],
        0
    );
    assert_eq!(
        s.get_json("/api/v1/contacts?q=kept")["total"],
        1,
        "index rebuilt after restore"
    );
    assert_eq!(
        s.get_json(&format!("/api/v1/lists/{}", list["id"]))["name"],
        "Backed up"
    );
    // the API token from before still works (the accounts came back too); garbage is refused
    let junk = s.dir.path().join("junk.redb");
    std::fs::write(&junk, b"this is not a database").unwrap();
    s.stop();
    let o = cli(&s.data(), &["restore", junk.to_str().unwrap()], None);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("not a mailstead backup"),
        "{}",
        stderr(&o)
    );
    s.spawn();
    assert_eq!(
        s.get_json(&format!("/api/v1/contacts/{}", keep["id"]))["email"],
        "keep@backup.test",
        "a failed restore changes nothing"
    );
}

#[test]
fn store_commands_on_a_held_data_dir_fail_fast_or_go_through_the_server() {
    let s = Server::start();
    let t = Instant::now();
    let csv = s.dir.path().join("c.csv");
    std::fs::write(&csv, "email\na@b.co\n").unwrap();
    let o = cli(
        &s.data(),
        &["import", "contacts", csv.to_str().unwrap()],
        None,
    );
    assert!(!o.status.success());
    assert!(t.elapsed() < Duration::from_secs(10), "must not hang");
    assert!(
        stderr(&o).contains("in use by a running mailstead server"),
        "{}",
        stderr(&o)
    );
    // users and tokens are created through the running server's control socket
    let o = cli(
        &s.data(),
        &[
            "user",
            "create",
            "--email",
            "late@example.test",
            "--role",
            "viewer",
        ],
        Some("another long password"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cli(
        &s.data(),
        &[
            "token",
            "create",
            "--email",
            "late@example.test",
            "--name",
            "x",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let token = stdout(&o).lines().last().unwrap().to_string();
    let r = s
        .client
        .get(s.url("/api/v1/contacts"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let o = cli(
        &s.data(),
        &[
            "token",
            "create",
            "--email",
            "nobody@example.test",
            "--name",
            "x",
        ],
        None,
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no user with the email"),
        "{}",
        stderr(&o)
    );
    // and the server is unaffected
    assert_eq!(s.get("/api/v1/contacts").status(), 200);
}
