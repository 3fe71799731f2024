//! Traffic shaping: a global messages-per-second limit, per-site profiles
//! (concurrent connections, messages per connection, messages per minute),
//! holds after rate-limit replies, and the per-recipient retry schedule.
//!
//! A *site* is the key from [`super::mx::site_key`]: all domains whose mail
//! goes to the same provider share one site, so 10,000 Google Workspace
//! domains do not each get their own connection budget.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use serde::Deserialize;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::smtp::reply::Reply;

/// Limits for one kind of site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteProfile {
    /// Profile name (`gmail`, `yahoo`, `outlook`, `default`, or your own).
    pub name: String,
    /// Site keys (registrable domains of MX hosts) this profile applies to;
    /// a key matches a suffix when equal to it or ending in `.suffix`.
    pub mx_suffixes: Vec<String>,
    /// Simultaneous connections to the site.
    pub max_connections: u32,
    /// Messages sent over one connection before it is closed.
    pub max_messages_per_connection: u32,
    /// Messages per minute to the site (`None`: only the global limit).
    pub messages_per_minute: Option<NonZeroU32>,
}

/// Overrides for one profile; unset fields keep the built-in values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProfileOverride {
    /// See [`SiteProfile::mx_suffixes`] (replaces the list when given).
    pub mx_suffixes: Option<Vec<String>>,
    /// See [`SiteProfile::max_connections`].
    pub max_connections: Option<u32>,
    /// See [`SiteProfile::max_messages_per_connection`].
    pub max_messages_per_connection: Option<u32>,
    /// See [`SiteProfile::messages_per_minute`]; 0 removes the limit.
    pub messages_per_minute: Option<u32>,
}

/// Shaping configuration, e.g. from TOML:
///
/// ```toml
/// [delivery.shaping]
/// global_messages_per_second = 100
/// [delivery.shaping.profiles.gmail]
/// max_connections = 5
/// [delivery.shaping.profiles.mailru]
/// mx_suffixes = ["mail.ru"]
/// max_connections = 2
/// messages_per_minute = 100
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShapingConfig {
    /// Messages per second over all sites; 0 for no global limit.
    pub global_messages_per_second: u32,
    /// Overrides of the `default` profile (sites matching no other profile).
    pub default: ProfileOverride,
    /// Overrides of the built-in profiles by name, or new profiles (which
    /// then need `mx_suffixes`).
    pub profiles: BTreeMap<String, ProfileOverride>,
    /// First hold after a rate-limit reply, in seconds.
    pub hold_base_secs: u64,
    /// Longest hold, in seconds.
    pub hold_max_secs: u64,
    /// How long a delivery waits for a free connection slot, in seconds.
    pub connection_wait_secs: u64,
}

impl Default for ShapingConfig {
    fn default() -> Self {
        Self {
            global_messages_per_second: 200,
            default: ProfileOverride::default(),
            profiles: BTreeMap::new(),
            hold_base_secs: 60,
            hold_max_secs: 3600,
            connection_wait_secs: 30,
        }
    }
}

fn nz(n: u32) -> Option<NonZeroU32> {
    NonZeroU32::new(n)
}

/// The built-in profiles. Conservative for a new sending IP: the big
/// mailbox providers throttle by reputation, and backing off on their 4xx
/// replies matters more than these numbers.
pub fn builtin_profiles() -> Vec<SiteProfile> {
    vec![
        SiteProfile {
            name: "gmail".into(),
            mx_suffixes: vec!["google.com".into(), "googlemail.com".into()],
            max_connections: 10,
            max_messages_per_connection: 100,
            messages_per_minute: nz(1200),
        },
        SiteProfile {
            name: "yahoo".into(),
            mx_suffixes: vec!["yahoodns.net".into()],
            max_connections: 5,
            max_messages_per_connection: 20,
            messages_per_minute: nz(300),
        },
        SiteProfile {
            name: "outlook".into(),
            mx_suffixes: vec!["outlook.com".into()],
            max_connections: 8,
            max_messages_per_connection: 30,
            messages_per_minute: nz(600),
        },
    ]
}

