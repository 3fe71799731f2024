//! Outbound mail: accepting messages into the durable queue (compose, DKIM-sign, enqueue)
//! and the workers that drain it through the delivery engine, recording every recipient's
//! outcome. The queue lives in `store`; the SMTP/DNS/DKIM machinery in `delivery`.
//!
//! Flow: `submit` → `Store::enqueue` (durable; only then 202) → `run` claims due deliveries
//! (marking them `sending`), sends each through `Engine::deliver` with a VERP return path,
//! and settles the outcomes in batches: sent, deferred (with the next attempt from the retry
//! policy or the site's hold), bounced (5xx; 5.7.x flagged as policy) or failed (expired).

use crate::compose::{self, ComposeError, Draft};
use crate::config::Settings;
use crate::delivery::{
    ClientConfig, DeliveryJob, DeliveryStatus, Engine, EngineConfig, FailureCause, PreparedMessage,
    RelayConfig, Resolver, RetryPolicy, ShapingConfig, Signer, Verp,
};
use crate::model::{DeliveryEvent, DeliveryState, Id, OutMessage, now};
use crate::policy::Actor;
use crate::store::{Claimed, Settlement, Store, StoreError};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error(transparent)]
    Compose(#[from] ComposeError),
    #[error(transparent)]
    Denied(#[from] crate::policy::Denied),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("delivery setup: {0}")]
    Setup(String),
    #[error("DKIM signing failed: {0}")]
    Sign(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(
        "every recipient is on the suppression list ({0}); remove them from it first if they should get mail again"
    )]
    AllSuppressed(String),
}

/// A transactional message as an integrator sends it.
#[derive(Debug, Clone, Default)]
pub struct TxRequest {
    pub from: String,
    pub to: Vec<String>,
    pub reply_to: Option<String>,
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub data: Option<serde_json::Value>,
    /// Bulk mail through the API: add signed List-Unsubscribe (https one-click and mailto)
    /// and List-Unsubscribe-Post headers. Needs exactly one recipient per message.
    pub list_unsubscribe: bool,
}

pub const MAX_TX_RECIPIENTS: usize = 50;

/// The DKIM keys in `<data_dir>/dkim/<domain>/<selector>.<rsa|ed25519>.pem`, by domain.
/// A DKIM private key kept in `<data_dir>/dkim/<domain>/<selector>.<rsa|ed25519>.pem`.
pub struct DkimKeyFile {
    pub selector: String,
    pub ed25519: bool,
    pub pem: Vec<u8>,
}

/// The DKIM keys stored for `domain`, in file-name order.
pub fn dkim_keys(data_dir: &Path, domain: &str) -> Result<Vec<DkimKeyFile>, OutboundError> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("dkim").join(domain)) else {
        return Ok(Vec::new());
    };
    let mut files: Vec<_> = entries.flatten().map(|f| f.path()).collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let (selector, ed25519) = match (
            name.strip_suffix(".rsa.pem"),
            name.strip_suffix(".ed25519.pem"),
        ) {
            (Some(sel), _) => (sel, false),
            (None, Some(sel)) => (sel, true),
            (None, None) => continue,
        };
        let pem = std::fs::read(&f)
            .map_err(|e| OutboundError::Setup(format!("cannot read {}: {e}", f.display())))?;
        out.push(DkimKeyFile {
            selector: selector.to_string(),
            ed25519,
            pem,
        });
    }
    Ok(out)
}

