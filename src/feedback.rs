//! Feedback: what bounces, complaints and provider events say about recipients, and what
//! Mailstead does about it. Every source — our own SMTP replies (outbound), the inbound bounce
//! listener, mailbox polling and ESP webhooks — turns what it learned into [`FeedbackEvent`]s
//! and hands them here, so one set of rules decides:
//!
//! - a hard bounce (unknown user or host, moved, 5xx not-accepting) suppresses the address;
//! - a soft bounce is counted; `soft_bounce_limit` of them within `soft_bounce_days`
//!   suppress the address;
//! - a complaint unsubscribes the contact from every list and suppresses the address;
//! - a policy rejection (5.7.x, blocklists, authentication, content) is the sender's problem
//!   and is never held against the address.
//!
//! Each event is recorded (visible per address and in reports) and reported to integrators
//! through the event log, in the same transaction as the action.

use crate::bounce::{self, FeedbackKind, Reason, RecipientReport};
use crate::contacts::Contacts;
use crate::delivery::Verp;
use crate::model::{
    EventType, FeedbackAction, FeedbackRecord, FeedbackType, Id, MembershipStatus, Suppression,
    SuppressionReason, normalise_email, now,
};
use crate::policy::{Action, Actor, Denied};
use crate::store::{self, Store, StoreError, suppression};
use redb::WriteTransaction;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Contacts(#[from] crate::contacts::ContactError),
}

pub type Result<T, E = FeedbackError> = std::result::Result<T, E>;

/// One thing learned about one recipient, from any source.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackEvent {
    pub recipient: String,
    pub kind: FeedbackType,
    pub status: String,
    pub reply_code: String,
    pub reason: Reason,
    pub hard: bool,
    pub feedback_type: String,
    pub diagnostic: String,
    /// "smtp", "bounce-listener", "mailbox", "webhook:ses" …
    pub source: String,
    /// A provider's event identity ("ses:<MessageId>:<recipient>"): the same key twice is
    /// applied once.
    pub idempotency_key: Option<String>,
    /// The outbound message the feedback is about, when known.
    pub message: Option<Id>,
    pub at: OffsetDateTime,
}

impl FeedbackEvent {
    /// From one recipient of a parsed bounce/complaint message.
    pub fn from_report(r: &RecipientReport, kind: FeedbackKind, source: &str) -> FeedbackEvent {
        let kind = match kind {
            FeedbackKind::Complaint => FeedbackType::Complaint,
            FeedbackKind::AutoReply => FeedbackType::AutoReply,
            FeedbackKind::Delivered => FeedbackType::Delivered,
            FeedbackKind::Bounce | FeedbackKind::Unknown => {
                if r.reason == Reason::Feedback {
                    FeedbackType::Complaint
                } else if r.reason == Reason::Vacation {
                    FeedbackType::AutoReply
                } else if r.reason == Reason::Delivered {
                    FeedbackType::Delivered
                } else {
                    FeedbackType::Bounce
                }
            }
        };
        FeedbackEvent {
            recipient: r.recipient.clone(),
            kind,
            status: r.status.clone(),
            reply_code: r.reply_code.clone(),
            reason: r.reason,
            hard: r.hard,
            feedback_type: r.feedback_type.clone(),
            diagnostic: r.diagnostic.clone(),
            source: source.to_string(),
            idempotency_key: None,
            message: None,
            at: now(),
        }
    }

