//! CRM records (leads, accounts, opportunities, activities, training records) and their
//! secondary indexes. Every record kind has a table of its own (id → JSON); one index table
//! holds `(key, id) → payload` rows such as `("lead/owner/7", 12)` or
//! `("opportunity/stage/proposal", 9) → amount, currency, owner`, written in the same
//! transaction as the record. Lists are answered from the index alone (id sets intersected),
//! so a filtered first page or a pipeline board never decodes records it does not show.

use super::{META, Result, Store, StoreError, USERS, decode, encode, get_json};
use crate::crm::model::{Account, Activity, Certification, Enrolment, Lead, Opportunity, Stage};
use crate::model::Id;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Serialize, de::DeserializeOwned};

pub(crate) const LEADS: TableDefinition<u64, &[u8]> = TableDefinition::new("crm_leads");
pub(crate) const ACCOUNTS: TableDefinition<u64, &[u8]> = TableDefinition::new("crm_accounts");
pub(crate) const OPPORTUNITIES: TableDefinition<u64, &[u8]> =
    TableDefinition::new("crm_opportunities");
pub(crate) const ACTIVITIES: TableDefinition<u64, &[u8]> = TableDefinition::new("crm_activities");
pub(crate) const ENROLMENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("crm_enrolments");
pub(crate) const CERTIFICATIONS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("crm_certifications");
/// (index key, record id) -> payload (empty, or what a board needs without the record).
pub(crate) const INDEX: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("crm_index");
/// record table name -> last id handed out (ids are never reused, so audit histories of a
/// deleted record and a new one never mix).
pub(crate) const SEQ: TableDefinition<&str, u64> = TableDefinition::new("crm_sequences");

const STAGES_KEY: &str = "crm_stages";

/// The words of a text as the list filter `q` matches them: lower case, split at anything
/// that is not a letter or digit, each at most 32 characters.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase().chars().take(32).collect())
}

fn owner_key(kind: &str, owner: Option<Id>) -> String {
    match owner {
        Some(u) => format!("{kind}/owner/{u}"),
        None => format!("{kind}/owner/none"),
    }
}

/// The exact index key of `owner` for a kind (`lead/owner/7`, `lead/owner/none`).
pub fn owner_index(kind: &str, owner: Option<Id>) -> String {
    owner_key(kind, owner)
}

fn word_keys(kind: &str, out: &mut Vec<(String, Vec<u8>)>, texts: &[&str]) {
    let mut seen = std::collections::BTreeSet::new();
    for t in texts {
        for w in words(t) {
            if seen.insert(w.clone()) {
                out.push((format!("{kind}/q/{w}"), Vec::new()));
            }
        }
    }
}

/// The index rows of a record: `(key, payload)`.
pub trait Indexed {
    fn index_rows(&self) -> Vec<(String, Vec<u8>)>;
}

/// A record kind the CRM store keeps: its table and the index rows it has.
pub trait CrmRecord: Serialize + DeserializeOwned + Indexed {
    const TABLE: TableDefinition<'static, u64, &'static [u8]>;
    const NAME: &'static str;
    fn id(&self) -> Id;
    fn set_id(&mut self, id: Id);
}

macro_rules! crm_record {
    ($t:ty, $table:expr, $name:literal) => {
        impl CrmRecord for $t {
            const TABLE: TableDefinition<'static, u64, &'static [u8]> = $table;
            const NAME: &'static str = $name;
            fn id(&self) -> Id {
                self.id
            }
            fn set_id(&mut self, id: Id) {
                self.id = id;
            }
        }
    };
}

fn key(k: String) -> (String, Vec<u8>) {
    (k, Vec::new())
}

/// The index key of a lead's score: fixed width, so that keys sort as the scores do.
pub fn score_key(score: i64) -> String {
    format!("lead/score/{}", score_sort_value(score))
}

