//! Public sign-up forms and double opt-in. A form posts to `/f/{list}`; the person becomes a
//! contact (or an existing one joins), with a consent record holding the source, time,
//! address and the wording they agreed to. On a double opt-in list the membership stays
//! `unconfirmed` until the link in the confirmation mail is followed; the confirmation is a
//! second consent record. Bots that fill the honeypot field are answered as if they had
//! succeeded and nothing is stored. Nothing here knows HTTP.

use crate::audit;
use crate::contacts::{ContactError, Contacts, emit_contact, empty_contact};
use crate::delivery::Verp;
use crate::model::{
    AuditAction, Consent, Contact, EventType, Id, MailingList, Membership, MembershipStatus, OptIn,
    normalise_email, now,
};
use crate::store::{Store, StoreError};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum FormError {
    #[error("{0}")]
    Invalid(String),
    #[error("this sign-up form does not exist")]
    NoList,
    #[error("this confirmation link is not valid (it may have been copied incompletely)")]
    BadLink,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Contacts(#[from] ContactError),
}

/// What a person typed into a form.
#[derive(Debug, Clone, Default)]
pub struct SignUp {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// The honeypot: hidden from people, filled by bots.
    pub trap: String,
    pub ip: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    /// A double opt-in list: send the confirmation to `email` with `confirm_url`.
    Confirm {
        contact_id: Id,
        email: String,
        list: MailingList,
        confirm_url: String,
    },
    /// Single opt-in (or already confirmed): subscribed now.
    Subscribed { contact_id: Id },
    /// The honeypot was filled: nothing stored.
    Ignored,
}

pub struct Forms {
    store: Arc<Store>,
    contacts: Arc<Contacts>,
    codec: Verp,
    base_url: String,
    /// The brand's company name (the wording of consent names it).
    company: String,
}

/// The wording a form shows next to its button, kept as proof of what was agreed to.
pub fn wording(list: &MailingList, company: &str) -> String {
    let who = if company.trim().is_empty() {
        "us".to_string()
    } else {
        company.trim().to_string()
    };
    format!(
        "Yes, send me \"{}\" emails from {who}. I can unsubscribe at any time with the link in every email.",
        list.name
    )
}

impl Forms {
    pub fn new(
        store: Arc<Store>,
        contacts: Arc<Contacts>,
        settings: &crate::config::Settings,
    ) -> Result<Forms, StoreError> {
        let secret = store.secret("forms")?;
        let codec = Verp::new(&secret, &settings.delivery.bounce_domain)
            .map_err(|e| StoreError::Invalid(format!("forms: {e}")))?;
        Ok(Forms {
            store,
            contacts,
            codec,
            base_url: settings.public_url.trim_end_matches('/').to_string(),
            company: crate::templates::Brand::from_settings(settings)
                .map(|b| b.company_name)
                .unwrap_or_default(),
        })
    }

    pub fn list(&self, list_id: Id) -> Result<MailingList, FormError> {
        self.store.list(list_id)?.ok_or(FormError::NoList)
    }

    pub fn confirm_url(&self, contact_id: Id, list_id: Id) -> String {
        // the codec signs (id, index): here (contact, list)
        let list = u32::try_from(list_id).unwrap_or(u32::MAX);
        format!(
            "{}/confirm/{}",
            self.base_url,
            self.codec.token(contact_id, list)
        )
    }

    /// Records a sign-up for `list_id`.
    pub fn sign_up(&self, list_id: Id, s: &SignUp, wording: &str) -> Result<Outcome, FormError> {
        let list = self.list(list_id)?;
        if !s.trap.trim().is_empty() {
            return Ok(Outcome::Ignored);
        }
        let email = normalise_email(&s.email).map_err(FormError::Invalid)?;
        let clean = |v: &str, what: &str| -> Result<String, FormError> {
            let v = v.trim();
            if v.chars().count() > 100 || v.chars().any(char::is_control) {
                return Err(FormError::Invalid(format!(
                    "the {what} is too long or contains control characters"
                )));
            }
            Ok(v.to_string())
        };
        let first = clean(&s.first_name, "first name")?;
        let last = clean(&s.last_name, "last name")?;
        let double = list.opt_in == OptIn::Double;
        let who = audit::recipient(s.ip.clone());
        let (contact_id, confirmed) = self.contacts.write(true, |tx| {
            let at = now();
            let existing = match tx.id_by_email(&email)? {
                Some(id) => tx.get(id)?,
                None => None,
            };
            let created = existing.is_none();
            let mut c: Contact = existing
                .clone()
                .unwrap_or_else(|| empty_contact(email.clone()));
            if c.first_name.is_empty() {
                c.first_name = first.clone();
            }
            if c.last_name.is_empty() {
                c.last_name = last.clone();
            }
            let already = c
                .lists
                .iter()
                .any(|m| m.list_id == list.id && m.status == MembershipStatus::Confirmed);
            let status = if already || !double {
                MembershipStatus::Confirmed
            } else {
                MembershipStatus::Unconfirmed
            };
            match c.lists.iter_mut().find(|m| m.list_id == list.id) {
                Some(m) => {
                    m.status = status;
                    m.updated_at = at;
                }
                None => c.lists.push(Membership {
                    list_id: list.id,
                    status,
                    updated_at: at,
                }),
            }
            c.consents.push(Consent {
                purpose: "email_marketing".into(),
                source: format!("form:list:{}", list.id),
                at,
                ip: s.ip.clone(),
                wording: Some(wording.to_string()),
                withdrawn: false,
            });
            c.updated_at = at;
            if status == MembershipStatus::Confirmed {
                crate::subscriptions::lift_unsubscribe(tx, &who, &email)?;
            }
            let c = if created {
                tx.insert(c)?
            } else {
                tx.update(c)?
            };
            emit_contact(
                tx,
                if created {
                    EventType::ContactCreated
                } else {
                    EventType::ContactUpdated
                },
                &c,
            )?;
            audit::Entry::new(
                &who,
                if created {
                    AuditAction::Create
                } else {
                    AuditAction::Update
                },
                audit::record("contact", c.id),
            )
            .changes(audit::Changes::of(existing.as_ref(), Some(&c)))
            .detail(format!("sign-up form, list {}", list.id))
            .append(tx.wtx())?;
            Ok((c.id, status == MembershipStatus::Confirmed))
        })?;
        if confirmed {
            return Ok(Outcome::Subscribed { contact_id });
        }
        Ok(Outcome::Confirm {
            contact_id,
            email,
            confirm_url: self.confirm_url(contact_id, list.id),
            list,
        })
    }

    /// Follows a confirmation link: the membership becomes confirmed (idempotent).
    pub fn confirm(&self, token: &str, ip: Option<String>) -> Result<MailingList, FormError> {
        if token.len() > 64 {
            return Err(FormError::BadLink);
        }
        let (contact_id, list_id) = self
            .codec
            .decode_token(token)
            .map_err(|_| FormError::BadLink)?;
        let list = self.list(Id::from(list_id))?;
        let who = audit::recipient(ip.clone());
        let step = self.contacts.write(true, |tx| {
            let Some(mut c) = tx.get(contact_id)? else {
                return Ok(Step::BadLink);
            };
            let before = c.clone();
            let Some(m) = c.lists.iter_mut().find(|m| m.list_id == list.id) else {
                return Ok(Step::BadLink);
            };
            if m.status == MembershipStatus::Confirmed {
                return Ok(Step::Done);
            }
            if m.status == MembershipStatus::Unsubscribed {
                // they left after signing up: an old link does not bring them back
                return Ok(Step::LeftSince);
            }
            let at = now();
            m.status = MembershipStatus::Confirmed;
            m.updated_at = at;
            c.consents.push(Consent {
                purpose: "email_marketing".into(),
                source: format!("double-opt-in:list:{}", list.id),
                at,
                ip: ip.clone(),
                wording: Some(format!("confirmed the subscription to \"{}\"", list.name)),
                withdrawn: false,
            });
            c.updated_at = at;
            crate::subscriptions::lift_unsubscribe(tx, &who, &c.email)?;
            let c = tx.update(c)?;
            emit_contact(tx, EventType::ContactUpdated, &c)?;
            audit::Entry::new(&who, AuditAction::Update, audit::record("contact", c.id))
                .changes(audit::Changes::of(Some(&before), Some(&c)))
                .detail("double opt-in confirmed")
                .append(tx.wtx())?;
            Ok(Step::Done)
        })?;
        match step {
            Step::Done => Ok(list),
            Step::BadLink => Err(FormError::BadLink),
            Step::LeftSince => Err(FormError::Invalid(
                "you unsubscribed from this list after signing up; sign up again to rejoin".into(),
            )),
        }
    }

    /// An embeddable HTML form for a list (copy into any web page).
    /// The company a form's consent wording names.
    pub fn company(&self) -> &str {
        &self.company
    }

    pub fn embed_html(&self, list: &MailingList) -> String {
        let company = self.company.as_str();
        let esc = crate::templates::attr_escape;
        format!(
            r#"<form action="{base}/f/{id}" method="post" class="mailstead-form">
  <label>Email <input type="email" name="email" required autocomplete="email"></label>
  <label>First name <input type="text" name="first_name" autocomplete="given-name"></label>
  <label>Last name <input type="text" name="last_name" autocomplete="family-name"></label>
  <div style="position:absolute;left:-5000px" aria-hidden="true"><label>Leave this empty <input type="text" name="website" tabindex="-1" autocomplete="off"></label></div>
  <p>{wording}</p>
  <button type="submit">Subscribe</button>
</form>"#,
            base = esc(&self.base_url),
            id = list.id,
            wording = esc(&wording(list, company)),
        )
    }
}

enum Step {
    Done,
    BadLink,
    LeftSince,
}