    /// A bounce reported by a provider (already classified as hard or soft by them); the
    /// reason is taken from their diagnostic where it says more.
    pub fn provider_bounce(
        recipient: &str,
        hard: bool,
        status: &str,
        diagnostic: &str,
        source: &str,
    ) -> FeedbackEvent {
        let code = diagnostic
            .split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 3 && matches!(w.as_bytes()[0], b'4' | b'5'))
            .and_then(|w| w.parse::<u16>().ok())
            .unwrap_or(if hard { 550 } else { 450 });
        let status = (!status.is_empty()).then_some(status);
        let r = bounce::classify_reply(recipient, code, status, diagnostic, false);
        let mut ev = FeedbackEvent::from_report(&r, FeedbackKind::Bounce, source);
        // The provider's own verdict on permanence wins when the text is not decisive.
        if r.reason == Reason::Undefined || r.reason == Reason::OnHold {
            ev.hard = hard;
            if hard {
                ev.reason = Reason::UserUnknown;
            }
        }
        ev
    }

    /// A complaint reported by a provider's feedback loop.
    pub fn provider_complaint(recipient: &str, feedback_type: &str, source: &str) -> FeedbackEvent {
        FeedbackEvent {
            recipient: recipient.to_string(),
            kind: FeedbackType::Complaint,
            status: String::new(),
            reply_code: String::new(),
            reason: Reason::Feedback,
            hard: false,
            feedback_type: if feedback_type.is_empty() {
                "abuse".into()
            } else {
                feedback_type.to_string()
            },
            diagnostic: String::new(),
            source: source.to_string(),
            idempotency_key: None,
            message: None,
            at: now(),
        }
    }

    /// A delivery confirmed by a provider.
    pub fn provider_delivered(recipient: &str, source: &str) -> FeedbackEvent {
        FeedbackEvent {
            recipient: recipient.to_string(),
            kind: FeedbackType::Delivered,
            status: "2.0.0".into(),
            reply_code: "250".into(),
            reason: Reason::Delivered,
            hard: false,
            feedback_type: String::new(),
            diagnostic: String::new(),
            source: source.to_string(),
            idempotency_key: None,
            message: None,
            at: now(),
        }
    }

    pub fn with_key(mut self, key: impl Into<String>) -> FeedbackEvent {
        self.idempotency_key = Some(key.into());
        self
    }

    pub fn with_message(mut self, message: Option<Id>) -> FeedbackEvent {
        self.message = message;
        self
    }
}

/// The thresholds that turn temporary failures into a suppression.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub soft_bounce_limit: u32,
    pub soft_bounce_window: Duration,
}

impl Rules {
    pub fn from_settings(s: &crate::config::FeedbackSettings) -> Rules {
        Rules {
            soft_bounce_limit: s.soft_bounce_limit,
            soft_bounce_window: Duration::days(i64::from(s.soft_bounce_days)),
        }
    }
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            soft_bounce_limit: 5,
            soft_bounce_window: Duration::days(30),
        }
    }
}

/// What the rules say to do about one event (before counting soft bounces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Suppress,
    Unsubscribe,
    CountSoft,
    SenderProblem,
    Record,
}

/// Is this failure about the sender (its reputation, authentication, content or rate)
/// rather than the address? Such failures never count against the recipient.
pub fn is_sender_problem(status: &str, reason: Reason) -> bool {
    status.starts_with("5.7.")
        || status.starts_with("4.7.")
        || matches!(
            reason,
            Reason::AuthFailure
                | Reason::BadReputation
                | Reason::Blocked
                | Reason::ContentError
                | Reason::FailedStartTls
                | Reason::NoRelaying
                | Reason::NotCompliantRfc
                | Reason::PolicyViolation
                | Reason::Rejected
                | Reason::RequirePtr
                | Reason::SecurityError
                | Reason::SpamDetected
                | Reason::Speeding
                | Reason::TooManyConn
                | Reason::VirusDetected
        )
}

/// The rules, as a pure function of the event.
pub fn decide(ev: &FeedbackEvent) -> Decision {
    match ev.kind {
        FeedbackType::Complaint => Decision::Unsubscribe,
        FeedbackType::AutoReply | FeedbackType::Delivered => Decision::Record,
        FeedbackType::Bounce => {
            if ev.hard {
                Decision::Suppress
            } else if is_sender_problem(&ev.status, ev.reason) {
                Decision::SenderProblem
            } else if matches!(ev.reason, Reason::Delivered | Reason::Vacation) {
                Decision::Record
            } else {
                Decision::CountSoft
            }
        }
    }
}

