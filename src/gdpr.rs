//! Data-subject rights and retention: the export of everything held about a contact
//! (Art. 20), erasure (Art. 17), consent records with their proof, and the retention rules the
//! appliance runs itself. Nothing here knows HTTP.
//!
//! Erasure, in one store transaction: the contact record, its email index, memberships and
//! change-log entry (a tombstone, so the search index deletes the document), the delivery log
//! rows and queued deliveries to the address (cancelled), message bodies nobody else waits
//! for, feedback, soft-bounce marks, events and webhook outbox/attempt payloads that mention
//! it, import errors quoting it, and the personal values in the audit trail (keyed hashes via
//! [`audit::redact_in`], the chain still verifies). The address stays suppressed as a keyed
//! hash (HMAC under the store secret `erasure`), so later sends and re-adds are refused. Then
//! the search index merges its segments and drops unused files, and the store file is
//! rewritten from its live rows ([`Store::purge`]): freed pages of a copy-on-write file would
//! otherwise still hold the old bytes. Crash safety: the transaction sets a "purge pending"
//! flag that only the rewritten file lacks; a store opened with the flag purges at once, and
//! housekeeping retries a purge that found the store busy. Repeating an erasure of a contact
//! already erased finishes the purge and answers as before.
//!
//! Who may erase: admins and managers (irreversible, and managers already administer the
//! suppression list and read the audit trail); exports follow the contact's read access.

use crate::audit::{self, Changes, Entry, record};
use crate::contacts::{ContactError, Contacts};
use crate::model::{
    AuditAction, AuditEntry, Consent, Contact, EventType, Id, MembershipStatus, now,
};
use crate::policy::{Action, Actor, Denied};
use crate::search::{SearchError, SearchIndex};
use crate::store::audit::AuditFilter;
use crate::store::gdpr::{ERASURE_SECRET, PersonData, Scrubbed};
use crate::store::{Store, StoreError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;

#[derive(Debug, thiserror::Error)]
pub enum GdprError {
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Search(#[from] SearchError),
}

impl From<ContactError> for GdprError {
    fn from(e: ContactError) -> Self {
        match e {
            ContactError::Invalid { field, message } => GdprError::Invalid { field, message },
            ContactError::NotFound(w) => GdprError::NotFound(w),
            ContactError::Denied(d) => GdprError::Denied(d),
            ContactError::Store(s) => GdprError::Store(s),
            ContactError::Search(s) => GdprError::Search(s),
            ContactError::Duplicate(_) | ContactError::Query(_) => GdprError::Invalid {
                field: "id",
                message: e.to_string(),
            },
        }
    }
}

pub type Result<T, E = GdprError> = std::result::Result<T, E>;

/// Carries an error out of a contact transaction (which fails with the contacts' errors).
fn inside_contact_tx(e: GdprError) -> ContactError {
    match e {
        GdprError::Store(s) => ContactError::Store(s),
        GdprError::Denied(d) => ContactError::Denied(d),
        GdprError::NotFound(w) => ContactError::NotFound(w),
        GdprError::Invalid { field, message } => ContactError::Invalid { field, message },
        GdprError::Search(s) => ContactError::Search(s),
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> GdprError {
    GdprError::Invalid {
        field,
        message: message.into(),
    }
}

/// One list membership in the export, with the list's name.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ListMembership {
    pub list_id: Id,
    pub list_name: String,
    pub status: MembershipStatus,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: OffsetDateTime,
}

/// Everything Mailstead holds about one person (Art. 20), as one JSON document.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Export {
    /// `mailstead.gdpr-export.v1`
    pub format: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub exported_at: OffsetDateTime,
    /// The contact record; `null` when the person is not a contact (a lead's export).
    pub contact: Option<Contact>,
    /// Addresses the contact had before, from the audit trail.
    pub previous_emails: Vec<String>,
    pub lists: Vec<ListMembership>,
    /// Grants and withdrawals, oldest first, with their proof.
    pub consents: Vec<Consent>,
    #[serde(flatten)]
    pub held: PersonData,
    /// Other modules' records about the person, by module ([`PersonalDataSource`]).
    #[schema(value_type = Object)]
    pub other: BTreeMap<String, serde_json::Value>,
    /// Audit entries about the contact record (staff e-mail addresses and IPs left out).
    pub audit: Vec<AuditEntry>,
}

/// The contact parts of an export.
#[derive(Default)]
struct Person {
    contact: Option<Contact>,
    previous_emails: Vec<String>,
    lists: Vec<ListMembership>,
    consents: Vec<Consent>,
}

/// What an erasure did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Erasure {
    /// The contact erased; `null` for an address that was no contact's (a lead's).
    pub contact_id: Option<Id>,
    /// True when the contact had been erased before (this call only finished the purge).
    pub already_erased: bool,
    pub removed: Scrubbed,
    /// Audit entries whose personal values were replaced by keyed hashes.
    pub audit_entries_redacted: u64,
    /// False when the store was too busy to rewrite its file now; housekeeping retries.
    pub purged: bool,
}

/// A consent grant or withdrawal to record.
#[derive(Debug, Clone, Default)]
pub struct ConsentInput {
    pub purpose: String,
    pub source: Option<String>,
    pub at: Option<OffsetDateTime>,
    pub ip: Option<String>,
    pub wording: Option<String>,
    pub withdrawn: bool,
}

/// A contact's consent history and where each purpose stands now.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConsentHistory {
    pub contact_id: Id,
    /// Every grant and withdrawal, oldest first (never rewritten: the history is the proof).
    pub history: Vec<Consent>,
    /// Purpose → granted (the latest record per purpose decides).
    pub current: BTreeMap<String, bool>,
}

