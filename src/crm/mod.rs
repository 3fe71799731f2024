//! The CRM as the domain sees it: leads, accounts, opportunities, activities and training
//! records; validation with typed errors, row-level access through [`crate::policy`], every
//! change in one store transaction with its audit entry, lists answered from the store's
//! secondary indexes, lead conversion (contact, account and opportunity in one transaction),
//! the pipeline board and per-record timelines. Nothing here knows about HTTP.
//! Blocking code: callers on the async runtime use `spawn_blocking`.

mod export;
mod import;
pub mod model;
pub mod money;
pub mod personal;
pub mod scoring;

pub use export::Exported;
pub use import::{ImportReport, Imported};

use crate::audit::{Changes, Entry, record};
use crate::contacts::{ContactError, Contacts, clean_text, decode_cursor, encode_cursor};
use crate::model::{AuditAction, AuditEntry, Consent, EventType, Id, now};
use crate::policy::{Action, Actor, CrmScope, Denied};
use crate::search::{ParsedQuery, Scope};
use crate::store::crm::{CrmRecord, CrmTx, IdQuery, Term, owner_index, words};
use crate::store::{Store, StoreError};
use model::{
    Account, Activity, ActivityKind, Address, Certification, Enrolment, EnrolmentStatus, Kind,
    Lead, LeadStatus, Opportunity, Stage,
};
use serde::{Deserialize, Deserializer, Serialize};
use std::sync::{Arc, RwLock};
use time::OffsetDateTime;

#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with the record's state (a converted lead, a stage in use).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Contact(ContactError),
    /// A data-subject request on a lead (export, erasure).
    #[error(transparent)]
    Gdpr(#[from] crate::gdpr::GdprError),
    /// A failure injected by a test (debug builds only) to prove a write is atomic.
    #[error("injected failure after step '{0}'")]
    Injected(String),
}

impl From<StoreError> for CrmError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => CrmError::NotFound(what),
            other => CrmError::Store(other),
        }
    }
}

impl From<ContactError> for CrmError {
    fn from(e: ContactError) -> Self {
        match e {
            ContactError::Invalid { field, message } => CrmError::Invalid { field, message },
            ContactError::NotFound(what) => CrmError::NotFound(what),
            ContactError::Denied(d) => CrmError::Denied(d),
            other => CrmError::Contact(other),
        }
    }
}

pub type Result<T, E = CrmError> = std::result::Result<T, E>;

fn invalid(field: &'static str, message: impl Into<String>) -> CrmError {
    CrmError::Invalid {
        field,
        message: message.into(),
    }
}

/// Write denials on invisible records look like missing records.
fn hide(kind: Kind) -> impl Fn(Denied) -> CrmError {
    move |d| match d {
        Denied::NotVisible => CrmError::NotFound(kind.as_str()),
        other => CrmError::Denied(other),
    }
}

/// The test-only fault injection point of lead conversion:
/// `MAILSTEAD_TEST_FAIL_CONVERT_AFTER=<step>` in the server's environment makes conversion
/// fail after that step (`contact`, `account`, `opportunity`, `activities`, `lead`), inside its
/// transaction, so tests can show that nothing of it is written. It is honoured in release
/// builds too because the integration tests run against the release binary; only whoever
/// sets the server's environment can set it, and each injected failure is logged.
fn fail_point(step: &str) -> Result<()> {
    if std::env::var("MAILSTEAD_TEST_FAIL_CONVERT_AFTER").is_ok_and(|v| v == step) {
        tracing::warn!(
            step,
            "MAILSTEAD_TEST_FAIL_CONVERT_AFTER: failing lead conversion"
        );
        return Err(CrmError::Injected(step.to_string()));
    }
    Ok(())
}

fn text(field: &'static str, v: &Option<String>, into: &mut String) -> Result<()> {
    if let Some(v) = v {
        *into = clean_text(field, v)?;
    }
    Ok(())
}

fn long_text(field: &'static str, v: &str) -> Result<String> {
    if v.chars().count() > 10_000 {
        return Err(invalid(
            field,
            format!("{field} is longer than 10000 characters"),
        ));
    }
    Ok(v.trim().to_string())
}

/// Checks a `YYYY-MM-DD` date.
pub fn parse_date(field: &'static str, v: &str) -> Result<String> {
    let v = v.trim();
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(v, &fmt)
        .map(|_| v.to_string())
        .map_err(|_| {
            invalid(
                field,
                format!(
                    "{field} '{}' is not a date of the form YYYY-MM-DD",
                    v.escape_default()
                ),
            )
        })
}

fn today() -> time::Date {
    now().date()
}

fn date_string(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Free-mail domains never identify a company: conversion does not match accounts by them.
const FREE_MAIL: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "hotmail.com",
    "outlook.com",
    "live.com",
    "icloud.com",
    "me.com",
    "aol.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "proton.me",
    "protonmail.com",
    "mail.com",
    "yandex.ru",
    "qq.com",
];

fn company_domain(email: &str) -> Option<String> {
    let d = email.rsplit_once('@')?.1.to_ascii_lowercase();
    (!FREE_MAIL.contains(&d.as_str())).then_some(d)
}

fn clean_domain(v: &str) -> Result<String> {
    let d = v.trim().trim_end_matches('.').to_ascii_lowercase();
    if d.is_empty() {
        return Ok(d);
    }
    let ok = d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(d)
    } else {
        Err(invalid(
            "domain",
            format!(
                "'{}' is not a domain name such as example.com",
                v.escape_default()
            ),
        ))
    }
}

// ---- inputs: fields to create or change; `None` leaves a field as it is ----

/// `"field": null` is `Some(None)` (clear it); a missing field is `None` (leave it).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// An amount given as a JSON string or number, kept as text for exact decimal parsing (any
/// other JSON value is kept as its text and refused by the validation with a clear message).
fn amount_text<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    Ok(
        Option::<serde_json::Value>::deserialize(d)?.map(|v| match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        }),
    )
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentInput {
    pub purpose: String,
    #[serde(default)]
    pub source: String,
    pub wording: Option<String>,
}

/// A lead to create, or the fields to change (`PATCH` semantics: a missing field is kept).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadInput {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub job_title: Option<String>,
    pub company: Option<String>,
    pub website: Option<String>,
    pub industry: Option<String>,
    pub company_size: Option<String>,
    pub country: Option<String>,
    pub source: Option<String>,
    /// new, contacted, qualified, disqualified (converted: only by conversion).
    pub status: Option<String>,
    pub score: Option<i64>,
    /// User id (null: unassigned).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u64>)]
    pub assigned_to: Option<Option<Id>>,
    /// A consent to record (appended, with time and client address).
    pub consent: Option<ConsentInput>,
}

/// An account to create, or the fields to change.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountInput {
    pub name: Option<String>,
    pub domain: Option<String>,
    pub industry: Option<String>,
    pub size: Option<String>,
    pub address: Option<Address>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u64>)]
    pub parent_id: Option<Option<Id>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u64>)]
    pub owner_id: Option<Option<Id>>,
}

/// An opportunity to create, or the fields to change.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpportunityInput {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u64>)]
    pub account_id: Option<Option<Id>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u64>)]
    pub contact_id: Option<Option<Id>>,
    pub programme: Option<String>,
    /// A non-negative decimal, as a string ("1250.00") or a number.
    #[serde(default, deserialize_with = "amount_text")]
    pub amount: Option<String>,
    /// ISO 4217 code (default EUR).
    pub currency: Option<String>,
    /// A stage of the pipeline's stage table.
    pub stage: Option<String>,
    /// `YYYY-MM-DD`, or null.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub expected_close: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u64>)]
    pub owner_id: Option<Option<Id>>,
    pub lost_reason: Option<String>,
}

/// An activity to create, or the fields to change.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityInput {
    /// call, meeting, email, note or task.
    pub kind: Option<String>,
    pub subject: Option<String>,
    pub body: Option<String>,
    /// `lead:ID`, `contact:ID`, `account:ID` or `opportunity:ID` (null: none).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub record: Option<Option<String>>,
    /// `YYYY-MM-DD` (tasks), or null.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub due: Option<Option<String>>,
    pub done: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u64>)]
    pub owner_id: Option<Option<Id>>,
}

/// Lead conversion's options; everything is optional.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConvertInput {
    #[serde(default)]
    pub create_opportunity: bool,
    #[serde(default)]
    pub opportunity: OpportunityInput,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Converted {
    pub contact_id: Id,
    pub account_id: Id,
    pub opportunity_id: Option<Id>,
}