/// Applies one event inside a write transaction: idempotency, suppression, soft-bounce
/// counting, the feedback record and the integrators' event. Returns `None` for an event
/// already applied (same idempotency key) or for an unusable address. A complaint's list
/// unsubscriptions are the caller's part (they change the contact and its index).
pub fn apply_in(
    wtx: &WriteTransaction,
    ev: &FeedbackEvent,
    rules: &Rules,
    campaign: Option<String>,
) -> Result<Option<FeedbackRecord>, StoreError> {
    let Ok(email) = normalise_email(&ev.recipient) else {
        return Ok(None);
    };
    if let Some(key) = &ev.idempotency_key
        && suppression::already_seen(wtx, key, ev.at)?
    {
        return Ok(None);
    }
    let suppress = |reason: SuppressionReason| -> Result<bool, StoreError> {
        suppression::suppress(
            wtx,
            &Suppression {
                email: email.clone(),
                reason,
                source: ev.source.clone(),
                detail: detail_of(ev),
                added_by: None,
                created_at: ev.at,
            },
        )
    };
    let action = match decide(ev) {
        Decision::Suppress => {
            suppress(SuppressionReason::HardBounce)?;
            FeedbackAction::Suppressed
        }
        Decision::Unsubscribe => {
            suppress(SuppressionReason::Complaint)?;
            FeedbackAction::Unsubscribed
        }
        Decision::CountSoft => {
            let n = suppression::count_soft_bounce(
                wtx,
                &email,
                ev.at,
                ev.at - rules.soft_bounce_window,
            )?;
            if n >= u64::from(rules.soft_bounce_limit.max(1)) {
                suppress(SuppressionReason::SoftBounces)?;
                FeedbackAction::Suppressed
            } else {
                FeedbackAction::Counted
            }
        }
        Decision::SenderProblem => FeedbackAction::SenderProblem,
        Decision::Record => FeedbackAction::Recorded,
    };
    let rec = suppression::add_feedback(
        wtx,
        FeedbackRecord {
            id: 0,
            email: email.clone(),
            kind: ev.kind,
            status: ev.status.clone(),
            reply_code: ev.reply_code.clone(),
            reason: ev.reason.as_str().to_string(),
            hard: ev.hard,
            feedback_type: ev.feedback_type.clone(),
            diagnostic: ev.diagnostic.clone(),
            source: ev.source.clone(),
            message: ev.message,
            campaign,
            action,
            at: ev.at,
        },
    )?;
    let kind = match ev.kind {
        FeedbackType::Bounce => Some(EventType::MessageBounced),
        FeedbackType::Complaint => Some(EventType::MessageComplained),
        FeedbackType::Delivered => Some(EventType::MessageDelivered),
        FeedbackType::AutoReply => None,
    };
    if let Some(kind) = kind {
        store::events::emit(wtx, kind, event_data(&rec))?;
    }
    Ok(Some(rec))
}

fn detail_of(ev: &FeedbackEvent) -> String {
    let mut d = String::new();
    for part in [&ev.status, &ev.reply_code, &ev.feedback_type] {
        if !part.is_empty() {
            d.push_str(part);
            d.push(' ');
        }
    }
    d.push_str(ev.reason.as_str());
    if !ev.diagnostic.is_empty() {
        d.push_str(": ");
        d.extend(ev.diagnostic.chars().take(300));
    }
    d
}

/// The payload integrators receive for a feedback event.
pub fn event_data(rec: &FeedbackRecord) -> serde_json::Value {
    serde_json::json!({
        "email": rec.email,
        "message_id": rec.message,
        "campaign": rec.campaign,
        "kind": rec.kind,
        "status": rec.status,
        "reply_code": rec.reply_code,
        "reason": rec.reason,
        "hard": rec.hard,
        "feedback_type": rec.feedback_type,
        "action": rec.action,
        "source": rec.source,
        "diagnostic": rec.diagnostic,
        "at": rec.at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
    })
}

/// What happened to a batch of events.
#[derive(Debug, Default, Clone)]
pub struct Recorded {
    pub applied: Vec<FeedbackRecord>,
    /// Events skipped as already applied (same idempotency key) or with unusable addresses.
    pub skipped: usize,
}

/// The feedback service.
pub struct Feedback {
    store: Arc<Store>,
    contacts: Arc<Contacts>,
    rules: Rules,
    verp: Option<Verp>,
}