/// The built-in profile for sites matching no other profile.
pub fn builtin_default_profile() -> SiteProfile {
    SiteProfile {
        name: "default".into(),
        mx_suffixes: Vec::new(),
        max_connections: 4,
        max_messages_per_connection: 50,
        messages_per_minute: nz(300),
    }
}

/// Invalid shaping configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapingConfigError {
    /// A new profile without `mx_suffixes`.
    #[error("shaping profile {0:?} is not built in and has no mx_suffixes")]
    NoSuffixes(String),
    /// Zero connections or messages per connection.
    #[error(
        "shaping profile {0:?}: max_connections and max_messages_per_connection must be at least 1"
    )]
    Zero(String),
}

fn apply(p: &mut SiteProfile, o: &ProfileOverride) {
    if let Some(s) = &o.mx_suffixes {
        p.mx_suffixes = s
            .iter()
            .map(|x| x.trim_end_matches('.').to_ascii_lowercase())
            .collect();
    }
    if let Some(n) = o.max_connections {
        p.max_connections = n;
    }
    if let Some(n) = o.max_messages_per_connection {
        p.max_messages_per_connection = n;
    }
    if let Some(n) = o.messages_per_minute {
        p.messages_per_minute = nz(n);
    }
}

impl ShapingConfig {
    /// The effective profiles (built-ins with overrides, then new ones) and
    /// the default profile.
    pub fn resolve(&self) -> Result<(Vec<SiteProfile>, SiteProfile), ShapingConfigError> {
        let mut profiles = builtin_profiles();
        for (name, o) in &self.profiles {
            if let Some(p) = profiles.iter_mut().find(|p| &p.name == name) {
                apply(p, o);
            } else {
                let mut p = builtin_default_profile();
                p.name = name.clone();
                apply(&mut p, o);
                if p.mx_suffixes.is_empty() {
                    return Err(ShapingConfigError::NoSuffixes(name.clone()));
                }
                profiles.push(p);
            }
        }
        let mut default = builtin_default_profile();
        apply(&mut default, &self.default);
        for p in profiles.iter().chain(std::iter::once(&default)) {
            if p.max_connections == 0 || p.max_messages_per_connection == 0 {
                return Err(ShapingConfigError::Zero(p.name.clone()));
            }
        }
        Ok((profiles, default))
    }
}

/// Why a site is throttled, from a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitSignal {
    /// Yahoo's `TS01`/`TS02`/`TS03` temporary deferrals.
    YahooTs,
    /// Gmail 4.7.28 or 4.7.0 "unusual rate".
    GmailRate,
    /// Generic wording ("try again later", "rate limited", "too many …").
    Generic,
}

/// Classifies a reply: does it ask us to slow down for the whole site?
///
/// Only transient (4xx) replies count. Per-recipient conditions (4.2.x
/// mailbox full or "user receiving mail at too high a rate", 452 4.5.3 too
/// many recipients) are not site-wide and return `None`.
pub fn classify_rate_limit(reply: &Reply) -> Option<RateLimitSignal> {
    if !reply.is_transient() {
        return None;
    }
    if let Some(e) = reply.enhanced
        && (e.subject == 2 || (e.subject == 5 && e.detail == 3))
    {
        return None;
    }
    let text = reply.text().to_ascii_lowercase();
    if text.contains("too many recipients") {
        return None;
    }
    if ["ts01", "ts02", "ts03"].iter().any(|t| text.contains(t)) {
        return Some(RateLimitSignal::YahooTs);
    }
    let e = reply.enhanced;
    if e.is_some_and(|e| e.subject == 7 && e.detail == 28)
        || (e.is_some_and(|e| e.subject == 7 && e.detail == 0) && text.contains("unusual rate"))
        || text.contains("unusual rate")
    {
        return Some(RateLimitSignal::GmailRate);
    }
    const GENERIC: &[&str] = &[
        "try again later",
        "try later",
        "rate limit",
        "rate-limit",
        "ratelimit",
        "rate limited",
        "too many",
        "throttl",
        "temporarily deferred",
        "temporarily rate",
        "exceeded",
        "slow down",
        "too fast",
    ];
    if GENERIC.iter().any(|g| text.contains(g)) {
        return Some(RateLimitSignal::Generic);
    }
    None
}

