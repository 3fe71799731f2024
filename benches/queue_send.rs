//! Queue benchmark (`cargo bench --bench queue_send`): the whole outbound path
//! of the library, as the server runs it. N recipients of a ~20 KB HTML
//! message are submitted with `Outbound::submit_tx` (compose, personalise,
//! DKIM-sign with RSA-2048, one durable redb transaction per request of
//! `QUEUE_PER_REQUEST` recipients), then drained by `Outbound::run` (claim,
//! deliver over the SMTP client, settle in batches) to Postfix's smtp-sink on
//! loopback. Printed: recipients per second and per hour for the enqueue and
//! the drain, CPU per recipient (this process: /proc/self/stat), and, measured
//! in the same run, this machine's ceilings as in `benches/send.rs`:
//! `smtp-source` → `smtp-sink` and DKIM RSA-2048 signatures per second on one
//! core.
//!
//! Environment: `QUEUE_N` (recipients, default 100000), `QUEUE_PER_REQUEST`
//! (recipients per message, default 50; 1 gives one signed message per
//! recipient), `QUEUE_SIZE` (HTML bytes, 20000), `QUEUE_CONCURRENCY`
//! (deliveries in flight, 64), `QUEUE_CONNECTIONS` (SMTP connections, 10).
//!
//! Shaping is switched off (`Outbound::with_shaping`): the server's built-in
//! limits (200 messages/s overall, 300/min per site) would be measured instead
//! of the queue. The engine runs in relay mode towards the sink (no DNS).

