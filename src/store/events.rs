//! The event log: every event integrators may subscribe to, written in the same transaction
//! as the change it reports. The webhook dispatcher reads it in id order.

use super::{Result, Store, decode, encode};
use crate::model::{Event, EventType, Id, now};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

/// event id -> Event (JSON)
pub(crate) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");

/// Records an event inside the caller's write transaction; it exists only if that commits.
/// Ids increase strictly (the log is only ever pruned from its start), so a reader that
/// remembers the last id it handled never misses an event.
pub fn emit(wtx: &WriteTransaction, kind: EventType, data: serde_json::Value) -> Result<Id> {
    let mut events = wtx.open_table(EVENTS)?;
    let id = events.last()?.map(|(k, _)| k.value()).unwrap_or(0) + 1;
    let ev = Event {
        id,
        kind,
        at: now(),
        data,
    };
    events.insert(id, encode(&ev).as_slice())?;
    Ok(id)
}

impl Store {
    /// Events with an id above `after`, oldest first, at most `limit`.
    pub fn events_after(&self, after: Id, limit: usize) -> Result<Vec<Event>> {
        let rtx = self.db().begin_read()?;
        let events = rtx.open_table(EVENTS)?;
        let mut out = Vec::new();
        for row in events.range(after.saturating_add(1)..)? {
            let (_, v) = row?;
            out.push(decode("events", v.value())?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Runs `f` in one write transaction (for services that write several kinds of record
    /// together, e.g. feedback, events and suppressions) and commits it durably.
    pub fn write<T, E>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<super::StoreError>,
    {
        let wtx = self.begin_write().map_err(super::StoreError::from)?;
        let v = f(&wtx)?;
        wtx.commit().map_err(super::StoreError::from)?;
        Ok(v)
    }
}
