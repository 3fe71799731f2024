//! Import and search benchmark on realistic contacts (see benches/README.md).
//!
//! ```text
//! MAILSTEAD_SKIP_UI_BUILD=1 cargo bench --bench import_search
//! BENCH_CONTACTS=100000 MAILSTEAD_SKIP_UI_BUILD=1 cargo bench --bench import_search
//! ```
//!
//! What it does, through the real code paths:
//! 1. generates N contacts as CSV with `../shared/tools/gen_contacts.py` (or, when `../shared`
//!    is absent, with a small deterministic generator of its own, and says so);
//! 2. imports them with `App::open` + `import::run` into a fresh data dir (store and search
//!    index, final index commit included) and reports contacts/s;
//! 3. cold start: `App::open` on the filled data dir (with the data files evicted from the page
//!    cache, then again with them cached), checking that the index was opened, not rebuilt;
//! 4. search latency over the shared 1,000-query mix (`../shared/bench/queries-1m.txt` at 1M)
//!    and over 1,000 field-filter queries, through `Contacts::search` (a page of 25 contacts, as
//!    `GET /api/v1/contacts` returns): p50/p99 overall and per kind;
//! 5. spawns the real `mailstead serve`, times spawn -> `/healthz` 200, reads its resident
//!    memory when idle, runs both query mixes over HTTPS and reads it again.
//!
//! Every figure is printed as `key=value` on its own line and also written to
//! `target/bench-import-search/results-N.txt`.

use anyhow::{Context, Result, bail};
use mailstead::app::App;
use mailstead::config::Settings;
use mailstead::import::{self, ImportOptions};
use mailstead::model::{ImportMode, Role};
use mailstead::policy::Actor;
use mailstead::search::SearchIndex;
use mailstead::store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::io::{BufRead, BufReader, BufWriter};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DEFAULT_CONTACTS: u64 = 1_000_000;
/// Page size of `GET /api/v1/contacts` when the console does not ask for another.
const PAGE: usize = 25;
const FILTER_QUERIES: usize = 1_000;
const IDLE_BEFORE_RSS: Duration = Duration::from_secs(5);
const BENCH_EMAIL: &str = "bench@example.com";
const BENCH_PASSWORD: &str = "bench-password-not-secret";

// Targets from the issue.
const TARGET_IMPORT_PER_S: f64 = 50_000.0;
const TARGET_SEARCH_P99_MS: f64 = 10.0;
const TARGET_START_MS: f64 = 1_000.0;
const TARGET_IDLE_RSS_MB: f64 = 150.0;

/// Prints figures as `key=value` and keeps them for the results file.
struct Report {
    lines: Vec<String>,
}

impl Report {
    fn fig(&mut self, key: &str, value: impl Display) {
        let line = format!("{key}={value}");
        println!("{line}");
        self.lines.push(line);
    }

    fn note(&mut self, text: &str) {
        let line = format!("# {text}");
        println!("{line}");
        self.lines.push(line);
    }
}

#[derive(Debug, Clone)]
struct Query {
    kind: String,
    text: String,
}