/// A lead's score as a string that sorts as the numbers do.
pub fn score_sort_value(score: i64) -> String {
    format!("{:020}", (i128::from(score) - i128::from(i64::MIN)) as u64)
}

crm_record!(Lead, LEADS, "crm_leads");

impl Indexed for Lead {
    fn index_rows(&self) -> Vec<(String, Vec<u8>)> {
        let mut v = vec![
            key(owner_key("lead", self.assigned_to)),
            key(format!("lead/status/{}", self.status.as_str())),
            key(score_key(self.score)),
        ];
        if !self.email.is_empty() {
            v.push(key(format!("lead/email/{}", self.email)));
        }
        if let Some(c) = self.converted_contact_id {
            v.push(key(format!("lead/contact/{c}")));
        }
        if let Some(a) = self.converted_account_id {
            v.push(key(format!("lead/account/{a}")));
        }
        word_keys(
            "lead",
            &mut v,
            &[
                &self.first_name,
                &self.last_name,
                &self.email,
                &self.company,
            ],
        );
        v
    }
}

crm_record!(Account, ACCOUNTS, "crm_accounts");

impl Indexed for Account {
    fn index_rows(&self) -> Vec<(String, Vec<u8>)> {
        let mut v = vec![
            key(owner_key("account", self.owner_id)),
            key(format!("account/name/{}", self.name.to_lowercase())),
        ];
        if !self.domain.is_empty() {
            v.push(key(format!("account/domain/{}", self.domain)));
        }
        if let Some(p) = self.parent_id {
            v.push(key(format!("account/parent/{p}")));
        }
        word_keys("account", &mut v, &[&self.name, &self.domain]);
        v
    }
}

/// What the pipeline board needs of an opportunity, kept in its stage index row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageRow {
    pub id: Id,
    pub amount_minor: i64,
    pub currency: String,
    pub owner: Option<Id>,
}

fn stage_payload(o: &Opportunity) -> Vec<u8> {
    let digits = crate::crm::money::digits(&o.currency).unwrap_or(2);
    let minor = o
        .amount
        .as_deref()
        .and_then(|a| crate::crm::money::parse_minor(a, digits).ok())
        .unwrap_or(0);
    let mut p = Vec::with_capacity(19);
    p.extend_from_slice(&minor.to_le_bytes());
    p.extend_from_slice(&o.owner_id.unwrap_or(0).to_le_bytes());
    p.extend_from_slice(o.currency.as_bytes());
    p
}

fn stage_row(id: Id, p: &[u8]) -> StageRow {
    let num = |r: std::ops::Range<usize>| {
        p.get(r)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
            .unwrap_or(0)
    };
    let owner = num(8..16);
    StageRow {
        id,
        amount_minor: num(0..8) as i64,
        owner: (owner != 0).then_some(owner),
        currency: String::from_utf8_lossy(p.get(16..).unwrap_or_default()).into_owned(),
    }
}

crm_record!(Opportunity, OPPORTUNITIES, "crm_opportunities");

impl Indexed for Opportunity {
    fn index_rows(&self) -> Vec<(String, Vec<u8>)> {
        let mut v = vec![
            key(owner_key("opportunity", self.owner_id)),
            (
                format!("opportunity/stage/{}", self.stage),
                stage_payload(self),
            ),
        ];
        if let Some(a) = self.account_id {
            v.push(key(format!("opportunity/account/{a}")));
        }
        if let Some(c) = self.contact_id {
            v.push(key(format!("opportunity/contact/{c}")));
        }
        word_keys("opportunity", &mut v, &[&self.name, &self.programme]);
        v
    }
}

crm_record!(Activity, ACTIVITIES, "crm_activities");

impl Indexed for Activity {
    fn index_rows(&self) -> Vec<(String, Vec<u8>)> {
        let mut v = vec![
            key(owner_key("activity", self.owner_id)),
            key(format!("activity/kind/{}", self.kind.as_str())),
        ];
        if let Some(r) = &self.record {
            v.push(key(format!("activity/record/{r}")));
        }
        v.push(key(format!("activity/done/{}", self.done)));
        if let Some(d) = &self.due {
            v.push(key(format!("activity/due/{d}")));
        }
        word_keys("activity", &mut v, &[&self.subject]);
        v
    }
}

