//! The in-memory row cache segments are evaluated over: one compact fixed-size row per contact
//! (interned strings, times as u32 seconds) plus two shared arenas for the variable parts
//! (email local part and phone; tags, attributes, memberships and active consents). Rows are
//! sorted by contact id (ids only grow), so a contact is found by binary search without a map.
//! Built from one store snapshot, then kept current from the contact and engagement change
//! logs before each evaluation.

use crate::model::{Contact, Engagement, Id, MembershipStatus};
use crate::store::{SegmentHeads, Store, StoreError};
use std::collections::HashMap;
use std::sync::Arc;
use time::OffsetDateTime;

/// Strings of one kind (first names, companies, tags, …), each stored once, lower-cased.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    map: HashMap<Arc<str>, u32>,
    strs: Vec<Arc<str>>,
}

impl Interner {
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(id) = self.map.get(s) {
            return *id;
        }
        let id = u32::try_from(self.strs.len()).unwrap_or(u32::MAX);
        let a: Arc<str> = Arc::from(s);
        self.strs.push(a.clone());
        self.map.insert(a, id);
        id
    }

    pub fn get(&self, s: &str) -> Option<u32> {
        self.map.get(s).copied()
    }

    pub fn strs(&self) -> &[Arc<str>] {
        &self.strs
    }

    fn bytes(&self) -> usize {
        self.strs
            .iter()
            .map(|s| s.len() + 16 + 8 + 16)
            .sum::<usize>()
    }
}

/// An attribute value, interned: strings lower-cased; other JSON (arrays, objects) as text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AttrVal {
    Str(Arc<str>),
    Num(f64),
    Bool(bool),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum AttrKey {
    Str(Arc<str>),
    Num(u64),
    Bool(bool),
}

#[derive(Debug, Default)]
pub(crate) struct Values {
    map: HashMap<AttrKey, u32>,
    vals: Vec<AttrVal>,
}

impl Values {
    fn intern(&mut self, v: &serde_json::Value) -> Option<u32> {
        let (key, val) = match v {
            serde_json::Value::Null => return None,
            serde_json::Value::Bool(b) => (AttrKey::Bool(*b), AttrVal::Bool(*b)),
            serde_json::Value::Number(n) => {
                let f = n.as_f64().unwrap_or(0.0);
                (AttrKey::Num(f.to_bits()), AttrVal::Num(f))
            }
            serde_json::Value::String(s) => {
                let a: Arc<str> = Arc::from(s.to_lowercase());
                (AttrKey::Str(a.clone()), AttrVal::Str(a))
            }
            other => {
                let a: Arc<str> = Arc::from(other.to_string().to_lowercase());
                (AttrKey::Str(a.clone()), AttrVal::Str(a))
            }
        };
        if let Some(id) = self.map.get(&key) {
            return Some(*id);
        }
        let id = u32::try_from(self.vals.len()).unwrap_or(u32::MAX);
        self.vals.push(val);
        self.map.insert(key, id);
        Some(id)
    }

    pub fn vals(&self) -> &[AttrVal] {
        &self.vals
    }
}

/// One contact, 72 bytes; variable parts live in the arenas.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Row {
    pub id: Id,
    /// Owner user id, 0 when none.
    pub owner: u32,
    pub created: u32,
    pub updated: u32,
    pub domain: u32,
    pub first: u32,
    pub last: u32,
    pub company: u32,
    /// Offset in the text arena: the email's local part, then the phone.
    pub text: u32,
    pub local_len: u16,
    pub phone_len: u16,
    /// Offset in the aux arena: tags, then (key, value) pairs, then memberships
    /// (`list << 2 | status`), then active consent purposes.
    pub aux: u32,
    pub n_tags: u16,
    pub n_attrs: u16,
    pub n_lists: u16,
    pub n_consents: u16,
    /// Unix seconds, 0 for never.
    pub last_sent: u32,
    pub last_open: u32,
    pub last_click: u32,
    pub dead: bool,
}

pub(crate) fn status_code(s: MembershipStatus) -> u32 {
    match s {
        MembershipStatus::Unconfirmed => 0,
        MembershipStatus::Confirmed => 1,
        MembershipStatus::Unsubscribed => 2,
    }
}

pub(crate) fn secs(t: OffsetDateTime) -> u32 {
    u32::try_from(t.unix_timestamp().max(0)).unwrap_or(u32::MAX)
}

fn opt_secs(t: Option<OffsetDateTime>) -> u32 {
    t.map(secs).unwrap_or(0)
}

