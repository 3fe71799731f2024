//! The store: the only module that knows redb. Typed tables, a schema version with forward
//! migrations, and every write inside one transaction. Records are JSON in value columns so
//! that fields can be added without a migration; secondary indexes are tables of their own,
//! updated in the same transaction as the record they index.

mod accounts;
pub mod audit;
mod backup;
pub mod campaigns;
mod contacts;
pub mod crm;
pub mod events;
pub mod gdpr;
mod imports;
mod lists;
mod queue;
pub mod segments;
pub mod suppression;
pub mod webhooks;

pub use accounts::{
    create_token_in, create_user_in, delete_session_in, delete_user_in, put_session_in,
    save_token_in, update_user_in,
};
pub use contacts::{ContactChange, ContactTx};
pub use imports::save_import_in;
pub use lists::{create_list_in, update_list_in};
pub use queue::{Claimed, DeliveryFilter, QueueStats, Settlement, SiteStats};
pub(crate) use queue::{DELIVERIES, DUE, OUT_BODIES, OUT_MESSAGES};
pub use segments::{
    SegmentHeads, create_segment_in, delete_segment_in, record_engagement_in, segment_in,
    update_segment_in,
};
pub use webhooks::{WebhookClaim, WebhookSettlement};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Serialize, de::DeserializeOwned};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard};

pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(crate) const SEQUENCES: TableDefinition<&str, u64> = TableDefinition::new("sequences");
pub(crate) const CONTACTS: TableDefinition<u64, &[u8]> = TableDefinition::new("contacts");
pub(crate) const CONTACT_BY_EMAIL: TableDefinition<&str, u64> =
    TableDefinition::new("contact_by_email");
/// change sequence -> contact id (| TOMBSTONE for a deletion). One live entry per contact:
/// the search index replays this table from its last committed sequence.
pub(crate) const CONTACT_CHANGES: TableDefinition<u64, u64> =
    TableDefinition::new("contact_changes");
/// (list id, contact id) -> membership status code.
pub(crate) const LIST_MEMBERS: TableDefinition<(u64, u64), u8> =
    TableDefinition::new("list_members");
pub(crate) const LISTS: TableDefinition<u64, &[u8]> = TableDefinition::new("lists");
pub(crate) const USERS: TableDefinition<u64, &[u8]> = TableDefinition::new("users");
pub(crate) const USER_BY_EMAIL: TableDefinition<&str, u64> = TableDefinition::new("user_by_email");
pub(crate) const TOKENS: TableDefinition<u64, &[u8]> = TableDefinition::new("api_tokens");
pub(crate) const TOKEN_BY_HASH: TableDefinition<&[u8], u64> =
    TableDefinition::new("api_token_by_hash");
pub(crate) const SESSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sessions");
pub(crate) const IMPORTS: TableDefinition<u64, &[u8]> = TableDefinition::new("imports");

pub const TOMBSTONE: u64 = 1 << 63;

/// Schema version this build writes. Migrations bring older stores forward at start.
pub const SCHEMA_VERSION: u64 = 8;
const DB_FILE: &str = "mailstead.redb";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the data directory {0} is in use by a running mailstead server; stop the server first (`mailstead backup` works while it runs)"
    )]
    Locked(PathBuf),
    #[error("storage error: {0}")]
    Db(#[from] redb::Error),
    #[error("corrupt record in table {table}: {message}")]
    Corrupt {
        table: &'static str,
        message: String,
    },
    #[error(
        "the data directory was written by a newer mailstead (schema {found}; this build supports up to {supported})"
    )]
    TooNew { found: u64, supported: u64 },
    #[error("a contact with the email {0} already exists")]
    DuplicateEmail(String),
    #[error("a user with the email {0} already exists")]
    DuplicateUser(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.into()) }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub(crate) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising our own plain records cannot fail (no maps with non-string keys).
    serde_json::to_vec(v).unwrap_or_default()
}

pub(crate) fn decode<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table,
        message: e.to_string(),
    })
}

/// The appliance's durable store.
///
/// The database sits behind a lock only so that [`Store::purge`] can swap in a rewritten
/// file (erasure must leave no freed page holding personal data): every write transaction
/// holds the lock shared for its whole life, readers only while they begin. The purge only
/// ever *tries* to take it exclusively, so nested reads inside a write never deadlock.
pub struct Store {
    db: RwLock<Arc<Database>>,
    dir: PathBuf,
}

/// A write transaction that keeps the database from being swapped until it ends. Derefs to
/// the redb transaction; commit or drop (abort) it like one.
pub struct WriteGuard<'a> {
    // dropped first: the transaction ends before the lock is released
    wtx: WriteTransaction,
    _db: RwLockReadGuard<'a, Arc<Database>>,
}

