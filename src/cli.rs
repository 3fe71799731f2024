//! The command line: `serve` and the operator commands. This is the binary's edge, where
//! errors become `anyhow` messages for a person.

use crate::app::App;
use crate::config::{Settings, Source};
use crate::model::{ImportMode, Role};
use crate::policy::Actor;
use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Parser, Debug)]
#[command(
    name = "mailstead",
    version,
    about = "Self-hosted email campaigns and CRM in one binary",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Data directory (store, search index, TLS material) [env: MAILSTEAD_DATA_DIR] [default: ./data]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML configuration file [env: MAILSTEAD_CONFIG]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the appliance: HTTPS console and API.
    Serve {
        /// Address to listen on [env: MAILSTEAD_LISTEN] [default: 0.0.0.0:8443]
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<String>,
    },
    /// Manage console users.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Import data.
    #[command(subcommand)]
    Import(ImportCmd),
    /// Write a consistent backup of the store to FILE (works while the server runs).
    Backup { file: PathBuf },
    /// Replace the store with a backup (the server must be stopped).
    Restore { file: PathBuf },
    /// Exit 0 when the local server answers /healthz with 200 (for Docker HEALTHCHECK).
    Healthcheck {
        /// Address of the server [default: the configured listen address]
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<String>,
    },
    /// Show or check the effective configuration (secrets redacted).
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Bounce and complaint messages.
    #[command(subcommand)]
    Bounce(BounceCmd),
    /// The audit trail: verify its hash chain, export it (works while the server runs).
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Data-subject rights: export or erase everything held about a contact (works while
    /// the server runs).
    #[command(subcommand)]
    Gdpr(GdprCmd),
    /// DKIM signing keys.
    #[command(subcommand)]
    Dkim(DkimCmd),
    /// Print the SPF, DKIM, DMARC and return-path records to publish for a sending domain.
    DnsRecords {
        domain: String,
        /// DMARC aggregate report address.
        #[arg(long)]
        dmarc_rua: Option<String>,
    },
    /// Email templates: list the library, check a template file, render with sample data.
    #[command(subcommand)]
    Templates(TemplatesCmd),
}

