//! Saved segments and per-contact campaign engagement. Engagement rows change through
//! [`record_engagement_in`], inside the caller's write transaction (campaign sending, open and
//! click tracking); like contacts they have a change log with one live entry per contact, which
//! the segment cache follows so counts never miss an open or a click.

use super::{CONTACT_CHANGES, CONTACTS, META, Result, SEQUENCES, Store, StoreError, TOMBSTONE};
use super::{all_json, decode, encode, get_json, next_seq};
use crate::model::{Contact, Engagement, EngagementKind, Id, Segment};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use time::OffsetDateTime;

/// segment id -> Segment (JSON)
pub(crate) const SEGMENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("segments");
/// contact id -> Engagement (JSON)
pub(crate) const CONTACT_ENGAGEMENT: TableDefinition<u64, &[u8]> =
    TableDefinition::new("contact_engagement");
/// change sequence -> contact id: one live entry per contact whose engagement changed.
pub(crate) const ENGAGEMENT_CHANGES: TableDefinition<u64, u64> =
    TableDefinition::new("engagement_changes");

const ENGAGEMENT_SEQ: &str = "engagement_change";
/// META key: the change sequence up to which deletion markers were last pruned.
pub(crate) const TOMBSTONES_PRUNED: &str = "contact_tombstones_pruned";

fn pruned(rtx: &redb::ReadTransaction) -> Result<u64> {
    let meta = rtx.open_table(META)?;
    Ok(meta
        .get(TOMBSTONES_PRUNED)?
        .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0))
}

/// Records that a campaign message was sent to, opened or clicked by a contact, inside the
/// caller's transaction. Times only move forward; counts always grow.
pub fn record_engagement_in(
    wtx: &WriteTransaction,
    contact_id: Id,
    kind: EngagementKind,
    at: OffsetDateTime,
) -> Result<Engagement> {
    let mut rows = wtx.open_table(CONTACT_ENGAGEMENT)?;
    let mut changes = wtx.open_table(ENGAGEMENT_CHANGES)?;
    let mut e: Engagement = get_json(&rows, "contact_engagement", contact_id)?.unwrap_or_default();
    let (last, count) = match kind {
        EngagementKind::Sent => (&mut e.last_sent, &mut e.sends),
        EngagementKind::Open => (&mut e.last_open, &mut e.opens),
        EngagementKind::Click => (&mut e.last_click, &mut e.clicks),
    };
    *count += 1;
    if last.is_none_or(|l| l < at) {
        *last = Some(at);
    }
    if e.seq != 0 {
        changes.remove(e.seq)?;
    }
    e.seq = next_seq(&mut wtx.open_table(SEQUENCES)?, ENGAGEMENT_SEQ)?;
    changes.insert(e.seq, contact_id)?;
    rows.insert(contact_id, encode(&e).as_slice())?;
    Ok(e)
}

/// Stores a new segment (its id assigned here) inside the caller's transaction.
/// Forgets a contact's engagement (erasure): the row goes, and a change entry tells the
/// segment cache.
pub fn forget_engagement_in(wtx: &WriteTransaction, contact_id: Id) -> Result<()> {
    let mut rows = wtx.open_table(CONTACT_ENGAGEMENT)?;
    let old: Option<Engagement> = get_json(&rows, "contact_engagement", contact_id)?;
    let Some(old) = old else {
        return Ok(());
    };
    rows.remove(contact_id)?;
    let mut changes = wtx.open_table(ENGAGEMENT_CHANGES)?;
    if old.seq != 0 {
        changes.remove(old.seq)?;
    }
    let seq = next_seq(&mut wtx.open_table(SEQUENCES)?, ENGAGEMENT_SEQ)?;
    changes.insert(seq, contact_id)?;
    Ok(())
}

pub fn create_segment_in(wtx: &WriteTransaction, mut s: Segment) -> Result<Segment> {
    s.id = next_seq(&mut wtx.open_table(SEQUENCES)?, "segment")?;
    wtx.open_table(SEGMENTS)?
        .insert(s.id, encode(&s).as_slice())?;
    Ok(s)
}

/// A segment, read inside the caller's transaction.
pub fn segment_in(wtx: &WriteTransaction, id: Id) -> Result<Option<Segment>> {
    get_json(&wtx.open_table(SEGMENTS)?, "segments", id)
}

/// Replaces a stored segment; returns it as it was.
pub fn update_segment_in(wtx: &WriteTransaction, s: &Segment) -> Result<Segment> {
    let mut t = wtx.open_table(SEGMENTS)?;
    let old: Segment = get_json(&t, "segments", s.id)?.ok_or(StoreError::NotFound("segment"))?;
    t.insert(s.id, encode(s).as_slice())?;
    Ok(old)
}

