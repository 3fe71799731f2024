//! The audit trail: who created, changed, deleted, exported or erased what, from where, and
//! which fields changed from what to what. Entries are appended inside the write transaction
//! of the change they record (see [`Entry::append`]), so an audited change and its entry
//! commit together or not at all; the store chains them by hash ([`crate::store::audit`]) so
//! that an edited, removed or reordered entry is found by [`Audit::verify`].
//!
//! Secrets never reach an entry: fields named like secrets are left out of every diff, and a
//! changed password is recorded only as "(changed)". Personal data is kept out of record ids
//! (contacts are `contact:<id>`); the before/after values of a contact can hold personal data,
//! so erasure calls [`redact_in`], which replaces those values by keyed hashes and records a
//! `redact` entry, leaving the chain verifiable.

use crate::config::Settings;
use crate::model::{
    AuditAction, AuditEntry, FieldChange, ImportJob, ImportStatus, Suppression, now,
};
use crate::policy::{Actor, Denied};
use crate::store::audit::{self as chain, AuditFilter, ChainReport};
use crate::store::{Store, StoreError};
use redb::WriteTransaction;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the export failed: {0}")]
    Write(String),
}

pub type Result<T, E = AuditError> = std::result::Result<T, E>;

/// Field names whose values are secrets: never written to an entry.
const SECRET_FIELDS: &[&str] = &[
    "password",
    "password_hash",
    "hash",
    "token",
    "secret",
    "csrf_token",
    "session",
    "api_key",
];

/// Bookkeeping fields that change with every write and say nothing about the change.
const NOISE_FIELDS: &[&str] = &["id", "seq", "created_at", "updated_at", "last_used_at"];

/// What a secret field's change is recorded as.
pub const SECRET_CHANGED: &str = "(changed)";

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(_) => false,
    }
}

/// The changed top-level fields of a record, before and after.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes(BTreeMap<String, FieldChange>);

impl Changes {
    /// Compares two JSON objects field by field (a missing side is a creation or deletion;
    /// then empty values are left out). Unchanged, secret and bookkeeping fields are skipped.
    pub fn between(before: Option<&Value>, after: Option<&Value>) -> Changes {
        let empty = serde_json::Map::new();
        let b = before.and_then(Value::as_object).unwrap_or(&empty);
        let a = after.and_then(Value::as_object).unwrap_or(&empty);
        let one_sided = before.is_none() || after.is_none();
        let mut out = Changes::default();
        let names: std::collections::BTreeSet<&String> = b.keys().chain(a.keys()).collect();
        for name in names {
            if SECRET_FIELDS.contains(&name.as_str()) || NOISE_FIELDS.contains(&name.as_str()) {
                continue;
            }
            let bv = b.get(name).cloned().unwrap_or(Value::Null);
            let av = a.get(name).cloned().unwrap_or(Value::Null);
            if bv == av || (one_sided && is_empty(&bv) && is_empty(&av)) {
                continue;
            }
            out = out.set(name, bv, av);
        }
        out
    }

    /// [`Changes::between`] two serialisable records.
    pub fn of<T: Serialize>(before: Option<&T>, after: Option<&T>) -> Changes {
        let b = before.and_then(|v| serde_json::to_value(v).ok());
        let a = after.and_then(|v| serde_json::to_value(v).ok());
        Changes::between(b.as_ref(), a.as_ref())
    }

    pub fn set(mut self, field: &str, before: Value, after: Value) -> Changes {
        self.0.insert(
            field.to_string(),
            FieldChange {
                before,
                after,
                salt: None,
                digest: String::new(),
                redacted: false,
            },
        );
        self
    }

