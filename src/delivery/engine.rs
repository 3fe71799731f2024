//! The delivery engine: routes a batch of recipients (MX or relay), gets or
//! reuses a connection for the site within its shaping limits, sends one
//! prepared message, feeds rate-limit replies back into shaping and
//! returns one outcome per recipient.
//!
//! It keeps only soft state (idle connections, sites on hold, hosts whose
//! TLS is broken); everything durable belongs to the queue that calls it.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::DeliveryError;
use super::mx::{Resolver, Target, site_key};
use super::outcome::{DeliveryStatus, Failure, FailureCause, RecipientOutcome, Stage};
use super::shaping::{ConnectionPermit, Shaper, ShapingConfig, Site};
use super::smtp::address;
use super::smtp::message::PreparedMessage;
use super::smtp::relay::{Credentials, RelayConfig};
use super::smtp::tls::TlsPolicy;
use super::smtp::{ClientConfig, ConnectOptions, SmtpConnection};

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// SMTP client settings (HELO name, timeouts, trust anchors).
    pub client: ClientConfig,
    /// Shaping profiles and limits.
    pub shaping: ShapingConfig,
    /// TLS policy for domains not listed in `tls_policies`.
    pub default_tls: TlsPolicy,
    /// Per recipient domain TLS policy (e.g. `RequireVerified` for a
    /// partner that demands it).
    pub tls_policies: HashMap<String, TlsPolicy>,
    /// Send everything through this relay instead of MX delivery.
    pub relay: Option<RelayConfig>,
    /// Port for MX delivery: 25, except in tests.
    pub smtp_port: u16,
    /// Most addresses tried per delivery before giving up for now.
    pub max_connect_attempts: usize,
    /// Idle connections older than this are not reused.
    pub max_idle: Duration,
    /// How long a host whose STARTTLS failed is contacted in plain text.
    pub tls_broken_ttl: Duration,
}

impl EngineConfig {
    /// Defaults around a client configuration.
    pub fn new(client: ClientConfig) -> Self {
        Self {
            client,
            shaping: ShapingConfig::default(),
            default_tls: TlsPolicy::Opportunistic,
            tls_policies: HashMap::new(),
            relay: None,
            smtp_port: 25,
            max_connect_attempts: 5,
            max_idle: Duration::from_secs(30),
            tls_broken_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// Where the mail for one domain goes.
#[derive(Debug, Clone)]
pub struct Route {
    /// The recipient domain.
    pub domain: String,
    /// Hosts to try, in order.
    pub targets: Vec<Target>,
    /// The shaping site.
    pub site_key: String,
    /// TCP port.
    pub port: u16,
    /// TLS policy.
    pub tls: TlsPolicy,
    /// Relay only: TLS from the first byte.
    pub implicit_tls: bool,
    /// Relay only: AUTH credentials.
    pub credentials: Option<Credentials>,
    /// Relay only: AUTH allowed without TLS.
    pub allow_plaintext_auth: bool,
}

/// A connection checked out for one or more transactions; give it back
/// with [`Engine::checkin`].
#[derive(Debug)]
pub struct Lease {
    /// The connection.
    pub conn: SmtpConnection,
    permit: ConnectionPermit,
    reused: bool,
}

impl Lease {
    /// Whether the connection came from the idle pool.
    pub fn is_reused(&self) -> bool {
        self.reused
    }

    /// The shaping site of the connection.
    pub fn site(&self) -> &Arc<Site> {
        self.permit.site()
    }
}

struct Idle {
    conn: SmtpConnection,
    permit: ConnectionPermit,
}

struct Inner {
    cfg: EngineConfig,
    resolver: Resolver,
    shaper: Shaper,
    pool: Mutex<HashMap<String, Vec<Idle>>>,
    tls_broken: Mutex<HashMap<String, Instant>>,
}

/// The engine. Clone it freely; all clones share state.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field(
                "relay",
                &self.inner.cfg.relay.as_ref().map(|r| r.to_string()),
            )
            .finish_non_exhaustive()
    }
}

/// One message for a batch of recipients.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryJob<'a> {
    /// Reverse path (e.g. a VERP address); empty for `<>`.
    pub mail_from: &'a str,
    /// Recipients; they are grouped by domain internally.
    pub recipients: &'a [String],
    /// The signed message.
    pub message: &'a PreparedMessage,
}

