//! The suppression list and the feedback log: which addresses no send may reach and why,
//! every bounce/complaint recorded per address, soft-bounce counters, and the keys of
//! provider events already applied (idempotency).

use super::{Result, Store, decode, encode};
use crate::model::{FeedbackRecord, Id, Suppression};
use redb::{
    ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use std::collections::HashSet;
use time::OffsetDateTime;

/// normalised email -> Suppression (JSON)
pub(crate) const SUPPRESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("suppressions");
/// (normalised email, unix ms) -> () : temporary failures counted towards the threshold.
pub(crate) const SOFT_BOUNCES: TableDefinition<(&str, i64), ()> =
    TableDefinition::new("soft_bounces");
/// feedback id -> FeedbackRecord (JSON)
pub(crate) const FEEDBACK: TableDefinition<u64, &[u8]> = TableDefinition::new("feedback");
/// (normalised email, feedback id) -> ()
pub(crate) const FEEDBACK_BY_EMAIL: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("feedback_by_email");
/// (outbound message id, feedback id) -> () : what came back about a message (reports).
pub(crate) const FEEDBACK_BY_MESSAGE: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("feedback_by_message");
/// idempotency key (provider + event id) -> unix ms first seen
pub(crate) const FEEDBACK_SEEN: TableDefinition<&str, i64> = TableDefinition::new("feedback_seen");

pub(crate) fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Marks an idempotency key as seen; returns true when it had been seen before.
pub fn already_seen(wtx: &WriteTransaction, key: &str, at: OffsetDateTime) -> Result<bool> {
    let mut seen = wtx.open_table(FEEDBACK_SEEN)?;
    if seen.get(key)?.is_some() {
        return Ok(true);
    }
    seen.insert(key, ms(at))?;
    Ok(false)
}

/// Appends a feedback record (its id is assigned here).
pub fn add_feedback(wtx: &WriteTransaction, mut rec: FeedbackRecord) -> Result<FeedbackRecord> {
    let mut feedback = wtx.open_table(FEEDBACK)?;
    rec.id = feedback.last()?.map(|(k, _)| k.value()).unwrap_or(0) + 1;
    feedback.insert(rec.id, encode(&rec).as_slice())?;
    wtx.open_table(FEEDBACK_BY_EMAIL)?
        .insert((rec.email.as_str(), rec.id), ())?;
    if let Some(m) = rec.message {
        wtx.open_table(FEEDBACK_BY_MESSAGE)?
            .insert((m, rec.id), ())?;
    }
    Ok(rec)
}

/// Counts a temporary failure and returns how many there were since `since` (this one
/// included).
pub fn count_soft_bounce(
    wtx: &WriteTransaction,
    email: &str,
    at: OffsetDateTime,
    since: OffsetDateTime,
) -> Result<u64> {
    let mut soft = wtx.open_table(SOFT_BOUNCES)?;
    soft.insert((email, ms(at)), ())?;
    let mut n = 0;
    for row in soft.range((email, ms(since))..=(email, i64::MAX))? {
        row?;
        n += 1;
    }
    Ok(n)
}

/// The entry that suppresses `email`: its own, or the keyed hash an erasure left.
fn lookup(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    key: Option<&[u8; 32]>,
    email: &str,
) -> Result<Option<Suppression>> {
    if let Some(v) = t.get(email)? {
        return Ok(Some(decode("suppressions", v.value())?));
    }
    if let Some(k) = key
        && let Some(v) = t.get(super::gdpr::hashed_address(k, email).as_str())?
    {
        return Ok(Some(decode("suppressions", v.value())?));
    }
    Ok(None)
}

pub fn suppression_in(wtx: &WriteTransaction, email: &str) -> Result<Option<Suppression>> {
    let t = wtx.open_table(SUPPRESSIONS)?;
    let key = super::gdpr::erasure_key(&wtx.open_table(super::META)?)?;
    lookup(&t, key.as_ref(), email)
}

/// Puts an address on the suppression list. An existing entry is kept (the first reason
/// stands); returns whether the address was newly suppressed.
pub fn suppress(wtx: &WriteTransaction, s: &Suppression) -> Result<bool> {
    let key = super::gdpr::erasure_key(&wtx.open_table(super::META)?)?;
    let mut t = wtx.open_table(SUPPRESSIONS)?;
    if lookup(&t, key.as_ref(), &s.email)?.is_some() {
        return Ok(false);
    }
    t.insert(s.email.as_str(), encode(s).as_slice())?;
    Ok(true)
}

/// Takes an address off the suppression list (its own entry and the keyed hash an erasure
/// left) and clears its soft-bounce count.
pub fn unsuppress(wtx: &WriteTransaction, email: &str) -> Result<Option<Suppression>> {
    let key = super::gdpr::erasure_key(&wtx.open_table(super::META)?)?;
    let old = {
        let mut t = wtx.open_table(SUPPRESSIONS)?;
        let mut old = match t.remove(email)? {
            Some(v) => Some(decode::<Suppression>("suppressions", v.value())?),
            None => None,
        };
        if let Some(k) = key
            && let Some(v) = t.remove(super::gdpr::hashed_address(&k, email).as_str())?
        {
            let mut hashed = decode::<Suppression>("suppressions", v.value())?;
            hashed.email = email.to_string();
            old = old.or(Some(hashed));
        }
        old
    };
    let mut soft = wtx.open_table(SOFT_BOUNCES)?;
    let keys: Vec<i64> = soft
        .range((email, i64::MIN)..=(email, i64::MAX))?
        .filter_map(|r| r.ok().map(|(k, _)| k.value().1))
        .collect();
    for k in keys {
        soft.remove((email, k))?;
    }
    Ok(old)
}

impl Store {
    /// The entry suppressing `email`: its own, or the keyed hash left by its erasure.
    pub fn suppression(&self, email: &str) -> Result<Option<Suppression>> {
        let rtx = self.db().begin_read()?;
        let t = rtx.open_table(SUPPRESSIONS)?;
        let key = super::gdpr::erasure_key(&rtx.open_table(super::META)?)?;
        lookup(&t, key.as_ref(), email)
    }

    /// Which of `emails` (normalised) are suppressed (erased addresses included).
    pub fn suppressed_among(&self, emails: &[&str]) -> Result<HashSet<String>> {
        let rtx = self.db().begin_read()?;
        let t = rtx.open_table(SUPPRESSIONS)?;
        let key = super::gdpr::erasure_key(&rtx.open_table(super::META)?)?;
        let mut out = HashSet::new();
        for e in emails {
            if t.get(*e)?.is_some()
                || key.is_some_and(|k| {
                    t.get(super::gdpr::hashed_address(&k, e).as_str())
                        .is_ok_and(|v| v.is_some())
                })
            {
                out.insert((*e).to_string());
            }
        }
        Ok(out)
    }

    /// Suppressions in address order after `after`, whose address, reason or detail contains
    /// `filter` (case-insensitive), at most `limit`.
    pub fn suppressions(
        &self,
        filter: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Suppression>> {
        let rtx = self.db().begin_read()?;
        let t = rtx.open_table(SUPPRESSIONS)?;
        let needle = filter.trim().to_lowercase();
        let mut out = Vec::new();
        let range = match after {
            Some(a) => {
                t.range::<&str>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))?
            }
            None => t.range::<&str>(..)?,
        };
        for row in range {
            let (k, v) = row?;
            let s: Suppression = decode("suppressions", v.value())?;
            if !needle.is_empty()
                && !k.value().contains(&needle)
                && !s.reason.as_str().contains(&needle)
                && !s.detail.to_lowercase().contains(&needle)
                && !s.source.contains(&needle)
            {
                continue;
            }
            out.push(s);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    pub fn suppression_count(&self) -> Result<u64> {
        let rtx = self.db().begin_read()?;
        Ok(rtx.open_table(SUPPRESSIONS)?.len()?)
    }

    /// The feedback recorded for an address, newest first, at most `limit`.
    pub fn feedback_for(&self, email: &str, limit: usize) -> Result<Vec<FeedbackRecord>> {
        let rtx = self.db().begin_read()?;
        let by_email = rtx.open_table(FEEDBACK_BY_EMAIL)?;
        let feedback = rtx.open_table(FEEDBACK)?;
        let mut out = Vec::new();
        for row in by_email.range((email, 0)..=(email, u64::MAX))?.rev() {
            let (k, _) = row?;
            if let Some(v) = feedback.get(k.value().1)? {
                out.push(decode("feedback", v.value())?);
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The feedback recorded about one outbound message, oldest first.
    pub fn feedback_for_message(&self, message: Id) -> Result<Vec<FeedbackRecord>> {
        let rtx = self.db().begin_read()?;
        let by_message = rtx.open_table(FEEDBACK_BY_MESSAGE)?;
        let feedback = rtx.open_table(FEEDBACK)?;
        let mut out = Vec::new();
        for row in by_message.range((message, 0)..=(message, u64::MAX))? {
            let (k, _) = row?;
            if let Some(v) = feedback.get(k.value().1)? {
                out.push(decode("feedback", v.value())?);
            }
            if out.len() >= 10_000 {
                break;
            }
        }
        Ok(out)
    }

    /// When complaints came back about any of `messages` (one read snapshot).
    pub fn complaints_about(&self, messages: &[Id]) -> Result<Vec<OffsetDateTime>> {
        let rtx = self.db().begin_read()?;
        let by_message = rtx.open_table(FEEDBACK_BY_MESSAGE)?;
        let feedback = rtx.open_table(FEEDBACK)?;
        let mut out = Vec::new();
        for m in messages {
            for row in by_message.range((*m, 0)..=(*m, u64::MAX))? {
                let (k, _) = row?;
                if let Some(v) = feedback.get(k.value().1)? {
                    let f: FeedbackRecord = decode("feedback", v.value())?;
                    if f.kind == crate::model::FeedbackType::Complaint {
                        out.push(f.at);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The most recent feedback records of any address, newest first.
    pub fn recent_feedback(&self, before: Option<Id>, limit: usize) -> Result<Vec<FeedbackRecord>> {
        let rtx = self.db().begin_read()?;
        let feedback = rtx.open_table(FEEDBACK)?;
        let mut out = Vec::new();
        let upper = before.unwrap_or(u64::MAX);
        for row in feedback.range(..upper)?.rev() {
            let (_, v) = row?;
            out.push(decode("feedback", v.value())?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Forgets idempotency keys and soft-bounce marks older than `before`. Housekeeping.
    pub fn prune_feedback_keys(&self, before: OffsetDateTime) -> Result<u64> {
        let cut = ms(before);
        let wtx = self.begin_write()?;
        let mut n = 0;
        {
            let mut seen = wtx.open_table(FEEDBACK_SEEN)?;
            let old: Vec<String> = seen
                .iter()?
                .filter_map(|r| r.ok())
                .filter(|(_, v)| v.value() < cut)
                .map(|(k, _)| k.value().to_string())
                .collect();
            for k in old {
                seen.remove(k.as_str())?;
                n += 1;
            }
            let mut soft = wtx.open_table(SOFT_BOUNCES)?;
            let old: Vec<(String, i64)> = soft
                .iter()?
                .filter_map(|r| r.ok())
                .filter(|(k, _)| k.value().1 < cut)
                .map(|(k, _)| (k.value().0.to_string(), k.value().1))
                .collect();
            for (e, t) in old {
                soft.remove((e.as_str(), t))?;
                n += 1;
            }
        }
        wtx.commit()?;
        Ok(n)
    }
}
