//! Outgoing webhooks: subscriptions, the durable per-subscription outbox with its due index,
//! and the attempt log. The dispatcher's cursor over the event log lives in META and moves in
//! the same transaction that creates the outbox entries for the events it passes, so a crash
//! neither loses an event nor fans it out twice. A claimed entry stays in the due index under
//! a lease time: if the process dies mid-attempt it becomes due again when the lease ends.

use super::events::EVENTS;
use super::{META, Result, SEQUENCES, Store, StoreError, all_json, decode, encode, get_json};
use crate::model::{
    Event, EventType, Id, WebhookAttempt, WebhookDelivery, WebhookDeliveryState, WebhookStatus,
    WebhookSubscription,
};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use time::OffsetDateTime;

/// subscription id -> WebhookSubscription (JSON)
pub(crate) const WEBHOOK_SUBS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("webhook_subscriptions");
/// delivery id -> WebhookDelivery (JSON)
pub(crate) const WEBHOOK_OUTBOX: TableDefinition<u64, &[u8]> =
    TableDefinition::new("webhook_outbox");
/// (due unix ms, delivery id): pending deliveries by the time of their next attempt.
pub(crate) const WEBHOOK_DUE: TableDefinition<(u64, u64), ()> = TableDefinition::new("webhook_due");
/// (subscription id, attempt id) -> WebhookAttempt (JSON): the delivery log.
pub(crate) const WEBHOOK_ATTEMPTS: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new("webhook_attempts");

const CURSOR: &str = "webhook_cursor";

