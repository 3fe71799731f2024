//! What the store holds about one person, read in one snapshot (data export), and erasure:
//! scrubbing an address out of every table inside the caller's write transaction (delivery
//! log and queue, message bodies, feedback, suppressions, events, webhook outbox and attempt
//! log, import errors), keeping only a keyed hash on the suppression list. Also the delivery
//! log pruning and the contact scan that retention runs on.

use super::events::EVENTS;
use super::suppression::{FEEDBACK, FEEDBACK_BY_EMAIL, FEEDBACK_BY_MESSAGE, SOFT_BOUNCES};
use super::webhooks::{WEBHOOK_ATTEMPTS, WEBHOOK_DUE, WEBHOOK_OUTBOX};
use super::{
    CONTACTS, DELIVERIES, DUE, IMPORTS, META, OUT_BODIES, OUT_MESSAGES, Result, Store, decode,
    encode,
};
use crate::model::{
    Contact, Delivery, DeliveryEvent, DeliveryState, Event, FeedbackRecord, Id, ImportJob,
    OutMessage, Suppression, SuppressionReason, WebhookAttempt, WebhookDelivery,
    WebhookDeliveryState, now,
};
use hmac::{Hmac, Mac};
use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use serde::Serialize;
use sha2::Sha256;
use std::collections::BTreeSet;
use time::OffsetDateTime;

/// Name of the store secret that keys the hashes of erased addresses.
pub const ERASURE_SECRET: &str = "erasure";
/// What an erased value is replaced by where a record is kept (counts, chains).
pub const ERASED: &str = "(erased)";

/// The suppression-list key of an erased address: `hmac:` + HMAC-SHA256(key, address).
pub fn hashed_address(key: &[u8; 32], email: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return "hmac:".into(),
    };
    mac.update(email.trim().to_lowercase().as_bytes());
    format!("hmac:{}", hex::encode(mac.finalize().into_bytes()))
}

/// The erasure key, when any address was ever erased (no key, no hashed entries).
pub(crate) fn erasure_key(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Option<[u8; 32]>> {
    let name = format!("secret:{ERASURE_SECRET}");
    Ok(meta
        .get(name.as_str())?
        .and_then(|v| <[u8; 32]>::try_from(v.value()).ok()))
}

/// The erasure key inside a write transaction (`None`: nothing was ever erased).
pub fn erasure_key_in(wtx: &WriteTransaction) -> Result<Option<[u8; 32]>> {
    erasure_key(&wtx.open_table(META)?)
}

/// Whether `email` was erased (its keyed hash is on the suppression list).
pub fn erased_in(wtx: &WriteTransaction, key: &[u8; 32], email: &str) -> Result<bool> {
    let t = wtx.open_table(super::suppression::SUPPRESSIONS)?;
    Ok(t.get(hashed_address(key, email).as_str())?.is_some())
}

/// Whether serialised bytes mention any of `needles` (lower-case addresses), ignoring case.
fn mentions(bytes: &[u8], needles: &[String]) -> bool {
    let lower = bytes.to_ascii_lowercase();
    needles
        .iter()
        .any(|n| !n.is_empty() && lower.windows(n.len()).any(|w| w == n.as_bytes()))
}

fn is_needle(addr: &str, needles: &[String]) -> bool {
    let a = addr.trim().to_lowercase();
    needles.contains(&a)
}

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The rows of a JSON-valued table whose bytes mention one of `needles`, decoded.
fn mentioning<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<u64, &'static [u8]>,
    name: &'static str,
    needles: &[String],
) -> Result<Vec<(u64, T)>> {
    let mut hits = Vec::new();
    for row in table.iter()? {
        let (k, v) = row?;
        if mentions(v.value(), needles) {
            hits.push((k.value(), decode(name, v.value())?));
        }
    }
    Ok(hits)
}

/// What one erasure removed or rewrote, by kind (counts only: no personal data).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Scrubbed {
    /// Delivery log rows whose recipient was replaced.
    pub deliveries: u64,
    /// Of those, deliveries still waiting that were cancelled.
    pub cancelled: u64,
    /// Stored message bodies dropped.
    pub bodies: u64,
    pub feedback: u64,
    pub events: u64,
    pub webhook_deliveries: u64,
    pub webhook_attempts: u64,
    pub import_errors: u64,
    /// Suppression entries turned into keyed hashes (or added as such).
    pub suppressions: u64,
    /// Records of other modules (`gdpr::PersonalDataSource`).
    pub other: u64,
}

