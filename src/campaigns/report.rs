//! A campaign's numbers, computed from what the store holds: the deliveries of its messages,
//! the opens and clicks the tracking links saw (machine opens — Apple Mail Privacy
//! Protection, image proxies, link scanners — counted apart), the feedback (bounces,
//! complaints) and unsubscribes.

use super::{Campaigns, Result};
use crate::model::{DeliveryState, Id};
use crate::policy::{Action, Actor};
use crate::store::campaigns as cstore;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Debug, Default, Clone, Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// Contacts in the audience snapshot.
    pub audience: u64,
    /// Messages queued (one per recipient).
    pub queued: u64,
    /// Left out at send time: suppressed, unsubscribed, deleted.
    pub skipped: u64,
    /// Accepted by the receiving server.
    pub delivered: u64,
    /// Waiting in the queue or for a retry.
    pub pending: u64,
    pub deferred: u64,
    pub bounced: u64,
    pub failed: u64,
    /// Every open seen (people and machines).
    pub opens: u64,
    /// Messages opened at least once by a person.
    pub unique_opens: u64,
    /// Opens by proxies and prefetchers (e.g. Apple Mail Privacy Protection).
    pub machine_opens: u64,
    pub clicks: u64,
    /// Messages with at least one click by a person.
    pub unique_clicks: u64,
    /// Clicks by link scanners.
    pub machine_clicks: u64,
    pub unsubscribes: u64,
    pub complaints: u64,
    /// unique_opens / delivered.
    pub open_rate: f64,
    /// unique_clicks / delivered.
    pub click_rate: f64,
}

#[derive(Debug, Default, Clone, Serialize, utoipa::ToSchema)]
pub struct Bucket {
    /// Start of the hour (RFC 3339).
    pub at: String,
    pub delivered: u64,
    pub bounced: u64,
    pub opens: u64,
    pub clicks: u64,
    pub unsubscribes: u64,
    pub complaints: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LinkStats {
    pub url: String,
    pub clicks: u64,
    pub unique_clicks: u64,
}

#[derive(Debug, Default, Clone, Serialize, utoipa::ToSchema)]
pub struct DomainStats {
    pub domain: String,
    pub queued: u64,
    pub delivered: u64,
    pub bounced: u64,
    pub deferred: u64,
    pub unique_opens: u64,
}

#[derive(Debug, Default, Clone, Serialize, utoipa::ToSchema)]
pub struct VariantStats {
    pub subject: String,
    pub queued: u64,
    pub unique_opens: u64,
    pub unique_clicks: u64,
    pub winner: bool,
}

#[derive(Debug, Default, Clone, Serialize, utoipa::ToSchema)]
pub struct Report {
    pub stats: Stats,
    pub timeline: Vec<Bucket>,
    pub links: Vec<LinkStats>,
    pub domains: Vec<DomainStats>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<VariantStats>,
}

fn hour(t: time::OffsetDateTime) -> i64 {
    t.unix_timestamp() - t.unix_timestamp().rem_euclid(3600)
}

fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

impl Campaigns {
    /// The campaign's numbers (what `GET /api/v1/campaigns/{id}` shows).
    pub fn stats(&self, actor: &Actor, id: Id) -> Result<Stats> {
        Ok(self.report(actor, id)?.stats)
    }