pub fn unix_ms(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

fn read_cursor(meta: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<Id> {
    Ok(meta
        .get(CURSOR)?
        .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0))
}

/// Whether an active subscription wants `kind` (bulk writers skip events nobody wants).
pub fn wanted(wtx: &WriteTransaction, kind: EventType) -> Result<bool> {
    let subs = wtx.open_table(WEBHOOK_SUBS)?;
    let all: Vec<WebhookSubscription> = all_json(&subs, "webhook_subscriptions")?;
    Ok(all.iter().any(|s| s.wants(kind)))
}

/// A claimed delivery with its subscription, ready for an HTTP attempt.
#[derive(Debug, Clone)]
pub struct WebhookClaim {
    pub delivery: WebhookDelivery,
    pub subscription: WebhookSubscription,
}

/// What to record after an attempt. `attempt.id` is assigned by the store.
#[derive(Debug, Clone)]
pub struct WebhookSettlement {
    pub attempt: WebhookAttempt,
    /// `Some(t)`: try again at `t`; `None` after a failure: give up.
    pub retry_at: Option<OffsetDateTime>,
}

impl Store {
    pub fn webhook_subscriptions(&self) -> Result<Vec<WebhookSubscription>> {
        let rtx = self.db().begin_read()?;
        all_json(&rtx.open_table(WEBHOOK_SUBS)?, "webhook_subscriptions")
    }

    pub fn webhook_subscription(&self, id: Id) -> Result<Option<WebhookSubscription>> {
        let rtx = self.db().begin_read()?;
        get_json(&rtx.open_table(WEBHOOK_SUBS)?, "webhook_subscriptions", id)
    }

    /// Stores a new subscription (id and `after_event` assigned here): it hears of events
    /// committed after this point. Refuses more than `max` subscriptions.
    pub fn create_webhook_subscription(
        &self,
        mut sub: WebhookSubscription,
        max: usize,
    ) -> Result<WebhookSubscription> {
        let wtx = self.begin_write()?;
        {
            let mut subs = wtx.open_table(WEBHOOK_SUBS)?;
            if subs.iter()?.count() >= max {
                return Err(StoreError::Invalid(format!(
                    "at most {max} webhook subscriptions can exist"
                )));
            }
            let events = wtx.open_table(EVENTS)?;
            sub.after_event = events.last()?.map(|(k, _)| k.value()).unwrap_or(0);
            sub.id = super::next_seq(&mut wtx.open_table(SEQUENCES)?, "webhook_subscription")?;
            subs.insert(sub.id, encode(&sub).as_slice())?;
        }
        wtx.commit()?;
        Ok(sub)
    }

    /// Changes a subscription with `f` in one transaction; `NotFound` if it does not exist.
    pub fn update_webhook_subscription(
        &self,
        id: Id,
        f: impl FnOnce(&mut WebhookSubscription),
    ) -> Result<WebhookSubscription> {
        let wtx = self.begin_write()?;
        let sub = {
            let mut subs = wtx.open_table(WEBHOOK_SUBS)?;
            let mut sub: WebhookSubscription = get_json(&subs, "webhook_subscriptions", id)?
                .ok_or(StoreError::NotFound("webhook subscription"))?;
            f(&mut sub);
            subs.insert(id, encode(&sub).as_slice())?;
            sub
        };
        wtx.commit()?;
        Ok(sub)
    }

    /// Deletes a subscription and its attempt log. Its pending deliveries are discarded when
    /// they come due.
    pub fn delete_webhook_subscription(&self, id: Id) -> Result<()> {
        let wtx = self.begin_write()?;
        {
            let mut subs = wtx.open_table(WEBHOOK_SUBS)?;
            if subs.remove(id)?.is_none() {
                return Err(StoreError::NotFound("webhook subscription"));
            }
            let mut attempts = wtx.open_table(WEBHOOK_ATTEMPTS)?;
            attempts.retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
        }
        wtx.commit()?;
        Ok(())
    }

    /// The attempt log of a subscription, newest first, starting below attempt id `before`.
    pub fn webhook_attempts(
        &self,
        sub: Id,
        before: Option<Id>,
        limit: usize,
    ) -> Result<Vec<WebhookAttempt>> {
        let rtx = self.db().begin_read()?;
        let attempts = rtx.open_table(WEBHOOK_ATTEMPTS)?;
        let end = before.unwrap_or(u64::MAX);
        let mut out = Vec::new();
        for row in attempts.range((sub, 0)..(sub, end))?.rev() {
            let (_, v) = row?;
            out.push(decode("webhook_attempts", v.value())?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// A delivery of the outbox, by id.
    pub fn webhook_delivery(&self, id: Id) -> Result<Option<WebhookDelivery>> {
        let rtx = self.db().begin_read()?;
        get_json(&rtx.open_table(WEBHOOK_OUTBOX)?, "webhook_outbox", id)
    }

    /// Queues a delivery outside the event log (a test ping), due now.
    pub fn enqueue_webhook_ping(
        &self,
        sub: Id,
        body: impl FnOnce(Id) -> String,
    ) -> Result<WebhookDelivery> {
        let wtx = self.begin_write()?;
        let d = {
            let subs = wtx.open_table(WEBHOOK_SUBS)?;
            if subs.get(sub)?.is_none() {
                return Err(StoreError::NotFound("webhook subscription"));
            }
            let id = super::next_seq(&mut wtx.open_table(SEQUENCES)?, "webhook_delivery")?;
            let d = pending(id, sub, None, "ping".into(), body(id));
            put_pending(&wtx, &d)?;
            d
        };
        wtx.commit()?;
        Ok(d)
    }

    /// Moves the dispatcher's cursor over up to `limit` events, creating one outbox entry per
    /// (event, subscription that wants it) in the same transaction. `body` renders the JSON
    /// sent for an event (given the delivery id). Returns the number of events passed.
    pub fn webhook_fan_out(
        &self,
        limit: usize,
        body: impl Fn(&Event, Id) -> String,
    ) -> Result<usize> {
        {
            // Cheap check without the write lock: anything new?
            let rtx = self.db().begin_read()?;
            let cursor = read_cursor(&rtx.open_table(META)?)?;
            let last = rtx
                .open_table(EVENTS)?
                .last()?
                .map(|(k, _)| k.value())
                .unwrap_or(0);
            if last <= cursor {
                return Ok(0);
            }
        }
        let wtx = self.begin_write()?;
        let n = {
            let mut meta = wtx.open_table(META)?;
            let cursor = read_cursor(&meta)?;
            let events = wtx.open_table(EVENTS)?;
            let mut batch: Vec<Event> = Vec::new();
            for row in events.range(cursor.saturating_add(1)..)? {
                let (_, v) = row?;
                batch.push(decode("events", v.value())?);
                if batch.len() >= limit {
                    break;
                }
            }
            let subs: Vec<WebhookSubscription> =
                all_json(&wtx.open_table(WEBHOOK_SUBS)?, "webhook_subscriptions")?;
            let mut seqs = wtx.open_table(SEQUENCES)?;
            for ev in &batch {
                for s in subs
                    .iter()
                    .filter(|s| s.wants(ev.kind) && ev.id > s.after_event)
                {
                    let id = super::next_seq(&mut seqs, "webhook_delivery")?;
                    let d = pending(id, s.id, Some(ev.id), ev.kind.as_str().into(), body(ev, id));
                    put_pending(&wtx, &d)?;
                }
            }
            if let Some(last) = batch.last() {
                meta.insert(CURSOR, last.id.to_le_bytes().as_slice())?;
            }
            batch.len()
        };
        wtx.commit()?;
        Ok(n)
    }

    /// Claims up to `limit` deliveries due at `now`: each stays in the due index under
    /// `lease_until`, so one interrupted by a crash comes due again then. Deliveries of deleted
    /// subscriptions, and event deliveries of disabled ones, are discarded instead.
    pub fn webhook_claim(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<WebhookClaim>> {
        let now_ms = unix_ms(now);
        {
            let rtx = self.db().begin_read()?;
            match rtx.open_table(WEBHOOK_DUE)?.first()? {
                Some((k, _)) if k.value().0 <= now_ms => {}
                _ => return Ok(Vec::new()),
            }
        }
        let wtx = self.begin_write()?;
        let mut out = Vec::new();
        {
            let mut due = wtx.open_table(WEBHOOK_DUE)?;
            let mut outbox = wtx.open_table(WEBHOOK_OUTBOX)?;
            let subs = wtx.open_table(WEBHOOK_SUBS)?;
            let mut keys = Vec::new();
            for row in due.range((0, 0)..=(now_ms, u64::MAX))? {
                keys.push(row?.0.value());
                if keys.len() >= limit {
                    break;
                }
            }
            let lease_ms = unix_ms(lease_until);
            for key in keys {
                due.remove(key)?;
                let Some(mut d) = get_json::<WebhookDelivery>(&outbox, "webhook_outbox", key.1)?
                else {
                    continue;
                };
                if d.state != WebhookDeliveryState::Pending {
                    continue;
                }
                let sub: Option<WebhookSubscription> =
                    get_json(&subs, "webhook_subscriptions", d.subscription_id)?;
                let sub = match sub {
                    Some(s) if s.status == WebhookStatus::Active || d.event_id.is_none() => s,
                    _ => {
                        d.state = WebhookDeliveryState::Discarded;
                        d.due_ms = None;
                        d.finished_at = Some(now);
                        outbox.insert(d.id, encode(&d).as_slice())?;
                        continue;
                    }
                };
                due.insert((lease_ms, d.id), ())?;
                d.due_ms = Some(lease_ms);
                outbox.insert(d.id, encode(&d).as_slice())?;
                out.push(WebhookClaim {
                    delivery: d,
                    subscription: sub,
                });
            }
        }
        wtx.commit()?;
        Ok(out)
    }

    /// Records the outcomes of attempts in one transaction: the attempt log, the delivery's new
    /// state and due entry, and the subscription's failure count. A subscription reaching
    /// `disable_after` consecutive failures is disabled; the ids of those are returned.
    pub fn webhook_settle(
        &self,
        outcomes: Vec<WebhookSettlement>,
        disable_after: u32,
    ) -> Result<Vec<Id>> {
        if outcomes.is_empty() {
            return Ok(Vec::new());
        }
        let wtx = self.begin_write()?;
        let mut disabled = Vec::new();
        {
            let mut due = wtx.open_table(WEBHOOK_DUE)?;
            let mut outbox = wtx.open_table(WEBHOOK_OUTBOX)?;
            let mut subs = wtx.open_table(WEBHOOK_SUBS)?;
            let mut log = wtx.open_table(WEBHOOK_ATTEMPTS)?;
            let mut seqs = wtx.open_table(SEQUENCES)?;
            for WebhookSettlement {
                mut attempt,
                retry_at,
            } in outcomes
            {
                let Some(mut d) =
                    get_json::<WebhookDelivery>(&outbox, "webhook_outbox", attempt.delivery_id)?
                else {
                    continue;
                };
                if d.state != WebhookDeliveryState::Pending {
                    // settled meanwhile (discarded by an erasure): keep it as it is
                    continue;
                }
                if let Some(ms) = d.due_ms.take() {
                    due.remove((ms, d.id))?;
                }
                d.attempts = d.attempts.max(attempt.attempt);
                match (attempt.ok, retry_at) {
                    (true, _) => {
                        d.state = WebhookDeliveryState::Delivered;
                        d.finished_at = Some(attempt.at);
                    }
                    (false, Some(t)) => {
                        let ms = unix_ms(t);
                        due.insert((ms, d.id), ())?;
                        d.due_ms = Some(ms);
                        attempt.next_attempt_at = Some(t);
                    }
                    (false, None) => {
                        d.state = WebhookDeliveryState::Failed;
                        d.finished_at = Some(attempt.at);
                    }
                }
                outbox.insert(d.id, encode(&d).as_slice())?;
                let sub: Option<WebhookSubscription> =
                    get_json(&subs, "webhook_subscriptions", d.subscription_id)?;
                let Some(mut sub) = sub else { continue };
                sub.last_attempt_at = Some(attempt.at);
                if attempt.ok {
                    sub.consecutive_failures = 0;
                    sub.last_success_at = Some(attempt.at);
                } else {
                    sub.consecutive_failures = sub.consecutive_failures.saturating_add(1);
                    sub.last_error = attempt.error.clone();
                    if sub.status == WebhookStatus::Active
                        && sub.consecutive_failures >= disable_after
                    {
                        sub.status = WebhookStatus::Disabled;
                        sub.auto_disabled = true;
                        sub.disabled_at = Some(attempt.at);
                        disabled.push(sub.id);
                    }
                }
                subs.insert(sub.id, encode(&sub).as_slice())?;
                attempt.id = super::next_seq(&mut seqs, "webhook_attempt")?;
                log.insert((sub.id, attempt.id), encode(&attempt).as_slice())?;
            }
        }
        wtx.commit()?;
        Ok(disabled)
    }

    /// Housekeeping: drops finished deliveries, attempts and handled events older than
    /// `cutoff`. The newest event is always kept, so event ids keep increasing.
    pub fn webhook_prune(&self, cutoff: OffsetDateTime) -> Result<u64> {
        let wtx = self.begin_write()?;
        let mut n = 0;
        {
            let mut outbox = wtx.open_table(WEBHOOK_OUTBOX)?;
            let mut old = Vec::new();
            for row in outbox.iter()? {
                let (k, v) = row?;
                let d: WebhookDelivery = decode("webhook_outbox", v.value())?;
                if d.created_at >= cutoff {
                    break; // ids grow with time
                }
                if d.finished_at.is_some_and(|f| f < cutoff) {
                    old.push(k.value());
                }
            }
            for id in old {
                outbox.remove(id)?;
                n += 1;
            }
            let subs: Vec<Id> = {
                let t = wtx.open_table(WEBHOOK_SUBS)?;
                let mut ids = Vec::new();
                for row in t.iter()? {
                    ids.push(row?.0.value());
                }
                ids
            };
            let mut attempts = wtx.open_table(WEBHOOK_ATTEMPTS)?;
            for sub in subs {
                let mut old = Vec::new();
                for row in attempts.range((sub, 0)..=(sub, u64::MAX))? {
                    let (k, v) = row?;
                    let a: WebhookAttempt = decode("webhook_attempts", v.value())?;
                    if a.at >= cutoff {
                        break;
                    }
                    old.push(k.value());
                }
                for k in old {
                    attempts.remove(k)?;
                    n += 1;
                }
            }
            let cursor = read_cursor(&wtx.open_table(META)?)?;
            let mut events = wtx.open_table(EVENTS)?;
            let newest = events.last()?.map(|(k, _)| k.value()).unwrap_or(0);
            let mut old = Vec::new();
            for row in events.range(..cursor.min(newest))? {
                let (k, v) = row?;
                let e: Event = decode("events", v.value())?;
                if e.at >= cutoff {
                    break;
                }
                old.push(k.value());
            }
            for id in old {
                events.remove(id)?;
                n += 1;
            }
        }
        wtx.commit()?;
        Ok(n)
    }
}

fn pending(
    id: Id,
    sub: Id,
    event_id: Option<Id>,
    event_type: String,
    body: String,
) -> WebhookDelivery {
    WebhookDelivery {
        id,
        subscription_id: sub,
        event_id,
        event_type,
        body,
        state: WebhookDeliveryState::Pending,
        attempts: 0,
        due_ms: None,
        created_at: crate::model::now(),
        finished_at: None,
    }
}

/// Writes a new pending delivery, due now.
fn put_pending(wtx: &WriteTransaction, d: &WebhookDelivery) -> Result<()> {
    let ms = unix_ms(d.created_at);
    let mut d = d.clone();
    d.due_ms = Some(ms);
    wtx.open_table(WEBHOOK_OUTBOX)?
        .insert(d.id, encode(&d).as_slice())?;
    wtx.open_table(WEBHOOK_DUE)?.insert((ms, d.id), ())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{WebhookSecret, now};

    fn sub(kind: EventType) -> WebhookSubscription {
        WebhookSubscription::new(
            "https://hooks.example.com/x".into(),
            String::new(),
            vec![kind],
            WebhookSecret("whsec_test".into()),
            None,
        )
    }

    fn emit(store: &Store, kind: EventType) -> Id {
        store
            .write(|wtx| super::super::events::emit(wtx, kind, serde_json::json!({})))
            .unwrap()
    }

    fn attempt(d: &WebhookDelivery, ok: bool) -> WebhookAttempt {
        WebhookAttempt {
            id: 0,
            subscription_id: d.subscription_id,
            delivery_id: d.id,
            event_id: d.event_id,
            event_type: d.event_type.clone(),
            attempt: d.attempts + 1,
            at: now(),
            duration_ms: 1,
            status: Some(if ok { 200 } else { 500 }),
            error: (!ok).then(|| "HTTP status 500".to_string()),
            response: String::new(),
            ok,
            next_attempt_at: None,
        }
    }

    #[test]
    fn fan_out_claim_lease_settle_and_prune() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let before = emit(&store, EventType::ContactCreated);
        let s = store
            .create_webhook_subscription(sub(EventType::ContactCreated), 10)
            .unwrap();
        assert_eq!(s.after_event, before, "older events are not sent");
        emit(&store, EventType::ContactCreated);
        emit(&store, EventType::ContactUpdated); // not wanted
        let body = |e: &Event, id: Id| format!("{}:{id}", e.id);
        assert_eq!(store.webhook_fan_out(100, body).unwrap(), 3);
        assert_eq!(store.webhook_fan_out(100, body).unwrap(), 0, "cursor moved");

        let t = now();
        let lease = t + time::Duration::seconds(60);
        let claimed = store.webhook_claim(t, lease, 10).unwrap();
        assert_eq!(claimed.len(), 1);
        let d = claimed[0].delivery.clone();
        assert_eq!(d.event_id, Some(before + 1));
        // Claimed and never settled (a crash): not due again until the lease ends, then again.
        assert!(store.webhook_claim(t, lease, 10).unwrap().is_empty());
        let again = store
            .webhook_claim(lease, lease + time::Duration::seconds(60), 10)
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].delivery.id, d.id);

        // A failure reschedules; a success finishes; the failure count resets.
        let retry = now() + time::Duration::seconds(5);
        let off = store
            .webhook_settle(
                vec![WebhookSettlement {
                    attempt: attempt(&again[0].delivery, false),
                    retry_at: Some(retry),
                }],
                1,
            )
            .unwrap();
        assert_eq!(off, vec![s.id], "disable_after = 1 disables at once");
        let d = store.webhook_delivery(d.id).unwrap().unwrap();
        assert_eq!(
            (d.state, d.attempts, d.due_ms),
            (WebhookDeliveryState::Pending, 1, Some(unix_ms(retry)))
        );
        let sub_now = store.webhook_subscription(s.id).unwrap().unwrap();
        assert!(sub_now.auto_disabled && sub_now.status == WebhookStatus::Disabled);
        // Disabled: its pending event delivery is discarded when due, and new events skip it.
        assert!(store.webhook_claim(retry, retry, 10).unwrap().is_empty());
        let d = store.webhook_delivery(d.id).unwrap().unwrap();
        assert_eq!(d.state, WebhookDeliveryState::Discarded);
        emit(&store, EventType::ContactCreated);
        store.webhook_fan_out(100, body).unwrap();
        let later = now() + time::Duration::hours(1);
        assert!(store.webhook_claim(later, later, 10).unwrap().is_empty());
        assert_eq!(store.webhook_attempts(s.id, None, 10).unwrap().len(), 1);

        // Pruning everything keeps the newest event, so ids keep increasing.
        let newest = store.events_after(0, 100).unwrap().last().unwrap().id;
        store
            .webhook_prune(now() + time::Duration::days(1))
            .unwrap();
        let left = store.events_after(0, 100).unwrap();
        assert_eq!(left.iter().map(|e| e.id).collect::<Vec<_>>(), vec![newest]);
        assert!(store.webhook_delivery(d.id).unwrap().is_none());
        assert!(store.webhook_attempts(s.id, None, 10).unwrap().is_empty());
        assert_eq!(emit(&store, EventType::ContactCreated), newest + 1);
    }
}