/// Deletes a segment; returns it as it was.
pub fn delete_segment_in(wtx: &WriteTransaction, id: Id) -> Result<Segment> {
    let mut t = wtx.open_table(SEGMENTS)?;
    let old = match t.remove(id)? {
        Some(v) => decode("segments", v.value())?,
        None => return Err(StoreError::NotFound("segment")),
    };
    Ok(old)
}

/// Heads of the two change logs the segment cache follows, and how far deletion markers have
/// been pruned (a follower behind that point may have missed deletions and must rebuild).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentHeads {
    pub contacts: u64,
    pub engagement: u64,
    pub pruned: u64,
}

impl Store {
    pub fn segments(&self) -> Result<Vec<Segment>> {
        let rtx = self.db().begin_read()?;
        all_json(&rtx.open_table(SEGMENTS)?, "segments")
    }

    pub fn segment(&self, id: Id) -> Result<Option<Segment>> {
        let rtx = self.db().begin_read()?;
        get_json(&rtx.open_table(SEGMENTS)?, "segments", id)
    }

    pub fn engagement(&self, contact_id: Id) -> Result<Option<Engagement>> {
        let rtx = self.db().begin_read()?;
        get_json(
            &rtx.open_table(CONTACT_ENGAGEMENT)?,
            "contact_engagement",
            contact_id,
        )
    }

    /// The newest entries of the contact and engagement change logs.
    pub fn segment_heads(&self) -> Result<SegmentHeads> {
        let rtx = self.db().begin_read()?;
        let c = rtx.open_table(CONTACT_CHANGES)?;
        let e = rtx.open_table(ENGAGEMENT_CHANGES)?;
        Ok(SegmentHeads {
            contacts: c.last()?.map(|(k, _)| k.value()).unwrap_or(0),
            engagement: e.last()?.map(|(k, _)| k.value()).unwrap_or(0),
            pruned: pruned(&rtx)?,
        })
    }

    /// Every contact and every engagement row from one read snapshot, with the log heads of
    /// that snapshot: the segment cache's cold build.
    pub fn segment_snapshot(
        &self,
        mut contact: impl FnMut(Contact),
        mut engagement: impl FnMut(Id, Engagement),
    ) -> Result<SegmentHeads> {
        let rtx = self.db().begin_read()?;
        let changes = rtx.open_table(CONTACT_CHANGES)?;
        let echanges = rtx.open_table(ENGAGEMENT_CHANGES)?;
        let pruned = pruned(&rtx)?;
        let heads = SegmentHeads {
            // a full snapshot holds every deletion, pruned markers included
            contacts: changes
                .last()?
                .map(|(k, _)| k.value())
                .unwrap_or(0)
                .max(pruned),
            engagement: echanges.last()?.map(|(k, _)| k.value()).unwrap_or(0),
            pruned,
        };
        for row in rtx.open_table(CONTACTS)?.iter()? {
            let (_, v) = row?;
            contact(decode("contacts", v.value())?);
        }
        for row in rtx.open_table(CONTACT_ENGAGEMENT)?.iter()? {
            let (k, v) = row?;
            engagement(k.value(), decode("contact_engagement", v.value())?);
        }
        Ok(heads)
    }

    /// Contacts changed after `contacts_since` (`Err(id)` for a deletion) and engagement rows
    /// changed after `engagement_since`, from one read snapshot, in sequence order; the
    /// engagement of each new or changed contact comes with it. Returns the heads reached.
    #[allow(clippy::type_complexity)]
    pub fn segment_changes_since(
        &self,
        since: SegmentHeads,
        mut contact: impl FnMut(std::result::Result<(Contact, Option<Engagement>), Id>),
        mut engagement: impl FnMut(Id, Engagement),
    ) -> Result<SegmentHeads> {
        let rtx = self.db().begin_read()?;
        let changes = rtx.open_table(CONTACT_CHANGES)?;
        let contacts = rtx.open_table(CONTACTS)?;
        let rows = rtx.open_table(CONTACT_ENGAGEMENT)?;
        let mut heads = since;
        heads.pruned = pruned(&rtx)?;
        for row in changes.range(since.contacts.saturating_add(1)..)? {
            let (k, v) = row?;
            let (seq, id) = (k.value(), v.value());
            heads.contacts = heads.contacts.max(seq);
            if id & TOMBSTONE != 0 {
                contact(Err(id & !TOMBSTONE));
            } else if let Some(c) = get_json::<Contact>(&contacts, "contacts", id)? {
                let e = get_json(&rows, "contact_engagement", id)?;
                contact(Ok((c, e)));
            }
        }
        for row in rtx
            .open_table(ENGAGEMENT_CHANGES)?
            .range(since.engagement.saturating_add(1)..)?
        {
            let (k, v) = row?;
            heads.engagement = heads.engagement.max(k.value());
            let id = v.value();
            // a missing row was forgotten (erasure): no engagement any more
            let e = get_json(&rows, "contact_engagement", id)?.unwrap_or_default();
            engagement(id, e);
        }
        Ok(heads)
    }
}
