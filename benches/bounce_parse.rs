//! Bounce parser benchmark (`cargo bench --bench bounce_parse`): parse throughput over the
//! shared corpus of real bounces (`../shared/corpus/bounces`) on one thread, and the
//! agreement of the classification with the corpus's `expected.jsonl` (the same scoring as
//! `tests/bounce_corpus.rs`).
//!
//! Environment: `BOUNCE_BENCH_SECS` (default 5): how long the timed loop runs;
//! `BOUNCE_BENCH_MISMATCHES=1` lists every disagreement with the corpus. Skips with a
//! message when `../shared` is absent (a fresh clone), unless `MAILSTEAD_REQUIRE_PEERS=1`.
//!
//! "Per core" is measured with the thread's own CPU time (`/proc/thread-self/schedstat`), so
//! the figure holds on a machine shared with other work; the wall-clock rate is printed too.

#[path = "../tests/bounce_score/mod.rs"]
mod bounce_score;

use std::hint::black_box;
use std::time::{Duration, Instant};

use bounce_score::{corpus_dir, load_corpus, score};
use mailstead::bounce;

/// CPU time this thread has run, from the scheduler's statistics (Linux).
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn main() {
    let dir = corpus_dir();
    if !dir.join("expected.jsonl").exists() {
        if std::env::var("MAILSTEAD_REQUIRE_PEERS").as_deref() == Ok("1") {
            eprintln!("../shared/corpus/bounces not found and MAILSTEAD_REQUIRE_PEERS=1");
            std::process::exit(1);
        }
        println!(
            "skipping bounce_parse: ../shared/corpus/bounces not found (the benchmark needs the shared corpus)"
        );
        return;
    }
    let samples = match load_corpus(&dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot load the corpus: {e}");
            std::process::exit(1);
        }
    };
    let secs: f64 = std::env::var("BOUNCE_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|s: &f64| *s > 0.0)
        .unwrap_or(5.0);
    let bytes: usize = samples.iter().map(|s| s.raw.len()).sum();
    println!(
        "corpus: {} messages, {:.2} MB (mean {:.1} KB, largest {:.1} KB)",
        samples.len(),
        bytes as f64 / 1e6,
        bytes as f64 / samples.len().max(1) as f64 / 1e3,
        samples.iter().map(|s| s.raw.len()).max().unwrap_or(0) as f64 / 1e3
    );

    // Warm-up: one pass (also checks that nothing fails).
    let mut errors = 0usize;
    for s in &samples {
        if bounce::parse(&s.raw).is_err() {
            errors += 1;
        }
    }

    let budget = Duration::from_secs_f64(secs);
    let (cpu0, wall0) = (thread_cpu(), Instant::now());
    let (mut messages, mut parsed_bytes, mut rows, mut passes) = (0usize, 0usize, 0usize, 0usize);
    while wall0.elapsed() < budget {
        for s in &samples {
            if let Ok(p) = bounce::parse(black_box(&s.raw)) {
                rows += black_box(p.recipients.len());
            }
        }
        messages += samples.len();
        parsed_bytes += bytes;
        passes += 1;
    }
    let wall = wall0.elapsed().as_secs_f64();
    let cpu = match (cpu0, thread_cpu()) {
        (Some(a), Some(b)) => (b - a).as_secs_f64(),
        _ => wall,
    };
    println!(
        "timed: {passes} passes, {messages} messages, {rows} rows in {wall:.2} s wall, {cpu:.2} s CPU (one thread)"
    );
    println!(
        "throughput per core: {:.0} messages/s, {:.1} MB/s (CPU time)",
        messages as f64 / cpu,
        parsed_bytes as f64 / 1e6 / cpu
    );
    println!(
        "throughput wall    : {:.0} messages/s, {:.1} MB/s",
        messages as f64 / wall,
        parsed_bytes as f64 / 1e6 / wall
    );
    println!(
        "mean per message   : {:.1} µs CPU",
        cpu * 1e6 / messages.max(1) as f64
    );

    let sc = score(&samples);
    if std::env::var("BOUNCE_BENCH_MISMATCHES").as_deref() == Ok("1") {
        print!("{}", sc.report());
    } else {
        print!("{}", sc.summary());
    }
    println!("  errors on any file  : {errors}");
}
