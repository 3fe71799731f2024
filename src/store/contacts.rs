//! Contact records, their unique email index, list memberships and the change log that the
//! search index follows.

use super::{
    CONTACT_BY_EMAIL, CONTACT_CHANGES, CONTACTS, LIST_MEMBERS, LISTS, Result, SEQUENCES, Store,
    StoreError, TOMBSTONE, decode, encode, get_json, next_seq,
};
use crate::model::{Contact, Id, MailingList, MembershipStatus};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, Table};

/// A change the search index must apply, in store order.
#[derive(Debug, Clone)]
pub enum ContactChange {
    Upsert(Box<Contact>),
    Delete { id: Id, seq: u64 },
}

impl ContactChange {
    pub fn seq(&self) -> u64 {
        match self {
            ContactChange::Upsert(c) => c.seq,
            ContactChange::Delete { seq, .. } => *seq,
        }
    }
}

pub(crate) const CONFIRMED: u8 = 1;

fn status_code(s: MembershipStatus) -> u8 {
    match s {
        MembershipStatus::Unconfirmed => 0,
        MembershipStatus::Confirmed => CONFIRMED,
        MembershipStatus::Unsubscribed => 2,
    }
}

/// The contact tables inside one write transaction. Domain code decides what to write; this
/// keeps the indexes consistent and records the changes for the search index.
pub struct ContactTx<'t> {
    contacts: Table<'t, u64, &'static [u8]>,
    by_email: Table<'t, &'static str, u64>,
    changes: Table<'t, u64, u64>,
    members: Table<'t, (u64, u64), u8>,
    lists: Table<'t, u64, &'static [u8]>,
    seqs: Table<'t, &'static str, u64>,
    out: Vec<ContactChange>,
    wtx: &'t redb::WriteTransaction,
}

impl<'t> ContactTx<'t> {
    /// The whole transaction, for writing other records (events, feedback, suppressions)
    /// in the same commit as the contact change.
    pub fn wtx(&self) -> &'t redb::WriteTransaction {
        self.wtx
    }

    pub fn get(&self, id: Id) -> Result<Option<Contact>> {
        get_json(&self.contacts, "contacts", id)
    }

    pub fn id_by_email(&self, email: &str) -> Result<Option<Id>> {
        Ok(self.by_email.get(email)?.map(|v| v.value()))
    }

    pub fn list(&self, id: Id) -> Result<Option<MailingList>> {
        get_json(&self.lists, "lists", id)
    }

    pub fn list_exists(&self, id: Id) -> Result<bool> {
        Ok(self.lists.get(id)?.is_some())
    }

    fn bump(&mut self, c: &mut Contact) -> Result<()> {
        if c.seq != 0 {
            self.changes.remove(c.seq)?;
        }
        c.seq = next_seq(&mut self.seqs, "contact_change")?;
        self.changes.insert(c.seq, c.id)?;
        Ok(())
    }

    /// Inserts a new contact; assigns its id. The email must already be normalised.
    pub fn insert(&mut self, mut c: Contact) -> Result<Contact> {
        if self.by_email.get(c.email.as_str())?.is_some() {
            return Err(StoreError::DuplicateEmail(c.email));
        }
        c.id = next_seq(&mut self.seqs, "contact")?;
        c.seq = 0;
        self.bump(&mut c)?;
        self.by_email.insert(c.email.as_str(), c.id)?;
        for m in &c.lists {
            self.members
                .insert((m.list_id, c.id), status_code(m.status))?;
        }
        self.contacts.insert(c.id, encode(&c).as_slice())?;
        self.out.push(ContactChange::Upsert(Box::new(c.clone())));
        Ok(c)
    }

    /// Replaces a stored contact (same id), keeping the email index and memberships in step.
    pub fn update(&mut self, mut c: Contact) -> Result<Contact> {
        let Some(old) = self.get(c.id)? else {
            return Err(StoreError::NotFound("contact"));
        };
        if old.email != c.email {
            if self.by_email.get(c.email.as_str())?.is_some() {
                return Err(StoreError::DuplicateEmail(c.email));
            }
            self.by_email.remove(old.email.as_str())?;
            self.by_email.insert(c.email.as_str(), c.id)?;
        }
        for m in &old.lists {
            self.members.remove((m.list_id, c.id))?;
        }
        for m in &c.lists {
            self.members
                .insert((m.list_id, c.id), status_code(m.status))?;
        }
        c.seq = old.seq;
        self.bump(&mut c)?;
        self.contacts.insert(c.id, encode(&c).as_slice())?;
        self.out.push(ContactChange::Upsert(Box::new(c.clone())));
        Ok(c)
    }

    pub fn delete(&mut self, id: Id) -> Result<Option<Contact>> {
        let Some(old) = self.get(id)? else {
            return Ok(None);
        };
        self.by_email.remove(old.email.as_str())?;
        for m in &old.lists {
            self.members.remove((m.list_id, id))?;
        }
        self.contacts.remove(id)?;
        if old.seq != 0 {
            self.changes.remove(old.seq)?;
        }
        let seq = next_seq(&mut self.seqs, "contact_change")?;
        self.changes.insert(seq, id | TOMBSTONE)?;
        self.out.push(ContactChange::Delete { id, seq });
        Ok(Some(old))
    }

    /// Ids of the contacts that are members of a list (any status).
    pub fn member_ids(&self, list_id: Id) -> Result<Vec<Id>> {
        let mut ids = Vec::new();
        for row in self.members.range((list_id, 0)..=(list_id, u64::MAX))? {
            let (k, _) = row?;
            ids.push(k.value().1);
        }
        Ok(ids)
    }

    pub(crate) fn remove_list_record(&mut self, list_id: Id) -> Result<bool> {
        Ok(self.lists.remove(list_id)?.is_some())
    }
}