/// Removes every trace of the addresses in `needles` (normalised, lower case) from the
/// tables outside the contact record, inside the caller's transaction. Idempotent: a second
/// run finds nothing left to change (and keeps the hashed suppressions). The contact record,
/// its indexes and the audit trail are the caller's part.
pub fn scrub_in(wtx: &WriteTransaction, needles: &[String], key: &[u8; 32]) -> Result<Scrubbed> {
    let mut out = Scrubbed::default();
    let t = now();

    // delivery log and queue
    let mut touched = BTreeSet::new();
    {
        let mut deliveries = wtx.open_table(DELIVERIES)?;
        let mut due = wtx.open_table(DUE)?;
        let mut hits = Vec::new();
        for row in deliveries.iter()? {
            let (k, v) = row?;
            let d: Delivery = decode("deliveries", v.value())?;
            if is_needle(&d.recipient, needles) {
                hits.push((k.value(), d));
            }
        }
        for (k, mut d) in hits {
            if !d.state.is_final() {
                if let Some(at) = d.next_attempt {
                    due.remove((ms(at), k.0, k.1))?;
                }
                d.state = DeliveryState::Failed;
                d.next_attempt = None;
                d.events.push(DeliveryEvent {
                    at: t,
                    state: DeliveryState::Failed,
                    code: None,
                    enhanced: None,
                    text: "cancelled: the recipient's personal data was erased".into(),
                    mx: None,
                });
                out.cancelled += 1;
            }
            if d.site.as_deref() == Some(d.domain.as_str()) {
                d.site = None;
            }
            d.recipient = ERASED.into();
            d.domain = ERASED.into();
            for e in d.events.iter_mut() {
                if e.state != DeliveryState::Failed || e.at != t {
                    e.text.clear();
                }
                e.mx = None;
            }
            d.updated_at = t;
            deliveries.insert(k, encode(&d).as_slice())?;
            touched.insert(k.0);
            out.deliveries += 1;
        }
        // a body goes when nobody else is still waiting for it; a message sent to the
        // person alone loses its subject too (it may be personalised)
        let mut messages = wtx.open_table(OUT_MESSAGES)?;
        let mut bodies = wtx.open_table(OUT_BODIES)?;
        for m in &touched {
            let mut only_erased = true;
            let mut all_final = true;
            for row in deliveries.range((*m, 0)..=(*m, u32::MAX))? {
                let d: Delivery = decode("deliveries", row?.1.value())?;
                only_erased &= d.recipient == ERASED;
                all_final &= d.state.is_final();
            }
            if all_final && bodies.remove(*m)?.is_some() {
                out.bodies += 1;
            }
            if only_erased
                && let Some(mut msg) = super::get_json::<OutMessage>(&messages, "out_messages", *m)?
                && msg.subject != ERASED
            {
                msg.subject = ERASED.into();
                messages.insert(*m, encode(&msg).as_slice())?;
            }
        }
        let mut listed = Vec::new();
        for row in messages.iter()? {
            let (k, v) = row?;
            let msg: OutMessage = decode("out_messages", v.value())?;
            if msg.suppressed.iter().any(|s| is_needle(s, needles)) {
                listed.push((k.value(), msg));
            }
        }
        for (k, mut msg) in listed {
            msg.suppressed.retain(|s| !is_needle(s, needles));
            messages.insert(k, encode(&msg).as_slice())?;
        }
    }

    // feedback log, soft-bounce marks, suppression list
    {
        let mut feedback = wtx.open_table(FEEDBACK)?;
        let mut by_email = wtx.open_table(FEEDBACK_BY_EMAIL)?;
        let mut by_message = wtx.open_table(FEEDBACK_BY_MESSAGE)?;
        let mut soft = wtx.open_table(SOFT_BOUNCES)?;
        let mut sup = wtx.open_table(super::suppression::SUPPRESSIONS)?;
        for email in needles {
            let ids: Vec<u64> = by_email
                .range((email.as_str(), 0)..=(email.as_str(), u64::MAX))?
                .map(|r| r.map(|(k, _)| k.value().1))
                .collect::<std::result::Result<_, _>>()?;
            for id in ids {
                by_email.remove((email.as_str(), id))?;
                if let Some(v) = feedback.remove(id)? {
                    let rec: FeedbackRecord = decode("feedback", v.value())?;
                    if let Some(m) = rec.message {
                        by_message.remove((m, id))?;
                    }
                    out.feedback += 1;
                }
            }
            let marks: Vec<i64> = soft
                .range((email.as_str(), i64::MIN)..=(email.as_str(), i64::MAX))?
                .map(|r| r.map(|(k, _)| k.value().1))
                .collect::<std::result::Result<_, _>>()?;
            for m in marks {
                soft.remove((email.as_str(), m))?;
            }
            let old: Option<Suppression> = match sup.remove(email.as_str())? {
                Some(v) => Some(decode("suppressions", v.value())?),
                None => None,
            };
            let hashed = hashed_address(key, email);
            if sup.get(hashed.as_str())?.is_none() {
                let s = Suppression {
                    email: hashed.clone(),
                    reason: old.as_ref().map_or(SuppressionReason::Erased, |o| o.reason),
                    source: "erasure".into(),
                    detail: "address erased on request; kept only as a keyed hash so it stays suppressed".into(),
                    added_by: None,
                    created_at: old.as_ref().map_or(t, |o| o.created_at),
                };
                sup.insert(hashed.as_str(), encode(&s).as_slice())?;
                out.suppressions += 1;
            } else if old.is_some() {
                out.suppressions += 1;
            }
        }
    }

    // the event log: events keep their id, type and time (ids must keep increasing)
    {
        let mut events = wtx.open_table(EVENTS)?;
        for (k, mut ev) in mentioning::<Event>(&events, "events", needles)? {
            ev.data = serde_json::json!({ "erased": true });
            events.insert(k, encode(&ev).as_slice())?;
            out.events += 1;
        }
    }

    // webhook outbox (pending ones are discarded) and the attempt log
    {
        let mut outbox = wtx.open_table(WEBHOOK_OUTBOX)?;
        let mut due = wtx.open_table(WEBHOOK_DUE)?;
        for (k, mut d) in mentioning::<WebhookDelivery>(&outbox, "webhook_outbox", needles)? {
            if d.state == WebhookDeliveryState::Pending {
                if let Some(at) = d.due_ms {
                    due.remove((at, k))?;
                }
                d.state = WebhookDeliveryState::Discarded;
                d.due_ms = None;
                d.finished_at = Some(t);
            }
            d.body = serde_json::json!({ "erased": true }).to_string();
            outbox.insert(k, encode(&d).as_slice())?;
            out.webhook_deliveries += 1;
        }
        let mut attempts = wtx.open_table(WEBHOOK_ATTEMPTS)?;
        let mut hits = Vec::new();
        for row in attempts.iter()? {
            let (k, v) = row?;
            if mentions(v.value(), needles) {
                let a: WebhookAttempt = decode("webhook_attempts", v.value())?;
                hits.push((k.value(), a));
            }
        }
        for (k, mut a) in hits {
            a.response = ERASED.into();
            if a.error.is_some() {
                a.error = Some(ERASED.into());
            }
            attempts.insert(k, encode(&a).as_slice())?;
            out.webhook_attempts += 1;
        }
    }

    // import errors quote the rows they refused
    {
        let mut imports = wtx.open_table(IMPORTS)?;
        for (k, mut j) in mentioning::<ImportJob>(&imports, "imports", needles)? {
            for e in j.errors.iter_mut() {
                if mentions(e.message.as_bytes(), needles) {
                    e.message = ERASED.into();
                    out.import_errors += 1;
                }
            }
            if j.message
                .as_deref()
                .is_some_and(|m| mentions(m.as_bytes(), needles))
            {
                j.message = Some(ERASED.into());
            }
            imports.insert(k, encode(&j).as_slice())?;
        }
    }

    // the file still holds the old pages until it is rewritten
    wtx.open_table(META)?
        .insert(super::backup::PURGE_KEY, [1u8].as_slice())?;
    Ok(out)
}