struct HoldState {
    until: Option<Instant>,
    consecutive: u32,
}

/// Runtime state of one site.
pub struct Site {
    key: String,
    profile: SiteProfile,
    connections: Arc<Semaphore>,
    rate: Option<DefaultDirectRateLimiter>,
    hold: Mutex<HoldState>,
    returned: Notify,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("key", &self.key)
            .field("profile", &self.profile.name)
            .finish_non_exhaustive()
    }
}

impl Site {
    /// The site key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The profile in force.
    pub fn profile(&self) -> &SiteProfile {
        &self.profile
    }

    /// Free connection slots right now.
    pub fn free_connections(&self) -> usize {
        self.connections.available_permits()
    }

    /// Signals that a connection of this site went back to an idle pool,
    /// waking one task waiting for a connection.
    pub fn notify_connection_returned(&self) {
        self.returned.notify_one();
    }

    /// Waits for [`Site::notify_connection_returned`].
    pub async fn connection_returned(&self) {
        self.returned.notified().await;
    }
}

/// A connection slot of a site; dropping it frees the slot.
#[derive(Debug)]
pub struct ConnectionPermit {
    _permit: OwnedSemaphorePermit,
    site: Arc<Site>,
}

impl ConnectionPermit {
    /// The site it belongs to.
    pub fn site(&self) -> &Arc<Site> {
        &self.site
    }
}

/// Shared shaping state. Cheap to share behind an `Arc`.
pub struct Shaper {
    profiles: Vec<SiteProfile>,
    default: SiteProfile,
    global: Option<DefaultDirectRateLimiter>,
    sites: Mutex<HashMap<String, Arc<Site>>>,
    hold_base: Duration,
    hold_max: Duration,
    connection_wait: Duration,
}

impl std::fmt::Debug for Shaper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shaper")
            .field("profiles", &self.profiles)
            .field("default", &self.default)
            .finish_non_exhaustive()
    }
}

fn per_minute_limiter(n: NonZeroU32) -> DefaultDirectRateLimiter {
    // Spread evenly with a small burst (~3 s worth) instead of n at once.
    let period = Duration::from_secs(60) / n.get();
    let burst = nz((n.get() / 20).max(1)).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_minute(n))
        .allow_burst(burst);
    RateLimiter::direct(quota)
}

impl Shaper {
    /// Builds the shaper from configuration.
    pub fn new(config: &ShapingConfig) -> Result<Self, ShapingConfigError> {
        let (profiles, default) = config.resolve()?;
        let global = nz(config.global_messages_per_second).map(|n| {
            let burst = nz((n.get() / 10).max(1)).unwrap_or(NonZeroU32::MIN);
            RateLimiter::direct(Quota::per_second(n).allow_burst(burst))
        });
        Ok(Self {
            profiles,
            default,
            global,
            sites: Mutex::new(HashMap::new()),
            hold_base: Duration::from_secs(config.hold_base_secs.max(1)),
            hold_max: Duration::from_secs(config.hold_max_secs.max(config.hold_base_secs.max(1))),
            connection_wait: Duration::from_secs(config.connection_wait_secs),
        })
    }

    /// The profile that applies to a site key.
    pub fn profile_for(&self, site_key: &str) -> &SiteProfile {
        self.profiles
            .iter()
            .find(|p| {
                p.mx_suffixes.iter().any(|s| {
                    site_key == s
                        || (site_key.len() > s.len()
                            && site_key.ends_with(s.as_str())
                            && site_key.as_bytes()[site_key.len() - s.len() - 1] == b'.')
                })
            })
            .unwrap_or(&self.default)
    }

    /// The state of a site, created on first use.
    pub fn site(&self, site_key: &str) -> Arc<Site> {
        let mut sites = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = sites.get(site_key) {
            return s.clone();
        }
        if sites.len() >= 4096 {
            // Forget idle sites: nobody holds them and they are not on hold.
            let now = Instant::now();
            sites.retain(|_, s| {
                Arc::strong_count(s) > 1
                    || s.hold
                        .lock()
                        .map(|h| h.until.is_some_and(|u| u > now) || h.consecutive > 0)
                        .unwrap_or(true)
            });
        }
        let profile = self.profile_for(site_key).clone();
        let site = Arc::new(Site {
            key: site_key.to_string(),
            connections: Arc::new(Semaphore::new(profile.max_connections as usize)),
            rate: profile.messages_per_minute.map(per_minute_limiter),
            hold: Mutex::new(HoldState {
                until: None,
                consecutive: 0,
            }),
            returned: Notify::new(),
            profile,
        });
        sites.insert(site_key.to_string(), site.clone());
        site
    }

