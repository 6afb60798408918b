//! The one redb file behind the log store and the state machine: its tables, the opening
//! checks, and small typed accessors.

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use redb::{Database, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;

use crate::error::{DbError, StoreError};

/// The database file inside a node's data dir.
pub const DB_FILE: &str = "raft.redb";

/// Bumped when the layout of the tables or their records changes incompatibly.
pub const FORMAT_VERSION: u64 = 1;

/// Log index → JSON of `Entry<TypeConfig>`.
pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// Small records of the log store (`KEY_*`), JSON.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// The current snapshot: `SNAP_META` (JSON `SnapshotMeta`) and `SNAP_DATA` (its bytes).
pub(crate) const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");

pub(crate) const KEY_FORMAT: &str = "format";
pub(crate) const KEY_VOTE: &str = "vote";
pub(crate) const KEY_COMMITTED: &str = "committed";
pub(crate) const KEY_PURGED: &str = "last_purged_log_id";
pub(crate) const SNAP_META: &str = "meta";
pub(crate) const SNAP_DATA: &str = "data";

/// The open database, shared by the log store, its readers and the state machine.
pub(crate) struct Db {
    /// Declared first so it is dropped first: the file and its lock are closed before
    /// `closed` wakes the `Released` waiters.
    database: Database,
    closed: watch::Sender<()>,
}

impl Deref for Db {
    type Target = Database;

    fn deref(&self) -> &Database {
        &self.database
    }
}

impl Db {
    pub(crate) fn release_signal(&self) -> Released {
        Released(self.closed.subscribe())
    }
}

/// Tells when a store's database is closed, so that the same data dir can be opened again in
/// this process.
#[derive(Clone)]
pub struct Released(watch::Receiver<()>);

impl Released {
    pub fn is_released(&self) -> bool {
        self.0.has_changed().is_err()
    }

    /// Waits up to `timeout` for the release; returns whether it happened.
    pub async fn wait(&self, timeout: Duration) -> bool {
        let mut closed = self.0.clone();
        // Nothing is ever sent: `changed` returns only when the sender is dropped.
        let released = async { while closed.changed().await.is_ok() {} };
        tokio::time::timeout(timeout, released).await.is_ok()
    }
}

/// Opens (or creates) `data_dir/raft.redb`, creates the tables and checks the format.
///
/// redb holds an exclusive file lock while the database is open, so a second daemon on the
/// same data dir fails here instead of corrupting it.
pub(crate) fn open_database(data_dir: &Path) -> Result<Arc<Db>, StoreError> {
    std::fs::create_dir_all(data_dir).map_err(|source| StoreError::CreateDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let file = data_dir.join(DB_FILE);
    let db = Database::create(&file).map_err(|e| StoreError::from_open(data_dir, &file, e))?;
    match init_tables(&db) {
        Ok(()) => Ok(Arc::new(Db {
            database: db,
            closed: watch::channel(()).0,
        })),
        Err(DbError::Format(found)) => Err(StoreError::Format {
            file,
            found,
            supported: FORMAT_VERSION,
        }),
        Err(e) => Err(StoreError::from_db(data_dir, &file, e)),
    }
}

/// Creating every table up front lets readers open them without a "does not exist" case.
fn init_tables(db: &Database) -> Result<(), DbError> {
    let txn = db.begin_write()?;
    {
        txn.open_table(LOG)?;
        txn.open_table(SNAPSHOT)?;
        let mut meta = txn.open_table(META)?;
        let stored = meta
            .get(KEY_FORMAT)?
            .map(|v| serde_json::from_slice::<u64>(v.value()));
        match stored.transpose()? {
            Some(FORMAT_VERSION) => {}
            Some(found) => return Err(DbError::Format(found)),
            None => {
                meta.insert(KEY_FORMAT, serde_json::to_vec(&FORMAT_VERSION)?.as_slice())?;
            }
        }
    }
    txn.commit()?;
    Ok(())
}

/// Runs blocking database work off the async executor; redb commits fsync the file.
pub(crate) async fn blocking<T, F>(db: &Arc<Db>, work: F) -> Result<T, DbError>
where
    T: Send + 'static,
    F: FnOnce(&Database) -> Result<T, DbError> + Send + 'static,
{
    let db = Arc::clone(db);
    tokio::task::spawn_blocking(move || work(&db)).await?
}

/// Reads and decodes one JSON record of a `&str`-keyed table.
pub(crate) fn get_json<T: DeserializeOwned>(
    db: &Database,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
) -> Result<Option<T>, DbError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(table)?;
    let value = table.get(key)?;
    Ok(value
        .map(|v| serde_json::from_slice(v.value()))
        .transpose()?)
}

/// Writes one JSON record durably (redb's default durability is `Immediate`).
pub(crate) fn put_json<T: Serialize>(
    db: &Database,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
    value: &T,
) -> Result<(), DbError> {
    let bytes = serde_json::to_vec(value)?;
    let txn = db.begin_write()?;
    txn.open_table(table)?.insert(key, bytes.as_slice())?;
    txn.commit()?;
    Ok(())
}