impl std::ops::Deref for WriteGuard<'_> {
    type Target = WriteTransaction;
    fn deref(&self) -> &WriteTransaction {
        &self.wtx
    }
}

impl std::ops::DerefMut for WriteGuard<'_> {
    fn deref_mut(&mut self) -> &mut WriteTransaction {
        &mut self.wtx
    }
}

impl WriteGuard<'_> {
    pub fn commit(self) -> std::result::Result<(), redb::CommitError> {
        let WriteGuard { wtx, _db } = self;
        wtx.commit()
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

impl Store {
    /// Opens (or creates) the store in `data_dir`, taking the exclusive lock and running
    /// migrations. Fails at once with [`StoreError::Locked`] when a server holds it.
    pub fn open(data_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let db = match Database::create(&path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StoreError::Locked(data_dir.to_path_buf()));
            }
            Err(e) => return Err(e.into()),
        };
        let store = Store::with_db(db, data_dir);
        store.migrate()?;
        Ok(store)
    }

    fn with_db(db: Database, dir: &Path) -> Store {
        Store {
            db: RwLock::new(Arc::new(db)),
            dir: dir.to_path_buf(),
        }
    }

    /// The current database (readers begin their transactions on it).
    fn db(&self) -> Arc<Database> {
        self.db.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Begins a write transaction; the database cannot be swapped until it ends.
    pub(crate) fn begin_write(
        &self,
    ) -> std::result::Result<WriteGuard<'_>, redb::TransactionError> {
        let guard = self.db.read().unwrap_or_else(|p| p.into_inner());
        let wtx = guard.begin_write()?;
        Ok(WriteGuard { wtx, _db: guard })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn db_path(dir: &Path) -> PathBuf {
        dir.join(DB_FILE)
    }

    pub fn schema_version(&self) -> Result<u64> {
        let rtx = self.db().begin_read()?;
        let meta = match rtx.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        Ok(meta
            .get("schema_version")?
            .and_then(|v| v.value().try_into().ok().map(u64::from_le_bytes))
            .unwrap_or(0))
    }

    fn migrate(&self) -> Result<()> {
        let found = self.schema_version()?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        let mut version = found;
        while version < SCHEMA_VERSION {
            let wtx = self.begin_write()?;
            match version {
                0 => {
                    // v1: every table exists, so readers never meet a missing table.
                    wtx.open_table(META)?;
                    wtx.open_table(SEQUENCES)?;
                    wtx.open_table(CONTACTS)?;
                    wtx.open_table(CONTACT_BY_EMAIL)?;
                    wtx.open_table(CONTACT_CHANGES)?;
                    wtx.open_table(LIST_MEMBERS)?;
                    wtx.open_table(LISTS)?;
                    wtx.open_table(USERS)?;
                    wtx.open_table(USER_BY_EMAIL)?;
                    wtx.open_table(TOKENS)?;
                    wtx.open_table(TOKEN_BY_HASH)?;
                    wtx.open_table(SESSIONS)?;
                    wtx.open_table(IMPORTS)?;
                }
                1 => {
                    // v2: the outbound delivery queue.
                    wtx.open_table(OUT_MESSAGES)?;
                    wtx.open_table(OUT_BODIES)?;
                    wtx.open_table(DELIVERIES)?;
                    wtx.open_table(DUE)?;
                }
                2 => {
                    // v3: feedback (suppressions, bounce/complaint log) and the event log.
                    wtx.open_table(suppression::SUPPRESSIONS)?;
                    wtx.open_table(suppression::SOFT_BOUNCES)?;
                    wtx.open_table(suppression::FEEDBACK)?;
                    wtx.open_table(suppression::FEEDBACK_BY_EMAIL)?;
                    wtx.open_table(suppression::FEEDBACK_SEEN)?;
                    wtx.open_table(suppression::FEEDBACK_BY_MESSAGE)?;
                    wtx.open_table(events::EVENTS)?;
                }
                3 => {
                    // v4: outgoing webhooks (subscriptions, outbox, due index, attempt log).
                    wtx.open_table(webhooks::WEBHOOK_SUBS)?;
                    wtx.open_table(webhooks::WEBHOOK_OUTBOX)?;
                    wtx.open_table(webhooks::WEBHOOK_DUE)?;
                    wtx.open_table(webhooks::WEBHOOK_ATTEMPTS)?;
                    // and the hash-chained audit log with its indexes.
                    wtx.open_table(audit::AUDIT)?;
                    wtx.open_table(audit::AUDIT_BY_RECORD)?;
                    wtx.open_table(audit::AUDIT_BY_ACTOR)?;
                }
                4 => {
                    // v5: saved segments and per-contact campaign engagement with its change log.
                    wtx.open_table(segments::SEGMENTS)?;
                    wtx.open_table(segments::CONTACT_ENGAGEMENT)?;
                    wtx.open_table(segments::ENGAGEMENT_CHANGES)?;
                }
                5 => {
                    // v6: templates, campaigns, audience snapshots, tracking.
                    wtx.open_table(campaigns::TEMPLATES)?;
                    wtx.open_table(campaigns::CAMPAIGNS)?;
                    wtx.open_table(campaigns::CAMPAIGN_AUDIENCE)?;
                    wtx.open_table(campaigns::CAMPAIGN_SENT)?;
                    wtx.open_table(campaigns::CAMPAIGN_MESSAGES)?;
                    wtx.open_table(campaigns::TRACK_EVENTS)?;
                    wtx.open_table(campaigns::TRACK_FIRST)?;
                }
                6 => {
                    // v7: the CRM (leads, accounts, opportunities, activities, training
                    // records) and its index.
                    wtx.open_table(crm::LEADS)?;
                    wtx.open_table(crm::ACCOUNTS)?;
                    wtx.open_table(crm::OPPORTUNITIES)?;
                    wtx.open_table(crm::ACTIVITIES)?;
                    wtx.open_table(crm::ENROLMENTS)?;
                    wtx.open_table(crm::CERTIFICATIONS)?;
                    wtx.open_table(crm::INDEX)?;
                    wtx.open_table(crm::SEQ)?;
                }
                7 => {
                    // v8: leads indexed by score (`min_score`), activities by due date and
                    // done flag (`due_before`, `done`).
                    crm::reindex_in::<crate::crm::model::Lead>(&wtx, "lead/")?;
                    crm::reindex_in::<crate::crm::model::Activity>(&wtx, "activity/")?;
                }
                _ => {
                    return Err(StoreError::Invalid(format!(
                        "no migration from schema {version}"
                    )));
                }
            }
            version += 1;
            {
                let mut meta = wtx.open_table(META)?;
                meta.insert("schema_version", version.to_le_bytes().as_slice())?;
            }
            wtx.commit()?;
            tracing::info!(from = version - 1, to = version, "store migrated");
        }
        Ok(())
    }

    /// A 32-byte secret kept in the store (signing keys for cookies, links and tokens),
    /// created on first use.
    pub fn secret(&self, name: &str) -> Result<[u8; 32]> {
        let key = format!("secret:{name}");
        {
            let rtx = self.db().begin_read()?;
            let meta = rtx.open_table(META)?;
            if let Some(v) = meta.get(key.as_str())?
                && let Ok(arr) = <[u8; 32]>::try_from(v.value())
            {
                return Ok(arr);
            }
        }
        let wtx = self.begin_write()?;
        let value = {
            let mut meta = wtx.open_table(META)?;
            let existing = meta
                .get(key.as_str())?
                .and_then(|v| <[u8; 32]>::try_from(v.value()).ok());
            match existing {
                Some(v) => v,
                None => {
                    let v: [u8; 32] = rand::random();
                    meta.insert(key.as_str(), v.as_slice())?;
                    v
                }
            }
        };
        wtx.commit()?;
        Ok(value)
    }

    /// Cheap liveness probe: a read transaction can be opened and a table read.
    pub fn check(&self) -> Result<()> {
        let rtx = self.db().begin_read()?;
        let meta = rtx.open_table(META)?;
        meta.get("schema_version")?;
        Ok(())
    }
}

/// Allocates the next value of a named sequence inside a write transaction.
pub(crate) fn next_seq(table: &mut redb::Table<&str, u64>, name: &str) -> Result<u64> {
    let next = table.get(name)?.map(|v| v.value()).unwrap_or(0) + 1;
    table.insert(name, next)?;
    Ok(next)
}

/// Every record of a JSON-valued table, in key order.
pub(crate) fn all_json<T: DeserializeOwned>(
    table: &impl ReadableTable<u64, &'static [u8]>,
    name: &'static str,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for row in table.iter()? {
        let (_, v) = row?;
        out.push(decode(name, v.value())?);
    }
    Ok(out)
}

pub(crate) fn get_json<T: DeserializeOwned>(
    table: &impl ReadableTable<u64, &'static [u8]>,
    name: &'static str,
    id: u64,
) -> Result<Option<T>> {
    match table.get(id)? {
        Some(v) => Ok(Some(decode(name, v.value())?)),
        None => Ok(None),
    }
}