crm_record!(Enrolment, ENROLMENTS, "crm_enrolments");

impl Indexed for Enrolment {
    fn index_rows(&self) -> Vec<(String, Vec<u8>)> {
        vec![key(format!("enrolment/contact/{}", self.contact_id))]
    }
}

crm_record!(Certification, CERTIFICATIONS, "crm_certifications");

impl Indexed for Certification {
    fn index_rows(&self) -> Vec<(String, Vec<u8>)> {
        let mut v = vec![key(format!("certification/contact/{}", self.contact_id))];
        if let Some(e) = &self.expires {
            v.push(key(format!("certification/expires/{e}")));
        }
        v
    }
}

/// One condition of a list query: an exact index key, or every key starting with a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    Key(String),
    Prefix(String),
    /// Every key from the first to the second, both included.
    Range(String, String),
}

/// Ids whose index rows satisfy every group (a group is satisfied by any of its terms).
#[derive(Debug, Clone)]
pub struct IdQuery {
    pub all_of: Vec<Vec<Term>>,
    pub newest_first: bool,
    pub offset: usize,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPage {
    pub ids: Vec<Id>,
    pub total: u64,
}

fn prefix_end(prefix: &str) -> String {
    format!("{prefix}{}", char::MAX)
}

fn term_ids(
    index: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    t: &Term,
    out: &mut Vec<Id>,
) -> Result<()> {
    match t {
        Term::Key(k) => {
            for row in index.range((k.as_str(), 0)..=(k.as_str(), u64::MAX))? {
                out.push(row?.0.value().1);
            }
        }
        Term::Prefix(p) => {
            let end = prefix_end(p);
            for row in index.range((p.as_str(), 0)..=(end.as_str(), u64::MAX))? {
                out.push(row?.0.value().1);
            }
        }
        Term::Range(lo, hi) => {
            if lo <= hi {
                for row in index.range((lo.as_str(), 0)..=(hi.as_str(), u64::MAX))? {
                    out.push(row?.0.value().1);
                }
            }
        }
    }
    Ok(())
}

fn intersect(a: &[Id], b: &[Id]) -> Vec<Id> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// The CRM tables inside the caller's write transaction (which may also hold a contact
/// transaction: lead conversion writes both in one commit). Tables are opened per call, so
/// this never holds a table another writer in the same transaction needs.
pub struct CrmTx<'t> {
    wtx: &'t redb::WriteTransaction,
}

impl<'t> CrmTx<'t> {
    pub fn new(wtx: &'t redb::WriteTransaction) -> CrmTx<'t> {
        CrmTx { wtx }
    }

    pub fn wtx(&self) -> &'t redb::WriteTransaction {
        self.wtx
    }

    pub fn get<R: CrmRecord>(&self, id: Id) -> Result<Option<R>> {
        get_json(&self.wtx.open_table(R::TABLE)?, R::NAME, id)
    }

    /// Inserts a new record, handing out its id.
    pub fn insert<R: CrmRecord>(&self, mut r: R) -> Result<R> {
        let id = {
            let mut seq = self.wtx.open_table(SEQ)?;
            let id = seq.get(R::NAME)?.map(|v| v.value()).unwrap_or(0) + 1;
            seq.insert(R::NAME, id)?;
            id
        };
        r.set_id(id);
        self.put(None, &r)?;
        Ok(r)
    }

    /// Replaces a stored record (same id); returns the old one.
    pub fn update<R: CrmRecord>(&self, r: &R) -> Result<R> {
        let old: R = self.get(r.id())?.ok_or(StoreError::NotFound("record"))?;
        self.put(Some(&old), r)?;
        Ok(old)
    }

