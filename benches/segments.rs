//! Segment benchmark (see benches/README.md).
//!
//! ```text
//! MAILSTEAD_SKIP_UI_BUILD=1 cargo bench --bench segments
//! SEGMENT_CONTACTS=100000 SEGMENT_RUNS=20 MAILSTEAD_SKIP_UI_BUILD=1 cargo bench --bench segments
//! ```
//!
//! 1. writes N synthetic contacts (default 1,000,000: names, companies, tags, attributes,
//!    list memberships, consents, owners, creation times spread over three years; a fixed
//!    seed, so every run has the same data) to a fresh store in transactions of 10,000, and
//!    campaign engagement (sent/open/click) for 70% of them through `record_engagement_in`;
//! 2. the cold build of the segment row cache (`Segments::warm`) and its size;
//! 3. count latency (p50/p95 over SEGMENT_RUNS runs, after one warm-up) through
//!    `Segments::count` for representative filters, including the issue's example, as an admin
//!    and once scoped to a sales user;
//! 4. the first count after a contact update (catch-up from the change log).

use mailstead::contacts::empty_contact;
use mailstead::model::{Consent, EngagementKind, Membership, MembershipStatus, Role, now};
use mailstead::policy::Actor;
use mailstead::segments::Segments;
use mailstead::store::{Store, StoreError, record_engagement_in};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TARGET_COUNT_MS: f64 = 200.0;

const FIRST: &[&str] = &[
    "Anna", "Ben", "Chloé", "David", "Elif", "Finn", "Grace", "Hugo", "Ines", "Jonas", "Kemal",
    "Lea", "Mateo", "Nora", "Oskar", "Paula", "Quentin", "Rosa", "Sven", "Tara", "Umar", "Vera",
    "Wim", "Xenia", "Yusuf", "Zoe", "Andreas", "Annika", "Antoine", "Maria", "Ming", "Priya",
];
const LAST: &[&str] = &[
    "Müller",
    "Schmidt",
    "Dubois",
    "Rossi",
    "García",
    "Smith",
    "Jones",
    "Nowak",
    "Kowalski",
    "Jansen",
    "Silva",
    "Yılmaz",
    "Novak",
    "Berg",
    "Lindqvist",
    "O'Brien",
    "Haddad",
    "Tanaka",
    "Kim",
    "Nguyen",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Hoffmann",
    "Schäfer",
];
const COMPANY_A: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Hooli",
    "Vandelay",
    "Aperture",
    "Black Mesa",
    "Wonka",
    "Gringotts",
    "Oscorp",
];
const COMPANY_B: &[&str] = &[
    "Tech",
    "Systems",
    "Consulting",
    "Logistics",
    "Health",
    "Energy",
    "Labs",
    "Group",
    "GmbH",
    "Partners",
    "Training",
    "Solutions",
];
const FREE_DOMAINS: &[&str] = &["gmail.com", "outlook.com", "yahoo.com", "web.de", "gmx.de"];
const TAGS: &[(&str, f64)] = &[
    ("certified", 0.30),
    ("vip", 0.05),
    ("partner", 0.08),
    ("lead", 0.40),
    ("customer", 0.25),
    ("webinar-2026", 0.15),
    ("iso-27001", 0.10),
    ("renewal-due", 0.07),
];
const COUNTRIES: &[&str] = &[
    "DE", "DE", "DE", "FR", "FR", "NL", "AT", "CH", "GB", "US", "ES", "IT", "PL", "SE",
];
const PLANS: &[&str] = &["basic", "pro", "enterprise"];

