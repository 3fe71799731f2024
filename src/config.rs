//! Settings: every option is declared once in [`OPTIONS`] with its default, its meaning and
//! whether it is secret. Values are layered built-in default < TOML file < environment
//! (`MAILSTEAD_<KEY>`, and `MAILSTEAD_<KEY>_FILE` for secrets) < command line. Unknown keys
//! in the file are errors; all problems are collected and reported together.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub struct OptionSpec {
    pub key: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
    pub secret: bool,
}

macro_rules! opt {
    ($key:literal, $default:literal, $doc:literal) => {
        OptionSpec {
            key: $key,
            default: $default,
            doc: $doc,
            secret: false,
        }
    };
    ($key:literal, $default:literal, $doc:literal, secret) => {
        OptionSpec {
            key: $key,
            default: $default,
            doc: $doc,
            secret: true,
        }
    };
}

/// Every setting the appliance reads. `config/mailstead.toml` documents the same list.
pub const OPTIONS: &[OptionSpec] = &[
    opt!(
        "data_dir",
        "./data",
        "Directory for the store, the search index and TLS material."
    ),
    opt!(
        "listen",
        "0.0.0.0:8443",
        "Address and port of the HTTPS console and API."
    ),
    opt!(
        "public_url",
        "",
        "Base URL used in links in mail and pages; empty means https://<listen>."
    ),
    opt!(
        "tls_cert",
        "",
        "PEM certificate chain; empty means a self-signed certificate kept in <data_dir>/tls."
    ),
    opt!("tls_key", "", "PEM private key for tls_cert."),
    opt!(
        "log",
        "info",
        "Log filter, e.g. info or mailstead=debug,info."
    ),
    opt!("log_format", "text", "Log format: text or json."),
    opt!(
        "admin_email",
        "",
        "Creates this admin at first start when no user exists (with admin_password)."
    ),
    opt!(
        "admin_password",
        "",
        "Password for admin_email (use MAILSTEAD_ADMIN_PASSWORD_FILE).",
        secret
    ),
    opt!(
        "max_body_bytes",
        "1048576",
        "Largest JSON request body accepted, in bytes."
    ),
    opt!(
        "max_import_bytes",
        "1073741824",
        "Largest CSV upload accepted, in bytes."
    ),
    opt!("session_ttl_hours", "12", "How long a console login lasts."),
    opt!(
        "login_attempts_per_minute",
        "10",
        "Login attempts allowed per client address per minute (per account: half)."
    ),
    opt!(
        "api_requests_per_second",
        "100",
        "API requests allowed per token or session per second (bursts of twice that)."
    ),
    opt!(
        "sender_address",
        "",
        "From address of the appliance's own mail (sign-up confirmations); empty means noreply@<hostname>."
    ),
    opt!(
        "campaign_messages_per_second",
        "0",
        "Queue campaign mail at most this fast (0: as fast as delivery takes it); for warming up a new sending address."
    ),
    opt!(
        "tracking_enabled",
        "true",
        "Open pixels and click redirects in campaign mail (each campaign can also turn them off)."
    ),
    opt!(
        "hostname",
        "",
        "This host's name for SMTP EHLO and Message-IDs; empty means the host of public_url."
    ),
    opt!(
        "dns_server",
        "",
        "DNS server for MX look-ups as ADDRESS:PORT; empty means the system resolver."
    ),
    opt!("smtp_port", "25", "Port used on MX hosts."),
    opt!(
        "allow_private_targets",
        "false",
        "Allow delivery to loopback and private addresses (tests and labs only)."
    ),
    opt!(
        "relay",
        "",
        "Send everything through a smarthost: smtp://user:pass@host:587 or smtps://user:pass@host:465.",
        secret
    ),
    opt!(
        "bounce_domain",
        "",
        "Domain of the VERP return path (its MX points here); empty means the hostname."
    ),
    opt!(
        "require_tls_domains",
        "",
        "Comma-separated recipient domains that must get verified TLS."
    ),
    opt!(
        "shaping_file",
        "",
        "TOML file with traffic-shaping limits (global rate, per-site profiles); empty means the built-in profiles."
    ),
    opt!(
        "retry_max_hours",
        "72",
        "Give up on a deferred recipient after this many hours."
    ),
    opt!(
        "delivery_concurrency",
        "64",
        "Deliveries in progress at once."
    ),
    opt!(
        "max_message_bytes",
        "10485760",
        "Largest message accepted for sending, in bytes."
    ),
    opt!(
        "soft_bounce_limit",
        "5",
        "Suppress an address after this many soft bounces within soft_bounce_days."
    ),
    opt!(
        "soft_bounce_days",
        "30",
        "Window, in days, over which soft bounces are counted."
    ),
    opt!(
        "bounce_listen",
        "",
        "Address:port of the inbound SMTP listener for bounces and complaints (e.g. 0.0.0.0:2525); empty means off."
    ),
    opt!(
        "bounce_addresses",
        "postmaster,abuse",
        "Local parts (or full addresses) at the bounce domain that accept feedback besides VERP return paths."
    ),
    opt!(
        "bounce_max_bytes",
        "10485760",
        "Largest message the bounce listener accepts, in bytes."
    ),
    opt!(
        "bounce_messages_per_minute",
        "120",
        "Messages the bounce listener accepts per client address per minute."
    ),
    opt!(
        "bounce_mailbox",
        "",
        "Poll a bounce mailbox: pop3s://user:pass@host:995 or pop3://user:pass@host:110 (STARTTLS required unless private targets are allowed).",
        secret
    ),
    opt!(
        "bounce_mailbox_interval_secs",
        "60",
        "Seconds between polls of bounce_mailbox."
    ),
    opt!(
        "webhook_tolerance_secs",
        "300",
        "ESP webhooks: refuse signed requests whose timestamp is further than this from now (replays)."
    ),
    opt!(
        "webhook_requests_per_second",
        "50",
        "ESP webhooks: requests accepted per client address per second (bursts of twice that)."
    ),
    opt!(
        "ses_topic_arns",
        "",
        "Comma-separated SNS topic ARNs whose SES notifications are accepted at /api/v1/webhooks/ses; * accepts any topic; empty disables the endpoint."
    ),
    opt!(
        "sendgrid_public_key",
        "",
        "SendGrid Event Webhook verification key (base64 as SendGrid shows it, or PEM); empty disables /api/v1/webhooks/sendgrid."
    ),
    opt!(
        "mailgun_signing_key",
        "",
        "Mailgun HTTP webhook signing key; empty disables /api/v1/webhooks/mailgun.",
        secret
    ),
    opt!(
        "postmark_username",
        "",
        "User name of the HTTP Basic credentials in the Postmark webhook URL."
    ),
    opt!(
        "postmark_password",
        "",
        "Password of the Postmark webhook URL's credentials; empty disables /api/v1/webhooks/postmark.",
        secret
    ),
    opt!(
        "generic_webhook_secret",
        "",
        "HMAC-SHA256 secret of the generic webhook format; empty disables /api/v1/webhooks/generic.",
        secret
    ),
    opt!(
        "webhook_concurrency",
        "8",
        "Outgoing webhook requests in progress at once."
    ),
    opt!(
        "webhook_retry_base_ms",
        "10000",
        "First retry delay of a failed webhook delivery; doubles per attempt (with jitter), capped at one hour."
    ),
    opt!(
        "webhook_retry_max_hours",
        "24",
        "Give up on a webhook delivery after this many hours."
    ),
    opt!(
        "webhook_disable_after",
        "20",
        "Disable a webhook subscription after this many consecutive failed attempts."
    ),
    opt!(
        "webhook_retention_days",
        "7",
        "Keep finished webhook deliveries, their attempt log and handled events this many days."
    ),
    opt!(
        "retention_inactive_contacts_days",
        "0",
        "Erase contacts without a confirmed list membership and without any activity (change, membership, consent) for this many days; 0 turns it off. Runs daily."
    ),
    opt!(
        "retention_unconverted_leads_days",
        "0",
        "Delete CRM leads that were never converted and show no change or activity for this many days (e.g. 730 for 24 months); 0 turns it off. Runs daily."
    ),
    opt!(
        "retention_delivery_log_days",
        "0",
        "Delete finished deliveries (and messages left without any) from the delivery log after this many days; 0 keeps them. Runs daily."
    ),
    opt!(
        "postal_address",
        "",
        "Postal address shown in the footer of every email; required for bulk mail. Lines separated by newlines or ' | '."
    ),
    opt!(
        "brand_company_name",
        "",
        "Company name in the email header (when there is no logo) and footer."
    ),
    opt!(
        "brand_logo_url",
        "",
        "https:// URL of the logo shown in the email header (160 px wide); empty shows the company name."
    ),
    opt!(
        "brand_primary_color",
        "#1d4e89",
        "Brand colour for buttons and links (#rrggbb); darkened where needed to keep WCAG AA contrast."
    ),
    opt!(
        "brand_accent_color",
        "#b45309",
        "Accent colour for the header stripe and small headings (#rrggbb)."
    ),
    opt!(
        "brand_font_stack",
        "-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif",
        "CSS font stack of emails (no web fonts are loaded)."
    ),
    opt!(
        "brand_social_links",
        "",
        "Footer links as Label=https://… separated by commas, e.g. LinkedIn=https://…,YouTube=https://…"
    ),
    opt!(
        "brand_website",
        "",
        "Company website (logo link and footer)."
    ),
    opt!(
        "brand_support_email",
        "",
        "Support address named in the footer."
    ),
    opt!(
        "brand_lang",
        "en",
        "Language tag of emails (the html lang attribute), e.g. en or en-GB."
    ),
];