fn history(c: &Contact) -> ConsentHistory {
    let mut history = c.consents.clone();
    history.sort_by_key(|x| x.at);
    let mut current = BTreeMap::new();
    for x in &history {
        current.insert(x.purpose.clone(), !x.withdrawn);
    }
    ConsentHistory {
        contact_id: c.id,
        history,
        current,
    }
}

const MAX_WORDING: usize = 4000;

impl ConsentInput {
    fn validate(&self) -> Result<Consent> {
        let purpose = self.purpose.trim().to_lowercase();
        if purpose.is_empty()
            || purpose.len() > 64
            || !purpose
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
        {
            return Err(invalid(
                "purpose",
                "purpose must be 1-64 letters, digits, '_', '-', '.' or ':' (e.g. newsletter)",
            ));
        }
        let source = self.source.as_deref().unwrap_or("api").trim().to_string();
        if source.is_empty() || source.chars().count() > 100 || source.chars().any(char::is_control)
        {
            return Err(invalid(
                "source",
                "source must be 1-100 characters without line breaks (e.g. signup form, paper form)",
            ));
        }
        let wording = self
            .wording
            .as_deref()
            .map(str::trim)
            .filter(|w| !w.is_empty());
        if wording.is_some_and(|w| w.chars().count() > MAX_WORDING) {
            return Err(invalid(
                "wording",
                format!("wording is longer than {MAX_WORDING} characters"),
            ));
        }
        let ip = match self.ip.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(
                s.parse::<std::net::IpAddr>()
                    .map_err(|_| {
                        invalid(
                            "ip",
                            format!("'{}' is not an IP address", s.escape_default()),
                        )
                    })?
                    .to_string(),
            ),
        };
        let t = now();
        let at = self.at.unwrap_or(t);
        if at > t + time::Duration::minutes(5) {
            return Err(invalid("at", "at lies in the future"));
        }
        Ok(Consent {
            purpose,
            source,
            at,
            ip,
            wording: wording.map(str::to_string),
            withdrawn: self.withdrawn,
        })
    }
}