/// Deletes finished deliveries last changed before `cutoff`, and the messages left without
/// any delivery, inside the caller's transaction. Returns the deliveries deleted.
pub fn prune_delivery_log_in(wtx: &WriteTransaction, cutoff: OffsetDateTime) -> Result<u64> {
    let mut deliveries = wtx.open_table(DELIVERIES)?;
    let mut old = Vec::new();
    for row in deliveries.iter()? {
        let (k, v) = row?;
        let d: Delivery = decode("deliveries", v.value())?;
        if d.state.is_final() && d.updated_at < cutoff {
            old.push(k.value());
        }
    }
    let mut touched = BTreeSet::new();
    for k in &old {
        deliveries.remove(*k)?;
        touched.insert(k.0);
    }
    let mut messages = wtx.open_table(OUT_MESSAGES)?;
    let mut bodies = wtx.open_table(OUT_BODIES)?;
    for m in touched {
        if deliveries.range((m, 0)..=(m, u32::MAX))?.next().is_none() {
            messages.remove(m)?;
            bodies.remove(m)?;
        }
    }
    if !old.is_empty() {
        wtx.open_table(META)?
            .insert(super::backup::PURGE_KEY, [1u8].as_slice())?;
    }
    Ok(old.len() as u64)
}

/// One message sent to the person, as the export shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SentMessage {
    pub message: OutMessage,
    pub delivery: Delivery,
}

