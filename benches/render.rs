//! Render benchmark (`cargo bench --bench render`): personalised renders per second on one
//! thread for a mix of the template library. Every template of `templates/` is compiled once
//! (mrml parse + render, placeholders, plain-text template) as a campaign would; then
//! recipients with different names, companies, tags and attributes are rendered round-robin
//! over the templates — subject, preheader, HTML and plain text each, with per-recipient
//! unsubscribe, preference, view-in-browser and tracked links.
//!
//! Environment: `RENDER_SECS` (default 5) of measured rendering after one second of warm-up.
//! Prints `key=value` lines; the figure is `messages_per_sec_per_core`.

use mailstead::templates::{
    Brand, CompiledTemplate, ContactVars, LinkBuilder, LinkTarget, PlainLinks, Recipient, compile,
    library,
};
use minijinja::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// utime + stime of this process in seconds (Linux /proc).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // fields after the command: state is 0, utime 11, stime 12; 100 ticks per second
    (ticks(11) + ticks(12)) / 100.0
}

fn contact(i: usize) -> ContactVars {
    const FIRST: [&str; 8] = [
        "Amira", "Ben", "Chloé", "Dmitri", "Eun-ji", "Farah", "", "Gareth",
    ];
    const COMPANY: [&str; 5] = [
        "Halden Logistics",
        "",
        "Pennine Water & Power",
        "Brightwater <Utilities>",
        "Keel",
    ];
    let mut attributes = serde_json::Map::new();
    if i.is_multiple_of(3) {
        attributes.insert("current_stage".into(), "Intermediate".into());
    }
    ContactVars {
        email: format!("learner{i}@example.org"),
        first_name: FIRST[i % FIRST.len()].into(),
        last_name: format!("Learner{i}"),
        company: COMPANY[i % COMPANY.len()].into(),
        tags: vec!["itil".into(), format!("cohort-{}", i % 12)],
        attributes,
        crm: Default::default(),
    }
}

fn main() {
    let secs: u64 = std::env::var("RENDER_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let brand = Brand::sample();
    let links: Arc<dyn LinkBuilder> = Arc::new(PlainLinks {
        base_url: "https://mail.academy.example".into(),
    });

    // compile once per "campaign"
    let t0 = Instant::now();
    let mut mix: Vec<(String, CompiledTemplate, Value, serde_json::Value)> = Vec::new();
    for t in library::all() {
        let t = t.unwrap_or_else(|(p, e)| panic!("{p}: {e}"));
        let c = compile(&t.source, &brand, t.kind).unwrap_or_else(|e| panic!("{}: {e}", t.id));
        c.validate(&t.sample)
            .unwrap_or_else(|e| panic!("{}: {e}", t.id));
        mix.push((
            t.id,
            c,
            Value::from_serialize(&t.sample.campaign),
            t.sample.data,
        ));
    }
    let compile_ms = t0.elapsed().as_secs_f64() * 1000.0 / mix.len() as f64;
    let contacts: Vec<ContactVars> = (0..1000).map(contact).collect();

    let mut bytes = 0usize;
    let render = |i: usize, bytes: &mut usize| {
        let (id, c, campaign, data) = &mix[i % mix.len()];
        let contact = &contacts[i % contacts.len()];
        let r = c
            .render(
                &Recipient {
                    contact,
                    data,
                    target: LinkTarget {
                        campaign_id: "c-2025-03".into(),
                        contact_id: i as u64,
                        email: contact.email.clone(),
                        message: None,
                    },
                },
                campaign,
                &links,
            )
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        *bytes += r.html.len() + r.text.len();
    };
    // warm-up
    let warm = Instant::now();
    let mut i = 0;
    while warm.elapsed() < Duration::from_secs(1) {
        render(i, &mut bytes);
        i += 1;
    }
    bytes = 0;
    let (start, cpu0) = (Instant::now(), cpu_seconds());
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(secs) {
        for _ in 0..100 {
            render(n, &mut bytes);
            n += 1;
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = (cpu_seconds() - cpu0).max(0.001);
    println!("templates_in_mix={}", mix.len());
    println!("compile_ms_per_template={compile_ms:.2}");
    println!("messages={n}");
    println!("wall_secs={wall:.2}");
    println!("cpu_secs={cpu:.2}");
    println!("avg_message_bytes={}", bytes / n.max(1));
    println!("messages_per_sec_wall={:.0}", n as f64 / wall);
    println!("messages_per_sec_per_core={:.0}", n as f64 / cpu);
    println!("us_per_message_cpu={:.1}", cpu * 1e6 / n as f64);
}
