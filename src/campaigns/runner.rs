//! The campaign sender: starts scheduled campaigns when due, and for each sending campaign
//! takes the next positions of its audience snapshot, personalises and signs one message per
//! recipient, and hands the batch to `Store::queue_batch`, which queues it and marks the
//! recipients in one transaction only if the campaign is still sending at that position.
//! So a pause, cancel or crash loses at most a rendered batch, never sends one twice.
//! Back-pressure: a batch waits while the delivery queue holds more than a window of due
//! mail, so a pause takes effect within one window.

use super::{CampaignError, Campaigns, Result};
use crate::compose::{Draft, Mailbox, parse_mailbox};
use crate::links::CampaignLinks;
use crate::model::{Campaign, CampaignStatus, Contact, Id, OutMessage, now};
use crate::outbound::Outbound;
use crate::policy::Actor;
use crate::store::campaigns::{BatchItem, FIRST_HUMAN_CLICK, FIRST_HUMAN_OPEN};
use crate::templates::{
    CompiledTemplate, ContactVars, LinkBuilder, LinkTarget, Recipient, attr_escape,
};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BATCH: usize = 100;
/// Due deliveries in the queue above which no new batch is queued.
const QUEUE_WINDOW: u64 = 1_000;

pub struct Runner {
    campaigns: Arc<Campaigns>,
    outbound: Arc<Outbound>,
    hostname: String,
    per_second: u32,
    compiled: Mutex<HashMap<(Id, u8), Arc<CompiledTemplate>>>,
}

fn display_name(c: &Contact) -> Option<String> {
    let n = format!("{} {}", c.first_name.trim(), c.last_name.trim());
    let n = n.trim();
    (!n.is_empty() && !n.chars().any(|ch| ch.is_control())).then(|| n.to_string())
}

/// Whether a scheduled campaign starts by `now` (a local-time campaign starts when the
/// first time zone reaches its time).
fn begins_by(c: &Campaign, now: time::OffsetDateTime) -> bool {
    let Some(at) = c.scheduled_at else {
        return false;
    };
    match c.local_time.as_deref().and_then(super::parse_local_time) {
        Some(hm) => super::local_start(at.date(), hm) <= now,
        None => at <= now,
    }
}

/// What templates see as `campaign`.
pub(crate) fn campaign_vars(c: &Campaign) -> minijinja::Value {
    minijinja::Value::from_serialize(serde_json::json!({
        "id": c.id, "name": c.name, "subject": c.subject,
    }))
}

/// One recipient's message of a campaign: personalised, links signed for (message, 0),
/// with the open pixel when asked.
/// Whom a campaign message is personalised for: a contact, or a test address.
pub(crate) struct Addressee {
    pub vars: ContactVars,
    /// The contact's id; 0 for a test address that is no contact.
    pub id: Id,
    pub email: String,
}

impl From<&Contact> for Addressee {
    fn from(c: &Contact) -> Self {
        Addressee {
            vars: ContactVars::from(c),
            id: c.id,
            email: c.email.clone(),
        }
    }
}

pub(crate) fn personalise(
    c: &Campaign,
    compiled: &CompiledTemplate,
    who: &Addressee,
    message: Id,
    links: &CampaignLinks,
    vars: &minijinja::Value,
    open_pixel: bool,
) -> Result<crate::templates::Rendered> {
    let builder: Arc<dyn LinkBuilder> = Arc::new(links.clone());
    let mut r = compiled.render(
        &Recipient {
            contact: &who.vars,
            data: &serde_json::json!({}),
            target: LinkTarget {
                campaign_id: c.id.to_string(),
                contact_id: who.id,
                email: who.email.clone(),
                message: Some((message, 0)),
            },
        },
        vars,
        &builder,
    )?;
    if open_pixel {
        add_pixel(&mut r.html, &links.links.open_url(message, 0));
    }
    Ok(r)
}

/// Positions before this one are the A/B test's sample.
fn sample_end(c: &Campaign, ab: &crate::model::AbTest) -> u64 {
    (c.audience_size * u64::from(ab.sample_percent) / 100)
        .max(ab.subjects.len() as u64)
        .min(c.audience_size)
}

/// The open pixel, placed just before `</body>`.
fn add_pixel(html: &mut String, url: &str) {
    let img = format!(
        "<img src=\"{}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:block;border:0;width:1px;height:1px;overflow:hidden\">",
        attr_escape(url)
    );
    match html.rfind("</body>") {
        Some(i) => html.insert_str(i, &img),
        None => html.push_str(&img),
    }
}

