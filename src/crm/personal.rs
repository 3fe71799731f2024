//! The CRM's part in data-subject requests: leads with a person's address (and the
//! activities logged on them) join the contact's export, and are deleted by the contact's
//! erasure, through `gdpr`'s `PersonalDataSource` hook.

use super::model::{Activity, Lead};
use crate::audit;
use crate::gdpr::{Gdpr, PersonalDataSource, Result};
use crate::model::{AuditAction, Id};
use crate::policy::Actor;
use crate::store::Store;
use crate::store::crm::CrmTx;
use std::sync::Arc;

/// Deletes a lead and the activities logged on it inside the caller's transaction; their
/// audit history keeps its shape with personal values replaced by keyed hashes, and one entry
/// records why. Returns how many records went (0 when the lead was already gone).
fn delete_lead_in(tx: &CrmTx<'_>, key: &[u8; 32], actor: &Actor, id: Id, why: &str) -> Result<u64> {
    let wtx = tx.wtx();
    let mut n = 0;
    for a in tx.ids(&format!("activity/record/lead:{id}"))? {
        if tx.delete::<Activity>(a)?.is_some() {
            n += 1;
            audit::redact_in(wtx, key, actor, &audit::record("activity", a))?;
        }
    }
    if tx.delete::<Lead>(id)?.is_some() {
        n += 1;
        let rec = audit::record("lead", id);
        audit::redact_in(wtx, key, actor, &rec)?;
        audit::Entry::new(actor, AuditAction::Erase, rec)
            .detail(why)
            .append(wtx)?;
    }
    Ok(n)
}

