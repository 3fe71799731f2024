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
        n += $f($src, $dst, campaigns::TEMPLATES)?;
        n += $f($src, $dst, campaigns::CAMPAIGNS)?;
        n += $f($src, $dst, campaigns::CAMPAIGN_AUDIENCE)?;
        n += $f($src, $dst, campaigns::CAMPAIGN_SENT)?;
        n += $f($src, $dst, campaigns::CAMPAIGN_MESSAGES)?;
        n += $f($src, $dst, campaigns::TRACK_EVENTS)?;
        n += $f($src, $dst, campaigns::TRACK_FIRST)?;
        n += $f($src, $dst, segments::SEGMENTS)?;
        n += $f($src, $dst, segments::CONTACT_ENGAGEMENT)?;
        n += $f($src, $dst, segments::ENGAGEMENT_CHANGES)?;
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
        let rtx = self.db().begin_read()?;
        let (out, rows) = copy_snapshot(&rtx, &tmp, |_| Ok(()))?;
        drop(out);
        std::fs::rename(&tmp, dest).map_err(|source| StoreError::Io {
            path: dest.to_path_buf(),
            source,
        })?;
        Ok(rows)
    }

    /// Whether an erasure committed whose old pages have not been rewritten yet.
    pub fn purge_pending(&self) -> Result<bool> {
        let rtx = self.db().begin_read()?;
        Ok(rtx.open_table(META)?.get(PURGE_KEY)?.is_some())
    }

    /// Rewrites the database file from its live rows (as a backup does) and swaps it in, so
    /// that no freed page of the old file (redb is copy-on-write) keeps erased personal data.
    /// Waits up to `wait` for the write transactions in progress to end; returns false (the
    /// purge stays pending, for housekeeping or the next start) when the store stayed busy.
    /// Crash-safe: the new file replaces the old one by an atomic rename, and the pending
    /// flag is cleared only in the new file.
    pub fn purge_within(&self, wait: std::time::Duration) -> Result<bool> {
        let deadline = std::time::Instant::now() + wait;
        let mut current = loop {
            match self.db.try_write() {
                Ok(g) => break g,
                Err(std::sync::TryLockError::Poisoned(p)) => break p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {
                    if std::time::Instant::now() >= deadline {
                        return Ok(false);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
            }
        };
        // No write transaction is alive (each holds the lock shared), so the newest snapshot
        // is everything.
        let live = Store::db_path(&self.dir);
        let tmp = self.dir.join("mailstead.redb.purging");
        let rtx = current.begin_read()?;
        let (fresh, _) = copy_snapshot(&rtx, &tmp, |wtx| {
            wtx.open_table(META)?.remove(PURGE_KEY)?;
            Ok(())
        })?;
        drop(rtx);
        std::fs::rename(&tmp, &live).map_err(|source| StoreError::Io {
            path: live.clone(),
            source,
        })?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        // Readers still on the old file finish there; it is gone once the last one ends.
        *current = Arc::new(fresh);
        tracing::info!("store file rewritten: erased data no longer on disk");
        Ok(true)
    }

    /// [`Store::purge_within`] with a generous wait.
    pub fn purge(&self) -> Result<bool> {
        self.purge_within(std::time::Duration::from_secs(30))
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
            let check = Store::with_db(backup, data_dir);
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
            let rtx = check.db().begin_read()?;
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

/// META key set (in the erasure's transaction) until the file has been rewritten.
pub(crate) const PURGE_KEY: &str = "purge_pending";

/// Copies one read snapshot into a new redb file at `dest` (mode 0600), running `adjust` in
/// the copy's transaction; checks that every table of the source was copied.
fn copy_snapshot(
    rtx: &redb::ReadTransaction,
    dest: &Path,
    adjust: impl FnOnce(&redb::WriteTransaction) -> Result<()>,
) -> Result<(Database, u64)> {
    let _ = std::fs::remove_file(dest);
    let out = Database::create(dest)?;
    restrict_permissions(dest)?;
    let wtx = out.begin_write()?;
    let rows = for_each_table!(copy_table, rtx, &wtx);
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
    adjust(&wtx)?;
    wtx.commit()?;
    Ok((out, rows))
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
