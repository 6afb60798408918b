//! Baton's Raft type configuration and durable storage.
//!
//! One redb file per node (`<data dir>/raft.redb`) holds the log, the vote, the committed
//! pointer and the current snapshot. The state machine (`ClusterState`) lives in memory and is
//! rebuilt on start from the snapshot plus the committed log.
//!
//! Architecture invariant: only this crate and the daemon name openraft types.

mod db;
mod error;
mod log_store;
mod state_machine;

use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;

pub use db::{Released, DB_FILE, FORMAT_VERSION};
pub use error::StoreError;
pub use log_store::{LogReader, LogStore};
pub use state_machine::{MembershipView, SnapshotBuilder, StateMachineStore, StateView};

openraft::declare_raft_types!(
    /// Baton's Raft types: log entries carry `baton_model::Update`s.
    pub TypeConfig:
        D = baton_model::Update,
        R = baton_model::CommandResult,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A Raft node of this cluster.
pub type Raft = openraft::Raft<TypeConfig>;
pub type NodeId = u64;
pub type Node = openraft::BasicNode;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
pub type RaftMetrics = openraft::RaftMetrics<NodeId, Node>;
pub type StorageError = openraft::StorageError<NodeId>;

/// openraft's request and error types for the daemon's network and API code.
pub mod raft_types {
    use super::{Node, NodeId, TypeConfig};

    pub type AppendEntriesRequest = openraft::raft::AppendEntriesRequest<TypeConfig>;
    pub type AppendEntriesResponse = openraft::raft::AppendEntriesResponse<NodeId>;
    pub type InstallSnapshotRequest = openraft::raft::InstallSnapshotRequest<TypeConfig>;
    pub type InstallSnapshotResponse = openraft::raft::InstallSnapshotResponse<NodeId>;
    pub type VoteRequest = openraft::raft::VoteRequest<NodeId>;
    pub type VoteResponse = openraft::raft::VoteResponse<NodeId>;
    pub type ClientWriteResponse = openraft::raft::ClientWriteResponse<TypeConfig>;
    pub type RaftError<E = openraft::error::Infallible> = openraft::error::RaftError<NodeId, E>;
    pub type RPCError<E = openraft::error::Infallible> =
        openraft::error::RPCError<NodeId, Node, RaftError<E>>;
    pub type ClientWriteError = openraft::error::ClientWriteError<NodeId, Node>;
    pub type InstallSnapshotError = openraft::error::InstallSnapshotError;
}

/// Log entries between two snapshots; also bounds what a restart re-applies.
pub const SNAPSHOT_EVERY_LOGS: u64 = 1000;
/// Entries kept after a snapshot, so a briefly lagging follower catches up from the log
/// instead of needing the whole snapshot.
pub const LOGS_KEPT_AFTER_SNAPSHOT: u64 = 500;
/// Purging in batches makes each purge one transaction over many entries.
pub const PURGE_BATCH: u64 = 256;

/// The Raft config for a node, validated (`election_min_ms` must exceed `heartbeat_ms` and be
/// less than `election_max_ms`).
pub fn raft_config(
    heartbeat_ms: u64,
    election_min_ms: u64,
    election_max_ms: u64,
) -> Result<openraft::Config, StoreError> {
    let config = openraft::Config {
        cluster_name: "baton".to_string(),
        heartbeat_interval: heartbeat_ms,
        election_timeout_min: election_min_ms,
        election_timeout_max: election_max_ms,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_LOGS),
        max_in_snapshot_log_to_keep: LOGS_KEPT_AFTER_SNAPSHOT,
        purge_batch_size: PURGE_BATCH,
        ..Default::default()
    };
    config
        .validate()
        .map_err(|e| StoreError::Config(Box::new(e)))
}

/// Opens the node's store in `data_dir` (created if missing): the log store and the state
/// machine for `Raft::new`, and a receiver of the state machine's published views.
///
/// Fails if another process has the data dir open, or if the file is damaged.
pub fn open(
    data_dir: &Path,
) -> Result<(LogStore, StateMachineStore, watch::Receiver<Arc<StateView>>), StoreError> {
    let db = db::open_database(data_dir)?;
    let (state_machine, views) = StateMachineStore::open(Arc::clone(&db))
        .map_err(|e| StoreError::from_db(data_dir, &data_dir.join(DB_FILE), e))?;
    Ok((LogStore::new(db), state_machine, views))
}