/// The ids of the leads with any of `emails`, through an index lookup (`ids_of` a key).
fn leads_of(emails: &[String], mut ids_of: impl FnMut(&str) -> Result<Vec<Id>>) -> Result<Vec<Id>> {
    let mut ids = Vec::new();
    for e in emails {
        ids.extend(ids_of(&format!("lead/email/{}", e.to_lowercase()))?);
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

pub struct LeadPersonalData {
    store: Arc<Store>,
}

impl LeadPersonalData {
    pub fn new(store: Arc<Store>) -> LeadPersonalData {
        LeadPersonalData { store }
    }

    fn lead_ids(&self, emails: &[String]) -> Result<Vec<Id>> {
        leads_of(emails, |key| Ok(self.store.crm_ids(key)?))
    }
}

impl PersonalDataSource for LeadPersonalData {
    fn name(&self) -> &'static str {
        "crm_leads"
    }

    fn export(&self, emails: &[String]) -> Result<serde_json::Value> {
        let mut out = Vec::new();
        for lead in self.store.crm_get_many::<Lead>(&self.lead_ids(emails)?)? {
            out.push(exported(&self.store, lead)?);
        }
        Ok(serde_json::Value::Array(out))
    }

    fn erase_in(
        &self,
        wtx: &redb::WriteTransaction,
        actor: &Actor,
        emails: &[String],
        key: &[u8; 32],
    ) -> Result<u64> {
        let tx = CrmTx::new(wtx);
        let mut n = 0;
        for id in leads_of(emails, |key| Ok(tx.ids(key)?))? {
            n += delete_lead_in(&tx, key, actor, id, "deleted with the person's erasure")?;
        }
        Ok(n)
    }
}

/// A lead with its activities, as exports hold it.
fn exported(store: &Store, lead: Lead) -> Result<serde_json::Value> {
    let ids = store.crm_ids(&format!("activity/record/lead:{}", lead.id))?;
    let activities = store.crm_get_many::<Activity>(&ids)?;
    Ok(serde_json::json!({"lead": lead, "activities": activities}))
}

/// The contact a lead's person is, if any: the one it was converted into, or the one with
/// its address.
pub fn contact_of(store: &Store, lead: &Lead) -> crate::store::Result<Option<Id>> {
    if let Some(c) = lead.converted_contact_id
        && store.contact(c)?.is_some()
    {
        return Ok(Some(c));
    }
    if lead.email.is_empty() {
        return Ok(None);
    }
    store.contact_id_by_email(&lead.email)
}

/// Everything held about a lead's person (Art. 20), for whoever may read the lead: the
/// contact's export when the person is a contact the actor may read (the lead is in it),
/// otherwise what is held about the lead's address.
pub fn export_lead(
    crm: &super::Crm,
    gdpr: &Gdpr,
    actor: &Actor,
    id: Id,
) -> super::Result<crate::gdpr::Export> {
    let lead = crm.lead(actor, id)?;
    if let Some(c) = contact_of(&crm.store, &lead)? {
        match gdpr.export(actor, c) {
            Err(crate::gdpr::GdprError::NotFound(_)) => {}
            other => return Ok(other?),
        }
    }
    let mut export = gdpr.export_address(
        actor,
        &audit::record("lead", id),
        &lead.email,
        lead.consents.clone(),
    )?;
    // a lead without an address is found by none of the address look-ups: add it
    let leads = export
        .other
        .entry("crm_leads".into())
        .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    if let Some(list) = leads.as_array_mut()
        && !list.iter().any(|l| l["lead"]["id"] == id)
    {
        list.push(exported(&crm.store, lead)?);
    }
    Ok(export)
}

/// Erases a lead's person (Art. 17): the contact with everything about it when the person
/// is one, otherwise every trace of the lead's address (the lead with it); a lead without
/// an address is deleted with its activities and its audit history redacted. Admins and
/// managers only.
pub fn erase_lead(
    crm: &super::Crm,
    gdpr: &Gdpr,
    actor: &Actor,
    id: Id,
) -> super::Result<crate::gdpr::Erasure> {
    actor.check_erase()?;
    let lead = crm.lead(actor, id)?;
    if let Some(c) = contact_of(&crm.store, &lead)? {
        return Ok(gdpr.erase(actor, c)?);
    }
    if !lead.email.is_empty() {
        return Ok(gdpr.erase_address(actor, &audit::record("lead", id), &lead.email)?);
    }
    let key = crm.store.secret(crate::store::gdpr::ERASURE_SECRET)?;
    let n = crm.store.write(|wtx| {
        delete_lead_in(
            &CrmTx::new(wtx),
            &key,
            actor,
            id,
            "erased on request (GDPR Art. 17)",
        )
    })?;
    Ok(crate::gdpr::Erasure {
        contact_id: None,
        already_erased: false,
        removed: crate::store::gdpr::Scrubbed {
            other: n,
            ..Default::default()
        },
        audit_entries_redacted: 0,
        purged: crm.store.purge()?,
    })
}

/// Retention for leads that never became customers: an unconverted lead with no change and
/// no activity for `days` is deleted with its activities (their audit history redacted, one
/// entry per lead recording why), in one transaction.
pub struct UnconvertedLeads {
    pub days: u32,
    pub store: Arc<Store>,
}

impl UnconvertedLeads {
    /// The stale leads as of `now`.
    fn stale(&self, now: time::OffsetDateTime) -> Result<Vec<Id>> {
        let cutoff = now - time::Duration::days(i64::from(self.days));
        let mut out = Vec::new();
        let ids = self.store.crm_ids_all::<Lead>()?;
        for chunk in ids.chunks(1_000) {
            for lead in self.store.crm_get_many::<Lead>(chunk)? {
                if lead.status == super::model::LeadStatus::Converted || lead.updated_at >= cutoff {
                    continue;
                }
                let acts = self
                    .store
                    .crm_ids(&format!("activity/record/lead:{}", lead.id))?;
                let active = self
                    .store
                    .crm_get_many::<Activity>(&acts)?
                    .iter()
                    .any(|a| a.updated_at >= cutoff);
                if !active {
                    out.push(lead.id);
                }
            }
        }
        Ok(out)
    }
}

impl crate::gdpr::RetentionRule for UnconvertedLeads {
    fn name(&self) -> &'static str {
        "unconverted_leads"
    }

    fn apply(&self, _gdpr: &crate::gdpr::Gdpr, now: time::OffsetDateTime) -> Result<u64> {
        let stale = self.stale(now)?;
        if stale.is_empty() {
            return Ok(0);
        }
        let key = self.store.secret(crate::store::gdpr::ERASURE_SECRET)?;
        let system = Actor {
            email: "system".into(),
            ..Actor::system()
        };
        let why = format!("retention: unconverted, no activity for {} days", self.days);
        let n = self.store.write(|wtx| {
            let tx = CrmTx::new(wtx);
            let mut n = 0;
            for id in &stale {
                if delete_lead_in(&tx, &key, &system, *id, &why)? > 0 {
                    n += 1;
                }
            }
            Ok::<_, crate::gdpr::GdprError>(n)
        })?;
        if n > 0 {
            self.store.purge()?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gdpr::RetentionRule;

    fn lead(email: &str, status: &str, at: time::OffsetDateTime) -> Lead {
        let at = at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        serde_json::from_value(serde_json::json!({
            "id": 0, "email": email, "first_name": "Test", "status": status, "score": 0,
            "created_at": at, "updated_at": at,
        }))
        .unwrap()
    }

    #[test]
    fn unconverted_leads_without_activity_expire_as_of_a_fake_clock() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let search =
            Arc::new(crate::search::SearchIndex::open(&dir.path().join("search"), &store).unwrap());
        let contacts = Arc::new(crate::contacts::Contacts::new(
            store.clone(),
            search.clone(),
        ));
        let gdpr = crate::gdpr::Gdpr::new(store.clone(), search, contacts);
        let t0 = time::macros::datetime!(2025-01-01 00:00 UTC);
        let ids: Vec<Id> = store
            .write(|wtx| {
                let tx = CrmTx::new(wtx);
                let mut ids = Vec::new();
                for (email, status) in [
                    ("stale@example.test", "new"),
                    ("won@example.test", "converted"),
                    ("busy@example.test", "contacted"),
                ] {
                    ids.push(tx.insert(lead(email, status, t0))?.id);
                }
                Ok::<_, crate::store::StoreError>(ids)
            })
            .unwrap();
        // a call logged on the third lead a year later keeps it alive
        store
            .write(|wtx| {
                let tx = CrmTx::new(wtx);
                let at = (t0 + time::Duration::days(365))
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap();
                let a: Activity = serde_json::from_value(serde_json::json!({
                    "id": 0, "kind": "call", "subject": "Follow-up", "record": format!("lead:{}", ids[2]),
                    "created_at": at, "updated_at": at,
                }))
                .unwrap();
                tx.insert(a)?;
                Ok::<_, crate::store::StoreError>(())
            })
            .unwrap();
        let rule = UnconvertedLeads {
            days: 730,
            store: store.clone(),
        };
        assert_eq!(
            rule.apply(&gdpr, t0 + time::Duration::days(729)).unwrap(),
            0
        );
        assert_eq!(
            rule.apply(&gdpr, t0 + time::Duration::days(731)).unwrap(),
            1
        );
        assert!(
            store.crm_get::<Lead>(ids[0]).unwrap().is_none(),
            "stale lead gone"
        );
        assert!(
            store.crm_get::<Lead>(ids[1]).unwrap().is_some(),
            "converted lead kept"
        );
        assert!(
            store.crm_get::<Lead>(ids[2]).unwrap().is_some(),
            "lead with activity kept"
        );
        // two years after the call it goes too, with its activity
        assert_eq!(
            rule.apply(&gdpr, t0 + time::Duration::days(365 + 731))
                .unwrap(),
            1
        );
        assert!(store.crm_get::<Lead>(ids[2]).unwrap().is_none());
        assert!(store.crm_ids("activity/record/lead:3").unwrap().is_empty());
    }
}