impl Feedback {
    pub fn new(
        store: Arc<Store>,
        contacts: Arc<Contacts>,
        rules: Rules,
        verp: Option<Verp>,
    ) -> Feedback {
        Feedback {
            store,
            contacts,
            rules,
            verp,
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Applies events in one transaction (all or nothing). Complaints also unsubscribe the
    /// contact from every list, in the same transaction.
    pub fn record(&self, events: &[FeedbackEvent]) -> Result<Recorded> {
        let rules = self.rules;
        let store = &self.store;
        self.contacts
            .write(true, |tx| {
                let mut out = Recorded::default();
                for ev in events {
                    let campaign = match ev.message {
                        Some(m) => store.out_message(m)?.map(|m| m.source),
                        None => None,
                    };
                    let Some(rec) = apply_in(tx.wtx(), ev, &rules, campaign)? else {
                        out.skipped += 1;
                        continue;
                    };
                    if rec.action == FeedbackAction::Unsubscribed
                        && let Some(id) = tx.id_by_email(&rec.email)?
                        && let Some(mut c) = tx.get(id)?
                    {
                        let at = now();
                        let mut changed = false;
                        for m in &mut c.lists {
                            if m.status != MembershipStatus::Unsubscribed {
                                m.status = MembershipStatus::Unsubscribed;
                                m.updated_at = at;
                                changed = true;
                            }
                        }
                        if changed {
                            c.updated_at = at;
                            tx.update(c)?;
                            store::events::emit(
                                tx.wtx(),
                                EventType::ContactUnsubscribed,
                                serde_json::json!({
                                    "contact_id": id,
                                    "email": rec.email,
                                    "reason": "complaint",
                                    "source": rec.source,
                                }),
                            )?;
                        }
                    }
                    out.applied.push(rec);
                }
                Ok(out)
            })
            .map_err(FeedbackError::from)
    }

    /// Parses a bounce/complaint message and applies what it says. `envelope_rcpt` is the
    /// address the message was delivered to (a VERP return path names the outbound message
    /// and original recipient even when the report does not); without it, the headers a
    /// mailbox adds (Delivered-To, X-Original-To) and the attached original's Return-Path
    /// are tried. The same message ingested twice (an SMTP retry, a mailbox polled again) is
    /// applied once.
    pub fn ingest_message(
        &self,
        raw: &[u8],
        source: &str,
        envelope_rcpt: Option<&str>,
    ) -> Result<Ingested> {
        let parsed = bounce::parse(raw).map_err(|e| FeedbackError::Invalid {
            field: "message",
            message: e.to_string(),
        })?;
        let verp = self.locate(raw, envelope_rcpt, parsed.original_return_path.as_deref());
        let verp_rcpt = match verp {
            Some((m, i)) => self.store.delivery(m, i)?.map(|d| d.recipient),
            None => None,
        };
        let mut events: Vec<FeedbackEvent> = parsed
            .recipients
            .iter()
            .map(|r| FeedbackEvent::from_report(r, parsed.kind, source))
            .collect();
        if let Some(rcpt) = &verp_rcpt {
            // A single-recipient report that arrived on a VERP address is about that
            // address, whatever spelling the remote server used (or if it gave none).
            if events.len() == 1 {
                events[0].recipient = rcpt.clone();
            } else if events.is_empty() && parsed.kind == FeedbackKind::Bounce {
                let r = bounce::classify_reply(rcpt, 0, None, "", false);
                events.push(FeedbackEvent::from_report(&r, FeedbackKind::Bounce, source));
            }
        }
        let digest = hex_digest(raw);
        let message = verp.map(|(m, _)| m);
        let events: Vec<FeedbackEvent> = events
            .into_iter()
            .map(|e| {
                let key = format!("raw:{digest}:{}", e.recipient.to_lowercase());
                e.with_message(message).with_key(key)
            })
            .collect();
        let recorded = self.record(&events)?;
        Ok(Ingested {
            kind: parsed.kind,
            recorded,
        })
    }

    /// The (outbound message, recipient index) a feedback message is about, from its VERP
    /// address.
    fn locate(
        &self,
        raw: &[u8],
        envelope_rcpt: Option<&str>,
        original_return_path: Option<&str>,
    ) -> Option<(Id, u32)> {
        let verp = self.verp.as_ref()?;
        if let Some(r) = envelope_rcpt
            && let Ok(v) = verp.decode(r)
        {
            return Some(v);
        }
        if envelope_rcpt.is_none() {
            let head_end = raw
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .or_else(|| raw.windows(2).position(|w| w == b"\n\n"))
                .unwrap_or(raw.len().min(64 * 1024));
            let head = String::from_utf8_lossy(&raw[..head_end.min(64 * 1024)]);
            for line in head.lines() {
                let Some((name, value)) = line.split_once(':') else {
                    continue;
                };
                let name = name.trim().to_ascii_lowercase();
                if matches!(
                    name.as_str(),
                    "delivered-to" | "x-original-to" | "envelope-to"
                ) {
                    let addr = value.trim().trim_start_matches('<').trim_end_matches('>');
                    if let Ok(v) = verp.decode(addr) {
                        return Some(v);
                    }
                }
            }
        }
        original_return_path
            .map(|r| r.trim().trim_start_matches('<').trim_end_matches('>'))
            .and_then(|r| verp.decode(r).ok())
    }

    /// Is `addr` one this appliance accepts feedback for: a valid VERP return path?
    pub fn is_verp_address(&self, addr: &str) -> Option<(Id, u32)> {
        self.verp.as_ref().and_then(|v| v.decode(addr).ok())
    }

    // ---- the suppression list, for people ----

    pub fn list(
        &self,
        actor: &Actor,
        filter: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Suppression>> {
        actor.check_suppressions(Action::Read)?;
        Ok(self
            .store
            .suppressions(filter, after, limit.clamp(1, 1000))?)
    }

    pub fn count(&self, actor: &Actor) -> Result<u64> {
        actor.check_suppressions(Action::Read)?;
        Ok(self.store.suppression_count()?)
    }

    pub fn get(&self, actor: &Actor, email: &str) -> Result<Suppression> {
        actor.check_suppressions(Action::Read)?;
        let email = normalise(email)?;
        self.store
            .suppression(&email)?
            .ok_or(FeedbackError::NotFound("suppression"))
    }

    /// Adds an address by hand. Adding one that is already suppressed keeps the first entry.
    pub fn add(
        &self,
        actor: &Actor,
        email: &str,
        reason: Option<SuppressionReason>,
        note: &str,
    ) -> Result<Suppression> {
        actor.check_suppressions(Action::Create)?;
        let email = normalise(email)?;
        if note.len() > 1000 {
            return Err(FeedbackError::Invalid {
                field: "note",
                message: "the note is longer than 1000 characters".into(),
            });
        }
        let s = Suppression {
            email: email.clone(),
            reason: reason.unwrap_or(SuppressionReason::Manual),
            source: "manual".into(),
            detail: note.to_string(),
            added_by: Some(actor.user_id),
            created_at: now(),
        };
        self.store.write(|wtx| -> Result<(), StoreError> {
            if suppression::suppress(wtx, &s)? {
                crate::audit::suppression_changed(wtx, actor, &s, true)?;
            }
            Ok(())
        })?;
        Ok(self.store.suppression(&email)?.unwrap_or(s))
    }

    /// Takes an address off the list (and forgets its soft bounces).
    pub fn remove(&self, actor: &Actor, email: &str) -> Result<Suppression> {
        actor.check_suppressions(Action::Delete)?;
        let email = normalise(email)?;
        self.store
            .write(|wtx| {
                let old = suppression::unsuppress(wtx, &email)?;
                if let Some(s) = &old {
                    crate::audit::suppression_changed(wtx, actor, s, false)?;
                }
                Ok::<_, StoreError>(old)
            })?
            .ok_or(FeedbackError::NotFound("suppression"))
    }

    /// The feedback recorded for an address, newest first.
    pub fn history(&self, email: &str, limit: usize) -> Result<Vec<FeedbackRecord>> {
        let email = normalise(email)?;
        Ok(self.store.feedback_for(&email, limit.clamp(1, 500))?)
    }
}

fn hex_digest(raw: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(raw)
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn normalise(email: &str) -> Result<String> {
    normalise_email(email).map_err(|message| FeedbackError::Invalid {
        field: "email",
        message,
    })
}

/// The result of ingesting one message.
#[derive(Debug)]
pub struct Ingested {
    pub kind: FeedbackKind,
    pub recorded: Recorded,
}

/// What our own delivery attempts teach, applied in the transaction that records the
/// outcome: a permanent SMTP rejection is judged like a bounce message (hard → suppressed,
/// 5.7.x → the sender's problem), giving up after the retry period counts as a soft bounce,
/// and integrators hear of deliveries, deferrals and bounces.
pub fn on_delivery_outcome(
    wtx: &WriteTransaction,
    d: &crate::model::Delivery,
    s: &store::Settlement,
    rules: &Rules,
) -> Result<(), StoreError> {
    use crate::model::DeliveryState;
    let base = || {
        serde_json::json!({
            "message_id": d.message,
            "email": d.recipient,
            "attempts": d.attempts,
            "code": s.event.code,
            "status": s.event.enhanced,
            "text": s.event.text,
            "mx": s.event.mx,
        })
    };
    match s.state {
        DeliveryState::Sent => {
            store::events::emit(wtx, EventType::MessageDelivered, base())?;
        }
        DeliveryState::Deferred if s.attempted => {
            let mut data = base();
            data["retry_at"] = serde_json::json!(d.next_attempt.and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            }));
            store::events::emit(wtx, EventType::MessageDeferred, data)?;
        }
        DeliveryState::Bounced | DeliveryState::Failed if s.attempted => {
            let report = bounce::classify_reply(
                &d.recipient,
                s.event.code.unwrap_or(0),
                s.event.enhanced.as_deref(),
                &s.event.text,
                false,
            );
            let mut ev = FeedbackEvent::from_report(&report, FeedbackKind::Bounce, "smtp")
                .with_message(Some(d.message));
            if s.state == DeliveryState::Failed {
                // retried until the retry period ended: temporary by nature
                ev.hard = false;
                ev.reason = Reason::Expired;
            }
            apply_in(wtx, &ev, rules, None)?;
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounce(status: &str, reason: Reason, hard: bool) -> FeedbackEvent {
        FeedbackEvent {
            recipient: "ann@example.com".into(),
            kind: FeedbackType::Bounce,
            status: status.into(),
            reply_code: String::new(),
            reason,
            hard,
            feedback_type: String::new(),
            diagnostic: String::new(),
            source: "test".into(),
            idempotency_key: None,
            message: None,
            at: now(),
        }
    }

    #[test]
    fn the_rules() {
        assert_eq!(
            decide(&bounce("5.1.1", Reason::UserUnknown, true)),
            Decision::Suppress
        );
        assert_eq!(
            decide(&bounce("4.2.2", Reason::MailboxFull, false)),
            Decision::CountSoft
        );
        assert_eq!(
            decide(&bounce("5.7.1", Reason::Blocked, false)),
            Decision::SenderProblem
        );
        assert_eq!(
            decide(&bounce("5.7.26", Reason::AuthFailure, false)),
            Decision::SenderProblem
        );
        assert_eq!(
            decide(&bounce("5.0.0", Reason::SpamDetected, false)),
            Decision::SenderProblem
        );
        let mut c = bounce("", Reason::Feedback, false);
        c.kind = FeedbackType::Complaint;
        assert_eq!(decide(&c), Decision::Unsubscribe);
        let mut v = bounce("", Reason::Vacation, false);
        v.kind = FeedbackType::AutoReply;
        assert_eq!(decide(&v), Decision::Record);
    }

    #[test]
    fn provider_bounces_keep_the_providers_verdict_when_the_text_says_little() {
        let e = FeedbackEvent::provider_bounce("a@b.example", true, "", "", "webhook:x");
        assert!(e.hard);
        let e = FeedbackEvent::provider_bounce(
            "a@b.example",
            false,
            "4.2.2",
            "452 4.2.2 Mailbox full",
            "webhook:x",
        );
        assert!(!e.hard);
        assert_eq!(e.reason, Reason::MailboxFull);
        let e = FeedbackEvent::provider_bounce(
            "a@b.example",
            true,
            "5.1.1",
            "550 5.1.1 The email account that you tried to reach does not exist",
            "webhook:x",
        );
        assert!(e.hard);
        assert_eq!(e.reason, Reason::UserUnknown);
    }
}