impl Engine {
    /// Builds an engine.
    pub fn new(cfg: EngineConfig, resolver: Resolver) -> Result<Self, DeliveryError> {
        let shaper = Shaper::new(&cfg.shaping)?;
        Ok(Self {
            inner: Arc::new(Inner {
                cfg,
                resolver,
                shaper,
                pool: Mutex::new(HashMap::new()),
                tls_broken: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The shaper (for holds and metrics).
    pub fn shaper(&self) -> &Shaper {
        &self.inner.shaper
    }

    /// The resolver.
    pub fn resolver(&self) -> &Resolver {
        &self.inner.resolver
    }

    /// Whether opportunistic STARTTLS to `host` recently failed.
    pub fn is_tls_broken(&self, host: &str) -> bool {
        let map = self
            .inner
            .tls_broken
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.get(host)
            .is_some_and(|t| t.elapsed() < self.inner.cfg.tls_broken_ttl)
    }

    /// Remembers that opportunistic STARTTLS to `host` fails.
    pub fn mark_tls_broken(&self, host: &str) {
        let mut map = self
            .inner
            .tls_broken
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            let ttl = self.inner.cfg.tls_broken_ttl;
            map.retain(|_, t| t.elapsed() < ttl);
        }
        map.insert(host.to_string(), Instant::now());
    }

    /// Number of idle pooled connections.
    pub fn idle_connections(&self) -> usize {
        let pool = self.inner.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.values().map(Vec::len).sum()
    }

    /// Resolves where mail for `domain` goes. A DNS failure comes back as a
    /// `Failure` at [`Stage::Dns`], with `permanent` telling bounce from retry.
    pub async fn route(&self, domain: &str) -> Result<Route, (Failure, bool)> {
        let cfg = &self.inner.cfg;
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if let Some(relay) = &cfg.relay {
            // Through hickory, not getaddrinfo (static builds have no NSS).
            let addrs = match self.inner.resolver.host_addresses(&relay.host).await {
                Ok(a) => a,
                Err(e) => {
                    let f = Failure::new(Stage::Dns, FailureCause::Dns(e.to_string()));
                    return Err((f, false));
                }
            };
            return Ok(Route {
                domain,
                targets: vec![Target {
                    host: relay.host.clone(),
                    addrs,
                    preference: 0,
                }],
                site_key: format!("relay:{}", relay.host),
                port: relay.port,
                tls: relay.tls,
                implicit_tls: relay.implicit_tls,
                credentials: relay.credentials.clone(),
                allow_plaintext_auth: relay.allow_plaintext_auth(),
            });
        }
        match self.inner.resolver.resolve_targets(&domain).await {
            Ok(targets) => Ok(Route {
                tls: cfg
                    .tls_policies
                    .get(&domain)
                    .copied()
                    .unwrap_or(cfg.default_tls),
                site_key: site_key(&targets),
                targets,
                domain,
                port: cfg.smtp_port,
                implicit_tls: false,
                credentials: None,
                allow_plaintext_auth: false,
            }),
            Err(e) => {
                let permanent = e.is_permanent();
                Err((
                    Failure::new(Stage::Dns, FailureCause::Dns(e.to_string())),
                    permanent,
                ))
            }
        }
    }

    /// Gets a connection for the route: an idle one to one of its hosts, or
    /// a new one within the site's connection limit (waiting up to the
    /// shaping `connection_wait`). Fails fast when the site is on hold.
    pub async fn checkout(&self, route: &Route) -> Result<Lease, Failure> {
        let shaper = &self.inner.shaper;
        let site = shaper.site(&route.site_key);
        if let Some(until) = shaper.on_hold(&site) {
            return Err(Failure::new(
                Stage::Shaping,
                FailureCause::SiteOnHold { until },
            ));
        }
        let deadline = Instant::now() + shaper.connection_wait();
        let permit = loop {
            if let Some(idle) = self.take_idle(route) {
                return Ok(Lease {
                    conn: idle.conn,
                    permit: idle.permit,
                    reused: true,
                });
            }
            // A return between here and the wait below is not missed:
            // notify_one keeps a permit when nobody is waiting yet.
            let returned = site.connection_returned();
            if let Some(p) = shaper.try_acquire_connection(&site) {
                break p;
            }
            // Slots held by idle connections to other hosts of the site
            // (another domain's MX): close one to make room.
            if let Some(Idle { conn, permit }) = self.evict_idle(&route.site_key) {
                conn.quit().await;
                drop(permit);
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Failure::new(Stage::Shaping, FailureCause::Busy));
            }
            tokio::select! {
                p = shaper.wait_connection(&site) => match p {
                    Some(p) => break p,
                    None => return Err(Failure::new(Stage::Shaping, FailureCause::Busy)),
                },
                _ = returned => continue,
                _ = tokio::time::sleep(deadline - now) => {
                    return Err(Failure::new(Stage::Shaping, FailureCause::Busy));
                }
            }
        };
        let conn = self.connect_route(route, &site).await?;
        Ok(Lease {
            conn,
            permit,
            reused: false,
        })
    }

    /// Returns a connection: pooled when still usable and under the site's
    /// messages-per-connection limit, otherwise closed with QUIT (in a
    /// background task, so it must be called inside a Tokio runtime).
    pub fn checkin(&self, lease: Lease) {
        let Lease { conn, permit, .. } = lease;
        let max = permit.site().profile().max_messages_per_connection;
        if conn.is_usable() && conn.transactions() < max {
            let site = permit.site().clone();
            {
                let mut pool = self.inner.pool.lock().unwrap_or_else(|e| e.into_inner());
                pool.entry(site.key().to_string())
                    .or_default()
                    .push(Idle { conn, permit });
            }
            site.notify_connection_returned();
        } else {
            // QUIT in the background: the caller need not wait a round trip.
            tokio::spawn(async move {
                conn.quit().await;
                drop(permit);
            });
        }
    }

    /// Closes idle connections unused for `older_than` or more.
    pub async fn close_idle(&self, older_than: Duration) {
        let stale: Vec<Idle> = {
            let mut pool = self.inner.pool.lock().unwrap_or_else(|e| e.into_inner());
            let mut out = Vec::new();
            for list in pool.values_mut() {
                let (old, keep): (Vec<Idle>, Vec<Idle>) = list
                    .drain(..)
                    .partition(|i| i.conn.idle_for() >= older_than);
                *list = keep;
                out.extend(old);
            }
            pool.retain(|_, l| !l.is_empty());
            out
        };
        let mut set = tokio::task::JoinSet::new();
        for Idle { conn, permit } in stale {
            set.spawn(async move {
                conn.quit().await;
                drop(permit);
            });
        }
        while set.join_next().await.is_some() {}
    }

    /// Spawns a task that closes connections idle for `max_idle` every
    /// `every`; it ends when the last clone of the engine is dropped.
    pub fn spawn_reaper(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let engine = Engine { inner };
                let max_idle = engine.inner.cfg.max_idle;
                engine.close_idle(max_idle).await;
            }
        })
    }

