//! The Raft log, vote and committed pointer, durable in redb.
//!
//! Every write is one redb transaction committed with the default `Durability::Immediate`, so
//! it is on disk when the call returns; `append` reports `LogFlushed` only after that.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogId, LogState, RaftLogReader, StorageIOError, Vote};
use redb::{Database, ReadableTable};

use crate::db::{self, blocking, Db, Released, KEY_COMMITTED, KEY_PURGED, KEY_VOTE, LOG, META};
use crate::error::{raft_err, DbError, RaftStorageError};
use crate::{Entry, TypeConfig};

/// The log store handed to `Raft::new`. Not `Clone`: openraft requires its writes to be
/// serialized, which owning it exclusively guarantees.
pub struct LogStore {
    db: Arc<Db>,
}

/// A cheap, cloneable read handle used by openraft's replication tasks.
#[derive(Clone)]
pub struct LogReader {
    db: Arc<Db>,
}

impl LogStore {
    pub(crate) fn new(db: Arc<Db>) -> Self {
        Self { db }
    }

    /// Tells when the database is closed; take it before giving the store to `Raft::new`.
    /// `Raft::shutdown` does not join openraft's state machine and replication tasks, which
    /// hold the database (and its file lock) for a moment after it returns.
    pub fn release_signal(&self) -> Released {
        self.db.release_signal()
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, RaftStorageError> {
        read_range(&self.db, range).await
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, RaftStorageError> {
        read_range(&self.db, range).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, RaftStorageError> {
        let read = blocking(&self.db, |db| {
            let last_purged_log_id: Option<LogId<u64>> = db::get_json(db, META, KEY_PURGED)?;
            let last_log_id = last_entry_id(db)?.or(last_purged_log_id);
            Ok(LogState {
                last_purged_log_id,
                last_log_id,
            })
        });
        read.await.map_err(raft_err(StorageIOError::read_logs))
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            db: Arc::clone(&self.db),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), RaftStorageError> {
        let vote = *vote;
        let write = blocking(&self.db, move |db| db::put_json(db, META, KEY_VOTE, &vote));
        write.await.map_err(raft_err(StorageIOError::write_vote))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, RaftStorageError> {
        let read = blocking(&self.db, |db| db::get_json(db, META, KEY_VOTE));
        read.await.map_err(raft_err(StorageIOError::read_vote))
    }

    /// Persisted so that a restarted node re-applies the committed log on top of its snapshot:
    /// the state machine itself lives in memory.
    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), RaftStorageError> {
        let write = blocking(&self.db, move |db| {
            db::put_json(db, META, KEY_COMMITTED, &committed)
        });
        write.await.map_err(raft_err(StorageIOError::write))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, RaftStorageError> {
        let read = blocking(&self.db, |db| db::get_json(db, META, KEY_COMMITTED));
        // `Some(None)` is a saved "nothing committed yet".
        read.await
            .map(Option::flatten)
            .map_err(raft_err(StorageIOError::read))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), RaftStorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let records = encode_entries(entries).map_err(raft_err(StorageIOError::write_logs))?;
        let write = blocking(&self.db, move |db| insert_entries(db, &records));
        // On error the callback is dropped: the returned error stops the Raft node anyway.
        write.await.map_err(raft_err(StorageIOError::write_logs))?;
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), RaftStorageError> {
        let since = log_id.index;
        let write = blocking(&self.db, move |db| delete_entries(db, since.., None));
        write.await.map_err(raft_err(StorageIOError::write_logs))
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), RaftStorageError> {
        let upto = log_id.index;
        let write = blocking(&self.db, move |db| {
            delete_entries(db, ..=upto, Some(log_id))
        });
        write.await.map_err(raft_err(StorageIOError::write_logs))
    }
}

/// Reads the entries whose index is in `range`, in order.
async fn read_range<RB>(db: &Arc<Db>, range: RB) -> Result<Vec<Entry>, RaftStorageError>
where
    RB: RangeBounds<u64>,
{
    let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
    let read = blocking(db, move |db| {
        let txn = db.begin_read()?;
        let table = txn.open_table(LOG)?;
        let mut entries = Vec::new();
        for item in table.range(bounds)? {
            let (_, value) = item?;
            entries.push(serde_json::from_slice(value.value())?);
        }
        Ok(entries)
    });
    read.await.map_err(raft_err(StorageIOError::read_logs))
}

fn last_entry_id(db: &Database) -> Result<Option<LogId<u64>>, DbError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(LOG)?;
    let Some((_, value)) = table.last()? else {
        return Ok(None);
    };
    let entry: Entry = serde_json::from_slice(value.value())?;
    Ok(Some(entry.log_id))
}

/// Serializes before going to the blocking pool, so only bytes cross threads.
fn encode_entries(
    entries: impl IntoIterator<Item = Entry>,
) -> Result<Vec<(u64, Vec<u8>)>, DbError> {
    let encode = |entry: Entry| Ok((entry.log_id.index, serde_json::to_vec(&entry)?));
    entries.into_iter().map(encode).collect()
}

fn insert_entries(db: &Database, records: &[(u64, Vec<u8>)]) -> Result<(), DbError> {
    let txn = db.begin_write()?;
    {
        let mut table = txn.open_table(LOG)?;
        for (index, bytes) in records {
            table.insert(index, bytes.as_slice())?;
        }
    }
    txn.commit()?;
    Ok(())
}

/// Deletes the entries in `range`; a purge also records its `last_purged_log_id` in the same
/// transaction, so the log state never shows a hole after a crash.
fn delete_entries(
    db: &Database,
    range: impl RangeBounds<u64>,
    purged: Option<LogId<u64>>,
) -> Result<(), DbError> {
    let txn = db.begin_write()?;
    {
        let bounds: (Bound<u64>, Bound<u64>) =
            (range.start_bound().cloned(), range.end_bound().cloned());
        txn.open_table(LOG)?.retain_in(bounds, |_, _| false)?;
        if let Some(log_id) = purged {
            let bytes = serde_json::to_vec(&log_id)?;
            txn.open_table(META)?.insert(KEY_PURGED, bytes.as_slice())?;
        }
    }
    txn.commit()?;
    Ok(())
}