    /// When the site is on hold, until when (as wall-clock time, for the
    /// queue's retry schedule).
    pub fn on_hold(&self, site: &Site) -> Option<SystemTime> {
        let h = site.hold.lock().unwrap_or_else(|e| e.into_inner());
        let until = h.until?;
        let now = Instant::now();
        if until <= now {
            return None;
        }
        Some(SystemTime::now() + (until - now))
    }

    /// Takes a free connection slot without waiting.
    pub fn try_acquire_connection(&self, site: &Arc<Site>) -> Option<ConnectionPermit> {
        site.connections
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|p| ConnectionPermit {
                _permit: p,
                site: site.clone(),
            })
    }

    /// How long a delivery may wait for a connection (configuration).
    pub fn connection_wait(&self) -> Duration {
        self.connection_wait
    }

    /// Waits, without limit, for a free connection slot.
    pub async fn wait_connection(&self, site: &Arc<Site>) -> Option<ConnectionPermit> {
        site.connections
            .clone()
            .acquire_owned()
            .await
            .ok()
            .map(|p| ConnectionPermit {
                _permit: p,
                site: site.clone(),
            })
    }

    /// Waits (up to the configured `connection_wait`) for a connection slot.
    pub async fn acquire_connection(&self, site: &Arc<Site>) -> Option<ConnectionPermit> {
        let fut = site.connections.clone().acquire_owned();
        match tokio::time::timeout(self.connection_wait, fut).await {
            Ok(Ok(p)) => Some(ConnectionPermit {
                _permit: p,
                site: site.clone(),
            }),
            _ => None,
        }
    }

    /// Waits until one more message may be sent to the site (global and
    /// per-site rate).
    pub async fn until_message_allowed(&self, site: &Site) {
        if let Some(g) = &self.global {
            g.until_ready().await;
        }
        if let Some(r) = &site.rate {
            r.until_ready().await;
        }
    }

    /// Looks at a reply from the site; a rate-limit reply puts the site on
    /// hold (exponentially longer per consecutive hit). Returns the hold end.
    pub fn observe_reply(&self, site: &Site, reply: &Reply) -> Option<SystemTime> {
        classify_rate_limit(reply)?;
        Some(self.penalize(site))
    }

    /// Puts the site on hold for `base × 2^(hits-1)`, capped.
    pub fn penalize(&self, site: &Site) -> SystemTime {
        let mut h = site.hold.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        // Several connections may report the same throttling at once: only
        // count a new hit when the current hold has run out.
        if h.until.is_some_and(|u| u > now) {
            let until = h.until.unwrap_or(now);
            return SystemTime::now() + (until - now);
        }
        h.consecutive = h.consecutive.saturating_add(1);
        let factor = 1u32 << (h.consecutive - 1).min(16);
        let hold = self.hold_base.saturating_mul(factor).min(self.hold_max);
        h.until = Some(now + hold);
        SystemTime::now() + hold
    }

    /// A successful delivery ends the series of consecutive hits.
    pub fn record_success(&self, site: &Site) {
        let mut h = site.hold.lock().unwrap_or_else(|e| e.into_inner());
        if h.until.is_none_or(|u| u <= Instant::now()) {
            h.consecutive = 0;
            h.until = None;
        }
    }
}

