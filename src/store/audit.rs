//! The audit log: append-only entries chained by SHA-256, written inside the transaction of
//! the change they record, with indexes by record and by actor.
//!
//! Integrity: each changed field carries `digest = H(field, before, after, salt)`; the entry
//! carries `changes_digest = H(field → digest)` and `hash = H(seq, prev_hash, at, actor, ip,
//! action, record, detail, changes_digest)`. The chain runs over the digests, so erasure can
//! replace a field's values with keyed hashes (and drop the salt, which makes the digest an
//! unguessable commitment) while every hash still verifies. A redaction is itself an entry
//! naming the entries it redacted; a redacted field without one breaks the chain. The newest
//! entry's seq and hash are also kept as the head, so removing entries from the end shows.

use super::{META, Result, Store, StoreError, decode, encode};
use crate::model::{AuditAction, AuditEntry, FieldChange};
use hmac::{Hmac, Mac};
use redb::{
    ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;

/// seq -> AuditEntry (JSON)
pub(crate) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// (record, seq) -> ()
pub(crate) const AUDIT_BY_RECORD: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("audit_by_record");
/// (actor, seq) -> ()
pub(crate) const AUDIT_BY_ACTOR: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("audit_by_actor");

const HEAD_KEY: &str = "audit_head";
const SETTINGS_KEY: &str = "audit_settings";

/// `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// JSON with object keys sorted at every level and no insignificant white space: the one
/// byte string every hash is computed over.
pub fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            out.push('{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn sha_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The digest of one field change, or `None` when its salt is gone (redacted).
pub fn field_digest(name: &str, c: &FieldChange) -> Option<String> {
    let salt = c.salt.as_ref()?;
    Some(sha_hex(&canonical(&serde_json::json!({
        "field": name,
        "before": c.before,
        "after": c.after,
        "salt": salt,
    }))))
}

pub fn changes_digest(changes: &BTreeMap<String, FieldChange>) -> String {
    let map: serde_json::Map<String, Value> = changes
        .iter()
        .map(|(k, c)| (k.clone(), Value::String(c.digest.clone())))
        .collect();
    sha_hex(&canonical(&Value::Object(map)))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub fn entry_hash(e: &AuditEntry) -> String {
    let mut v = serde_json::json!({
        "seq": e.seq,
        "prev_hash": e.prev_hash,
        "at": rfc3339(e.at),
        "actor": e.actor,
        "actor_email": e.actor_email,
        "ip": e.ip,
        "action": e.action.as_str(),
        "record": e.record,
        "detail": e.detail,
        "changes_digest": e.changes_digest,
    });
    if let (Some(d), Some(obj)) = (&e.record_digest, v.as_object_mut()) {
        obj.remove("record");
        obj.insert("record_digest".into(), Value::String(d.clone()));
    }
    sha_hex(&canonical(&v))
}

/// The digest standing for a personal record id in the entry hash.
pub fn record_digest(record: &str, salt: &str) -> String {
    sha_hex(&canonical(
        &serde_json::json!({ "record": record, "salt": salt }),
    ))
}

/// Record kinds whose ids hold personal data (an address): salted and redactable.
const PERSONAL_RECORD_KINDS: &[&str] = &["suppression:"];

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Head {
    seq: u64,
    hash: String,
}

fn head_in(meta: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<Option<Head>> {
    match meta.get(HEAD_KEY)? {
        Some(v) => Ok(Some(decode("meta", v.value())?)),
        None => Ok(None),
    }
}

/// Appends an entry inside the caller's write transaction: assigns its seq, salts and digests
/// its changes and links it to the newest entry. It exists only if that transaction commits.
pub fn append(wtx: &WriteTransaction, mut e: AuditEntry) -> Result<AuditEntry> {
    let mut meta = wtx.open_table(META)?;
    let (seq, prev) = match head_in(&meta)? {
        Some(h) => (h.seq + 1, h.hash),
        None => (1, GENESIS.to_string()),
    };
    for (name, c) in e.changes.iter_mut() {
        c.salt = Some(hex::encode(rand::random::<[u8; 16]>()));
        c.redacted = false;
        c.digest = field_digest(name, c).unwrap_or_default();
    }
    if PERSONAL_RECORD_KINDS
        .iter()
        .any(|k| e.record.starts_with(k))
    {
        let salt = hex::encode(rand::random::<[u8; 16]>());
        e.record_digest = Some(record_digest(&e.record, &salt));
        e.record_salt = Some(salt);
    } else {
        e.record_salt = None;
        e.record_digest = None;
    }
    e.seq = seq;
    e.prev_hash = prev;
    e.changes_digest = changes_digest(&e.changes);
    e.hash = entry_hash(&e);
    wtx.open_table(AUDIT)?.insert(seq, encode(&e).as_slice())?;
    wtx.open_table(AUDIT_BY_RECORD)?
        .insert((e.record.as_str(), seq), ())?;
    wtx.open_table(AUDIT_BY_ACTOR)?
        .insert((e.actor.as_str(), seq), ())?;
    let head = Head {
        seq,
        hash: e.hash.clone(),
    };
    meta.insert(HEAD_KEY, encode(&head).as_slice())?;
    Ok(e)
}

fn keyed(key: &[u8; 32], v: &Value) -> Value {
    if v.is_null() {
        return Value::Null;
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return Value::String("hmac:".into());
    };
    mac.update(canonical(v).as_bytes());
    let tag = hex::encode(mac.finalize().into_bytes());
    Value::String(format!("hmac:{}", &tag[..32]))
}

/// The seqs of the entries about `record`, oldest first.
fn record_seqs(
    by_record: &impl ReadableTable<(&'static str, u64), ()>,
    record: &str,
) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for row in by_record.range((record, 0)..=(record, u64::MAX))? {
        out.push(row?.0.value().1);
    }
    Ok(out)
}

fn entry_at(t: &impl ReadableTable<u64, &'static [u8]>, seq: u64) -> Result<Option<AuditEntry>> {
    match t.get(seq)? {
        Some(v) => Ok(Some(decode("audit", v.value())?)),
        None => Ok(None),
    }
}

/// Replaces the values of every not yet redacted field in the entries about `record` with
/// keyed hashes (HMAC-SHA256 under `key`) and drops their salts; digests and hashes stay, so
/// the chain still verifies. Returns the seqs of the entries changed. The caller appends a
/// [`AuditAction::Redact`] entry naming them in the same transaction (erasure does).
pub fn redact_in(wtx: &WriteTransaction, record: &str, key: &[u8; 32]) -> Result<Vec<u64>> {
    let seqs = record_seqs(&wtx.open_table(AUDIT_BY_RECORD)?, record)?;
    let mut t = wtx.open_table(AUDIT)?;
    let mut changed = Vec::new();
    for seq in seqs {
        let Some(mut e) = entry_at(&t, seq)? else {
            continue;
        };
        if e.action == AuditAction::Redact {
            continue;
        }
        let mut any = false;
        for c in e.changes.values_mut().filter(|c| !c.redacted) {
            c.before = keyed(key, &c.before);
            c.after = keyed(key, &c.after);
            c.salt = None;
            c.redacted = true;
            any = true;
        }
        if any {
            t.insert(seq, encode(&e).as_slice())?;
            changed.push(seq);
        }
    }
    Ok(changed)
}

/// Replaces the id of the entries about `record` (a personal one, e.g. an address) by
/// `replacement` and drops the salt of its digest, moving them in the by-record index. Entries
/// written before record ids were salted cannot change without breaking the chain and are
/// left as they are. The caller names the returned seqs in a redaction entry.
pub fn rename_record_in(
    wtx: &WriteTransaction,
    record: &str,
    replacement: &str,
) -> Result<Vec<u64>> {
    let mut by_record = wtx.open_table(AUDIT_BY_RECORD)?;
    let seqs = record_seqs(&by_record, record)?;
    let mut t = wtx.open_table(AUDIT)?;
    let mut changed = Vec::new();
    for seq in seqs {
        let Some(mut e) = entry_at(&t, seq)? else {
            continue;
        };
        if e.record_digest.is_none() {
            continue;
        }
        e.record = replacement.to_string();
        e.record_salt = None;
        t.insert(seq, encode(&e).as_slice())?;
        by_record.remove((record, seq))?;
        by_record.insert((replacement, seq), ())?;
        changed.push(seq);
    }
    Ok(changed)
}

/// Where the chain broke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Broken {
    pub seq: u64,
    pub reason: String,
}

/// The outcome of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ChainReport {
    /// Entries checked (up to the break).
    pub entries: u64,
    /// Hash of the newest intact entry; keep it elsewhere to anchor the chain.
    pub last_hash: String,
    pub broken: Option<Broken>,
}

impl ChainReport {
    pub fn intact(&self) -> bool {
        self.broken.is_none()
    }
}

/// Checks entries one at a time, oldest first.
struct Verifier {
    expected: u64,
    prev_hash: String,
    /// Entries with redacted fields that no redaction entry has named yet.
    pending: BTreeSet<u64>,
    entries: u64,
}

impl Verifier {
    fn new() -> Verifier {
        Verifier {
            expected: 1,
            prev_hash: GENESIS.to_string(),
            pending: BTreeSet::new(),
            entries: 0,
        }
    }

    fn step(&mut self, key: u64, bytes: &[u8]) -> std::result::Result<(), Broken> {
        let broken = |reason: String| Broken { seq: key, reason };
        let e: AuditEntry = serde_json::from_slice(bytes)
            .map_err(|err| broken(format!("the entry is not readable ({err})")))?;
        if e.seq != key {
            return Err(broken(format!(
                "the entry says it is number {} but is stored as {key}",
                e.seq
            )));
        }
        if key != self.expected {
            return Err(broken(format!(
                "entries {} to {} are missing",
                self.expected,
                key.saturating_sub(1)
            )));
        }
        if e.prev_hash != self.prev_hash {
            return Err(broken(
                "it does not link to the entry before it (prev_hash differs)".into(),
            ));
        }
        if let Some(d) = &e.record_digest {
            match &e.record_salt {
                Some(salt) if record_digest(&e.record, salt) != *d => {
                    return Err(broken(
                        "the record id was changed after the entry was written".into(),
                    ));
                }
                Some(_) => {}
                None => {
                    self.pending.insert(key);
                }
            }
        }
        for (name, c) in &e.changes {
            if c.redacted {
                if c.salt.is_some() {
                    return Err(broken(format!("field '{name}' is half redacted")));
                }
                self.pending.insert(key);
            } else if field_digest(name, c).as_deref() != Some(c.digest.as_str()) {
                return Err(broken(format!(
                    "the values of field '{name}' were changed after the entry was written"
                )));
            }
        }
        if changes_digest(&e.changes) != e.changes_digest {
            return Err(broken(
                "the set of changed fields was altered after the entry was written".into(),
            ));
        }
        if entry_hash(&e) != e.hash {
            return Err(broken("the entry was altered after it was written".into()));
        }
        if e.action == AuditAction::Redact
            && let Some(list) = e.changes.get("entries").and_then(|c| c.after.as_array())
        {
            for s in list.iter().filter_map(Value::as_u64) {
                self.pending.remove(&s);
            }
        }
        self.prev_hash = e.hash;
        self.expected += 1;
        self.entries += 1;
        Ok(())
    }

    fn finish(self, head: Option<Head>) -> ChainReport {
        let mut report = ChainReport {
            entries: self.entries,
            last_hash: self.prev_hash.clone(),
            broken: None,
        };
        if let Some(&seq) = self.pending.iter().next() {
            report.broken = Some(Broken {
                seq,
                reason: "fields were redacted without a redaction entry".into(),
            });
        } else if let Some(h) = &head
            && (h.seq != self.entries || h.hash != self.prev_hash)
        {
            report.broken = Some(Broken {
                seq: self.entries + 1,
                reason: format!(
                    "the log ends at entry {} but {} entries were written",
                    self.entries, h.seq
                ),
            });
        } else if head.is_none() && self.entries > 0 {
            report.broken = Some(Broken {
                seq: 1,
                reason: "the chain head is missing".into(),
            });
        }
        report
    }
}

/// Which entries a query wants.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    pub record: Option<String>,
    pub actor: Option<String>,
    pub since: Option<OffsetDateTime>,
}

impl AuditFilter {
    fn accepts(&self, e: &AuditEntry) -> bool {
        self.record.as_ref().is_none_or(|r| &e.record == r)
            && self.actor.as_ref().is_none_or(|a| &e.actor == a)
            && self.since.is_none_or(|s| e.at >= s)
    }
}

/// The effective settings as last recorded (key → value or secret fingerprint).
pub fn settings_snapshot_in(wtx: &WriteTransaction) -> Result<Option<BTreeMap<String, String>>> {
    let meta = wtx.open_table(META)?;
    match meta.get(SETTINGS_KEY)? {
        Some(v) => Ok(Some(decode("meta", v.value())?)),
        None => Ok(None),
    }
}

pub fn put_settings_snapshot_in(
    wtx: &WriteTransaction,
    snapshot: &BTreeMap<String, String>,
) -> Result<()> {
    wtx.open_table(META)?
        .insert(SETTINGS_KEY, encode(snapshot).as_slice())?;
    Ok(())
}

impl Store {
    /// Walks the whole chain in one read snapshot and reports the first broken entry.
    pub fn audit_verify(&self) -> Result<ChainReport> {
        let rtx = self.db().begin_read()?;
        let t = rtx.open_table(AUDIT)?;
        let head = head_in(&rtx.open_table(META)?)?;
        let mut v = Verifier::new();
        for row in t.iter()? {
            let (k, val) = row?;
            if let Err(b) = v.step(k.value(), val.value()) {
                return Ok(ChainReport {
                    entries: v.entries,
                    last_hash: v.prev_hash,
                    broken: Some(b),
                });
            }
        }
        Ok(v.finish(head))
    }

    pub fn audit_count(&self) -> Result<u64> {
        let rtx = self.db().begin_read()?;
        Ok(rtx.open_table(AUDIT)?.len()?)
    }

    /// Visits the entries matching `f`, newest first when `newest_first`, starting below
    /// `before` (a seq); `visit` returns false to stop.
    pub fn audit_scan(
        &self,
        f: &AuditFilter,
        before: Option<u64>,
        newest_first: bool,
        mut visit: impl FnMut(AuditEntry) -> bool,
    ) -> Result<()> {
        let rtx = self.db().begin_read()?;
        let entries = rtx.open_table(AUDIT)?;
        let by_record = rtx.open_table(AUDIT_BY_RECORD)?;
        let by_actor = rtx.open_table(AUDIT_BY_ACTOR)?;
        let upper = before.unwrap_or(u64::MAX);
        type Seqs<'a> = Box<dyn DoubleEndedIterator<Item = Result<u64>> + 'a>;
        let seqs: Seqs<'_> = match (&f.record, &f.actor) {
            (Some(r), _) => Box::new(
                by_record
                    .range((r.as_str(), 0)..(r.as_str(), upper))?
                    .map(|row| Ok(row?.0.value().1)),
            ),
            (None, Some(a)) => Box::new(
                by_actor
                    .range((a.as_str(), 0)..(a.as_str(), upper))?
                    .map(|row| Ok(row?.0.value().1)),
            ),
            (None, None) => Box::new(
                entries
                    .range(0..upper)?
                    .map(|row| Ok::<_, StoreError>(row?.0.value())),
            ),
        };
        let seqs: Seqs<'_> = if newest_first {
            Box::new(seqs.rev())
        } else {
            seqs
        };
        for seq in seqs {
            let seq = seq?;
            let Some(bytes) = entries.get(seq)? else {
                continue;
            };
            let e: AuditEntry = decode("audit", bytes.value())?;
            if newest_first && f.since.is_some_and(|s| e.at < s) {
                break;
            }
            if f.accepts(&e) && !visit(e) {
                break;
            }
        }
        Ok(())
    }

    /// A page of entries matching `f`, newest first, with seq below `before`.
    pub fn audit_page(
        &self,
        f: &AuditFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>> {
        let mut out = Vec::new();
        self.audit_scan(f, before, true, |e| {
            out.push(e);
            out.len() < limit
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::now;

    fn entry(record: &str, fields: &[(&str, Value, Value)]) -> AuditEntry {
        AuditEntry {
            seq: 0,
            at: now(),
            actor: "user:1".into(),
            actor_email: Some("boss@example.test".into()),
            ip: Some("10.0.0.1".into()),
            action: AuditAction::Update,
            record: record.into(),
            record_salt: None,
            record_digest: None,
            detail: String::new(),
            changes: fields
                .iter()
                .map(|(k, b, a)| {
                    (
                        k.to_string(),
                        FieldChange {
                            before: b.clone(),
                            after: a.clone(),
                            salt: None,
                            digest: String::new(),
                            redacted: false,
                        },
                    )
                })
                .collect(),
            changes_digest: String::new(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn rewrite(store: &Store, seq: u64, f: impl FnOnce(&mut Value)) {
        let wtx = store.begin_write().unwrap();
        {
            let mut t = wtx.open_table(AUDIT).unwrap();
            let mut v: Value =
                serde_json::from_slice(t.get(seq).unwrap().unwrap().value()).unwrap();
            f(&mut v);
            t.insert(seq, serde_json::to_vec(&v).unwrap().as_slice())
                .unwrap();
        }
        wtx.commit().unwrap();
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = serde_json::json!({"b": 1, "a": {"d": [true, null], "c": "x\"y"}});
        assert_eq!(canonical(&v), r#"{"a":{"c":"x\"y","d":[true,null]},"b":1}"#);
    }

    #[test]
    fn chain_verifies_and_names_an_edited_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.audit_verify().unwrap().entries, 0);
        for i in 0..5 {
            store
                .write(|wtx| {
                    append(
                        wtx,
                        entry(
                            &format!("contact:{i}"),
                            &[("company", "Acme".into(), "Globex".into())],
                        ),
                    )
                })
                .unwrap();
        }
        let r = store.audit_verify().unwrap();
        assert!(r.intact(), "{r:?}");
        assert_eq!(r.entries, 5);

        rewrite(&store, 3, |v| {
            v["changes"]["company"]["after"] = "Initech".into()
        });
        let r = store.audit_verify().unwrap();
        let b = r.broken.unwrap();
        assert_eq!(b.seq, 3);
        assert!(b.reason.contains("company"), "{}", b.reason);
    }

    #[test]
    fn header_edits_deletions_and_truncation_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for _ in 0..4 {
            store
                .write(|wtx| append(wtx, entry("user:1", &[])))
                .unwrap();
        }
        rewrite(&store, 2, |v| v["actor"] = "user:9".into());
        assert_eq!(store.audit_verify().unwrap().broken.unwrap().seq, 2);
        rewrite(&store, 2, |v| v["actor"] = "user:1".into());
        assert!(store.audit_verify().unwrap().intact());

        let wtx = store.begin_write().unwrap();
        wtx.open_table(AUDIT).unwrap().remove(4).unwrap();
        wtx.commit().unwrap();
        let b = store.audit_verify().unwrap().broken.unwrap();
        assert_eq!(b.seq, 4, "{b:?}");
    }

    #[test]
    fn redaction_keeps_the_chain_verifiable_and_hides_values() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = [7u8; 32];
        store
            .write(|wtx| {
                append(
                    wtx,
                    entry(
                        "contact:42",
                        &[("email", Value::Null, "ann@example.com".into())],
                    ),
                )?;
                append(
                    wtx,
                    entry(
                        "contact:43",
                        &[("email", Value::Null, "bob@example.com".into())],
                    ),
                )?;
                append(
                    wtx,
                    entry(
                        "contact:42",
                        &[("phone", "tel one".into(), "tel two".into())],
                    ),
                )
            })
            .unwrap();
        // redacting without recording it is tampering
        let seqs = store
            .write(|wtx| redact_in(wtx, "contact:42", &key))
            .unwrap();
        assert_eq!(seqs, vec![1, 3]);
        let r = store.audit_verify().unwrap();
        assert_eq!(r.broken.unwrap().seq, 1);
        // with the redaction entry the chain is intact
        store
            .write(|wtx| {
                let mut e = entry("contact:42", &[]);
                e.action = AuditAction::Redact;
                e.changes.insert(
                    "entries".into(),
                    FieldChange {
                        before: Value::Null,
                        after: serde_json::json!(seqs),
                        salt: None,
                        digest: String::new(),
                        redacted: false,
                    },
                );
                append(wtx, e)
            })
            .unwrap();
        let r = store.audit_verify().unwrap();
        assert!(r.intact(), "{r:?}");
        assert_eq!(r.entries, 4);
        let mut all = Vec::new();
        store
            .audit_scan(&AuditFilter::default(), None, false, |e| {
                all.push(e);
                true
            })
            .unwrap();
        let text = serde_json::to_string(&all).unwrap();
        assert!(!text.contains("ann@example.com") && !text.contains("tel two"));
        assert!(
            text.contains("bob@example.com"),
            "other records are untouched"
        );
        assert!(
            all[0].changes["email"]
                .after
                .as_str()
                .unwrap()
                .starts_with("hmac:")
        );
        // redacting again changes nothing; a redacted entry's digest is still guarded
        assert!(
            store
                .write(|wtx| redact_in(wtx, "contact:42", &key))
                .unwrap()
                .is_empty()
        );
        rewrite(&store, 1, |v| v["changes"]["email"]["digest"] = "00".into());
        assert_eq!(store.audit_verify().unwrap().broken.unwrap().seq, 1);
    }

    #[test]
    fn personal_record_ids_are_salted_and_can_be_renamed_with_a_redaction_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let rec = "suppression:ann@example.com";
        store
            .write(|wtx| {
                append(wtx, entry(rec, &[("reason", Value::Null, "manual".into())]))?;
                append(wtx, entry("contact:1", &[]))
            })
            .unwrap();
        let first = store.audit_page(&AuditFilter::default(), None, 10).unwrap();
        assert!(first[1].record_digest.is_some() && first[0].record_digest.is_none());
        // editing a salted record id is found
        rewrite(&store, 1, |v| {
            v["record"] = "suppression:bob@example.com".into()
        });
        let b = store.audit_verify().unwrap().broken.unwrap();
        assert!(b.reason.contains("record id"), "{b:?}");
        rewrite(&store, 1, |v| v["record"] = rec.into());
        assert!(store.audit_verify().unwrap().intact());
        // renaming (and dropping the salt) needs a redaction entry naming it
        let renamed = store
            .write(|wtx| rename_record_in(wtx, rec, "suppression:hmac:00"))
            .unwrap();
        assert_eq!(renamed, vec![1]);
        assert_eq!(store.audit_verify().unwrap().broken.unwrap().seq, 1);
        store
            .write(|wtx| {
                let mut e = entry("contact:1", &[]);
                e.action = AuditAction::Redact;
                e.changes.insert(
                    "entries".into(),
                    FieldChange {
                        before: Value::Null,
                        after: serde_json::json!(renamed),
                        salt: None,
                        digest: String::new(),
                        redacted: false,
                    },
                );
                append(wtx, e)
            })
            .unwrap();
        assert!(store.audit_verify().unwrap().intact());
        let by_old = AuditFilter {
            record: Some(rec.into()),
            ..Default::default()
        };
        assert!(store.audit_page(&by_old, None, 10).unwrap().is_empty());
        let by_new = AuditFilter {
            record: Some("suppression:hmac:00".into()),
            ..Default::default()
        };
        assert_eq!(store.audit_page(&by_new, None, 10).unwrap().len(), 1);
    }

    #[test]
    fn queries_use_the_indexes_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for i in 0..6u64 {
            let mut e = entry(&format!("contact:{}", i % 2), &[]);
            e.actor = format!("user:{}", i % 3);
            store.write(|wtx| append(wtx, e)).unwrap();
        }
        let seqs = |f: AuditFilter, before| -> Vec<u64> {
            store
                .audit_page(&f, before, 10)
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect()
        };
        let by_record = AuditFilter {
            record: Some("contact:1".into()),
            ..Default::default()
        };
        assert_eq!(seqs(by_record.clone(), None), vec![6, 4, 2]);
        assert_eq!(seqs(by_record, Some(6)), vec![4, 2]);
        let by_actor = AuditFilter {
            actor: Some("user:0".into()),
            ..Default::default()
        };
        assert_eq!(seqs(by_actor, None), vec![4, 1]);
        assert_eq!(seqs(AuditFilter::default(), Some(3)), vec![2, 1]);
        let future = AuditFilter {
            since: Some(now() + time::Duration::hours(1)),
            ..Default::default()
        };
        assert!(seqs(future, None).is_empty());
    }
}