    pub fn delete<R: CrmRecord>(&self, id: Id) -> Result<Option<R>> {
        let Some(old) = self.get::<R>(id)? else {
            return Ok(None);
        };
        let mut index = self.wtx.open_table(INDEX)?;
        for (k, _) in old.index_rows() {
            index.remove((k.as_str(), id))?;
        }
        self.wtx.open_table(R::TABLE)?.remove(id)?;
        Ok(Some(old))
    }

    fn put<R: CrmRecord>(&self, old: Option<&R>, r: &R) -> Result<()> {
        let mut index = self.wtx.open_table(INDEX)?;
        if let Some(old) = old {
            for (k, _) in old.index_rows() {
                index.remove((k.as_str(), old.id()))?;
            }
        }
        for (k, payload) in r.index_rows() {
            index.insert((k.as_str(), r.id()), payload.as_slice())?;
        }
        self.wtx
            .open_table(R::TABLE)?
            .insert(r.id(), encode(r).as_slice())?;
        Ok(())
    }

    /// Ids under an exact index key, ascending.
    pub fn ids(&self, key: &str) -> Result<Vec<Id>> {
        let mut out = Vec::new();
        term_ids(
            &self.wtx.open_table(INDEX)?,
            &Term::Key(key.to_string()),
            &mut out,
        )?;
        Ok(out)
    }

    pub fn user_exists(&self, id: Id) -> Result<bool> {
        Ok(self.wtx.open_table(USERS)?.get(id)?.is_some())
    }

    pub fn stages(&self) -> Result<Vec<Stage>> {
        stages_in(&self.wtx.open_table(META)?)
    }

    pub fn set_scoring_rules(&self, rules: &crate::crm::scoring::ScoringRules) -> Result<()> {
        self.wtx
            .open_table(META)?
            .insert(SCORING_KEY, encode(rules).as_slice())?;
        Ok(())
    }

    pub fn set_stages(&self, stages: &[Stage]) -> Result<()> {
        self.wtx
            .open_table(META)?
            .insert(STAGES_KEY, encode(&stages).as_slice())?;
        Ok(())
    }
}

const SCORING_KEY: &str = "crm_scoring_rules";

impl Store {
    /// The lead scoring rules (the defaults until changed).
    pub fn scoring_rules(&self) -> Result<crate::crm::scoring::ScoringRules> {
        let rtx = self.db().begin_read()?;
        let meta = rtx.open_table(META)?;
        match meta.get(SCORING_KEY)? {
            Some(v) => decode("meta", v.value()),
            None => Ok(Default::default()),
        }
    }
}