/// List filters (the query string of the list and count routes); each is optional.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Leads: new, contacted, qualified, disqualified, converted.
    pub status: Option<String>,
    /// Opportunities: a stage name.
    pub stage: Option<String>,
    /// A user id, `me` or `none`.
    pub owner: Option<String>,
    /// Opportunities of an account; leads converted into it.
    pub account: Option<Id>,
    /// Opportunities with this primary contact; leads converted into it.
    pub contact: Option<Id>,
    /// Accounts: sub-accounts of this account.
    pub parent: Option<Id>,
    /// Activities: call, meeting, email, note, task.
    pub kind: Option<String>,
    /// Activities: of this record (`lead:5`).
    pub record: Option<String>,
    /// Activities: done (`true`) or open (`false`).
    pub done: Option<bool>,
    /// Activities: due on or before this date (YYYY-MM-DD); overdue ones included.
    pub due_before: Option<String>,
    /// Leads: a score of at least this.
    pub min_score: Option<i64>,
    /// Word prefixes of names, emails, companies, subjects.
    pub q: Option<String>,
    /// `-created` (default), `created`, `name`, `updated`; opportunities also `amount`,
    /// `close`; leads `score`; activities `due`. A leading `-` sorts descending.
    pub sort: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 25).
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
    pub total: u64,
}

/// Lists sorted by a field other than creation load every match: up to this many.
const MAX_SORTED: u64 = 20_000;

/// What the list code needs of each record kind.
pub trait Listed: CrmRecord + Clone {
    const KIND: Kind;
    fn owner(&self) -> Option<Id>;
    /// A comparable value for `sort=<field>`; `None` when the kind has no such field.
    fn sort_value(&self, field: &str) -> Option<String>;
    /// The index conditions of the kind's own list filters.
    fn filters(store: &Store, q: &ListQuery) -> Result<Vec<Vec<Term>>>;
}

fn key_term(k: String) -> Vec<Term> {
    vec![Term::Key(k)]
}

fn time_key(t: OffsetDateTime) -> String {
    format!("{:024}", t.unix_timestamp_nanos())
}

impl Listed for Lead {
    const KIND: Kind = Kind::Lead;
    fn filters(_: &Store, q: &ListQuery) -> Result<Vec<Vec<Term>>> {
        let mut g = Vec::new();
        if let Some(s) = &q.status {
            let s: LeadStatus = s.trim().parse().map_err(|m: String| invalid("status", m))?;
            g.push(key_term(format!("lead/status/{}", s.as_str())));
        }
        if let Some(a) = q.account {
            g.push(key_term(format!("lead/account/{a}")));
        }
        if let Some(c) = q.contact {
            g.push(key_term(format!("lead/contact/{c}")));
        }
        if let Some(m) = q.min_score {
            g.push(vec![Term::Range(
                crate::store::crm::score_key(m),
                crate::store::crm::score_key(i64::MAX),
            )]);
        }
        Ok(g)
    }
    fn owner(&self) -> Option<Id> {
        self.assigned_to
    }
    fn sort_value(&self, field: &str) -> Option<String> {
        match field {
            "name" => Some(format!("{} {}", self.last_name, self.first_name).to_lowercase()),
            "updated" => Some(time_key(self.updated_at)),
            "score" => Some(crate::store::crm::score_sort_value(self.score)),
            _ => None,
        }
    }
}

impl Listed for Account {
    const KIND: Kind = Kind::Account;
    fn filters(_: &Store, q: &ListQuery) -> Result<Vec<Vec<Term>>> {
        Ok(q.parent
            .map(|p| key_term(format!("account/parent/{p}")))
            .into_iter()
            .collect())
    }
    fn owner(&self) -> Option<Id> {
        self.owner_id
    }
    fn sort_value(&self, field: &str) -> Option<String> {
        match field {
            "name" => Some(self.name.to_lowercase()),
            "updated" => Some(time_key(self.updated_at)),
            _ => None,
        }
    }
}

impl Listed for Opportunity {
    const KIND: Kind = Kind::Opportunity;
    fn filters(store: &Store, q: &ListQuery) -> Result<Vec<Vec<Term>>> {
        let mut g = Vec::new();
        if let Some(s) = &q.stage {
            let stage = Crm::stage_of(&store.crm_stages()?, s)?;
            g.push(key_term(format!("opportunity/stage/{}", stage.name)));
        }
        if let Some(a) = q.account {
            g.push(key_term(format!("opportunity/account/{a}")));
        }
        if let Some(c) = q.contact {
            g.push(key_term(format!("opportunity/contact/{c}")));
        }
        Ok(g)
    }
    fn owner(&self) -> Option<Id> {
        self.owner_id
    }
    fn sort_value(&self, field: &str) -> Option<String> {
        match field {
            "name" => Some(self.name.to_lowercase()),
            "updated" => Some(time_key(self.updated_at)),
            "close" => Some(self.expected_close.clone().unwrap_or_default()),
            "amount" => {
                let d = money::digits(&self.currency).unwrap_or(2);
                let m = self
                    .amount
                    .as_deref()
                    .and_then(|a| money::parse_minor(a, d).ok());
                Some(format!("{:020}", m.unwrap_or(0)))
            }
            _ => None,
        }
    }
}

impl Listed for Activity {
    const KIND: Kind = Kind::Activity;
    fn filters(_: &Store, q: &ListQuery) -> Result<Vec<Vec<Term>>> {
        let mut g = Vec::new();
        if let Some(k) = &q.kind {
            g.push(key_term(format!("activity/kind/{}", k.trim())));
        }
        if let Some(r) = &q.record {
            g.push(key_term(format!("activity/record/{}", r.trim())));
        }
        if let Some(d) = q.done {
            g.push(key_term(format!("activity/done/{d}")));
        }
        if let Some(d) = &q.due_before {
            let d = parse_date("due_before", d)?;
            g.push(vec![Term::Range(
                "activity/due/".into(),
                format!("activity/due/{d}"),
            )]);
        }
        Ok(g)
    }
    fn owner(&self) -> Option<Id> {
        self.owner_id
    }
    fn sort_value(&self, field: &str) -> Option<String> {
        match field {
            "name" => Some(self.subject.to_lowercase()),
            "updated" => Some(time_key(self.updated_at)),
            "due" => Some(self.due.clone().unwrap_or_default()),
            _ => None,
        }
    }
}

/// One line of a record's timeline.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TimelineItem {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub at: OffsetDateTime,
    /// `activity`, `audit`, or what another source calls its items (e.g. `email.opened`).
    pub kind: String,
    pub title: String,
    /// The user behind it (`user:3`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Audit items: the fields that changed (names only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity: Option<Activity>,
    /// Email items: the campaign the message belonged to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<Id>,
}

/// Another module's contribution to timelines (emails sent, opened, clicked): registered with
/// [`Crm::add_timeline_source`]; `record` is `lead:5`, `contact:7`, ...
pub trait TimelineSource: Send + Sync {
    fn items(&self, record: &str) -> Vec<TimelineItem>;
}

