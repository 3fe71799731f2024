//! Send benchmark (`cargo bench --bench send`): DKIM-sign (RSA-2048) and
//! send N ~20 KB HTML messages through the delivery engine over K
//! connections to Postfix's smtp-sink on loopback, and, in the same run, the
//! ceilings of this machine: `smtp-source` → `smtp-sink` raw SMTP and DKIM
//! RSA-2048 signatures per second on one core.
//!
//! Environment: `SEND_N` (default 100000), `SEND_CONNECTIONS` (10),
//! `SEND_SIZE` (20000 bytes of HTML), `SEND_SIGN_SECS` (3),
//! `SEND_SOURCE_N` (smtp-source messages, default N). Needs the peers of
//! `tests/peers/install.sh` (skips when missing unless
//! `MAILSTEAD_REQUIRE_PEERS=1`).
//!
//! The engine runs in relay mode towards the sink (`smtp://127.0.0.1:PORT?tls=none`)
//! so that no DNS server is involved; the connection, shaping and SMTP code
//! is the one used for MX delivery. The queue is not part of this benchmark.

#[path = "../tests/peers/harness.rs"]
mod harness;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mailstead::delivery::dkim::{self, Signer};
use mailstead::delivery::{
    ClientConfig, DeliveryJob, DeliveryStatus, Engine, EngineConfig, PreparedMessage, RelayConfig,
    Resolver, ShapingConfig, Verp,
};

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
    // Fields after the command name in parentheses; utime and stime are 14 and 15.
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

/// Headers for message `id` followed by the shared body.
fn message(id: usize, body: &[u8]) -> Vec<u8> {
    let head = format!(
        "From: News <news@example.test>\r\n\
         To: <reader{id}@customers.test>\r\n\
         Subject: November issue\r\n\
         Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n\
         Message-ID: <{id}.bench@example.test>\r\n\
         List-Unsubscribe: <https://example.test/u/{id}>\r\n\
         List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\
         Feedback-ID: {id}:november:mailstead\r\n"
    );
    let mut m = Vec::with_capacity(head.len() + body.len());
    m.extend_from_slice(head.as_bytes());
    m.extend_from_slice(body);
    m
}