/// Another module's records about a person (e.g. CRM leads and activities): added to the
/// export under its name and scrubbed by every erasure, inside the erasure's transaction.
/// Modules register theirs with [`Gdpr::register`] when the app is assembled.
pub trait PersonalDataSource: Send + Sync {
    fn name(&self) -> &'static str;
    /// What the module holds about these (normalised) addresses.
    fn export(&self, emails: &[String]) -> Result<serde_json::Value>;
    /// Removes or redacts it inside the erasure's transaction (`key` keys any hash kept);
    /// returns how many records changed. Must be idempotent.
    fn erase_in(
        &self,
        wtx: &redb::WriteTransaction,
        actor: &Actor,
        emails: &[String],
        key: &[u8; 32],
    ) -> Result<u64>;
}

/// The data-subject rights service.
pub struct Gdpr {
    store: Arc<Store>,
    search: Arc<SearchIndex>,
    contacts: Arc<Contacts>,
    sources: std::sync::RwLock<Vec<Arc<dyn PersonalDataSource>>>,
}

impl Gdpr {
    pub fn new(store: Arc<Store>, search: Arc<SearchIndex>, contacts: Arc<Contacts>) -> Gdpr {
        Gdpr {
            store,
            search,
            contacts,
            sources: std::sync::RwLock::new(Vec::new()),
        }
    }

    /// Adds another module's personal data to exports and erasures.
    pub fn register(&self, source: Arc<dyn PersonalDataSource>) {
        self.sources
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(source);
    }

