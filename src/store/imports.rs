//! Import job records (progress and row errors).

use super::{IMPORTS, Result, SEQUENCES, Store, decode, encode, get_json, next_seq};
use crate::model::{Id, ImportJob, ImportStatus};
use redb::{ReadableDatabase, ReadableTable, WriteTransaction};

/// Writes an import job's progress or result inside the caller's transaction.
pub fn save_import_in(wtx: &WriteTransaction, job: &ImportJob) -> Result<()> {
    wtx.open_table(IMPORTS)?
        .insert(job.id, encode(job).as_slice())?;
    Ok(())
}

impl Store {
    pub fn create_import(&self, mut job: ImportJob) -> Result<ImportJob> {
        let wtx = self.begin_write()?;
        {
            let mut seqs = wtx.open_table(SEQUENCES)?;
            job.id = next_seq(&mut seqs, "import")?;
            wtx.open_table(IMPORTS)?
                .insert(job.id, encode(&job).as_slice())?;
        }
        wtx.commit()?;
        Ok(job)
    }

    pub fn save_import(&self, job: &ImportJob) -> Result<()> {
        self.write(|wtx| save_import_in(wtx, job))
    }

    pub fn import(&self, id: Id) -> Result<Option<ImportJob>> {
        let rtx = self.db().begin_read()?;
        get_json(&rtx.open_table(IMPORTS)?, "imports", id)
    }

    /// Newest first.
    pub fn imports(&self, limit: usize) -> Result<Vec<ImportJob>> {
        let rtx = self.db().begin_read()?;
        let t = rtx.open_table(IMPORTS)?;
        let mut out = Vec::new();
        for row in t.iter()?.rev().take(limit) {
            let (_, v) = row?;
            out.push(decode("imports", v.value())?);
        }
        Ok(out)
    }

    /// Imports left running by a crash or stop are marked failed at start.
    pub fn fail_interrupted_imports(&self) -> Result<usize> {
        let running: Vec<ImportJob> = self
            .imports(usize::MAX)?
            .into_iter()
            .filter(|j| j.status == ImportStatus::Running)
            .collect();
        for mut job in running.iter().cloned() {
            job.status = ImportStatus::Failed;
            job.message = Some(
                "interrupted: the server stopped during the import; rows counted as processed were saved, import the file again in upsert mode to finish".into(),
            );
            job.finished_at = Some(crate::model::now());
            self.save_import(&job)?;
        }
        Ok(running.len())
    }
}