/// Settings of the ESP webhook receiver (`/api/v1/webhooks/{provider}`). A provider whose
/// secret is absent has its endpoint disabled.
#[derive(Debug, Clone, Default)]
pub struct WebhookSettings {
    pub tolerance_secs: u64,
    pub requests_per_second: u32,
    /// Accepted SNS topics; `*` accepts any; empty disables SES.
    pub ses_topic_arns: Vec<String>,
    /// DER SubjectPublicKeyInfo of SendGrid's P-256 verification key.
    pub sendgrid_public_key: Option<Vec<u8>>,
    pub mailgun_signing_key: Option<Secret>,
    /// User name and password.
    pub postmark: Option<(String, Secret)>,
    pub generic_secret: Option<Secret>,
}

/// Settings of the outgoing webhook dispatcher.
#[derive(Debug, Clone)]
pub struct WebhookOutSettings {
    pub concurrency: usize,
    pub retry_base_ms: u64,
    pub retry_max_hours: u64,
    pub disable_after: u32,
    pub retention_days: u64,
}

/// Settings of the feedback loop: soft-bounce rules, the inbound bounce listener and
/// mailbox polling.
#[derive(Debug, Clone)]
pub struct FeedbackSettings {
    pub soft_bounce_limit: u32,
    pub soft_bounce_days: u32,
    pub listen: Option<SocketAddr>,
    /// Full addresses (lower case) that accept feedback besides VERP return paths.
    pub addresses: Vec<String>,
    pub max_bytes: usize,
    pub messages_per_minute: u32,
    pub mailbox: Option<Secret>,
    pub mailbox_interval_secs: u64,
}