/// A signer per domain that has an RSA key (the last by selector name), with its Ed25519 key
/// as a second signature when there is one.
pub fn load_signers(data_dir: &Path) -> Result<HashMap<String, Arc<Signer>>, OutboundError> {
    let mut out = HashMap::new();
    let Ok(domains) = std::fs::read_dir(data_dir.join("dkim")) else {
        return Ok(out);
    };
    for d in domains.flatten() {
        let domain = d.file_name().to_string_lossy().to_string();
        let keys = dkim_keys(data_dir, &domain)?;
        let Some(rsa) = keys.iter().rev().find(|k| !k.ed25519) else {
            continue;
        };
        let mut signer = Signer::new(&domain, &rsa.selector, &rsa.pem)
            .map_err(|e| OutboundError::Setup(format!("DKIM key for {domain}: {e}")))?;
        if let Some(ed) = keys.iter().rev().find(|k| k.ed25519) {
            signer = signer
                .with_ed25519(&ed.selector, &ed.pem)
                .map_err(|e| OutboundError::Setup(format!("Ed25519 key for {domain}: {e}")))?;
        }
        out.insert(domain, Arc::new(signer));
    }
    Ok(out)
}

/// Where generated DKIM keys are kept.
pub fn dkim_key_path(data_dir: &Path, domain: &str, selector: &str, algorithm: &str) -> PathBuf {
    data_dir
        .join("dkim")
        .join(domain)
        .join(format!("{selector}.{algorithm}.pem"))
}