fn main() -> Result<()> {
    let n: u64 = match std::env::var("BENCH_CONTACTS") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .replace('_', "")
            .parse()
            .with_context(|| format!("BENCH_CONTACTS must be a whole number, not '{v}'"))?,
        _ => DEFAULT_CONTACTS,
    };
    if n == 0 {
        bail!("BENCH_CONTACTS must be at least 1");
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = match std::env::var_os("BENCH_WORK_DIR") {
        Some(d) => PathBuf::from(d),
        None => root.join("target").join("bench-import-search"),
    };
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let shared = root.join("..").join("shared");
    let shared = shared
        .join("tools")
        .join("gen_contacts.py")
        .exists()
        .then_some(shared);

    let mut r = Report { lines: Vec::new() };
    r.note("mailstead import + search benchmark");
    machine(&mut r);
    r.fig("contacts", n);

    // ---- data and queries ----
    let t = Instant::now();
    let (csv, data_source) = contacts_csv(&work, n, shared.as_deref())?;
    r.fig("data_source", data_source);
    if shared.is_none() {
        r.note(
            "../shared is absent: the data and queries come from this benchmark's own generator; figures do not compare with other systems",
        );
    }
    r.fig("csv_file", csv.display());
    r.fig("csv_bytes", file_len(&csv));
    r.fig("csv_ready_s", secs(t.elapsed()));
    let (mix, mix_source) = search_mix(&work, n, &csv, shared.as_deref())?;
    r.fig("search_mix_source", &mix_source);
    r.fig("search_mix_queries", mix.len());
    let filters = filter_mix(&csv, n)?;
    r.fig("filter_mix_queries", filters.len());

    // ---- import ----
    let data = work.join(format!("data-{n}"));
    if data.exists() {
        std::fs::remove_dir_all(&data).with_context(|| format!("removing {}", data.display()))?;
    }
    let token = run_import(&mut r, &data, &csv, n)?;
    let seg_ids = segment_ids(&data)?;
    r.fig("data_dir_bytes", dir_len(&data));
    r.fig("store_file_bytes", file_len(&Store::db_path(&data)));
    r.fig("index_dir_bytes", dir_len(&data.join("search")));

    // ---- cold start in process, then in-process search ----
    let evicted = evict_from_page_cache(&data);
    r.fig(
        "page_cache_eviction",
        if evicted {
            "dd iflag=nocache"
        } else {
            "unavailable"
        },
    );
    if let Some(b) = cached_bytes(&data) {
        r.fig("data_cached_bytes_before_cold_open", b);
    }
    let (app, open) = timed(|| App::open(settings(&data)?).map_err(anyhow::Error::from))?;
    let evicted_open_ms = ms(open);
    r.fig("cold_start_app_open_evicted_ms", fmt_ms(evicted_open_ms));
    check_not_rebuilt(&mut r, &app, &seg_ids, n)?;
    let actor = Actor::system();
    let first = run_in_process(&app, &actor, &mix)?;
    report_latencies(&mut r, "search_first_pass", &first);
    let mix_lat = run_in_process(&app, &actor, &mix)?;
    report_latencies(&mut r, "search", &mix_lat);
    let filter_lat = run_in_process(&app, &actor, &filters)?;
    report_latencies(&mut r, "filter", &filter_lat);
    let mut all_lat: Vec<Duration> = mix_lat.iter().map(|x| x.1).collect();
    all_lat.extend(filter_lat.iter().map(|x| x.1));
    let search_p99 = percentile_ms(&mut all_lat, 0.99);
    r.fig("search_and_filter_p99_ms", fmt_ms(search_p99));
    drop(app);

    let (app, open) = timed(|| App::open(settings(&data)?).map_err(anyhow::Error::from))?;
    r.fig("cold_start_app_open_cached_ms", fmt_ms(ms(open)));
    check_not_rebuilt(&mut r, &app, &seg_ids, n)?;
    drop(app);
    let (store, t_store) = timed(|| Store::open(&data).map_err(anyhow::Error::from))?;
    let (index, t_index) = timed(|| {
        SearchIndex::open(&mailstead::app::search_dir(&settings(&data)?), &store)
            .map_err(anyhow::Error::from)
    })?;
    r.fig("cold_start_store_open_ms", fmt_ms(ms(t_store)));
    r.fig("cold_start_index_open_ms", fmt_ms(ms(t_index)));
    drop(index);
    drop(store);

    // ---- the real server: start time and resident memory ----
    let serve = serve_bench(&mut r, &data, &token, &mix, &filters)?;

    // ---- summary ----
    let import_rate: f64 = r
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("import_rate_contacts_per_s="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    r.note("summary (target -> measured)");
    let met = |ok: bool| if ok { "yes" } else { "NO" };
    r.fig(
        "target_import_50k_per_s",
        format!(
            "{} ({import_rate:.0}/s)",
            met(import_rate >= TARGET_IMPORT_PER_S)
        ),
    );
    r.fig(
        "target_search_p99_under_10ms",
        format!(
            "{} (in-process p99 {:.2} ms over the mix and filters; HTTPS p99 {:.2} ms)",
            met(search_p99 < TARGET_SEARCH_P99_MS),
            search_p99,
            serve.http_p99_ms
        ),
    );
    r.fig(
        "target_start_under_1s",
        format!(
            "{} (App::open {:.0} ms cached / {:.0} ms evicted; serve ready {:.0} ms cached / {:.0} ms evicted)",
            met([ms(open), evicted_open_ms, serve.ready_cached_ms, serve.ready_evicted_ms]
                .iter()
                .all(|v| *v < TARGET_START_MS)),
            ms(open),
            evicted_open_ms,
            serve.ready_cached_ms,
            serve.ready_evicted_ms,
        ),
    );
    r.fig(
        "target_idle_rss_under_150mb",
        format!(
            "{} ({:.1} MB idle, {:.1} MB after the searches)",
            met(serve.idle_rss_mb < TARGET_IDLE_RSS_MB),
            serve.idle_rss_mb,
            serve.after_rss_mb
        ),
    );

    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        // other work on the machine inflates every figure: see the README
        r.fig(
            "loadavg_at_end",
            l.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        );
    }
    let out = work.join(format!("results-{n}.txt"));
    std::fs::write(&out, r.lines.join("\n") + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    println!("# results written to {}", out.display());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// machine, files, timing helpers

fn machine(r: &mut Report) {
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    r.fig("nproc", nproc);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    r.fig("cpu", cpu);
    if let Some(kb) = proc_kb("/proc/meminfo", "MemTotal:") {
        r.fig("mem_total_mb", format!("{:.0}", kb as f64 / 1024.0));
    }
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        r.fig(
            "loadavg_at_start",
            l.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        );
    }
    r.fig(
        "profile",
        if cfg!(debug_assertions) {
            "debug (numbers are not meaningful)"
        } else {
            "optimised"
        },
    );
}

fn proc_kb(file: &str, key: &str) -> Option<u64> {
    std::fs::read_to_string(file).ok()?.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    })
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn dir_files(p: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                dir_files(&path, out);
            } else {
                out.push(path);
            }
        }
    }
}

