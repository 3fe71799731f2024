//! Templates, campaigns, each campaign's audience snapshot and who it has been queued for,
//! and the opens and clicks the tracking links saw.
//!
//! The at-most-once rule lives here: `queue_batch` queues a batch of personalised messages
//! and marks their recipients in `CAMPAIGN_SENT` in the same transaction, after checking that
//! the campaign is still sending and that nobody in the batch was marked before. A pause,
//! a cancel or a crash between render and commit therefore loses the batch (it is rendered
//! again on resume) but can never queue anyone twice.

use super::{Result, SEQUENCES, Store, StoreError, decode, encode, get_json, next_seq};
use crate::model::{Campaign, CampaignStatus, Id, OutMessage, StoredTemplate, TrackEvent};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

pub(crate) const TEMPLATES: TableDefinition<u64, &[u8]> = TableDefinition::new("templates");
pub(crate) const CAMPAIGNS: TableDefinition<u64, &[u8]> = TableDefinition::new("campaigns");
/// (campaign, position) -> (contact id, due unix seconds; 0 = at once): the audience as it
/// was when the campaign started, in the order it goes out.
pub(crate) const CAMPAIGN_AUDIENCE: TableDefinition<(u64, u64), (u64, i64)> =
    TableDefinition::new("campaign_audience");
/// (campaign, contact) -> outbound message id: who has been queued (at most once each).
pub(crate) const CAMPAIGN_SENT: TableDefinition<(u64, u64), u64> =
    TableDefinition::new("campaign_sent");
/// (campaign, outbound message) -> (contact id, subject variant): the campaign's messages.
pub(crate) const CAMPAIGN_MESSAGES: TableDefinition<(u64, u64), (u64, u8)> =
    TableDefinition::new("campaign_messages");
/// (campaign, sequence) -> TrackEvent (JSON): every open and click.
pub(crate) const TRACK_EVENTS: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new("track_events");
/// (campaign, message, kind) -> unix ms of the first event of that kind. Kinds:
/// 0 open, 1 click, 2 open by a person, 3 click by a person, 4 unsubscribe.
pub(crate) const TRACK_FIRST: TableDefinition<(u64, u64, u8), i64> =
    TableDefinition::new("track_first");

pub const FIRST_OPEN: u8 = 0;
pub const FIRST_CLICK: u8 = 1;
pub const FIRST_HUMAN_OPEN: u8 = 2;
pub const FIRST_HUMAN_CLICK: u8 = 3;
pub const FIRST_UNSUBSCRIBE: u8 = 4;

/// One personalised message of a campaign batch.
#[derive(Debug)]
pub struct BatchItem {
    pub contact_id: Id,
    pub message: OutMessage,
    pub body: Vec<u8>,
    pub recipient: String,
    pub domain: String,
    pub variant: u8,
}

/// What `queue_batch` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    pub queued: u64,
    pub already: u64,
}

pub fn put_template_in(wtx: &WriteTransaction, mut t: StoredTemplate) -> Result<StoredTemplate> {
    if t.id == 0 {
        let mut seqs = wtx.open_table(SEQUENCES)?;
        t.id = next_seq(&mut seqs, "template")?;
    }
    wtx.open_table(TEMPLATES)?
        .insert(t.id, encode(&t).as_slice())?;
    Ok(t)
}

pub fn delete_template_in(wtx: &WriteTransaction, id: Id) -> Result<bool> {
    Ok(wtx.open_table(TEMPLATES)?.remove(id)?.is_some())
}

pub fn put_campaign_in(wtx: &WriteTransaction, mut c: Campaign) -> Result<Campaign> {
    if c.id == 0 {
        let mut seqs = wtx.open_table(SEQUENCES)?;
        c.id = next_seq(&mut seqs, "campaign")?;
    }
    wtx.open_table(CAMPAIGNS)?
        .insert(c.id, encode(&c).as_slice())?;
    Ok(c)
}

pub fn campaign_in(wtx: &WriteTransaction, id: Id) -> Result<Option<Campaign>> {
    let t = wtx.open_table(CAMPAIGNS)?;
    get_json(&t, "campaigns", id)
}

pub fn delete_campaign_in(wtx: &WriteTransaction, id: Id) -> Result<bool> {
    Ok(wtx.open_table(CAMPAIGNS)?.remove(id)?.is_some())
}

