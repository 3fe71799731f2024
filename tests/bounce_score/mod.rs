//! Loading and scoring the shared bounce corpus (`../shared/corpus/bounces`), used by the
//! accuracy test (`tests/bounce_corpus.rs`) and the throughput benchmark
//! (`benches/bounce_parse.rs`, which includes this file with `#[path]`), so both report the
//! same agreement figures.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use mailstead::bounce::{self, RecipientReport};

/// Where the corpus lives relative to the repository.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/bounces")
}

/// One expected row of `expected.jsonl`.
#[derive(Debug, Clone)]
pub struct Expected {
    pub index: usize,
    pub status: String,
    pub replycode: String,
    pub reason: String,
    pub hardbounce: bool,
    pub feedbacktype: String,
}

/// One `.eml` file with its expected rows (empty when the file has none).
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub raw: Vec<u8>,
    pub expected: Vec<Expected>,
}

/// The corpus, or why it could not be read.
pub fn load_corpus(dir: &Path) -> Result<Vec<Sample>, String> {
    let mut expected = load_expected(dir)?;
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("eml"))
        .collect();
    paths.sort();
    let mut samples = Vec::with_capacity(paths.len());
    for path in paths {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let raw = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let expected = expected.remove(&name).unwrap_or_default();
        samples.push(Sample {
            name,
            raw,
            expected,
        });
    }
    Ok(samples)
}

fn load_expected(dir: &Path) -> Result<BTreeMap<String, Vec<Expected>>, String> {
    let path = dir.join("expected.jsonl");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut map: BTreeMap<String, Vec<Expected>> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| format!("expected.jsonl line {}: {e}", n + 1))?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
        map.entry(s("file")).or_default().push(Expected {
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
    Ok(map)
}

/// A recipient that a person would accept as an e-mail address.
pub fn well_formed(addr: &str) -> bool {
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

/// Percentage, 100 for an empty denominator.
pub fn pct(n: usize, d: usize) -> f64 {
    if d == 0 {
        100.0
    } else {
        100.0 * n as f64 / d as f64
    }
}

/// Agreement of the parser with `expected.jsonl`.
#[derive(Debug, Default)]
pub struct Score {
    pub files: usize,
    pub files_with_rows: usize,
    pub rows: usize,
    pub hard_ok: usize,
    pub reason_ok: usize,
    pub status_ok: usize,
    pub reply_ok: usize,
    pub count_ok: usize,
    pub parse_errors: Vec<String>,
    pub bad_addresses: Vec<String>,
    /// Rows whose CLI JSON lacks one of the documented keys.
    pub bad_json: Vec<String>,
    pub mismatches: Vec<String>,
    /// (expected reason, reported reason) → rows.
    pub confusion: BTreeMap<(String, String), usize>,
}

impl Score {
    pub fn hard_pct(&self) -> f64 {
        pct(self.hard_ok, self.rows)
    }

    pub fn reason_pct(&self) -> f64 {
        pct(self.reason_ok, self.rows)
    }

    /// The headline figures, one per line.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "bounce corpus: {} files, {} expected rows",
            self.files, self.rows
        );
        let line = |s: &mut String, label: &str, n: usize, d: usize, unit: &str| {
            let _ = writeln!(s, "  {label:<20}: {:6.2}% ({n}/{d}{unit})", pct(n, d));
        };
        let _ = writeln!(
            s,
            "  {:<20}: {:6.2}% ({}/{})",
            "hard/soft agreement",
            self.hard_pct(),
            self.hard_ok,
            self.rows
        );
        let _ = writeln!(
            s,
            "  {:<20}: {:6.2}% ({}/{})",
            "reason agreement",
            self.reason_pct(),
            self.reason_ok,
            self.rows
        );
        line(&mut s, "status agreement", self.status_ok, self.rows, "");
        line(&mut s, "reply-code agreement", self.reply_ok, self.rows, "");
        line(
            &mut s,
            "recipient count ok",
            self.count_ok,
            self.files_with_rows,
            " messages",
        );
        let _ = writeln!(s, "  {:<20}: {}", "parse errors", self.parse_errors.len());
        s
    }

    /// The summary followed by the confusion table and every disagreement.
    pub fn report(&self) -> String {
        let mut s = self.summary();
        if !self.confusion.is_empty() {
            let _ = writeln!(s, "reason confusion (expected -> got: count):");
            for ((e, g), n) in &self.confusion {
                let _ = writeln!(s, "  {e:>16} -> {g:<16} {n}");
            }
        }
        if !self.mismatches.is_empty() {
            let _ = writeln!(s, "mismatches:");
            for m in &self.mismatches {
                let _ = writeln!(s, "  {m}");
            }
        }
        for e in &self.parse_errors {
            let _ = writeln!(s, "PARSE ERROR {e}");
        }
        for b in &self.bad_addresses {
            let _ = writeln!(s, "BAD ADDRESS {b}");
        }
        for b in &self.bad_json {
            let _ = writeln!(s, "BAD JSON {b}");
        }
        s
    }
}

