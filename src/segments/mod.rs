//! Saved segments: a filter language over contacts, evaluated over an in-memory row cache,
//! and the named filters people save as campaign audiences. Knows nothing of HTTP; reads and
//! counts are scoped by [`crate::policy`].
//!
//! # The filter language
//!
//! ```text
//! tag = "certified" and attributes.country = "DE" and not clicked_within(90d)
//! (list = 3 or subscribed(4)) and consent("marketing") and created_at >= 2026-01-01
//! ```
//!
//! - **Combinators**: `and` binds tighter than `or`; `not` negates what follows; parentheses
//!   group. Keywords are case-insensitive. The empty filter matches every contact.
//! - **Values**: text in `"double"` or `'single'` quotes (escapes `\" \' \\ \n \t`), numbers
//!   (`42`, `-1.5`), `true`/`false`, dates (`2026-01-01`, a whole UTC day, or RFC 3339
//!   `2026-01-01T09:00:00Z`), durations (`12h`, `90d`, `2w`, `1y`), lists `[v, v, …]`.
//! - **Text fields** `email`, `email_domain`, `first_name`, `last_name`, `company`, `phone`:
//!   `=`, `!=`, `in [..]`, `not in [..]`, `contains`, `starts_with`, `exists` (not empty). Text
//!   compares case-insensitively.
//! - `owner = 7`, `owner in [7, 8]`, `owner exists` (user ids).
//! - `created_at`, `updated_at` with `= != < <= > >=` and a date (`created_at = 2026-01-01` is
//!   that day); `created_within(30d)`, `updated_within(12h)`.
//! - `tag = "x"` (has the tag), `tag != "x"`, `tag in ["a", "b"]` (has one of them),
//!   `tag contains "cert"`, `tag exists` (has any tag).
//! - `attributes.KEY` (also `attr.KEY`; the key is case-insensitive) with `= != < <= > >=`
//!   against text, numbers or `true`/`false`, `in`, `contains`, `starts_with`, `exists`.
//!   Numbers stored as text compare as numbers with numbers; text compares in code-point order.
//! - **Lists**: `list = 3` (on the list: subscribed or pending), `list in [3, 4]`,
//!   `subscribed(3)` (confirmed), `pending(3)`, `unsubscribed(3)`,
//!   `list_status(3) = "pending"` (`"subscribed"`, `"pending"`, `"unsubscribed"`; also `in`).
//! - **Consent**: `consent("marketing")` — the latest consent record for that purpose is a
//!   grant, not a withdrawal.
//! - **Engagement** with campaign mail: `sent_within(7d)`, `opened_within(90d)`,
//!   `clicked_within(30d)`, `never_opened`, `never_clicked`, `never_sent`.
//! - **CRM**: `certification_expires_within(60d)` (a certification expiring between today and
//!   then: renewals), `certified("ITIL")` (an unexpired certification whose name contains the
//!   text), `lead_score >= 50` (the best score of the leads converted into the contact or with
//!   its address; contacts without a lead have none and match no comparison). These are read
//!   from the store when a filter names them (`facts.rs`), not kept in the row cache.
//!
//! Errors ([`FilterError`]) name their kind (syntax, unknown field or function with the closest
//! known name, wrong value type, bad duration or date) and where: line, column and an excerpt
//! with a caret.
//!
//! # Evaluation
//!
//! [`lang::parse`] gives a typed AST; `eval::compile` resolves it against the row cache
//! (`cache.rs`: ~72 bytes of fixed row per contact plus its tags, attributes, memberships and
//! consents as interned ids). The cache is built from one store snapshot at first use and,
//! before every evaluation, catches up with the contact change log (`CONTACT_CHANGES`, the log
//! the search index follows) and the engagement change log, so counts are never stale.

mod cache;
mod eval;
mod facts;
pub mod lang;

pub use cache::CacheStats;
pub use lang::{Expr, FilterError, FilterErrorKind};

use crate::audit::{Changes, Entry, record};
use crate::model::{AuditAction, Contact, Id, Segment, now};
use crate::policy::{Action, Actor, Denied, Scope};
use crate::store::{self, Store, StoreError};
use cache::Cache;
use std::sync::{Arc, RwLock};

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("invalid filter: {0}")]
    Filter(#[from] FilterError),
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("segment not found")]
    NotFound,
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Store(StoreError),
    #[error("the segment cache lock is poisoned")]
    Poisoned,
}