/// Settings of the delivery engine.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub hostname: String,
    pub dns_server: Option<SocketAddr>,
    pub smtp_port: u16,
    pub allow_private_targets: bool,
    pub relay: Option<Secret>,
    pub bounce_domain: String,
    pub require_tls_domains: Vec<String>,
    pub retry_max_hours: u64,
    /// Traffic-shaping overrides (see config/shaping.example.toml).
    pub shaping_file: Option<PathBuf>,
    pub concurrency: usize,
    pub max_message_bytes: usize,
}

/// Retention rules the appliance runs daily (0 days = off).
#[derive(Debug, Clone, Default)]
pub struct RetentionSettings {
    pub inactive_contacts_days: u32,
    pub delivery_log_days: u32,
    pub unconverted_leads_days: u32,
}

/// Environment variables that are not settings but are known (tests, tooling).
const OTHER_ENV: &[&str] = &[
    "MAILSTEAD_CONFIG",
    "MAILSTEAD_REQUIRE_PEERS",
    "MAILSTEAD_BIN",
    "MAILSTEAD_SKIP_UI_BUILD",
    // tests only: makes lead conversion fail after a step (see crm::fail_point)
    "MAILSTEAD_TEST_FAIL_CONVERT_AFTER",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Default,
    File,
    Env,
    Cli,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration problems:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

/// A secret value: never printed by Debug.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "\"<redacted>\""
        })
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub public_url: String,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub log: String,
    pub log_json: bool,
    pub admin_email: Option<String>,
    pub admin_password: Secret,
    pub max_body_bytes: usize,
    pub max_import_bytes: u64,
    pub session_ttl_hours: u64,
    pub login_attempts_per_minute: u32,
    pub api_requests_per_second: u32,
    pub tracking_enabled: bool,
    pub campaign_messages_per_second: u32,
    pub sender_address: String,
    pub delivery: DeliverySettings,
    pub feedback: FeedbackSettings,
    pub webhooks: WebhookSettings,
    pub webhooks_out: WebhookOutSettings,
    pub retention: RetentionSettings,
    /// Raw values with where each came from, for `config show` and later modules.
    pub raw: BTreeMap<&'static str, (String, Source)>,
    pub warnings: Vec<String>,
}