#[derive(Subcommand, Debug)]
pub enum TemplatesCmd {
    /// List the templates shipped in the binary.
    List,
    /// Compile and validate template files (or the whole library); errors are located.
    Check { files: Vec<PathBuf> },
    /// Render the library (or FILEs) with each template's sample data into DIR: NAME.html,
    /// NAME.txt and index.json. The brand comes from the settings.
    Render {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        files: Vec<PathBuf>,
        /// Use a demonstration brand instead of the configured one.
        #[arg(long)]
        sample_brand: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DkimCmd {
    /// Generate a signing key for a domain, keep it in the data dir and print its DNS record.
    Generate {
        #[arg(long)]
        domain: String,
        #[arg(long)]
        selector: String,
        #[arg(long, default_value = "rsa", value_parser = ["rsa", "ed25519"])]
        algorithm: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum GdprCmd {
    /// Print everything held about a contact as JSON (GDPR Art. 20); recorded in the audit
    /// trail.
    Export { id: u64 },
    /// Erase a contact and every trace of its address (GDPR Art. 17); the address stays
    /// suppressed as a keyed hash. Irreversible.
    Erase { id: u64 },
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Check every entry's hashes and links; exit 1 naming the first entry that fails.
    Verify,
    /// Print the entries (oldest first) as JSON lines or CSV; redirect to a file.
    Export {
        /// Only entries at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Only entries about this record (kind:id, e.g. contact:42).
        #[arg(long)]
        record: Option<String>,
        /// Only entries by this user id (or cli, system, anonymous).
        #[arg(long)]
        actor: Option<String>,
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "csv"])]
        format: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum BounceCmd {
    /// Classify a bounce, complaint or auto-reply message (.eml; '-' reads standard input).
    /// Prints one JSON object per recipient and line.
    Parse { file: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create a user; the password is read from standard input.
    Create {
        #[arg(long)]
        email: String,
        /// admin, manager, sales, marketing or viewer
        #[arg(long)]
        role: String,
    },
    /// List users.
    List,
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Create an API token for a user; the token is the last line printed.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ImportCmd {
    /// Import contacts from a CSV file (Mailchimp, listmonk or any export with an email column).
    Contacts {
        file: PathBuf,
        /// Add the contacts to this list (created when missing).
        #[arg(long, value_name = "NAME")]
        list: Option<String>,
        /// upsert updates existing contacts; create skips them.
        #[arg(long, default_value = "upsert", value_parser = ["upsert", "create"])]
        mode: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Print every setting, its value and where it came from.
    Show,
}

fn process_env() -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("MAILSTEAD_"))
        .collect()
}

pub fn load_settings(common: &Common, extra: &[(&'static str, String)]) -> Result<Settings> {
    let mut cli: Vec<(&'static str, String)> = extra.to_vec();
    if let Some(d) = &common.data_dir {
        cli.push(("data_dir", d.display().to_string()));
    }
    let s = Settings::load(common.config.as_deref(), &cli, &process_env())?;
    Ok(s)
}

pub fn init_logging(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if settings.log_json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    for w in &settings.warnings {
        tracing::warn!("{w}");
    }
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve { listen } => {
            let extra: Vec<_> = listen.into_iter().map(|l| ("listen", l)).collect();
            let settings = load_settings(&cli.common, &extra)?;
            init_logging(&settings);
            crate::server::run(settings)
        }
        Command::User(UserCmd::Create { email, role }) => {
            let role: Role = role.parse().map_err(anyhow::Error::msg)?;
            let settings = load_settings(&cli.common, &[])?;
            let read_password = || -> Result<String> {
                let mut password = String::new();
                std::io::stdin()
                    .read_to_string(&mut password)
                    .context("reading the password from standard input")?;
                Ok(password.trim_end_matches(['\r', '\n']).to_string())
            };
            match held_or_open(settings)? {
                Held::Open(app) => {
                    let u = app.accounts.create_user(&email, role, &read_password()?)?;
                    println!("created user {} ({}) with id {}", u.email, u.role, u.id);
                }
                Held::ByServer(dir) => {
                    let req = crate::control::Request::UserCreate {
                        email,
                        role,
                        password: read_password()?,
                    };
                    println!("{}", crate::control::request(&dir, &req)?.message);
                }
            }
            Ok(())
        }
        Command::User(UserCmd::List) => {
            let app = open(&cli.common)?;
            for u in app.store.users()? {
                println!("{}\t{}\t{}", u.id, u.email, u.role);
            }
            Ok(())
        }
        Command::Token(TokenCmd::Create { email, name }) => {
            let settings = load_settings(&cli.common, &[])?;
            match held_or_open(settings)? {
                Held::Open(app) => {
                    let email = email.trim().to_lowercase();
                    let user = app
                        .store
                        .user_by_email(&email)?
                        .with_context(|| format!("no user with the email {email}"))?;
                    let (t, secret) =
                        app.accounts
                            .create_token(&Actor::system(), user.id, &name)?;
                    println!(
                        "created token {} '{}' for {} (shown once; store it now):",
                        t.id, t.name, user.email
                    );
                    println!("{secret}");
                }
                Held::ByServer(dir) => {
                    let reply = crate::control::request(
                        &dir,
                        &crate::control::Request::TokenCreate { email, name },
                    )?;
                    println!("{}", reply.message);
                    println!("{}", reply.secret.unwrap_or_default());
                }
            }
            Ok(())
        }
        Command::Import(ImportCmd::Contacts { file, list, mode }) => {
            import_contacts(&cli.common, &file, list.as_deref(), &mode)
        }
        Command::Backup { file } => backup(&cli.common, &file),
        Command::Audit(cmd) => audit(&cli.common, cmd),
        Command::Gdpr(cmd) => {
            let req = match cmd {
                GdprCmd::Export { id } => crate::control::Request::GdprExport { id },
                GdprCmd::Erase { id } => crate::control::Request::GdprErase { id },
            };
            let text = match held_or_open(load_settings(&cli.common, &[])?)? {
                Held::Open(app) => crate::control::gdpr(&app, &req).map_err(anyhow::Error::msg)?,
                Held::ByServer(dir) => crate::control::request(&dir, &req)?.message,
            };
            println!("{text}");
            Ok(())
        }
        Command::Restore { file } => {
            let settings = load_settings(&cli.common, &[])?;
            let rows = crate::store::Store::restore_from(&settings.data_dir, &file)?;
            let search = crate::app::search_dir(&settings);
            if search.exists() {
                std::fs::remove_dir_all(&search)
                    .with_context(|| format!("removing {}", search.display()))?;
            }
            println!(
                "restored {rows} records from {}; the search index is rebuilt at the next start",
                file.display()
            );
            Ok(())
        }
        Command::Healthcheck { listen } => {
            let extra: Vec<_> = listen.into_iter().map(|l| ("listen", l)).collect();
            let settings = load_settings(&cli.common, &extra)?;
            healthcheck(settings.listen)
        }
        Command::Bounce(BounceCmd::Parse { file }) => {
            // read at most one byte past the limit: a huge file is refused, not loaded
            let cap = crate::bounce::MAX_MESSAGE_BYTES as u64 + 1;
            let mut raw = Vec::new();
            if file.as_os_str() == "-" {
                std::io::stdin().take(cap).read_to_end(&mut raw)?;
            } else {
                std::fs::File::open(&file)
                    .and_then(|f| f.take(cap).read_to_end(&mut raw))
                    .with_context(|| format!("cannot read {}", file.display()))?;
            }
            let parsed = crate::bounce::parse(&raw)
                .with_context(|| format!("{} could not be parsed", file.display()))?;
            for r in &parsed.recipients {
                println!("{}", r.to_cli_json());
            }
            Ok(())
        }
        Command::Dkim(DkimCmd::Generate {
            domain,
            selector,
            algorithm,
        }) => {
            let settings = load_settings(&cli.common, &[])?;
            let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
            let key = if algorithm == "ed25519" {
                crate::delivery::dkim::generate_ed25519()?
            } else {
                crate::delivery::dkim::generate_rsa()?
            };
            // validates domain and selector before anything is written
            let pem = key.private_pem().as_bytes();
            let check = crate::delivery::Signer::new(&domain, &selector, pem);
            if algorithm == "rsa" {
                check?;
            }
            let path =
                crate::outbound::dkim_key_path(&settings.data_dir, &domain, &selector, &algorithm);
            if path.exists() {
                bail!(
                    "a {algorithm} key for selector '{selector}' of {domain} already exists ({}); choose a new selector to rotate keys",
                    path.display()
                );
            }
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            }
            {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .with_context(|| format!("writing {}", path.display()))?;
                f.write_all(pem)?;
                f.sync_all()?;
            }
            println!(
                "stored the private key in {} (it never leaves the data dir); restart the server to sign with it.",
                path.display()
            );
            println!("publish this TXT record:");
            let record = crate::delivery::dkim::DnsRecord {
                name: crate::delivery::dkim::record_name(&selector, &domain),
                rtype: crate::delivery::dkim::RecordType::Txt,
                priority: None,
                value: key.txt_value.clone(),
                purpose: "DKIM",
            };
            println!("{}", record.zone_line());
            Ok(())
        }
        Command::DnsRecords { domain, dmarc_rua } => {
            let settings = load_settings(&cli.common, &[])?;
            let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
            let keys = crate::outbound::dkim_keys(&settings.data_dir, &domain)?;
            if keys.is_empty() {
                eprintln!(
                    "note: no DKIM key for {domain} yet; create one with: mailstead dkim generate --domain {domain} --selector s1"
                );
            }
            let key_refs: Vec<(&str, &[u8])> = keys
                .iter()
                .map(|k| (k.selector.as_str(), k.pem.as_slice()))
                .collect();
            let bounce = if settings.delivery.bounce_domain.ends_with(&domain) {
                settings.delivery.bounce_domain.clone()
            } else {
                format!("bounces.{domain}")
            };
            let includes: Vec<&str> = Vec::new();
            let records =
                crate::delivery::dkim::domain_records(&crate::delivery::dkim::DomainSetup {
                    domain: &domain,
                    bounce_domain: &bounce,
                    mail_host: &settings.delivery.hostname,
                    sending_ips: &[],
                    spf_includes: &includes,
                    dkim_keys: &key_refs,
                    dmarc_rua: dmarc_rua.as_deref(),
                    dmarc_policy: "none",
                })?;
            for r in records {
                println!("; {}", r.purpose);
                println!("{}", r.zone_line());
            }
            Ok(())
        }
        Command::Templates(cmd) => templates(&cli.common, cmd),
        Command::Config(ConfigCmd::Show) => {
            let settings = load_settings(&cli.common, &[])?;
            for (k, v, src) in settings.describe() {
                let src = match src {
                    Source::Default => "default",
                    Source::File => "file",
                    Source::Env => "env",
                    Source::Cli => "command line",
                };
                println!("{k} = {v:?}    # {src}");
            }
            for w in settings.warnings {
                println!("# warning: {w}");
            }
            Ok(())
        }
    }
}

fn open(common: &Common) -> Result<App> {
    let settings = load_settings(common, &[])?;
    init_logging(&settings);
    Ok(App::open(settings)?)
}

fn import_contacts(common: &Common, file: &Path, list: Option<&str>, mode: &str) -> Result<()> {
    let app = open(common)?;
    let actor = Actor::system();
    let list_id = match list {
        None => None,
        Some(name) => Some(match app.store.list_by_name(name)? {
            Some(l) => l.id,
            None => {
                let l = app
                    .contacts
                    .create_list(&actor, name, "", crate::model::OptIn::Single)?;
                eprintln!("created list '{}' (id {})", l.name, l.id);
                l.id
            }
        }),
    };
    let mode = if mode == "create" {
        ImportMode::Create
    } else {
        ImportMode::Upsert
    };
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut job = crate::model::ImportJob::new(mode, list_id, None);
    job = app.store.create_import(job)?;
    let opts = crate::import::ImportOptions {
        mode,
        list_id,
        source: format!(
            "import:{}",
            file.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default()
        ),
    };
    let started = std::time::Instant::now();
    let reader = bar.wrap_read(std::io::BufReader::with_capacity(1 << 20, f));
    let result = crate::import::run(&app.contacts, &actor, reader, &opts, &mut job, |j| {
        let rate = j.processed as f64 / started.elapsed().as_secs_f64().max(0.001);
        bar.set_message(format!("{} rows, {:.0}/s", j.processed, rate));
    });
    bar.finish_and_clear();
    job.finish(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
    app.audit.save_import(&actor, &job)?;
    result?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "imported {}: {} rows, {} created, {} updated, {} skipped in {:.1}s ({:.0} rows/s)",
        file.display(),
        job.processed,
        job.created,
        job.updated,
        job.skipped,
        secs,
        job.processed as f64 / secs.max(0.001)
    );
    for e in job.errors.iter().take(20) {
        println!("  line {}: {}", e.line, e.message);
    }
    if job.error_count > 20 {
        println!("  ... and {} more row errors", job.error_count - 20);
    }
    Ok(())
}

enum Held {
    Open(Box<App>),
    ByServer(PathBuf),
}

/// Opens the data dir, or reports that a running server holds it (its control socket can
/// then carry the command).
fn held_or_open(settings: Settings) -> Result<Held> {
    let dir = settings.data_dir.clone();
    init_logging(&settings);
    match App::open(settings) {
        Ok(app) => Ok(Held::Open(Box::new(app))),
        Err(crate::app::StartError::Store(crate::store::StoreError::Locked(_))) => {
            Ok(Held::ByServer(dir))
        }
        Err(e) => Err(e.into()),
    }
}

fn backup(common: &Common, file: &Path) -> Result<()> {
    let settings = load_settings(common, &[])?;
    let dest = if file.is_absolute() {
        file.to_path_buf()
    } else {
        std::env::current_dir()?.join(file)
    };
    match crate::store::Store::open(&settings.data_dir) {
        Ok(store) => {
            let rows = store.backup_to(&dest)?;
            println!("backup written to {} ({rows} records)", dest.display());
        }
        Err(crate::store::StoreError::Locked(_)) => {
            let reply = crate::control::request(
                &settings.data_dir,
                &crate::control::Request::Backup { path: dest.clone() },
            )
            .context(
                "the data dir is held by a running server, and asking it for the backup failed",
            )?;
            println!(
                "backup written by the running server to {} ({})",
                dest.display(),
                reply.message
            );
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// `mailstead audit …`: on the store directly, or through a running server's control socket.
fn audit(common: &Common, cmd: AuditCmd) -> Result<()> {
    let settings = load_settings(common, &[])?;
    let store = match crate::store::Store::open(&settings.data_dir) {
        Ok(store) => Some(std::sync::Arc::new(store)),
        Err(crate::store::StoreError::Locked(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let via_server =
        |req: crate::control::Request| crate::control::request(&settings.data_dir, &req);
    match cmd {
        AuditCmd::Verify => {
            let verdict = match store {
                Some(store) => {
                    let report = crate::audit::Audit::new(store)?.verify(&Actor::system())?;
                    (report.intact(), crate::audit::describe_report(&report))
                }
                None => match via_server(crate::control::Request::AuditVerify) {
                    Ok(reply) => (true, reply.message),
                    Err(crate::control::ControlError::Remote(m)) => (false, m),
                    Err(e) => return Err(e.into()),
                },
            };
            match verdict {
                (true, m) => {
                    println!("{m}");
                    Ok(())
                }
                (false, m) => bail!("{m}"),
            }
        }
        AuditCmd::Export {
            since,
            record,
            actor,
            format,
        } => {
            use std::io::Write;
            match store {
                Some(store) => {
                    let f = crate::audit::filter(
                        record.as_deref(),
                        actor.as_deref(),
                        since.as_deref(),
                    )?;
                    let stdout = std::io::stdout();
                    let mut out = std::io::BufWriter::new(stdout.lock());
                    let n = crate::audit::Audit::new(store)?.export(
                        &Actor::system(),
                        &f,
                        format.parse()?,
                        &mut out,
                    )?;
                    out.flush()?;
                    eprintln!("exported {n} audit entries");
                }
                None => {
                    let reply = via_server(crate::control::Request::AuditExport {
                        record,
                        actor,
                        since,
                        format: Some(format),
                    })?;
                    std::io::stdout().write_all(reply.message.as_bytes())?;
                }
            }
            Ok(())
        }
    }
}

fn healthcheck(listen: SocketAddr) -> Result<()> {
    let target = if listen.ip().is_unspecified() {
        let ip: std::net::IpAddr = if listen.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        SocketAddr::new(ip, listen.port())
    } else {
        listen
    };
    crate::tls::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = rt.block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            crate::tls::probe_healthz(target),
        )
        .await
    });
    match status {
        Ok(Ok(200)) => {
            println!("healthy");
            Ok(())
        }
        Ok(Ok(code)) => bail!("unhealthy: /healthz answered {code}"),
        Ok(Err(e)) => bail!("unhealthy: {e}"),
        Err(_) => bail!("unhealthy: no answer from {target} within 5 s"),
    }
}

fn templates(common: &Common, cmd: TemplatesCmd) -> Result<()> {
    use crate::templates::{Brand, library};
    let load = |files: &[PathBuf]| -> Result<Vec<library::LibraryTemplate>> {
        if files.is_empty() {
            return library::all()
                .into_iter()
                .map(|t| t.map_err(|(p, e)| anyhow::anyhow!("{p}: {e}")))
                .collect();
        }
        files
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read {}", f.display()))?;
                let id = f
                    .file_stem()
                    .map(|s| format!("custom/{}", s.to_string_lossy()))
                    .unwrap_or_else(|| "custom/template".into());
                library::parse(&id, &text).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))
            })
            .collect()
    };
    match cmd {
        TemplatesCmd::List => {
            for t in load(&[])? {
                let kind = serde_json::to_value(t.kind)?;
                println!("{}\t{}\t{}", t.id, kind.as_str().unwrap_or(""), t.name);
            }
            Ok(())
        }
        TemplatesCmd::Check { files } => {
            let settings = load_settings(common, &[])?;
            // the configured brand when there is one, else the demonstration brand
            let brand = Brand::from_settings(&settings)?;
            let brand = if brand.company_name.is_empty() {
                eprintln!(
                    "note: brand_company_name is not set; checking with the demonstration brand"
                );
                Brand::sample()
            } else {
                brand
            };
            let mut failed = 0;
            for t in load(&files)? {
                let r = crate::templates::compile(&t.source, &brand, t.kind)
                    .and_then(|c| c.validate(&t.sample));
                match r {
                    Ok(_) => println!("ok      {}", t.id),
                    Err(e) => {
                        failed += 1;
                        println!("error   {}: {e}", t.id);
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} template(s) have errors");
            }
            Ok(())
        }
        TemplatesCmd::Render {
            out,
            files,
            sample_brand,
        } => {
            let settings = load_settings(common, &[])?;
            let brand = if sample_brand {
                Brand::sample()
            } else {
                Brand::from_settings(&settings)?
            };
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let links: std::sync::Arc<dyn crate::templates::LinkBuilder> =
                std::sync::Arc::new(crate::templates::PlainLinks {
                    base_url: settings.public_url.clone(),
                });
            let mut index = Vec::new();
            for (n, t) in load(&files)?.into_iter().enumerate() {
                let compiled = crate::templates::compile(&t.source, &brand, t.kind)
                    .with_context(|| format!("template {}", t.id))?;
                compiled
                    .validate(&t.sample)
                    .with_context(|| format!("template {}", t.id))?;
                let contact = &t.sample.contact;
                let r = compiled.render(
                    &crate::templates::Recipient {
                        contact,
                        data: &t.sample.data,
                        target: crate::templates::LinkTarget {
                            campaign_id: "preview".into(),
                            contact_id: n as u64 + 1,
                            email: contact.email.clone(),
                            message: None,
                        },
                    },
                    &minijinja::Value::from_serialize(&t.sample.campaign),
                    &links,
                )?;
                let file = t.id.replace('/', "--");
                std::fs::write(out.join(format!("{file}.html")), &r.html)?;
                std::fs::write(out.join(format!("{file}.txt")), &r.text)?;
                index.push(serde_json::json!({
                    "id": t.id, "name": t.name, "kind": t.kind, "subject": r.subject,
                    "preheader": r.preheader, "html": format!("{file}.html"), "text": format!("{file}.txt"),
                }));
            }
            std::fs::write(out.join("index.json"), serde_json::to_vec_pretty(&index)?)?;
            println!("rendered {} templates into {}", index.len(), out.display());
            Ok(())
        }
    }
}
