//! The campaign mail a person was sent, opened and clicked, as items of their CRM timeline:
//! a contact's own, a lead's through the contact with its address, an opportunity's primary
//! contact's, and an account's contacts' (named in each item).

use crate::crm::TimelineItem;
use crate::crm::model::{Lead, Opportunity};
use crate::model::{DeliveryState, Id};
use crate::search::{ParsedQuery, Scope, SearchIndex};
use crate::store::Store;
use crate::store::campaigns::ContactMail;
use std::sync::Arc;
use time::OffsetDateTime;

/// An account's timeline shows the mail of at most this many of its contacts.
const ACCOUNT_CONTACTS: usize = 200;

/// Registered with [`crate::crm::Crm::add_timeline_source`].
pub struct MailTimeline {
    store: Arc<Store>,
    search: Arc<SearchIndex>,
}

impl MailTimeline {
    pub fn new(store: Arc<Store>, search: Arc<SearchIndex>) -> MailTimeline {
        MailTimeline { store, search }
    }

    /// The contacts whose mail a timeline record shows, and whether to name them in the
    /// items (an account has several): the contact itself; a lead's converted contact or the
    /// contact with its address; an opportunity's primary contact; an account's contacts.
    fn contacts_of(&self, record: &str) -> Result<(Vec<Id>, bool), String> {
        let Some((kind, id)) = record.split_once(':') else {
            return Ok((Vec::new(), false));
        };
        let Ok(id) = id.parse::<Id>() else {
            return Ok((Vec::new(), false));
        };
        let err = |e: crate::store::StoreError| e.to_string();
        let one = |c: Option<Id>| (c.into_iter().collect(), false);
        match kind {
            "contact" => Ok(one(Some(id))),
            "lead" => {
                let Some(lead) = self.store.crm_get::<Lead>(id).map_err(err)? else {
                    return Ok(one(None));
                };
                Ok(one(
                    crate::crm::personal::contact_of(&self.store, &lead).map_err(err)?
                ))
            }
            "opportunity" => Ok(one(self
                .store
                .crm_get::<Opportunity>(id)
                .map_err(err)?
                .and_then(|o| o.contact_id))),
            "account" => {
                let hits = self
                    .search
                    .search(&ParsedQuery::account(id), Scope::All, 0, ACCOUNT_CONTACTS)
                    .map_err(|e| e.to_string())?;
                Ok((hits.ids, true))
            }
            _ => Ok(one(None)),
        }
    }
}

fn item(at: OffsetDateTime, kind: &str, title: String, campaign: Id) -> TimelineItem {
    TimelineItem {
        at,
        kind: kind.to_string(),
        title,
        actor: None,
        fields: Vec::new(),
        activity: None,
        campaign_id: Some(campaign),
    }
}

fn from_ms(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// The items of one message: queued, then delivered or bounced, then the first open and click
/// by a person (machine opens, such as Apple's privacy preloads, are left out).
pub fn mail_items(m: &ContactMail) -> Vec<TimelineItem> {
    let c = &m.campaign;
    let subject = c
        .ab_test
        .as_ref()
        .and_then(|ab| ab.subjects.get(usize::from(m.variant)))
        .unwrap_or(&c.subject);
    let about = format!("{} — “{}”", c.name, subject);
    let mut out = Vec::new();
    for d in &m.deliveries {
        out.push(item(
            d.created_at,
            "email.sent",
            format!("Sent: {about}"),
            c.id,
        ));
        match d.state {
            DeliveryState::Sent => {
                out.push(item(
                    d.updated_at,
                    "email.delivered",
                    format!("Delivered: {about}"),
                    c.id,
                ));
            }
            DeliveryState::Bounced | DeliveryState::Failed => {
                let why = d
                    .events
                    .last()
                    .map(|e| e.text.trim())
                    .filter(|t| !t.is_empty())
                    .map(|t| format!(" ({})", t.chars().take(120).collect::<String>()))
                    .unwrap_or_default();
                out.push(item(
                    d.updated_at,
                    "email.bounced",
                    format!("Bounced: {about}{why}"),
                    c.id,
                ));
            }
            _ => {}
        }
    }
    if let Some(at) = m.first_open.and_then(from_ms) {
        out.push(item(at, "email.opened", format!("Opened: {about}"), c.id));
    }
    if let Some(at) = m.first_click.and_then(from_ms) {
        out.push(item(at, "email.clicked", format!("Clicked: {about}"), c.id));
    }
    out
}

impl MailTimeline {
    fn all_items(&self, record: &str) -> Result<Vec<TimelineItem>, String> {
        let (contacts, named) = self.contacts_of(record)?;
        let mut out = Vec::new();
        for c in contacts {
            for m in self.store.contact_mail(c).map_err(|e| e.to_string())? {
                let to = m.deliveries.first().map(|d| d.recipient.clone());
                for mut item in mail_items(&m) {
                    if named && let Some(to) = &to {
                        item.title = format!("{} (to {to})", item.title);
                    }
                    out.push(item);
                }
            }
        }
        Ok(out)
    }
}

impl crate::crm::TimelineSource for MailTimeline {
    fn items(&self, record: &str) -> Vec<TimelineItem> {
        self.all_items(record).unwrap_or_else(|e| {
            tracing::warn!(error = %e, record, "timeline: campaign mail unreadable");
            Vec::new()
        })
    }
}