    /// Records that a secret changed, without its value.
    pub fn secret_changed(self, field: &str) -> Changes {
        self.set(field, Value::Null, Value::String(SECRET_CHANGED.into()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn fields(&self) -> &BTreeMap<String, FieldChange> {
        &self.0
    }
}

/// How an actor is named in entries: "user:<id>" with the email, or the command line
/// ("cli") and the server itself ("system") by name.
pub fn actor_ref(actor: &Actor) -> (String, Option<String>) {
    if actor.user_id == 0 {
        (actor.email.clone(), None)
    } else {
        (format!("user:{}", actor.user_id), Some(actor.email.clone()))
    }
}

/// The person a message was sent to, acting through an unsubscribe or preference link
/// (named "recipient" in entries; the role is never used for access).
pub fn recipient(ip: Option<String>) -> Actor {
    Actor {
        user_id: 0,
        email: "recipient".into(),
        role: crate::model::Role::Viewer,
        ip,
        team: Vec::new(),
    }
}

/// The record id of a contact, list, user, token, import or suppression.
pub fn record(kind: &str, id: impl std::fmt::Display) -> String {
    format!("{kind}:{id}")
}

/// An entry about to be appended.
#[derive(Debug, Clone)]
pub struct Entry(AuditEntry);

impl Entry {
    pub fn new(actor: &Actor, action: AuditAction, record: impl Into<String>) -> Entry {
        let (who, email) = actor_ref(actor);
        Entry(AuditEntry {
            seq: 0,
            at: now(),
            actor: who,
            actor_email: email,
            ip: actor.ip.clone(),
            action,
            record: record.into(),
            record_salt: None,
            record_digest: None,
            detail: String::new(),
            changes: BTreeMap::new(),
            changes_digest: String::new(),
            prev_hash: String::new(),
            hash: String::new(),
        })
    }

    /// An entry by nobody known (a failed login), from `ip`.
    pub fn anonymous(ip: Option<&str>, action: AuditAction, record: impl Into<String>) -> Entry {
        let mut e = Entry::new(&Actor::system(), action, record);
        e.0.actor = "anonymous".into();
        e.0.ip = ip.map(str::to_string);
        e
    }

    pub fn changes(mut self, c: Changes) -> Entry {
        self.0.changes = c.0;
        self
    }

    pub fn detail(mut self, d: impl Into<String>) -> Entry {
        self.0.detail = d.into();
        self
    }

    /// Appends the entry inside `wtx`, the transaction of the change it records.
    pub fn append(self, wtx: &WriteTransaction) -> Result<AuditEntry, StoreError> {
        chain::append(wtx, self.0)
    }
}

/// Records an address put on (`added`) or taken off the suppression list by a person.
pub fn suppression_changed(
    wtx: &WriteTransaction,
    actor: &Actor,
    s: &Suppression,
    added: bool,
) -> Result<AuditEntry, StoreError> {
    let reason = Value::String(s.reason.as_str().into());
    let (action, before, after) = if added {
        (AuditAction::Suppress, Value::Null, reason)
    } else {
        (AuditAction::Unsuppress, reason, Value::Null)
    };
    Entry::new(actor, action, record("suppression", &s.email))
        .changes(Changes::default().set("reason", before, after))
        .append(wtx)
}

/// Replaces the personal data in the entries about `record` by keyed hashes and records a
/// `redact` entry naming them, inside the caller's transaction (erasure runs this in its
/// own). Returns the seqs redacted.
pub fn redact_in(
    wtx: &WriteTransaction,
    key: &[u8; 32],
    actor: &Actor,
    record: &str,
) -> Result<Vec<u64>, StoreError> {
    let seqs = chain::redact_in(wtx, record, key)?;
    if !seqs.is_empty() {
        Entry::new(actor, AuditAction::Redact, record)
            .changes(Changes::default().set("entries", Value::Null, serde_json::json!(seqs)))
            .detail(format!("personal data removed from {} entries", seqs.len()))
            .append(wtx)?;
    }
    Ok(seqs)
}

/// Erasure's part of the audit trail, inside its transaction: the personal values in the
/// entries about `contact` (a `contact:<id>` record) and about `addresses` (suppression
/// entries, whose ids hold the address: those become `suppression:hmac:…`) are replaced by
/// keyed hashes, and one `redact` entry about `contact` names every entry changed. Returns
/// their seqs.
pub fn redact_person_in(
    wtx: &WriteTransaction,
    key: &[u8; 32],
    actor: &Actor,
    contact: &str,
    addresses: &[String],
) -> Result<Vec<u64>, StoreError> {
    let mut seqs = chain::redact_in(wtx, contact, key)?;
    for a in addresses {
        let rec = record("suppression", a);
        seqs.extend(chain::redact_in(wtx, &rec, key)?);
        let hashed = record("suppression", crate::store::gdpr::hashed_address(key, a));
        seqs.extend(chain::rename_record_in(wtx, &rec, &hashed)?);
    }
    seqs.sort_unstable();
    seqs.dedup();
    if !seqs.is_empty() {
        Entry::new(actor, AuditAction::Redact, contact)
            .changes(Changes::default().set("entries", Value::Null, serde_json::json!(seqs)))
            .detail(format!("personal data removed from {} entries", seqs.len()))
            .append(wtx)?;
    }
    Ok(seqs)
}

/// The one-line verdict printed by `mailstead audit verify`.
pub fn describe_report(r: &ChainReport) -> String {
    match &r.broken {
        None => format!(
            "audit chain intact: {} entries (last hash {})",
            r.entries, r.last_hash
        ),
        Some(b) => format!(
            "audit chain broken at entry {}: {} ({} entries before it verify)",
            b.seq, b.reason, r.entries
        ),
    }
}

/// Parses the query parameters shared by the API, the export and the command line.
pub fn filter(
    record: Option<&str>,
    actor: Option<&str>,
    since: Option<&str>,
) -> Result<AuditFilter> {
    fn non_empty(s: Option<&str>) -> Option<&str> {
        s.map(str::trim).filter(|s| !s.is_empty())
    }
    let record = match non_empty(record) {
        None => None,
        Some(r) => {
            let ok = r.split_once(':').is_some_and(|(kind, id)| {
                !kind.is_empty()
                    && !id.is_empty()
                    && kind.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            });
            if !ok || r.len() > 300 {
                return Err(AuditError::Invalid {
                    field: "record",
                    message: format!(
                        "record '{}' is not of the form kind:id (e.g. contact:42)",
                        r.escape_default()
                    ),
                });
            }
            Some(r.to_string())
        }
    };
    let actor = match non_empty(actor) {
        None => None,
        Some(a) if a.parse::<u64>().is_ok() => Some(format!("user:{a}")),
        Some(a @ ("cli" | "system" | "anonymous" | "recipient")) => Some(a.to_string()),
        Some(a)
            if a.strip_prefix("user:")
                .is_some_and(|n| n.parse::<u64>().is_ok()) =>
        {
            Some(a.to_string())
        }
        Some(a) => {
            return Err(AuditError::Invalid {
                field: "actor",
                message: format!(
                    "actor '{}' is not a user id, cli, system, anonymous or recipient",
                    a.escape_default()
                ),
            });
        }
    };
    let since = match non_empty(since) {
        None => None,
        Some(s) => Some(
            OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).map_err(
                |e| AuditError::Invalid {
                    field: "since",
                    message: format!(
                        "since must be an RFC 3339 time such as 2026-01-31T00:00:00Z ({e})"
                    ),
                },
            )?,
        ),
    };
    Ok(AuditFilter {
        record,
        actor,
        since,
    })
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON entry per line, as stored (hashes included, so the chain can be re-checked).
    JsonLines,
    /// One row per changed field (an entry without changes has one row).
    Csv,
}

impl std::str::FromStr for Format {
    type Err = AuditError;
    fn from_str(s: &str) -> Result<Format> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "jsonl" | "json" | "ndjson" => Ok(Format::JsonLines),
            "csv" => Ok(Format::Csv),
            other => Err(AuditError::Invalid {
                field: "format",
                message: format!("format '{}' is not jsonl or csv", other.escape_default()),
            }),
        }
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The audit service: reading, exporting and verifying the log, with access checks.
pub struct Audit {
    store: Arc<Store>,
    key: [u8; 32],
}

impl Audit {
    pub fn new(store: Arc<Store>) -> Result<Audit, StoreError> {
        let key = store.secret("audit_redaction")?;
        Ok(Audit { store, key })
    }

    /// Appends one entry in a transaction of its own (for events that change nothing else:
    /// exports, failed logins).
    pub fn record(&self, entry: Entry) -> Result<AuditEntry, StoreError> {
        self.store.write(|wtx| entry.append(wtx))
    }

    /// A page of entries, newest first, below the seq `before`.
    pub fn page(
        &self,
        actor: &Actor,
        f: &AuditFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>> {
        actor.check_audit()?;
        Ok(self.store.audit_page(f, before, limit.clamp(1, 500))?)
    }

    /// Writes every entry matching `f`, oldest first, and records the export. Returns the
    /// number of entries written.
    pub fn export(
        &self,
        actor: &Actor,
        f: &AuditFilter,
        format: Format,
        out: &mut dyn std::io::Write,
    ) -> Result<u64> {
        actor.check_audit()?;
        let mut n = 0u64;
        let mut failed: Option<String> = None;
        match format {
            Format::JsonLines => self.store.audit_scan(f, None, false, |e| {
                n += 1;
                let written = serde_json::to_vec(&e)
                    .map_err(|err| err.to_string())
                    .and_then(|mut line| {
                        line.push(b'\n');
                        out.write_all(&line).map_err(|err| err.to_string())
                    });
                written.map_err(|err| failed = Some(err)).is_ok()
            })?,
            Format::Csv => {
                let mut w = csv::Writer::from_writer(&mut *out);
                let header = [
                    "seq",
                    "at",
                    "actor",
                    "actor_email",
                    "ip",
                    "action",
                    "record",
                    "detail",
                    "field",
                    "before",
                    "after",
                    "hash",
                ];
                if let Err(err) = w.write_record(header) {
                    return Err(AuditError::Write(err.to_string()));
                }
                self.store.audit_scan(f, None, false, |e| {
                    n += 1;
                    let at = rfc3339(e.at);
                    let seq = e.seq.to_string();
                    let mut rows: Vec<[String; 3]> = e
                        .changes
                        .iter()
                        .map(|(k, c)| [k.clone(), cell(&c.before), cell(&c.after)])
                        .collect();
                    if rows.is_empty() {
                        rows.push(Default::default());
                    }
                    for [field, before, after] in rows {
                        let rec = [
                            seq.as_str(),
                            at.as_str(),
                            e.actor.as_str(),
                            e.actor_email.as_deref().unwrap_or(""),
                            e.ip.as_deref().unwrap_or(""),
                            e.action.as_str(),
                            e.record.as_str(),
                            e.detail.as_str(),
                            field.as_str(),
                            before.as_str(),
                            after.as_str(),
                            e.hash.as_str(),
                        ];
                        if let Err(err) = w.write_record(rec) {
                            failed = Some(err.to_string());
                            return false;
                        }
                    }
                    true
                })?;
                if let Err(err) = w.flush() {
                    failed.get_or_insert(err.to_string());
                }
            }
        }
        if let Some(err) = failed {
            return Err(AuditError::Write(err));
        }
        let scope = [
            f.record.as_deref().map(|r| format!("record {r}")),
            f.actor.as_deref().map(|a| format!("actor {a}")),
            f.since.map(|s| format!("since {}", rfc3339(s))),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
        let format_name = match format {
            Format::JsonLines => "jsonl",
            Format::Csv => "csv",
        };
        self.record(
            Entry::new(actor, AuditAction::Export, "audit:log").detail(format!(
                "{n} entries as {format_name}{}",
                if scope.is_empty() {
                    String::new()
                } else {
                    format!(" ({scope})")
                }
            )),
        )?;
        Ok(n)
    }

    /// Walks the whole chain.
    pub fn verify(&self, actor: &Actor) -> Result<ChainReport> {
        actor.check_audit_verify()?;
        Ok(self.store.audit_verify()?)
    }

    /// Replaces the personal data in the entries about `record` (see [`redact_in`]).
    pub fn redact_record(&self, actor: &Actor, record: &str) -> Result<Vec<u64>> {
        actor.check_audit_verify()?;
        Ok(self
            .store
            .write(|wtx| redact_in(wtx, &self.key, actor, record))?)
    }

    /// Saves an import job's result and records the import (one entry per job, not per row).
    pub fn save_import(&self, actor: &Actor, job: &ImportJob) -> Result<(), StoreError> {
        let status = match job.status {
            ImportStatus::Running => "running",
            ImportStatus::Done => "done",
            ImportStatus::Failed => "failed",
        };
        let list = job
            .list_id
            .map(|l| format!(", into list {l}"))
            .unwrap_or_default();
        let entry =
            Entry::new(actor, AuditAction::Import, record("import", job.id)).detail(format!(
                "{status}: {} rows, {} created, {} updated, {} skipped{list}",
                job.processed, job.created, job.updated, job.skipped
            ));
        self.store.write(|wtx| {
            crate::store::save_import_in(wtx, job)?;
            entry.append(wtx)?;
            Ok(())
        })
    }

    /// The key of the keyed hashes that replace redacted values (for erasure).
    pub fn redaction_key(&self) -> &[u8; 32] {
        &self.key
    }

    /// Compares the effective settings with those recorded last and records what changed
    /// (at server start). Secrets are redacted in the settings themselves, so for them only
    /// "(secret)" (set) or nothing (unset) is compared and recorded.
    pub fn record_settings(&self, settings: &Settings) -> Result<Option<AuditEntry>> {
        let secret_keys: Vec<&str> = crate::config::OPTIONS
            .iter()
            .filter(|o| o.secret)
            .map(|o| o.key)
            .collect();
        let now_map: BTreeMap<String, String> = settings
            .raw
            .iter()
            .map(|(k, (v, _))| {
                let v = if secret_keys.contains(k) && !v.is_empty() {
                    "(secret)".to_string()
                } else {
                    v.clone()
                };
                (k.to_string(), v)
            })
            .collect();
        // an unset setting and an empty one are the same; both show as null
        let shown = |v: Option<&String>| match v {
            Some(v) if !v.is_empty() => Value::String(v.clone()),
            _ => Value::Null,
        };
        Ok(self.store.write(|wtx| -> Result<_, StoreError> {
            let before = chain::settings_snapshot_in(wtx)?.unwrap_or_default();
            let mut changes = Changes::default();
            let keys: std::collections::BTreeSet<&String> =
                before.keys().chain(now_map.keys()).collect();
            for k in keys {
                let (b, a) = (before.get(k), now_map.get(k));
                let (b, a) = (shown(b), shown(a));
                if b != a {
                    changes = changes.set(k, b, a);
                }
            }
            if changes.is_empty() {
                return Ok(None);
            }
            chain::put_settings_snapshot_in(wtx, &now_map)?;
            let system = Actor {
                email: "system".into(),
                ..Actor::system()
            };
            let n = changes.fields().len();
            let e = Entry::new(&system, AuditAction::Setting, "settings:server")
                .changes(changes)
                .detail(format!("{n} settings differ from the last start"))
                .append(wtx)?;
            Ok(Some(e))
        })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Role;
    use serde_json::json;

    #[test]
    fn diffs_skip_unchanged_secret_and_bookkeeping_fields() {
        let before = json!({"id": 1, "email": "a@x.test", "company": "Acme", "password_hash": "$argon2id$x", "updated_at": "t1", "tags": []});
        let after = json!({"id": 1, "email": "a@x.test", "company": "Globex", "password_hash": "$argon2id$y", "updated_at": "t2", "tags": ["vip"]});
        let c = Changes::between(Some(&before), Some(&after));
        let names: Vec<&str> = c.fields().keys().map(String::as_str).collect();
        assert_eq!(names, ["company", "tags"]);
        assert_eq!(c.fields()["company"].before, json!("Acme"));
        assert_eq!(c.fields()["company"].after, json!("Globex"));

        let created = Changes::between(None, Some(&after));
        let names: Vec<&str> = created.fields().keys().map(String::as_str).collect();
        assert_eq!(names, ["company", "email", "tags"]);
        assert!(created.fields().values().all(|f| f.before.is_null()));
        let pw = Changes::default().secret_changed("password");
        assert_eq!(pw.fields()["password"].after, json!(SECRET_CHANGED));
    }

    #[test]
    fn filters_are_checked() {
        let f = filter(Some("contact:42"), Some("3"), Some("2026-01-01T00:00:00Z")).unwrap();
        assert_eq!(f.record.as_deref(), Some("contact:42"));
        assert_eq!(f.actor.as_deref(), Some("user:3"));
        assert!(f.since.is_some());
        assert!(filter(Some("42"), None, None).is_err());
        assert!(filter(None, Some("bob"), None).is_err());
        assert!(filter(None, None, Some("yesterday")).is_err());
        assert_eq!(
            filter(None, Some("cli"), None).unwrap().actor.as_deref(),
            Some("cli")
        );
    }

    /// The audit service over a fresh store, and an admin (from 192.0.2.1).
    fn service(dir: &tempfile::TempDir) -> (Audit, Actor) {
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let admin = Actor {
            user_id: 1,
            email: "boss@example.test".into(),
            role: Role::Admin,
            ip: Some("192.0.2.1".into()),
            team: Vec::new(),
        };
        (Audit::new(store).unwrap(), admin)
    }

    #[test]
    fn exports_and_reads_are_for_admins_and_managers() {
        let dir = tempfile::tempdir().unwrap();
        let (audit, admin) = service(&dir);
        audit
            .record(
                Entry::new(&admin, AuditAction::Update, "contact:7")
                    .changes(Changes::default().set("company", json!("A"), json!("B, \"C\""))),
            )
            .unwrap();
        let mut out = Vec::new();
        let n = audit
            .export(&admin, &AuditFilter::default(), Format::Csv, &mut out)
            .unwrap();
        assert_eq!(n, 1);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("seq,at,actor"), "{text}");
        assert!(text.contains("\"B, \"\"C\"\"\""), "{text}");
        let mut out = Vec::new();
        audit
            .export(&admin, &AuditFilter::default(), Format::JsonLines, &mut out)
            .unwrap();
        // the first export was itself recorded
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 2);
        for role in [Role::Sales, Role::Marketing, Role::Viewer] {
            let a = Actor {
                role,
                ..admin.clone()
            };
            assert!(matches!(
                audit.page(&a, &AuditFilter::default(), None, 10),
                Err(AuditError::Denied(_))
            ));
        }
        let m = Actor {
            role: Role::Manager,
            ..admin.clone()
        };
        assert_eq!(
            audit
                .page(&m, &AuditFilter::default(), None, 10)
                .unwrap()
                .len(),
            3
        );
        assert!(audit.verify(&m).is_err());
        assert!(audit.verify(&admin).unwrap().intact());
    }

    #[test]
    fn redacting_a_record_keeps_the_chain_and_records_the_redaction() {
        let dir = tempfile::tempdir().unwrap();
        let (audit, admin) = service(&dir);
        let contact = json!({"email": "ann@example.com", "phone": "+44 1"});
        for (rec, c) in [
            ("contact:5", &contact),
            ("contact:6", &json!({"email": "bob@example.com"})),
        ] {
            audit
                .record(
                    Entry::new(&admin, AuditAction::Create, rec)
                        .changes(Changes::between(None, Some(c))),
                )
                .unwrap();
        }
        let viewer = Actor {
            role: Role::Manager,
            ..admin.clone()
        };
        assert!(
            audit.redact_record(&viewer, "contact:5").is_err(),
            "admins only"
        );
        assert_eq!(audit.redact_record(&admin, "contact:5").unwrap(), vec![1]);
        let report = audit.verify(&admin).unwrap();
        assert!(report.intact(), "{report:?}");
        assert_eq!(report.entries, 3);
        let f = filter(Some("contact:5"), None, None).unwrap();
        let items = audit.page(&admin, &f, None, 10).unwrap();
        assert_eq!(items[0].action, AuditAction::Redact);
        assert_eq!(items[0].changes["entries"].after, json!([1]));
        let text = serde_json::to_string(&items).unwrap();
        assert!(
            !text.contains("ann@example.com") && !text.contains("+44 1"),
            "{text}"
        );
        assert!(items[1].changes["email"].redacted);
    }

    #[test]
    fn settings_changes_are_recorded_once_without_secret_values() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let audit = Audit::new(store).unwrap();
        let load = |env: &[(&str, &str)]| {
            let env = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Settings::load(None, &[], &env).unwrap()
        };
        let first = audit.record_settings(&load(&[])).unwrap().unwrap();
        assert!(
            first.changes.contains_key("listen"),
            "the first start records all"
        );
        assert!(audit.record_settings(&load(&[])).unwrap().is_none());
        let e = audit
            .record_settings(&load(&[
                ("MAILSTEAD_ADMIN_PASSWORD", "hunter2hunter2"),
                ("MAILSTEAD_SESSION_TTL_HOURS", "4"),
            ]))
            .unwrap()
            .unwrap();
        let names: Vec<&str> = e.changes.keys().map(String::as_str).collect();
        assert_eq!(names, ["admin_password", "session_ttl_hours"]);
        assert_eq!(e.changes["admin_password"].after, json!("(secret)"));
        assert_eq!(e.changes["session_ttl_hours"].before, json!("12"));
        assert_eq!(e.changes["session_ttl_hours"].after, json!("4"));
        let text = serde_json::to_string(&e).unwrap();
        assert!(!text.contains("hunter2"));
    }
}
