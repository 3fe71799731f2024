//! The outbound queue: accepted messages, their signed bytes, one delivery record per
//! recipient and a due-time index of the deliveries waiting for an attempt. A message is
//! acknowledged only after `enqueue` committed. Workers `claim` due deliveries (moving them to
//! `sending` in the same transaction that removes them from the due index) and `settle` them;
//! at start `requeue_in_flight` returns whatever was `sending` when the process died, so a
//! crash can only resend what was in flight.

use super::{Result, SEQUENCES, Store, decode, encode, get_json, next_seq};
use crate::model::{Delivery, DeliveryEvent, DeliveryState, EventType, Id, OutMessage, now};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use time::OffsetDateTime;

pub(crate) const OUT_MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("out_messages");
pub(crate) const OUT_BODIES: TableDefinition<u64, &[u8]> = TableDefinition::new("out_bodies");
/// (message id, recipient index) -> Delivery
pub(crate) const DELIVERIES: TableDefinition<(u64, u32), &[u8]> =
    TableDefinition::new("deliveries");
/// (due time in unix ms, message id, recipient index) -> ()
pub(crate) const DUE: TableDefinition<(i64, u64, u32), ()> = TableDefinition::new("delivery_due");

const MAX_EVENTS: usize = 50;

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// What a worker learned about one delivery attempt.
#[derive(Debug, Clone)]
pub struct Settlement {
    pub message: Id,
    pub index: u32,
    pub state: DeliveryState,
    pub event: DeliveryEvent,
    /// For `Deferred`: when to try again.
    pub retry_at: Option<OffsetDateTime>,
    pub site: Option<String>,
    pub policy: bool,
    /// Counts as an attempt (false for attempts that never reached the recipient's turn,
    /// e.g. a site on hold).
    pub attempted: bool,
}

/// A delivery handed to a worker, with what it needs to send.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery: Delivery,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub recipient: Option<String>,
    pub domain: Option<String>,
    pub state: Option<DeliveryState>,
    pub since: Option<OffsetDateTime>,
    pub message: Option<Id>,
}

impl Store {
    /// Stores a message with its recipients, all due now. Durable when it returns.
    pub fn enqueue(
        &self,
        msg: OutMessage,
        body: &[u8],
        recipients: &[(String, String)],
    ) -> Result<OutMessage> {
        let wtx = self.begin_write()?;
        let msg = enqueue_in(&wtx, msg, body, recipients)?;
        wtx.commit()?;
        Ok(msg)
    }

    /// Reserves an outbound message id before the message is built (its links name it).
    pub fn allocate_out_message_id(&self) -> Result<Id> {
        let wtx = self.begin_write()?;
        let id = {
            let mut seqs = wtx.open_table(SEQUENCES)?;
            next_seq(&mut seqs, "out_message")?
        };
        wtx.commit()?;
        Ok(id)
    }

    /// Reserves `n` consecutive outbound message ids (a campaign batch); returns the first.
    pub fn allocate_out_message_ids(&self, n: u64) -> Result<Id> {
        let wtx = self.begin_write()?;
        let first = {
            let mut seqs = wtx.open_table(SEQUENCES)?;
            let first = seqs.get("out_message")?.map(|v| v.value()).unwrap_or(0) + 1;
            seqs.insert("out_message", first + n.max(1) - 1)?;
            first
        };
        wtx.commit()?;
        Ok(first)
    }

    /// Takes up to `limit` deliveries due at `at`, marking them `sending`.
    pub fn claim_due(&self, at: OffsetDateTime, limit: usize) -> Result<Vec<Claimed>> {
        let wtx = self.begin_write()?;
        let mut out = Vec::new();
        {
            let mut due = wtx.open_table(DUE)?;
            let keys: Vec<(i64, u64, u32)> = due
                .range(..=(ms(at), u64::MAX, u32::MAX))?
                .take(limit)
                .filter_map(|r| r.ok().map(|(k, _)| k.value()))
                .collect();
            let mut deliveries = wtx.open_table(DELIVERIES)?;
            let messages = wtx.open_table(OUT_MESSAGES)?;
            for k in keys {
                due.remove(k)?;
                let Some(v) = deliveries.get((k.1, k.2))?.map(|v| v.value().to_vec()) else {
                    continue;
                };
                let mut d: Delivery = decode("deliveries", &v)?;
                if d.state.is_final() || d.state == DeliveryState::Sending {
                    continue;
                }
                d.state = DeliveryState::Sending;
                d.updated_at = now();
                deliveries.insert((k.1, k.2), encode(&d).as_slice())?;
                let created_at = get_json::<OutMessage>(&messages, "out_messages", k.1)?
                    .map(|m| m.created_at)
                    .unwrap_or(d.created_at);
                out.push(Claimed {
                    delivery: d,
                    created_at,
                });
            }
        }
        wtx.commit()?;
        Ok(out)
    }