fn stages_in(meta: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<Vec<Stage>> {
    match meta.get(STAGES_KEY)? {
        Some(v) => decode("meta", v.value()),
        None => Ok(crate::crm::model::default_stages()),
    }
}

impl Store {
    /// Runs `f` over the CRM tables in one write transaction and commits it durably; when
    /// `f` fails nothing is written.
    pub fn write_crm<T, E>(
        &self,
        f: impl FnOnce(&CrmTx<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<StoreError>,
    {
        self.write(|wtx| f(&CrmTx::new(wtx)))
    }

    pub fn crm_get<R: CrmRecord>(&self, id: Id) -> Result<Option<R>> {
        let rtx = self.db().begin_read()?;
        get_json(&rtx.open_table(R::TABLE)?, R::NAME, id)
    }

    /// Records by id in the order given, skipping ids that no longer exist.
    pub fn crm_get_many<R: CrmRecord>(&self, ids: &[Id]) -> Result<Vec<R>> {
        let rtx = self.db().begin_read()?;
        let t = rtx.open_table(R::TABLE)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = get_json(&t, R::NAME, *id)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Every id of one record kind (retention sweeps).
    pub fn crm_ids_all<R: CrmRecord>(&self) -> Result<Vec<Id>> {
        let rtx = self.db().begin_read()?;
        let t = rtx.open_table(R::TABLE)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            out.push(row?.0.value());
        }
        Ok(out)
    }

    pub fn crm_count<R: CrmRecord>(&self) -> Result<u64> {
        let rtx = self.db().begin_read()?;
        Ok(rtx.open_table(R::TABLE)?.len()?)
    }

    /// A page of ids of one record kind matching `q`, in id order (creation order), and how
    /// many match in all. Answered from the index alone.
    pub fn crm_query<R: CrmRecord>(&self, q: &IdQuery) -> Result<IdPage> {
        let rtx = self.db().begin_read()?;
        if q.all_of.is_empty() {
            let t = rtx.open_table(R::TABLE)?;
            let total = t.len()?;
            let keys = t.iter()?.map(|r| r.map(|(k, _)| k.value()));
            let keys: Box<dyn Iterator<Item = std::result::Result<u64, redb::StorageError>> + '_> =
                if q.newest_first {
                    Box::new(keys.rev())
                } else {
                    Box::new(keys)
                };
            let mut ids = Vec::new();
            for id in keys.skip(q.offset).take(q.limit) {
                ids.push(id?);
            }
            return Ok(IdPage { ids, total });
        }
        let index = rtx.open_table(INDEX)?;
        let mut sets: Vec<Vec<Id>> = Vec::with_capacity(q.all_of.len());
        for group in &q.all_of {
            let mut ids = Vec::new();
            for t in group {
                term_ids(&index, t, &mut ids)?;
            }
            ids.sort_unstable();
            ids.dedup();
            sets.push(ids);
        }
        sets.sort_by_key(|s| s.len());
        let mut it = sets.into_iter();
        let mut ids = it.next().unwrap_or_default();
        for s in it {
            if ids.is_empty() {
                break;
            }
            ids = intersect(&ids, &s);
        }
        let total = ids.len() as u64;
        if q.newest_first {
            ids.reverse();
        }
        let ids = ids.into_iter().skip(q.offset).take(q.limit).collect();
        Ok(IdPage { ids, total })
    }

    /// Ids under an exact index key, ascending.
    pub fn crm_ids(&self, key: &str) -> Result<Vec<Id>> {
        let rtx = self.db().begin_read()?;
        let mut out = Vec::new();
        term_ids(
            &rtx.open_table(INDEX)?,
            &Term::Key(key.to_string()),
            &mut out,
        )?;
        Ok(out)
    }

    /// Ids whose key lies in `[from, to]` under an index prefix (e.g. expiry dates).
    pub fn crm_ids_between(&self, prefix: &str, from: &str, to: &str) -> Result<Vec<Id>> {
        let rtx = self.db().begin_read()?;
        let index = rtx.open_table(INDEX)?;
        let (lo, hi) = (
            format!("{prefix}{from}"),
            prefix_end(&format!("{prefix}{to}")),
        );
        let mut out = Vec::new();
        for row in index.range((lo.as_str(), 0)..=(hi.as_str(), u64::MAX))? {
            out.push(row?.0.value().1);
        }
        Ok(out)
    }

    /// The pipeline board's rows of one stage (amount, currency, owner per opportunity),
    /// in id order, without reading the opportunities.
    pub fn crm_stage_rows(&self, stage: &str) -> Result<Vec<StageRow>> {
        let rtx = self.db().begin_read()?;
        let index = rtx.open_table(INDEX)?;
        let k = format!("opportunity/stage/{stage}");
        let mut out = Vec::new();
        for row in index.range((k.as_str(), 0)..=(k.as_str(), u64::MAX))? {
            let (key, val) = row?;
            out.push(stage_row(key.value().1, val.value()));
        }
        Ok(out)
    }

    pub fn crm_stages(&self) -> Result<Vec<Stage>> {
        let rtx = self.db().begin_read()?;
        stages_in(&rtx.open_table(META)?)
    }
}

/// Rebuilds one kind's index rows (a migration that changes what the kind indexes): drops
/// every row under `prefix` (the kind's `lead/`, `activity/`, ...) and writes the current ones.
pub(crate) fn reindex_in<R: CrmRecord>(wtx: &redb::WriteTransaction, prefix: &str) -> Result<()> {
    let mut index = wtx.open_table(INDEX)?;
    let end = prefix_end(prefix);
    let stale: Vec<(String, u64)> = index
        .range((prefix, 0)..=(end.as_str(), u64::MAX))?
        .map(|row| row.map(|(k, _)| (k.value().0.to_string(), k.value().1)))
        .collect::<std::result::Result<_, _>>()?;
    for (k, id) in &stale {
        index.remove((k.as_str(), *id))?;
    }
    let table = wtx.open_table(R::TABLE)?;
    for row in table.iter()? {
        let (_, v) = row?;
        let r: R = decode(R::NAME, v.value())?;
        for (k, payload) in r.index_rows() {
            index.insert((k.as_str(), r.id()), payload.as_slice())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::model::ActivityKind;

    fn ids(store: &Store, term: Term) -> Vec<Id> {
        store
            .crm_query::<Lead>(&IdQuery {
                all_of: vec![vec![term]],
                newest_first: false,
                offset: 0,
                limit: 100,
            })
            .unwrap()
            .ids
    }

    #[test]
    fn a_v7_store_gets_score_due_and_done_index_rows_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .write_crm(|tx| {
                    for score in [10, 70] {
                        tx.insert(Lead {
                            score,
                            ..Lead::blank()
                        })?;
                    }
                    let t = crate::model::now();
                    tx.insert(Activity {
                        id: 0,
                        kind: ActivityKind::Task,
                        subject: "Call".into(),
                        body: String::new(),
                        record: None,
                        due: Some("2026-01-02".into()),
                        done: false,
                        owner_id: None,
                        created_at: t,
                        updated_at: t,
                    })?;
                    Ok::<_, StoreError>(())
                })
                .unwrap();
            // what a v7 store held: no score, due or done rows, and the old `open_due` row
            store
                .write(|wtx| {
                    let mut index = wtx.open_table(INDEX)?;
                    for (k, id) in [
                        ("lead/score/", 1),
                        ("lead/score/", 2),
                        ("activity/due/", 1),
                        ("activity/done/", 1),
                    ] {
                        let stale: Vec<String> = index
                            .range((k, id)..=(prefix_end(k).as_str(), id))?
                            .filter_map(|r| r.ok())
                            .filter(|(key, _)| key.value().1 == id)
                            .map(|(key, _)| key.value().0.to_string())
                            .collect();
                        for s in stale {
                            index.remove((s.as_str(), id))?;
                        }
                    }
                    index.insert(("activity/open_due/2026-01-02", 1), [].as_slice())?;
                    wtx.open_table(META)?
                        .insert("schema_version", 7u64.to_le_bytes().as_slice())?;
                    Ok::<_, StoreError>(())
                })
                .unwrap();
            assert!(ids(&store, Term::Prefix("lead/score/".into())).is_empty());
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.schema_version().unwrap(),
            crate::store::SCHEMA_VERSION
        );
        assert_eq!(
            ids(&store, Term::Range(score_key(50), score_key(i64::MAX))),
            vec![2]
        );
        let due = |t: Term| {
            store
                .crm_query::<Activity>(&IdQuery {
                    all_of: vec![vec![t]],
                    newest_first: false,
                    offset: 0,
                    limit: 10,
                })
                .unwrap()
                .ids
        };
        assert_eq!(
            due(Term::Range(
                "activity/due/".into(),
                "activity/due/2026-01-02".into()
            )),
            vec![1]
        );
        assert_eq!(due(Term::Key("activity/done/false".into())), vec![1]);
        assert!(due(Term::Prefix("activity/open_due/".into())).is_empty());
    }
}