/// One column of the pipeline board.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StageColumn {
    pub stage: String,
    pub probability: u8,
    pub count: u64,
    /// Sums per currency; `null` for roles that may not see amounts.
    pub totals: Option<Vec<CurrencyTotal>>,
    /// The newest opportunities of the stage.
    pub cards: Vec<Opportunity>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CurrencyTotal {
    pub currency: String,
    pub amount: String,
    /// Amount times the stage's probability.
    pub weighted: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Board {
    pub stages: Vec<StageColumn>,
}

/// Enrolments and certifications: records of one contact.
pub trait TrainingRecord: CrmRecord {
    /// The singular name (`enrolment`), also the index key's first part.
    const WHAT: &'static str;
    /// The contact's field in audit entries (`enrolments`).
    const FIELD: &'static str;
    fn contact_id(&self) -> Id;
}

impl TrainingRecord for Enrolment {
    const WHAT: &'static str = "enrolment";
    const FIELD: &'static str = "enrolments";
    fn contact_id(&self) -> Id {
        self.contact_id
    }
}

impl TrainingRecord for Certification {
    const WHAT: &'static str = "certification";
    const FIELD: &'static str = "certifications";
    fn contact_id(&self) -> Id {
        self.contact_id
    }
}

/// The CRM service.
pub struct Crm {
    store: Arc<Store>,
    contacts: Arc<Contacts>,
    timeline_sources: RwLock<Vec<Arc<dyn TimelineSource>>>,
}

impl Crm {
    pub fn new(store: Arc<Store>, contacts: Arc<Contacts>) -> Crm {
        Crm {
            store,
            contacts,
            timeline_sources: RwLock::new(Vec::new()),
        }
    }

    /// Adds a source of timeline items (the campaign module's email events).
    pub fn add_timeline_source(&self, s: Arc<dyn TimelineSource>) {
        if let Ok(mut v) = self.timeline_sources.write() {
            v.push(s);
        }
    }

    // ---- shared rules ----

    fn check_owner(
        &self,
        tx: &CrmTx<'_>,
        actor: &Actor,
        kind: Kind,
        field: &'static str,
        owner: Option<Id>,
    ) -> Result<()> {
        actor.check_assign_crm(kind, owner)?;
        if let Some(u) = owner
            && !tx.user_exists(u)?
        {
            return Err(invalid(field, format!("user {u} does not exist")));
        }
        Ok(())
    }

    fn load<R: Listed>(&self, actor: &Actor, id: Id) -> Result<R> {
        let r: R = self
            .store
            .crm_get(id)?
            .ok_or(CrmError::NotFound(R::KIND.as_str()))?;
        actor
            .check_crm(R::KIND, r.owner(), Action::Read)
            .map_err(hide(R::KIND))?;
        Ok(r)
    }

    fn get_in<R: Listed>(tx: &CrmTx<'_>, actor: &Actor, id: Id, action: Action) -> Result<R> {
        let r: R = tx.get(id)?.ok_or(CrmError::NotFound(R::KIND.as_str()))?;
        actor
            .check_crm(R::KIND, r.owner(), action)
            .map_err(hide(R::KIND))?;
        Ok(r)
    }

    fn audit_create<R: Listed>(tx: &CrmTx<'_>, actor: &Actor, r: &R) -> Result<()> {
        Entry::new(actor, AuditAction::Create, record(R::KIND.as_str(), r.id()))
            .changes(Changes::of(None, Some(r)))
            .append(tx.wtx())?;
        Ok(())
    }

    fn audit_update<R: Listed>(tx: &CrmTx<'_>, actor: &Actor, before: &R, after: &R) -> Result<()> {
        let changes = Changes::of(Some(before), Some(after));
        if !changes.is_empty() {
            Entry::new(
                actor,
                AuditAction::Update,
                record(R::KIND.as_str(), after.id()),
            )
            .changes(changes)
            .append(tx.wtx())?;
        }
        Ok(())
    }

    /// Deletes a record after the access check, with its audit entry and the activities
    /// linked to it.
    fn delete_in<R: Listed>(
        &self,
        actor: &Actor,
        id: Id,
        check: impl FnOnce(&CrmTx<'_>, &R) -> Result<()>,
    ) -> Result<()> {
        self.store
            .write_crm(|tx| Self::delete_tx(tx, actor, id, check, None))
    }

    /// Deletes a record the actor may delete, with its activities, inside `tx`; `more` is
    /// added to the audit entry's detail.
    fn delete_tx<R: Listed>(
        tx: &CrmTx<'_>,
        actor: &Actor,
        id: Id,
        check: impl FnOnce(&CrmTx<'_>, &R) -> Result<()>,
        more: Option<String>,
    ) -> Result<()> {
        let r: R = Self::get_in(tx, actor, id, Action::Delete)?;
        check(tx, &r)?;
        let rec = record(R::KIND.as_str(), id);
        let mut removed = 0;
        if R::KIND != Kind::Activity {
            for aid in tx.ids(&format!("activity/record/{rec}"))? {
                tx.delete::<Activity>(aid)?;
                removed += 1;
            }
        }
        tx.delete::<R>(id)?;
        let mut detail: Vec<String> = more.into_iter().collect();
        if removed > 0 {
            detail.push(format!("{removed} linked activities deleted"));
        }
        let mut e =
            Entry::new(actor, AuditAction::Delete, rec).changes(Changes::of(Some(&r), None));
        if !detail.is_empty() {
            e = e.detail(detail.join("; "));
        }
        e.append(tx.wtx())?;
        Ok(())
    }

    /// The index conditions of a list query: the kind's filters, the actor's scope, the
    /// owner filter and the words of `q`.
    fn conditions<R: Listed>(&self, actor: &Actor, q: &ListQuery) -> Result<Vec<Vec<Term>>> {
        let kind = R::KIND;
        let mut groups = R::filters(&self.store, q)?;
        match actor.crm_scope(kind) {
            CrmScope::All => {}
            CrmScope::Owned { user, unassigned } => {
                let mut g = vec![Term::Key(owner_index(kind.as_str(), Some(user)))];
                if unassigned {
                    g.push(Term::Key(owner_index(kind.as_str(), None)));
                }
                groups.push(g);
            }
            CrmScope::Team { users } => {
                let mut g: Vec<Term> = users
                    .iter()
                    .map(|u| Term::Key(owner_index(kind.as_str(), Some(*u))))
                    .collect();
                g.push(Term::Key(owner_index(kind.as_str(), None)));
                groups.push(g);
            }
        }
        if let Some(o) = q.owner.as_deref() {
            let owner = match o.trim() {
                "none" => None,
                "me" => Some(actor.user_id),
                n => Some(n.parse::<Id>().map_err(|_| {
                    invalid(
                        "owner",
                        format!(
                            "owner '{}' is not a user id, 'me' or 'none'",
                            n.escape_default()
                        ),
                    )
                })?),
            };
            groups.push(vec![Term::Key(owner_index(kind.as_str(), owner))]);
        }
        if let Some(text) = q.q.as_deref() {
            for w in words(text) {
                groups.push(vec![Term::Prefix(format!("{}/q/{w}", kind.as_str()))]);
            }
        }
        Ok(groups)
    }

    fn list<R: Listed>(&self, actor: &Actor, q: &ListQuery) -> Result<Page<R>> {
        let kind = R::KIND;
        let groups = self.conditions::<R>(actor, q)?;
        let offset = match q.cursor.as_deref() {
            Some(c) if !c.is_empty() => decode_cursor(c)?,
            _ => 0,
        };
        let limit = q.limit.unwrap_or(25).clamp(1, 100);
        let sort = q.sort.as_deref().unwrap_or("-created").trim();
        let (desc, field) = match sort.strip_prefix('-') {
            Some(f) => (true, f),
            None => (false, sort),
        };
        let (items, total) = if field == "created" {
            let page = self.store.crm_query::<R>(&IdQuery {
                all_of: groups,
                newest_first: desc,
                offset,
                limit,
            })?;
            (self.store.crm_get_many::<R>(&page.ids)?, page.total)
        } else {
            let all = self.store.crm_query::<R>(&IdQuery {
                all_of: groups,
                newest_first: false,
                offset: 0,
                limit: MAX_SORTED as usize + 1,
            })?;
            if all.total > MAX_SORTED {
                return Err(invalid(
                    "sort",
                    format!(
                        "{} {} match; sorting by {field} needs {MAX_SORTED} or fewer: add a filter",
                        all.total,
                        kind.plural()
                    ),
                ));
            }
            let mut rows = Vec::with_capacity(all.ids.len());
            for r in self.store.crm_get_many::<R>(&all.ids)? {
                let Some(v) = r.sort_value(field) else {
                    return Err(invalid(
                        "sort",
                        format!("{} cannot be sorted by '{field}'", kind.plural()),
                    ));
                };
                rows.push((v, r));
            }
            rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.id().cmp(&b.1.id())));
            if desc {
                rows.reverse();
            }
            (
                rows.into_iter()
                    .skip(offset)
                    .take(limit)
                    .map(|(_, r)| r)
                    .collect(),
                all.total,
            )
        };
        let items: Vec<R> = items
            .into_iter()
            .filter(|r| actor.check_crm(kind, r.owner(), Action::Read).is_ok())
            .collect();
        let next = offset + limit;
        Ok(Page {
            next_cursor: ((next as u64) < total).then(|| encode_cursor(next)),
            items,
            total,
        })
    }

    // ---- leads ----

    fn apply_lead(
        &self,
        tx: &CrmTx<'_>,
        actor: &Actor,
        l: &mut Lead,
        input: &LeadInput,
    ) -> Result<()> {
        text("first_name", &input.first_name, &mut l.first_name)?;
        text("last_name", &input.last_name, &mut l.last_name)?;
        if let Some(e) = &input.email {
            l.email = if e.trim().is_empty() {
                String::new()
            } else {
                crate::model::normalise_email(e).map_err(|m| invalid("email", m))?
            };
        }
        text("phone", &input.phone, &mut l.phone)?;
        text("job_title", &input.job_title, &mut l.job_title)?;
        text("company", &input.company, &mut l.company)?;
        text("website", &input.website, &mut l.website)?;
        text("industry", &input.industry, &mut l.industry)?;
        text("company_size", &input.company_size, &mut l.company_size)?;
        text("country", &input.country, &mut l.country)?;
        text("source", &input.source, &mut l.source)?;
        if let Some(s) = &input.status {
            let s: LeadStatus = s.trim().parse().map_err(|m: String| invalid("status", m))?;
            if s == LeadStatus::Converted && l.status != LeadStatus::Converted {
                return Err(invalid(
                    "status",
                    "a lead becomes converted only by converting it",
                ));
            }
            if l.status == LeadStatus::Converted && s != LeadStatus::Converted {
                return Err(CrmError::Conflict(format!(
                    "lead {} is converted; its status cannot change",
                    l.id
                )));
            }
            l.status = s;
        }
        if let Some(s) = input.score {
            if !(0..=1_000_000).contains(&s) {
                return Err(invalid("score", "score must be between 0 and 1000000"));
            }
            l.score = s;
        }
        if let Some(o) = input.assigned_to {
            self.check_owner(tx, actor, Kind::Lead, "assigned_to", o)?;
            l.assigned_to = o;
        }
        if let Some(c) = &input.consent {
            let purpose = clean_text("consent", &c.purpose)?;
            if purpose.is_empty() {
                return Err(invalid("consent", "a consent needs a purpose"));
            }
            l.consents.push(Consent {
                purpose,
                source: clean_text("consent", &c.source)?,
                at: now(),
                ip: actor.ip.clone(),
                wording: c
                    .wording
                    .as_deref()
                    .map(|w| long_text("consent", w))
                    .transpose()?,
                withdrawn: false,
            });
        }
        if l.email.is_empty()
            && l.first_name.is_empty()
            && l.last_name.is_empty()
            && l.company.is_empty()
        {
            return Err(invalid(
                "email",
                "a lead needs at least an email, a name or a company",
            ));
        }
        Ok(())
    }

    // ---- lead scoring ----

    /// What the appliance saw the lead's address do: campaign opens and clicks, sign-up
    /// forms (through the contact with the same address).
    fn activity_of(&self, lead: &Lead) -> Result<scoring::Activity> {
        let mut a = scoring::Activity::default();
        if lead.email.is_empty() {
            return Ok(a);
        }
        let Some(cid) = self.store.contact_id_by_email(&lead.email)? else {
            return Ok(a);
        };
        if let Some(e) = self.store.engagement(cid)? {
            a.opens = e.opens;
            a.last_open = e.last_open;
            a.clicks = e.clicks;
            a.last_click = e.last_click;
        }
        if let Some(c) = self.store.contact(cid)? {
            a.forms = c
                .consents
                .iter()
                .filter(|x| x.source.starts_with("form:") && !x.withdrawn)
                .map(|x| x.at)
                .collect();
        }
        Ok(a)
    }

    /// Sets the stored score: the rules' score, or `set` (a score written by hand), kept as an
    /// adjustment to the rules' score so that it still follows them.
    fn settle_score(&self, l: &mut Lead, set: Option<i64>) -> Result<()> {
        match set {
            Some(s) => {
                let base = self.score_of(&Lead {
                    score_adjustment: 0,
                    ..l.clone()
                })?;
                l.score_adjustment = s - base.score;
                l.score = s;
            }
            None => l.score = self.score_of(l)?.score,
        }
        Ok(())
    }

    fn score_of(&self, lead: &Lead) -> Result<scoring::Score> {
        let rules = self.store.scoring_rules()?;
        Ok(scoring::score(
            lead,
            &rules,
            &self.activity_of(lead)?,
            now(),
        ))
    }

    /// A lead's score as of now, with its breakdown.
    pub fn lead_score(&self, actor: &Actor, id: Id) -> Result<scoring::Score> {
        let lead: Lead = self.load(actor, id)?;
        self.score_of(&lead)
    }

    pub fn scoring_rules(&self, actor: &Actor) -> Result<scoring::ScoringRules> {
        actor.check_crm_kind(Kind::Lead, Action::Read)?;
        Ok(self.store.scoring_rules()?)
    }

    /// Replaces the scoring rules (admins and managers) and rescores every lead.
    pub fn set_scoring_rules(
        &self,
        actor: &Actor,
        rules: &scoring::ScoringRules,
    ) -> Result<scoring::ScoringRules> {
        if !matches!(
            actor.role,
            crate::model::Role::Admin | crate::model::Role::Manager
        ) {
            return Err(crate::policy::Denied::Forbidden {
                role: actor.role,
                verb: "change",
                what: "lead scoring rules",
            }
            .into());
        }
        rules.validate().map_err(|m| invalid("rules", m))?;
        let before = self.store.scoring_rules()?;
        self.store.write_crm(|tx| {
            tx.set_scoring_rules(rules)?;
            crate::audit::Entry::new(actor, AuditAction::Setting, "setting:crm_scoring_rules")
                .changes(crate::audit::Changes::of(Some(&before), Some(rules)))
                .append(tx.wtx())?;
            Ok::<_, CrmError>(())
        })?;
        self.rescore_all()?;
        Ok(rules.clone())
    }

    /// Refreshes every lead's stored score (decay, new engagement); returns how many changed.
    /// Run hourly by the server's housekeeping.
    pub fn rescore_all(&self) -> Result<u64> {
        let rules = self.store.scoring_rules()?;
        let ids = self.store.crm_ids_all::<Lead>()?;
        let mut changed = 0;
        for chunk in ids.chunks(500) {
            let mut updates = Vec::new();
            for lead in self.store.crm_get_many::<Lead>(chunk)? {
                let s = scoring::score(&lead, &rules, &self.activity_of(&lead)?, now()).score;
                if s != lead.score {
                    updates.push((lead.id, s));
                }
            }
            if updates.is_empty() {
                continue;
            }
            changed += self.store.write_crm(|tx| {
                let mut n = 0;
                for (id, s) in &updates {
                    if let Some(mut l) = tx.get::<Lead>(*id)? {
                        l.score = *s;
                        tx.update(&l)?;
                        n += 1;
                    }
                }
                Ok::<_, CrmError>(n)
            })?;
        }
        Ok(changed)
    }

    pub fn create_lead(&self, actor: &Actor, input: &LeadInput) -> Result<Lead> {
        actor.check_crm_kind(Kind::Lead, Action::Create)?;
        self.store
            .write_crm(|tx| self.create_lead_in(tx, actor, input))
    }

    fn create_lead_in(&self, tx: &CrmTx<'_>, actor: &Actor, input: &LeadInput) -> Result<Lead> {
        let mut l = Lead {
            assigned_to: if input.assigned_to.is_none() {
                actor.default_owner()
            } else {
                None
            },
            ..Lead::blank()
        };
        self.apply_lead(tx, actor, &mut l, input)?;
        if !l.email.is_empty() && !tx.ids(&format!("lead/email/{}", l.email))?.is_empty() {
            return Err(CrmError::Conflict(format!(
                "a lead with the email {} already exists",
                l.email
            )));
        }
        self.settle_score(&mut l, input.score)?;
        let l = tx.insert(l)?;
        Self::audit_create(tx, actor, &l)?;
        Ok(l)
    }

    pub fn lead(&self, actor: &Actor, id: Id) -> Result<Lead> {
        self.load(actor, id)
    }

    pub fn update_lead(&self, actor: &Actor, id: Id, input: &LeadInput) -> Result<Lead> {
        self.store
            .write_crm(|tx| self.update_lead_in(tx, actor, id, input))
    }

    fn update_lead_in(
        &self,
        tx: &CrmTx<'_>,
        actor: &Actor,
        id: Id,
        input: &LeadInput,
    ) -> Result<Lead> {
        let mut l: Lead = Self::get_in(tx, actor, id, Action::Update)?;
        let before = l.clone();
        self.apply_lead(tx, actor, &mut l, input)?;
        if l.email != before.email
            && !l.email.is_empty()
            && !tx.ids(&format!("lead/email/{}", l.email))?.is_empty()
        {
            return Err(CrmError::Conflict(format!(
                "a lead with the email {} already exists",
                l.email
            )));
        }
        l.updated_at = now();
        self.settle_score(&mut l, input.score)?;
        tx.update(&l)?;
        Self::audit_update(tx, actor, &before, &l)?;
        Ok(l)
    }

    pub fn delete_lead(&self, actor: &Actor, id: Id) -> Result<()> {
        self.delete_in::<Lead>(actor, id, |_, _| Ok(()))
    }

    pub fn leads(&self, actor: &Actor, q: &ListQuery) -> Result<Page<Lead>> {
        self.list(actor, q)
    }

    // ---- accounts ----

    fn apply_account(
        &self,
        tx: &CrmTx<'_>,
        actor: &Actor,
        a: &mut Account,
        input: &AccountInput,
    ) -> Result<()> {
        text("name", &input.name, &mut a.name)?;
        if a.name.is_empty() {
            return Err(invalid("name", "an account needs a name"));
        }
        if let Some(d) = &input.domain {
            a.domain = clean_domain(d)?;
        }
        text("industry", &input.industry, &mut a.industry)?;
        text("size", &input.size, &mut a.size)?;
        if let Some(addr) = &input.address {
            a.address = Address {
                street: clean_text("address", &addr.street)?,
                city: clean_text("address", &addr.city)?,
                postal_code: clean_text("address", &addr.postal_code)?,
                region: clean_text("address", &addr.region)?,
                country: clean_text("address", &addr.country)?,
            };
        }
        if let Some(p) = input.parent_id {
            if let Some(p) = p {
                self.check_parent(tx, a.id, p)?;
            }
            a.parent_id = p;
        }
        if let Some(o) = input.owner_id {
            self.check_owner(tx, actor, Kind::Account, "owner_id", o)?;
            a.owner_id = o;
        }
        Ok(())
    }

    /// A parent must exist and must not be the account itself or one of its descendants.
    fn check_parent(&self, tx: &CrmTx<'_>, id: Id, parent: Id) -> Result<()> {
        let mut at = Some(parent);
        let mut steps = 0;
        while let Some(p) = at {
            if id != 0 && p == id {
                return Err(invalid(
                    "parent_id",
                    format!(
                        "account {parent} is account {id} or one of its sub-accounts: that would make a cycle"
                    ),
                ));
            }
            let Some(acc) = tx.get::<Account>(p)? else {
                return Err(invalid("parent_id", format!("account {p} does not exist")));
            };
            at = acc.parent_id;
            steps += 1;
            if steps > 1000 {
                return Err(invalid(
                    "parent_id",
                    "the account hierarchy is deeper than 1000 levels",
                ));
            }
        }
        Ok(())
    }

    fn new_account(actor: &Actor, name: String) -> Account {
        let t = now();
        Account {
            id: 0,
            name,
            domain: String::new(),
            industry: String::new(),
            size: String::new(),
            address: Address::default(),
            parent_id: None,
            owner_id: actor.default_owner(),
            created_at: t,
            updated_at: t,
        }
    }

    pub fn create_account(&self, actor: &Actor, input: &AccountInput) -> Result<Account> {
        actor.check_crm_kind(Kind::Account, Action::Create)?;
        self.store
            .write_crm(|tx| self.create_account_in(tx, actor, input))
    }

    fn create_account_in(
        &self,
        tx: &CrmTx<'_>,
        actor: &Actor,
        input: &AccountInput,
    ) -> Result<Account> {
        let mut a = Self::new_account(actor, String::new());
        self.apply_account(tx, actor, &mut a, input)?;
        let a = tx.insert(a)?;
        Self::audit_create(tx, actor, &a)?;
        Ok(a)
    }

    pub fn account(&self, actor: &Actor, id: Id) -> Result<Account> {
        self.load(actor, id)
    }

    pub fn update_account(&self, actor: &Actor, id: Id, input: &AccountInput) -> Result<Account> {
        self.store
            .write_crm(|tx| self.update_account_in(tx, actor, id, input))
    }

    fn update_account_in(
        &self,
        tx: &CrmTx<'_>,
        actor: &Actor,
        id: Id,
        input: &AccountInput,
    ) -> Result<Account> {
        let mut a: Account = Self::get_in(tx, actor, id, Action::Update)?;
        let before = a.clone();
        self.apply_account(tx, actor, &mut a, input)?;
        a.updated_at = now();
        tx.update(&a)?;
        Self::audit_update(tx, actor, &before, &a)?;
        Ok(a)
    }

    /// Deletes an account without sub-accounts or opportunities; its contacts stay, unlinked
    /// from it in the same transaction.
    pub fn delete_account(&self, actor: &Actor, id: Id) -> Result<()> {
        let linked = ParsedQuery::account(id);
        self.contacts.write_with(true, |ctx| -> Result<()> {
            let crm = CrmTx::new(ctx.wtx());
            // contacts written before this transaction are in the index (writes take the
            // same lock and commit the index first); each is checked again here
            let search = self.contacts.search_index();
            let mut ids = Vec::new();
            let mut offset = 0;
            loop {
                let hits = search
                    .search(&linked, Scope::All, offset, 100)
                    .map_err(|e| CrmError::Contact(ContactError::from(e)))?;
                ids.extend(hits.ids);
                match hits.next_offset {
                    Some(n) => offset = n,
                    None => break,
                }
            }
            let mut unlinked = 0;
            let check = |tx: &CrmTx<'_>, _: &Account| -> Result<()> {
                let subs = tx.ids(&format!("account/parent/{id}"))?.len();
                let opps = tx.ids(&format!("opportunity/account/{id}"))?.len();
                if subs + opps > 0 {
                    return Err(CrmError::Conflict(format!("account {id} has {subs} sub-accounts and {opps} opportunities; move or delete them first")));
                }
                Ok(())
            };
            // access and conflicts first, so that a refused delete changes no contact
            let acc: Account = Self::get_in(&crm, actor, id, Action::Delete)?;
            check(&crm, &acc)?;
            for cid in ids {
                if let Some(mut c) = ctx.get(cid)?
                    && c.account_id == Some(id)
                {
                    let before = c.clone();
                    c.account_id = None;
                    let c = ctx.update(c)?;
                    crate::contacts::emit_contact(ctx, EventType::ContactUpdated, &c)?;
                    Entry::new(actor, AuditAction::Update, record("contact", cid))
                        .changes(Changes::of(Some(&before), Some(&c)))
                        .detail(format!("account:{id} deleted"))
                        .append(ctx.wtx())?;
                    unlinked += 1;
                }
            }
            let more = (unlinked > 0).then(|| format!("{unlinked} contacts unlinked"));
            Self::delete_tx::<Account>(&crm, actor, id, check, more)
        })
    }

    pub fn accounts(&self, actor: &Actor, q: &ListQuery) -> Result<Page<Account>> {
        self.list(actor, q)
    }

    // ---- opportunities ----

    fn stage_of(stages: &[Stage], name: &str) -> Result<Stage> {
        let name = name.trim().to_lowercase();
        stages
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .ok_or_else(|| {
                let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
                invalid(
                    "stage",
                    format!(
                        "unknown stage '{}' (one of: {})",
                        name.escape_default(),
                        names.join(", ")
                    ),
                )
            })
    }

    /// Validates and applies an opportunity input. `contact_known` skips the contact check
    /// (conversion, where the contact table is held by the same transaction).
    fn apply_opportunity(
        &self,
        tx: &CrmTx<'_>,
        actor: &Actor,
        o: &mut Opportunity,
        input: &OpportunityInput,
        contact_known: bool,
    ) -> Result<()> {
        text("name", &input.name, &mut o.name)?;
        if o.name.is_empty() {
            return Err(invalid("name", "an opportunity needs a name"));
        }
        text("programme", &input.programme, &mut o.programme)?;
        if let Some(c) = &input.currency {
            o.currency = money::currency(c).map_err(|m| invalid("currency", m))?;
        }
        let digits = money::digits(&o.currency).unwrap_or(2);
        let amount = match &input.amount {
            Some(a) => Some(a.clone()),
            None => o.amount.clone(),
        };
        o.amount = amount
            .map(|a| money::parse_minor(&a, digits).map(|m| money::format_minor(m, digits)))
            .transpose()
            .map_err(|m| invalid("amount", m))?;
        if let Some(s) = &input.stage {
            let stage = Self::stage_of(&tx.stages()?, s)?;
            o.stage = stage.name;
            o.probability = stage.probability;
        }
        if let Some(d) = &input.expected_close {
            o.expected_close = d
                .as_deref()
                .map(|d| parse_date("expected_close", d))
                .transpose()?;
        }
        text("lost_reason", &input.lost_reason, &mut o.lost_reason)?;
        if let Some(a) = input.account_id {
            if let Some(a) = a
                && tx.get::<Account>(a)?.is_none()
            {
                return Err(invalid("account_id", format!("account {a} does not exist")));
            }
            o.account_id = a;
        }
        if let Some(c) = input.contact_id {
            if let Some(c) = c
                && !contact_known
                && self.store.contact(c)?.is_none()
            {
                return Err(invalid("contact_id", format!("contact {c} does not exist")));
            }
            o.contact_id = c;
        }
        if let Some(ow) = input.owner_id {
            self.check_owner(tx, actor, Kind::Opportunity, "owner_id", ow)?;
            o.owner_id = ow;
        }
        Ok(())
    }

    fn new_opportunity(tx: &CrmTx<'_>, actor: &Actor) -> Result<Opportunity> {
        let stages = tx.stages()?;
        let first = stages.first().cloned().unwrap_or(Stage {
            name: "prospecting".into(),
            probability: 10,
        });
        let t = now();
        Ok(Opportunity {
            id: 0,
            name: String::new(),
            account_id: None,
            contact_id: None,
            programme: String::new(),
            amount: None,
            currency: "EUR".into(),
            stage: first.name,
            probability: first.probability,
            expected_close: None,
            owner_id: actor.default_owner(),
            lost_reason: String::new(),
            lead_id: None,
            created_at: t,
            updated_at: t,
        })
    }

    /// What an actor sees of an opportunity: marketing without the amount.
    pub fn view(actor: &Actor, mut o: Opportunity) -> Opportunity {
        if !actor.sees_amounts() {
            o.amount = None;
        }
        o
    }

    pub fn create_opportunity(
        &self,
        actor: &Actor,
        input: &OpportunityInput,
    ) -> Result<Opportunity> {
        actor.check_crm_kind(Kind::Opportunity, Action::Create)?;
        let o = self
            .store
            .write_crm(|tx| self.create_opportunity_in(tx, actor, input))?;
        Ok(Self::view(actor, o))
    }

    fn create_opportunity_in(
        &self,
        tx: &CrmTx<'_>,
        actor: &Actor,
        input: &OpportunityInput,
    ) -> Result<Opportunity> {
        let mut o = Self::new_opportunity(tx, actor)?;
        self.apply_opportunity(tx, actor, &mut o, input, false)?;
        let o = tx.insert(o)?;
        Self::audit_create(tx, actor, &o)?;
        Ok(o)
    }

    pub fn opportunity(&self, actor: &Actor, id: Id) -> Result<Opportunity> {
        Ok(Self::view(actor, self.load(actor, id)?))
    }

    pub fn update_opportunity(
        &self,
        actor: &Actor,
        id: Id,
        input: &OpportunityInput,
    ) -> Result<Opportunity> {
        let o = self
            .store
            .write_crm(|tx| self.update_opportunity_in(tx, actor, id, input))?;
        Ok(Self::view(actor, o))
    }

    fn update_opportunity_in(
        &self,
        tx: &CrmTx<'_>,
        actor: &Actor,
        id: Id,
        input: &OpportunityInput,
    ) -> Result<Opportunity> {
        let mut o: Opportunity = Self::get_in(tx, actor, id, Action::Update)?;
        let before = o.clone();
        self.apply_opportunity(tx, actor, &mut o, input, false)?;
        o.updated_at = now();
        tx.update(&o)?;
        Self::audit_update(tx, actor, &before, &o)?;
        if o.stage != before.stage {
            crate::store::events::emit(
                tx.wtx(),
                EventType::OpportunityStageChanged,
                serde_json::json!({"opportunity": o, "from": before.stage, "to": o.stage}),
            )?;
        }
        Ok(o)
    }

    pub fn delete_opportunity(&self, actor: &Actor, id: Id) -> Result<()> {
        self.delete_in::<Opportunity>(actor, id, |_, _| Ok(()))
    }

    pub fn opportunities(&self, actor: &Actor, q: &ListQuery) -> Result<Page<Opportunity>> {
        if !actor.sees_amounts()
            && q.sort
                .as_deref()
                .is_some_and(|s| s.trim_start_matches('-') == "amount")
        {
            return Err(invalid(
                "sort",
                "your role does not see amounts, so it cannot sort by them",
            ));
        }
        let mut page = self.list::<Opportunity>(actor, q)?;
        page.items = page
            .items
            .into_iter()
            .map(|o| Self::view(actor, o))
            .collect();
        Ok(page)
    }

    // ---- activities ----

    /// `lead:5` etc.: the record must exist and be visible to the actor.
    fn check_record(&self, tx: &CrmTx<'_>, actor: &Actor, rec: &str) -> Result<String> {
        let bad = || {
            invalid(
                "record",
                format!(
                    "record '{}' is not of the form lead:ID, contact:ID, account:ID or opportunity:ID",
                    rec.escape_default()
                ),
            )
        };
        let (kind, id) = rec.trim().split_once(':').ok_or_else(bad)?;
        let id: Id = id.parse().map_err(|_| bad())?;
        let missing = || invalid("record", format!("{kind} {id} does not exist"));
        let owner = match kind {
            "lead" => tx.get::<Lead>(id)?.ok_or_else(missing)?.assigned_to,
            "account" => tx.get::<Account>(id)?.ok_or_else(missing)?.owner_id,
            "opportunity" => tx.get::<Opportunity>(id)?.ok_or_else(missing)?.owner_id,
            "contact" => {
                let c = self.store.contact(id)?.ok_or_else(missing)?;
                actor
                    .check_contact(&c, Action::Read)
                    .map_err(|_| missing())?;
                return Ok(format!("contact:{id}"));
            }
            _ => return Err(bad()),
        };
        let k = match kind {
            "lead" => Kind::Lead,
            "account" => Kind::Account,
            _ => Kind::Opportunity,
        };
        actor
            .check_crm(k, owner, Action::Read)
            .map_err(|_| missing())?;
        Ok(format!("{kind}:{id}"))
    }

    fn apply_activity(
        &self,
        tx: &CrmTx<'_>,
        actor: &Actor,
        a: &mut Activity,
        input: &ActivityInput,
    ) -> Result<()> {
        if let Some(k) = &input.kind {
            a.kind = match k.trim() {
                "call" => ActivityKind::Call,
                "meeting" => ActivityKind::Meeting,
                "email" => ActivityKind::Email,
                "note" => ActivityKind::Note,
                "task" => ActivityKind::Task,
                other => {
                    return Err(invalid(
                        "kind",
                        format!(
                            "unknown activity kind '{}' (call, meeting, email, note, task)",
                            other.escape_default()
                        ),
                    ));
                }
            };
        }
        text("subject", &input.subject, &mut a.subject)?;
        if a.subject.is_empty() {
            return Err(invalid("subject", "an activity needs a subject"));
        }
        if let Some(b) = &input.body {
            a.body = long_text("body", b)?;
        }
        if let Some(r) = &input.record {
            a.record = r
                .as_deref()
                .map(|r| self.check_record(tx, actor, r))
                .transpose()?;
        }
        if let Some(d) = &input.due {
            a.due = d.as_deref().map(|d| parse_date("due", d)).transpose()?;
        }
        if let Some(d) = input.done {
            a.done = d;
        }
        if let Some(o) = input.owner_id {
            self.check_owner(tx, actor, Kind::Activity, "owner_id", o)?;
            a.owner_id = o;
        }
        Ok(())
    }

    pub fn create_activity(&self, actor: &Actor, input: &ActivityInput) -> Result<Activity> {
        actor.check_crm_kind(Kind::Activity, Action::Create)?;
        if input.kind.is_none() {
            return Err(invalid(
                "kind",
                "an activity needs a kind (call, meeting, email, note, task)",
            ));
        }
        self.store.write_crm(|tx| {
            let t = now();
            let mut a = Activity {
                id: 0,
                kind: ActivityKind::Note,
                subject: String::new(),
                body: String::new(),
                record: None,
                due: None,
                done: false,
                owner_id: actor.default_owner(),
                created_at: t,
                updated_at: t,
            };
            self.apply_activity(tx, actor, &mut a, input)?;
            let a = tx.insert(a)?;
            Self::audit_create(tx, actor, &a)?;
            Ok(a)
        })
    }

    pub fn activity(&self, actor: &Actor, id: Id) -> Result<Activity> {
        self.load(actor, id)
    }

    pub fn update_activity(
        &self,
        actor: &Actor,
        id: Id,
        input: &ActivityInput,
    ) -> Result<Activity> {
        self.store.write_crm(|tx| {
            let mut a: Activity = Self::get_in(tx, actor, id, Action::Update)?;
            let before = a.clone();
            self.apply_activity(tx, actor, &mut a, input)?;
            a.updated_at = now();
            tx.update(&a)?;
            Self::audit_update(tx, actor, &before, &a)?;
            Ok(a)
        })
    }

    pub fn delete_activity(&self, actor: &Actor, id: Id) -> Result<()> {
        self.delete_in::<Activity>(actor, id, |_, _| Ok(()))
    }

    pub fn activities(&self, actor: &Actor, q: &ListQuery) -> Result<Page<Activity>> {
        self.list(actor, q)
    }

    // ---- conversion ----

    /// Converts a lead: creates or links the contact (by email), matches or creates the
    /// account (by the contact's account, the company name, or the email's domain), creates
    /// the opportunity when asked, moves the lead's activities to the contact and marks the
    /// lead converted, all in one transaction.
    pub fn convert(&self, actor: &Actor, id: Id, input: &ConvertInput) -> Result<Converted> {
        actor.check_crm_kind(Kind::Lead, Action::Update)?;
        actor.check_create_contact()?;
        actor.check_crm_kind(Kind::Account, Action::Create)?;
        if input.create_opportunity {
            actor.check_crm_kind(Kind::Opportunity, Action::Create)?;
        }
        self.contacts.write_with(true, |ctx| -> Result<Converted> {
            let crm = CrmTx::new(ctx.wtx());
            let mut lead: Lead = Self::get_in(&crm, actor, id, Action::Update)?;
            if lead.status == LeadStatus::Converted {
                return Err(CrmError::Conflict(format!("lead {id} is already converted")));
            }
            if lead.email.is_empty() {
                return Err(invalid("email", "the lead has no email address; add one before converting it"));
            }
            let owner = lead.assigned_to.or(actor.default_owner());
            // the contact: linked by email, or new
            let mut contact = match ctx.id_by_email(&lead.email)? {
                Some(cid) => ctx.get(cid)?.ok_or(CrmError::NotFound("contact"))?,
                None => {
                    let mut c = crate::contacts::empty_contact(lead.email.clone());
                    c.first_name = lead.first_name.clone();
                    c.last_name = lead.last_name.clone();
                    c.company = lead.company.clone();
                    c.phone = lead.phone.clone();
                    c.owner_id = owner;
                    c.consents = lead.consents.clone();
                    let c = ctx.insert(c)?;
                    crate::contacts::emit_contact(ctx, EventType::ContactCreated, &c)?;
                    Entry::new(actor, AuditAction::Create, record("contact", c.id))
                        .changes(Changes::of(None, Some(&c)))
                        .detail(format!("converted from lead:{id}"))
                        .append(ctx.wtx())?;
                    c
                }
            };
            fail_point("contact")?;
            // the account
            let existing = contact.account_id.filter(|a| crm.get::<Account>(*a).ok().flatten().is_some());
            let by_name = || -> Result<Option<Id>> {
                if lead.company.is_empty() {
                    return Ok(None);
                }
                Ok(crm.ids(&format!("account/name/{}", lead.company.to_lowercase()))?.first().copied())
            };
            let domain = company_domain(&lead.email);
            let by_domain = || -> Result<Option<Id>> {
                match &domain {
                    Some(d) => Ok(crm.ids(&format!("account/domain/{d}"))?.first().copied()),
                    None => Ok(None),
                }
            };
            let account_id = match existing {
                Some(a) => a,
                None => match by_name()? {
                    Some(a) => a,
                    None => match by_domain()? {
                        Some(a) => a,
                        None => {
                            let name = if !lead.company.is_empty() {
                                lead.company.clone()
                            } else if let Some(d) = &domain {
                                d.clone()
                            } else {
                                format!("{} {}", lead.first_name, lead.last_name).trim().to_string()
                            };
                            let mut a = Self::new_account(actor, name);
                            a.owner_id = owner;
                            a.domain = domain.clone().unwrap_or_default();
                            a.industry = lead.industry.clone();
                            a.size = lead.company_size.clone();
                            a.address.country = lead.country.clone();
                            let a = crm.insert(a)?;
                            Entry::new(actor, AuditAction::Create, record("account", a.id))
                                .changes(Changes::of(None, Some(&a)))
                                .detail(format!("converted from lead:{id}"))
                                .append(ctx.wtx())?;
                            a.id
                        }
                    },
                },
            };
            if contact.account_id != Some(account_id) && existing.is_none() {
                let before = contact.clone();
                contact.account_id = Some(account_id);
                contact.updated_at = now();
                contact = ctx.update(contact)?;
                crate::contacts::emit_contact(ctx, EventType::ContactUpdated, &contact)?;
                Entry::new(actor, AuditAction::Update, record("contact", contact.id))
                    .changes(Changes::of(Some(&before), Some(&contact)))
                    .append(ctx.wtx())?;
            }
            fail_point("account")?;
            // the opportunity
            let opportunity_id = if input.create_opportunity {
                let mut o = Self::new_opportunity(&crm, actor)?;
                o.owner_id = owner;
                o.lead_id = Some(id);
                o.account_id = Some(account_id);
                o.contact_id = Some(contact.id);
                let mut oi = input.opportunity.clone();
                if oi.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
                    let company = if lead.company.is_empty() { &contact.email } else { &lead.company };
                    oi.name = Some(format!("{company}: training"));
                }
                oi.account_id = None;
                oi.contact_id = None;
                oi.owner_id = None;
                self.apply_opportunity(&crm, actor, &mut o, &oi, true)?;
                let o = crm.insert(o)?;
                Self::audit_create(&crm, actor, &o)?;
                Some(o.id)
            } else {
                None
            };
            fail_point("opportunity")?;
            // the lead's activities move to the contact
            let to = format!("contact:{}", contact.id);
            for aid in crm.ids(&format!("activity/record/lead:{id}"))? {
                if let Some(mut a) = crm.get::<Activity>(aid)? {
                    let before = a.clone();
                    a.record = Some(to.clone());
                    a.updated_at = now();
                    crm.update(&a)?;
                    Self::audit_update(&crm, actor, &before, &a)?;
                }
            }
            fail_point("activities")?;
            let before = lead.clone();
            lead.status = LeadStatus::Converted;
            lead.converted_contact_id = Some(contact.id);
            lead.converted_account_id = Some(account_id);
            lead.converted_opportunity_id = opportunity_id;
            lead.converted_at = Some(now());
            lead.updated_at = now();
            crm.update(&lead)?;
            let result = Converted {
                contact_id: contact.id,
                account_id,
                opportunity_id,
            };
            Entry::new(actor, AuditAction::Conversion, record("lead", id))
                .changes(Changes::of(Some(&before), Some(&lead)))
                .detail(format!(
                    "contact:{} account:{account_id}{}",
                    contact.id,
                    opportunity_id.map(|o| format!(" opportunity:{o}")).unwrap_or_default()
                ))
                .append(ctx.wtx())?;
            crate::store::events::emit(
                ctx.wtx(),
                EventType::LeadConverted,
                serde_json::json!({"lead_id": id, "contact_id": result.contact_id, "account_id": account_id, "opportunity_id": opportunity_id}),
            )?;
            fail_point("lead")?;
            Ok(result)
        })
    }

    // ---- pipeline ----

    pub fn stages(&self, actor: &Actor) -> Result<Vec<Stage>> {
        actor.check_stages(Action::Read)?;
        Ok(self.store.crm_stages()?)
    }

    /// Replaces the stage table. A stage that still has opportunities cannot be removed.
    pub fn set_stages(&self, actor: &Actor, stages: &[Stage]) -> Result<Vec<Stage>> {
        actor.check_stages(Action::Update)?;
        if stages.is_empty() || stages.len() > 30 {
            return Err(invalid("stages", "give between 1 and 30 stages"));
        }
        let mut out: Vec<Stage> = Vec::new();
        for s in stages {
            let name = s.name.trim().to_lowercase();
            if name.is_empty()
                || name.len() > 40
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(invalid(
                    "stages",
                    format!(
                        "stage name '{}' must be 1-40 letters, digits, '_' or '-'",
                        s.name.escape_default()
                    ),
                ));
            }
            if s.probability > 100 {
                return Err(invalid(
                    "stages",
                    format!(
                        "stage '{name}' has probability {} (0 to 100)",
                        s.probability
                    ),
                ));
            }
            if out.iter().any(|o| o.name == name) {
                return Err(invalid("stages", format!("stage '{name}' is given twice")));
            }
            out.push(Stage {
                name,
                probability: s.probability,
            });
        }
        self.store.write_crm(|tx| {
            let before = tx.stages()?;
            for old in &before {
                if !out.iter().any(|s| s.name == old.name) {
                    let n = tx.ids(&format!("opportunity/stage/{}", old.name))?.len();
                    if n > 0 {
                        return Err(CrmError::Conflict(format!(
                            "stage '{}' still has {n} opportunities; move them first",
                            old.name
                        )));
                    }
                }
            }
            tx.set_stages(&out)?;
            Entry::new(actor, AuditAction::Setting, "crm:stages")
                .changes(Changes::default().set(
                    "stages",
                    serde_json::to_value(&before).unwrap_or_default(),
                    serde_json::to_value(&out).unwrap_or_default(),
                ))
                .append(tx.wtx())?;
            Ok(out.clone())
        })
    }

    /// The pipeline board: per stage the count, sums per currency and weighted sums of the
    /// opportunities the actor sees (optionally of one owner), and the newest `cards`.
    pub fn board(&self, actor: &Actor, owner: Option<Option<Id>>, cards: usize) -> Result<Board> {
        let scope = actor.crm_scope(Kind::Opportunity);
        let stages = self.store.crm_stages()?;
        let mut out = Vec::with_capacity(stages.len());
        for st in stages {
            let rows: Vec<_> = self
                .store
                .crm_stage_rows(&st.name)?
                .into_iter()
                .filter(|r| scope.allows(r.owner) && owner.is_none_or(|o| r.owner == o))
                .collect();
            let mut sums: std::collections::BTreeMap<&str, i128> = Default::default();
            for r in &rows {
                *sums.entry(r.currency.as_str()).or_default() += i128::from(r.amount_minor);
            }
            let totals = actor.sees_amounts().then(|| {
                sums.iter()
                    .map(|(cur, sum)| {
                        let d = money::digits(cur).unwrap_or(2);
                        let weighted = (sum * i128::from(st.probability) + 50) / 100;
                        let fmt =
                            |v: i128| money::format_minor(i64::try_from(v).unwrap_or(i64::MAX), d);
                        CurrencyTotal {
                            currency: cur.to_string(),
                            amount: fmt(*sum),
                            weighted: fmt(weighted),
                        }
                    })
                    .collect()
            });
            let newest: Vec<Id> = rows.iter().rev().take(cards).map(|r| r.id).collect();
            let cards = self
                .store
                .crm_get_many::<Opportunity>(&newest)?
                .into_iter()
                .map(|o| Self::view(actor, o))
                .collect();
            out.push(StageColumn {
                stage: st.name,
                probability: st.probability,
                count: rows.len() as u64,
                totals,
                cards,
            });
        }
        Ok(Board { stages: out })
    }

    // ---- timelines ----

    /// Activities and audit history of a record the actor may see, newest first, with the
    /// items of registered sources (e.g. emails).
    pub fn timeline(&self, actor: &Actor, kind: &str, id: Id) -> Result<Vec<TimelineItem>> {
        match kind {
            "lead" => self.lead(actor, id).map(|_| ())?,
            "account" => self.account(actor, id).map(|_| ())?,
            "opportunity" => self.opportunity(actor, id).map(|_| ())?,
            "contact" => self.contacts.get(actor, id).map(|_| ())?,
            other => {
                return Err(invalid(
                    "kind",
                    format!(
                        "no timeline for '{}' (lead, contact, account, opportunity)",
                        other.escape_default()
                    ),
                ));
            }
        }
        let rec = record(kind, id);
        let mut items: Vec<TimelineItem> = self
            .store
            .crm_get_many::<Activity>(&self.store.crm_ids(&format!("activity/record/{rec}"))?)?
            .into_iter()
            .map(|a| TimelineItem {
                at: a.created_at,
                kind: "activity".into(),
                title: format!("{}: {}", a.kind.as_str(), a.subject),
                actor: a.owner_id.map(|u| format!("user:{u}")),
                fields: Vec::new(),
                activity: Some(a),
                campaign_id: None,
            })
            .collect();
        let filter = crate::store::audit::AuditFilter {
            record: Some(rec.clone()),
            ..Default::default()
        };
        let entries: Vec<AuditEntry> = self.store.audit_page(&filter, None, 200)?;
        items.extend(entries.into_iter().map(|e| TimelineItem {
            at: e.at,
            kind: "audit".into(),
            title: if e.detail.is_empty() {
                e.action.as_str().to_string()
            } else {
                format!("{}: {}", e.action.as_str(), e.detail)
            },
            actor: Some(e.actor),
            fields: e.changes.keys().cloned().collect(),
            activity: None,
            campaign_id: None,
        }));
        if let Ok(sources) = self.timeline_sources.read() {
            for s in sources.iter() {
                items.extend(s.items(&rec));
            }
        }
        items.sort_by_key(|i| std::cmp::Reverse(i.at));
        Ok(items)
    }

    // ---- training records on contacts ----

    fn contact_for(&self, actor: &Actor, contact_id: Id, action: Action) -> Result<()> {
        let c = self.contacts.get(actor, contact_id)?;
        actor.check_contact(&c, action)?;
        Ok(())
    }

    /// Writes a new training record of a contact, with its audit entry on the contact.
    fn insert_training<R: TrainingRecord>(&self, actor: &Actor, r: R) -> Result<R> {
        self.store.write_crm(|tx| {
            let r = tx.insert(r)?;
            Entry::new(
                actor,
                AuditAction::Update,
                record("contact", r.contact_id()),
            )
            .changes(Changes::default().set(
                R::FIELD,
                serde_json::Value::Null,
                serde_json::to_value(&r).unwrap_or_default(),
            ))
            .append(tx.wtx())?;
            Ok(r)
        })
    }

    pub fn add_enrolment(
        &self,
        actor: &Actor,
        contact_id: Id,
        programme: &str,
        start: &str,
        end: Option<&str>,
        status: EnrolmentStatus,
    ) -> Result<Enrolment> {
        self.contact_for(actor, contact_id, Action::Update)?;
        let programme = clean_text("programme", programme)?;
        if programme.is_empty() {
            return Err(invalid("programme", "an enrolment needs a programme"));
        }
        let start = parse_date("start", start)?;
        let end = end.map(|e| parse_date("end", e)).transpose()?;
        if end.as_ref().is_some_and(|e| *e < start) {
            return Err(invalid("end", "the end date is before the start date"));
        }
        let e = Enrolment {
            id: 0,
            contact_id,
            programme,
            start,
            end,
            status,
            created_at: now(),
        };
        self.insert_training(actor, e)
    }

    pub fn add_certification(
        &self,
        actor: &Actor,
        contact_id: Id,
        name: &str,
        issued: &str,
        expires: Option<&str>,
    ) -> Result<Certification> {
        self.contact_for(actor, contact_id, Action::Update)?;
        let name = clean_text("name", name)?;
        if name.is_empty() {
            return Err(invalid("name", "a certification needs a name"));
        }
        let issued = parse_date("issued", issued)?;
        let expires = expires.map(|e| parse_date("expires", e)).transpose()?;
        if expires.as_ref().is_some_and(|e| *e < issued) {
            return Err(invalid(
                "expires",
                "the expiry date is before the issue date",
            ));
        }
        let c = Certification {
            id: 0,
            contact_id,
            name,
            issued,
            expires,
            created_at: now(),
        };
        self.insert_training(actor, c)
    }

    /// A contact's enrolments or certifications.
    pub fn training<R: TrainingRecord>(&self, actor: &Actor, contact_id: Id) -> Result<Vec<R>> {
        self.contact_for(actor, contact_id, Action::Read)?;
        let ids = self
            .store
            .crm_ids(&format!("{}/contact/{contact_id}", R::WHAT))?;
        Ok(self.store.crm_get_many(&ids)?)
    }

    /// Deletes an enrolment or certification of a contact.
    pub fn delete_training<R: TrainingRecord>(
        &self,
        actor: &Actor,
        contact_id: Id,
        id: Id,
    ) -> Result<()> {
        self.contact_for(actor, contact_id, Action::Update)?;
        self.store.write_crm(|tx| {
            let Some(old) = tx.get::<R>(id)?.filter(|r| r.contact_id() == contact_id) else {
                return Err(CrmError::NotFound(R::WHAT));
            };
            tx.delete::<R>(id)?;
            Entry::new(actor, AuditAction::Update, record("contact", contact_id))
                .changes(Changes::default().set(
                    R::FIELD,
                    serde_json::to_value(&old).unwrap_or_default(),
                    serde_json::Value::Null,
                ))
                .append(tx.wtx())?;
            Ok(())
        })
    }

    /// Certifications expiring between today and `days` from now (contacts the actor sees).
    pub fn expiring(&self, actor: &Actor, days: u32) -> Result<Vec<Certification>> {
        if days > 3650 {
            return Err(invalid("days", "days must be 3650 or fewer"));
        }
        let from = today();
        let to = from.saturating_add(time::Duration::days(i64::from(days)));
        let ids = self.store.crm_ids_between(
            "certification/expires/",
            &date_string(from),
            &date_string(to),
        )?;
        let certs: Vec<Certification> = self.store.crm_get_many(&ids)?;
        let mut out = Vec::new();
        for c in certs {
            if let Some(contact) = self.store.contact(c.contact_id)?
                && actor.check_contact(&contact, Action::Read).is_ok()
            {
                out.push(c);
            }
        }
        Ok(out)
    }
}
