//! CRM benchmark (`cargo bench --bench crm`): with 100,000 leads, 20,000 accounts and 50,000
//! opportunities owned by 20 sales people (plus unassigned leads), the latency of the
//! filtered first page of a list and of the pipeline board (per-stage counts, sums,
//! weighted sums and the first cards), for an admin (sees everything) and a sales user (sees
//! a twentieth), through the service the HTTP handlers call (`mailstead::crm::Crm`).
//!
//! Also 100,000 activities (40% tasks with due dates) for the tasks-due list.
//!
//! Environment: `CRM_LEADS`, `CRM_ACCOUNTS`, `CRM_OPPS`, `CRM_ACTIVITIES` (defaults above), `CRM_RUNS`
//! (measured calls per query, default 200). Prints `key=value` lines; the figures are the
//! `p95_ms` values (target < 50 ms).

use mailstead::contacts::Contacts;
use mailstead::crm::model::{
    Account, Activity, ActivityKind, Address, Lead, LeadStatus, Opportunity, default_stages,
};
use mailstead::crm::{Crm, ListQuery};
use mailstead::model::{Role, now};
use mailstead::policy::Actor;
use mailstead::search::SearchIndex;
use mailstead::store::Store;
use std::sync::Arc;
use std::time::Instant;

const SALES_PEOPLE: u64 = 20;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn lead(i: usize) -> Lead {
    Lead {
        first_name: ["Amira", "Ben", "Chloé", "Dmitri", "Eun-ji", "Farah"][i % 6].into(),
        last_name: format!("Learner{i}"),
        email: format!("learner{i}@company{}.example", i % 5000),
        job_title: "Quality manager".into(),
        company: format!("Company {} Training", i % 5000),
        industry: ["pharma", "energy", "logistics"][i % 3].into(),
        company_size: "51-200".into(),
        country: "DE".into(),
        source: "webinar".into(),
        status: LeadStatus::ALL[i % 4],
        score: (i % 100) as i64,
        // one in ten unassigned, the rest spread over the sales people
        assigned_to: (!i.is_multiple_of(10)).then_some(1 + i as u64 % SALES_PEOPLE),
        ..Lead::blank()
    }
}

fn account(i: usize) -> Account {
    let t = now();
    Account {
        id: 0,
        name: format!("Company {i} Training"),
        domain: format!("company{i}.example"),
        industry: "training".into(),
        size: "51-200".into(),
        address: Address::default(),
        parent_id: None,
        owner_id: Some(1 + i as u64 % SALES_PEOPLE),
        created_at: t,
        updated_at: t,
    }
}

fn opportunity(i: usize, accounts: usize) -> Opportunity {
    let t = now();
    let stages = default_stages();
    let stage = &stages[i % stages.len()];
    Opportunity {
        id: 0,
        name: format!("ISO course {i}"),
        account_id: Some(1 + (i % accounts) as u64),
        contact_id: None,
        programme: "ISO 9001 lead auditor".into(),
        amount: Some(format!("{}.50", 1000 + i % 9000)),
        currency: ["EUR", "USD", "GBP"][i % 3].into(),
        stage: stage.name.clone(),
        probability: stage.probability,
        expected_close: Some("2027-06-30".into()),
        owner_id: Some(1 + i as u64 % SALES_PEOPLE),
        lost_reason: String::new(),
        lead_id: None,
        created_at: t,
        updated_at: t,
    }
}

fn activity(i: usize, leads: usize) -> Activity {
    let t = now();
    let kinds = [
        ActivityKind::Task,
        ActivityKind::Call,
        ActivityKind::Task,
        ActivityKind::Note,
        ActivityKind::Email,
    ];
    let kind = kinds[i % kinds.len()];
    Activity {
        id: 0,
        kind,
        subject: format!("Follow up {i}"),
        body: String::new(),
        record: Some(format!("lead:{}", 1 + i % leads.max(1))),
        // tasks due over two years, one in three done
        due: (kind == ActivityKind::Task)
            .then(|| format!("{}-{:02}-{:02}", 2026 + i % 2, 1 + i % 12, 1 + i % 28)),
        done: i.is_multiple_of(3),
        // by blocks of the kinds' cycle, so that every sales person has tasks
        owner_id: Some(1 + (i / kinds.len()) as u64 % SALES_PEOPLE),
        created_at: t,
        updated_at: t,
    }
}