impl From<StoreError> for SegmentError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => SegmentError::NotFound,
            other => SegmentError::Store(other),
        }
    }
}

pub type Result<T, E = SegmentError> = std::result::Result<T, E>;

/// The most contacts a preview returns.
pub const MAX_PREVIEW: usize = 100;
const MAX_NAME: usize = 100;

/// A count with the newest matching contacts.
#[derive(Debug, Clone)]
pub struct Preview {
    pub count: u64,
    pub contacts: Vec<Contact>,
}

/// Fields of a segment to create or change; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct SegmentInput {
    pub name: Option<String>,
    pub filter: Option<String>,
}

fn clean_name(name: &str) -> Result<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > MAX_NAME || n.chars().any(char::is_control) {
        return Err(SegmentError::Invalid {
            field: "name",
            message: format!("a segment name is 1 to {MAX_NAME} characters without line breaks"),
        });
    }
    Ok(n.to_string())
}

/// Parses a filter (no store needed).
pub fn parse(filter: &str) -> Result<Expr, FilterError> {
    lang::parse(filter)
}

pub struct Segments {
    store: Arc<Store>,
    cache: RwLock<Option<Cache>>,
}

impl std::fmt::Debug for Segments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segments").finish_non_exhaustive()
    }
}

impl Segments {
    /// The cache is built at first use, not here.
    pub fn new(store: Arc<Store>) -> Segments {
        Segments {
            store,
            cache: RwLock::new(None),
        }
    }

    /// Runs `f` over the cache brought up to date with the store.
    fn with_cache<T>(&self, f: impl FnOnce(&Cache) -> T) -> Result<T> {
        let heads = self.store.segment_heads()?;
        {
            let g = self.cache.read().map_err(|_| SegmentError::Poisoned)?;
            if let Some(c) = g.as_ref()
                && c.heads.contacts >= heads.contacts
                && c.heads.engagement >= heads.engagement
                && heads.pruned <= c.heads.contacts
            {
                return Ok(f(c));
            }
        }
        let mut g = self.cache.write().map_err(|_| SegmentError::Poisoned)?;
        // deletion markers pruned past the cache's position may hide deletions: rebuild
        if g.as_ref().is_some_and(|c| heads.pruned > c.heads.contacts) {
            *g = None;
        }
        match g.as_mut() {
            Some(c) => c.catch_up(&self.store)?,
            None => {
                let started = std::time::Instant::now();
                let c = Cache::build(&self.store)?;
                let s = c.stats();
                tracing::info!(
                    contacts = s.contacts,
                    bytes = s.bytes,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "segment cache built"
                );
                *g = Some(c);
            }
        }
        match g.as_ref() {
            Some(c) => Ok(f(c)),
            None => Err(SegmentError::Poisoned),
        }
    }

    /// Builds (or catches up) the row cache; returns its size.
    pub fn warm(&self) -> Result<CacheStats> {
        self.with_cache(Cache::stats)
    }

    /// Checks a filter; the error says where it is wrong.
    pub fn validate(&self, filter: &str) -> Result<Expr> {
        Ok(lang::parse(filter)?)
    }

    fn evaluate(&self, e: &Expr, scope: Scope, first: usize) -> Result<(u64, Vec<Id>)> {
        let now = now();
        let facts = facts::Facts::load(&self.store, e, now)?;
        let now = now.unix_timestamp();
        self.with_cache(|c| {
            let node = eval::compile(e, c, &facts, now);
            eval::count(c, &node, scope, first)
        })
    }

    /// How many contacts the actor may see match `filter`.
    pub fn count(&self, actor: &Actor, filter: &str) -> Result<u64> {
        let e = lang::parse(filter)?;
        Ok(self.evaluate(&e, actor.contact_scope(), 0)?.0)
    }

    /// The count and the newest `limit` (at most [`MAX_PREVIEW`]) matching contacts the actor
    /// may see.
    pub fn preview(&self, actor: &Actor, filter: &str, limit: usize) -> Result<Preview> {
        let e = lang::parse(filter)?;
        let (count, ids) = self.evaluate(&e, actor.contact_scope(), limit.min(MAX_PREVIEW))?;
        let contacts = self
            .store
            .contacts(&ids)?
            .into_iter()
            .filter(|c| actor.check_contact(c, Action::Read).is_ok())
            .collect();
        Ok(Preview { count, contacts })
    }