impl Runner {
    pub fn new(
        campaigns: Arc<Campaigns>,
        outbound: Arc<Outbound>,
        settings: &crate::config::Settings,
    ) -> Runner {
        Runner {
            campaigns,
            outbound,
            hostname: settings.delivery.hostname.clone(),
            per_second: settings.campaign_messages_per_second,
            compiled: Mutex::new(HashMap::new()),
        }
    }

    /// Runs until `shutdown` fires.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let me = self.clone();
            let started = std::time::Instant::now();
            let worked = match tokio::task::spawn_blocking(move || me.tick()).await {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "campaign sender");
                    0
                }
                Err(e) => {
                    tracing::error!(error = %e, "campaign sender task failed");
                    0
                }
            };
            let pause = if worked == 0 {
                Duration::from_secs(1)
            } else if self.per_second > 0 {
                // pace: `worked` messages should take worked / per_second seconds
                Duration::from_secs_f64(worked as f64 / f64::from(self.per_second))
                    .saturating_sub(started.elapsed())
            } else {
                Duration::ZERO
            };
            if pause.is_zero() {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = self.campaigns.notified(), if worked == 0 => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One pass over the campaigns; returns how many messages were queued.
    pub fn tick(&self) -> Result<u64> {
        let now = now();
        let mut queued = 0;
        for c in self.campaigns.store().campaigns()? {
            match c.status {
                CampaignStatus::Scheduled if begins_by(&c, now) => {
                    if let Err(e) = self.campaigns.begin(&Actor::system(), c.id) {
                        tracing::warn!(campaign = c.id, error = %e, "scheduled campaign could not start");
                        self.note_error(c.id, Some(e.to_string()), true)?;
                    }
                }
                CampaignStatus::Sending => {
                    let limit = if self.per_second > 0 {
                        (self.per_second as usize).clamp(1, BATCH)
                    } else {
                        BATCH
                    };
                    match self.send_batch(&c, limit) {
                        Ok(n) => queued += n,
                        Err(e) => {
                            tracing::warn!(campaign = c.id, error = %e, "campaign batch failed");
                            self.note_error(c.id, Some(e.to_string()), false)?;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(queued)
    }

    fn note_error(&self, id: Id, error: Option<String>, back_to_draft: bool) -> Result<()> {
        self.campaigns.store().update_campaign(id, |_, mut c| {
            c.last_error = error;
            if back_to_draft && c.status == CampaignStatus::Scheduled {
                c.status = CampaignStatus::Draft;
            }
            Ok::<_, CampaignError>(c)
        })?;
        Ok(())
    }

    fn compiled(&self, c: &Campaign, variant: u8) -> Result<Arc<CompiledTemplate>> {
        if let Ok(m) = self.compiled.lock()
            && let Some(t) = m.get(&(c.id, variant))
        {
            return Ok(t.clone());
        }
        let mut c2 = c.clone();
        if let Some(ab) = &c.ab_test
            && let Some(s) = ab.subjects.get(usize::from(variant))
        {
            c2.subject = s.clone();
        }
        let t = Arc::new(self.campaigns.check_sendable(&c2)?);
        if let Ok(mut m) = self.compiled.lock() {
            m.insert((c.id, variant), t.clone());
        }
        Ok(t)
    }

    /// The A/B test's state at the cursor: `Some(limit)` to send at most `limit` more now,
    /// `None` to wait (the sample is out and the winner not yet due).
    fn ab_gate(&self, c: &Campaign, limit: usize) -> Result<Option<usize>> {
        let Some(ab) = &c.ab_test else {
            return Ok(Some(limit));
        };
        let sample_end = sample_end(c, ab);
        if c.cursor < sample_end {
            return Ok(Some(limit.min((sample_end - c.cursor) as usize)));
        }
        if ab.winner.is_some() {
            return Ok(Some(limit));
        }
        let store = self.campaigns.store();
        let Some(done) = ab.sample_done_at else {
            store.update_campaign(c.id, |_, mut c| {
                if let Some(ab) = &mut c.ab_test {
                    ab.sample_done_at = Some(now());
                }
                Ok::<_, CampaignError>(c)
            })?;
            return Ok(None);
        };
        if now() < done + time::Duration::minutes(i64::from(ab.wait_minutes)) {
            return Ok(None);
        }
        // winner: most messages with a human open (or click) per variant; ties → first
        let kind = if ab.metric == "clicks" {
            FIRST_HUMAN_CLICK
        } else {
            FIRST_HUMAN_OPEN
        };
        let hits: HashSet<Id> = store
            .track_firsts(c.id)?
            .into_iter()
            .filter(|(_, k, _)| *k == kind)
            .map(|(m, _, _)| m)
            .collect();
        let mut score = vec![0u64; ab.subjects.len()];
        for (m, _, variant) in store.campaign_messages(c.id)? {
            if hits.contains(&m)
                && let Some(s) = score.get_mut(usize::from(variant))
            {
                *s += 1;
            }
        }
        let winner = score
            .iter()
            .enumerate()
            .max_by_key(|(i, s)| (**s, std::cmp::Reverse(*i)))
            .map(|(i, _)| i)
            .unwrap_or(0);
        tracing::info!(campaign = c.id, winner, ?score, "A/B test decided");
        store.update_campaign(c.id, |_, mut c| {
            if let Some(ab) = &mut c.ab_test {
                ab.winner = Some(winner);
            }
            Ok::<_, CampaignError>(c)
        })?;
        Ok(None)
    }

    fn variant_at(c: &Campaign, pos: u64) -> u8 {
        match &c.ab_test {
            None => 0,
            Some(ab) => match ab.winner {
                Some(w) if pos >= sample_end(c, ab) => w as u8,
                _ => (pos % ab.subjects.len() as u64) as u8,
            },
        }
    }

    /// Queues the next batch of a sending campaign; finishes it at the end of its audience.
    fn send_batch(&self, c: &Campaign, limit: usize) -> Result<u64> {
        let store = self.campaigns.store();
        if store.due_by(now(), QUEUE_WINDOW)? >= QUEUE_WINDOW {
            return Ok(0);
        }
        let Some(limit) = self.ab_gate(c, limit)? else {
            return Ok(0);
        };
        let mut slice = store.audience_slice(c.id, c.cursor, limit)?;
        if slice.is_empty() {
            self.finish(c.id)?;
            return Ok(0);
        }
        // local-time sending: only who is due by now (the snapshot is in due order)
        let now_s = now().unix_timestamp();
        slice.retain(|(_, _, due)| *due <= now_s);
        let Some(&(last, _, _)) = slice.last() else {
            return Ok(0);
        };
        let new_cursor = last + 1;
        let ids: Vec<Id> = slice.iter().map(|(_, id, _)| *id).collect();
        let contacts: HashMap<Id, Contact> = store
            .contacts(&ids)?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        let emails: Vec<&str> = contacts.values().map(|c| c.email.as_str()).collect();
        let suppressed = store.suppressed_among(&emails)?;
        let from = parse_mailbox("from", &c.from)?;
        let reply_to = c
            .reply_to
            .as_deref()
            .map(|r| parse_mailbox("reply_to", r))
            .transpose()?;
        let links = self.outbound.links().clone();
        let builder = CampaignLinks {
            links: links.clone(),
            track_clicks: c.track_clicks && self.campaigns.tracking_enabled(),
        };
        let track_opens = c.track_opens && self.campaigns.tracking_enabled();
        let first_id = store.allocate_out_message_ids(slice.len() as u64)?;
        let vars = campaign_vars(c);
        let mut items = Vec::with_capacity(slice.len());
        let mut skipped = 0;
        for (i, (pos, contact_id, _)) in slice.iter().enumerate() {
            let Some(contact) = contacts.get(contact_id) else {
                skipped += 1; // deleted since the start
                continue;
            };
            let on_list = c.audience.lists.is_empty()
                || contact.lists.iter().any(|m| {
                    c.audience.lists.contains(&m.list_id)
                        && m.status == crate::model::MembershipStatus::Confirmed
                });
            if !on_list || suppressed.contains(&contact.email) {
                skipped += 1;
                continue;
            }
            let id = first_id + i as u64;
            let variant = Self::variant_at(c, *pos);
            let compiled = self.compiled(c, variant)?;
            let r = personalise(
                c,
                &compiled,
                &Addressee::from(contact),
                id,
                &builder,
                &vars,
                track_opens,
            )?;
            let mut headers = links.list_unsubscribe_headers(id, 0);
            headers.push((
                "List-Id".into(),
                format!("<campaign-{}.{}>", c.id, self.hostname),
            ));
            headers.push(("Feedback-ID".into(), format!("{}:campaign:mailstead", c.id)));
            headers.push(("Precedence".into(), "bulk".into()));
            let draft = Draft {
                from: from.clone(),
                to: vec![Mailbox {
                    name: display_name(contact),
                    addr: contact.email.clone(),
                }],
                reply_to: reply_to.clone(),
                subject: r.subject.clone(),
                html: Some(r.html),
                text: Some(r.text),
                headers,
            };
            let (body, message_id) = self.outbound.build_signed(&draft, "template")?;
            items.push(BatchItem {
                contact_id: contact.id,
                message: OutMessage {
                    id,
                    message_id,
                    from: from.addr.clone(),
                    subject: r.subject,
                    source: format!("campaign:{}", c.id),
                    size: 0,
                    recipients: 0,
                    submitted_by: c.created_by,
                    suppressed: Vec::new(),
                    created_at: now(),
                },
                body,
                recipient: contact.email.clone(),
                domain: contact
                    .email
                    .rsplit_once('@')
                    .map(|(_, d)| d.to_string())
                    .unwrap_or_default(),
                variant,
            });
        }
        match store.queue_batch(c.id, c.cursor, new_cursor, items, skipped)? {
            Some((after, outcome)) => {
                if outcome.queued > 0 {
                    self.outbound.notify();
                }
                if after.last_error.is_some() {
                    self.note_error(c.id, None, false)?;
                }
                if after.cursor >= after.audience_size {
                    self.finish(c.id)?;
                }
                Ok(outcome.queued.max(1))
            }
            // paused, cancelled or moved on meanwhile: the batch is dropped, nothing queued
            None => Ok(0),
        }
    }

    fn finish(&self, id: Id) -> Result<()> {
        self.campaigns.store().update_campaign(id, |_, mut c| {
            if c.status == CampaignStatus::Sending && c.cursor >= c.audience_size {
                c.status = CampaignStatus::Finished;
                c.finished_at = Some(now());
                c.updated_at = now();
            }
            Ok::<_, CampaignError>(c)
        })?;
        if let Ok(mut m) = self.compiled.lock() {
            m.retain(|(cid, _), _| *cid != id);
        }
        Ok(())
    }

    /// Sends the campaign as it would go out, to up to 10 test addresses (a contact with
    /// that address personalises it; otherwise the sample contact). Not counted in reports.
    pub fn send_test(&self, actor: &Actor, id: Id, to: &[String]) -> Result<Vec<Id>> {
        actor.check_send()?;
        let c = self.campaigns.get(actor, id)?;
        if to.is_empty() || to.len() > 10 {
            return Err(super::invalid("to", "give 1 to 10 test addresses"));
        }
        let compiled = self.compiled(&c, 0)?;
        let from = parse_mailbox("from", &c.from)?;
        let store = self.campaigns.store();
        let links = self.outbound.links().clone();
        let test_links = CampaignLinks {
            links: links.clone(),
            track_clicks: false,
        };
        let vars = campaign_vars(&c);
        let mut out = Vec::new();
        for addr in to {
            let rcpt = parse_mailbox("to", addr)?;
            let email = crate::model::normalise_email(&rcpt.addr)
                .map_err(|m| super::invalid("to", format!("{addr}: {m}")))?;
            // the contact's own values when the address is one; sample values otherwise. The
            // links name no contact (id 0): a test send never unsubscribes anyone.
            let vars_of = match store.contact_id_by_email(&email)? {
                Some(cid) => store
                    .contact(cid)?
                    .map(|k| ContactVars::from(&k))
                    .unwrap_or_default(),
                None => ContactVars {
                    email: email.clone(),
                    first_name: "Ada".into(),
                    last_name: "Lovelace".into(),
                    ..Default::default()
                },
            };
            let who = Addressee {
                vars: vars_of,
                id: 0,
                email: email.clone(),
            };
            let mid = store.allocate_out_message_id()?;
            let r = personalise(&c, &compiled, &who, mid, &test_links, &vars, false)?;
            let draft = Draft {
                from: from.clone(),
                to: vec![rcpt.clone()],
                reply_to: None,
                subject: format!("[Test] {}", r.subject),
                html: Some(r.html),
                text: Some(r.text),
                headers: links.list_unsubscribe_headers(mid, 0),
            };
            let (body, message_id) = self.outbound.build_signed(&draft, "template")?;
            let msg = store.enqueue(
                OutMessage {
                    id: mid,
                    message_id,
                    from: from.addr.clone(),
                    subject: draft.subject.clone(),
                    source: format!("campaign-test:{}", c.id),
                    size: 0,
                    recipients: 0,
                    submitted_by: Some(actor.user_id),
                    suppressed: Vec::new(),
                    created_at: now(),
                },
                &body,
                &[(email.clone(), rcpt.domain().to_string())],
            )?;
            out.push(msg.id);
        }
        self.outbound.notify();
        Ok(out)
    }
}
