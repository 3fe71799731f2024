//! ESP webhooks in: what Amazon SES (through SNS), SendGrid, Mailgun, Postmark and a generic
//! signed JSON format report about bounces, complaints and deliveries. Each provider module
//! checks the request's authenticity the way that provider signs it, refuses stale or
//! replayed requests, and turns the payload into [`FeedbackEvent`]s carrying the provider's
//! event identity as idempotency key, so the same event twice is applied once by
//! [`crate::feedback::Feedback::record`].
//!
//! This module knows nothing of the HTTP server: it takes header values as plain strings and
//! the raw body bytes, and answers typed errors. Only [`fetch`] talks to the network (SNS
//! signing certificates and subscription confirmations).

pub mod fetch;
pub mod generic;
pub mod mailgun;
pub mod postmark;
pub mod sendgrid;
pub mod sns;

use crate::config::WebhookSettings;
use crate::feedback::FeedbackEvent;
use crate::model::normalise_email;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Mutex;
use time::OffsetDateTime;

/// The providers webhooks are accepted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Ses,
    Sendgrid,
    Mailgun,
    Postmark,
    Generic,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Ses => "ses",
            Provider::Sendgrid => "sendgrid",
            Provider::Mailgun => "mailgun",
            Provider::Postmark => "postmark",
            Provider::Generic => "generic",
        }
    }

    /// The feedback source recorded with each event ("webhook:ses" …).
    pub fn source(self) -> String {
        format!("webhook:{}", self.name())
    }

    /// The setting that turns the endpoint on.
    fn setting(self) -> &'static str {
        match self {
            Provider::Ses => "ses_topic_arns",
            Provider::Sendgrid => "sendgrid_public_key",
            Provider::Mailgun => "mailgun_signing_key",
            Provider::Postmark => "postmark_username and postmark_password",
            Provider::Generic => "generic_webhook_secret",
        }
    }
}

/// Why a webhook request was refused. Messages say what was wrong without echoing secrets,
/// signatures or keys.
#[derive(Debug, thiserror::Error)]
pub enum EspError {
    #[error("the {} webhook is not enabled (set {})", .0.name(), .0.setting())]
    Disabled(Provider),
    /// Missing, malformed or wrong signature or credentials.
    #[error("{0}")]
    Unauthenticated(String),
    #[error(
        "the request's timestamp is {age} seconds away from the current time (more than {tolerance}); stale or replayed requests are refused"
    )]
    Stale { age: i64, tolerance: u64 },
    #[error("{0}")]
    Replayed(String),
    /// Authentic, but from a sender this appliance does not accept (an SNS topic not listed).
    #[error("{0}")]
    Forbidden(String),
    /// The body is not what the provider sends.
    #[error("{0}")]
    Malformed(String),
    /// Verification needs something that is out of reach right now (a signing certificate).
    #[error("{0}")]
    Unavailable(String),
}

pub type Result<T, E = EspError> = std::result::Result<T, E>;

/// What one verified request reports.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<FeedbackEvent>,
    /// Events that say nothing the rules act on (opens, clicks, deferrals, unusable
    /// addresses).
    pub ignored: usize,
    /// A one-time token claimed by this request (Mailgun); given back if applying failed so
    /// the provider's retry is not refused as a replay.
    pub claimed: Option<String>,
}

impl Batch {
    /// Adds an event about a usable address; anything else is counted as ignored.
    pub fn push(&mut self, ev: FeedbackEvent) {
        if normalise_email(&ev.recipient).is_ok() {
            self.events.push(ev);
        } else {
            self.ignored += 1;
        }
    }
}

/// Refuses timestamps further than `tolerance` seconds from `now`, in either direction.
pub fn check_fresh(ts: i64, now: i64, tolerance: u64) -> Result<()> {
    let age = now.saturating_sub(ts);
    if age.unsigned_abs() > tolerance {
        return Err(EspError::Stale { age, tolerance });
    }
    Ok(())
}