/// Memory and size figures, for the benchmark and logs.
#[derive(Debug, Clone, Copy)]
pub struct CacheStats {
    pub contacts: usize,
    pub bytes: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Cache {
    pub rows: Vec<Row>,
    pub text: Vec<u8>,
    pub aux: Vec<u32>,
    pub domains: Interner,
    pub firsts: Interner,
    pub lasts: Interner,
    pub companies: Interner,
    pub tags: Interner,
    pub keys: Interner,
    pub values: Values,
    pub purposes: Interner,
    pub heads: SegmentHeads,
    dead: usize,
    garbage: usize,
}

impl Cache {
    /// Builds the cache from one store snapshot.
    pub fn build(store: &Store) -> Result<Cache, StoreError> {
        let mut c = Cache::default();
        let mut engagement = Vec::new();
        let heads = store.segment_snapshot(
            |contact| {
                let row = c.row(&contact, None);
                c.rows.push(row);
            },
            |id, e| engagement.push((id, e)),
        )?;
        c.heads = heads;
        // CONTACTS iterates in id order, so the rows are sorted already
        for (id, e) in engagement {
            c.set_engagement(id, &e);
        }
        c.rows.shrink_to_fit();
        c.text.shrink_to_fit();
        c.aux.shrink_to_fit();
        Ok(c)
    }

    /// Applies what changed since the cache's heads.
    pub fn catch_up(&mut self, store: &Store) -> Result<(), StoreError> {
        let mut fresh: Vec<Row> = Vec::new();
        let mut engagement = Vec::new();
        let since = self.heads;
        let heads = store.segment_changes_since(
            since,
            |ch| self.apply(ch, &mut fresh),
            |id, e| engagement.push((id, e)),
        )?;
        if !fresh.is_empty() {
            let sorted = self
                .rows
                .last()
                .is_none_or(|l| fresh.first().is_some_and(|f| f.id > l.id))
                && fresh.windows(2).all(|w| w[0].id < w[1].id);
            self.rows.extend(fresh);
            if !sorted {
                self.rows.sort_by_key(|r| r.id);
            }
        }
        for (id, e) in engagement {
            self.set_engagement(id, &e);
        }
        self.heads = heads;
        self.compact_if_worth_it();
        Ok(())
    }

    /// One contact change: rows of known contacts are replaced (or marked dead) in place;
    /// rows of new contacts go to `fresh`, to be merged in id order.
    fn apply(
        &mut self,
        change: std::result::Result<(Contact, Option<Engagement>), Id>,
        fresh: &mut Vec<Row>,
    ) {
        match change {
            Ok((contact, e)) => {
                let row = self.row(&contact, e.as_ref());
                match self.find(contact.id) {
                    Some(i) => {
                        let old = self.rows[i];
                        self.garbage += garbage_of(&old);
                        if old.dead {
                            self.dead -= 1;
                        }
                        self.rows[i] = row;
                    }
                    None => fresh.push(row),
                }
            }
            Err(id) => {
                if let Some(i) = self.find(id)
                    && !self.rows[i].dead
                {
                    self.garbage += garbage_of(&self.rows[i]);
                    self.rows[i].dead = true;
                    self.dead += 1;
                }
            }
        }
    }

    fn find(&self, id: Id) -> Option<usize> {
        self.rows.binary_search_by_key(&id, |r| r.id).ok()
    }

    fn set_engagement(&mut self, id: Id, e: &Engagement) {
        if let Some(i) = self.find(id) {
            let r = &mut self.rows[i];
            r.last_sent = opt_secs(e.last_sent);
            r.last_open = opt_secs(e.last_open);
            r.last_click = opt_secs(e.last_click);
        }
    }

    /// A row for `c`, its variable parts appended to the arenas.
    fn row(&mut self, c: &Contact, e: Option<&Engagement>) -> Row {
        let email = c.email.to_lowercase();
        let (local, domain) = email.rsplit_once('@').unwrap_or((email.as_str(), ""));
        let phone = c.phone.to_lowercase();
        let mut row = Row {
            id: c.id,
            owner: c
                .owner_id
                .map(|o| u32::try_from(o).unwrap_or(u32::MAX))
                .unwrap_or(0),
            created: secs(c.created_at),
            updated: secs(c.updated_at),
            domain: self.domains.intern(domain),
            first: self.firsts.intern(&c.first_name.to_lowercase()),
            last: self.lasts.intern(&c.last_name.to_lowercase()),
            company: self.companies.intern(&c.company.to_lowercase()),
            text: u32::try_from(self.text.len()).unwrap_or(u32::MAX),
            local_len: u16::try_from(local.len()).unwrap_or(u16::MAX),
            phone_len: u16::try_from(phone.len()).unwrap_or(u16::MAX),
            aux: u32::try_from(self.aux.len()).unwrap_or(u32::MAX),
            ..Row::default()
        };
        self.text
            .extend_from_slice(&local.as_bytes()[..usize::from(row.local_len)]);
        self.text
            .extend_from_slice(&phone.as_bytes()[..usize::from(row.phone_len)]);
        let n = |len: usize| u16::try_from(len).unwrap_or(u16::MAX);
        let tags: Vec<u32> = c
            .tags
            .iter()
            .take(usize::from(u16::MAX))
            .map(|t| self.tags.intern(&t.to_lowercase()))
            .collect();
        row.n_tags = n(tags.len());
        self.aux.extend(tags);
        let mut attrs = 0;
        for (k, v) in c.attributes.iter().take(usize::from(u16::MAX)) {
            if let Some(val) = self.values.intern(v) {
                let key = self.keys.intern(&k.to_lowercase());
                self.aux.push(key);
                self.aux.push(val);
                attrs += 1;
            }
        }
        row.n_attrs = n(attrs);
        let lists: Vec<u32> = c
            .lists
            .iter()
            .take(usize::from(u16::MAX))
            .filter_map(|m| {
                let list = u32::try_from(m.list_id).ok().filter(|l| *l < 1 << 30)?;
                Some(list << 2 | status_code(m.status))
            })
            .collect();
        row.n_lists = n(lists.len());
        self.aux.extend(lists);
        // a purpose is active when its latest record (by time, then position) is a grant
        let mut latest: Vec<(String, OffsetDateTime, bool)> = Vec::new();
        for consent in &c.consents {
            let p = consent.purpose.to_lowercase();
            match latest.iter_mut().find(|(q, ..)| *q == p) {
                Some(entry) if consent.at >= entry.1 => {
                    entry.1 = consent.at;
                    entry.2 = !consent.withdrawn;
                }
                Some(_) => {}
                None => latest.push((p, consent.at, !consent.withdrawn)),
            }
        }
        let mut consents = 0;
        for (p, _, active) in latest.into_iter().take(usize::from(u16::MAX)) {
            if active {
                let id = self.purposes.intern(&p);
                self.aux.push(id);
                consents += 1;
            }
        }
        row.n_consents = n(consents);
        if let Some(e) = e {
            row.last_sent = opt_secs(e.last_sent);
            row.last_open = opt_secs(e.last_open);
            row.last_click = opt_secs(e.last_click);
        }
        row
    }