fn seed<T>(store: &Store, n: usize, make: impl Fn(usize) -> T)
where
    T: mailstead::store::crm::CrmRecord,
{
    let mut i = 0;
    while i < n {
        let end = (i + 5000).min(n);
        store
            .write_crm(|tx| -> Result<(), mailstead::store::StoreError> {
                for k in i..end {
                    tx.insert(make(k))?;
                }
                Ok(())
            })
            .expect("seed");
        i = end;
    }
}

fn measure(name: &str, runs: usize, mut f: impl FnMut() -> usize) {
    for _ in 0..5 {
        f();
    }
    let mut times = Vec::with_capacity(runs);
    let mut items = 0;
    for _ in 0..runs {
        let t = Instant::now();
        items = f();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1];
    println!(
        "{name}: p50_ms={:.2} p95_ms={:.2} max_ms={:.2} items={items}",
        pct(0.50),
        pct(0.95),
        pct(1.0)
    );
}

fn main() {
    let (n_leads, n_accounts, n_opps) = (
        env("CRM_LEADS", 100_000),
        env("CRM_ACCOUNTS", 20_000),
        env("CRM_OPPS", 50_000),
    );
    let n_activities = env("CRM_ACTIVITIES", 100_000);
    let runs = env("CRM_RUNS", 200);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(dir.path()).expect("store"));
    let search = Arc::new(SearchIndex::open(&dir.path().join("search"), &store).expect("index"));
    let contacts = Arc::new(Contacts::new(store.clone(), search));
    let crm = Crm::new(store.clone(), contacts);
    let t = Instant::now();
    seed(&store, n_accounts, account);
    seed(&store, n_leads, lead);
    seed(&store, n_opps, |i| opportunity(i, n_accounts));
    seed(&store, n_activities, |i| activity(i, n_leads));
    println!(
        "seeded leads={n_leads} accounts={n_accounts} opportunities={n_opps} activities={n_activities} in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let admin = Actor {
        user_id: 100,
        email: "admin@example.test".into(),
        role: Role::Admin,
        ip: None,
        team: Vec::new(),
    };
    let sales = Actor {
        user_id: 7,
        email: "sales@example.test".into(),
        role: Role::Sales,
        ip: None,
        team: Vec::new(),
    };
    for (who, actor) in [("admin", &admin), ("sales", &sales)] {
        let q = ListQuery {
            status: Some("qualified".into()),
            limit: Some(25),
            ..Default::default()
        };
        measure(&format!("{who} leads?status=qualified"), runs, || {
            crm.leads(actor, &q).expect("list").items.len()
        });
        let q = ListQuery {
            q: Some("compan".into()),
            status: Some("new".into()),
            limit: Some(25),
            ..Default::default()
        };
        measure(&format!("{who} leads?q=compan&status=new"), runs, || {
            crm.leads(actor, &q).expect("list").items.len()
        });
        let q = ListQuery {
            min_score: Some(90),
            sort: Some("-score".into()),
            limit: Some(25),
            ..Default::default()
        };
        measure(
            &format!("{who} leads?min_score=90&sort=-score"),
            runs,
            || crm.leads(actor, &q).expect("list").items.len(),
        );
        let q = ListQuery {
            kind: Some("task".into()),
            done: Some(false),
            due_before: Some("2026-12-31".into()),
            sort: Some("due".into()),
            limit: Some(25),
            ..Default::default()
        };
        measure(
            &format!("{who} tasks due (activities?kind=task&done=false&due_before)"),
            runs,
            || crm.activities(actor, &q).expect("list").items.len(),
        );
        let q = ListQuery {
            stage: Some("proposal".into()),
            limit: Some(25),
            ..Default::default()
        };
        measure(&format!("{who} opportunities?stage=proposal"), runs, || {
            crm.opportunities(actor, &q).expect("list").items.len()
        });
        measure(&format!("{who} pipeline board (10 cards)"), runs, || {
            let b = crm.board(actor, None, 10).expect("board");
            b.stages.iter().map(|s| s.count as usize).sum()
        });
    }
}
