//! Accuracy test of the bounce parser against the shared corpus of real
//! bounce, complaint and auto-reply messages (`../shared/corpus/bounces`).
//!
//! Skipped (with a message) when the corpus is not present, unless
//! `MAILSTEAD_REQUIRE_PEERS=1`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mailstead::bounce::{self, RecipientReport};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/bounces");

#[derive(Debug, Clone)]
struct Expected {
    index: usize,
    status: String,
    replycode: String,
    reason: String,
    hardbounce: bool,
    feedbacktype: String,
}

fn load_expected(dir: &Path) -> BTreeMap<String, Vec<Expected>> {
    let text = std::fs::read_to_string(dir.join("expected.jsonl"))
        .unwrap_or_else(|e| panic!("cannot read expected.jsonl: {e}"));
    let mut map: BTreeMap<String, Vec<Expected>> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("expected.jsonl line {}: {e}", n + 1));
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
        let file = s("file");
        map.entry(file).or_default().push(Expected {
            index: v.get("index").and_then(|x| x.as_u64()).unwrap_or(0) as usize,
            status: s("status"),
            replycode: s("replycode"),
            reason: s("reason"),
            hardbounce: v
                .get("hardbounce")
                .and_then(|x| x.as_bool())
                .unwrap_or(false),
            feedbacktype: s("feedbacktype"),
        });
    }
    for rows in map.values_mut() {
        rows.sort_by_key(|r| r.index);
    }
    map
}

fn well_formed(addr: &str) -> bool {
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && domain.contains('.')
        && !addr
            .chars()
            .any(|c| c.is_whitespace() || c == '<' || c == '>' || c == ',')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

fn pct(n: usize, d: usize) -> f64 {
    if d == 0 {
        100.0
    } else {
        100.0 * n as f64 / d as f64
    }
}

#[test]
fn corpus_accuracy() {
    let dir = PathBuf::from(CORPUS);
    if !dir.join("expected.jsonl").exists() {
        if std::env::var("MAILSTEAD_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("../shared/corpus/bounces not found and MAILSTEAD_REQUIRE_PEERS=1");
        }
        println!("skipping: ../shared/corpus/bounces not found");
        return;
    }
    let expected = load_expected(&dir);

    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read corpus dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("eml"))
        .collect();
    files.sort();

    let (mut rows, mut hard_ok, mut reason_ok, mut status_ok, mut reply_ok) = (0, 0, 0, 0, 0);
    let (mut count_ok, mut files_with_rows) = (0, 0);
    let mut parse_errors: Vec<String> = Vec::new();
    let mut bad_addresses: Vec<String> = Vec::new();
    let mut mismatches: Vec<String> = Vec::new();
    let mut confusion: BTreeMap<(String, String), usize> = BTreeMap::new();

    for path in &files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let raw = std::fs::read(path).expect("read sample");
        let exp = expected.get(&name).cloned().unwrap_or_default();
        let got: Vec<RecipientReport> = match bounce::parse(&raw) {
            Ok(p) => p.recipients,
            Err(e) => {
                if !exp.is_empty() {
                    parse_errors.push(format!("{name}: {e}"));
                }
                Vec::new()
            }
        };
        for r in &got {
            if !well_formed(&r.recipient) {
                bad_addresses.push(format!("{name}: {:?}", r.recipient));
            }
            // The CLI JSON must carry exactly the documented keys.
            let j = r.to_cli_json();
            for k in [
                "recipient",
                "status",
                "reply_code",
                "reason",
                "hard",
                "feedback_type",
            ] {
                assert!(j.get(k).is_some(), "{name}: cli json lacks {k}");
            }
        }
        if exp.is_empty() {
            continue;
        }
        files_with_rows += 1;
        if got.is_empty() {
            parse_errors.push(format!("{name}: no recipient rows"));
        }
        if got.len() == exp.len() {
            count_ok += 1;
        } else {
            mismatches.push(format!(
                "{name}: recipient count {} (expected {})",
                got.len(),
                exp.len()
            ));
        }
        for (i, e) in exp.iter().enumerate() {
            rows += 1;
            let Some(g) = got.get(i) else {
                mismatches.push(format!(
                    "{name}#{}: missing row (expected {})",
                    e.index, e.reason
                ));
                *confusion.entry((e.reason.clone(), "-".into())).or_default() += 1;
                continue;
            };
            if g.hard == e.hardbounce {
                hard_ok += 1;
            }
            if g.reason.as_str() == e.reason {
                reason_ok += 1;
            } else {
                *confusion
                    .entry((e.reason.clone(), g.reason.as_str().to_string()))
                    .or_default() += 1;
                let mut diag = g.diagnostic.clone();
                if diag.len() > 240 {
                    let mut c = 240;
                    while !diag.is_char_boundary(c) {
                        c -= 1;
                    }
                    diag.truncate(c);
                }
                mismatches.push(format!(
                    "{name}#{}: reason {} (expected {}) status {:?}/{:?} reply {:?}/{:?} rcpt {} diag {:?}",
                    e.index, g.reason, e.reason, g.status, e.status, g.reply_code, e.replycode,
                    g.recipient, diag
                ));
            }
            if g.status == e.status {
                status_ok += 1;
            }
            if g.reply_code == e.replycode {
                reply_ok += 1;
            }
            if !e.feedbacktype.is_empty() && g.feedback_type != e.feedbacktype {
                mismatches.push(format!(
                    "{name}#{}: feedback type {:?} (expected {:?})",
                    e.index, g.feedback_type, e.feedbacktype
                ));
            }
        }
    }

    println!(
        "bounce corpus: {} files, {} expected rows",
        files.len(),
        rows
    );
    println!(
        "  hard/soft agreement : {:6.2}% ({hard_ok}/{rows})",
        pct(hard_ok, rows)
    );
    println!(
        "  reason agreement    : {:6.2}% ({reason_ok}/{rows})",
        pct(reason_ok, rows)
    );
    println!(
        "  status agreement    : {:6.2}% ({status_ok}/{rows})",
        pct(status_ok, rows)
    );
    println!(
        "  reply-code agreement: {:6.2}% ({reply_ok}/{rows})",
        pct(reply_ok, rows)
    );
    println!(
        "  recipient count ok  : {:6.2}% ({count_ok}/{files_with_rows} messages)",
        pct(count_ok, files_with_rows)
    );
    println!("  parse errors        : {}", parse_errors.len());
    if !confusion.is_empty() {
        println!("reason confusion (expected -> got: count):");
        for ((e, g), n) in &confusion {
            println!("  {e:>16} -> {g:<16} {n}");
        }
    }
    if !mismatches.is_empty() {
        println!("mismatches:");
        for m in &mismatches {
            println!("  {m}");
        }
    }
    for e in &parse_errors {
        println!("PARSE ERROR {e}");
    }
    for b in &bad_addresses {
        println!("BAD ADDRESS {b}");
    }

    assert!(
        parse_errors.is_empty(),
        "{} samples failed to parse",
        parse_errors.len()
    );
    assert!(
        bad_addresses.is_empty(),
        "{} malformed recipient addresses",
        bad_addresses.len()
    );
    assert!(
        pct(hard_ok, rows) >= 95.0,
        "hard/soft agreement {:.2}% < 95%",
        pct(hard_ok, rows)
    );
    assert!(
        pct(reason_ok, rows) >= 90.0,
        "reason agreement {:.2}% < 90%",
        pct(reason_ok, rows)
    );
}