/// Writes the audience snapshot (positions from 0; (contact, due) in sending order) and
/// returns its size.
pub fn snapshot_audience_in(
    wtx: &WriteTransaction,
    campaign: Id,
    contacts: &[(Id, i64)],
) -> Result<u64> {
    let mut t = wtx.open_table(CAMPAIGN_AUDIENCE)?;
    t.retain_in((campaign, 0)..=(campaign, u64::MAX), |_, _| false)?;
    for (i, c) in contacts.iter().enumerate() {
        t.insert((campaign, i as u64), *c)?;
    }
    Ok(contacts.len() as u64)
}

impl Store {
    pub fn template(&self, id: Id) -> Result<Option<StoredTemplate>> {
        let rtx = self.db().begin_read()?;
        get_json(&rtx.open_table(TEMPLATES)?, "templates", id)
    }

    pub fn templates(&self) -> Result<Vec<StoredTemplate>> {
        let rtx = self.db().begin_read()?;
        super::all_json(&rtx.open_table(TEMPLATES)?, "templates")
    }

    pub fn campaign(&self, id: Id) -> Result<Option<Campaign>> {
        let rtx = self.db().begin_read()?;
        get_json(&rtx.open_table(CAMPAIGNS)?, "campaigns", id)
    }

    pub fn campaigns(&self) -> Result<Vec<Campaign>> {
        let rtx = self.db().begin_read()?;
        super::all_json(&rtx.open_table(CAMPAIGNS)?, "campaigns")
    }

    /// Contacts whose membership of `list` is confirmed (what a campaign to the list reaches).
    pub fn list_subscriber_ids(&self, list: Id) -> Result<Vec<Id>> {
        let rtx = self.db().begin_read()?;
        let t = rtx.open_table(super::LIST_MEMBERS)?;
        let mut out = Vec::new();
        for row in t.range((list, 0)..=(list, u64::MAX))? {
            let (k, v) = row?;
            if v.value() == super::contacts::CONFIRMED {
                out.push(k.value().1);
            }
        }
        Ok(out)
    }

