//! CSV import of leads, accounts and opportunities, the way contacts are imported
//! (`crate::import`): rows are read one at a time, headers matched case-insensitively (the
//! export's columns, so an export imports again), each bad row reported with its line number
//! while good rows are saved, rows de-duplicated (leads by email, accounts by name, any row by
//! an existing `id`), and batches of 5,000 rows committed in one transaction each. Every row
//! passes the same validation, access checks and audit as a single create or update.

use super::model::{Account, Lead, Opportunity};
use super::{AccountInput, Crm, CrmError, Exported, LeadInput, OpportunityInput, Result, invalid};
use crate::model::Id;
use crate::policy::{Action, Actor};
use crate::store::crm::CrmTx;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

const BATCH: usize = 5_000;
const MAX_ERRORS: usize = 1_000;

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct RowError {
    /// The line of the file (the header is line 1).
    pub line: u64,
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub created: u64,
    pub updated: u64,
    /// Rows not imported, with the reason (at most 1,000 are listed).
    pub errors: Vec<RowError>,
    pub failed: u64,
}

/// A record kind that can be imported from CSV.
pub trait Imported: Exported {
    type Input: DeserializeOwned;
    /// Columns whose cells are numbers (ids, scores).
    const NUMERIC: &'static [&'static str];
    /// Columns the export writes that are not input (ignored).
    const READ_ONLY: &'static [&'static str] = &["id", "created_at", "probability"];
    /// Moves flat cells into the input's shape (e.g. address fields).
    fn shape(row: Map<String, Value>) -> Map<String, Value> {
        row
    }
    /// The stored record this row updates, if any (besides an `id` column).
    fn existing(tx: &CrmTx<'_>, input: &Self::Input) -> Result<Option<Id>>;
    fn create_in(crm: &Crm, tx: &CrmTx<'_>, actor: &Actor, input: &Self::Input) -> Result<()>;
    fn update_in(
        crm: &Crm,
        tx: &CrmTx<'_>,
        actor: &Actor,
        id: Id,
        input: &Self::Input,
    ) -> Result<()>;
}

impl Imported for Lead {
    type Input = LeadInput;
    const NUMERIC: &'static [&'static str] = &["score", "assigned_to"];
    fn existing(tx: &CrmTx<'_>, input: &LeadInput) -> Result<Option<Id>> {
        let Some(email) = input.email.as_deref().map(|e| e.trim().to_lowercase()) else {
            return Ok(None);
        };
        Ok(tx.ids(&format!("lead/email/{email}"))?.first().copied())
    }
    fn create_in(crm: &Crm, tx: &CrmTx<'_>, actor: &Actor, input: &LeadInput) -> Result<()> {
        crm.create_lead_in(tx, actor, input).map(drop)
    }
    fn update_in(
        crm: &Crm,
        tx: &CrmTx<'_>,
        actor: &Actor,
        id: Id,
        input: &LeadInput,
    ) -> Result<()> {
        crm.update_lead_in(tx, actor, id, input).map(drop)
    }
}

impl Imported for Account {
    type Input = AccountInput;
    const NUMERIC: &'static [&'static str] = &["parent_id", "owner_id"];
    fn shape(mut row: Map<String, Value>) -> Map<String, Value> {
        let mut address = Map::new();
        for f in ["street", "city", "postal_code", "region", "country"] {
            if let Some(v) = row.remove(f) {
                address.insert(f.into(), v);
            }
        }
        if !address.is_empty() {
            row.insert("address".into(), Value::Object(address));
        }
        row
    }
    fn existing(tx: &CrmTx<'_>, input: &AccountInput) -> Result<Option<Id>> {
        let Some(name) = input.name.as_deref().map(|n| n.trim().to_lowercase()) else {
            return Ok(None);
        };
        Ok(tx.ids(&format!("account/name/{name}"))?.first().copied())
    }
    fn create_in(crm: &Crm, tx: &CrmTx<'_>, actor: &Actor, input: &AccountInput) -> Result<()> {
        crm.create_account_in(tx, actor, input).map(drop)
    }
    fn update_in(
        crm: &Crm,
        tx: &CrmTx<'_>,
        actor: &Actor,
        id: Id,
        input: &AccountInput,
    ) -> Result<()> {
        crm.update_account_in(tx, actor, id, input).map(drop)
    }
}

impl Imported for Opportunity {
    type Input = OpportunityInput;
    const NUMERIC: &'static [&'static str] = &["account_id", "contact_id", "owner_id"];
    fn existing(_: &CrmTx<'_>, _: &OpportunityInput) -> Result<Option<Id>> {
        Ok(None)
    }
    fn create_in(crm: &Crm, tx: &CrmTx<'_>, actor: &Actor, input: &OpportunityInput) -> Result<()> {
        crm.create_opportunity_in(tx, actor, input).map(drop)
    }
    fn update_in(
        crm: &Crm,
        tx: &CrmTx<'_>,
        actor: &Actor,
        id: Id,
        input: &OpportunityInput,
    ) -> Result<()> {
        crm.update_opportunity_in(tx, actor, id, input).map(drop)
    }
}

