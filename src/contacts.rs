//! Contacts and lists as the domain sees them: validation, ownership and access (through
//! [`crate::policy`]), writes to the store with the search index kept in step, and search.
//! Blocking code: callers on the async runtime use `spawn_blocking`.

use crate::audit::{Changes, Entry, record};
use crate::model::{
    AuditAction, Consent, Contact, EventType, Id, MailingList, Membership, MembershipStatus, OptIn,
    normalise_email, now,
};
use crate::policy::{Action, Actor, Denied};
use crate::search::{ParsedQuery, QueryError, SearchError, SearchIndex};
use crate::store::{ContactTx, Store, StoreError};
use base64::Engine;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum ContactError {
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("a contact with the email {0} already exists")]
    Duplicate(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("invalid search: {0}")]
    Query(#[from] QueryError),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Search(SearchError),
}

impl From<StoreError> for ContactError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::DuplicateEmail(e) => ContactError::Duplicate(e),
            StoreError::NotFound(what) => ContactError::NotFound(what),
            other => ContactError::Store(other),
        }
    }
}

impl From<SearchError> for ContactError {
    fn from(e: SearchError) -> Self {
        match e {
            SearchError::Query(q) => ContactError::Query(q),
            SearchError::Store(s) => s.into(),
            other => ContactError::Search(other),
        }
    }
}

pub type Result<T, E = ContactError> = std::result::Result<T, E>;

fn invalid(field: &'static str, message: impl Into<String>) -> ContactError {
    ContactError::Invalid {
        field,
        message: message.into(),
    }
}

/// Fields of a contact to create or change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ContactInput {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub phone: Option<String>,
    pub tags: Option<Vec<String>>,
    pub attributes: Option<BTreeMap<String, serde_json::Value>>,
    /// Replaces the set of lists the contact belongs to.
    pub lists: Option<Vec<Id>>,
    pub owner_id: Option<Option<Id>>,
    /// The CRM account the contact belongs to (checked to exist when written).
    pub account_id: Option<Option<Id>>,
    pub consents: Vec<Consent>,
}

const MAX_TEXT: usize = 200;
const MAX_TAGS: usize = 100;
const MAX_ATTR_BYTES: usize = 16 * 1024;

/// Trims a short text field and rejects over-long values and control characters.
pub fn clean_text(field: &'static str, v: &str) -> Result<String> {
    let v = v.trim();
    if v.chars().count() > MAX_TEXT {
        return Err(invalid(
            field,
            format!("{field} is longer than {MAX_TEXT} characters"),
        ));
    }
    if v.chars().any(|c| c.is_control()) {
        return Err(invalid(
            field,
            format!("{field} contains control characters (such as line breaks)"),
        ));
    }
    Ok(v.to_string())
}

fn clean_tags(tags: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        let t = t.trim();
        if t.is_empty() {
            continue;
        }
        if t.chars().count() > 64 || t.chars().any(|c| c.is_control()) {
            return Err(invalid(
                "tags",
                format!(
                    "tag '{}' is longer than 64 characters or has control characters",
                    t.escape_default()
                ),
            ));
        }
        if !out.iter().any(|o| o.eq_ignore_ascii_case(t)) {
            out.push(t.to_string());
        }
    }
    if out.len() > MAX_TAGS {
        return Err(invalid(
            "tags",
            format!("a contact can have at most {MAX_TAGS} tags"),
        ));
    }
    Ok(out)
}

fn clean_attributes(
    attrs: &BTreeMap<String, serde_json::Value>,
) -> Result<BTreeMap<String, serde_json::Value>> {
    let mut out = BTreeMap::new();
    for (k, v) in attrs {
        let key = k.trim();
        if key.is_empty()
            || key.len() > 64
            || !key
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(invalid(
                "attributes",
                format!(
                    "attribute name '{}' must be 1-64 letters, digits, '_', '-' or '.'",
                    k.escape_default()
                ),
            ));
        }
        out.insert(key.to_string(), v.clone());
    }
    if serde_json::to_vec(&out).map(|b| b.len()).unwrap_or(0) > MAX_ATTR_BYTES {
        return Err(invalid("attributes", "attributes are larger than 16 KiB"));
    }
    Ok(out)
}