fn dir_len(p: &Path) -> u64 {
    let mut files = Vec::new();
    dir_files(p, &mut files);
    files.iter().map(|f| file_len(f)).sum()
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn fmt_ms(v: f64) -> String {
    format!("{v:.3}")
}

fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, Duration)> {
    let t = Instant::now();
    let v = f()?;
    Ok((v, t.elapsed()))
}

/// CPU time (user + system) used by this process so far.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // fields after the command name, which is in parentheses and may hold spaces
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let hz = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(100);
    Some(Duration::from_secs_f64((utime + stime) as f64 / hz as f64))
}

/// Drops the data files from the page cache (`dd iflag=nocache count=0` asks the kernel to
/// forget a file's clean pages), so that the next open reads from the disk as after a reboot.
/// Only our own files are touched.
fn evict_from_page_cache(dir: &Path) -> bool {
    let _ = Command::new("sync").status();
    let mut files = Vec::new();
    dir_files(dir, &mut files);
    let mut ok = !files.is_empty();
    for f in files {
        let status = Command::new("dd")
            .arg(format!("if={}", f.display()))
            .args(["iflag=nocache", "count=0", "status=none"])
            .stderr(Stdio::null())
            .status();
        ok &= status.is_ok_and(|s| s.success());
    }
    ok
}

/// Bytes of the data files in the page cache, when `fincore` (util-linux) is installed.
fn cached_bytes(dir: &Path) -> Option<u64> {
    let mut files = Vec::new();
    dir_files(dir, &mut files);
    let mut total = 0;
    for f in files {
        let out = Command::new("fincore")
            .args(["--bytes", "--noheadings", "--output", "RES"])
            .arg(&f)
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        total += String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u64>()
            .ok()?;
    }
    Some(total)
}

fn settings(data: &Path) -> Result<Settings> {
    let cli = vec![
        ("data_dir", data.display().to_string()),
        ("log", "warn".to_string()),
    ];
    Ok(Settings::load(None, &cli, &BTreeMap::new())?)
}

// ---------------------------------------------------------------------------------------------
// data

fn contacts_csv(work: &Path, n: u64, shared: Option<&Path>) -> Result<(PathBuf, String)> {
    let (path, source) = match shared {
        Some(_) => (
            work.join(format!("contacts-{n}.csv")),
            "../shared/tools/gen_contacts.py (seed 42)".to_string(),
        ),
        None => (
            work.join(format!("contacts-{n}-builtin.csv")),
            "builtin generator (../shared absent)".to_string(),
        ),
    };
    if path.exists() && file_len(&path) > 0 {
        return Ok((path, source));
    }
    let tmp = path.with_extension("csv.partial");
    match shared {
        Some(s) => {
            let out = std::fs::File::create(&tmp)?;
            let status = Command::new("python3")
                .arg(s.join("tools").join("gen_contacts.py"))
                .arg(n.to_string())
                .stdout(out)
                .status()
                .context("running python3 ../shared/tools/gen_contacts.py")?;
            if !status.success() {
                bail!("gen_contacts.py failed: {status}");
            }
        }
        None => builtin_contacts(&tmp, n)?,
    }
    std::fs::rename(&tmp, &path)?;
    Ok((path, source))
}

/// xorshift64*: small, deterministic, good enough for picking test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

const B_FIRST: &str = "James Mary Robert Patricia John Jennifer Michael Linda David Sofia Mateo Lucia Hugo Emma \
    Noah Yuki Wei Priya Aisha Omar Olga Ivan Ingrid Lars Giulia Marco Pierre Camille Diego \
    Amara";
