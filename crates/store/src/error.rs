//! Errors of opening a data dir (`StoreError`) and of single database operations (`DbError`),
//! the latter mapped to openraft's `StorageError` at the trait boundary.

use std::path::{Path, PathBuf};

use openraft::{AnyError, StorageIOError};
use thiserror::Error;

/// Why a node's store could not be opened or configured. Messages name the path and the fix.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot create data dir {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "data dir {dir} is in use by another baton daemon ({file} is locked): \
         stop that daemon or choose another data dir"
    )]
    InUse { dir: PathBuf, file: PathBuf },
    #[error(
        "data dir {dir} is corrupt: {file}: {reason}; restore it from a snapshot, \
         or move it aside and re-join the cluster"
    )]
    Corrupt {
        dir: PathBuf,
        file: PathBuf,
        reason: String,
    },
    #[error("cannot open {file}: {reason}")]
    Open { file: PathBuf, reason: String },
    #[error(
        "{file} has store format {found}, this baton reads format {supported}: \
         use a matching baton version"
    )]
    Format {
        file: PathBuf,
        found: u64,
        supported: u64,
    },
    /// Boxed: openraft's error is large and this is a rare, one-time error.
    #[error("invalid raft timing: {0}")]
    Config(Box<openraft::ConfigError>),
}

impl StoreError {
    /// Classifies a failed `Database::create`: a held lock, a damaged file, or plain I/O.
    pub(crate) fn from_open(dir: &Path, file: &Path, error: redb::DatabaseError) -> Self {
        let (dir, file) = (dir.to_path_buf(), file.to_path_buf());
        match error {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse { dir, file },
            redb::DatabaseError::Storage(redb::StorageError::Io(io)) if !is_damage(&io) => {
                StoreError::Open {
                    file,
                    reason: io.to_string(),
                }
            }
            redb::DatabaseError::UpgradeRequired(version) => StoreError::Open {
                file,
                reason: format!("written by an older redb file format ({version})"),
            },
            other => StoreError::Corrupt {
                dir,
                file,
                reason: other.to_string(),
            },
        }
    }

    /// A failure while reading the tables right after opening: the file itself is damaged.
    pub(crate) fn from_db(dir: &Path, file: &Path, error: DbError) -> Self {
        let (dir, file) = (dir.to_path_buf(), file.to_path_buf());
        StoreError::Corrupt {
            dir,
            file,
            reason: error.to_string(),
        }
    }
}

/// Short reads and invalid data mean the file is damaged, not that the disk is unavailable.
fn is_damage(io: &std::io::Error) -> bool {
    matches!(
        io.kind(),
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
    )
}

/// One failed read or write in the database, before openraft gives it a subject.
#[derive(Debug, Error)]
pub(crate) enum DbError {
    /// Boxed: `redb::Error` is large, and `DbError` travels through every storage call.
    #[error("database: {0}")]
    Redb(Box<redb::Error>),
    #[error("cannot decode a stored record: {0}")]
    Codec(#[from] serde_json::Error),
    #[error("storage task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("stored format {0} is not supported")]
    Format(u64),
}

/// redb has one error type per operation; all of them fold into `redb::Error`.
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for DbError {
            fn from(error: $t) -> Self {
                DbError::Redb(Box::new(error.into()))
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// openraft's storage error for this type config.
pub(crate) type RaftStorageError = openraft::StorageError<u64>;

/// Builds openraft's error for `error`, with a subject/verb constructor such as
/// `StorageIOError::write_logs`.
pub(crate) fn raft_err<F>(subject: F) -> impl Fn(DbError) -> RaftStorageError
where
    F: Fn(AnyError) -> StorageIOError<u64>,
{
    move |error| subject(AnyError::new(&error)).into()
}
