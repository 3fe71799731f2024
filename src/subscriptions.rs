//! What recipients decide about the mail they get: unsubscribing (one click, the unsubscribe
//! page, a mail to the mailto address) and the preference centre (which lists, resubscribing).
//! Every link names an outbound message and recipient (see `links`); the decision is applied
//! to the contact with that address in one transaction, with a consent record as proof, and
//! reported to integrators.

use crate::audit;
use crate::contacts::{ContactError, Contacts};
use crate::links::{LinkKind, Links};
use crate::model::{
    AuditAction, Consent, Contact, EventType, Id, MailingList, MembershipStatus, Suppression,
    SuppressionReason, normalise_email, now,
};
use crate::store::{self, ContactTx, Store, StoreError, suppression};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error("this link is not valid (it may have been copied incompletely)")]
    BadLink,
    #[error("this link has expired")]
    Expired,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Contacts(#[from] ContactError),
}

type Result<T, E = SubscriptionError> = std::result::Result<T, E>;

/// Whom a link is about.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub message: Id,
    pub index: u32,
    pub email: String,
    /// "tx" or the campaign that sent the message.
    pub source: String,
    pub contact: Option<Contact>,
}

/// How the person unsubscribed (kept in the consent record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    OneClick,
    Page,
    Mailto,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::OneClick => "unsubscribe:one-click",
            Via::Page => "unsubscribe:page",
            Via::Mailto => "unsubscribe:mailto",
        }
    }
}

/// The preference centre's view of a recipient.
#[derive(Debug, Clone)]
pub struct Preferences {
    pub recipient: Recipient,
    /// The lists the contact belongs to, with their status.
    pub lists: Vec<(MailingList, MembershipStatus)>,
    /// Suppressed because they unsubscribed from everything.
    pub unsubscribed_from_all: bool,
}

pub struct Subscriptions {
    store: Arc<Store>,
    contacts: Arc<Contacts>,
    links: Links,
}

impl Subscriptions {
    pub fn new(store: Arc<Store>, contacts: Arc<Contacts>, links: Links) -> Subscriptions {
        Subscriptions {
            store,
            contacts,
            links,
        }
    }

    pub fn links(&self) -> &Links {
        &self.links
    }

    /// The recipient a token names.
    pub fn resolve(&self, kind: LinkKind, token: &str) -> Result<Recipient> {
        let (message, index) = self
            .links
            .decode(kind, token)
            .ok_or(SubscriptionError::BadLink)?;
        self.recipient(message, index)
    }

    /// The recipient of the mailto unsubscribe address `rcpt`, if it is one of ours.
    pub fn resolve_address(&self, rcpt: &str) -> Option<(Id, u32)> {
        self.links.decode_unsubscribe_address(rcpt)
    }

    pub fn recipient(&self, message: Id, index: u32) -> Result<Recipient> {
        let d = self
            .store
            .delivery(message, index)?
            .ok_or(SubscriptionError::Expired)?;
        let source = self
            .store
            .out_message(message)?
            .map(|m| m.source)
            .unwrap_or_else(|| "tx".into());
        let email = normalise_email(&d.recipient).map_err(SubscriptionError::Invalid)?;
        let contact = match self.store.contact_id_by_email(&email)? {
            Some(id) => self.store.contact(id)?,
            None => None,
        };
        Ok(Recipient {
            message,
            index,
            email,
            source,
            contact,
        })
    }

    /// Unsubscribes the recipient of a message: from every list (the message was not sent
    /// to one list in particular), and onto the suppression list as "unsubscribed" so no
    /// bulk mail through the API reaches them either. Repeating it changes nothing.
    pub fn unsubscribe(
        &self,
        message: Id,
        index: u32,
        via: Via,
        ip: Option<String>,
    ) -> Result<Recipient> {
        let r = self.recipient(message, index)?;
        let email = r.email.clone();
        let source = r.source.clone();
        let who = audit::recipient(ip.clone());
        self.contacts.write(true, |tx| {
            let at = now();
            let s = Suppression {
                email: email.clone(),
                reason: SuppressionReason::Unsubscribed,
                source: via.as_str().to_string(),
                detail: format!("from message {message} ({source})"),
                added_by: None,
                created_at: at,
            };
            let newly = suppression::suppress(tx.wtx(), &s)?;
            if newly {
                audit::suppression_changed(tx.wtx(), &who, &s, true)?;
            }
            let mut contact_id = None;
            if let Some(id) = tx.id_by_email(&email)?
                && let Some(mut c) = tx.get(id)?
            {
                contact_id = Some(id);
                let before = c.clone();
                let mut changed = false;
                for m in &mut c.lists {
                    if m.status != MembershipStatus::Unsubscribed {
                        m.status = MembershipStatus::Unsubscribed;
                        m.updated_at = at;
                        changed = true;
                    }
                }
                if changed || newly {
                    c.consents.push(Consent {
                        purpose: "email_marketing".into(),
                        source: via.as_str().into(),
                        at,
                        ip: ip.clone(),
                        wording: Some(format!("unsubscribed from all lists (message {message})")),
                        withdrawn: true,
                    });
                    c.updated_at = at;
                    let c = tx.update(c)?;
                    audit::Entry::new(&who, AuditAction::Update, audit::record("contact", id))
                        .changes(audit::Changes::of(Some(&before), Some(&c)))
                        .detail(via.as_str())
                        .append(tx.wtx())?;
                }
            }
            if newly {
                store::events::emit(
                    tx.wtx(),
                    EventType::ContactUnsubscribed,
                    serde_json::json!({
                        "contact_id": contact_id,
                        "email": email,
                        "message_id": message,
                        "via": via.as_str(),
                    }),
                )?;
            }
            Ok(())
        })?;
        if let Some(campaign_id) = source
            .strip_prefix("campaign:")
            .and_then(|s| s.parse::<Id>().ok())
        {
            self.store.record_track_event(&crate::model::TrackEvent {
                campaign_id,
                message,
                kind: "unsubscribe".into(),
                url: None,
                machine: None,
                proxy: None,
                at: now(),
            })?;
        }
        self.recipient(message, index)
    }