    fn sources(&self) -> Vec<Arc<dyn PersonalDataSource>> {
        self.sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Addresses the contact had before its current one, from the audit trail's `email`
    /// changes (lower case, without the current one).
    fn previous_emails(&self, c: &Contact) -> Result<Vec<String>> {
        let f = AuditFilter {
            record: Some(record("contact", c.id)),
            ..Default::default()
        };
        let mut out: Vec<String> = Vec::new();
        self.store.audit_scan(&f, None, false, |e| {
            if let Some(ch) = e.changes.get("email") {
                for v in [&ch.before, &ch.after] {
                    if let Some(s) = v.as_str().map(str::to_lowercase)
                        && s.contains('@')
                        && !s.starts_with("hmac:")
                        && s != c.email
                        && !out.contains(&s)
                    {
                        out.push(s);
                    }
                }
            }
            true
        })?;
        Ok(out)
    }

    /// Everything held about a contact (Art. 20). Whoever may read the contact may export
    /// it; the export is recorded in the audit trail.
    pub fn export(&self, actor: &Actor, id: Id) -> Result<Export> {
        let contact = self.contacts.get(actor, id)?;
        let previous_emails = self.previous_emails(&contact)?;
        let mut emails = vec![contact.email.clone()];
        emails.extend(previous_emails.iter().cloned());
        let names: BTreeMap<Id, String> = self
            .store
            .lists()?
            .into_iter()
            .map(|l| (l.id, l.name))
            .collect();
        let lists = contact
            .lists
            .iter()
            .map(|m| ListMembership {
                list_id: m.list_id,
                list_name: names.get(&m.list_id).cloned().unwrap_or_default(),
                status: m.status,
                updated_at: m.updated_at,
            })
            .collect();
        let consents = history(&contact).history;
        self.export_person(
            actor,
            &record("contact", id),
            &emails,
            Person {
                contact: Some(contact),
                previous_emails,
                lists,
                consents,
            },
        )
    }

    /// What is held about an address that belongs to no contact (a lead's, say): the same
    /// document as a contact's export, without the contact part. `subject` (`lead:5`) names
    /// the record whose audit history is included and on which the export is recorded;
    /// the caller has checked that the actor may read it.
    pub fn export_address(
        &self,
        actor: &Actor,
        subject: &str,
        email: &str,
        consents: Vec<Consent>,
    ) -> Result<Export> {
        let person = Person {
            consents,
            ..Default::default()
        };
        let email = email.trim().to_lowercase();
        let emails: &[String] = if email.is_empty() {
            &[]
        } else {
            std::slice::from_ref(&email)
        };
        self.export_person(actor, subject, emails, person)
    }

    fn export_person(
        &self,
        actor: &Actor,
        subject: &str,
        emails: &[String],
        person: Person,
    ) -> Result<Export> {
        let held = self.store.person_data(emails)?;
        let mut other = BTreeMap::new();
        for src in self.sources() {
            other.insert(src.name().to_string(), src.export(emails)?);
        }
        let mut entries = Vec::new();
        let f = AuditFilter {
            record: Some(subject.to_string()),
            ..Default::default()
        };
        self.store.audit_scan(&f, None, false, |mut e| {
            e.actor_email = None;
            e.ip = None;
            entries.push(e);
            true
        })?;
        self.store.write(|wtx| {
            Entry::new(actor, AuditAction::Export, subject)
                .detail("personal data export (GDPR Art. 20)")
                .append(wtx)
        })?;
        Ok(Export {
            format: "mailstead.gdpr-export.v1".into(),
            exported_at: now(),
            consents: person.consents,
            previous_emails: person.previous_emails,
            lists: person.lists,
            held,
            other,
            audit: entries,
            contact: person.contact,
        })
    }

    /// Erases a contact and every trace of its addresses (Art. 17), then purges the search
    /// index and the store file. Admins and managers only.
    pub fn erase(&self, actor: &Actor, id: Id) -> Result<Erasure> {
        let mut e = self.erase_records(actor, id, "erased on request (GDPR Art. 17)")?;
        self.search.purge_deleted()?;
        e.purged = self.store.purge()?;
        Ok(e)
    }

    /// The store part of an erasure (one transaction) without the purges, which a batch
    /// (retention) runs once at its end.
    fn erase_records(&self, actor: &Actor, id: Id, why: &str) -> Result<Erasure> {
        actor.check_erase()?;
        let key = self.store.secret(ERASURE_SECRET)?;
        let rec = record("contact", id);
        let sources = self.sources();
        let done = self.contacts.write(true, |tx| {
            let Some(c) = tx.get(id)? else {
                return Ok(None);
            };
            actor
                .check_contact(&c, Action::Delete)
                .map_err(crate::contacts::hide)?;
            let mut needles = vec![c.email.to_lowercase()];
            needles.extend(self.previous_emails(&c).map_err(inside_contact_tx)?);
            tx.delete(id)?;
            crate::store::segments::forget_engagement_in(tx.wtx(), id)?;
            let mut removed = crate::store::gdpr::scrub_in(tx.wtx(), &needles, &key)?;
            for src in &sources {
                removed.other += src
                    .erase_in(tx.wtx(), actor, &needles, &key)
                    .map_err(inside_contact_tx)?;
            }
            let redacted =
                audit::redact_person_in(tx.wtx(), &key, actor, &rec, &needles)?.len() as u64;
            Entry::new(actor, AuditAction::Erase, rec.as_str())
                .detail(format!(
                    "{why}: {} deliveries ({} cancelled), {} bodies, {} feedback records, {} events, {} webhook deliveries; address kept as a keyed hash on the suppression list",
                    removed.deliveries,
                    removed.cancelled,
                    removed.bodies,
                    removed.feedback,
                    removed.events,
                    removed.webhook_deliveries
                ))
                .append(tx.wtx())?;
            Ok(Some((removed, redacted)))
        })?;
        match done {
            Some((removed, redacted)) => Ok(Erasure {
                contact_id: Some(id),
                already_erased: false,
                removed,
                audit_entries_redacted: redacted,
                purged: false,
            }),
            None => {
                // erased before (perhaps interrupted before its purge)? then finish that
                let f = AuditFilter {
                    record: Some(rec),
                    ..Default::default()
                };
                let mut erased = false;
                self.store.audit_scan(&f, None, true, |e| {
                    erased |= e.action == AuditAction::Erase;
                    !erased
                })?;
                if !erased {
                    return Err(GdprError::NotFound("contact"));
                }
                Ok(Erasure {
                    contact_id: Some(id),
                    already_erased: true,
                    removed: Scrubbed::default(),
                    audit_entries_redacted: 0,
                    purged: false,
                })
            }
        }
    }

    /// Erases every trace of an address that belongs to no contact (a lead's), as a contact
    /// erasure does, then purges the store file. `subject` (`lead:5`) gets the audit entry;
    /// the caller has checked that the actor may see it. Admins and managers only.
    pub fn erase_address(&self, actor: &Actor, subject: &str, email: &str) -> Result<Erasure> {
        actor.check_erase()?;
        let key = self.store.secret(ERASURE_SECRET)?;
        let needles = vec![email.to_lowercase()];
        let sources = self.sources();
        let (removed, redacted) = self.store.write(|wtx| -> Result<(Scrubbed, u64)> {
            let mut removed = crate::store::gdpr::scrub_in(wtx, &needles, &key)?;
            for src in &sources {
                removed.other += src.erase_in(wtx, actor, &needles, &key)?;
            }
            let redacted = audit::redact_person_in(wtx, &key, actor, subject, &needles)?.len();
            Entry::new(actor, AuditAction::Erase, subject)
                .detail(format!(
                    "erased on request (GDPR Art. 17): {} records, {} deliveries ({} cancelled), {} feedback records, {} events; address kept as a keyed hash on the suppression list",
                    removed.other,
                    removed.deliveries,
                    removed.cancelled,
                    removed.feedback,
                    removed.events,
                ))
                .append(wtx)?;
            Ok((removed, redacted as u64))
        })?;
        Ok(Erasure {
            contact_id: None,
            already_erased: false,
            removed,
            audit_entries_redacted: redacted,
            purged: self.store.purge()?,
        })
    }

    /// Finishes a purge an erasure could not do at once (the store was busy). Housekeeping.
    pub fn finish_pending_purge(&self) -> Result<bool> {
        if !self.store.purge_pending()? {
            return Ok(false);
        }
        self.search.purge_deleted()?;
        Ok(self.store.purge()?)
    }

    pub fn consents(&self, actor: &Actor, id: Id) -> Result<ConsentHistory> {
        Ok(history(&self.contacts.get(actor, id)?))
    }

    /// Appends a grant or a withdrawal (never rewrites one), audited, with a
    /// `contact.updated` event.
    pub fn record_consent(
        &self,
        actor: &Actor,
        id: Id,
        input: &ConsentInput,
    ) -> Result<ConsentHistory> {
        let consent = input.validate()?;
        let c = self.contacts.write(true, |tx| {
            let mut c = tx.get(id)?.ok_or(ContactError::NotFound("contact"))?;
            actor
                .check_contact(&c, Action::Update)
                .map_err(crate::contacts::hide)?;
            c.consents.push(consent.clone());
            c.updated_at = now();
            let c = tx.update(c)?;
            crate::contacts::emit_contact(tx, EventType::ContactUpdated, &c)?;
            let what = if consent.withdrawn {
                "withdrawn"
            } else {
                "granted"
            };
            Entry::new(actor, AuditAction::Update, record("contact", id))
                .changes(Changes::default().set(
                    "consents",
                    serde_json::Value::Null,
                    serde_json::to_value(&consent).unwrap_or_default(),
                ))
                .detail(format!("consent {what}: {}", consent.purpose))
                .append(tx.wtx())?;
            Ok(c)
        })?;
        Ok(history(&c))
    }

    /// Erases the given contacts as the appliance (retention), then purges once.
    pub fn erase_batch(&self, ids: &[Id], why: &str) -> Result<u64> {
        let system = Actor {
            email: "system".into(),
            ..Actor::system()
        };
        let mut n = 0;
        for id in ids {
            match self.erase_records(&system, *id, why) {
                Ok(e) if !e.already_erased => n += 1,
                Ok(_) | Err(GdprError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if n > 0 {
            self.search.purge_deleted()?;
            self.store.purge()?;
        }
        Ok(n)
    }
}

// ---- retention ----

/// One retention rule: what to remove as of `now`. Rules run daily in the server's own
/// background task; each returns how many records it removed and audits what it did. Other
/// modules add theirs (e.g. unconverted CRM leads) by implementing this and adding it in
/// [`Retention::from_settings`].
pub trait RetentionRule: Send + Sync {
    fn name(&self) -> &'static str;
    fn apply(&self, gdpr: &Gdpr, now: OffsetDateTime) -> Result<u64>;
}

/// Contacts without activity for `days`: no confirmed list membership, and nothing (a
/// change, a membership change, a consent record) since the cut-off. They are erased.
pub struct InactiveContacts {
    pub days: u32,
}

/// The newest sign of life of a contact.
pub fn last_activity(c: &Contact) -> OffsetDateTime {
    let mut t = c.created_at.max(c.updated_at);
    for m in &c.lists {
        t = t.max(m.updated_at);
    }
    for x in &c.consents {
        t = t.max(x.at);
    }
    t
}

impl RetentionRule for InactiveContacts {
    fn name(&self) -> &'static str {
        "inactive_contacts"
    }

    fn apply(&self, gdpr: &Gdpr, now: OffsetDateTime) -> Result<u64> {
        let cutoff = now - time::Duration::days(i64::from(self.days));
        let ids = gdpr.store.contacts_not(|c| {
            c.lists
                .iter()
                .any(|m| m.status == MembershipStatus::Confirmed)
                || last_activity(c) >= cutoff
        })?;
        gdpr.erase_batch(
            &ids,
            &format!("retention: no activity for {} days", self.days),
        )
    }
}

/// Finished deliveries older than `days` leave the delivery log (with their messages once
/// no delivery is left).
pub struct DeliveryLog {
    pub days: u32,
}

impl RetentionRule for DeliveryLog {
    fn name(&self) -> &'static str {
        "delivery_log"
    }

    fn apply(&self, gdpr: &Gdpr, now: OffsetDateTime) -> Result<u64> {
        let cutoff = now - time::Duration::days(i64::from(self.days));
        let system = Actor {
            email: "system".into(),
            ..Actor::system()
        };
        let n = gdpr.store.write(|wtx| {
            let n = crate::store::gdpr::prune_delivery_log_in(wtx, cutoff)?;
            if n > 0 {
                Entry::new(&system, AuditAction::Delete, "retention:delivery_log")
                    .detail(format!(
                        "retention: {n} deliveries finished more than {} days ago deleted",
                        self.days
                    ))
                    .append(wtx)?;
            }
            Ok::<_, GdprError>(n)
        })?;
        if n > 0 {
            gdpr.store.purge()?;
        }
        Ok(n)
    }
}

/// The retention rules in force.
pub struct Retention {
    rules: Vec<Box<dyn RetentionRule>>,
}

impl Retention {
    /// The rules the settings turn on (0 days = off).
    pub fn from_settings(s: &crate::config::RetentionSettings) -> Retention {
        let mut rules: Vec<Box<dyn RetentionRule>> = Vec::new();
        if s.inactive_contacts_days > 0 {
            rules.push(Box::new(InactiveContacts {
                days: s.inactive_contacts_days,
            }));
        }
        if s.delivery_log_days > 0 {
            rules.push(Box::new(DeliveryLog {
                days: s.delivery_log_days,
            }));
        }
        Retention { rules }
    }

    /// Adds another module's rule (the CRM's unconverted leads).
    pub fn add(&mut self, rule: Box<dyn RetentionRule>) {
        self.rules.push(rule);
    }

    pub fn with_rules(rules: Vec<Box<dyn RetentionRule>>) -> Retention {
        Retention { rules }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Runs every rule as of `now`; a failing rule is logged and does not stop the others.
    pub fn run(&self, gdpr: &Gdpr, now: OffsetDateTime) -> Vec<(&'static str, Result<u64>)> {
        self.rules
            .iter()
            .map(|r| {
                let res = r.apply(gdpr, now);
                match &res {
                    Ok(n) => tracing::info!(rule = r.name(), removed = n, "retention rule ran"),
                    Err(e) => tracing::warn!(rule = r.name(), error = %e, "retention rule failed"),
                }
                (r.name(), res)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Membership;

    fn setup() -> (tempfile::TempDir, Gdpr) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let search = Arc::new(SearchIndex::open(&dir.path().join("search"), &store).unwrap());
        let contacts = Arc::new(Contacts::new(store.clone(), search.clone()));
        (dir, Gdpr::new(store, search, contacts))
    }

    fn add(g: &Gdpr, email: &str, at: OffsetDateTime, confirmed_list: Option<Id>) -> Id {
        g.contacts
            .write(true, |tx| {
                let mut c = crate::contacts::empty_contact(email.into());
                c.created_at = at;
                c.updated_at = at;
                if let Some(l) = confirmed_list {
                    c.lists.push(Membership {
                        list_id: l,
                        status: MembershipStatus::Confirmed,
                        updated_at: at,
                    });
                }
                Ok(tx.insert(c)?.id)
            })
            .unwrap()
    }

    #[test]
    fn retention_erases_inactive_contacts_as_of_a_fake_clock() {
        let (_dir, g) = setup();
        let t0 = now();
        let old = add(&g, "old@example.test", t0, None);
        let subscribed = add(&g, "reader@example.test", t0, Some(1));
        let fresh = add(
            &g,
            "fresh@example.test",
            t0 + time::Duration::days(300),
            None,
        );
        let retention = Retention::from_settings(&crate::config::RetentionSettings {
            inactive_contacts_days: 365,
            delivery_log_days: 0,
            unconverted_leads_days: 0,
        });
        // a year minus a day later nothing is due
        let results = retention.run(&g, t0 + time::Duration::days(364));
        assert_eq!(results.len(), 1);
        assert_eq!(*results[0].1.as_ref().unwrap(), 0);
        // a year and a day later only the inactive contact without subscription goes
        let results = retention.run(&g, t0 + time::Duration::days(366));
        assert_eq!(*results[0].1.as_ref().unwrap(), 1);
        assert!(g.store.contact(old).unwrap().is_none());
        assert!(g.store.contact(subscribed).unwrap().is_some());
        assert!(g.store.contact(fresh).unwrap().is_some());
        // the address stays suppressed (as a keyed hash), and the erasure is audited
        let s = g.store.suppression("old@example.test").unwrap().unwrap();
        assert!(s.email.starts_with("hmac:"), "{}", s.email);
        let page = g
            .store
            .audit_page(
                &AuditFilter {
                    record: Some(record("contact", old)),
                    ..Default::default()
                },
                None,
                10,
            )
            .unwrap();
        assert!(
            page.iter()
                .any(|e| e.action == AuditAction::Erase && e.actor == "system"),
            "{page:?}"
        );
        assert!(!g.store.purge_pending().unwrap(), "the file was rewritten");
        assert!(g.store.audit_verify().unwrap().intact());
    }

    fn files_mentioning(dir: &std::path::Path, needle: &str) -> Vec<String> {
        let mut hits = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                hits.extend(files_mentioning(&p, needle));
            } else if std::fs::read(&p)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
            {
                hits.push(p.display().to_string());
            }
        }
        hits
    }

    #[test]
    fn an_erasure_interrupted_before_its_purge_finishes_at_the_next_open() {
        let (dir, g) = setup();
        let id = add(&g, "crash@example.test", now(), None);
        add(&g, "other@example.test", now(), None);
        let admin = Actor::system();
        // the transaction commits, then the process dies before the index and file purges
        let e = g.erase_records(&admin, id, "test").unwrap();
        assert!(!e.already_erased && !e.purged);
        assert!(g.store.purge_pending().unwrap());
        assert!(
            !files_mentioning(dir.path(), "crash@example.test").is_empty(),
            "freed pages still hold the address until the purge"
        );
        drop(g);
        // what App::open does at start
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let search = Arc::new(SearchIndex::open(&dir.path().join("search"), &store).unwrap());
        let contacts = Arc::new(Contacts::new(store.clone(), search.clone()));
        let g = Gdpr::new(store, search, contacts);
        assert!(g.finish_pending_purge().unwrap());
        assert!(!g.store.purge_pending().unwrap());
        assert_eq!(
            files_mentioning(dir.path(), "crash@example.test"),
            Vec::<String>::new()
        );
        assert!(!files_mentioning(dir.path(), "other@example.test").is_empty());
        // repeating the erasure is harmless and says so
        let again = g.erase(&admin, id).unwrap();
        assert!(again.already_erased);
        assert!(g.store.suppression("crash@example.test").unwrap().is_some());
        assert!(g.store.audit_verify().unwrap().intact());
    }

    struct Leads(std::sync::atomic::AtomicU64);

    impl PersonalDataSource for Leads {
        fn name(&self) -> &'static str {
            "leads"
        }
        fn export(&self, emails: &[String]) -> Result<serde_json::Value> {
            Ok(serde_json::json!({ "asked_about": emails }))
        }
        fn erase_in(
            &self,
            _wtx: &redb::WriteTransaction,
            _actor: &Actor,
            emails: &[String],
            _key: &[u8; 32],
        ) -> Result<u64> {
            self.0
                .fetch_add(emails.len() as u64, std::sync::atomic::Ordering::SeqCst);
            Ok(emails.len() as u64)
        }
    }

    #[test]
    fn other_modules_take_part_in_export_and_erasure() {
        let (_dir, g) = setup();
        let leads = Arc::new(Leads(Default::default()));
        g.register(leads.clone());
        let id = add(&g, "lead@example.test", now(), None);
        let x = g.export(&Actor::system(), id).unwrap();
        assert_eq!(
            x.other["leads"],
            serde_json::json!({ "asked_about": ["lead@example.test"] })
        );
        let e = g.erase(&Actor::system(), id).unwrap();
        assert_eq!(e.removed.other, 1);
        assert_eq!(leads.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn retention_prunes_the_delivery_log() {
        let (_dir, g) = setup();
        let msg = crate::model::OutMessage::for_tests();
        let m = g
            .store
            .enqueue(msg, b"body", &[("a@one.test".into(), "one.test".into())])
            .unwrap();
        let claimed = g.store.claim_due(now(), 10).unwrap();
        assert_eq!(claimed.len(), 1);
        g.store
            .settle(
                &[crate::store::Settlement {
                    message: m.id,
                    index: 0,
                    state: crate::model::DeliveryState::Sent,
                    event: crate::model::DeliveryEvent {
                        at: now(),
                        state: crate::model::DeliveryState::Sent,
                        code: Some(250),
                        enhanced: None,
                        text: "ok".into(),
                        mx: None,
                    },
                    retry_at: None,
                    site: None,
                    policy: false,
                    attempted: true,
                }],
                |_, _, _| Ok(()),
            )
            .unwrap();
        let rule = DeliveryLog { days: 30 };
        assert_eq!(rule.apply(&g, now() + time::Duration::days(29)).unwrap(), 0);
        assert_eq!(g.store.deliveries_of(m.id).unwrap().len(), 1);
        assert_eq!(rule.apply(&g, now() + time::Duration::days(31)).unwrap(), 1);
        assert!(g.store.deliveries_of(m.id).unwrap().is_empty());
        assert!(g.store.out_message(m.id).unwrap().is_none());
        assert!(g.store.audit_verify().unwrap().intact());
    }
}
