//! Outgoing webhooks for integrators: subscription rules (target checks, event types, secrets
//! shown once), request signing, and the dispatcher that turns the event log into signed HTTP
//! POSTs with retries, backoff and auto-disable. Knows nothing of HTTP servers or redb: the
//! outbox, its due index and the attempt log live in `store::webhooks`.
//!
//! Signing: `X-Mailstead-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` with
//! the unix timestamp in `X-Mailstead-Timestamp`; the key is the secret string as UTF-8.
//!
//! Targets: `https://` only, and never loopback, private, link-local, unique-local, CGNAT,
//! multicast, unspecified or documentation addresses unless `allow_private_targets` is on
//! (then `http://` is allowed too). The host is resolved when the subscription is saved and
//! again for every connection by the client's own resolver, which refuses such addresses, so
//! the address connected to is always one that was checked (no DNS rebinding).

use crate::config::{Settings, WebhookOutSettings};
use crate::delivery::mx::{Resolver, is_public};
use crate::model::{
    Event, EventType, Id, WebhookAttempt, WebhookDelivery, WebhookSecret, WebhookStatus,
    WebhookSubscription, now,
};
use crate::policy::{Action, Actor, Denied};
use crate::store::{Store, StoreError, WebhookClaim, WebhookSettlement};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Subscriptions that can exist at once.
pub const MAX_SUBSCRIPTIONS: usize = 100;
/// The whole request (connect, TLS, send, response) must finish within this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A claimed delivery comes due again after this if its attempt never settled (crash).
const LEASE: Duration = Duration::from_secs(60);
/// Response bytes kept in the attempt log, and read at most.
const RESPONSE_KEPT: usize = 1024;
const RESPONSE_READ: usize = 64 * 1024;
const POLL: Duration = Duration::from_millis(200);
const FAN_OUT_BATCH: usize = 500;
const MAX_URL: usize = 2000;
const MAX_BACKOFF_MS: u64 = 3_600_000;

pub const HEADER_EVENT: &str = "X-Mailstead-Event";
pub const HEADER_DELIVERY: &str = "X-Mailstead-Delivery";
pub const HEADER_TIMESTAMP: &str = "X-Mailstead-Timestamp";
pub const HEADER_SIGNATURE: &str = "X-Mailstead-Signature";

const LAB_HINT: &str = "set MAILSTEAD_ALLOW_PRIVATE_TARGETS=true only in labs";

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The target is (or resolves to) an address integrators may not reach.
    #[error("{0}")]
    PrivateTarget(String),
    #[error("webhook subscription not found")]
    NotFound,
    /// Too many subscriptions.
    #[error("{0}")]
    Limit(String),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Store(StoreError),
    #[error("the webhook client cannot start: {0}")]
    Client(String),
}

impl From<StoreError> for WebhookError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => WebhookError::NotFound,
            StoreError::Invalid(message) => WebhookError::Limit(message),
            other => WebhookError::Store(other),
        }
    }
}

pub type Result<T, E = WebhookError> = std::result::Result<T, E>;

fn invalid(field: &'static str, message: impl Into<String>) -> WebhookError {
    WebhookError::Invalid {
        field,
        message: message.into(),
    }
}

/// A target URL that passed every check: the only way to give one to a subscription.
#[derive(Debug, Clone)]
pub struct CheckedUrl(String);

/// Fields of a subscription to change; `None` keeps a field.
#[derive(Debug, Default)]
pub struct SubscriptionChange {
    pub url: Option<CheckedUrl>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    /// `Some(false)` disables; `Some(true)` enables (as [`Webhooks::enable`]).
    pub enabled: Option<bool>,
}

/// `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn new_secret() -> WebhookSecret {
    WebhookSecret(format!("whsec_{}", hex::encode(rand::random::<[u8; 32]>())))
}

/// The JSON body sent for an event.
pub fn event_body(ev: &Event, delivery: Id) -> String {
    serde_json::json!({
        "delivery_id": delivery,
        "event_id": ev.id,
        "type": ev.kind.as_str(),
        "occurred_at": rfc3339(ev.at),
        "data": ev.data,
    })
    .to_string()
}