    /// QUITs every idle connection.
    pub async fn shutdown(&self) {
        self.close_idle(Duration::ZERO).await;
    }

    fn take_idle(&self, route: &Route) -> Option<Idle> {
        let hosts: HashSet<&str> = route.targets.iter().map(|t| t.host.as_str()).collect();
        let max_idle = self.inner.cfg.max_idle;
        let mut pool = self.inner.pool.lock().unwrap_or_else(|e| e.into_inner());
        let list = pool.get_mut(&route.site_key)?;
        // Drop (without QUIT) connections idle too long; the server has
        // likely closed them already.
        list.retain(|i| i.conn.idle_for() < max_idle && i.conn.is_usable());
        let pos = list.iter().rposition(|i| {
            hosts.contains(i.conn.host())
                && (route.tls != TlsPolicy::RequireVerified || i.conn.is_tls_verified())
        })?;
        Some(list.swap_remove(pos))
    }

    fn evict_idle(&self, site_key: &str) -> Option<Idle> {
        let mut pool = self.inner.pool.lock().unwrap_or_else(|e| e.into_inner());
        let list = pool.get_mut(site_key)?;
        if list.is_empty() {
            return None;
        }
        Some(list.remove(0))
    }

    async fn connect_route(&self, route: &Route, site: &Site) -> Result<SmtpConnection, Failure> {
        let cfg = &self.inner.cfg;
        let mut last: Option<Failure> = None;
        let mut tries = 0;
        for target in &route.targets {
            for ip in &target.addrs {
                if tries >= cfg.max_connect_attempts.max(1) {
                    break;
                }
                tries += 1;
                let mut policy = route.tls;
                if policy == TlsPolicy::Opportunistic && self.is_tls_broken(&target.host) {
                    policy = TlsPolicy::Disabled;
                }
                let opts = ConnectOptions {
                    host: &target.host,
                    addr: SocketAddr::new(*ip, route.port),
                    tls: policy,
                    implicit_tls: route.implicit_tls,
                    credentials: route.credentials.as_ref(),
                    allow_plaintext_auth: route.allow_plaintext_auth,
                };
                match SmtpConnection::connect(&cfg.client, &opts).await {
                    Ok(c) => return Ok(c),
                    Err(e) if e.tls_failed => {
                        // Opportunistic TLS failed: remember and go plain.
                        tracing::info!(host = %target.host, error = %e, "STARTTLS failed; retrying without TLS");
                        self.mark_tls_broken(&target.host);
                        let plain = ConnectOptions {
                            tls: TlsPolicy::Disabled,
                            ..opts
                        };
                        match SmtpConnection::connect(&cfg.client, &plain).await {
                            Ok(c) => return Ok(c),
                            Err(e) => last = Some(e.failure),
                        }
                    }
                    Err(e) => {
                        if let Some(r) = e.failure.reply() {
                            self.inner.shaper.observe_reply(site, r);
                        }
                        last = Some(e.failure);
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            Failure::new(
                Stage::Connect,
                FailureCause::Io("no address to connect to".into()),
            )
        }))
    }

    /// Delivers one message to `job.recipients` (grouped by domain), one
    /// outcome per recipient in the given order.
    pub async fn deliver(&self, job: &DeliveryJob<'_>) -> Vec<RecipientOutcome> {
        let mut status: Vec<Option<DeliveryStatus>> = vec![None; job.recipients.len()];
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, r) in job.recipients.iter().enumerate() {
            match address::check(r) {
                Err(e) => {
                    status[i] = Some(DeliveryStatus::Bounced(Failure::new(
                        Stage::Validate,
                        FailureCause::InvalidAddress(e.to_string()),
                    )));
                }
                Ok(a) => match groups.iter_mut().find(|(d, _)| *d == a.domain) {
                    Some((_, v)) => v.push(i),
                    None => groups.push((a.domain, vec![i])),
                },
            }
        }
        for (domain, idx) in groups {
            let rcpts: Vec<String> = idx.iter().map(|&i| job.recipients[i].clone()).collect();
            let results = self
                .deliver_domain(&domain, job.mail_from, &rcpts, job.message)
                .await;
            for (i, s) in idx.into_iter().zip(results) {
                status[i] = Some(s);
            }
        }
        job.recipients
            .iter()
            .zip(status)
            .map(|(r, s)| RecipientOutcome {
                recipient: r.clone(),
                status: s.unwrap_or_else(|| {
                    DeliveryStatus::Deferred(Failure::new(
                        Stage::Validate,
                        FailureCause::Protocol("recipient not processed".into()),
                    ))
                }),
            })
            .collect()
    }

