//! CRM facts a filter may test — certifications (renewals) and lead scores — read from the
//! store when a filter uses them, as the sorted ids of the contacts each test holds for.
//! They are not in the row cache: they change outside the contact change log, and only the
//! filters that name them pay for them.

use super::lang::{CmpOp, Expr, Pred};
use crate::crm::model::{Certification, Lead};
use crate::model::Id;
use crate::store::crm::{IdQuery, Term, score_key};
use crate::store::{Store, StoreError};
use std::collections::HashMap;
use time::OffsetDateTime;

/// The contacts each CRM test of one filter holds for.
#[derive(Debug, Default)]
pub(crate) struct Facts {
    sets: Vec<(Pred, Vec<Id>)>,
}

impl Facts {
    /// Reads what the CRM tests in `e` need, as of `now`.
    pub fn load(store: &Store, e: &Expr, now: OffsetDateTime) -> Result<Facts, StoreError> {
        let mut preds = Vec::new();
        collect(e, &mut preds);
        let mut facts = Facts::default();
        for p in preds {
            if !facts.sets.iter().any(|(q, _)| *q == p) {
                let ids = resolve(store, &p, now)?;
                facts.sets.push((p, ids));
            }
        }
        Ok(facts)
    }

    /// The contacts `p` holds for, ascending (none when `p` was not loaded).
    pub fn ids(&self, p: &Pred) -> &[Id] {
        self.sets
            .iter()
            .find(|(q, _)| q == p)
            .map(|(_, ids)| ids.as_slice())
            .unwrap_or_default()
    }
}

fn collect(e: &Expr, out: &mut Vec<Pred>) {
    match e {
        Expr::And(v) | Expr::Or(v) => v.iter().for_each(|x| collect(x, out)),
        Expr::Not(x) => collect(x, out),
        Expr::Pred(p) if p.is_crm() => out.push(p.clone()),
        _ => {}
    }
}

/// Ids under one index range of a CRM record kind.
fn range<R: crate::store::crm::CrmRecord>(
    store: &Store,
    from: String,
    to: String,
) -> Result<Vec<Id>, StoreError> {
    Ok(store
        .crm_query::<R>(&IdQuery {
            all_of: vec![vec![Term::Range(from, to)]],
            newest_first: false,
            offset: 0,
            limit: 100_000_000,
        })?
        .ids)
}

fn every<R: crate::store::crm::CrmRecord>(store: &Store) -> Result<Vec<R>, StoreError> {
    let mut out = Vec::new();
    for chunk in store.crm_ids_all::<R>()?.chunks(1_000) {
        out.extend(store.crm_get_many::<R>(chunk)?);
    }
    Ok(out)
}

fn resolve(store: &Store, p: &Pred, now: OffsetDateTime) -> Result<Vec<Id>, StoreError> {
    let today = now.date();
    let mut ids: Vec<Id> = match p {
        Pred::CertExpiring(secs) => {
            let until = (now + time::Duration::seconds(*secs)).date();
            let certs = range::<Certification>(
                store,
                format!("certification/expires/{today}"),
                format!("certification/expires/{until}"),
            )?;
            store
                .crm_get_many::<Certification>(&certs)?
                .into_iter()
                .map(|c| c.contact_id)
                .collect()
        }
        Pred::Certified(name) => {
            let today = today.to_string();
            every::<Certification>(store)?
                .into_iter()
                .filter(|c| {
                    c.name.to_lowercase().contains(name.as_str())
                        && c.expires.as_deref().is_none_or(|e| e >= today.as_str())
                })
                .map(|c| c.contact_id)
                .collect()
        }
        Pred::LeadScore(op, x) => {
            // a contact's score is its best lead's: for `>=`, `>` and `=` only the leads at or
            // above the bound can decide it, and the score index finds them
            let leads = match op {
                CmpOp::Ge | CmpOp::Gt | CmpOp::Eq => {
                    let from = if x.is_finite() {
                        x.ceil().clamp(i64::MIN as f64, i64::MAX as f64) as i64
                    } else if *x > 0.0 {
                        i64::MAX
                    } else {
                        i64::MIN
                    };
                    let ids = range::<Lead>(store, score_key(from), score_key(i64::MAX))?;
                    store.crm_get_many::<Lead>(&ids)?
                }
                _ => every::<Lead>(store)?,
            };
            // the contacts of the leads not converted, by address, in one read
            let by_email = store.contact_ids_by_email(
                &leads.iter().map(|l| l.email.as_str()).collect::<Vec<_>>(),
            )?;
            let mut best: HashMap<Id, i64> = HashMap::new();
            for (l, by_email) in leads.iter().zip(by_email) {
                let contact = l
                    .converted_contact_id
                    .or(by_email.filter(|_| !l.email.is_empty()));
                if let Some(c) = contact {
                    let s = best.entry(c).or_insert(l.score);
                    *s = (*s).max(l.score);
                }
            }
            best.into_iter()
                .filter(|(_, s)| super::eval::cmp(&(*s as f64), *op, x))
                .map(|(c, _)| c)
                .collect()
        }
        _ => Vec::new(),
    };
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}