fn env_name(key: &str) -> String {
    format!("MAILSTEAD_{}", key.to_ascii_uppercase())
}

fn toml_to_string(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Settings {
    /// Loads settings. `file` is the `--config` path (or `MAILSTEAD_CONFIG`); `cli` holds the
    /// values given on the command line. `env` is the process environment (a parameter so
    /// tests need not touch the real one).
    pub fn load(
        file: Option<&Path>,
        cli: &[(&'static str, String)],
        env: &BTreeMap<String, String>,
    ) -> Result<Settings, ConfigError> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut raw: BTreeMap<&'static str, (String, Source)> = OPTIONS
            .iter()
            .map(|o| (o.key, (o.default.to_string(), Source::Default)))
            .collect();

        let file = file.map(Path::to_path_buf).or_else(|| {
            env.get("MAILSTEAD_CONFIG")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        });
        if let Some(path) = &file {
            match std::fs::read_to_string(path) {
                Err(e) => errors.push(format!("cannot read config file {}: {e}", path.display())),
                Ok(text) => match text.parse::<toml::Table>() {
                    Err(e) => errors.push(format!(
                        "config file {} is not valid TOML: {e}",
                        path.display()
                    )),
                    Ok(table) => {
                        for (k, v) in table {
                            match OPTIONS.iter().find(|o| o.key == k) {
                                None => errors.push(format!(
                                    "unknown setting '{k}' in {} (see config/mailstead.toml for the list)",
                                    path.display()
                                )),
                                Some(o) => match toml_to_string(&v) {
                                    Some(s) => {
                                        raw.insert(o.key, (s, Source::File));
                                    }
                                    None => errors.push(format!("setting '{k}' in {} must be a string, number or boolean", path.display())),
                                },
                            }
                        }
                    }
                },
            }
        }

        for o in OPTIONS {
            let name = env_name(o.key);
            if let Some(v) = env.get(&name) {
                raw.insert(o.key, (v.clone(), Source::Env));
            }
            let file_var = format!("{name}_FILE");
            if let Some(p) = env.get(&file_var) {
                if !o.secret {
                    errors.push(format!("{file_var}: only secrets can be read from files"));
                    continue;
                }
                match std::fs::read_to_string(p) {
                    Ok(s) => {
                        raw.insert(
                            o.key,
                            (s.trim_end_matches(['\r', '\n']).to_string(), Source::Env),
                        );
                    }
                    Err(e) => errors.push(format!("{file_var}: cannot read {p}: {e}")),
                }
            }
        }
        for k in env.keys() {
            if let Some(rest) = k.strip_prefix("MAILSTEAD_") {
                let base = rest.strip_suffix("_FILE").unwrap_or(rest);
                let known = OPTIONS.iter().any(|o| o.key.eq_ignore_ascii_case(base))
                    || OTHER_ENV.contains(&k.as_str());
                if !known {
                    warnings.push(format!("unknown environment variable {k} is ignored"));
                }
            }
        }
        for (k, v) in cli {
            raw.insert(k, (v.clone(), Source::Cli));
        }

        let get = |k: &str| {
            raw.get(k)
                .map(|(v, _)| v.trim().to_string())
                .unwrap_or_default()
        };
        let mut num = |k: &str| -> u64 {
            match get(k).parse::<u64>() {
                Ok(n) => n,
                Err(_) => {
                    errors.push(format!("{k} must be a whole number, not '{}'", get(k)));
                    0
                }
            }
        };
        let max_body_bytes = num("max_body_bytes") as usize;
        let max_import_bytes = num("max_import_bytes");
        let session_ttl_hours = num("session_ttl_hours");
        let login_attempts_per_minute = num("login_attempts_per_minute") as u32;
        let api_requests_per_second = num("api_requests_per_second") as u32;
        let campaign_messages_per_second = num("campaign_messages_per_second") as u32;
        let retry_max_hours = num("retry_max_hours");
        let concurrency = num("delivery_concurrency") as usize;
        let max_message_bytes = num("max_message_bytes") as usize;
        let soft_bounce_limit = (num("soft_bounce_limit") as u32).max(1);
        let soft_bounce_days = (num("soft_bounce_days") as u32).max(1);
        let bounce_max_bytes = (num("bounce_max_bytes") as usize).max(1024);
        let bounce_per_minute = (num("bounce_messages_per_minute") as u32).max(1);
        let mailbox_interval_secs = num("bounce_mailbox_interval_secs").max(1);
        let webhooks_out = WebhookOutSettings {
            concurrency: (num("webhook_concurrency") as usize).clamp(1, 256),
            retry_base_ms: num("webhook_retry_base_ms").max(1),
            retry_max_hours: num("webhook_retry_max_hours").max(1),
            disable_after: u32::try_from(num("webhook_disable_after"))
                .unwrap_or(u32::MAX)
                .max(1),
            retention_days: num("webhook_retention_days").max(1),
        };
        let retention = RetentionSettings {
            inactive_contacts_days: u32::try_from(num("retention_inactive_contacts_days"))
                .unwrap_or(u32::MAX),
            delivery_log_days: u32::try_from(num("retention_delivery_log_days"))
                .unwrap_or(u32::MAX),
            unconverted_leads_days: u32::try_from(num("retention_unconverted_leads_days"))
                .unwrap_or(u32::MAX),
        };
        let listen = match get("listen").parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                errors.push(format!(
                    "listen must be ADDRESS:PORT such as 0.0.0.0:8443, not '{}'",
                    get("listen")
                ));
                SocketAddr::from(([0, 0, 0, 0], 8443))
            }
        };
        let mut public_url = get("public_url").trim_end_matches('/').to_string();
        if public_url.is_empty() {
            public_url = format!("https://{listen}");
        } else if !(public_url.starts_with("https://") || public_url.starts_with("http://")) {
            errors.push(format!(
                "public_url must start with https:// (got '{public_url}')"
            ));
        }
        let path_opt = |k: &str| Some(get(k)).filter(|s| !s.is_empty()).map(PathBuf::from);
        let (tls_cert, tls_key) = (path_opt("tls_cert"), path_opt("tls_key"));
        if tls_cert.is_some() != tls_key.is_some() {
            errors.push("tls_cert and tls_key must be given together".into());
        }
        let log_format = get("log_format");
        if log_format != "text" && log_format != "json" {
            errors.push(format!(
                "log_format must be text or json, not '{log_format}'"
            ));
        }
        let smtp_port = match get("smtp_port").parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                errors.push(format!(
                    "smtp_port must be a port number, not '{}'",
                    get("smtp_port")
                ));
                25
            }
        };
        let dns_server = match get("dns_server").as_str() {
            "" => None,
            v => match v.parse::<SocketAddr>().or_else(|_| {
                v.parse::<std::net::IpAddr>()
                    .map(|ip| SocketAddr::new(ip, 53))
            }) {
                Ok(a) => Some(a),
                Err(_) => {
                    errors.push(format!(
                        "dns_server must be ADDRESS or ADDRESS:PORT, not '{v}'"
                    ));
                    None
                }
            },
        };
        let tracking_enabled = match get("tracking_enabled").to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "" => true,
            "false" | "0" | "no" | "off" => false,
            v => {
                errors.push(format!("tracking_enabled must be true or false, not '{v}'"));
                true
            }
        };
        let allow_private_targets = match get("allow_private_targets").to_ascii_lowercase().as_str()
        {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" | "" => false,
            v => {
                errors.push(format!(
                    "allow_private_targets must be true or false, not '{v}'"
                ));
                false
            }
        };
        let relay_raw = raw
            .get("relay")
            .map(|(v, _)| v.trim().to_string())
            .unwrap_or_default();
        if !(relay_raw.is_empty()
            || relay_raw.starts_with("smtp://")
            || relay_raw.starts_with("smtps://"))
        {
            errors.push("relay must be an smtp:// or smtps:// URL".into());
        }
        let data_dir = PathBuf::from(get("data_dir"));
        if data_dir.as_os_str().is_empty() {
            errors.push("data_dir must not be empty".into());
        }
        let admin_email = Some(get("admin_email")).filter(|s| !s.is_empty());
        let admin_password = Secret(
            raw.get("admin_password")
                .map(|(v, _)| v.clone())
                .unwrap_or_default(),
        );
        if admin_email.is_some() && admin_password.is_empty() {
            errors.push(
                "admin_email is set but admin_password is not (use MAILSTEAD_ADMIN_PASSWORD_FILE)"
                    .into(),
            );
        }
        let webhooks = webhook_settings(&raw, &mut errors);
        let url_host = public_url
            .split_once("://")
            .map(|(_, r)| r.split(['/', ':']).next().unwrap_or("").to_string())
            .unwrap_or_default();
        let hostname = match get("hostname") {
            h if !h.is_empty() => h,
            _ if !url_host.is_empty()
                && url_host.parse::<std::net::IpAddr>().is_err()
                && url_host.contains('.') =>
            {
                url_host
            }
            _ => "localhost.localdomain".to_string(),
        };
        let sender_address = match get("sender_address") {
            a if !a.is_empty() => a,
            _ => format!("noreply@{hostname}"),
        };
        let bounce_domain = match get("bounce_domain") {
            b if !b.is_empty() => b,
            _ => hostname.clone(),
        };
        let delivery = DeliverySettings {
            require_tls_domains: get("require_tls_domains")
                .split(',')
                .map(|d| d.trim().to_ascii_lowercase())
                .filter(|d| !d.is_empty())
                .collect(),
            hostname,
            dns_server,
            smtp_port,
            allow_private_targets,
            relay: Some(Secret(relay_raw)).filter(|r| !r.is_empty()),
            bounce_domain,
            retry_max_hours: retry_max_hours.max(1),
            shaping_file: Some(get("shaping_file"))
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            concurrency,
            max_message_bytes,
        };
        let bounce_listen = match get("bounce_listen") {
            b if b.is_empty() => None,
            b => match b.parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    errors.push(format!(
                        "bounce_listen must be ADDRESS:PORT such as 0.0.0.0:2525, not '{b}'"
                    ));
                    None
                }
            },
        };
        let bounce_mailbox = get("bounce_mailbox");
        if !bounce_mailbox.is_empty()
            && !bounce_mailbox.starts_with("pop3s://")
            && !bounce_mailbox.starts_with("pop3://")
        {
            errors.push(
                "bounce_mailbox must look like pop3s://user:password@host:995 or pop3://user:password@host:110"
                    .into(),
            );
        }
        let feedback = FeedbackSettings {
            soft_bounce_limit,
            soft_bounce_days,
            listen: bounce_listen,
            addresses: get("bounce_addresses")
                .split(',')
                .map(|a| a.trim().to_ascii_lowercase())
                .filter(|a| !a.is_empty())
                .map(|a| {
                    if a.contains('@') {
                        a
                    } else {
                        format!("{a}@{}", delivery.bounce_domain.to_ascii_lowercase())
                    }
                })
                .collect(),
            max_bytes: bounce_max_bytes,
            messages_per_minute: bounce_per_minute,
            mailbox: Some(Secret(bounce_mailbox)).filter(|m| !m.is_empty()),
            mailbox_interval_secs,
        };
        if !errors.is_empty() {
            return Err(ConfigError(errors));
        }
        let mut settings = Settings {
            data_dir,
            listen,
            public_url,
            tls_cert,
            tls_key,
            log: get("log"),
            log_json: log_format == "json",
            admin_email,
            admin_password,
            max_body_bytes,
            max_import_bytes,
            session_ttl_hours,
            login_attempts_per_minute,
            api_requests_per_second,
            tracking_enabled,
            campaign_messages_per_second,
            sender_address,
            delivery,
            feedback,
            webhooks,
            webhooks_out,
            retention,
            raw,
            warnings,
        };
        // secrets live only in their typed fields, never in the raw table
        for o in OPTIONS.iter().filter(|o| o.secret) {
            if let Some((v, _)) = settings.raw.get_mut(o.key)
                && !v.is_empty()
            {
                *v = "<redacted>".into();
            }
        }
        Ok(settings)
    }

    /// Settings with secrets redacted, for `config show` and the logs.
    pub fn describe(&self) -> Vec<(String, String, Source)> {
        OPTIONS
            .iter()
            .map(|o| {
                let (v, s) = self
                    .raw
                    .get(o.key)
                    .cloned()
                    .unwrap_or((String::new(), Source::Default));
                let v = if o.secret && !v.is_empty() {
                    "<redacted>".to_string()
                } else {
                    v
                };
                (o.key.to_string(), v, s)
            })
            .collect()
    }
}