    async fn deliver_domain(
        &self,
        domain: &str,
        mail_from: &str,
        rcpts: &[String],
        message: &PreparedMessage,
    ) -> Vec<DeliveryStatus> {
        let all = |s: DeliveryStatus| vec![s; rcpts.len()];
        let route = match self.route(domain).await {
            Ok(r) => r,
            Err((f, true)) => return all(DeliveryStatus::Bounced(f)),
            Err((f, false)) => return all(DeliveryStatus::Deferred(f)),
        };
        for attempt in 0..2 {
            let mut lease = match self.checkout(&route).await {
                Ok(l) => l,
                // Connection-level problems never bounce: another MX, a
                // later try or the operator may fix them.
                Err(f) => return all(DeliveryStatus::Deferred(f)),
            };
            let site = lease.site().clone();
            self.inner.shaper.until_message_allowed(&site).await;
            let outcomes = lease.conn.send(mail_from, rcpts, message).await;

            // A pooled connection the server had silently closed: nothing was
            // decided, so try once more on a fresh connection.
            let stale = lease.is_reused()
                && attempt == 0
                && !lease.conn.is_usable()
                && outcomes.iter().all(|o| {
                    matches!(&o.status, DeliveryStatus::Deferred(f)
                        if f.stage == Stage::MailFrom
                            && matches!(f.cause, FailureCause::ConnectionClosed | FailureCause::Io(_)))
                });
            if stale {
                drop(lease);
                continue;
            }

            let mut delivered = false;
            for o in &outcomes {
                match &o.status {
                    DeliveryStatus::Delivered { .. } => delivered = true,
                    DeliveryStatus::Deferred(f) | DeliveryStatus::Bounced(f) => {
                        if let Some(r) = f.reply() {
                            self.inner.shaper.observe_reply(&site, r);
                        }
                    }
                }
            }
            if delivered {
                self.inner.shaper.record_success(&site);
            }
            self.checkin(lease);
            return outcomes.into_iter().map(|o| o.status).collect();
        }
        all(DeliveryStatus::Deferred(Failure::new(
            Stage::Connect,
            FailureCause::ConnectionClosed,
        )))
    }
}