fn ping_body(sub: Id, delivery: Id) -> String {
    serde_json::json!({
        "delivery_id": delivery,
        "event_id": null,
        "type": "ping",
        "occurred_at": rfc3339(now()),
        "data": {"subscription_id": sub},
    })
    .to_string()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Whether `ip` may be a webhook target.
pub fn target_allowed(ip: &IpAddr, allow_private: bool) -> bool {
    allow_private || is_public(ip)
}

fn refuse_private(host: &str, addrs: &[IpAddr], allow_private: bool) -> Result<()> {
    match addrs.iter().find(|ip| !target_allowed(ip, allow_private)) {
        Some(_) if host.parse::<IpAddr>().is_ok() || host.starts_with('[') => Err(
            WebhookError::PrivateTarget(format!("{host} is a private address; {LAB_HINT}")),
        ),
        Some(ip) => Err(WebhookError::PrivateTarget(format!(
            "{host} resolves to a private address ({ip}); {LAB_HINT}"
        ))),
        None => Ok(()),
    }
}

/// Delay before attempt `attempt + 1` after `attempt` failed ones: base · 2^(attempt-1),
/// capped at an hour, ±20 % jitter.
pub fn retry_delay(attempt: u32, base_ms: u64) -> Duration {
    let exp = base_ms
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(32))
        .min(MAX_BACKOFF_MS.max(base_ms));
    let jitter = 0.8 + rand::random::<f64>() * 0.4;
    Duration::from_millis((exp as f64 * jitter) as u64)
}

fn parse_events(names: &[String]) -> Result<Vec<EventType>> {
    let mut out: Vec<EventType> = Vec::new();
    for n in names {
        let t: EventType = n.trim().parse().map_err(|m: String| invalid("events", m))?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    if out.is_empty() {
        return Err(invalid("events", "choose at least one event type"));
    }
    Ok(out)
}

fn clean_description(d: &str) -> Result<String> {
    let d = d.trim();
    if d.chars().count() > 200 || d.chars().any(char::is_control) {
        return Err(invalid(
            "description",
            "description must be at most 200 characters on one line",
        ));
    }
    Ok(d.to_string())
}

/// Resolver for the HTTP client: every connection goes to addresses checked here.
struct GuardedResolver {
    resolver: Resolver,
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.resolver.clone();
        let allow = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = resolver.host_addresses(&host).await?;
            refuse_private(&host, &addrs, allow)?;
            let it: reqwest::dns::Addrs =
                Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(it)
        })
    }
}

/// Network parts, built on first use inside the runtime.
struct Net {
    resolver: Resolver,
    client: reqwest::Client,
}

/// The webhook service: subscription management for the API and the dispatcher task.
pub struct Webhooks {
    store: Arc<Store>,
    settings: WebhookOutSettings,
    allow_private: bool,
    dns_server: Option<SocketAddr>,
    net: OnceLock<Net>,
}

impl Webhooks {
    pub fn new(settings: &Settings, store: Arc<Store>) -> Webhooks {
        Webhooks {
            store,
            settings: settings.webhooks_out.clone(),
            allow_private: settings.delivery.allow_private_targets,
            dns_server: settings.delivery.dns_server,
            net: OnceLock::new(),
        }
    }