pub struct Outbound {
    store: Arc<Store>,
    engine: Engine,
    signers: RwLock<HashMap<String, Arc<Signer>>>,
    verp: Verp,
    links: crate::links::Links,
    retry: RetryPolicy,
    concurrency: usize,
    max_message_bytes: usize,
    rules: crate::feedback::Rules,
    wake: tokio::sync::Notify,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Outbound {
    pub fn new(
        settings: &Settings,
        store: Arc<Store>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<Outbound, OutboundError> {
        let shaping = match &settings.delivery.shaping_file {
            None => ShapingConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    OutboundError::Setup(format!(
                        "cannot read shaping_file {}: {e}",
                        path.display()
                    ))
                })?;
                toml::from_str::<ShapingConfig>(&text).map_err(|e| {
                    OutboundError::Setup(format!(
                        "shaping_file {} is not valid: {e}",
                        path.display()
                    ))
                })?
            }
        };
        Self::with_shaping(settings, store, metrics, shaping)
    }

    /// As [`Outbound::new`], with explicit traffic shaping (benchmarks and labs; the
    /// server uses the defaults).
    pub fn with_shaping(
        settings: &Settings,
        store: Arc<Store>,
        metrics: Arc<crate::metrics::Metrics>,
        shaping: ShapingConfig,
    ) -> Result<Outbound, OutboundError> {
        let d = &settings.delivery;
        let client =
            ClientConfig::new(&d.hostname).map_err(|e| OutboundError::Setup(e.to_string()))?;
        let mut cfg = EngineConfig::new(client);
        cfg.shaping = shaping;
        cfg.smtp_port = d.smtp_port;
        cfg.relay = match &d.relay {
            Some(url) => Some(
                RelayConfig::parse(url.expose())
                    .map_err(|e| OutboundError::Setup(e.to_string()))?,
            ),
            None => None,
        };
        for domain in &d.require_tls_domains {
            cfg.tls_policies
                .insert(domain.clone(), crate::delivery::TlsPolicy::RequireVerified);
        }
        let resolver = Resolver::new(d.dns_server)
            .map_err(|e| OutboundError::Setup(e.to_string()))?
            .allow_private(d.allow_private_targets);
        let engine = Engine::new(cfg, resolver).map_err(|e| OutboundError::Setup(e.to_string()))?;
        let key = store.secret("verp")?;
        let verp =
            Verp::new(&key, &d.bounce_domain).map_err(|e| OutboundError::Setup(e.to_string()))?;
        let links =
            crate::links::Links::for_appliance(&store, settings).map_err(OutboundError::Setup)?;
        let retry = RetryPolicy {
            give_up_after_secs: d.retry_max_hours * 3600,
            ..RetryPolicy::default()
        };
        Ok(Outbound {
            signers: RwLock::new(load_signers(&settings.data_dir)?),
            store,
            engine,
            verp,
            links,
            retry,
            concurrency: d.concurrency.max(1),
            max_message_bytes: d.max_message_bytes,
            rules: crate::feedback::Rules::from_settings(&settings.feedback),
            wake: tokio::sync::Notify::new(),
            metrics,
        })
    }

    fn signer_for(&self, domain: &str) -> Option<Arc<Signer>> {
        self.signers
            .read()
            .ok()
            .and_then(|s| s.get(domain).cloned())
    }

    /// Composes, signs and durably queues a transactional message. Blocking.
    pub fn submit_tx(&self, actor: &Actor, req: &TxRequest) -> Result<OutMessage, OutboundError> {
        actor.check_send()?;
        let from = compose::parse_mailbox("from", &req.from)?;
        if req.to.is_empty() {
            return Err(ComposeError {
                field: "to".into(),
                message: "at least one recipient is needed".into(),
            }
            .into());
        }
        if req.to.len() > MAX_TX_RECIPIENTS {
            return Err(ComposeError {
                field: "to".into(),
                message: format!("at most {MAX_TX_RECIPIENTS} recipients per message"),
            }
            .into());
        }
        let to = req
            .to
            .iter()
            .map(|t| compose::parse_mailbox("to", t))
            .collect::<Result<Vec<_>, _>>()?;
        let suppressed = {
            let addrs: Vec<String> = to.iter().map(|m| m.addr.to_lowercase()).collect();
            let refs: Vec<&str> = addrs.iter().map(String::as_str).collect();
            self.store.suppressed_among(&refs)?
        };
        if to
            .iter()
            .all(|m| suppressed.contains(&m.addr.to_lowercase()))
        {
            let mut list: Vec<&String> = suppressed.iter().collect();
            list.sort();
            return Err(OutboundError::AllSuppressed(
                list.into_iter().cloned().collect::<Vec<_>>().join(", "),
            ));
        }
        // an erased person's address is not written down again: not in the headers of what
        // the others get, not in the stored message
        let erased: std::collections::HashSet<String> = suppressed
            .iter()
            .filter(|a| {
                matches!(self.store.suppression(a), Ok(Some(s)) if s.email.starts_with("hmac:"))
            })
            .cloned()
            .collect();
        let to: Vec<_> = to
            .into_iter()
            .filter(|m| !erased.contains(&m.addr.to_lowercase()))
            .collect();
        let reply_to = req
            .reply_to
            .as_deref()
            .map(|r| compose::parse_mailbox("reply_to", r))
            .transpose()?;
        let data = req
            .data
            .clone()
            .unwrap_or(serde_json::Value::Object(Default::default()));
        let subject = compose::render("subject", &req.subject, &data, false)?;
        let html = req
            .html
            .as_deref()
            .map(|h| compose::render("html", h, &data, true))
            .transpose()?;
        let text = req
            .text
            .as_deref()
            .map(|t| compose::render("text", t, &data, false))
            .transpose()?;
        let mut headers = compose::check_headers(&req.headers)?;
        let remaining = to
            .iter()
            .filter(|m| !suppressed.contains(&m.addr.to_lowercase()))
            .count();
        let preset_id = if req.list_unsubscribe {
            if remaining != 1 {
                return Err(ComposeError {
                    field: "list_unsubscribe".into(),
                    message: "list_unsubscribe needs exactly one recipient per message (each gets its own unsubscribe link); send one request per recipient".into(),
                }
                .into());
            }
            if headers
                .iter()
                .any(|(k, _)| k.to_ascii_lowercase().starts_with("list-unsubscribe"))
            {
                return Err(ComposeError {
                    field: "headers".into(),
                    message:
                        "set either list_unsubscribe or your own List-Unsubscribe headers, not both"
                            .into(),
                }
                .into());
            }
            let id = self.store.allocate_out_message_id()?;
            headers.extend(self.links.list_unsubscribe_headers(id, 0));
            id
        } else {
            0
        };
        let draft = Draft {
            from: from.clone(),
            to: to.clone(),
            reply_to,
            subject: subject.clone(),
            html,
            text,
            headers,
        };
        let (bytes, message_id) = self.build_signed(&draft, "html")?;
        let rcpts: Vec<(String, String)> = to
            .iter()
            .filter(|m| !suppressed.contains(&m.addr.to_lowercase()))
            .map(|m| (m.addr.clone(), m.domain().to_string()))
            .collect();
        let mut skipped: Vec<String> = suppressed
            .into_iter()
            .map(|a| {
                if erased.contains(&a) {
                    crate::store::gdpr::ERASED.to_string()
                } else {
                    a
                }
            })
            .collect();
        skipped.sort();
        let msg = OutMessage {
            id: preset_id,
            message_id,
            from: from.addr,
            subject,
            source: "tx".into(),
            size: 0,
            recipients: 0,
            submitted_by: Some(actor.user_id),
            suppressed: skipped,
            created_at: now(),
        };
        let msg = self.store.enqueue(msg, &bytes, &rcpts)?;
        self.wake.notify_one();
        Ok(msg)
    }

    /// Builds the MIME message, checks its size and DKIM-signs it with the key of the From
    /// domain (when one is installed). Returns the bytes and the Message-ID.
    pub fn build_signed(
        &self,
        draft: &Draft,
        field: &str,
    ) -> Result<(Vec<u8>, String), OutboundError> {
        let built = compose::build(draft)?;
        if built.bytes.len() > self.max_message_bytes {
            return Err(ComposeError {
                field: field.into(),
                message: format!(
                    "the message is {} bytes; the limit is {}",
                    built.bytes.len(),
                    self.max_message_bytes
                ),
            }
            .into());
        }
        let bytes = match self.signer_for(draft.from.domain()) {
            Some(s) => s
                .sign(&built.bytes)
                .map_err(|e| OutboundError::Sign(e.to_string()))?,
            None => built.bytes,
        };
        Ok((bytes, built.message_id))
    }

    pub fn links(&self) -> &crate::links::Links {
        &self.links
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Wakes the workers (new mail was queued elsewhere).
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Drains the queue until `shutdown` fires. Deliveries in flight at a crash are requeued
    /// by [`Store::requeue_in_flight`] at start.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let reaper = self.engine.spawn_reaper(Duration::from_secs(10));
        let sem = Arc::new(tokio::sync::Semaphore::new(self.concurrency));
        // An outcome travels with its worker permit, released only once the outcome is
        // committed: a delivery is `sending` in the store only while it holds a permit, so
        // what a crash can resend stays within `concurrency`.
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<(Settlement, tokio::sync::OwnedSemaphorePermit)>(4096);
        // settler: one transaction per batch of outcomes
        let settler = {
            let me = self.clone();
            tokio::spawn(async move {
                let mut batch = Vec::new();
                loop {
                    let first = rx.recv().await;
                    let Some(first) = first else { break };
                    batch.push(first);
                    while batch.len() < 1000 {
                        match rx.try_recv() {
                            Ok(s) => batch.push(s),
                            Err(_) => break,
                        }
                    }
                    let (b, permits): (Vec<Settlement>, Vec<_>) =
                        std::mem::take(&mut batch).into_iter().unzip();
                    let st = me.store.clone();
                    let rules = me.rules;
                    match tokio::task::spawn_blocking(move || {
                        st.settle(&b, |wtx, d, s| {
                            crate::feedback::on_delivery_outcome(wtx, d, s, &rules)
                        })
                    })
                    .await
                    {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, "could not record delivery outcomes")
                        }
                        Err(e) => tracing::error!(error = %e, "settle task failed"),
                    }
                    drop(permits);
                    me.wake.notify_one();
                }
            })
        };
        let mut bodies: HashMap<Id, Arc<PreparedMessage>> = HashMap::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let want = sem.available_permits().clamp(1, 1000);
            let st = self.store.clone();
            let claimed = match tokio::task::spawn_blocking(move || {
                let claimed = st.claim_due(now(), want)?;
                let rcpts: Vec<&str> = claimed
                    .iter()
                    .map(|c| c.delivery.recipient.as_str())
                    .collect();
                let suppressed = st.suppressed_among(&rcpts)?;
                Ok::<_, StoreError>((claimed, suppressed))
            })
            .await
            {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot read the queue");
                    (Vec::new(), Default::default())
                }
                Err(_) => (Vec::new(), Default::default()),
            };
            let (claimed, suppressed) = claimed;
            if claimed.is_empty() {
                bodies.clear();
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            for c in claimed {
                let permit = match sem.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => break,
                };
                if suppressed.contains(&c.delivery.recipient) {
                    // suppressed after it was queued (a bounce or complaint meanwhile)
                    let s = suppressed_settlement(&c);
                    self.count(&s, "suppressed");
                    let _ = tx.send((s, permit)).await;
                    continue;
                }
                let body = match bodies.get(&c.delivery.message) {
                    Some(b) => Some(b.clone()),
                    None => {
                        let st = self.store.clone();
                        let id = c.delivery.message;
                        let raw = tokio::task::spawn_blocking(move || st.out_body(id))
                            .await
                            .ok()
                            .and_then(|r| r.ok())
                            .flatten();
                        raw.map(|r| {
                            let p = Arc::new(PreparedMessage::new(&r));
                            if bodies.len() > 10_000 {
                                bodies.clear();
                            }
                            bodies.insert(id, p.clone());
                            p
                        })
                    }
                };
                let me = self.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let s = me.attempt(c, body).await;
                    // the settler drops the permit after the commit
                    let _ = tx.send((s, permit)).await;
                });
            }
        }
        // let in-flight attempts finish and their outcomes be recorded
        let _ = sem.acquire_many(self.concurrency as u32).await;
        drop(tx);
        let _ = settler.await;
        self.engine.shutdown().await;
        reaper.abort();
    }

    async fn attempt(&self, c: Claimed, body: Option<Arc<PreparedMessage>>) -> Settlement {
        let d = &c.delivery;
        let mut s = Settlement {
            message: d.message,
            index: d.index,
            state: DeliveryState::Failed,
            event: DeliveryEvent {
                at: now(),
                state: DeliveryState::Failed,
                code: None,
                enhanced: None,
                text: String::new(),
                mx: None,
            },
            retry_at: None,
            site: None,
            policy: false,
            attempted: true,
        };
        let Some(body) = body else {
            s.event.text = "the message body is missing from the queue".into();
            return s;
        };
        let mail_from = self.verp.return_path(d.message, d.index);
        let rcpts = [d.recipient.clone()];
        let outcomes = self
            .engine
            .deliver(&DeliveryJob {
                mail_from: &mail_from,
                recipients: &rcpts,
                message: &body,
            })
            .await;
        let Some(o) = outcomes.into_iter().next() else {
            s.state = DeliveryState::Deferred;
            s.event.state = DeliveryState::Deferred;
            s.event.text = "no outcome from the engine".into();
            s.retry_at = Some(now() + time::Duration::minutes(5));
            return s;
        };
        match o.status {
            DeliveryStatus::Delivered { reply, host, tls } => {
                s.state = DeliveryState::Sent;
                s.event.code = Some(reply.code);
                s.event.enhanced = reply.enhanced.map(|e| e.to_string());
                s.event.text = format!(
                    "{}{}",
                    reply.lines.join(" "),
                    if tls { " (TLS)" } else { "" }
                );
                s.event.mx = Some(host.clone());
                s.site = Some(site_of(&host));
                self.count(&s, "sent");
            }
            DeliveryStatus::Bounced(f) => {
                s.state = DeliveryState::Bounced;
                fill_failure(&mut s, &f);
                s.policy = f.is_policy();
                s.site = f.host.as_deref().map(site_of);
                self.count(&s, "bounced");
            }
            DeliveryStatus::Deferred(f) => {
                fill_failure(&mut s, &f);
                s.site = f.host.as_deref().map(site_of);
                match &f.cause {
                    // no connection was made: not an attempt; wait for the site
                    FailureCause::SiteOnHold { until } => {
                        s.state = DeliveryState::Deferred;
                        s.attempted = false;
                        let wait = until
                            .duration_since(std::time::SystemTime::now())
                            .unwrap_or_default();
                        s.retry_at = Some(now() + wait.max(Duration::from_secs(1)));
                        self.count(&s, "held");
                    }
                    FailureCause::Busy => {
                        s.state = DeliveryState::Deferred;
                        s.attempted = false;
                        s.retry_at = Some(now() + Duration::from_secs(2));
                        self.count(&s, "busy");
                    }
                    _ => {
                        let age = (now() - c.created_at).unsigned_abs();
                        match self.retry.next_delay(d.attempts + 1, age) {
                            Some(delay) => {
                                s.state = DeliveryState::Deferred;
                                s.retry_at = Some(now() + delay);
                                self.count(&s, "deferred");
                            }
                            None => {
                                s.state = DeliveryState::Failed;
                                s.event.text = format!(
                                    "gave up after {} attempts: {}",
                                    d.attempts + 1,
                                    s.event.text
                                );
                                self.count(&s, "failed");
                            }
                        }
                    }
                }
            }
        }
        s.event.state = s.state;
        s
    }

    fn count(&self, s: &Settlement, outcome: &str) {
        self.metrics
            .deliveries
            .get_or_create(&crate::metrics::DeliveryLabels {
                site: s.site.clone().unwrap_or_else(|| "unknown".into()),
                outcome: outcome.into(),
            })
            .inc();
    }
}

