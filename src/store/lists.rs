//! Mailing lists.

use super::{
    LISTS, Result, SEQUENCES, Store, StoreError, all_json, decode, encode, get_json, next_seq,
};
use crate::model::{Id, MailingList};
use redb::{ReadableDatabase, ReadableTable, WriteTransaction};

/// Inserts a list (assigning its id) inside the caller's transaction; names are unique
/// regardless of case.
pub fn create_list_in(wtx: &WriteTransaction, mut list: MailingList) -> Result<MailingList> {
    let mut lists = wtx.open_table(LISTS)?;
    for row in lists.iter()? {
        let (_, v) = row?;
        let existing: MailingList = decode("lists", v.value())?;
        if existing.name.eq_ignore_ascii_case(&list.name) {
            return Err(StoreError::Invalid(format!(
                "a list named '{}' already exists",
                existing.name
            )));
        }
    }
    let mut seqs = wtx.open_table(SEQUENCES)?;
    list.id = next_seq(&mut seqs, "list")?;
    lists.insert(list.id, encode(&list).as_slice())?;
    Ok(list)
}

/// Replaces a list inside the caller's transaction; returns the list as it was.
pub fn update_list_in(wtx: &WriteTransaction, list: &MailingList) -> Result<MailingList> {
    let mut lists = wtx.open_table(LISTS)?;
    let Some(old) = get_json::<MailingList>(&lists, "lists", list.id)? else {
        return Err(StoreError::NotFound("list"));
    };
    lists.insert(list.id, encode(list).as_slice())?;
    Ok(old)
}

impl Store {
    pub fn create_list(&self, list: MailingList) -> Result<MailingList> {
        self.write(|wtx| create_list_in(wtx, list))
    }

    pub fn update_list(&self, list: &MailingList) -> Result<()> {
        self.write(|wtx| update_list_in(wtx, list).map(|_| ()))
    }

    pub fn list(&self, id: Id) -> Result<Option<MailingList>> {
        let rtx = self.db().begin_read()?;
        get_json(&rtx.open_table(LISTS)?, "lists", id)
    }

    pub fn list_by_name(&self, name: &str) -> Result<Option<MailingList>> {
        Ok(self
            .lists()?
            .into_iter()
            .find(|l| l.name.eq_ignore_ascii_case(name.trim())))
    }

    pub fn lists(&self) -> Result<Vec<MailingList>> {
        let rtx = self.db().begin_read()?;
        all_json(&rtx.open_table(LISTS)?, "lists")
    }
}
