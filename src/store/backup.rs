//! Online backup (a consistent snapshot from one read transaction into a new redb file) and
//! offline restore.

use super::*;
use redb::{Key, ReadableDatabase, TableHandle, Value};

fn copy_table<K: Key + 'static, V: Value + 'static>(
    src: &redb::ReadTransaction,
    dst: &redb::WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<u64> {
    let from = src.open_table(def)?;
    let mut to = dst.open_table(def)?;
    let mut n = 0;
    for row in from.iter()? {
        let (k, v) = row?;
        to.insert(k.value(), v.value())?;
        n += 1;
    }
    Ok(n)
}

macro_rules! for_each_table {
    ($f:ident, $src:expr, $dst:expr) => {{
        let mut n = 0;
        n += $f($src, $dst, META)?;
        n += $f($src, $dst, SEQUENCES)?;
        n += $f($src, $dst, CONTACTS)?;
        n += $f($src, $dst, CONTACT_BY_EMAIL)?;
        n += $f($src, $dst, CONTACT_CHANGES)?;
        n += $f($src, $dst, LIST_MEMBERS)?;
        n += $f($src, $dst, LISTS)?;
        n += $f($src, $dst, USERS)?;
        n += $f($src, $dst, USER_BY_EMAIL)?;
        n += $f($src, $dst, TOKENS)?;
        n += $f($src, $dst, TOKEN_BY_HASH)?;
        n += $f($src, $dst, SESSIONS)?;
        n += $f($src, $dst, IMPORTS)?;
        n += $f($src, $dst, OUT_MESSAGES)?;
        n += $f($src, $dst, OUT_BODIES)?;
        n += $f($src, $dst, DELIVERIES)?;
        n += $f($src, $dst, DUE)?;
        n += $f($src, $dst, suppression::SUPPRESSIONS)?;
        n += $f($src, $dst, suppression::SOFT_BOUNCES)?;
        n += $f($src, $dst, suppression::FEEDBACK)?;
        n += $f($src, $dst, suppression::FEEDBACK_BY_EMAIL)?;
        n += $f($src, $dst, suppression::FEEDBACK_SEEN)?;
        n += $f($src, $dst, suppression::FEEDBACK_BY_MESSAGE)?;
        n += $f($src, $dst, events::EVENTS)?;
        n += $f($src, $dst, webhooks::WEBHOOK_SUBS)?;
        n += $f($src, $dst, webhooks::WEBHOOK_OUTBOX)?;
        n += $f($src, $dst, webhooks::WEBHOOK_DUE)?;
        n += $f($src, $dst, webhooks::WEBHOOK_ATTEMPTS)?;
        n += $f($src, $dst, audit::AUDIT)?;
        n += $f($src, $dst, audit::AUDIT_BY_RECORD)?;
        n += $f($src, $dst, audit::AUDIT_BY_ACTOR)?;
        n += $f($src, $dst, crm::LEADS)?;
        n += $f($src, $dst, crm::ACCOUNTS)?;
        n += $f($src, $dst, crm::OPPORTUNITIES)?;
        n += $f($src, $dst, crm::ACTIVITIES)?;
        n += $f($src, $dst, crm::ENROLMENTS)?;
        n += $f($src, $dst, crm::CERTIFICATIONS)?;
        n += $f($src, $dst, crm::INDEX)?;
        n += $f($src, $dst, crm::SEQ)?;
        n
    }};
}

impl Store {
    /// Writes a consistent snapshot of every table to `dest` (a new redb file, mode 0600).
    /// Safe while the server runs: it reads one snapshot and never blocks writers.
    pub fn backup_to(&self, dest: &Path) -> Result<u64> {
        let tmp = dest.with_extension("partial");
        let _ = std::fs::remove_file(&tmp);
        let rtx = self.db.begin_read()?;
        let out = Database::create(&tmp)?;
        restrict_permissions(&tmp)?;
        let wtx = out.begin_write()?;
        let rows = for_each_table!(copy_table, &rtx, &wtx);
        // Every table of the store must be in the list above: a forgotten one would make
        // backups silently incomplete.
        let names = |it: Box<dyn Iterator<Item = redb::UntypedTableHandle>>| {
            it.map(|h| h.name().to_string())
                .collect::<std::collections::BTreeSet<_>>()
        };
        let have = names(Box::new(rtx.list_tables()?));
        let copied = names(Box::new(wtx.list_tables()?));
        if let Some(missing) = have.difference(&copied).next() {
            return Err(StoreError::Invalid(format!(
                "backup does not know the table '{missing}' (a bug: add it to store/backup.rs)"
            )));
        }
        wtx.commit()?;
        drop(out);
        std::fs::rename(&tmp, dest).map_err(|source| StoreError::Io {
            path: dest.to_path_buf(),
            source,
        })?;
        Ok(rows)
    }

    /// Replaces the store in `data_dir` with the backup at `src`. The data dir must not be in
    /// use. The backup is checked (opens, schema not newer) before anything is replaced, and the
    /// old database is kept as `mailstead.redb.before-restore`.
    pub fn restore_from(data_dir: &Path, src: &Path) -> Result<u64> {
        // Take the lock on the current store first so a running server is detected.
        let current = Store::open(data_dir)?;
        let staged = data_dir.join("mailstead.redb.restoring");
        let _ = std::fs::remove_file(&staged);
        let rows = {
            let backup = match Database::open(src) {
                Ok(db) => db,
                Err(e) => {
                    return Err(StoreError::Invalid(format!(
                        "{} is not a mailstead backup: {e}",
                        src.display()
                    )));
                }
            };
            let check = Store {
                db: backup,
                dir: data_dir.to_path_buf(),
            };
            let found = check.schema_version()?;
            if found == 0 {
                return Err(StoreError::Invalid(format!(
                    "{} is not a mailstead backup (no schema version)",
                    src.display()
                )));
            }
            if found > SCHEMA_VERSION {
                return Err(StoreError::TooNew {
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            let out = Database::create(&staged)?;
            restrict_permissions(&staged)?;
            let rtx = check.db.begin_read()?;
            let wtx = out.begin_write()?;
            let rows = for_each_table!(copy_table, &rtx, &wtx);
            wtx.commit()?;
            rows
        };
        let live = Store::db_path(data_dir);
        drop(current);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        std::fs::rename(&live, data_dir.join("mailstead.redb.before-restore"))
            .map_err(io(&live))?;
        std::fs::rename(&staged, &live).map_err(io(&staged))?;
        // Let migrations run on the restored file now, so errors surface here.
        Store::open(data_dir)?;
        Ok(rows)
    }
}

fn restrict_permissions(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| StoreError::Io {
                path: path.to_path_buf(),
                source,
            },
        )?;
    }
    Ok(())
}