    pub fn report(&self, actor: &Actor, id: Id) -> Result<Report> {
        actor.check_campaigns(Action::Read)?;
        let c = self.get(actor, id)?;
        let store = self.store();
        let deliveries = store.campaign_deliveries(id)?;
        let events = store.track_events(id)?;
        let firsts = store.track_firsts(id)?;
        let mut r = Report::default();
        let s = &mut r.stats;
        s.audience = c.audience_size;
        s.queued = c.queued;
        s.skipped = c.skipped;

        let mut timeline: BTreeMap<i64, Bucket> = BTreeMap::new();
        let mut domains: HashMap<String, DomainStats> = HashMap::new();
        let mut domain_of: HashMap<Id, String> = HashMap::new();
        let mut variant_of: HashMap<Id, u8> = HashMap::new();
        let mut variants: Vec<VariantStats> = match &c.ab_test {
            Some(ab) => ab
                .subjects
                .iter()
                .enumerate()
                .map(|(i, subj)| VariantStats {
                    subject: subj.clone(),
                    winner: ab.winner == Some(i),
                    ..Default::default()
                })
                .collect(),
            None => Vec::new(),
        };
        for (d, _, variant) in &deliveries {
            domain_of.insert(d.message, d.domain.clone());
            variant_of.insert(d.message, *variant);
            if let Some(v) = variants.get_mut(usize::from(*variant)) {
                v.queued += 1;
            }
            let dom = domains
                .entry(d.domain.clone())
                .or_insert_with(|| DomainStats {
                    domain: d.domain.clone(),
                    ..Default::default()
                });
            dom.queued += 1;
            let at = d.events.last().map(|e| e.at).unwrap_or(d.updated_at);
            match d.state {
                DeliveryState::Sent => {
                    s.delivered += 1;
                    dom.delivered += 1;
                    timeline.entry(hour(at)).or_default().delivered += 1;
                }
                DeliveryState::Bounced => {
                    s.bounced += 1;
                    dom.bounced += 1;
                    timeline.entry(hour(at)).or_default().bounced += 1;
                }
                DeliveryState::Failed => s.failed += 1,
                DeliveryState::Deferred => {
                    s.deferred += 1;
                    s.pending += 1;
                    dom.deferred += 1;
                }
                DeliveryState::Queued | DeliveryState::Sending => s.pending += 1,
            }
        }
        let messages: Vec<Id> = domain_of.keys().copied().collect();
        let complaints = store.complaints_about(&messages)?;
        s.complaints = complaints.len() as u64;
        for at in complaints {
            timeline.entry(hour(at)).or_default().complaints += 1;
        }

        let mut link_clicks: HashMap<String, (u64, HashSet<Id>)> = HashMap::new();
        for e in &events {
            let b = timeline.entry(hour(e.at)).or_default();
            match (e.kind.as_str(), e.machine.is_some()) {
                ("open", false) => {
                    s.opens += 1;
                    b.opens += 1;
                }
                ("open", true) => {
                    s.opens += 1;
                    s.machine_opens += 1;
                }
                ("click", machine) => {
                    s.clicks += 1;
                    if machine {
                        s.machine_clicks += 1;
                    } else {
                        b.clicks += 1;
                        if let Some(url) = &e.url {
                            let l = link_clicks.entry(url.clone()).or_default();
                            l.0 += 1;
                            l.1.insert(e.message);
                        }
                    }
                }
                ("unsubscribe", _) => b.unsubscribes += 1,
                _ => {}
            }
        }
        for (m, kind, _) in &firsts {
            match *kind {
                cstore::FIRST_HUMAN_OPEN => {
                    s.unique_opens += 1;
                    if let Some(d) = domain_of.get(m).and_then(|d| domains.get_mut(d)) {
                        d.unique_opens += 1;
                    }
                    if let Some(v) = variant_of
                        .get(m)
                        .and_then(|v| variants.get_mut(usize::from(*v)))
                    {
                        v.unique_opens += 1;
                    }
                }
                cstore::FIRST_HUMAN_CLICK => {
                    s.unique_clicks += 1;
                    if let Some(v) = variant_of
                        .get(m)
                        .and_then(|v| variants.get_mut(usize::from(*v)))
                    {
                        v.unique_clicks += 1;
                    }
                }
                cstore::FIRST_UNSUBSCRIBE => s.unsubscribes += 1,
                _ => {}
            }
        }
        if s.delivered > 0 {
            s.open_rate = s.unique_opens as f64 / s.delivered as f64;
            s.click_rate = s.unique_clicks as f64 / s.delivered as f64;
        }
        r.timeline = timeline
            .into_iter()
            .map(|(h, mut b)| {
                b.at = rfc3339(h);
                b
            })
            .collect();
        let mut links: Vec<LinkStats> = link_clicks
            .into_iter()
            .map(|(url, (clicks, uniq))| LinkStats {
                url,
                clicks,
                unique_clicks: uniq.len() as u64,
            })
            .collect();
        links.sort_by(|a, b| b.clicks.cmp(&a.clicks).then(a.url.cmp(&b.url)));
        links.truncate(50);
        r.links = links;
        let mut domains: Vec<DomainStats> = domains.into_values().collect();
        domains.sort_by(|a, b| b.queued.cmp(&a.queued).then(a.domain.cmp(&b.domain)));
        domains.truncate(50);
        r.domains = domains;
        r.variants = variants;
        Ok(r)
    }
}