    /// Every contact matching `filter`, ascending by id, whoever owns it: for sending a
    /// campaign (system use; callers check the actor's right to send first).
    pub fn members(&self, filter: &str) -> Result<Vec<Id>> {
        let e = lang::parse(filter)?;
        self.members_of_expr(&e)
    }

    pub fn members_of_expr(&self, e: &Expr) -> Result<Vec<Id>> {
        let now = now();
        let facts = facts::Facts::load(&self.store, e, now)?;
        let now = now.unix_timestamp();
        self.with_cache(|c| eval::members(c, &eval::compile(e, c, &facts, now)))
    }

    /// The members of a saved segment (system use, as [`Segments::members`]).
    pub fn segment_members(&self, id: Id) -> Result<Vec<Id>> {
        let s = self.store.segment(id)?.ok_or(SegmentError::NotFound)?;
        self.members(&s.filter)
    }

    // saved segments

    pub fn list(&self, actor: &Actor) -> Result<Vec<Segment>> {
        actor.check_segments(Action::Read)?;
        Ok(self.store.segments()?)
    }

    pub fn get(&self, actor: &Actor, id: Id) -> Result<Segment> {
        actor.check_segments(Action::Read)?;
        self.store.segment(id)?.ok_or(SegmentError::NotFound)
    }

    /// A saved segment and how many contacts the actor may see match it now.
    pub fn count_saved(&self, actor: &Actor, id: Id) -> Result<(Segment, u64)> {
        let s = self.get(actor, id)?;
        let n = self.count(actor, &s.filter)?;
        Ok((s, n))
    }

    pub fn create(&self, actor: &Actor, input: &SegmentInput) -> Result<Segment> {
        actor.check_segments(Action::Create)?;
        let name = clean_name(input.name.as_deref().unwrap_or_default())?;
        let filter = input.filter.clone().unwrap_or_default();
        lang::parse(&filter)?;
        let at = now();
        let seg = Segment {
            id: 0,
            name,
            filter,
            created_by: actor.default_owner(),
            created_at: at,
            updated_at: at,
        };
        self.store.write(|wtx| -> Result<Segment> {
            let s = store::create_segment_in(wtx, seg)?;
            Entry::new(actor, AuditAction::Create, record("segment", s.id))
                .changes(Changes::of(None, Some(&s)))
                .append(wtx)?;
            Ok(s)
        })
    }

    pub fn update(&self, actor: &Actor, id: Id, input: &SegmentInput) -> Result<Segment> {
        actor.check_segments(Action::Update)?;
        let name = input.name.as_deref().map(clean_name).transpose()?;
        if let Some(f) = &input.filter {
            lang::parse(f)?;
        }
        self.store.write(|wtx| -> Result<Segment> {
            let mut s = store::segment_in(wtx, id)?.ok_or(SegmentError::NotFound)?;
            let before = s.clone();
            if let Some(n) = name {
                s.name = n;
            }
            if let Some(f) = &input.filter {
                s.filter = f.clone();
            }
            if s == before {
                return Ok(s);
            }
            s.updated_at = now();
            store::update_segment_in(wtx, &s)?;
            Entry::new(actor, AuditAction::Update, record("segment", id))
                .changes(Changes::of(Some(&before), Some(&s)))
                .append(wtx)?;
            Ok(s)
        })
    }

    pub fn delete(&self, actor: &Actor, id: Id) -> Result<()> {
        actor.check_segments(Action::Delete)?;
        self.store.write(|wtx| -> Result<()> {
            let old = store::delete_segment_in(wtx, id)?;
            Entry::new(actor, AuditAction::Delete, record("segment", id))
                .changes(Changes::of(Some(&old), None))
                .append(wtx)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests;

/// Campaign audiences by saved segment.
impl crate::campaigns::SegmentResolver for Segments {
    fn members(&self, segment: Id) -> std::result::Result<Option<Vec<Id>>, String> {
        match self.segment_members(segment) {
            Ok(ids) => Ok(Some(ids)),
            Err(SegmentError::NotFound) => Ok(None),
            Err(e) => Err(format!("segment {segment}: {e}")),
        }
    }
}