/// Parses a Unix timestamp in seconds ("1700000000"; Mailgun may add a fraction).
pub fn parse_unix(text: &str, what: &str) -> Result<i64> {
    let t = text.trim();
    let whole = t.split_once('.').map_or(t, |(w, _)| w);
    if whole.is_empty() || whole.len() > 12 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EspError::Unauthenticated(format!(
            "{what} is not a Unix timestamp in seconds"
        )));
    }
    whole
        .parse::<i64>()
        .map_err(|_| EspError::Unauthenticated(format!("{what} is not a Unix timestamp")))
}

/// Constant-time check of a hex HMAC-SHA256 over the concatenated `parts`.
pub fn verify_hmac_hex(key: &[u8], parts: &[&[u8]], hex_mac: &str) -> bool {
    use hmac::{Hmac, Mac};
    let Ok(given) = hex::decode(hex_mac.trim()) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key) else {
        return false;
    };
    for p in parts {
        mac.update(p);
    }
    mac.verify_slice(&given).is_ok()
}

/// A string field of a JSON object ("" when absent or not a string; numbers are spelled out).
pub(crate) fn text(v: &serde_json::Value, key: &str) -> String {
    match v.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// One-time values (Mailgun tokens, SNS message ids) seen within the replay window. Memory is
/// bounded: entries expire with the window, and beyond `cap` the oldest are forgotten first.
pub struct ReplayGuard {
    inner: Mutex<Seen>,
    cap: usize,
}

#[derive(Default)]
struct Seen {
    until: HashMap<String, i64>,
    order: VecDeque<(i64, String)>,
}

impl ReplayGuard {
    pub fn new(cap: usize) -> ReplayGuard {
        ReplayGuard {
            inner: Mutex::new(Seen::default()),
            cap: cap.max(1),
        }
    }

    /// Claims `key` until `expires` (Unix seconds). False when it was claimed before and has
    /// not expired: a replay.
    pub fn claim(&self, key: &str, now: i64, expires: i64) -> bool {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((t, _)) = s.order.front() {
            if *t > now && s.until.len() < self.cap {
                break;
            }
            if let Some((t, k)) = s.order.pop_front()
                && s.until.get(&k) == Some(&t)
            {
                s.until.remove(&k);
            }
        }
        if s.until.get(key).is_some_and(|&t| t > now) {
            return false;
        }
        s.until.insert(key.to_string(), expires);
        s.order.push_back((expires, key.to_string()));
        true
    }

    /// Gives a claimed key back (the request that claimed it was not applied).
    pub fn release(&self, key: &str) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.until.remove(key);
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .until
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How many one-time tokens are remembered at most (about 100 bytes each).
const REPLAY_CAP: usize = 100_000;

/// What an SNS request asks for, once verified.
#[derive(Debug)]
pub enum SnsOutcome {
    /// SES notifications to apply.
    Events(Batch),
    /// A subscription to confirm by fetching `url` (done in the background).
    Subscribe { topic: String, url: String },
    /// The same confirmation request again (already acted on).
    DuplicateSubscription,
    /// AWS reports the endpoint was unsubscribed; nothing to do.
    Unsubscribed { topic: String },
}

/// The webhook receiver: settings, the SNS certificate cache and the replay guards.
pub struct Inbound {
    settings: WebhookSettings,
    certs: sns::CertCache,
    fetcher: fetch::Fetcher,
    mailgun_tokens: ReplayGuard,
    sns_confirmations: ReplayGuard,
}

impl Inbound {
    /// `data_dir` holds the SNS certificate cache (`sns-certs/`).
    pub fn new(settings: WebhookSettings, data_dir: &Path) -> Inbound {
        let fetcher = fetch::Fetcher::new();
        Inbound {
            certs: sns::CertCache::new(data_dir.join(sns::CERT_DIR), fetcher.clone()),
            fetcher,
            settings,
            mailgun_tokens: ReplayGuard::new(REPLAY_CAP),
            sns_confirmations: ReplayGuard::new(1000),
        }
    }

    pub fn settings(&self) -> &WebhookSettings {
        &self.settings
    }

    /// Is the endpoint for `p` configured?
    pub fn check_enabled(&self, p: Provider) -> Result<()> {
        let s = &self.settings;
        let on = match p {
            Provider::Ses => !s.ses_topic_arns.is_empty(),
            Provider::Sendgrid => s.sendgrid_public_key.is_some(),
            Provider::Mailgun => s.mailgun_signing_key.is_some(),
            Provider::Postmark => s.postmark.is_some(),
            Provider::Generic => s.generic_secret.is_some(),
        };
        if on {
            Ok(())
        } else {
            Err(EspError::Disabled(p))
        }
    }

    /// Amazon SES notifications delivered by SNS: the message signature (with the signing
    /// certificate from the cache or from AWS), the topic allow-list and the timestamp.
    pub async fn ses(&self, body: &[u8], now: OffsetDateTime) -> Result<SnsOutcome> {
        self.check_enabled(Provider::Ses)?;
        let msg = sns::parse(body)?;
        let arns = &self.settings.ses_topic_arns;
        if !arns.iter().any(|a| a == "*" || *a == msg.topic_arn) {
            return Err(EspError::Forbidden(format!(
                "SNS topic {} is not listed in ses_topic_arns",
                msg.topic_arn
            )));
        }
        sns::check_cert_url(&msg.signing_cert_url)?;
        check_fresh(
            sns::timestamp(&msg)?,
            now.unix_timestamp(),
            self.settings.tolerance_secs,
        )?;
        let canonical = sns::canonical(&msg)?;
        let key = self.certs.public_key(&msg.signing_cert_url).await?;
        sns::verify(&msg, &canonical, &key)?;
        match msg.kind.as_str() {
            "SubscriptionConfirmation" => {
                let url = msg.subscribe_url.clone().unwrap_or_default();
                sns::check_subscribe_url(&url)?;
                let t = now.unix_timestamp();
                let until = t.saturating_add(self.settings.tolerance_secs as i64);
                if !self.sns_confirmations.claim(&msg.message_id, t, until) {
                    return Ok(SnsOutcome::DuplicateSubscription);
                }
                Ok(SnsOutcome::Subscribe {
                    topic: msg.topic_arn,
                    url,
                })
            }
            "UnsubscribeConfirmation" => Ok(SnsOutcome::Unsubscribed {
                topic: msg.topic_arn,
            }),
            _ => Ok(SnsOutcome::Events(sns::ses_events(
                &msg.message,
                &msg.message_id,
            ))),
        }
    }

    /// Confirms an SNS subscription in the background by fetching its SubscribeURL. Failures
    /// are logged (without the URL, which carries a token); AWS re-sends the confirmation
    /// request, and the subscription can also be confirmed in the AWS console.
    pub fn confirm_subscription(&self, topic: String, url: String) {
        tracing::info!(topic = %topic, "confirming SNS subscription");
        let fetcher = self.fetcher.clone();
        tokio::spawn(async move {
            match fetcher.get(&url, 64 * 1024).await {
                Ok(_) => tracing::info!(topic = %topic, "SNS subscription confirmed"),
                Err(e) => tracing::warn!(
                    topic = %topic,
                    error = %e,
                    "SNS subscription confirmation failed; AWS asks again, or confirm it in the AWS console"
                ),
            }
        });
    }

    /// A request from SendGrid, Mailgun, Postmark or the generic format: `header` gives the
    /// value of a request header by its lower-case name. SendGrid: ECDSA P-256 over the
    /// timestamp header and the raw body. Mailgun: HMAC-SHA256 of timestamp and token, each
    /// token accepted once. Postmark: HTTP Basic credentials. Generic:
    /// `X-Mailstead-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
    pub fn receive<'h>(
        &self,
        p: Provider,
        header: impl Fn(&str) -> Option<&'h str>,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<Batch> {
        let s = &self.settings;
        let (now, tolerance) = (now.unix_timestamp(), s.tolerance_secs);
        let off = || EspError::Disabled(p);
        match p {
            Provider::Sendgrid => {
                let key = s.sendgrid_public_key.as_deref().ok_or_else(off)?;
                sendgrid::verify(
                    key,
                    header(sendgrid::SIGNATURE_HEADER),
                    header(sendgrid::TIMESTAMP_HEADER),
                    body,
                    now,
                    tolerance,
                )?;
                sendgrid::events(body)
            }
            Provider::Mailgun => {
                let key = s.mailgun_signing_key.as_ref().ok_or_else(off)?;
                self.mailgun(key.expose().as_bytes(), body, now)
            }
            Provider::Postmark => {
                let (user, pass) = s.postmark.as_ref().ok_or_else(off)?;
                postmark::check_auth(header("authorization"), user, pass.expose())?;
                postmark::events(body)
            }
            Provider::Generic => {
                let secret = s.generic_secret.as_ref().ok_or_else(off)?;
                generic::verify(
                    secret.expose().as_bytes(),
                    header(generic::SIGNATURE_HEADER),
                    header(generic::TIMESTAMP_HEADER),
                    body,
                    now,
                    tolerance,
                )?;
                generic::events(body)
            }
            Provider::Ses => Err(EspError::Malformed(
                "SES notifications arrive as SNS messages at the ses endpoint".into(),
            )),
        }
    }

    fn mailgun(&self, key: &[u8], body: &[u8], now: i64) -> Result<Batch> {
        let (signed, data) = mailgun::parse(body)?;
        mailgun::verify(key, &signed, now, self.settings.tolerance_secs)?;
        let mut batch = mailgun::events(&data, &signed.token)?;
        let until = signed
            .timestamp
            .saturating_add(self.settings.tolerance_secs as i64)
            .max(now);
        if !self.mailgun_tokens.claim(&signed.token, now, until) {
            return Err(EspError::Replayed(
                "this Mailgun token was already used; replayed requests are refused".into(),
            ));
        }
        batch.claimed = Some(signed.token);
        Ok(batch)
    }

    /// Gives back a token a request claimed when its events could not be applied, so the
    /// provider's retry is not refused as a replay.
    pub fn release_token(&self, token: &str) {
        self.mailgun_tokens.release(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_is_checked_both_ways() {
        assert!(check_fresh(1000, 1000, 300).is_ok());
        assert!(check_fresh(700, 1000, 300).is_ok());
        assert!(matches!(
            check_fresh(699, 1000, 300),
            Err(EspError::Stale { age: 301, .. })
        ));
        assert!(check_fresh(1301, 1000, 300).is_err());
        assert!(check_fresh(i64::MIN, 1000, 300).is_err());
        assert!(check_fresh(i64::MAX, 1000, 300).is_err());
    }

    #[test]
    fn unix_timestamps() {
        assert_eq!(parse_unix("1700000000", "t").unwrap(), 1_700_000_000);
        assert_eq!(parse_unix(" 1700000000.25 ", "t").unwrap(), 1_700_000_000);
        for bad in ["", "-5", "abc", "1e9", "99999999999999999999", "."] {
            assert!(parse_unix(bad, "t").is_err(), "{bad}");
        }
    }

    #[test]
    fn hmac_checks() {
        use hmac::{Hmac, Mac};
        let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(b"key").unwrap();
        m.update(b"ab");
        let good = hex::encode(m.finalize().into_bytes());
        assert!(verify_hmac_hex(b"key", &[b"a", b"b"], &good));
        assert!(verify_hmac_hex(b"key", &[b"ab"], &good.to_uppercase()));
        assert!(!verify_hmac_hex(b"key", &[b"a", b"c"], &good));
        assert!(!verify_hmac_hex(b"other", &[b"ab"], &good));
        assert!(!verify_hmac_hex(b"key", &[b"ab"], &good[..60]));
        assert!(!verify_hmac_hex(b"key", &[b"ab"], "zz"));
    }

    #[test]
    fn replay_guard_remembers_within_the_window_and_stays_bounded() {
        let g = ReplayGuard::new(3);
        assert!(g.claim("a", 100, 200));
        assert!(!g.claim("a", 150, 250), "replay within the window");
        assert!(g.claim("a", 200, 300), "expired: usable again");
        g.release("a");
        assert!(g.claim("a", 201, 300), "given back");
        for k in ["b", "c", "d", "e"] {
            assert!(g.claim(k, 210, 400));
        }
        assert!(g.len() <= 3, "bounded: {}", g.len());
    }

    #[test]
    fn batches_ignore_unusable_addresses() {
        let mut b = Batch::default();
        b.push(FeedbackEvent::provider_delivered("ok@example.com", "t"));
        b.push(FeedbackEvent::provider_delivered("not an address", "t"));
        b.push(FeedbackEvent::provider_delivered("", "t"));
        assert_eq!((b.events.len(), b.ignored), (1, 2));
    }
}
