//! CSV export of leads, accounts, opportunities and activities: the same filters and the same
//! scope as the lists (so an export never holds a record its caller could not list), amounts
//! left empty for roles that do not see them, and an audit entry per export.

use super::model::{Account, Activity, Lead, Opportunity};
use super::{Crm, CrmError, ListQuery, Listed, Result};
use crate::audit::Entry;
use crate::model::AuditAction;
use crate::policy::{Action, Actor};
use crate::store::crm::IdQuery;

/// Records loaded from the store at a time while writing an export.
const CHUNK: usize = 1000;

/// A record kind's CSV columns.
pub trait Exported: Listed {
    const HEADER: &'static [&'static str];
    /// The row's cells in `HEADER` order; `amounts` is false for roles that do not see them.
    fn row(&self, amounts: bool) -> Vec<String>;
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

impl Exported for Lead {
    const HEADER: &'static [&'static str] = &[
        "id",
        "first_name",
        "last_name",
        "email",
        "phone",
        "job_title",
        "company",
        "website",
        "industry",
        "company_size",
        "country",
        "source",
        "status",
        "score",
        "assigned_to",
        "created_at",
    ];
    fn row(&self, _: bool) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.first_name.clone(),
            self.last_name.clone(),
            self.email.clone(),
            self.phone.clone(),
            self.job_title.clone(),
            self.company.clone(),
            self.website.clone(),
            self.industry.clone(),
            self.company_size.clone(),
            self.country.clone(),
            self.source.clone(),
            self.status.as_str().into(),
            self.score.to_string(),
            opt(self.assigned_to),
            self.created_at.to_string(),
        ]
    }
}

impl Exported for Account {
    const HEADER: &'static [&'static str] = &[
        "id",
        "name",
        "domain",
        "industry",
        "size",
        "street",
        "city",
        "postal_code",
        "region",
        "country",
        "parent_id",
        "owner_id",
    ];
    fn row(&self, _: bool) -> Vec<String> {
        let a = &self.address;
        vec![
            self.id.to_string(),
            self.name.clone(),
            self.domain.clone(),
            self.industry.clone(),
            self.size.clone(),
            a.street.clone(),
            a.city.clone(),
            a.postal_code.clone(),
            a.region.clone(),
            a.country.clone(),
            opt(self.parent_id),
            opt(self.owner_id),
        ]
    }
}

impl Exported for Opportunity {
    const HEADER: &'static [&'static str] = &[
        "id",
        "name",
        "account_id",
        "contact_id",
        "programme",
        "amount",
        "currency",
        "stage",
        "probability",
        "expected_close",
        "owner_id",
        "lost_reason",
    ];
    fn row(&self, amounts: bool) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.name.clone(),
            opt(self.account_id),
            opt(self.contact_id),
            self.programme.clone(),
            if amounts {
                opt(self.amount.as_ref())
            } else {
                String::new()
            },
            self.currency.clone(),
            self.stage.clone(),
            self.probability.to_string(),
            opt(self.expected_close.as_ref()),
            opt(self.owner_id),
            self.lost_reason.clone(),
        ]
    }
}

impl Exported for Activity {
    const HEADER: &'static [&'static str] =
        &["id", "kind", "subject", "record", "due", "done", "owner_id"];
    fn row(&self, _: bool) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.kind.as_str().into(),
            self.subject.clone(),
            opt(self.record.as_ref()),
            opt(self.due.as_ref()),
            self.done.to_string(),
            opt(self.owner_id),
        ]
    }
}

/// Cells that a spreadsheet would run as a formula get a leading apostrophe.
fn defuse(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell
    }
}

impl Crm {
    /// Every record of a kind the actor may list that matches the list filters, as CSV
    /// (oldest first), recorded in the audit trail.
    pub fn export<R: Exported>(&self, actor: &Actor, q: &ListQuery) -> Result<Vec<u8>> {
        actor.check_crm_kind(R::KIND, Action::Read)?;
        let all = self.store.crm_query::<R>(&IdQuery {
            all_of: self.conditions::<R>(actor, q)?,
            newest_first: false,
            offset: 0,
            limit: usize::MAX,
        })?;
        let mut w = csv::Writer::from_writer(Vec::new());
        let csv_err =
            |e: csv::Error| CrmError::Store(crate::store::StoreError::Invalid(e.to_string()));
        w.write_record(R::HEADER).map_err(csv_err)?;
        let mut rows = 0u64;
        for ids in all.ids.chunks(CHUNK) {
            for r in self.store.crm_get_many::<R>(ids)? {
                if actor.check_crm(R::KIND, r.owner(), Action::Read).is_ok() {
                    w.write_record(r.row(actor.sees_amounts()).into_iter().map(defuse))
                        .map_err(csv_err)?;
                    rows += 1;
                }
            }
        }
        let bytes = w
            .into_inner()
            .map_err(|e| CrmError::Store(crate::store::StoreError::Invalid(e.to_string())))?;
        self.store.write(|wtx| -> Result<()> {
            Entry::new(actor, AuditAction::Export, R::KIND.plural())
                .detail(format!("{rows} rows as CSV"))
                .append(wtx)?;
            Ok(())
        })?;
        Ok(bytes)
    }
}