const B_LAST: &str = "Smith Johnson Williams Brown Garcia Miller Davis Martinez Wilson Anderson Taylor Thomas \
    Moore Martin Lee White Harris Clark Lewis Walker Young King Wright Scott Nguyen Mitchell \
    Muller Schmidt Schneider Fischer Weber Rossi Russo Dubois Tanaka Suzuki Wang Zhang Patel \
    Sharma Kowalski Nowak Horvat Jensen Hansen Johansson Okafor Mensah Haddad Khan";
const B_ORG1: &str = "Acme Apex Summit Vertex Northwind Contoso Globex Initech Hooli Cyberdyne";
const B_ORG2: &str = "Training Academy Consulting Systems Health Labs Partners Group";
const B_TAGS: &str = "certified renewal-due webinar newsletter corporate lead alumni vip";
const B_DOMAINS: &str = "gmail.com yahoo.com outlook.com gmx.de proton.me";

/// Fallback data with the same columns as gen_contacts.py (used only without ../shared).
fn builtin_contacts(path: &Path, n: u64) -> Result<()> {
    let words = |s: &'static str| s.split_whitespace().collect::<Vec<_>>();
    let (first, last, org1, org2, tags_all, domains) = (
        words(B_FIRST),
        words(B_LAST),
        words(B_ORG1),
        words(B_ORG2),
        words(B_TAGS),
        words(B_DOMAINS),
    );
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut w = csv::Writer::from_writer(BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(path)?,
    ));
    w.write_record([
        "Email Address",
        "First Name",
        "Last Name",
        "Company",
        "Job Title",
        "Country",
        "City",
        "Phone",
        "Tags",
        "Signup Date",
    ])?;
    for i in 0..n {
        // first names skewed towards the front of the list
        let nf = first.len() as u64;
        let f = first[(rng.below(nf) * rng.below(nf) / nf) as usize];
        let l = *rng.pick(&last);
        let org = if rng.below(10) < 8 {
            format!("{} {}", rng.pick(&org1), rng.pick(&org2))
        } else {
            String::new()
        };
        let domain = if !org.is_empty() && rng.below(2) == 0 {
            format!("{}.com", org.to_lowercase().replace(' ', ""))
        } else {
            rng.pick(&domains).to_string()
        };
        let email = format!("{}.{}{i}@{domain}", f.to_lowercase(), l.to_lowercase());
        let mut tags: Vec<&str> = (0..rng.below(3)).map(|_| *rng.pick(&tags_all)).collect();
        tags.sort_unstable();
        tags.dedup();
        let phone = format!(
            "+{} {} {}",
            1 + rng.below(99),
            100 + rng.below(900),
            1_000_000 + rng.below(9_000_000)
        );
        let date = format!(
            "20{:02}-{:02}-{:02}",
            15 + rng.below(12),
            1 + rng.below(12),
            1 + rng.below(28)
        );
        w.write_record([
            email.as_str(),
            f,
            l,
            &org,
            "Training Manager",
            "DE",
            "Berlin",
            &phone,
            &tags.join(";"),
            &date,
        ])?;
    }
    w.flush()?;
    Ok(())
}

/// Email, first name, last name, company and tags of the rows at `wanted` (sorted indexes).
struct Row {
    email: String,
    first: String,
    last: String,
    company: String,
    tags: Vec<String>,
}

fn read_rows(csv_path: &Path, wanted: &BTreeSet<u64>) -> Result<Vec<Row>> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(csv_path)
        .with_context(|| format!("reading {}", csv_path.display()))?;
    let header = rdr.headers()?.clone();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
            .with_context(|| format!("{} has no column '{name}'", csv_path.display()))
    };
    let (ce, cf, cl, cc, ct) = (
        col("Email Address")?,
        col("First Name")?,
        col("Last Name")?,
        col("Company")?,
        col("Tags")?,
    );
    let mut out = Vec::with_capacity(wanted.len());
    let mut rec = csv::StringRecord::new();
    let mut i = 0u64;
    let last = wanted.iter().next_back().copied().unwrap_or(0);
    while i <= last && rdr.read_record(&mut rec)? {
        if wanted.contains(&i) {
            let get = |c: usize| rec.get(c).unwrap_or("").to_string();
            out.push(Row {
                email: get(ce),
                first: get(cf),
                last: get(cl),
                company: get(cc),
                tags: get(ct)
                    .split(';')
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect(),
            });
        }
        i += 1;
    }
    Ok(out)
}

fn read_kinds_tsv(path: &Path) -> Result<Vec<Query>> {
    let f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for line in BufReader::new(f).lines() {
        let line = line?;
        if let Some((kind, text)) = line.split_once('\t') {
            out.push(Query {
                kind: kind.to_string(),
                text: text.to_string(),
            });
        }
    }
    if out.is_empty() {
        bail!("{} holds no queries", path.display());
    }
    Ok(out)
}