const FILTERS: &[(&str, &str)] = &[
    (
        "issue example",
        r#"tag = "certified" and attributes.country = "DE" and not clicked_within(90d)"#,
    ),
    (
        "list + consent + engagement",
        r#"list = 1 and consent("marketing") and opened_within(180d)"#,
    ),
    (
        "tags or number, date",
        r#"(tag in ["vip", "partner"] or attributes.score >= 80) and created_at >= 2025-01-01"#,
    ),
    (
        "text contains/starts_with",
        r#"company contains "tech" or email_domain = "gmail.com" or first_name starts_with "an""#,
    ),
    (
        "list status, never opened, no owner",
        r#"list_status(2) = "pending" and never_opened and not owner exists"#,
    ),
    ("everyone", ""),
];

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> anyhow::Result<()> {
    let n = env_num("SEGMENT_CONTACTS", 1_000_000);
    let runs = env_num("SEGMENT_RUNS", 15).max(1) as usize;
    let dir = tempfile::tempdir()?;
    let store = Arc::new(Store::open(dir.path())?);
    let mut rng = StdRng::seed_from_u64(2026);
    let t0 = now();
    let started = Instant::now();
    let batch = 10_000u64;
    let mut written = 0u64;
    while written < n {
        let k = batch.min(n - written);
        let mut contacts = Vec::with_capacity(k as usize);
        for i in written..written + k {
            let first = FIRST[rng.random_range(0..FIRST.len())];
            let last = LAST[rng.random_range(0..LAST.len())];
            let company = format!(
                "{} {}",
                COMPANY_A[rng.random_range(0..COMPANY_A.len())],
                COMPANY_B[rng.random_range(0..COMPANY_B.len())]
            );
            let domain = if rng.random_bool(0.4) {
                FREE_DOMAINS[rng.random_range(0..FREE_DOMAINS.len())].to_string()
            } else {
                format!("{}.example", company.to_lowercase().replace(' ', "-"))
            };
            let mut c = empty_contact(format!(
                "{}.{}.{i}@{domain}",
                first.to_lowercase(),
                last.to_lowercase().replace('\'', "")
            ));
            c.first_name = first.into();
            c.last_name = last.into();
            c.company = company;
            if rng.random_bool(0.5) {
                c.phone = format!("+49 30 {:07}", rng.random_range(0..10_000_000));
            }
            c.tags = TAGS
                .iter()
                .filter(|(_, p)| rng.random_bool(*p))
                .map(|(t, _)| t.to_string())
                .collect();
            c.attributes.insert(
                "country".into(),
                COUNTRIES[rng.random_range(0..COUNTRIES.len())].into(),
            );
            c.attributes
                .insert("score".into(), rng.random_range(0..100).into());
            if rng.random_bool(0.6) {
                c.attributes.insert(
                    "plan".into(),
                    PLANS[rng.random_range(0..PLANS.len())].into(),
                );
            }
            for list in 1..=4u64 {
                if rng.random_bool(0.35) {
                    let status = match rng.random_range(0..10) {
                        0 => MembershipStatus::Unsubscribed,
                        1 | 2 => MembershipStatus::Unconfirmed,
                        _ => MembershipStatus::Confirmed,
                    };
                    c.lists.push(Membership {
                        list_id: list,
                        status,
                        updated_at: t0,
                    });
                }
            }
            if rng.random_bool(0.6) {
                c.consents.push(Consent {
                    purpose: "marketing".into(),
                    source: "import".into(),
                    at: t0,
                    ip: None,
                    wording: None,
                    withdrawn: rng.random_bool(0.1),
                });
            }
            if rng.random_bool(0.5) {
                c.owner_id = Some(rng.random_range(2..22));
            }
            c.created_at = t0 - Duration::from_secs(rng.random_range(0..3 * 365 * 86_400));
            c.updated_at = c.created_at;
            contacts.push(c);
        }
        store.write_contacts(|tx| -> Result<(), StoreError> {
            for c in contacts {
                tx.insert(c)?;
            }
            Ok(())
        })?;
        written += k;
    }
    let write_s = started.elapsed().as_secs_f64();
    println!("contacts={n}");
    println!("write_contacts_per_s={:.0}", n as f64 / write_s);

    let started = Instant::now();
    let mut id = 1u64;
    while id <= n {
        let hi = (id + batch).min(n + 1);
        let mut events = Vec::new();
        for cid in id..hi {
            if rng.random_bool(0.7) {
                let ago = |r: &mut StdRng| Duration::from_secs(r.random_range(0..400 * 86_400));
                events.push((cid, EngagementKind::Sent, t0 - ago(&mut rng)));
                if rng.random_bool(0.5) {
                    events.push((cid, EngagementKind::Open, t0 - ago(&mut rng)));
                    if rng.random_bool(0.4) {
                        events.push((cid, EngagementKind::Click, t0 - ago(&mut rng)));
                    }
                }
            }
        }
        store.write(|wtx| -> Result<(), StoreError> {
            for (cid, kind, at) in events {
                record_engagement_in(wtx, cid, kind, at)?;
            }
            Ok(())
        })?;
        id = hi;
    }
    println!("write_engagement_s={:.1}", started.elapsed().as_secs_f64());

    let seg = Segments::new(store.clone());
    let started = Instant::now();
    let stats = seg.warm()?;
    let build = started.elapsed();
    println!("cold_cache_build_ms={:.0}", ms(build));
    println!("cache_contacts={}", stats.contacts);
    println!("cache_bytes={}", stats.bytes);
    println!(
        "cache_bytes_per_contact={:.0}",
        stats.bytes as f64 / stats.contacts.max(1) as f64
    );

    let admin = Actor {
        user_id: 1,
        email: "bench@example.com".into(),
        role: Role::Admin,
        ip: None,
        team: Vec::new(),
    };
    let sales = Actor {
        user_id: 5,
        role: Role::Sales,
        ..admin.clone()
    };
    let mut all_met = true;
    for (name, filter) in FILTERS {
        let matched = seg.count(&admin, filter)?;
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            std::hint::black_box(seg.count(&admin, filter)?);
            times.push(ms(t.elapsed()));
        }
        times.sort_by(f64::total_cmp);
        let (p50, p95) = (pct(&times, 0.5), pct(&times, 0.95));
        all_met &= p95 < TARGET_COUNT_MS;
        println!(
            "count name=\"{name}\" matched={matched} p50_ms={p50:.1} p95_ms={p95:.1} filter={filter:?}"
        );
    }
    let t = Instant::now();
    let scoped = seg.count(&sales, FILTERS[0].1)?;
    println!(
        "count_scoped_sales matched={scoped} ms={:.1}",
        ms(t.elapsed())
    );

    // one update, then the next count catches up from the change log
    store.write_contacts(|tx| -> Result<(), StoreError> {
        if let Some(mut c) = tx.get(n / 2)? {
            c.tags.push("vip".into());
            tx.update(c)?;
        }
        Ok(())
    })?;
    let t = Instant::now();
    seg.count(&admin, FILTERS[0].1)?;
    println!("count_after_update_ms={:.1}", ms(t.elapsed()));
    println!(
        "target count_p95_ms<{TARGET_COUNT_MS} met={}",
        if all_met { "yes" } else { "no" }
    );
    Ok(())
}