fn main() {
    let n = env_usize("SEND_N", 100_000).max(1);
    let k = env_usize("SEND_CONNECTIONS", 10).max(1);
    let size = env_usize("SEND_SIZE", 20_000);
    let sign_secs = env_usize("SEND_SIGN_SECS", 3) as u64;
    let source_n = env_usize("SEND_SOURCE_N", n);

    let sink = match harness::smtp_sink(&[], false) {
        Ok(s) => s,
        Err(e) => {
            harness::missing("bench send", &e);
            return;
        }
    };

    // Shared body: MIME-Version, Content-Type and the multipart body of the
    // test newsletter (its own From/To/Subject/Date/Message-ID replaced).
    let full = harness::newsletter("news@example.test", "x@customers.test", "x", 0, size);
    let split = full
        .windows(14)
        .position(|w| w == b"MIME-Version: ")
        .unwrap_or(0);
    let body: Vec<u8> = full[split..].to_vec();

    let rsa = dkim::generate_rsa().expect("RSA key");
    let signer = Arc::new(
        Signer::new("example.test", "bench", rsa.private_pem().as_bytes()).expect("signer"),
    );
    let sample = signer.sign(&message(0, &body)).expect("sign");
    println!(
        "send benchmark: N={} messages of {:.1} KB signed, K={} connections, {} CPUs",
        thousands(n as f64),
        sample.len() as f64 / 1024.0,
        k,
        std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(1)
    );

    // Ceiling 1: DKIM RSA-2048 signatures per second on one core.
    let msg0 = message(1, &body);
    let start = Instant::now();
    let mut sigs = 0u64;
    while start.elapsed() < Duration::from_secs(sign_secs) {
        for _ in 0..50 {
            std::hint::black_box(signer.signature_headers(&msg0).expect("sign"));
        }
        sigs += 50;
    }
    let sig_rate = sigs as f64 / start.elapsed().as_secs_f64();
    println!(
        "ceiling    DKIM rsa-sha256 2048-bit, 1 core      {:>9} signatures/s ({:.3} ms each)",
        thousands(sig_rate),
        1000.0 / sig_rate
    );

    // Ceiling 2: smtp-source -> smtp-sink.
    match harness::smtp_source_bin() {
        Some(src) => {
            let sink_cpu0 = cpu_seconds(Some(sink.pid()));
            let start = Instant::now();
            let status = Command::new(&src)
                .env("LD_LIBRARY_PATH", harness::postfix_lib_dir(&src))
                .args([
                    "-s",
                    &k.to_string(),
                    "-m",
                    &source_n.to_string(),
                    "-l",
                    &size.to_string(),
                ])
                .args([
                    "-d",
                    "-M",
                    "bench.test",
                    "-f",
                    "a@bench.test",
                    "-t",
                    "b@bench.test",
                ])
                .arg(format!("127.0.0.1:{}", sink.addr.port()))
                .status();
            let secs = start.elapsed().as_secs_f64();
            let sink_cpu = cpu_seconds(Some(sink.pid())) - sink_cpu0;
            match status {
                Ok(s) if s.success() => println!(
                    "ceiling    smtp-source -> smtp-sink, {k} sessions  {:>9} msg/s  {:>6.1} M msg/h  (sink cpu {:.3} ms/msg)",
                    thousands(source_n as f64 / secs),
                    source_n as f64 / secs * 3600.0 / 1e6,
                    sink_cpu * 1000.0 / source_n as f64
                ),
                other => println!("ceiling    smtp-source failed: {other:?}"),
            }
        }
        None => println!("ceiling    smtp-source not found, skipped"),
    }

    // Mailstead: sign + send through the engine.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let shaping: ShapingConfig = serde_json::from_value(serde_json::json!({
        "global_messages_per_second": 0,
        "default": {"max_connections": k, "max_messages_per_connection": 1_000_000, "messages_per_minute": 0},
        "connection_wait_secs": 60,
    }))
    .expect("shaping");
    let mut cfg = EngineConfig::new(ClientConfig::new("bench.mailstead.test").expect("client"));
    cfg.shaping = shaping;
    cfg.relay = Some(
        RelayConfig::parse(&format!("smtp://127.0.0.1:{}?tls=none", sink.addr.port()))
            .expect("relay"),
    );
    let engine = Engine::new(cfg, Resolver::new(None).expect("resolver")).expect("engine");
    let verp = Arc::new(
        Verp::new(b"bench-verp-key-0123456789abcdef!", "bounces.example.test").expect("verp"),
    );
    let body = Arc::new(body);

    let run = |count: usize, sign: bool| -> (f64, f64, f64, usize) {
        let next = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let presigned = PreparedMessage::new(&sample);
        let cpu0 = cpu_seconds(None);
        let sink0 = cpu_seconds(Some(sink.pid()));
        let start = Instant::now();
        rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..(k * 2) {
                let (engine, signer, verp, body) =
                    (engine.clone(), signer.clone(), verp.clone(), body.clone());
                let (next, failed, presigned) = (next.clone(), failed.clone(), presigned.clone());
                set.spawn(async move {
                    loop {
                        let id = next.fetch_add(1, Ordering::Relaxed);
                        if id >= count {
                            break;
                        }
                        let msg = if sign {
                            PreparedMessage::new(&signer.sign(&message(id, &body)).expect("sign"))
                        } else {
                            presigned.clone()
                        };
                        let from = verp.return_path(id as u64, 0);
                        let rcpt = [format!("reader{id}@customers.test")];
                        let out = engine
                            .deliver(&DeliveryJob {
                                mail_from: &from,
                                recipients: &rcpt,
                                message: &msg,
                            })
                            .await;
                        if !matches!(out[0].status, DeliveryStatus::Delivered { .. })
                            && failed.fetch_add(1, Ordering::Relaxed) < 3
                        {
                            eprintln!("not delivered: {:?}", out[0]);
                        }
                    }
                });
            }
            while set.join_next().await.is_some() {}
        });
        let secs = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds(None) - cpu0;
        let sink_cpu = cpu_seconds(Some(sink.pid())) - sink0;
        (secs, cpu, sink_cpu, failed.load(Ordering::Relaxed))
    };

    let report = |label: &str,
                  count: usize,
                  (secs, cpu, sink_cpu, failed): (f64, f64, f64, usize)| {
        println!(
            "mailstead  {label:<34} {:>9} msg/s  {:>6.1} M msg/h  cpu {:.3} ms/msg (sink {:.3})  {} failed",
            thousands(count as f64 / secs),
            count as f64 / secs * 3600.0 / 1e6,
            cpu * 1000.0 / count as f64,
            sink_cpu * 1000.0 / count as f64,
            failed
        );
    };

    let r = run(n, true);
    report(&format!("sign + send, {k} connections"), n, r);
    let m = (n / 2).max(1);
    let r = run(m, false);
    report(&format!("send only (presigned), {k} conns"), m, r);
    rt.block_on(engine.shutdown());
}