impl ContactInput {
    /// Applies the input to a contact, validating every field it sets.
    pub fn apply_to(&self, c: &mut Contact) -> Result<()> {
        if let Some(e) = &self.email {
            c.email = normalise_email(e).map_err(|m| invalid("email", m))?;
        }
        if let Some(v) = &self.first_name {
            c.first_name = clean_text("first_name", v)?;
        }
        if let Some(v) = &self.last_name {
            c.last_name = clean_text("last_name", v)?;
        }
        if let Some(v) = &self.company {
            c.company = clean_text("company", v)?;
        }
        if let Some(v) = &self.phone {
            c.phone = clean_text("phone", v)?;
        }
        if let Some(v) = &self.tags {
            c.tags = clean_tags(v)?;
        }
        if let Some(v) = &self.attributes {
            c.attributes = clean_attributes(v)?;
        }
        if let Some(o) = self.owner_id {
            c.owner_id = o;
        }
        if let Some(a) = self.account_id {
            c.account_id = a;
        }
        c.consents.extend(self.consents.iter().cloned());
        Ok(())
    }
}

/// Sets a contact's list memberships to `lists`, keeping the status of memberships it keeps.
fn set_memberships(
    tx: &ContactTx<'_>,
    c: &mut Contact,
    lists: &[Id],
    status: MembershipStatus,
) -> Result<()> {
    let mut next = Vec::new();
    for id in lists {
        if next.iter().any(|m: &Membership| m.list_id == *id) {
            continue;
        }
        if let Some(m) = c.lists.iter().find(|m| m.list_id == *id) {
            next.push(m.clone());
        } else {
            if !tx.list_exists(*id)? {
                return Err(invalid("lists", format!("list {id} does not exist")));
            }
            next.push(Membership {
                list_id: *id,
                status,
                updated_at: now(),
            });
        }
    }
    c.lists = next;
    Ok(())
}

/// A contact's account must exist.
fn check_account(tx: &ContactTx<'_>, input: &ContactInput) -> Result<()> {
    if let Some(Some(a)) = input.account_id
        && crate::store::crm::CrmTx::new(tx.wtx())
            .get::<crate::crm::model::Account>(a)?
            .is_none()
    {
        return Err(invalid("account_id", format!("account {a} does not exist")));
    }
    Ok(())
}

/// Adds a membership unless the contact already has one (an unsubscribe is never undone here).
pub fn add_membership(c: &mut Contact, list_id: Id, status: MembershipStatus) {
    if !c.lists.iter().any(|m| m.list_id == list_id) {
        c.lists.push(Membership {
            list_id,
            status,
            updated_at: now(),
        });
    }
}

/// Records a contact event for integrators in the contact's own transaction.
pub fn emit_contact(tx: &ContactTx<'_>, kind: EventType, c: &Contact) -> Result<()> {
    let data = serde_json::json!({ "contact": c });
    crate::store::events::emit(tx.wtx(), kind, data)?;
    Ok(())
}

/// The contact events a bulk writer (CSV import) records: only those an active webhook
/// subscription wants, checked once per batch, so imports stay fast when nobody listens.
/// Single creates and updates always record theirs.
#[derive(Debug, Clone, Copy)]
pub struct WantedEvents {
    created: bool,
    updated: bool,
}

impl WantedEvents {
    pub fn of(tx: &ContactTx<'_>) -> Result<WantedEvents> {
        use crate::store::webhooks::wanted;
        Ok(WantedEvents {
            created: wanted(tx.wtx(), EventType::ContactCreated)?,
            updated: wanted(tx.wtx(), EventType::ContactUpdated)?,
        })
    }

    pub fn emit(&self, tx: &ContactTx<'_>, kind: EventType, c: &Contact) -> Result<()> {
        let want = match kind {
            EventType::ContactCreated => self.created,
            EventType::ContactUpdated => self.updated,
            _ => true,
        };
        if want {
            emit_contact(tx, kind, c)?;
        }
        Ok(())
    }
}

pub fn empty_contact(email: String) -> Contact {
    let t = now();
    Contact {
        id: 0,
        email,
        first_name: String::new(),
        last_name: String::new(),
        company: String::new(),
        phone: String::new(),
        tags: Vec::new(),
        attributes: BTreeMap::new(),
        lists: Vec::new(),
        consents: Vec::new(),
        owner_id: None,
        account_id: None,
        created_at: t,
        updated_at: t,
        seq: 0,
    }
}

#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Contact>,
    pub next_cursor: Option<String>,
    pub total: u64,
}

/// An opaque paging cursor for an offset (contacts and CRM lists use the same form).
pub fn encode_cursor(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("o{offset}"))
}

/// The offset of a cursor [`encode_cursor`] made.
pub fn decode_cursor(cursor: &str) -> Result<usize> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix('o').and_then(|n| n.parse().ok()))
        .ok_or_else(|| invalid("cursor", "the cursor is not one this server returned"))
}

/// The contact service. One writer at a time: the store commit and the index update happen
/// in the same order, so the index's committed sequence never skips a change.
pub struct Contacts {
    store: Arc<Store>,
    search: Arc<SearchIndex>,
    writer: Mutex<()>,
}