/// Retry schedule for deferred recipients: exponential backoff with jitter.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Delay before the first retry, in seconds (jittered down by up to
    /// `jitter`, so the first retry comes within this time).
    pub first_retry_secs: u64,
    /// Growth factor between tries.
    pub multiplier: f64,
    /// Longest delay between tries, in seconds.
    pub max_interval_secs: u64,
    /// Give up this long after the first attempt, in seconds.
    pub give_up_after_secs: u64,
    /// Fraction of the delay removed at random (0.0–1.0) to spread retries.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_retry_secs: 5 * 60,
            multiplier: 2.0,
            max_interval_secs: 4 * 3600,
            give_up_after_secs: 3 * 24 * 3600,
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// The delay before the next try, after `attempts` failed tries (≥ 1),
    /// the first of them `since_first` ago; `None` once it is time to give
    /// up (bounce as expired). The last try is placed at the deadline.
    pub fn next_delay(&self, attempts: u32, since_first: Duration) -> Option<Duration> {
        let give_up = Duration::from_secs(self.give_up_after_secs);
        if since_first >= give_up {
            return None;
        }
        let exp = attempts.saturating_sub(1).min(64) as i32;
        let nominal = (self.first_retry_secs as f64) * self.multiplier.max(1.0).powi(exp);
        let nominal = nominal.min(self.max_interval_secs as f64).max(1.0);
        let jitter = self.jitter.clamp(0.0, 1.0);
        let factor = 1.0 - rand::rng().random_range(0.0..=jitter);
        let delay = Duration::from_secs_f64(nominal * factor);
        Some(delay.min(give_up - since_first).max(Duration::from_secs(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_match_sites() {
        let s = Shaper::new(&ShapingConfig::default()).unwrap();
        assert_eq!(s.profile_for("google.com").name, "gmail");
        assert_eq!(s.profile_for("yahoodns.net").name, "yahoo");
        assert_eq!(s.profile_for("outlook.com").name, "outlook");
        assert_eq!(s.profile_for("protection.outlook.com").name, "outlook");
        assert_eq!(s.profile_for("notoutlook.com").name, "default");
        assert_eq!(s.profile_for("example.org").name, "default");
    }

    #[test]
    fn config_overrides() {
        let cfg: ShapingConfig = serde_json::from_str(
            r#"{"global_messages_per_second": 0,
                "default": {"max_connections": 2},
                "profiles": {"gmail": {"max_connections": 3, "messages_per_minute": 0},
                             "lab": {"mx_suffixes": ["Example.TEST."], "max_messages_per_connection": 7}}}"#,
        )
        .unwrap();
        let (profiles, default) = cfg.resolve().unwrap();
        let gmail = profiles.iter().find(|p| p.name == "gmail").unwrap();
        assert_eq!(gmail.max_connections, 3);
        assert_eq!(gmail.messages_per_minute, None);
        assert_eq!(gmail.max_messages_per_connection, 100);
        let lab = profiles.iter().find(|p| p.name == "lab").unwrap();
        assert_eq!(lab.mx_suffixes, vec!["example.test"]);
        assert_eq!(lab.max_messages_per_connection, 7);
        assert_eq!(default.max_connections, 2);
        let bad: ShapingConfig =
            serde_json::from_str(r#"{"profiles": {"x": {"max_connections": 1}}}"#).unwrap();
        assert!(bad.resolve().is_err());
        assert!(serde_json::from_str::<ShapingConfig>(r#"{"nope": 1}"#).is_err());
    }

    #[test]
    fn rate_limit_classification() {
        let c = |code, text: &str| classify_rate_limit(&Reply::new(code, text));
        assert_eq!(
            c(
                421,
                "4.7.0 [TSS04] Messages from 1.2.3.4 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes"
            ),
            Some(RateLimitSignal::Generic)
        );
        assert_eq!(
            c(
                421,
                "4.7.0 [TS01] Messages from 1.2.3.4 temporarily deferred"
            ),
            Some(RateLimitSignal::YahooTs)
        );
        assert_eq!(
            c(451, "Message temporarily deferred - [TS03]"),
            Some(RateLimitSignal::YahooTs)
        );
        assert_eq!(
            c(
                421,
                "4.7.28 Our system has detected an unusual rate of unsolicited mail originating from your IP address."
            ),
            Some(RateLimitSignal::GmailRate)
        );
        assert_eq!(
            c(
                450,
                "4.7.28 Gmail has detected this message is likely suspicious"
            ),
            Some(RateLimitSignal::GmailRate)
        );
        assert_eq!(
            c(421, "4.3.2 Service not available, try again later"),
            Some(RateLimitSignal::Generic)
        );
        assert_eq!(
            c(451, "4.7.500 Server busy. Please try again later"),
            Some(RateLimitSignal::Generic)
        );
        assert_eq!(
            c(421, "Too many concurrent SMTP connections"),
            Some(RateLimitSignal::Generic)
        );
        // not site-wide or not transient
        assert_eq!(c(452, "4.5.3 Too many recipients"), None);
        assert_eq!(
            c(
                452,
                "4.2.2 The email account that you tried to reach is over quota"
            ),
            None
        );
        assert_eq!(
            c(
                450,
                "4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages"
            ),
            None
        );
        assert_eq!(c(550, "5.7.1 rate limited forever"), None);
        assert_eq!(c(450, "4.1.1 mailbox unavailable"), None);
        assert_eq!(c(421, "Service not available"), None);
    }

    #[tokio::test]
    async fn holds_grow_and_reset() {
        let cfg = ShapingConfig {
            hold_base_secs: 10,
            hold_max_secs: 35,
            ..Default::default()
        };
        let s = Shaper::new(&cfg).unwrap();
        let site = s.site("example.org");
        assert!(s.on_hold(&site).is_none());
        let r = Reply::new(421, "4.7.0 try again later");
        let until = s.observe_reply(&site, &r).unwrap();
        let d = until.duration_since(SystemTime::now()).unwrap();
        assert!(d <= Duration::from_secs(10) && d > Duration::from_secs(8));
        assert!(s.on_hold(&site).is_some());
        // a second report during the same hold does not double it
        let again = s.observe_reply(&site, &r).unwrap();
        assert!(again.duration_since(SystemTime::now()).unwrap() <= Duration::from_secs(10));
        // simulate expiry, then the next hit doubles
        site.hold.lock().unwrap().until = Some(Instant::now());
        let d = s.penalize(&site).duration_since(SystemTime::now()).unwrap();
        assert!(d > Duration::from_secs(18) && d <= Duration::from_secs(20));
        site.hold.lock().unwrap().until = Some(Instant::now());
        let d = s.penalize(&site).duration_since(SystemTime::now()).unwrap();
        assert!(
            d > Duration::from_secs(33) && d <= Duration::from_secs(35),
            "{d:?}"
        );
        site.hold.lock().unwrap().until = Some(Instant::now());
        s.record_success(&site);
        let d = s.penalize(&site).duration_since(SystemTime::now()).unwrap();
        assert!(d <= Duration::from_secs(10));
        assert!(s.observe_reply(&site, &Reply::new(250, "ok")).is_none());
    }

    #[tokio::test]
    async fn connection_slots() {
        let cfg: ShapingConfig = serde_json::from_str(
            r#"{"default": {"max_connections": 2}, "connection_wait_secs": 0}"#,
        )
        .unwrap();
        let s = Shaper::new(&cfg).unwrap();
        let site = s.site("x.org");
        let a = s.try_acquire_connection(&site).unwrap();
        let _b = s.acquire_connection(&site).await.unwrap();
        assert!(s.try_acquire_connection(&site).is_none());
        assert!(s.acquire_connection(&site).await.is_none());
        drop(a);
        assert!(s.try_acquire_connection(&site).is_some());
    }

    #[test]
    fn retry_schedule() {
        let p = RetryPolicy::default();
        for _ in 0..100 {
            let d = p.next_delay(1, Duration::ZERO).unwrap();
            assert!(d <= Duration::from_secs(300) && d >= Duration::from_secs(240));
            let d = p.next_delay(30, Duration::from_secs(3600)).unwrap();
            assert!(d <= Duration::from_secs(4 * 3600) && d >= Duration::from_secs(11520));
        }
        let d2 = p.next_delay(2, Duration::ZERO).unwrap();
        assert!(d2 >= Duration::from_secs(480) && d2 <= Duration::from_secs(600));
        // last try lands on the deadline, then give up
        let almost = Duration::from_secs(3 * 24 * 3600 - 60);
        assert!(p.next_delay(20, almost).unwrap() <= Duration::from_secs(60));
        assert_eq!(p.next_delay(21, Duration::from_secs(3 * 24 * 3600)), None);
    }
}