    /// Drops deleted rows and unreferenced arena space once they are the larger part.
    fn compact_if_worth_it(&mut self) {
        let rows_worth = self.dead > 1024 && self.dead * 4 > self.rows.len();
        let arena_worth =
            self.garbage > 1 << 20 && self.garbage * 2 > self.aux.len() + self.text.len();
        if !rows_worth && !arena_worth {
            return;
        }
        self.rows.retain(|r| !r.dead);
        let mut text = Vec::with_capacity(self.text.len().saturating_sub(self.garbage));
        let mut aux = Vec::with_capacity(self.aux.len());
        for r in &mut self.rows {
            let t = r.text as usize;
            let tl = usize::from(r.local_len) + usize::from(r.phone_len);
            let new_t = u32::try_from(text.len()).unwrap_or(u32::MAX);
            text.extend_from_slice(&self.text[t..t + tl]);
            r.text = new_t;
            let a = r.aux as usize;
            let new_a = u32::try_from(aux.len()).unwrap_or(u32::MAX);
            aux.extend_from_slice(&self.aux[a..a + aux_len(r)]);
            r.aux = new_a;
        }
        self.text = text;
        self.aux = aux;
        self.dead = 0;
        self.garbage = 0;
    }

    pub fn stats(&self) -> CacheStats {
        let live = self.rows.len() - self.dead;
        let bytes = self.rows.capacity() * std::mem::size_of::<Row>()
            + self.text.capacity()
            + self.aux.capacity() * 4
            + self.domains.bytes()
            + self.firsts.bytes()
            + self.lasts.bytes()
            + self.companies.bytes()
            + self.tags.bytes()
            + self.keys.bytes()
            + self.purposes.bytes()
            + self.values.vals.len() * (24 + 24 + 16);
        CacheStats {
            contacts: live,
            bytes,
        }
    }

    // accessors for the evaluator

    pub fn local<'a>(&'a self, r: &Row) -> &'a [u8] {
        let t = r.text as usize;
        &self.text[t..t + usize::from(r.local_len)]
    }

    pub fn phone<'a>(&'a self, r: &Row) -> &'a [u8] {
        let t = r.text as usize + usize::from(r.local_len);
        &self.text[t..t + usize::from(r.phone_len)]
    }

    pub fn tags_of<'a>(&'a self, r: &Row) -> &'a [u32] {
        let a = r.aux as usize;
        &self.aux[a..a + usize::from(r.n_tags)]
    }

    pub fn attrs_of<'a>(&'a self, r: &Row) -> &'a [u32] {
        let a = r.aux as usize + usize::from(r.n_tags);
        &self.aux[a..a + 2 * usize::from(r.n_attrs)]
    }

    pub fn lists_of<'a>(&'a self, r: &Row) -> &'a [u32] {
        let a = r.aux as usize + usize::from(r.n_tags) + 2 * usize::from(r.n_attrs);
        &self.aux[a..a + usize::from(r.n_lists)]
    }

    pub fn consents_of<'a>(&'a self, r: &Row) -> &'a [u32] {
        let a = r.aux as usize
            + usize::from(r.n_tags)
            + 2 * usize::from(r.n_attrs)
            + usize::from(r.n_lists);
        &self.aux[a..a + usize::from(r.n_consents)]
    }
}

fn garbage_of(r: &Row) -> usize {
    aux_len(r) + usize::from(r.local_len) + usize::from(r.phone_len)
}

fn aux_len(r: &Row) -> usize {
    usize::from(r.n_tags)
        + 2 * usize::from(r.n_attrs)
        + usize::from(r.n_lists)
        + usize::from(r.n_consents)
}