/// The 1,000-query mix: the shared file at 1M (drawn from that exact data), else made with
/// the shared gen_queries.py from this data, else a builtin mix of the same shape.
fn search_mix(
    work: &Path,
    n: u64,
    csv: &Path,
    shared: Option<&Path>,
) -> Result<(Vec<Query>, String)> {
    if let Some(s) = shared {
        let fixed = s.join("bench").join("queries-1m-kinds.tsv");
        if n == 1_000_000 && fixed.exists() {
            return Ok((
                read_kinds_tsv(&fixed)?,
                "../shared/bench/queries-1m.txt (kinds from queries-1m-kinds.tsv)".into(),
            ));
        }
        let script = s.join("tools").join("gen_queries.py");
        if script.exists() {
            let dir = work.join(format!("queries-{n}"));
            let tsv = dir.join("queries-kinds.tsv");
            if !tsv.exists() {
                std::fs::create_dir_all(&dir)?;
                let status = Command::new("python3")
                    .arg(&script)
                    .arg(csv)
                    .arg(&dir)
                    .stderr(Stdio::null())
                    .status()
                    .context("running ../shared/tools/gen_queries.py")?;
                if !status.success() {
                    bail!("gen_queries.py failed: {status}");
                }
            }
            return Ok((
                read_kinds_tsv(&tsv)?,
                format!("../shared/tools/gen_queries.py on this {n}-contact data"),
            ));
        }
    }
    // builtin: 40% last name, 20% 4-letter prefix, 20% first + last, 10% company word, 10% email
    let mut rng = Rng(7);
    let mut kinds: Vec<&str> = Vec::new();
    for (k, c) in [
        ("last", 400),
        ("prefix", 200),
        ("fullname", 200),
        ("company", 100),
        ("email", 100),
    ] {
        kinds.extend(std::iter::repeat_n(k, c));
    }
    let wanted: BTreeSet<u64> = (0..3000).map(|_| rng.below(n)).collect();
    let rows = read_rows(csv, &wanted)?;
    let mut out = Vec::new();
    let mut i = 0usize;
    for kind in kinds {
        let row = loop {
            let row = &rows[i % rows.len()];
            i += 1;
            if kind != "company" || !row.company.is_empty() {
                break row;
            }
        };
        let text = match kind {
            "last" => row.last.clone(),
            "prefix" => row.last.chars().take(4).collect(),
            "fullname" => format!("{} {}", row.first, row.last),
            "company" => row.company.split(' ').next().unwrap_or("").to_string(),
            _ => row.email.split('@').next().unwrap_or("").to_string(),
        };
        out.push(Query {
            kind: kind.to_string(),
            text,
        });
    }
    Ok((out, "builtin mix (../shared absent)".into()))
}

