//! Hostile and broken input for the bounce parser: truncated messages, bytes that are not
//! UTF-8, thousands of nested multiparts or messages, a 20 MB message, header bombs (500,000
//! header lines; one 10 MB header line), oversized input. Each must give a clear error or a
//! sensible result, without a panic, a stack overflow or time that grows faster than the
//! input. The same inputs go through `mailstead bounce parse` in `tests/cli.rs`.

mod bounce_inputs;

use std::time::{Duration, Instant};

use bounce_inputs::*;
use mailstead::bounce::{self, BounceError, FeedbackKind, MAX_MESSAGE_BYTES, Reason};

/// Generous bound for one parse of a hostile input in an unoptimised test build on a
/// loaded machine; the release build is ~20× faster. Quadratic behaviour on these sizes
/// would take minutes, not seconds.
const SLOW: Duration = Duration::from_secs(30);

fn timed(what: &str, raw: &[u8]) -> Result<bounce::ParsedFeedback, BounceError> {
    let t = Instant::now();
    let r = bounce::parse(raw);
    let took = t.elapsed();
    println!(
        "{what}: {} bytes in {:.3} s -> {}",
        raw.len(),
        took.as_secs_f64(),
        match &r {
            Ok(p) => format!("{:?}, {} rows", p.kind, p.recipients.len()),
            Err(e) => format!("error: {e}"),
        }
    );
    assert!(took < SLOW, "{what} took {took:?}");
    r
}

fn assert_gone(p: &bounce::ParsedFeedback, what: &str) {
    assert_eq!(p.kind, FeedbackKind::Bounce, "{what}");
    assert_eq!(p.recipients.len(), 1, "{what}: {:?}", p.recipients);
    let r = &p.recipients[0];
    assert_eq!(r.recipient, "gone@example.org", "{what}");
    assert_eq!(r.reason, Reason::UserUnknown, "{what}");
    assert!(r.hard, "{what}");
}

#[test]
fn every_truncation_of_a_dsn_is_an_error_or_a_sensible_result() {
    let full = dsn(&[]);
    let status_at = find(&full, b"Status: 5.1.1\r\n").map(|p| p + 16);
    for cut in 0..=full.len() {
        let prefix = &full[..cut];
        match bounce::parse(prefix) {
            Err(BounceError::NotAMessage(_)) => {}
            Err(e) => panic!("cut {cut}: unexpected {e}"),
            Ok(p) => {
                for r in &p.recipients {
                    assert!(r.recipient.contains('@'), "cut {cut}: {r:?}");
                }
                // Once the whole recipient group is there, the answer is the full one.
                if status_at.is_some_and(|s| cut >= s) {
                    assert_gone(&p, &format!("cut {cut}"));
                }
            }
        }
    }
}

#[test]
fn truncated_corpus_messages_never_fail_badly() {
    let Some(samples) = corpus_samples() else {
        println!("skipping: ../shared/corpus/bounces not found");
        return;
    };
    let mut parsed = 0usize;
    for (name, raw) in &samples {
        for k in 1..8 {
            let cut = raw.len() * k / 8;
            match bounce::parse(&raw[..cut]) {
                Ok(_) => parsed += 1,
                Err(BounceError::NotAMessage(_)) => {}
                Err(e) => panic!("{name} cut at {cut}: unexpected {e}"),
            }
        }
    }
    assert!(parsed > samples.len() * 4, "only {parsed} prefixes parsed");
}