/// A row's own problem (reported, the import goes on) rather than the store's (which stops it).
fn row_problem(e: &CrmError) -> bool {
    matches!(
        e,
        CrmError::Invalid { .. }
            | CrmError::NotFound(_)
            | CrmError::Conflict(_)
            | CrmError::Denied(_)
    )
}

impl ImportReport {
    fn fail(&mut self, line: u64, message: String) {
        self.failed += 1;
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(RowError { line, message });
        }
    }
}

type Row<I> = (u64, Option<Id>, I);

impl Crm {
    /// Imports CSV rows of one kind. Unknown columns are ignored; an empty cell leaves the
    /// field as it is.
    pub fn import<R: Imported>(
        &self,
        actor: &Actor,
        data: impl std::io::Read,
    ) -> Result<ImportReport> {
        actor.check_crm_kind(R::KIND, Action::Create)?;
        let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(data);
        let headers: Vec<String> = rdr
            .headers()
            .map_err(|e| invalid("csv", format!("the header row is not valid CSV: {e}")))?
            .iter()
            .map(|h| {
                h.trim()
                    .trim_start_matches('\u{feff}')
                    .trim()
                    .to_lowercase()
            })
            .collect();
        if !headers
            .iter()
            .any(|h| R::HEADER.contains(&h.as_str()) && !R::READ_ONLY.contains(&h.as_str()))
        {
            return Err(invalid(
                "csv",
                format!(
                    "the header row names none of the columns: {}",
                    R::HEADER.join(", ")
                ),
            ));
        }
        let mut report = ImportReport::default();
        let mut batch: Vec<Row<R::Input>> = Vec::with_capacity(BATCH);
        for rec in rdr.records() {
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map(|p| p.line()).unwrap_or(0);
                    report.fail(line, format!("not valid CSV: {e}"));
                    continue;
                }
            };
            let line = rec.position().map(|p| p.line()).unwrap_or(0);
            match parse_row::<R>(&headers, &rec) {
                Ok((id, input)) => batch.push((line, id, input)),
                Err(m) => report.fail(line, m),
            }
            if batch.len() >= BATCH {
                self.import_batch::<R>(actor, std::mem::take(&mut batch), &mut report)?;
            }
        }
        if !batch.is_empty() {
            self.import_batch::<R>(actor, batch, &mut report)?;
        }
        report.errors.sort_by_key(|e| e.line);
        Ok(report)
    }

    fn import_batch<R: Imported>(
        &self,
        actor: &Actor,
        rows: Vec<Row<R::Input>>,
        report: &mut ImportReport,
    ) -> Result<()> {
        let outcome = self.store.write_crm(|tx| -> Result<ImportReport> {
            let mut r = ImportReport::default();
            for (line, id, input) in &rows {
                let target = match id {
                    Some(id) => Some(*id),
                    None => R::existing(tx, input)?,
                };
                let done = match target {
                    Some(id) => R::update_in(self, tx, actor, id, input).map(|_| false),
                    None => R::create_in(self, tx, actor, input).map(|_| true),
                };
                match done {
                    Ok(true) => r.created += 1,
                    Ok(false) => r.updated += 1,
                    Err(e) if row_problem(&e) => r.fail(*line, e.to_string()),
                    Err(e) => return Err(e),
                }
            }
            Ok(r)
        })?;
        report.created += outcome.created;
        report.updated += outcome.updated;
        report.failed += outcome.failed;
        let room = MAX_ERRORS.saturating_sub(report.errors.len());
        report.errors.extend(outcome.errors.into_iter().take(room));
        Ok(())
    }
}

/// One row as the kind's input (and its `id` column, if any).
fn parse_row<R: Imported>(
    headers: &[String],
    rec: &csv::StringRecord,
) -> std::result::Result<(Option<Id>, R::Input), String> {
    let mut map = Map::new();
    let mut id = None;
    for (h, cell) in headers.iter().zip(rec.iter()) {
        let cell = cell.trim();
        if cell.is_empty() || !R::HEADER.contains(&h.as_str()) {
            continue;
        }
        if h == "id" {
            id = Some(
                cell.parse::<Id>()
                    .map_err(|_| format!("id '{cell}' is not a number"))?,
            );
            continue;
        }
        if R::READ_ONLY.contains(&h.as_str()) {
            continue;
        }
        let v = if R::NUMERIC.contains(&h.as_str()) {
            Value::from(
                cell.parse::<i64>()
                    .map_err(|_| format!("{h} '{cell}' is not a number"))?,
            )
        } else {
            Value::from(cell)
        };
        map.insert(h.clone(), v);
    }
    let input = serde_json::from_value(Value::Object(R::shape(map))).map_err(|e| e.to_string())?;
    Ok((id, input))
}