    pub fn preferences(&self, token: &str) -> Result<Preferences> {
        let recipient = self.resolve(LinkKind::Preferences, token)?;
        self.preferences_of(recipient)
    }

    fn preferences_of(&self, recipient: Recipient) -> Result<Preferences> {
        let all = self.store.lists()?;
        let lists = match &recipient.contact {
            Some(c) => c
                .lists
                .iter()
                .filter_map(|m| {
                    all.iter()
                        .find(|l| l.id == m.list_id)
                        .map(|l| (l.clone(), m.status))
                })
                .collect(),
            None => Vec::new(),
        };
        let unsubscribed_from_all = self
            .store
            .suppression(&recipient.email)?
            .is_some_and(|s| s.reason == SuppressionReason::Unsubscribed);
        Ok(Preferences {
            recipient,
            lists,
            unsubscribed_from_all,
        })
    }

    /// Saves the preference centre: `subscribed` are the list ids the person keeps (or takes
    /// back); the contact's other lists become unsubscribed. Resubscribing lifts an
    /// "unsubscribed" suppression (never a bounce or complaint one).
    pub fn set_preferences(
        &self,
        token: &str,
        subscribed: &[Id],
        ip: Option<String>,
    ) -> Result<Preferences> {
        let recipient = self.resolve(LinkKind::Preferences, token)?;
        let email = recipient.email.clone();
        let who = audit::recipient(ip.clone());
        self.contacts.write(true, |tx| {
            let at = now();
            let Some(id) = tx.id_by_email(&email)? else {
                return Ok(());
            };
            let Some(mut c) = tx.get(id)? else {
                return Ok(());
            };
            let before = c.clone();
            let mut joined = false;
            let mut left = false;
            for m in &mut c.lists {
                let want = if subscribed.contains(&m.list_id) {
                    MembershipStatus::Confirmed
                } else {
                    MembershipStatus::Unsubscribed
                };
                if m.status != want {
                    joined |= want == MembershipStatus::Confirmed;
                    left |= want == MembershipStatus::Unsubscribed;
                    m.status = want;
                    m.updated_at = at;
                }
            }
            if !(joined || left) {
                return Ok(());
            }
            if joined {
                lift_unsubscribe(tx, &who, &email)?;
            }
            c.consents.push(Consent {
                purpose: "email_marketing".into(),
                source: "preference-centre".into(),
                at,
                ip: ip.clone(),
                wording: Some(format!(
                    "kept lists {:?} (message {})",
                    subscribed, recipient.message
                )),
                withdrawn: !joined,
            });
            c.updated_at = at;
            let c = tx.update(c)?;
            audit::Entry::new(&who, AuditAction::Update, audit::record("contact", id))
                .changes(audit::Changes::of(Some(&before), Some(&c)))
                .detail("preference-centre")
                .append(tx.wtx())?;
            if left {
                store::events::emit(
                    tx.wtx(),
                    EventType::ContactUnsubscribed,
                    serde_json::json!({"contact_id": id, "email": email, "via": "preference-centre"}),
                )?;
            }
            Ok(())
        })?;
        let recipient = self.recipient(recipient.message, recipient.index)?;
        self.preferences_of(recipient)
    }
}

/// Subscribing again (preference centre, sign-up form, double opt-in) lifts an
/// "unsubscribed" suppression, never a bounce or complaint one.
pub(crate) fn lift_unsubscribe(
    tx: &ContactTx<'_>,
    who: &crate::policy::Actor,
    email: &str,
) -> Result<(), StoreError> {
    let wtx = tx.wtx();
    if let Some(s) = suppression::suppression_in(wtx, email)?
        && s.reason == SuppressionReason::Unsubscribed
    {
        suppression::unsuppress(wtx, email)?;
        audit::suppression_changed(wtx, who, &s, false)?;
    }
    Ok(())
}