/// Everything the store holds about some addresses outside the contact record.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct PersonData {
    pub messages: Vec<SentMessage>,
    pub feedback: Vec<FeedbackRecord>,
    pub suppression: Option<Suppression>,
    pub events: Vec<Event>,
    pub webhook_deliveries: Vec<WebhookDeliveryView>,
}

/// An outgoing webhook delivery that mentions the person (the body is what was sent).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WebhookDeliveryView {
    pub id: Id,
    pub subscription_id: Id,
    pub event_type: String,
    pub state: WebhookDeliveryState,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
}

impl Store {
    /// What the store holds about `emails` (normalised), read in one snapshot.
    pub fn person_data(&self, emails: &[String]) -> Result<PersonData> {
        let rtx = self.db().begin_read()?;
        let mut out = PersonData::default();
        let deliveries = rtx.open_table(DELIVERIES)?;
        let messages = rtx.open_table(OUT_MESSAGES)?;
        for row in deliveries.iter()? {
            let (_, v) = row?;
            let d: Delivery = decode("deliveries", v.value())?;
            if is_needle(&d.recipient, emails)
                && let Some(message) =
                    super::get_json::<OutMessage>(&messages, "out_messages", d.message)?
            {
                out.messages.push(SentMessage {
                    message,
                    delivery: d,
                });
            }
        }
        let by_email = rtx.open_table(FEEDBACK_BY_EMAIL)?;
        let feedback = rtx.open_table(FEEDBACK)?;
        for email in emails {
            for row in by_email.range((email.as_str(), 0)..=(email.as_str(), u64::MAX))? {
                if let Some(v) = feedback.get(row?.0.value().1)? {
                    out.feedback.push(decode("feedback", v.value())?);
                }
            }
        }
        let sup = rtx.open_table(super::suppression::SUPPRESSIONS)?;
        let key = erasure_key(&rtx.open_table(META)?)?;
        for email in emails {
            let hashed = key.map(|k| hashed_address(&k, email));
            for k in std::iter::once(email.as_str()).chain(hashed.as_deref()) {
                if out.suppression.is_none()
                    && let Some(v) = sup.get(k)?
                {
                    out.suppression = Some(decode("suppressions", v.value())?);
                }
            }
        }
        out.events = mentioning::<Event>(&rtx.open_table(EVENTS)?, "events", emails)?
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        for (_, d) in mentioning::<WebhookDelivery>(
            &rtx.open_table(WEBHOOK_OUTBOX)?,
            "webhook_outbox",
            emails,
        )? {
            out.webhook_deliveries.push(WebhookDeliveryView {
                id: d.id,
                subscription_id: d.subscription_id,
                event_type: d.event_type,
                state: d.state,
                created_at: d.created_at,
                body: serde_json::from_str(&d.body).unwrap_or(serde_json::Value::Null),
            });
        }
        Ok(out)
    }

    /// Ids of the contacts for which `keep` answers false (retention's scan).
    pub fn contacts_not(&self, mut keep: impl FnMut(&Contact) -> bool) -> Result<Vec<Id>> {
        let rtx = self.db().begin_read()?;
        let mut out = Vec::new();
        for row in rtx.open_table(CONTACTS)?.iter()? {
            let (k, v) = row?;
            let c: Contact = decode("contacts", v.value())?;
            if !keep(&c) {
                out.push(k.value());
            }
        }
        Ok(out)
    }
}