#[path = "../tests/peers/harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailstead::config::Settings;
use mailstead::delivery::ShapingConfig;
use mailstead::delivery::dkim::{self, Signer};
use mailstead::metrics::{DeliveryLabels, Metrics};
use mailstead::outbound::{Outbound, TxRequest, dkim_key_path};
use mailstead::policy::Actor;
use mailstead::store::Store;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// utime + stime of a process in seconds (Linux /proc).
fn cpu_seconds(pid: Option<u32>) -> f64 {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let Ok(stat) = std::fs::read_to_string(path) else {
        return f64::NAN;
    };
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (ticks(11) + ticks(12)) / clk_tck()
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A ~`size` byte HTML newsletter body with a personalised greeting.
fn html(size: usize) -> String {
    let mut h = String::from("<!DOCTYPE html><html><body>\n<h1>Monthly news for {{ name }}</h1>\n");
    let mut i = 0;
    while h.len() < size {
        h.push_str(&format!(
            "<p>Paragraph {i}: our <a href=\"https://example.test/course/{i}\">course {i}</a> \
             starts soon &mdash; seats are limited, book now.</p>\n"
        ));
        i += 1;
    }
    h.push_str("</body></html>\n");
    h
}

fn main() {
    let n = env_usize("QUEUE_N", 100_000).max(1);
    let per = env_usize("QUEUE_PER_REQUEST", 50).clamp(1, 50);
    let size = env_usize("QUEUE_SIZE", 20_000);
    let concurrency = env_usize("QUEUE_CONCURRENCY", 64).max(1);
    let k = env_usize("QUEUE_CONNECTIONS", 10).max(1);

    let sink = match harness::smtp_sink(&[], false) {
        Ok(s) => s,
        Err(e) => {
            harness::missing("bench queue_send", &e);
            return;
        }
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let rsa = dkim::generate_rsa().expect("RSA key");
    let key = dkim_key_path(&data, "example.test", "bench", "rsa");
    std::fs::create_dir_all(key.parent().expect("parent")).expect("mkdir");
    std::fs::write(&key, rsa.private_pem()).expect("write key");

    let mut env = BTreeMap::new();
    env.insert("MAILSTEAD_DATA_DIR".to_string(), data.display().to_string());
    env.insert(
        "MAILSTEAD_RELAY".to_string(),
        format!("smtp://127.0.0.1:{}?tls=none", sink.addr.port()),
    );
    env.insert(
        "MAILSTEAD_HOSTNAME".to_string(),
        "bench.mailstead.test".to_string(),
    );
    env.insert(
        "MAILSTEAD_DELIVERY_CONCURRENCY".to_string(),
        concurrency.to_string(),
    );
    let settings = Settings::load(None, &[], &env).expect("settings");
    let store = Arc::new(Store::open(&data).expect("store"));
    let metrics = Arc::new(Metrics::new());
    let shaping: ShapingConfig = serde_json::from_value(serde_json::json!({
        "global_messages_per_second": 0,
        "default": {"max_connections": k, "max_messages_per_connection": 1_000_000, "messages_per_minute": 0},
        "connection_wait_secs": 60,
    }))
    .expect("shaping");
    let out = Arc::new(
        Outbound::with_shaping(&settings, store.clone(), metrics.clone(), shaping)
            .expect("outbound"),
    );
    let template = html(size);
    let request = |r: usize| TxRequest {
        from: "News <news@example.test>".into(),
        to: (0..per)
            .map(|j| format!("reader{}@customers.test", r * per + j))
            .collect(),
        subject: "November issue for {{ name }}".into(),
        html: Some(template.clone()),
        data: Some(serde_json::json!({"name": format!("Reader {r}")})),
        ..Default::default()
    };
    let sample = out.submit_tx(&Actor::system(), &request(usize::MAX / 100));
    let sample = sample.expect("sample message");
    let signed = store.out_body(sample.id).expect("body").expect("body");
    assert!(signed.starts_with(b"DKIM-Signature:"), "signed");
    println!(
        "queue_send benchmark: N={} recipients, {} per message ({} messages of {:.1} KB signed), \
         concurrency {concurrency}, {k} connections, {} CPUs",
        thousands(n as f64),
        per,
        thousands(n.div_ceil(per) as f64),
        signed.len() as f64 / 1024.0,
        std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(1)
    );

    // Ceiling 1: DKIM signatures on one core.
    let signer =
        Signer::new("example.test", "bench", rsa.private_pem().as_bytes()).expect("signer");
    let start = Instant::now();
    let mut sigs = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        for _ in 0..20 {
            std::hint::black_box(signer.signature_headers(&signed).expect("sign"));
        }
        sigs += 20;
    }
    let sig_rate = sigs as f64 / start.elapsed().as_secs_f64();
    println!(
        "ceiling    DKIM rsa-sha256 2048-bit, 1 core        {:>9} signatures/s",
        thousands(sig_rate)
    );
    // Ceiling 2: smtp-source -> smtp-sink over k sessions.
    if let Some(src) = harness::smtp_source_bin() {
        let m = n.min(20_000);
        let start = Instant::now();
        let status = Command::new(&src)
            .env("LD_LIBRARY_PATH", harness::postfix_lib_dir(&src))
            .args(["-s", &k.to_string(), "-m", &m.to_string()])
            .args(["-l", &signed.len().to_string(), "-d", "-M", "bench.test"])
            .args(["-f", "a@bench.test", "-t", "b@bench.test"])
            .arg(format!("127.0.0.1:{}", sink.addr.port()))
            .status();
        let secs = start.elapsed().as_secs_f64();
        match status {
            Ok(s) if s.success() => println!(
                "ceiling    smtp-source -> smtp-sink, {k} sessions    {:>9} msg/s  {:>6.2} M msg/h",
                thousands(m as f64 / secs),
                m as f64 / secs * 3600.0 / 1e6
            ),
            other => println!("ceiling    smtp-source failed: {other:?}"),
        }
    }

    // The sample is not part of the measured run.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sent = || {
        metrics
            .deliveries
            .get_or_create(&DeliveryLabels {
                site: "127.0.0.1".into(),
                outcome: "sent".into(),
            })
            .get()
    };
    // drain the sample first
    let worker = rt.spawn(out.clone().run(stop_rx));
    while sent() < per as u64 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let base = sent();

    // Phase 1: enqueue everything with the workers running (as in production),
    // from two submitting threads (the HTTP handlers' blocking pool).
    let requests = n.div_ceil(per);
    let cpu0 = cpu_seconds(None);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..2 {
            let out = out.clone();
            let request = &request;
            scope.spawn(move || {
                let actor = Actor::system();
                for r in (t..requests).step_by(2) {
                    out.submit_tx(&actor, &request(r)).expect("submit");
                }
            });
        }
    });
    let enq_secs = start.elapsed().as_secs_f64();
    let enq_cpu = cpu_seconds(None) - cpu0;
    let during = sent() - base;
    let total = (requests * per) as u64;
    while sent() - base < total {
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = stop_tx.send(true);
    rt.block_on(worker).expect("worker");
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(None) - cpu0;
    let stats = store.queue_stats().expect("stats");
    let waiting: u64 = stats.by_site.values().map(|s| s.waiting).sum();
    let failed: u64 = stats.by_site.values().map(|s| s.bounced + s.failed).sum();
    println!(
        "mailstead  enqueue (compose+sign+commit), 2 threads {:>9} rcpt/s  {:>6.2} M rcpt/h  {:.1} ms/request  ({} delivered meanwhile)",
        thousands(total as f64 / enq_secs),
        total as f64 / enq_secs * 3600.0 / 1e6,
        enq_secs * 1000.0 / requests as f64,
        thousands(during as f64)
    );
    println!(
        "mailstead  submit → delivered and settled, end to end {:>7} rcpt/s  {:>6.2} M rcpt/h  cpu {:.3} ms/rcpt (enqueue {:.3})  {} waiting, {} failed",
        thousands(total as f64 / secs),
        total as f64 / secs * 3600.0 / 1e6,
        cpu * 1000.0 / total as f64,
        enq_cpu * 1000.0 / total as f64,
        waiting,
        failed
    );
    let size = std::fs::metadata(data.join("mailstead.redb"))
        .map(|m| m.len())
        .unwrap_or(0);
    if size > 0 {
        println!(
            "store      {:.1} MB after the run",
            size as f64 / 1024.0 / 1024.0
        );
    }
}