    /// Records the outcome of attempts; deferred deliveries go back into the due index. The
    /// message body is dropped once every recipient is final. `after` runs for each recorded
    /// outcome inside the same transaction (feedback, events), so they commit together.
    pub fn settle(
        &self,
        results: &[Settlement],
        after: impl Fn(&redb::WriteTransaction, &Delivery, &Settlement) -> Result<()>,
    ) -> Result<()> {
        let wtx = self.begin_write()?;
        {
            let mut deliveries = wtx.open_table(DELIVERIES)?;
            let mut due = wtx.open_table(DUE)?;
            let mut bodies = wtx.open_table(OUT_BODIES)?;
            let mut touched = Vec::new();
            for s in results {
                let Some(v) = deliveries
                    .get((s.message, s.index))?
                    .map(|v| v.value().to_vec())
                else {
                    continue;
                };
                let mut d: Delivery = decode("deliveries", &v)?;
                if d.state.is_final() {
                    continue;
                }
                d.state = s.state;
                if s.attempted {
                    d.attempts += 1;
                }
                d.policy |= s.policy;
                if s.site.is_some() {
                    d.site = s.site.clone();
                }
                d.updated_at = now();
                d.next_attempt =
                    if s.state == DeliveryState::Deferred || s.state == DeliveryState::Queued {
                        s.retry_at.or(Some(now()))
                    } else {
                        None
                    };
                d.events.push(s.event.clone());
                if d.events.len() > MAX_EVENTS {
                    d.events.remove(1);
                }
                if let Some(at) = d.next_attempt {
                    due.insert((ms(at), s.message, s.index), ())?;
                }
                deliveries.insert((s.message, s.index), encode(&d).as_slice())?;
                after(&wtx, &d, s)?;
                if d.state.is_final() {
                    touched.push(s.message);
                }
            }
            touched.dedup();
            for m in touched {
                let all_final = deliveries
                    .range((m, 0)..=(m, u32::MAX))?
                    .filter_map(|r| r.ok())
                    .all(|(_, v)| {
                        decode::<Delivery>("deliveries", v.value())
                            .is_ok_and(|d| d.state.is_final())
                    });
                if all_final {
                    bodies.remove(m)?;
                }
            }
        }
        wtx.commit()?;
        Ok(())
    }

    /// Puts deliveries left `sending` by a crash back in the queue, due now.
    pub fn requeue_in_flight(&self) -> Result<usize> {
        let wtx = self.begin_write()?;
        let mut n = 0;
        {
            let mut deliveries = wtx.open_table(DELIVERIES)?;
            let mut due = wtx.open_table(DUE)?;
            let stuck: Vec<((u64, u32), Delivery)> = deliveries
                .iter()?
                .filter_map(|r| r.ok())
                .filter_map(|(k, v)| {
                    decode::<Delivery>("deliveries", v.value())
                        .ok()
                        .map(|d| (k.value(), d))
                })
                .filter(|(_, d)| d.state == DeliveryState::Sending)
                .collect();
            let t = now();
            for (k, mut d) in stuck {
                d.state = DeliveryState::Queued;
                d.next_attempt = Some(t);
                d.events.push(DeliveryEvent {
                    at: t,
                    state: DeliveryState::Queued,
                    code: None,
                    enhanced: None,
                    text:
                        "requeued after a restart (the attempt in flight may have been delivered)"
                            .into(),
                    mx: None,
                });
                deliveries.insert(k, encode(&d).as_slice())?;
                due.insert((ms(t), k.0, k.1), ())?;
                n += 1;
            }
        }
        wtx.commit()?;
        Ok(n)
    }

    pub fn out_message(&self, id: Id) -> Result<Option<OutMessage>> {
        let rtx = self.db().begin_read()?;
        get_json(&rtx.open_table(OUT_MESSAGES)?, "out_messages", id)
    }

    pub fn out_body(&self, id: Id) -> Result<Option<Vec<u8>>> {
        let rtx = self.db().begin_read()?;
        Ok(rtx
            .open_table(OUT_BODIES)?
            .get(id)?
            .map(|v| v.value().to_vec()))
    }