impl Store {
    /// Runs `f` over the contact tables in one write transaction and commits it durably.
    /// Returns `f`'s value and the changes for the search index, in sequence order.
    /// When `f` fails nothing is written.
    pub fn write_contacts<T, E>(
        &self,
        f: impl FnOnce(&mut ContactTx<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<(T, Vec<ContactChange>), E>
    where
        E: From<StoreError>,
    {
        let wtx = self.begin_write().map_err(StoreError::from)?;
        let (value, out) = {
            let mut tx = ContactTx {
                contacts: wtx.open_table(CONTACTS).map_err(StoreError::from)?,
                by_email: wtx.open_table(CONTACT_BY_EMAIL).map_err(StoreError::from)?,
                changes: wtx.open_table(CONTACT_CHANGES).map_err(StoreError::from)?,
                members: wtx.open_table(LIST_MEMBERS).map_err(StoreError::from)?,
                lists: wtx.open_table(LISTS).map_err(StoreError::from)?,
                seqs: wtx.open_table(SEQUENCES).map_err(StoreError::from)?,
                out: Vec::new(),
                wtx: &wtx,
            };
            let value = f(&mut tx)?;
            (value, std::mem::take(&mut tx.out))
        };
        wtx.commit().map_err(StoreError::from)?;
        Ok((value, out))
    }

    pub fn contact(&self, id: Id) -> Result<Option<Contact>> {
        let rtx = self.db().begin_read()?;
        get_json(&rtx.open_table(CONTACTS)?, "contacts", id)
    }

    /// Contacts by id, in the order given, skipping ids that no longer exist.
    pub fn contacts(&self, ids: &[Id]) -> Result<Vec<Contact>> {
        let rtx = self.db().begin_read()?;
        let t = rtx.open_table(CONTACTS)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(c) = get_json(&t, "contacts", *id)? {
                out.push(c);
            }
        }
        Ok(out)
    }

    pub fn contact_id_by_email(&self, email: &str) -> Result<Option<Id>> {
        let rtx = self.db().begin_read()?;
        Ok(rtx
            .open_table(CONTACT_BY_EMAIL)?
            .get(email)?
            .map(|v| v.value()))
    }

    /// The contact id of each address (normalised), in one snapshot.
    pub fn contact_ids_by_email(&self, emails: &[&str]) -> Result<Vec<Option<Id>>> {
        let rtx = self.db().begin_read()?;
        let t = rtx.open_table(CONTACT_BY_EMAIL)?;
        emails
            .iter()
            .map(|e| Ok(t.get(*e)?.map(|v| v.value())))
            .collect()
    }

    pub fn contact_count(&self) -> Result<u64> {
        let rtx = self.db().begin_read()?;
        Ok(rtx.open_table(CONTACTS)?.len()?)
    }

    pub fn list_member_count(&self, list_id: Id) -> Result<u64> {
        let rtx = self.db().begin_read()?;
        let t = rtx.open_table(LIST_MEMBERS)?;
        let mut n = 0;
        for row in t.range((list_id, 0)..=(list_id, u64::MAX))? {
            let (_, v) = row?;
            if v.value() != status_code(MembershipStatus::Unsubscribed) {
                n += 1;
            }
        }
        Ok(n)
    }

    /// The newest change sequence written.
    pub fn last_contact_change(&self) -> Result<u64> {
        let rtx = self.db().begin_read()?;
        let t = rtx.open_table(CONTACT_CHANGES)?;
        Ok(t.last()?.map(|(k, _)| k.value()).unwrap_or(0))
    }

    /// Visits the changes after `since`, in order, in batches: the search index's catch-up.
    /// Deleted contacts come as [`ContactChange::Delete`].
    pub fn contact_changes_since(
        &self,
        since: u64,
        batch: usize,
        mut f: impl FnMut(Vec<ContactChange>) -> Result<(), StoreError>,
    ) -> Result<u64> {
        let rtx = self.db().begin_read()?;
        let changes = rtx.open_table(CONTACT_CHANGES)?;
        let contacts = rtx.open_table(CONTACTS)?;
        let mut buf = Vec::with_capacity(batch);
        let mut n = 0;
        for row in changes.range(since.saturating_add(1)..)? {
            let (k, v) = row?;
            let (seq, id) = (k.value(), v.value());
            if id & TOMBSTONE != 0 {
                buf.push(ContactChange::Delete {
                    id: id & !TOMBSTONE,
                    seq,
                });
            } else if let Some(bytes) = contacts.get(id)? {
                let c: Contact = decode("contacts", bytes.value())?;
                buf.push(ContactChange::Upsert(Box::new(c)));
            }
            n += 1;
            if buf.len() >= batch {
                f(std::mem::take(&mut buf))?;
            }
        }
        if !buf.is_empty() {
            f(buf)?;
        }
        Ok(n)
    }

    /// Drops deletion markers the search index has already applied.
    pub fn prune_tombstones(&self, upto: u64) -> Result<u64> {
        let wtx = self.begin_write()?;
        let mut n = 0;
        {
            let mut changes = wtx.open_table(CONTACT_CHANGES)?;
            let dead: Vec<u64> = changes
                .range(..=upto)?
                .filter_map(|r| r.ok())
                .filter(|(_, v)| v.value() & TOMBSTONE != 0)
                .map(|(k, _)| k.value())
                .collect();
            for k in dead {
                changes.remove(k)?;
                n += 1;
            }
            if n > 0 {
                // followers of the change log (the segment cache) rebuild when they are behind this
                let mut meta = wtx.open_table(super::META)?;
                meta.insert(
                    super::segments::TOMBSTONES_PRUNED,
                    upto.to_le_bytes().as_slice(),
                )?;
            }
        }
        wtx.commit()?;
        Ok(n)
    }
}
