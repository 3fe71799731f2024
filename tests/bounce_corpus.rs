//! Accuracy test of the bounce parser against the shared corpus of real
//! bounce, complaint and auto-reply messages (`../shared/corpus/bounces`).
//!
//! Skipped (with a message) when the corpus is not present, unless
//! `MAILSTEAD_REQUIRE_PEERS=1`.

mod bounce_score;

use bounce_score::{corpus_dir, load_corpus, score};

#[test]
fn corpus_accuracy() {
    let dir = corpus_dir();
    if !dir.join("expected.jsonl").exists() {
        if std::env::var("MAILSTEAD_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("../shared/corpus/bounces not found and MAILSTEAD_REQUIRE_PEERS=1");
        }
        println!("skipping: ../shared/corpus/bounces not found");
        return;
    }
    let samples = load_corpus(&dir).unwrap_or_else(|e| panic!("cannot load the corpus: {e}"));
    let sc = score(&samples);
    println!("{}", sc.report());

    assert!(
        sc.parse_errors.is_empty(),
        "{} samples failed to parse",
        sc.parse_errors.len()
    );
    assert!(
        sc.bad_addresses.is_empty(),
        "{} malformed recipient addresses",
        sc.bad_addresses.len()
    );
    assert!(
        sc.bad_json.is_empty(),
        "CLI JSON lacks keys: {:?}",
        sc.bad_json
    );
    assert!(
        sc.hard_pct() >= 95.0,
        "hard/soft agreement {:.2}% < 95%",
        sc.hard_pct()
    );
    assert!(
        sc.reason_pct() >= 90.0,
        "reason agreement {:.2}% < 90%",
        sc.reason_pct()
    );
}