const CLI_KEYS: [&str; 6] = [
    "recipient",
    "status",
    "reply_code",
    "reason",
    "hard",
    "feedback_type",
];

fn shorten(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut c = max;
    while !s.is_char_boundary(c) {
        c -= 1;
    }
    &s[..c]
}

/// Parse every sample once and compare with the expected rows.
pub fn score(samples: &[Sample]) -> Score {
    let mut sc = Score {
        files: samples.len(),
        ..Score::default()
    };
    for sample in samples {
        let name = &sample.name;
        let exp = &sample.expected;
        let got: Vec<RecipientReport> = match bounce::parse(&sample.raw) {
            Ok(p) => p.recipients,
            Err(e) => {
                if !exp.is_empty() {
                    sc.parse_errors.push(format!("{name}: {e}"));
                }
                Vec::new()
            }
        };
        for r in &got {
            if !well_formed(&r.recipient) {
                sc.bad_addresses.push(format!("{name}: {:?}", r.recipient));
            }
            let j = r.to_cli_json();
            for k in CLI_KEYS {
                if j.get(k).is_none() {
                    sc.bad_json.push(format!("{name}: cli json lacks {k}"));
                }
            }
        }
        if exp.is_empty() {
            continue;
        }
        sc.files_with_rows += 1;
        if got.is_empty() {
            sc.parse_errors.push(format!("{name}: no recipient rows"));
        }
        if got.len() == exp.len() {
            sc.count_ok += 1;
        } else {
            sc.mismatches.push(format!(
                "{name}: recipient count {} (expected {})",
                got.len(),
                exp.len()
            ));
        }
        for (i, e) in exp.iter().enumerate() {
            sc.rows += 1;
            let Some(g) = got.get(i) else {
                sc.mismatches.push(format!(
                    "{name}#{}: missing row (expected {})",
                    e.index, e.reason
                ));
                *sc.confusion
                    .entry((e.reason.clone(), "-".into()))
                    .or_default() += 1;
                continue;
            };
            let hard_agrees = g.hard == e.hardbounce;
            if hard_agrees {
                sc.hard_ok += 1;
            }
            if g.reason.as_str() == e.reason {
                sc.reason_ok += 1;
            } else {
                *sc.confusion
                    .entry((e.reason.clone(), g.reason.as_str().to_string()))
                    .or_default() += 1;
            }
            if g.reason.as_str() != e.reason || !hard_agrees {
                sc.mismatches.push(format!(
                    "{name}#{}: reason {} (expected {}) hard {} (expected {}) status {:?}/{:?} reply {:?}/{:?} rcpt {} diag {:?}",
                    e.index,
                    g.reason,
                    e.reason,
                    g.hard,
                    e.hardbounce,
                    g.status,
                    e.status,
                    g.reply_code,
                    e.replycode,
                    g.recipient,
                    shorten(&g.diagnostic, 240)
                ));
            }
            if g.status == e.status {
                sc.status_ok += 1;
            }
            if g.reply_code == e.replycode {
                sc.reply_ok += 1;
            }
            if !e.feedbacktype.is_empty() && g.feedback_type != e.feedbacktype {
                sc.mismatches.push(format!(
                    "{name}#{}: feedback type {:?} (expected {:?})",
                    e.index, g.feedback_type, e.feedbacktype
                ));
            }
        }
    }
    sc
}
