//! The command line: help everywhere, users, tokens, CSV import with lists, configuration
//! precedence and errors, first-admin bootstrap and the Docker health check.

mod common;
use common::*;
use std::process::Command;

#[path = "bounce_inputs/mod.rs"]
mod bounce_inputs;

#[test]
fn help_is_available_for_every_command() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["user", "create", "--help"],
        vec!["token", "create", "--help"],
        vec!["import", "contacts", "--help"],
        vec!["backup", "--help"],
        vec!["restore", "--help"],
        vec!["healthcheck", "--help"],
        vec!["bounce", "parse", "--help"],
    ] {
        let o = Command::new(BIN).args(&args).output().unwrap();
        assert!(o.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Usage:"),
            "{args:?}"
        );
    }
    let o = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("--data-dir") && text.contains("--listen") && text.contains("--config"));
}

#[test]
fn cli_users_tokens_and_import_with_list() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let o = cli(
        &data,
        &[
            "user",
            "create",
            "--email",
            "Ops@Example.test",
            "--role",
            "manager",
        ],
        Some("a good long password\n"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cli(
        &data,
        &[
            "user",
            "create",
            "--email",
            "ops@example.test",
            "--role",
            "viewer",
        ],
        Some("a good long password"),
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already exists"));
    let o = cli(
        &data,
        &[
            "user",
            "create",
            "--email",
            "short@example.test",
            "--role",
            "viewer",
        ],
        Some("short"),
    );
    assert!(
        stderr(&o).contains("at least 10 characters"),
        "{}",
        stderr(&o)
    );
    let o = cli(
        &data,
        &[
            "user",
            "create",
            "--email",
            "x@example.test",
            "--role",
            "root",
        ],
        Some("a good long password"),
    );
    assert!(stderr(&o).contains("unknown role"));
    let o = cli(
        &data,
        &[
            "token",
            "create",
            "--email",
            "ops@example.test",
            "--name",
            "deploy",
        ],
        None,
    );
    assert!(o.status.success());
    let token = stdout(&o).lines().last().unwrap().to_string();
    assert!(token.starts_with("ms_") && token.len() > 40);

    let csv = dir.path().join("people.csv");
    let mut text = String::from("Email Address,First Name,Last Name,Company,Tags\n");
    for i in 0..250 {
        text.push_str(&format!(
            "p{i}@import.test,P{i},Person,Company {},\"a;b\"\n",
            i % 7
        ));
    }
    text.push_str("broken,no,email,,\n");
    std::fs::write(&csv, text).unwrap();
    let o = cli(
        &data,
        &[
            "import",
            "contacts",
            csv.to_str().unwrap(),
            "--list",
            "Attendees",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("250 created"), "{out}");
    assert!(out.contains("line 252"), "{out}");
    assert!(stderr(&o).contains("created list 'Attendees'"));

    // the server sees them, in the list, searchable
    let port = free_port();
    let mut child = serve_until_healthy(&data, port, &[]);
    let client = trusting_client(&data);
    let v: serde_json::Value = client
        .get(format!(
            "https://127.0.0.1:{port}/api/v1/contacts?q=tag:b%20company:%22company%203%22"
        ))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["total"], 36);
    let lists: serde_json::Value = client
        .get(format!("https://127.0.0.1:{port}/api/v1/lists"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(lists["items"][0]["name"], "Attendees");
    assert_eq!(lists["items"][0]["member_count"], 250);
    child.kill().unwrap();
    child.wait().unwrap();
    // healthcheck fails when nothing listens
    let o = Command::new(BIN)
        .args(["healthcheck", "--listen", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(!o.status.success());
}

#[test]
fn configuration_precedence_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:1111\"\nlog = \"debug\"\nsession_ttl_hours = 3\n",
    )
    .unwrap();
    let o = Command::new(BIN)
        .args(["config", "show", "--config"])
        .arg(&file)
        .env("MAILSTEAD_LISTEN", "127.0.0.1:2222")
        .env("MAILSTEAD_ADMIN_EMAIL", "a@example.test")
        .env("MAILSTEAD_ADMIN_PASSWORD", "very secret value")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("listen = \"127.0.0.1:2222\"    # env"),
        "{out}"
    );
    assert!(out.contains("log = \"debug\"    # file"), "{out}");
    assert!(out.contains("data_dir = \"./data\"    # default"), "{out}");
    assert!(!out.contains("very secret value"), "secrets are redacted");
    std::fs::write(&file, "lisen = \"x\"\nmax_body_bytes = \"big\"\n").unwrap();
    let o = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.path().join("d"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unknown setting 'lisen'")
            && err.contains("max_body_bytes must be a whole number"),
        "{err}"
    );
}

#[test]
fn first_admin_comes_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "bootstrap password 1\n").unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut child = serve_until_healthy(
        &data,
        port,
        &[
            ("MAILSTEAD_ADMIN_EMAIL", "root@example.test".as_ref()),
            ("MAILSTEAD_ADMIN_PASSWORD_FILE", pw.as_os_str()),
        ],
    );
    let client = trusting_client(&data);
    let r = client
        .post(format!("https://127.0.0.1:{port}/api/v1/session"))
        .json(
            &serde_json::json!({"email": "root@example.test", "password": "bootstrap password 1"}),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn bounce_parse_prints_one_json_line_per_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let eml = dir.path().join("dsn.eml");
    std::fs::write(
        &eml,
        "From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@news.example.com\r\nSubject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822; gone@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown\r\n\r\nFinal-Recipient: rfc822; full@example.org\r\nAction: failed\r\nStatus: 5.2.2\r\nDiagnostic-Code: smtp; 552 5.2.2 Mailbox full\r\n--b1--\r\n",
    )
    .unwrap();
    let o = Command::new(BIN)
        .args(["bounce", "parse"])
        .arg(&eml)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["recipient"], "gone@example.org");
    assert_eq!(
        (
            rows[0]["reason"].as_str(),
            rows[0]["hard"].as_bool(),
            rows[0]["reply_code"].as_str()
        ),
        (Some("userunknown"), Some(true), Some("550"))
    );
    assert_eq!(
        (rows[1]["reason"].as_str(), rows[1]["hard"].as_bool()),
        (Some("mailboxfull"), Some(false))
    );
    let o = Command::new(BIN)
        .args(["bounce", "parse", "/no/such/file.eml"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read"));
}

#[test]
fn dkim_keys_stay_in_the_data_dir_and_records_are_printed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let o = cli(
        &data,
        &[
            "dkim",
            "generate",
            "--domain",
            "Acme.Example",
            "--selector",
            "s2026",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("s2026._domainkey.acme.example. 3600 IN TXT \"v=DKIM1; k=rsa; p="),
        "{out}"
    );
    assert!(
        !out.contains("PRIVATE KEY"),
        "the private key is never printed"
    );
    let key = data.join("dkim/acme.example/s2026.rsa.pem");
    let pem = std::fs::read_to_string(&key).unwrap();
    assert!(pem.contains("PRIVATE KEY"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // the same selector is never overwritten; bad names are refused before anything is written
    let o = cli(
        &data,
        &[
            "dkim",
            "generate",
            "--domain",
            "acme.example",
            "--selector",
            "s2026",
        ],
        None,
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    let o = cli(
        &data,
        &[
            "dkim",
            "generate",
            "--domain",
            "acme.example",
            "--selector",
            "bad selector",
        ],
        None,
    );
    assert!(!o.status.success());
    let o = cli(
        &data,
        &[
            "dkim",
            "generate",
            "--domain",
            "acme.example",
            "--selector",
            "ed1",
            "--algorithm",
            "ed25519",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("k=ed25519"));

    let o = Command::new(BIN)
        .args([
            "dns-records",
            "acme.example",
            "--dmarc-rua",
            "dmarc@acme.example",
            "--data-dir",
        ])
        .arg(&data)
        .env("MAILSTEAD_HOSTNAME", "mail.acme.example")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("v=spf1"), "{out}");
    assert!(out.contains("s2026._domainkey.acme.example"), "{out}");
    assert!(out.contains("ed1._domainkey.acme.example"), "{out}");
    assert!(
        out.contains("_dmarc.acme.example") && out.contains("rua=mailto:dmarc@acme.example"),
        "{out}"
    );
    assert!(
        out.contains("MX") && out.contains("mail.acme.example"),
        "{out}"
    );
    assert!(!out.contains("PRIVATE KEY"));
}

#[test]
fn a_broken_shaping_file_stops_the_server_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let shaping = dir.path().join("shaping.toml");
    std::fs::write(&shaping, "global_messages_per_second = \"fast\"\n").unwrap();
    let o = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .env("MAILSTEAD_SHAPING_FILE", &shaping)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("shaping_file") && err.contains("not valid"),
        "{err}"
    );
}

/// Runs `mailstead bounce parse FILE`, under `/usr/bin/time` when it is installed to read the
/// peak resident memory (KB). Returns (success, stdout, stderr, peak KB).
fn bounce_parse_file(path: &std::path::Path) -> (bool, String, String, Option<u64>) {
    let time = std::path::Path::new("/usr/bin/time");
    let o = if time.exists() {
        Command::new(time)
            .args(["-f", "peak-rss-kb %M"])
            .arg(BIN)
            .args(["bounce", "parse"])
            .arg(path)
            .output()
            .unwrap()
    } else {
        Command::new(BIN)
            .args(["bounce", "parse"])
            .arg(path)
            .output()
            .unwrap()
    };
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let peak = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("peak-rss-kb "))
        .and_then(|v| v.trim().parse().ok());
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr,
        peak,
    )
}

#[test]
fn bounce_parse_answers_hostile_files_clearly_with_bounded_memory() {
    use bounce_inputs::*;
    let dir = tempfile::tempdir().unwrap();
    let gone = r#""recipient":"gone@example.org""#;
    let mut truncated = dsn(&[]);
    truncated.truncate(find(&truncated, b"--b1\r\nContent-Type: message/rfc822").unwrap());
    let cases: Vec<(&str, Vec<u8>, Result<&str, &str>)> = vec![
        ("truncated", truncated, Ok(gone)),
        (
            "not-utf8",
            dsn(&[(b"User unknown", b"User unknown \xff\xfe \xc3\x28")]),
            Ok(gone),
        ),
        ("nested-multipart", nested_multipart(5_000), Ok("")),
        ("nested-messages", nested_messages(5_000), Ok(gone)),
        ("20mb", dsn_with_attachment(20 * 1000 * 1000), Ok(gone)),
        ("20mb-text", dsn_with_huge_text(20 * 1000 * 1000), Ok(gone)),
        (
            "header-lines",
            header_bomb_many_lines(500_000),
            Err("header section has more than"),
        ),
        (
            "header-line",
            header_bomb_long_line(10 * 1000 * 1000),
            Err("header section is larger than"),
        ),
        (
            "too-large",
            vec![b'x'; mailstead::bounce::MAX_MESSAGE_BYTES + 1],
            Err("message too large"),
        ),
        ("empty", Vec::new(), Err("not an email message")),
    ];
    for (name, bytes, want) in cases {
        let path = dir.path().join(format!("{name}.eml"));
        std::fs::write(&path, &bytes).unwrap();
        let (ok, stdout, stderr, peak) = bounce_parse_file(&path);
        println!(
            "{name}: {} bytes, exit ok {ok}, peak {peak:?} KB",
            bytes.len()
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("overflow"),
            "{name}: {stderr}"
        );
        match want {
            Ok(row) => {
                assert!(ok, "{name}: {stderr}");
                assert!(stdout.contains(row), "{name}: {stdout}");
                for line in stdout.lines() {
                    let v: serde_json::Value = serde_json::from_str(line).unwrap();
                    assert!(v["recipient"].as_str().unwrap().contains('@'), "{name}");
                }
            }
            Err(msg) => {
                assert!(!ok, "{name}: {stdout}");
                assert!(
                    stderr.contains("could not be parsed") && stderr.contains(msg),
                    "{name}: {stderr}"
                );
            }
        }
        // The file is read whole (up to 32 MB); what the parser keeps on top of it is
        // bounded by its caps on lines, parts and text.
        if let Some(kb) = peak {
            assert!(kb < 300 * 1024, "{name}: peak {kb} KB");
        }
    }
}