fn suppressed_settlement(c: &Claimed) -> Settlement {
    Settlement {
        message: c.delivery.message,
        index: c.delivery.index,
        state: DeliveryState::Failed,
        event: DeliveryEvent {
            at: now(),
            state: DeliveryState::Failed,
            code: None,
            enhanced: None,
            text: "not sent: the address is on the suppression list".into(),
            mx: None,
        },
        retry_at: None,
        site: None,
        policy: false,
        attempted: false,
    }
}

/// The shaping site of a host; an address literal (relay, lab) is its own site.
fn site_of(host: &str) -> String {
    if host.parse::<std::net::IpAddr>().is_ok() {
        host.to_string()
    } else {
        crate::delivery::site_key(host)
    }
}

fn fill_failure(s: &mut Settlement, f: &crate::delivery::Failure) {
    if let Some(r) = f.reply() {
        s.event.code = Some(r.code);
        s.event.enhanced = r.enhanced.map(|e| e.to_string());
    }
    s.event.text = f.to_string();
    s.event.mx = f.host.clone();
}

#[cfg(test)]
mod tests {
    use crate::delivery::ShapingConfig;

    #[test]
    fn the_shaping_example_is_valid_and_changes_limits() {
        let cfg: ShapingConfig =
            toml::from_str(include_str!("../config/shaping.example.toml")).unwrap();
        assert_eq!(cfg.global_messages_per_second, 200);
        assert!(cfg.profiles.contains_key("mailru"));
        let (profiles, default) = cfg.resolve().unwrap();
        assert!(
            profiles
                .iter()
                .any(|p| p.name == "mailru" && p.max_connections == 2)
        );
        assert_eq!(default.max_connections, 5);
        assert!(
            toml::from_str::<ShapingConfig>("global_messages_per_secnd = 1").is_err(),
            "unknown keys are refused"
        );
    }
}