    pub fn deliveries_of(&self, id: Id) -> Result<Vec<Delivery>> {
        let rtx = self.db().begin_read()?;
        let t = rtx.open_table(DELIVERIES)?;
        let mut out = Vec::new();
        for row in t.range((id, 0)..=(id, u32::MAX))? {
            let (_, v) = row?;
            out.push(decode("deliveries", v.value())?);
        }
        Ok(out)
    }

    /// Newest first, filtered; at most `limit`.
    pub fn delivery(&self, message: Id, index: u32) -> Result<Option<Delivery>> {
        let rtx = self.db().begin_read()?;
        let t = rtx.open_table(DELIVERIES)?;
        match t.get((message, index))? {
            Some(v) => Ok(Some(decode("deliveries", v.value())?)),
            None => Ok(None),
        }
    }

    pub fn delivery_log(&self, f: &DeliveryFilter, limit: usize) -> Result<Vec<Delivery>> {
        let rtx = self.db().begin_read()?;
        let t = rtx.open_table(DELIVERIES)?;
        let mut out = Vec::new();
        let range = match f.message {
            Some(m) => t.range((m, 0)..=(m, u32::MAX))?,
            None => t.range::<(u64, u32)>(..)?,
        };
        for row in range.rev() {
            let (_, v) = row?;
            let d: Delivery = decode("deliveries", v.value())?;
            if f.recipient
                .as_deref()
                .is_some_and(|r| !d.recipient.contains(r))
                || f.domain.as_deref().is_some_and(|x| d.domain != x)
                || f.state.is_some_and(|s| d.state != s)
                || f.since.is_some_and(|s| d.updated_at < s)
            {
                continue;
            }
            out.push(d);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Deliveries by state, and the oldest waiting one (for metrics and queue health).
    pub fn queue_stats(&self) -> Result<QueueStats> {
        let rtx = self.db().begin_read()?;
        let t = rtx.open_table(DELIVERIES)?;
        let mut s = QueueStats::default();
        for row in t.iter()? {
            let (_, v) = row?;
            let d: Delivery = decode("deliveries", v.value())?;
            let site = d.site.clone().unwrap_or_else(|| d.domain.clone());
            let e = s.by_site.entry(site).or_default();
            match d.state {
                DeliveryState::Queued | DeliveryState::Sending | DeliveryState::Deferred => {
                    e.waiting += 1;
                    if d.state == DeliveryState::Deferred {
                        e.deferred += 1;
                    }
                    if s.oldest_waiting.is_none_or(|o| d.created_at < o) {
                        s.oldest_waiting = Some(d.created_at);
                    }
                }
                DeliveryState::Sent => e.sent += 1,
                DeliveryState::Bounced => e.bounced += 1,
                DeliveryState::Failed => e.failed += 1,
            }
        }
        Ok(s)
    }

    /// Number of deliveries waiting in the due index.
    /// Deliveries due by `at`, counted up to `limit` (campaign back-pressure).
    pub fn due_by(&self, at: OffsetDateTime, limit: u64) -> Result<u64> {
        let rtx = self.db().begin_read()?;
        let t = rtx.open_table(DUE)?;
        let mut n = 0;
        for row in t.range(..=(ms(at), u64::MAX, u32::MAX))? {
            row?;
            n += 1;
            if n >= limit {
                break;
            }
        }
        Ok(n)
    }

    pub fn due_count(&self) -> Result<u64> {
        use redb::ReadableTableMetadata;
        let rtx = self.db().begin_read()?;
        Ok(rtx.open_table(DUE)?.len()?)
    }
}

/// Stores a message with its recipients, all due now, inside the caller's transaction (a
/// campaign batch queues its messages and marks its recipients in one commit).
pub(crate) fn enqueue_in(
    wtx: &redb::WriteTransaction,
    mut msg: OutMessage,
    body: &[u8],
    recipients: &[(String, String)],
) -> Result<OutMessage> {
    let t = now();
    if msg.id == 0 {
        let mut seqs = wtx.open_table(SEQUENCES)?;
        msg.id = next_seq(&mut seqs, "out_message")?;
    }
    msg.recipients = recipients.len() as u32;
    msg.size = body.len() as u64;
    wtx.open_table(OUT_MESSAGES)?
        .insert(msg.id, encode(&msg).as_slice())?;
    wtx.open_table(OUT_BODIES)?.insert(msg.id, body)?;
    let mut deliveries = wtx.open_table(DELIVERIES)?;
    let mut due = wtx.open_table(DUE)?;
    for (i, (rcpt, domain)) in recipients.iter().enumerate() {
        let d = Delivery {
            message: msg.id,
            index: i as u32,
            recipient: rcpt.clone(),
            domain: domain.clone(),
            state: DeliveryState::Queued,
            attempts: 0,
            next_attempt: Some(t),
            site: None,
            policy: false,
            events: vec![DeliveryEvent {
                at: t,
                state: DeliveryState::Queued,
                code: None,
                enhanced: None,
                text: String::new(),
                mx: None,
            }],
            created_at: t,
            updated_at: t,
        };
        deliveries.insert((msg.id, i as u32), encode(&d).as_slice())?;
        due.insert((ms(t), msg.id, i as u32), ())?;
        super::events::emit(
            wtx,
            EventType::MessageSent,
            serde_json::json!({
                "message_id": msg.id,
                "message_header_id": msg.message_id,
                "email": rcpt,
                "source": msg.source,
                "subject": msg.subject,
            }),
        )?;
    }
    Ok(msg)
}

#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct SiteStats {
    pub waiting: u64,
    pub deferred: u64,
    pub sent: u64,
    pub bounced: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Default)]