#[test]
fn bytes_that_are_not_utf8_are_tolerated() {
    // Latin-1 and invalid sequences in the header, the human-readable part and the
    // diagnostic; the recipient and reason still come out.
    let raw = dsn(&[
        (
            b"Subject: Undelivered Mail".as_slice(),
            b"Subject: Unzustellbar \xfc\xe4 \xff\xfe".as_slice(),
        ),
        (
            b"Delivery failed.",
            b"Zustellung fehlgeschlagen \xe4\xf6\xfc \xc3\x28 \xf0\x28\x8c\x28",
        ),
        (b"User unknown", b"User unknown \xff\xfe\xfd"),
    ]);
    let p = timed("latin-1 dsn", &raw).unwrap_or_else(|e| panic!("{e}"));
    assert_gone(&p, "latin-1");

    // Random bytes, and random bytes behind a valid header: no panic.
    let mut rng = XorShift(0x005E_ED0F_BADB_17E5);
    for i in 0..300 {
        let n = (rng.next() % 8192) as usize;
        let noise: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        let _ = bounce::parse(&noise);
        let mut with_head = dsn(&[]);
        let at = (rng.next() as usize) % with_head.len();
        with_head.splice(at..at, noise);
        if let Ok(p) = bounce::parse(&with_head) {
            for r in &p.recipients {
                assert!(r.recipient.contains('@'), "round {i}: {r:?}");
            }
        }
    }
}

#[test]
fn thousands_of_nested_multiparts() {
    let raw = nested_multipart(5_000);
    let p = timed("5,000 nested multiparts", &raw);
    // Too deep to be a real report: an error or an empty result, never a crash.
    if let Ok(p) = p {
        assert!(p.recipients.len() <= 1, "{:?}", p.recipients);
    }
    // Shallow nesting (as real reports have) is still understood.
    let p = timed("4 nested multiparts", &nested_multipart(4)).unwrap_or_else(|e| panic!("{e}"));
    assert_gone(&p, "4 levels");
}

#[test]
fn thousands_of_nested_messages() {
    let raw = nested_messages(5_000);
    let p = timed("5,000 nested message/rfc822", &raw).unwrap_or_else(|e| panic!("{e}"));
    assert_gone(&p, "nested messages");
}

#[test]
fn a_20_mb_message_parses_in_bounded_time() {
    let raw = dsn_with_attachment(20 * 1000 * 1000);
    let p = timed("20 MB attachment", &raw).unwrap_or_else(|e| panic!("{e}"));
    assert_gone(&p, "20 MB attachment");

    let raw = dsn_with_huge_text(20 * 1000 * 1000);
    let p = timed("20 MB report text", &raw).unwrap_or_else(|e| panic!("{e}"));
    assert_gone(&p, "20 MB text");
}

#[test]
fn header_bombs() {
    let raw = header_bomb_many_lines(500_000);
    match timed("500,000 header lines", &raw) {
        Err(BounceError::NotAMessage(m)) => assert!(m.contains("header"), "{m}"),
        Err(e) => panic!("unexpected {e}"),
        Ok(p) => assert!(p.recipients.len() <= 1),
    }
    let raw = header_bomb_long_line(10 * 1000 * 1000);
    match timed("one 10 MB header line", &raw) {
        Err(BounceError::NotAMessage(m)) => assert!(m.contains("header"), "{m}"),
        Err(e) => panic!("unexpected {e}"),
        Ok(p) => assert!(p.recipients.len() <= 1),
    }
    // Many recipient groups in the report itself: bounded output, linear time.
    let raw = many_recipients(200_000);
    let p = timed("200,000 recipient groups", &raw).unwrap_or_else(|e| panic!("{e}"));
    assert!(!p.recipients.is_empty() && p.recipients.len() <= 10_000);
}

#[test]
fn oversized_input_is_refused_with_a_clear_error() {
    let raw = vec![b'a'; MAX_MESSAGE_BYTES + 1];
    match bounce::parse(&raw) {
        Err(e @ BounceError::TooLarge(n, limit)) => {
            assert_eq!((n, limit), (MAX_MESSAGE_BYTES + 1, MAX_MESSAGE_BYTES));
            assert!(e.to_string().contains("too large"), "{e}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(
        (20 * 1024 * 1024..=32 * 1024 * 1024).contains(&MAX_MESSAGE_BYTES),
        "limit {MAX_MESSAGE_BYTES}"
    );
}