    fn net(&self) -> Result<&Net> {
        if let Some(n) = self.net.get() {
            return Ok(n);
        }
        let resolver = Resolver::new(self.dns_server)
            .map_err(|e| WebhookError::Client(e.to_string()))?
            .allow_private(self.allow_private);
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| WebhookError::Client(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .dns_resolver(Arc::new(GuardedResolver {
                resolver: resolver.clone(),
                allow_private: self.allow_private,
            }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(2)
            .user_agent(concat!("Mailstead-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WebhookError::Client(e.to_string()))?;
        Ok(self.net.get_or_init(|| Net { resolver, client }))
    }

    /// Checks a target URL: scheme, shape, and where its host resolves now.
    pub async fn check_url(&self, raw: &str) -> Result<CheckedUrl> {
        let raw = raw.trim();
        if raw.len() > MAX_URL {
            return Err(invalid(
                "url",
                format!("url is longer than {MAX_URL} characters"),
            ));
        }
        let url = reqwest::Url::parse(raw)
            .map_err(|e| invalid("url", format!("url is not a valid URL: {e}")))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_private => {}
            "http" => {
                return Err(invalid(
                    "url",
                    "url must use https:// (http:// is accepted only with MAILSTEAD_ALLOW_PRIVATE_TARGETS=true, in labs)",
                ));
            }
            other => {
                return Err(invalid(
                    "url",
                    format!("url must use https://, not {other}:"),
                ));
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "url",
                "url must not contain a user name or password (verify requests by their signature)",
            ));
        }
        if url.fragment().is_some() {
            return Err(invalid("url", "url must not have a #fragment"));
        }
        let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
            return Err(invalid("url", "url has no host"));
        };
        let net = self.net()?;
        match net.resolver.host_addresses(host).await {
            Ok(addrs) => refuse_private(host, &addrs, self.allow_private)?,
            Err(e) if e.is_permanent() => {
                return Err(invalid("url", format!("url host does not resolve: {e}")));
            }
            // A temporary DNS failure: attempts will tell.
            Err(_) => {}
        }
        Ok(CheckedUrl(url.to_string()))
    }

    pub fn list(&self, actor: &Actor) -> Result<Vec<WebhookSubscription>> {
        actor.check_webhooks(Action::Read)?;
        Ok(self.store.webhook_subscriptions()?)
    }

    pub fn get(&self, actor: &Actor, id: Id) -> Result<WebhookSubscription> {
        actor.check_webhooks(Action::Read)?;
        self.store
            .webhook_subscription(id)?
            .ok_or(WebhookError::NotFound)
    }

    /// Creates an active subscription with a new secret (the caller shows it once).
    pub fn create(
        &self,
        actor: &Actor,
        url: CheckedUrl,
        events: &[String],
        description: &str,
    ) -> Result<WebhookSubscription> {
        actor.check_webhooks(Action::Create)?;
        let sub = WebhookSubscription::new(
            url.0,
            clean_description(description)?,
            parse_events(events)?,
            new_secret(),
            Some(actor.user_id).filter(|id| *id != 0),
        );
        Ok(self
            .store
            .create_webhook_subscription(sub, MAX_SUBSCRIPTIONS)?)
    }

    pub fn update(
        &self,
        actor: &Actor,
        id: Id,
        change: SubscriptionChange,
    ) -> Result<WebhookSubscription> {
        actor.check_webhooks(Action::Update)?;
        let events = change.events.as_deref().map(parse_events).transpose()?;
        let description = change
            .description
            .as_deref()
            .map(clean_description)
            .transpose()?;
        Ok(self.store.update_webhook_subscription(id, |s| {
            if let Some(u) = change.url {
                s.url = u.0;
            }
            if let Some(e) = events {
                s.events = e;
            }
            if let Some(d) = description {
                s.description = d;
            }
            match change.enabled {
                Some(true) => reactivate(s),
                Some(false) if s.status == WebhookStatus::Active => {
                    s.status = WebhookStatus::Disabled;
                    s.auto_disabled = false;
                    s.disabled_at = Some(now());
                }
                _ => {}
            }
        })?)
    }

    /// Re-enables a subscription; the consecutive-failure count starts again at zero.
    pub fn enable(&self, actor: &Actor, id: Id) -> Result<WebhookSubscription> {
        actor.check_webhooks(Action::Update)?;
        Ok(self.store.update_webhook_subscription(id, reactivate)?)
    }

    /// Replaces the signing secret; the new one is returned (and shown) once.
    pub fn rotate_secret(&self, actor: &Actor, id: Id) -> Result<WebhookSubscription> {
        actor.check_webhooks(Action::Update)?;
        Ok(self
            .store
            .update_webhook_subscription(id, |s| s.secret = new_secret())?)
    }

    pub fn delete(&self, actor: &Actor, id: Id) -> Result<()> {
        actor.check_webhooks(Action::Delete)?;
        Ok(self.store.delete_webhook_subscription(id)?)
    }

    /// Queues a `ping` delivery to the subscription (sent even while it is disabled).
    pub fn ping(&self, actor: &Actor, id: Id) -> Result<WebhookDelivery> {
        actor.check_webhooks(Action::Update)?;
        Ok(self
            .store
            .enqueue_webhook_ping(id, |delivery| ping_body(id, delivery))?)
    }

    /// The delivery log of a subscription, newest first, below attempt id `before`.
    pub fn attempts(
        &self,
        actor: &Actor,
        id: Id,
        before: Option<Id>,
        limit: usize,
    ) -> Result<Vec<WebhookAttempt>> {
        actor.check_webhooks(Action::Read)?;
        if self.store.webhook_subscription(id)?.is_none() {
            return Err(WebhookError::NotFound);
        }
        Ok(self
            .store
            .webhook_attempts(id, before, limit.clamp(1, 200))?)
    }

    /// Housekeeping: forgets finished deliveries, attempts and handled events past retention.
    pub fn prune(&self) -> Result<u64> {
        let days = i64::try_from(self.settings.retention_days).unwrap_or(i64::MAX / 86_400);
        let cutoff = now() - time::Duration::days(days.min(100_000));
        Ok(self.store.webhook_prune(cutoff)?)
    }

    // ---- the dispatcher ----

    /// Runs until `stop` turns true: fans events out to the outbox, claims due deliveries and
    /// attempts them with bounded concurrency, and settles outcomes in batches.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        if let Err(e) = self.net() {
            tracing::error!(error = %e, "outgoing webhooks are off");
            return;
        }
        let mut tasks: tokio::task::JoinSet<WebhookSettlement> = tokio::task::JoinSet::new();
        let mut done: Vec<WebhookSettlement> = Vec::new();
        while !*stop.borrow() {
            self.settle(std::mem::take(&mut done)).await;
            let me = self.clone();
            let fanned = tokio::task::spawn_blocking(move || {
                me.store.webhook_fan_out(FAN_OUT_BATCH, event_body)
            })
            .await;
            let busy = match fanned {
                Ok(Ok(n)) => n >= FAN_OUT_BATCH,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "webhook fan-out failed");
                    false
                }
                Err(_) => false,
            };
            let free = self.settings.concurrency.saturating_sub(tasks.len());
            if free > 0 {
                let me = self.clone();
                let t = now();
                let claimed =
                    tokio::task::spawn_blocking(move || me.store.webhook_claim(t, t + LEASE, free))
                        .await;
                match claimed {
                    Ok(Ok(claims)) => {
                        for c in claims {
                            let me = self.clone();
                            tasks.spawn(async move { me.attempt(c).await });
                        }
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "claiming webhook deliveries failed"),
                    Err(_) => {}
                }
            }
            let pause = if busy { Duration::ZERO } else { POLL };
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() {
                        break; // the server is gone
                    }
                }
                Some(r) = tasks.join_next(), if !tasks.is_empty() => {
                    done.extend(r.ok());
                    while let Some(r) = tasks.try_join_next() {
                        done.extend(r.ok());
                    }
                }
                _ = tokio::time::sleep(pause) => {}
            }
        }
        // Let attempts in flight finish (they are bounded by the request timeout); whatever
        // does not settle comes due again when its lease ends.
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT + Duration::from_secs(1);
        while let Ok(Some(r)) = tokio::time::timeout_at(deadline, tasks.join_next()).await {
            done.extend(r.ok());
        }
        tasks.abort_all();
        self.settle(done).await;
    }

    async fn settle(&self, done: Vec<WebhookSettlement>) {
        if done.is_empty() {
            return;
        }
        let store = self.store.clone();
        let limit = self.settings.disable_after;
        match tokio::task::spawn_blocking(move || store.webhook_settle(done, limit)).await {
            Ok(Ok(disabled)) => {
                for id in disabled {
                    tracing::warn!(
                        subscription = id,
                        failures = limit,
                        "webhook subscription disabled after repeated failures; re-enable it in the console"
                    );
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "recording webhook outcomes failed"),
            Err(e) => tracing::warn!(error = %e, "recording webhook outcomes failed"),
        }
    }

    /// One HTTP attempt, and what to record about it.
    async fn attempt(&self, c: WebhookClaim) -> WebhookSettlement {
        let at = now();
        let started = Instant::now();
        let result = self.post(&c).await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (status, error, response) = match result {
            Ok((status, body)) if (200..300).contains(&status) => (Some(status), None, body),
            Ok((status, body)) => (Some(status), Some(format!("HTTP status {status}")), body),
            Err(e) => (None, Some(e), String::new()),
        };
        let ok = error.is_none();
        let attempt = c.delivery.attempts + 1;
        let retry_at = if ok {
            None
        } else {
            let next = at + retry_delay(attempt, self.settings.retry_base_ms);
            let hours = i64::try_from(self.settings.retry_max_hours).unwrap_or(i64::MAX / 3600);
            let give_up = c.delivery.created_at + time::Duration::hours(hours.min(1_000_000));
            (next <= give_up).then_some(next)
        };
        if let Some(e) = &error {
            tracing::debug!(subscription = c.subscription.id, delivery = c.delivery.id, attempt, error = %e, "webhook attempt failed");
        }
        WebhookSettlement {
            attempt: WebhookAttempt {
                id: 0,
                subscription_id: c.subscription.id,
                delivery_id: c.delivery.id,
                event_id: c.delivery.event_id,
                event_type: c.delivery.event_type.clone(),
                attempt,
                at,
                duration_ms,
                status,
                error,
                response,
                ok,
                next_attempt_at: None,
            },
            retry_at,
        }
    }

    /// Signs and POSTs the delivery; the status and the start of the response body.
    async fn post(&self, c: &WebhookClaim) -> std::result::Result<(u16, String), String> {
        let net = self.net().map_err(|e| e.to_string())?;
        let url = reqwest::Url::parse(&c.subscription.url).map_err(|e| e.to_string())?;
        // IP literals never reach the resolver: check them here.
        if let Some(host) = url.host_str()
            && let Ok(ip) = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
        {
            refuse_private(host, &[ip], self.allow_private).map_err(|e| e.to_string())?;
        }
        let ts = OffsetDateTime::now_utc().unix_timestamp();
        let body = c.delivery.body.clone();
        let resp = net
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(HEADER_EVENT, &c.delivery.event_type)
            .header(HEADER_DELIVERY, c.delivery.id.to_string())
            .header(HEADER_TIMESTAMP, ts.to_string())
            .header(
                HEADER_SIGNATURE,
                signature(&c.subscription.secret.0, ts, body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .map_err(describe)?;
        let status = resp.status().as_u16();
        let mut resp = resp;
        let mut kept = Vec::new();
        let mut read = 0usize;
        while let Ok(Some(chunk)) = resp.chunk().await {
            read += chunk.len();
            let room = RESPONSE_KEPT.saturating_sub(kept.len());
            kept.extend_from_slice(&chunk[..room.min(chunk.len())]);
            if read >= RESPONSE_READ {
                break;
            }
        }
        Ok((status, String::from_utf8_lossy(&kept).into_owned()))
    }
}

fn reactivate(s: &mut WebhookSubscription) {
    s.status = WebhookStatus::Active;
    s.auto_disabled = false;
    s.consecutive_failures = 0;
    s.disabled_at = None;
}

/// A request error with its causes (the URL left out: it is in the log row already).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = if e.is_timeout() {
        format!("timed out after {} s", REQUEST_TIMEOUT.as_secs())
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_over_timestamp_dot_body() {
        // RFC 4231-style check against an independently computed value:
        // HMAC-SHA256(key="whsec_test", msg="1700000000.{\"a\":1}")
        let sig = signature("whsec_test", 1_700_000_000, br#"{"a":1}"#);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"whsec_test").unwrap();
        mac.update(b"1700000000.{\"a\":1}");
        assert_eq!(
            sig,
            format!("v1={}", hex::encode(mac.finalize().into_bytes()))
        );
        assert_ne!(sig, signature("whsec_other", 1_700_000_000, br#"{"a":1}"#));
        assert_ne!(sig, signature("whsec_test", 1_700_000_001, br#"{"a":1}"#));
        assert_ne!(sig, signature("whsec_test", 1_700_000_000, br#"{"a":2}"#));
    }

    #[test]
    fn known_signature_vector() {
        // Computed with: printf '%s' '42.hello' | openssl dgst -sha256 -hmac key
        assert_eq!(
            signature("key", 42, b"hello"),
            "v1=31e36c7e4eae5951f82aedfbfe720469e6418070434e048f1d1a846e4bbca7c6"
        );
    }

    #[test]
    fn private_and_special_addresses_are_refused_unless_allowed() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "192.0.2.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
        ] {
            let ip: IpAddr = a.parse().unwrap();
            assert!(!target_allowed(&ip, false), "{a} must be refused");
            assert!(target_allowed(&ip, true), "{a} is allowed in labs");
        }
        for a in ["93.184.216.34", "2606:4700::1111", "8.8.8.8"] {
            assert!(target_allowed(&a.parse().unwrap(), false), "{a} is public");
        }
        let e = refuse_private(
            "hooks.example.com",
            &["8.8.8.8".parse().unwrap(), "10.0.0.1".parse().unwrap()],
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("resolves to a private address (10.0.0.1)"),
            "{e}"
        );
        assert!(e.contains("MAILSTEAD_ALLOW_PRIVATE_TARGETS=true"), "{e}");
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for (attempt, base) in [(1u32, 1000u64), (2, 2000), (3, 4000), (5, 16000)] {
            let d = retry_delay(attempt, 1000).as_millis() as u64;
            assert!(
                d >= base * 8 / 10 && d <= base * 12 / 10,
                "attempt {attempt}: {d}"
            );
        }
        let d = retry_delay(60, 10_000).as_millis() as u64;
        assert!(d <= MAX_BACKOFF_MS * 12 / 10, "{d}");
    }

    #[test]
    fn event_types_are_checked() {
        let e = parse_events(&["contact.created".into(), "nope".into()]).unwrap_err();
        assert!(e.to_string().contains("unknown event type 'nope'"), "{e}");
        assert!(parse_events(&[]).is_err());
        assert_eq!(
            parse_events(&["contact.created".into(), "contact.created".into()]).unwrap(),
            vec![EventType::ContactCreated]
        );
    }

    #[test]
    fn secrets_are_random_and_redacted() {
        let a = new_secret();
        assert!(a.0.starts_with("whsec_") && a.0.len() == 6 + 64);
        assert_ne!(a, new_secret());
        assert!(!format!("{a:?}").contains(&a.0));
    }
}