pub struct QueueStats {
    pub by_site: std::collections::BTreeMap<String, SiteStats>,
    pub oldest_waiting: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> OutMessage {
        OutMessage::for_tests()
    }

    fn event(state: DeliveryState) -> DeliveryEvent {
        DeliveryEvent {
            at: now(),
            state,
            code: Some(250),
            enhanced: None,
            text: "ok".into(),
            mx: None,
        }
    }

    #[test]
    fn claim_settle_retry_and_crash_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let rcpts = vec![
            ("a@one.test".to_string(), "one.test".to_string()),
            ("b@two.test".to_string(), "two.test".to_string()),
        ];
        let m = store.enqueue(msg(), b"body", &rcpts).unwrap();
        assert_eq!(store.due_count().unwrap(), 2);
        let claimed = store.claim_due(now(), 10).unwrap();
        assert_eq!(claimed.len(), 2);
        assert!(
            store.claim_due(now(), 10).unwrap().is_empty(),
            "claimed deliveries are not handed out twice"
        );
        let later = now() + time::Duration::minutes(5);
        store
            .settle(
                &[
                    Settlement {
                        message: m.id,
                        index: 0,
                        state: DeliveryState::Sent,
                        event: event(DeliveryState::Sent),
                        retry_at: None,
                        site: Some("one".into()),
                        policy: false,
                        attempted: true,
                    },
                    Settlement {
                        message: m.id,
                        index: 1,
                        state: DeliveryState::Deferred,
                        event: event(DeliveryState::Deferred),
                        retry_at: Some(later),
                        site: None,
                        policy: false,
                        attempted: true,
                    },
                ],
                |_, _, _| Ok(()),
            )
            .unwrap();
        assert!(
            store.claim_due(now(), 10).unwrap().is_empty(),
            "not due yet"
        );
        assert_eq!(
            store.out_body(m.id).unwrap().as_deref(),
            Some(&b"body"[..]),
            "body kept while a recipient waits"
        );
        let again = store.claim_due(later, 10).unwrap();
        assert_eq!(again.len(), 1);
        // the process dies while sending: the delivery comes back
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.requeue_in_flight().unwrap(), 1);
        let back = store.claim_due(now(), 10).unwrap();
        assert_eq!(back[0].delivery.recipient, "b@two.test");
        assert_eq!(back[0].delivery.attempts, 1);
        store
            .settle(
                &[Settlement {
                    message: m.id,
                    index: 1,
                    state: DeliveryState::Bounced,
                    event: event(DeliveryState::Bounced),
                    retry_at: None,
                    site: None,
                    policy: false,
                    attempted: true,
                }],
                |_, _, _| Ok(()),
            )
            .unwrap();
        assert_eq!(
            store.out_body(m.id).unwrap(),
            None,
            "body dropped once every recipient is final"
        );
        let d = store.deliveries_of(m.id).unwrap();
        assert_eq!(
            (d[0].state, d[1].state),
            (DeliveryState::Sent, DeliveryState::Bounced)
        );
        let stats = store.queue_stats().unwrap();
        assert_eq!(stats.by_site["one"].sent, 1);
        assert_eq!(stats.by_site["two.test"].bounced, 1);
        assert_eq!(
            store
                .delivery_log(
                    &DeliveryFilter {
                        state: Some(DeliveryState::Bounced),
                        ..Default::default()
                    },
                    10
                )
                .unwrap()
                .len(),
            1
        );
    }
}
