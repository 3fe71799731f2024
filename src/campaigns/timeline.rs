//! The campaign mail a person was sent, opened and clicked, as items of their CRM timeline
//! (contacts, and leads through the contact with their address).

use crate::crm::TimelineItem;
use crate::crm::model::Lead;
use crate::model::{DeliveryState, Id};
use crate::store::Store;
use crate::store::campaigns::ContactMail;
use std::sync::Arc;
use time::OffsetDateTime;

/// Registered with [`crate::crm::Crm::add_timeline_source`].
pub struct MailTimeline {
    store: Arc<Store>,
}

impl MailTimeline {
    pub fn new(store: Arc<Store>) -> MailTimeline {
        MailTimeline { store }
    }

    /// The contact a timeline record stands for: the contact itself, or a lead's converted
    /// contact or the contact with the lead's address.
    fn contact_of(&self, record: &str) -> crate::store::Result<Option<Id>> {
        let Some((kind, id)) = record.split_once(':') else {
            return Ok(None);
        };
        let Ok(id) = id.parse::<Id>() else {
            return Ok(None);
        };
        match kind {
            "contact" => Ok(Some(id)),
            "lead" => {
                let Some(lead) = self.store.crm_get::<Lead>(id)? else {
                    return Ok(None);
                };
                if let Some(c) = lead.converted_contact_id {
                    return Ok(Some(c));
                }
                if lead.email.is_empty() {
                    return Ok(None);
                }
                self.store.contact_id_by_email(&lead.email)
            }
            _ => Ok(None),
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

impl crate::crm::TimelineSource for MailTimeline {
    fn items(&self, record: &str) -> Vec<TimelineItem> {
        let mail = self
            .contact_of(record)
            .and_then(|c| c.map(|c| self.store.contact_mail(c)).transpose());
        match mail {
            Ok(mail) => mail
                .unwrap_or_default()
                .iter()
                .flat_map(mail_items)
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, record, "timeline: campaign mail unreadable");
                Vec::new()
            }
        }
    }
}