    /// (position, contact, due) at positions `from..from+limit` of a campaign's audience.
    pub fn audience_slice(
        &self,
        campaign: Id,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Id, i64)>> {
        let rtx = self.db().begin_read()?;
        let t = rtx.open_table(CAMPAIGN_AUDIENCE)?;
        let mut out = Vec::with_capacity(limit);
        for row in t.range((campaign, from)..=(campaign, u64::MAX))? {
            let (k, v) = row?;
            let (contact, due) = v.value();
            out.push((k.value().1, contact, due));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The outbound message a campaign queued for a contact, if any.
    pub fn campaign_sent(&self, campaign: Id, contact: Id) -> Result<Option<Id>> {
        let rtx = self.db().begin_read()?;
        let t = rtx.open_table(CAMPAIGN_SENT)?;
        Ok(t.get((campaign, contact))?.map(|v| v.value()))
    }

    /// Every (message, contact, variant) a campaign queued.
    pub fn campaign_messages(&self, campaign: Id) -> Result<Vec<(Id, Id, u8)>> {
        let rtx = self.db().begin_read()?;
        let t = rtx.open_table(CAMPAIGN_MESSAGES)?;
        let mut out = Vec::new();
        for row in t.range((campaign, 0)..=(campaign, u64::MAX))? {
            let (k, v) = row?;
            let (contact, variant) = v.value();
            out.push((k.value().1, contact, variant));
        }
        Ok(out)
    }

    /// Every delivery of a campaign's messages with the contact and variant, read in one
    /// snapshot (reports).
    pub fn campaign_deliveries(
        &self,
        campaign: Id,
    ) -> Result<Vec<(crate::model::Delivery, Id, u8)>> {
        let rtx = self.db().begin_read()?;
        let msgs = rtx.open_table(CAMPAIGN_MESSAGES)?;
        let deliveries = rtx.open_table(super::DELIVERIES)?;
        let mut out = Vec::new();
        for row in msgs.range((campaign, 0)..=(campaign, u64::MAX))? {
            let (k, v) = row?;
            let m = k.value().1;
            let (contact, variant) = v.value();
            for d in deliveries.range((m, 0)..=(m, u32::MAX))? {
                let (_, dv) = d?;
                out.push((decode("deliveries", dv.value())?, contact, variant));
            }
        }
        Ok(out)
    }

    /// The campaign and variant an outbound message belongs to, from its source.
    pub fn message_campaign(&self, message: Id) -> Result<Option<(Id, Id, u8)>> {
        let Some(m) = self.out_message(message)? else {
            return Ok(None);
        };
        let Some(cid) = m
            .source
            .strip_prefix("campaign:")
            .and_then(|s| s.parse::<u64>().ok())
        else {
            return Ok(None);
        };
        let rtx = self.db().begin_read()?;
        let t = rtx.open_table(CAMPAIGN_MESSAGES)?;
        Ok(t.get((cid, message))?.map(|v| {
            let (contact, variant) = v.value();
            (cid, contact, variant)
        }))
    }

    /// Queues a batch of a campaign's messages and marks their recipients, in one
    /// transaction, only if the campaign is still `sending` at position `expected_cursor`.
    /// `skipped` recipients (suppressed, unsubscribed) only move the cursor. Returns
    /// `Ok(None)` (nothing written) when the campaign was paused, cancelled or moved on.
    pub fn queue_batch(
        &self,
        campaign: Id,
        expected_cursor: u64,
        new_cursor: u64,
        items: Vec<BatchItem>,
        skipped: u64,
    ) -> Result<Option<(Campaign, BatchOutcome)>> {
        let wtx = self.begin_write()?;
        let Some(mut c) = campaign_in(&wtx, campaign)? else {
            return Err(StoreError::NotFound("campaign"));
        };
        if c.status != CampaignStatus::Sending || c.cursor != expected_cursor {
            return Ok(None);
        }
        let mut outcome = BatchOutcome::default();
        for item in items {
            let fresh = {
                let sent = wtx.open_table(CAMPAIGN_SENT)?;
                sent.get((campaign, item.contact_id))?.is_none()
            };
            if !fresh || super::suppression::suppression_in(&wtx, &item.recipient)?.is_some() {
                outcome.already += 1;
                continue;
            }
            let msg = super::queue::enqueue_in(
                &wtx,
                item.message,
                &item.body,
                &[(item.recipient, item.domain)],
            )?;
            wtx.open_table(CAMPAIGN_SENT)?
                .insert((campaign, item.contact_id), msg.id)?;
            wtx.open_table(CAMPAIGN_MESSAGES)?
                .insert((campaign, msg.id), (item.contact_id, item.variant))?;
            super::segments::record_engagement_in(
                &wtx,
                item.contact_id,
                crate::model::EngagementKind::Sent,
                msg.created_at,
            )?;
            outcome.queued += 1;
        }
        c.cursor = new_cursor;
        c.queued += outcome.queued;
        c.skipped += skipped + outcome.already;
        c.updated_at = crate::model::now();
        let c = put_campaign_in(&wtx, c)?;
        wtx.commit()?;
        Ok(Some((c, outcome)))
    }

    /// Records an open or click; returns whether it was the message's first of its kind
    /// (any, and by a person).
    pub fn record_track_event(&self, e: &TrackEvent) -> Result<(bool, bool)> {
        let wtx = self.begin_write()?;
        let firsts = {
            let mut seqs = wtx.open_table(SEQUENCES)?;
            let seq = next_seq(&mut seqs, "track_event")?;
            wtx.open_table(TRACK_EVENTS)?
                .insert((e.campaign_id, seq), encode(e).as_slice())?;
            let at = super::suppression::ms(e.at);
            let (any, human) = match e.kind.as_str() {
                "click" => (FIRST_CLICK, FIRST_HUMAN_CLICK),
                "open" => (FIRST_OPEN, FIRST_HUMAN_OPEN),
                _ => (FIRST_UNSUBSCRIBE, FIRST_UNSUBSCRIBE),
            };
            let mut first = wtx.open_table(TRACK_FIRST)?;
            let mut mark = |k: u8| -> Result<bool> {
                if first.get((e.campaign_id, e.message, k))?.is_some() {
                    return Ok(false);
                }
                first.insert((e.campaign_id, e.message, k), at)?;
                Ok(true)
            };
            let first_any = mark(any)?;
            let first_human = if e.machine.is_none() && human != any {
                mark(human)?
            } else {
                false
            };
            (first_any, first_human)
        };
        // a person's open or click counts for segments (`opened_within(30d)` …)
        let engagement = match e.kind.as_str() {
            "open" => Some(crate::model::EngagementKind::Open),
            "click" => Some(crate::model::EngagementKind::Click),
            _ => None,
        };
        if let Some(kind) = engagement.filter(|_| e.machine.is_none()) {
            let contact = wtx
                .open_table(CAMPAIGN_MESSAGES)?
                .get((e.campaign_id, e.message))?
                .map(|v| v.value().0);
            if let Some(contact) = contact {
                super::segments::record_engagement_in(&wtx, contact, kind, e.at)?;
            }
        }
        let kind = match e.kind.as_str() {
            "click" => Some(crate::model::EventType::MessageClicked),
            "open" => Some(crate::model::EventType::MessageOpened),
            _ => None, // unsubscribes have their own event, written by subscriptions
        };
        if let Some(kind) = kind {
            super::events::emit(
                &wtx,
                kind,
                serde_json::json!({
                    "campaign_id": e.campaign_id,
                    "message_id": e.message,
                    "url": e.url,
                    "machine": e.machine,
                }),
            )?;
        }
        wtx.commit()?;
        Ok(firsts)
    }

    /// Every open and click of a campaign.
    pub fn track_events(&self, campaign: Id) -> Result<Vec<TrackEvent>> {
        let rtx = self.db().begin_read()?;
        let t = rtx.open_table(TRACK_EVENTS)?;
        let mut out = Vec::new();
        for row in t.range((campaign, 0)..=(campaign, u64::MAX))? {
            let (_, v) = row?;
            out.push(decode("track_events", v.value())?);
        }
        Ok(out)
    }

    /// (message, kind) -> first time, for a campaign.
    pub fn track_firsts(&self, campaign: Id) -> Result<Vec<(Id, u8, i64)>> {
        let rtx = self.db().begin_read()?;
        let t = rtx.open_table(TRACK_FIRST)?;
        let mut out = Vec::new();
        for row in t.range((campaign, 0, 0)..=(campaign, u64::MAX, u8::MAX))? {
            let (k, v) = row?;
            let (_, m, kind) = k.value();
            out.push((m, kind, v.value()));
        }
        Ok(out)
    }

    /// Runs `f` on a campaign inside one write transaction and stores what it returns.
    pub fn update_campaign<E: From<StoreError>>(
        &self,
        id: Id,
        f: impl FnOnce(&WriteTransaction, Campaign) -> std::result::Result<Campaign, E>,
    ) -> std::result::Result<Campaign, E> {
        let wtx = self.begin_write().map_err(StoreError::from)?;
        let c = campaign_in(&wtx, id)?.ok_or(StoreError::NotFound("campaign"))?;
        let c = f(&wtx, c)?;
        let c = put_campaign_in(&wtx, c)?;
        wtx.commit().map_err(StoreError::from)?;
        Ok(c)
    }
}

/// One campaign message a contact was sent, with what became of it (timelines).
#[derive(Debug, Clone)]
pub struct ContactMail {
    pub campaign: Campaign,
    pub message: Id,
    /// Subject variant (A/B tests).
    pub variant: u8,
    pub deliveries: Vec<crate::model::Delivery>,
    /// Unix ms of the first open and click by a person.
    pub first_open: Option<i64>,
    pub first_click: Option<i64>,
}

impl Store {
    /// Every campaign message queued for a contact, read in one snapshot: one look-up per
    /// campaign, so its cost follows the number of campaigns, not of messages.
    pub fn contact_mail(&self, contact: Id) -> Result<Vec<ContactMail>> {
        let rtx = self.db().begin_read()?;
        let campaigns = rtx.open_table(CAMPAIGNS)?;
        let sent = rtx.open_table(CAMPAIGN_SENT)?;
        let msgs = rtx.open_table(CAMPAIGN_MESSAGES)?;
        let deliveries = rtx.open_table(super::DELIVERIES)?;
        let first = rtx.open_table(TRACK_FIRST)?;
        let mut out = Vec::new();
        for row in campaigns.iter()? {
            let (k, v) = row?;
            let Some(message) = sent.get((k.value(), contact))?.map(|m| m.value()) else {
                continue;
            };
            let campaign: Campaign = decode("campaigns", v.value())?;
            let variant = msgs
                .get((campaign.id, message))?
                .map(|v| v.value().1)
                .unwrap_or(0);
            let mut ds = Vec::new();
            for d in deliveries.range((message, 0)..=(message, u32::MAX))? {
                ds.push(decode("deliveries", d?.1.value())?);
            }
            let at = |kind: u8| -> Result<Option<i64>> {
                Ok(first.get((campaign.id, message, kind))?.map(|v| v.value()))
            };
            out.push(ContactMail {
                first_open: at(FIRST_HUMAN_OPEN)?,
                first_click: at(FIRST_HUMAN_CLICK)?,
                campaign,
                message,
                variant,
                deliveries: ds,
            });
        }
        Ok(out)
    }
}