/// The ESP webhook settings, with their problems added to `errors`.
fn webhook_settings(
    raw: &BTreeMap<&'static str, (String, Source)>,
    errors: &mut Vec<String>,
) -> WebhookSettings {
    let get = |k: &str| {
        raw.get(k)
            .map(|(v, _)| v.trim().to_string())
            .unwrap_or_default()
    };
    let secret = |k: &str| Some(Secret(get(k))).filter(|s| !s.is_empty());
    let mut num = |k: &str, min: u64| match get(k).parse::<u64>() {
        Ok(n) => n.max(min),
        Err(_) => {
            errors.push(format!("{k} must be a whole number, not '{}'", get(k)));
            min
        }
    };
    let tolerance_secs = num("webhook_tolerance_secs", 1);
    let requests_per_second =
        u32::try_from(num("webhook_requests_per_second", 1)).unwrap_or(u32::MAX);
    let sendgrid_public_key = match get("sendgrid_public_key") {
        k if k.is_empty() => None,
        k => match crate::esp::sendgrid::decode_public_key(&k) {
            Ok(der) => Some(der),
            Err(e) => {
                errors.push(e);
                None
            }
        },
    };
    let postmark = match (get("postmark_username"), secret("postmark_password")) {
        (u, None) if u.is_empty() => None,
        (u, Some(p)) if !u.is_empty() => Some((u, p)),
        _ => {
            errors.push("postmark_username and postmark_password must be set together".into());
            None
        }
    };
    WebhookSettings {
        tolerance_secs,
        requests_per_second,
        ses_topic_arns: get("ses_topic_arns")
            .split(',')
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect(),
        sendgrid_public_key,
        mailgun_signing_key: secret("mailgun_signing_key"),
        postmark,
        generic_secret: secret("generic_webhook_secret"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn precedence_is_cli_env_file_default() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.toml");
        std::fs::write(
            &f,
            "listen = \"127.0.0.1:1000\"\ndata_dir = \"/file\"\nlog = \"debug\"\n",
        )
        .unwrap();
        let s = Settings::load(
            Some(&f),
            &[("data_dir", "/cli".into())],
            &env(&[
                ("MAILSTEAD_LISTEN", "127.0.0.1:2000"),
                ("MAILSTEAD_DATA_DIR", "/env"),
            ]),
        )
        .unwrap();
        assert_eq!(s.data_dir, PathBuf::from("/cli"));
        assert_eq!(s.listen.port(), 2000);
        assert_eq!(s.log, "debug");
        assert_eq!(s.max_body_bytes, 1048576);
        assert_eq!(s.public_url, "https://127.0.0.1:2000");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_all_reported() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.toml");
        std::fs::write(&f, "listne = \"x\"\nmax_body_bytes = \"lots\"\n").unwrap();
        let e = Settings::load(
            Some(&f),
            &[],
            &env(&[
                ("MAILSTEAD_LISTEN", "nope"),
                ("MAILSTEAD_BOUNCE_LISTEN", "port 25"),
                ("MAILSTEAD_BOUNCE_MAILBOX", "imap://u:p@h"),
            ]),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("bounce_listen must be"), "{text}");
        assert!(text.contains("bounce_mailbox must look like"), "{text}");
        assert!(text.contains("unknown setting 'listne'"), "{text}");
        assert!(
            text.contains("max_body_bytes must be a whole number"),
            "{text}"
        );
        assert!(text.contains("listen must be"), "{text}");
    }

    #[test]
    fn secrets_come_from_files_and_are_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret-password\n").unwrap();
        let s = Settings::load(
            None,
            &[],
            &env(&[
                ("MAILSTEAD_ADMIN_EMAIL", "a@example.test"),
                ("MAILSTEAD_ADMIN_PASSWORD_FILE", p.to_str().unwrap()),
            ]),
        )
        .unwrap();
        assert_eq!(s.admin_password.expose(), "s3cret-password");
        assert!(!format!("{s:?}").contains("s3cret"));
        assert!(
            s.describe()
                .iter()
                .any(|(k, v, _)| k == "admin_password" && v == "<redacted>")
        );
    }

    #[test]
    fn webhook_settings_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mg");
        std::fs::write(&p, "mg-signing-key\n").unwrap();
        let s = Settings::load(
            None,
            &[],
            &env(&[
                ("MAILSTEAD_MAILGUN_SIGNING_KEY_FILE", p.to_str().unwrap()),
                ("MAILSTEAD_GENERIC_WEBHOOK_SECRET", "gen-secret"),
                (
                    "MAILSTEAD_SES_TOPIC_ARNS",
                    "arn:aws:sns:eu-west-1:1:a, arn:aws:sns:eu-west-1:1:b",
                ),
                ("MAILSTEAD_WEBHOOK_TOLERANCE_SECS", "60"),
            ]),
        )
        .unwrap();
        let w = &s.webhooks;
        assert_eq!(
            w.mailgun_signing_key.as_ref().unwrap().expose(),
            "mg-signing-key"
        );
        assert_eq!(w.generic_secret.as_ref().unwrap().expose(), "gen-secret");
        assert_eq!(w.ses_topic_arns.len(), 2);
        assert_eq!(w.tolerance_secs, 60);
        assert!(w.sendgrid_public_key.is_none() && w.postmark.is_none());
        let shown = format!("{s:?} {:?}", s.describe());
        assert!(!shown.contains("mg-signing-key") && !shown.contains("gen-secret"));

        let e = Settings::load(
            None,
            &[],
            &env(&[
                ("MAILSTEAD_SENDGRID_PUBLIC_KEY", "bm90IGEga2V5"),
                ("MAILSTEAD_POSTMARK_USERNAME", "pm"),
                ("MAILSTEAD_WEBHOOK_TOLERANCE_SECS", "soon"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("sendgrid_public_key"), "{e}");
        assert!(e.contains("postmark_username and postmark_password"), "{e}");
        assert!(e.contains("webhook_tolerance_secs"), "{e}");
    }

    #[test]
    fn the_documented_config_lists_every_option() {
        let doc = include_str!("../config/mailstead.toml");
        for o in OPTIONS {
            assert!(
                doc.contains(&format!("# {} = ", o.key)) || doc.contains(&format!("{} = ", o.key)),
                "config/mailstead.toml lacks {}",
                o.key
            );
        }
        // and the documented file itself loads
        let parsed: toml::Table = doc.parse().unwrap();
        assert!(parsed.keys().all(|k| OPTIONS.iter().any(|o| o.key == k)));
    }
}