impl Contacts {
    pub fn new(store: Arc<Store>, search: Arc<SearchIndex>) -> Contacts {
        Contacts {
            store,
            search,
            writer: Mutex::new(()),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn search_index(&self) -> &SearchIndex {
        &self.search
    }

    /// Runs `f` in one store transaction, then updates the search index. With `commit_index`
    /// the index commit happens before returning (readers see the change at once).
    pub fn write<T>(
        &self,
        commit_index: bool,
        f: impl FnOnce(&mut ContactTx<'_>) -> Result<T>,
    ) -> Result<T> {
        self.write_with(commit_index, f)
    }

    /// [`Contacts::write`] for other services' errors: lets a service (CRM lead conversion)
    /// write its own records and contacts in one transaction with its own error type.
    pub fn write_with<T, E>(
        &self,
        commit_index: bool,
        f: impl FnOnce(&mut ContactTx<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<StoreError> + From<ContactError>,
    {
        let (value, changes) = {
            let _g = self
                .writer
                .lock()
                .map_err(|_| ContactError::Search(SearchError::Poisoned))?;
            let (value, changes) = self.store.write_contacts(f)?;
            self.search.apply(&changes).map_err(ContactError::from)?;
            (value, changes)
        };
        if commit_index && !changes.is_empty() {
            self.search.commit().map_err(ContactError::from)?;
        }
        Ok(value)
    }

    pub fn create(&self, actor: &Actor, input: &ContactInput) -> Result<Contact> {
        actor.check_create_contact()?;
        let Some(email) = &input.email else {
            return Err(invalid("email", "email is required"));
        };
        let email = normalise_email(email).map_err(|m| invalid("email", m))?;
        if self
            .store
            .suppression(&email)?
            .is_some_and(|s| s.email.starts_with("hmac:"))
        {
            return Err(invalid(
                "email",
                "this address was erased at the person's request and stays suppressed; if they asked to be added again, take it off the suppression list first",
            ));
        }
        let mut c = empty_contact(email);
        c.owner_id = actor.default_owner();
        if let Some(owner) = input.owner_id {
            actor.check_assign_owner(owner)?;
        }
        input.apply_to(&mut c)?;
        self.write(true, |tx| {
            check_account(tx, input)?;
            if let Some(lists) = &input.lists {
                set_memberships(tx, &mut c, lists, MembershipStatus::Confirmed)?;
            }
            let c = tx.insert(c)?;
            emit_contact(tx, EventType::ContactCreated, &c)?;
            Entry::new(actor, AuditAction::Create, record("contact", c.id))
                .changes(Changes::of(None, Some(&c)))
                .append(tx.wtx())?;
            Ok(c)
        })
    }

    pub fn get(&self, actor: &Actor, id: Id) -> Result<Contact> {
        let c = self
            .store
            .contact(id)?
            .ok_or(ContactError::NotFound("contact"))?;
        actor.check_contact(&c, Action::Read).map_err(hide)?;
        Ok(c)
    }

    pub fn update(&self, actor: &Actor, id: Id, input: &ContactInput) -> Result<Contact> {
        if let Some(owner) = input.owner_id {
            actor.check_assign_owner(owner)?;
        }
        self.write(true, |tx| {
            let mut c = tx.get(id)?.ok_or(ContactError::NotFound("contact"))?;
            actor.check_contact(&c, Action::Update).map_err(hide)?;
            let before = c.clone();
            check_account(tx, input)?;
            input.apply_to(&mut c)?;
            if let Some(lists) = &input.lists {
                set_memberships(tx, &mut c, lists, MembershipStatus::Confirmed)?;
            }
            c.updated_at = now();
            let c = tx.update(c)?;
            emit_contact(tx, EventType::ContactUpdated, &c)?;
            let changes = Changes::of(Some(&before), Some(&c));
            if !changes.is_empty() {
                Entry::new(actor, AuditAction::Update, record("contact", id))
                    .changes(changes)
                    .append(tx.wtx())?;
            }
            Ok(c)
        })
    }

    pub fn delete(&self, actor: &Actor, id: Id) -> Result<()> {
        self.write(true, |tx| {
            let c = tx.get(id)?.ok_or(ContactError::NotFound("contact"))?;
            actor.check_contact(&c, Action::Delete).map_err(hide)?;
            tx.delete(id)?;
            Entry::new(actor, AuditAction::Delete, record("contact", id))
                .changes(Changes::of(Some(&c), None))
                .append(tx.wtx())?;
            Ok(())
        })
    }

    pub fn search(
        &self,
        actor: &Actor,
        q: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page> {
        let parsed = ParsedQuery::parse(q)?;
        let offset = match cursor {
            Some(c) if !c.is_empty() => decode_cursor(c)?,
            _ => 0,
        };
        let limit = limit.clamp(1, 100);
        let hits = self
            .search
            .search(&parsed, actor.contact_scope(), offset, limit)?;
        let items = self
            .store
            .contacts(&hits.ids)?
            .into_iter()
            .filter(|c| actor.check_contact(c, Action::Read).is_ok())
            .collect();
        Ok(Page {
            items,
            next_cursor: hits.next_offset.map(encode_cursor),
            total: hits.total,
        })
    }

    pub fn count(&self, actor: &Actor, q: &str) -> Result<u64> {
        let parsed = ParsedQuery::parse(q)?;
        Ok(self.search.count(&parsed, actor.contact_scope())?)
    }

    // ---- lists ----

    pub fn lists(&self, actor: &Actor) -> Result<Vec<(MailingList, u64)>> {
        actor.check_lists(Action::Read)?;
        let mut out = Vec::new();
        for l in self.store.lists()? {
            let n = self.store.list_member_count(l.id)?;
            out.push((l, n));
        }
        Ok(out)
    }

    pub fn list(&self, actor: &Actor, id: Id) -> Result<(MailingList, u64)> {
        actor.check_lists(Action::Read)?;
        let l = self.store.list(id)?.ok_or(ContactError::NotFound("list"))?;
        let n = self.store.list_member_count(id)?;
        Ok((l, n))
    }

    pub fn create_list(
        &self,
        actor: &Actor,
        name: &str,
        description: &str,
        opt_in: OptIn,
    ) -> Result<MailingList> {
        actor.check_lists(Action::Create)?;
        let name = clean_text("name", name)?;
        if name.is_empty() {
            return Err(invalid("name", "a list needs a name"));
        }
        let description = description.trim().to_string();
        if description.chars().count() > 2000 {
            return Err(invalid(
                "description",
                "description is longer than 2000 characters",
            ));
        }
        let list = MailingList {
            id: 0,
            name,
            description,
            opt_in,
            created_at: now(),
        };
        self.store
            .write(|wtx| -> Result<MailingList, StoreError> {
                let l = crate::store::create_list_in(wtx, list)?;
                Entry::new(actor, AuditAction::Create, record("list", l.id))
                    .changes(Changes::of(None, Some(&l)))
                    .append(wtx)?;
                Ok(l)
            })
            .map_err(|e| match e {
                StoreError::Invalid(m) => invalid("name", m),
                other => other.into(),
            })
    }

    pub fn update_list(
        &self,
        actor: &Actor,
        id: Id,
        name: Option<&str>,
        description: Option<&str>,
        opt_in: Option<OptIn>,
    ) -> Result<MailingList> {
        actor.check_lists(Action::Update)?;
        let mut l = self.store.list(id)?.ok_or(ContactError::NotFound("list"))?;
        if let Some(n) = name {
            let n = clean_text("name", n)?;
            if n.is_empty() {
                return Err(invalid("name", "a list needs a name"));
            }
            if let Some(other) = self.store.list_by_name(&n)?
                && other.id != id
            {
                return Err(invalid(
                    "name",
                    format!("a list named '{}' already exists", other.name),
                ));
            }
            l.name = n;
        }
        if let Some(d) = description {
            l.description = d.trim().to_string();
        }
        if let Some(o) = opt_in {
            l.opt_in = o;
        }
        self.store.write(|wtx| -> Result<(), StoreError> {
            let before = crate::store::update_list_in(wtx, &l)?;
            let changes = Changes::of(Some(&before), Some(&l));
            if !changes.is_empty() {
                Entry::new(actor, AuditAction::Update, record("list", id))
                    .changes(changes)
                    .append(wtx)?;
            }
            Ok(())
        })?;
        Ok(l)
    }

    /// Deletes a list and every membership in it, in one transaction.
    pub fn delete_list(&self, actor: &Actor, id: Id) -> Result<()> {
        actor.check_lists(Action::Delete)?;
        self.write(true, |tx| {
            let Some(list) = tx.list(id)? else {
                return Err(ContactError::NotFound("list"));
            };
            let members = tx.member_ids(id)?.len();
            for cid in tx.member_ids(id)? {
                if let Some(mut c) = tx.get(cid)? {
                    c.lists.retain(|m| m.list_id != id);
                    tx.update(c)?;
                }
            }
            tx.remove_list_record(id)?;
            Entry::new(actor, AuditAction::Delete, record("list", id))
                .changes(Changes::of(Some(&list), None))
                .detail(format!("{members} memberships removed"))
                .append(tx.wtx())?;
            Ok(())
        })
    }
}

/// Write denials on invisible records look like missing records.
pub(crate) fn hide(d: Denied) -> ContactError {
    match d {
        Denied::NotVisible => ContactError::NotFound("contact"),
        other => ContactError::Denied(other),
    }
}