/// 1,000 field-filter queries drawn from the data: 200 each of `tag:T`, `company:WORD`,
/// `last_name:NAME`, `tag:T company:WORD` and `NAME tag:T` (a free word plus a filter).
fn filter_mix(csv: &Path, n: u64) -> Result<Vec<Query>> {
    let mut rng = Rng(0x00C0_FFEE_1234_5678);
    let wanted: BTreeSet<u64> = (0..4 * FILTER_QUERIES).map(|_| rng.below(n)).collect();
    let rows = read_rows(csv, &wanted)?;
    let all_tags: Vec<String> = rows
        .iter()
        .flat_map(|r| r.tags.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if all_tags.is_empty() {
        bail!("the data has no tags to filter on");
    }
    const KINDS: [&str; 5] = [
        "f_tag",
        "f_company",
        "f_last_name",
        "f_tag_company",
        "f_word_tag",
    ];
    let mut out = Vec::with_capacity(FILTER_QUERIES);
    let mut i = 0usize;
    while out.len() < FILTER_QUERIES {
        let kind = KINDS[out.len() % KINDS.len()];
        let row = &rows[i % rows.len()];
        i += 1;
        let words: Vec<&str> = row.company.split_whitespace().collect();
        let word = (!words.is_empty()).then(|| rng.pick(&words).to_lowercase());
        if (kind == "f_company" || kind == "f_tag_company") && word.is_none() {
            continue;
        }
        let tag = match row.tags.as_slice() {
            [] => rng.pick(&all_tags).clone(),
            t => rng.pick(t).clone(),
        };
        let text = match kind {
            "f_tag" => format!("tag:{tag}"),
            "f_company" => format!("company:{}", word.unwrap_or_default()),
            "f_last_name" => format!("last_name:{}", row.last),
            "f_tag_company" => format!("tag:{tag} company:{}", word.unwrap_or_default()),
            _ => format!("{} tag:{tag}", row.last),
        };
        out.push(Query {
            kind: kind.to_string(),
            text,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// import

/// Imports the CSV into a fresh data dir, reports the figures and returns an API token for
/// the HTTP part.
fn run_import(r: &mut Report, data: &Path, csv: &Path, n: u64) -> Result<String> {
    let (app, open) = timed(|| App::open(settings(data)?).map_err(anyhow::Error::from))?;
    r.fig("empty_app_open_ms", fmt_ms(ms(open)));
    let actor = Actor::system();
    let mode = ImportMode::Upsert;
    let mut job = app
        .store
        .create_import(mailstead::model::ImportJob::new(mode, None, None))?;
    let opts = ImportOptions {
        mode,
        list_id: None,
        source: "import:bench.csv".into(),
    };
    let input = BufReader::with_capacity(1 << 20, std::fs::File::open(csv)?);
    let mut marks: Vec<(u64, Duration)> = Vec::new();
    let cpu0 = cpu_time();
    let started = Instant::now();
    let result = import::run(&app.contacts, &actor, input, &opts, &mut job, |j| {
        marks.push((j.processed, started.elapsed()));
    });
    let elapsed = started.elapsed();
    let cpu = cpu_time().zip(cpu0).map(|(a, b)| a.saturating_sub(b));
    job.finish(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
    app.store.save_import(&job)?;
    result?;

    let rate = job.created as f64 / elapsed.as_secs_f64();
    r.fig("import_rows_processed", job.processed);
    r.fig("import_contacts_created", job.created);
    r.fig("import_rows_skipped", job.skipped);
    r.fig("import_seconds", secs(elapsed));
    r.fig("import_rate_contacts_per_s", format!("{rate:.0}"));
    if let Some(cpu) = cpu {
        r.fig("import_cpu_seconds", secs(cpu));
        r.fig(
            "import_cpu_cores_busy",
            format!("{:.2}", cpu.as_secs_f64() / elapsed.as_secs_f64()),
        );
    }
    // rate over the first and the last tenth of the file: does it slow down as the store grows?
    let at = |frac: f64| {
        marks
            .iter()
            .find(|(p, _)| *p as f64 >= frac * n as f64)
            .copied()
    };
    if let (Some((p0, t0)), Some((p1, t1))) = (at(0.1), at(0.9)) {
        r.fig(
            "import_rate_first_10pct_per_s",
            format!("{:.0}", p0 as f64 / t0.as_secs_f64()),
        );
        let last = marks.iter().rev().nth(1).copied().unwrap_or((p1, t1));
        if last.0 > p1 {
            r.fig(
                "import_rate_last_10pct_per_s",
                format!(
                    "{:.0}",
                    (last.0 - p1) as f64 / (last.1 - t1).as_secs_f64().max(1e-9)
                ),
            );
        }
    }
    if marks.len() >= 2 {
        // the last callback comes after the final flush and the index commit
        let (_, before) = marks[marks.len() - 2];
        let (_, end) = marks[marks.len() - 1];
        r.fig(
            "import_final_flush_and_commit_ms",
            format!("{:.0}", ms(end - before)),
        );
    }
    if job.created != n {
        bail!(
            "expected {n} contacts created, got {} ({} errors: {:?})",
            job.created,
            job.error_count,
            job.errors.first()
        );
    }
    let docs = app.search.num_docs();
    r.fig("index_docs", docs);
    if docs != n {
        bail!("the index holds {docs} documents after importing {n} contacts");
    }
    r.fig(
        "index_segments_after_import",
        app.search.index().searchable_segment_ids()?.len(),
    );
    if let Some(kb) = proc_kb("/proc/self/status", "VmHWM:") {
        r.fig(
            "import_process_peak_rss_mb",
            format!("{:.0}", kb as f64 / 1024.0),
        );
    }

    // an admin and an API token for the HTTP searches (not part of the import time)
    let user = app
        .accounts
        .create_user(BENCH_EMAIL, Role::Admin, BENCH_PASSWORD)?;
    let (_, token) = app
        .accounts
        .create_token(&Actor::system(), user.id, "bench")?;
    Ok(token)
}

fn segment_ids(data: &Path) -> Result<Vec<String>> {
    let store = Store::open(data)?;
    let ix = SearchIndex::open(&data.join("search"), &store)?;
    let mut ids: Vec<String> = ix
        .index()
        .searchable_segment_ids()?
        .into_iter()
        .map(|s| s.uuid_string())
        .collect();
    ids.sort();
    Ok(ids)
}

/// The index must have been opened as it was: same segments, nothing replayed.
fn check_not_rebuilt(r: &mut Report, app: &App, before: &[String], n: u64) -> Result<()> {
    let mut ids: Vec<String> = app
        .search
        .index()
        .searchable_segment_ids()?
        .into_iter()
        .map(|s| s.uuid_string())
        .collect();
    ids.sort();
    let head = app.store.last_contact_change()?;
    if ids != before || app.search.committed_seq() != head || app.search.num_docs() != n {
        bail!(
            "the search index was rebuilt or changed at open ({} segments before, {} after; committed {} of {head})",
            before.len(),
            ids.len(),
            app.search.committed_seq()
        );
    }
    r.fig("cold_start_index_rebuilt", "no");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// search

/// Runs each query once through `Contacts::search` (parse, index search with count, load the
/// page of contacts from the store); returns (kind, latency, total hits).
fn run_in_process(
    app: &App,
    actor: &Actor,
    queries: &[Query],
) -> Result<Vec<(String, Duration, u64)>> {
    let mut out = Vec::with_capacity(queries.len());
    for q in queries {
        let t = Instant::now();
        let page = app
            .contacts
            .search(actor, &q.text, None, PAGE)
            .with_context(|| format!("searching {:?}", q.text))?;
        let d = t.elapsed();
        out.push((q.kind.clone(), d, page.total));
    }
    Ok(out)
}

fn percentile_ms(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    // nearest rank
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    ms(v[rank - 1])
}

fn report_latencies(r: &mut Report, prefix: &str, results: &[(String, Duration, u64)]) {
    let mut all: Vec<Duration> = results.iter().map(|x| x.1).collect();
    let mean = all.iter().map(|d| ms(*d)).sum::<f64>() / all.len().max(1) as f64;
    r.fig(
        &format!("{prefix}_p50_ms"),
        fmt_ms(percentile_ms(&mut all, 0.50)),
    );
    r.fig(
        &format!("{prefix}_p99_ms"),
        fmt_ms(percentile_ms(&mut all, 0.99)),
    );
    r.fig(
        &format!("{prefix}_max_ms"),
        fmt_ms(percentile_ms(&mut all, 1.0)),
    );
    r.fig(&format!("{prefix}_mean_ms"), fmt_ms(mean));
    let zero = results.iter().filter(|x| x.2 == 0).count();
    r.fig(&format!("{prefix}_zero_hit_queries"), zero);
    let mut by_kind: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    let mut hits: BTreeMap<&str, u64> = BTreeMap::new();
    for (k, d, h) in results {
        by_kind.entry(k).or_default().push(*d);
        *hits.entry(k).or_default() += h;
    }
    for (k, mut v) in by_kind {
        let count = v.len();
        r.fig(
            &format!("{prefix}_{k}_p50_p99_ms"),
            format!(
                "{} {} (n={count}, mean hits {:.0})",
                fmt_ms(percentile_ms(&mut v, 0.50)),
                fmt_ms(percentile_ms(&mut v, 0.99)),
                hits[k] as f64 / count as f64
            ),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// the real server

struct ServeFigures {
    ready_cached_ms: f64,
    ready_evicted_ms: f64,
    idle_rss_mb: f64,
    after_rss_mb: f64,
    http_p99_ms: f64,
}

fn free_port() -> Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    fn spawn(data: &Path) -> Result<(Server, Instant)> {
        let addr = free_port()?;
        let log = data.with_extension("serve.log");
        let err = std::fs::File::create(&log)?;
        let started = Instant::now();
        let child = Command::new(env!("CARGO_BIN_EXE_mailstead"))
            .arg("serve")
            .arg("--data-dir")
            .arg(data)
            .arg("--listen")
            .arg(addr.to_string())
            .env_clear()
            .env("MAILSTEAD_LOG", "info")
            .env("MAILSTEAD_LOG_FORMAT", "json")
            // the searches below are one client: lift the per-token API rate limit
            .env("MAILSTEAD_API_REQUESTS_PER_SECOND", "1000000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .context("spawning mailstead serve")?;
        Ok((Server { child, addr, log }, started))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `/healthz` answers 200; returns the time since `started`.
    fn wait_healthy(&mut self, rt: &tokio::runtime::Runtime, started: Instant) -> Result<Duration> {
        let deadline = Duration::from_secs(300);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "mailstead serve exited ({status}); its log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            let probe = rt.block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(2),
                    mailstead::tls::probe_healthz(self.addr),
                )
                .await
            });
            if let Ok(Ok(200)) = probe {
                return Ok(started.elapsed());
            }
            if started.elapsed() > deadline {
                bail!("mailstead serve did not become healthy within {deadline:?}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// `startup_ms` from the server's own "mailstead is ready" log line (JSON logs).
    fn logged_startup_ms(&self) -> Option<u64> {
        let log = std::fs::read_to_string(&self.log).ok()?;
        let line = log.lines().find(|l| l.contains("mailstead is ready"))?;
        let v = line.split("\"startup_ms\":").nth(1)?;
        v.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    }

    fn rss(&self) -> (f64, f64, f64, f64) {
        let f = format!("/proc/{}/status", self.pid());
        let mb = |k: &str| proc_kb(&f, k).map_or(f64::NAN, |kb| kb as f64 / 1024.0);
        (mb("VmRSS:"), mb("RssAnon:"), mb("RssFile:"), mb("VmHWM:"))
    }

    /// SIGTERM (a clean stop, so the store is closed properly), then wait.
    fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!("mailstead serve did not stop within 60 s of SIGTERM");
    }
}

fn report_rss(r: &mut Report, prefix: &str, s: &Server) -> f64 {
    let (rss, anon, file, hwm) = s.rss();
    r.fig(&format!("{prefix}_rss_mb"), format!("{rss:.1}"));
    r.fig(
        &format!("{prefix}_rss_anon_file_peak_mb"),
        format!("{anon:.1} {file:.1} {hwm:.1}"),
    );
    rss
}

/// One `GET /api/v1/contacts?q=...` over the kept-alive connection: (latency, total hits).
/// The latency covers the request and reading the whole body, not parsing it here.
async fn http_search(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    q: &str,
) -> Result<(Duration, u64)> {
    let limit = PAGE.to_string();
    let req = client
        .get(base)
        .bearer_auth(token)
        .query(&[("q", q), ("limit", limit.as_str())]);
    let t = Instant::now();
    let resp = req.send().await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    let d = t.elapsed();
    if !status.is_success() {
        bail!(
            "GET /api/v1/contacts?q={q} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    Ok((d, v["total"].as_u64().unwrap_or(0)))
}

fn serve_bench(
    r: &mut Report,
    data: &Path,
    token: &str,
    mix: &[Query],
    filters: &[Query],
) -> Result<ServeFigures> {
    mailstead::tls::install_crypto_provider();
    // the certificate the first start would generate, made now so that start times compare
    mailstead::tls::ensure(data, None, None, &[])?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    // 1. data evicted from the page cache, as after a reboot
    evict_from_page_cache(data);
    let (mut s, started) = Server::spawn(data)?;
    let ready_evicted = ms(s.wait_healthy(&rt, started)?);
    r.fig("serve_ready_evicted_ms", format!("{ready_evicted:.0}"));
    if let Some(v) = s.logged_startup_ms() {
        r.fig("serve_logged_startup_evicted_ms", v);
    }
    std::thread::sleep(IDLE_BEFORE_RSS);
    let idle = report_rss(r, "serve_idle", &s);

    let cert = std::fs::read(data.join("tls").join("cert.pem"))?;
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&cert)?)
        .resolve("localhost", s.addr)
        .build()?;
    let base = format!("https://localhost:{}/api/v1/contacts", s.addr.port());
    // one request to open the connection (TLS handshake) and check the token
    rt.block_on(http_search(&client, &base, token, "warmup"))?;
    let mut http = Vec::new();
    for q in mix.iter().chain(filters) {
        let (d, total) = rt.block_on(http_search(&client, &base, token, &q.text))?;
        http.push((q.kind.clone(), d, total));
    }
    let (mix_http, filter_http) = http.split_at(mix.len());
    report_latencies(r, "http_search", mix_http);
    report_latencies(r, "http_filter", filter_http);
    let mut all: Vec<Duration> = http.iter().map(|x| x.1).collect();
    let http_p99 = percentile_ms(&mut all, 0.99);
    r.fig("http_search_and_filter_p99_ms", fmt_ms(http_p99));
    std::thread::sleep(Duration::from_secs(1));
    let after = report_rss(r, "serve_after_searches", &s);
    s.stop()?;

    // 2. page cache warm: the usual restart
    let (mut s, started) = Server::spawn(data)?;
    let ready_cached = ms(s.wait_healthy(&rt, started)?);
    r.fig("serve_ready_cached_ms", format!("{ready_cached:.0}"));
    if let Some(v) = s.logged_startup_ms() {
        r.fig("serve_logged_startup_cached_ms", v);
    }
    s.stop()?;

    Ok(ServeFigures {
        ready_cached_ms: ready_cached,
        ready_evicted_ms: ready_evicted,
        idle_rss_mb: idle,
        after_rss_mb: after,
        http_p99_ms: http_p99,
    })
}
