//! The replicated state machine: `ClusterState` in memory, made durable by snapshots.
//!
//! `apply` does not write to disk. After a restart the state is the stored snapshot plus the
//! committed log entries after it, which openraft re-applies using `read_committed`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::sync::Arc;

use baton_model::{ClusterState, CommandResult};
use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageIOError,
    StoredMembership,
};
use redb::{Database, ReadableTable};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::db::{blocking, Db, SNAPSHOT, SNAP_DATA, SNAP_META};
use crate::error::{raft_err, DbError, RaftStorageError};
use crate::{Entry, Snapshot, TypeConfig};

/// What the daemon reads: the state as of `last_applied_index`, and the Raft membership.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateView {
    pub state: ClusterState,
    /// Index of the last applied log entry; 0 also when nothing was applied yet.
    pub last_applied_index: u64,
    pub membership: MembershipView,
}

/// The Raft membership (last applied configuration), without openraft types.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MembershipView {
    /// Voters of every configuration; two configurations during a joint membership change.
    pub voters: BTreeSet<u64>,
    pub learners: BTreeSet<u64>,
    /// Raft address of every member, voter or learner.
    pub addrs: BTreeMap<u64, String>,
}

/// The state machine as stored in a snapshot: `{last_applied, last_membership, state}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Machine {
    pub last_applied: Option<LogId<u64>>,
    pub last_membership: StoredMembership<u64, BasicNode>,
    pub state: ClusterState,
}

impl Machine {
    fn apply(&mut self, entry: Entry) -> CommandResult {
        self.last_applied = Some(entry.log_id);
        match entry.payload {
            EntryPayload::Blank => CommandResult::Ok,
            EntryPayload::Normal(update) => self.state.apply(&update),
            EntryPayload::Membership(membership) => {
                self.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                CommandResult::Ok
            }
        }
    }

    /// Clones the whole `ClusterState`: a known cost per applied batch, acceptable while the
    /// state is small (a persistent map would make it cheap if it ever shows up in profiles).
    fn view(&self) -> StateView {
        let membership = self.last_membership.membership();
        let addrs = membership
            .nodes()
            .map(|(id, node)| (*id, node.addr.clone()))
            .collect();
        StateView {
            state: self.state.clone(),
            last_applied_index: self.last_applied.map_or(0, |log_id| log_id.index),
            membership: MembershipView {
                voters: membership.voter_ids().collect(),
                learners: membership.learner_ids().collect(),
                addrs,
            },
        }
    }

    fn snapshot_meta(&self) -> SnapshotMeta<u64, BasicNode> {
        SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.last_membership.clone(),
            snapshot_id: snapshot_id(self.last_applied),
        }
    }
}

/// The state machine is deterministic, so the last applied log id identifies a snapshot's
/// content.
fn snapshot_id(last_applied: Option<LogId<u64>>) -> String {
    match last_applied {
        Some(id) => format!(
            "{}-{}-{}",
            id.leader_id.term, id.leader_id.node_id, id.index
        ),
        None => "empty".to_string(),
    }
}

/// The state machine handed to `Raft::new`.
pub struct StateMachineStore {
    db: Arc<Db>,
    machine: Machine,
    views: watch::Sender<Arc<StateView>>,
}

impl StateMachineStore {
    /// Restores from the stored snapshot, if any, and publishes the first view.
    pub(crate) fn open(db: Arc<Db>) -> Result<(Self, watch::Receiver<Arc<StateView>>), DbError> {
        let machine = match read_snapshot(&db)? {
            Some((_, data)) => serde_json::from_slice(&data)?,
            None => Machine::default(),
        };
        let (views, receiver) = watch::channel(Arc::new(machine.view()));
        Ok((Self { db, machine, views }, receiver))
    }

    fn publish(&self) {
        // `send_replace` works without receivers, unlike `send`.
        self.views.send_replace(Arc::new(self.machine.view()));
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), RaftStorageError> {
        Ok((
            self.machine.last_applied,
            self.machine.last_membership.clone(),
        ))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, RaftStorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let results = entries
            .into_iter()
            .map(|entry| self.machine.apply(entry))
            .collect();
        self.publish();
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            db: Arc::clone(&self.db),
            machine: self.machine.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, RaftStorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), RaftStorageError> {
        let to_err = raft_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), e));
        let data = snapshot.into_inner();
        let mut machine: Machine = serde_json::from_slice(&data).map_err(|e| to_err(e.into()))?;
        // The meta is what openraft reasons with; the data must agree with it.
        machine.last_applied = meta.last_log_id;
        machine.last_membership = meta.last_membership.clone();
        let meta_owned = meta.clone();
        blocking(&self.db, move |db| {
            write_snapshot(db, &meta_owned, &data, true)
        })
        .await
        .map_err(to_err)?;
        self.machine = machine;
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, RaftStorageError> {
        let read = blocking(&self.db, read_snapshot).await;
        let stored = read.map_err(raft_err(|e| StorageIOError::read_snapshot(None, e)))?;
        Ok(stored.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

/// A copy of the state machine taken by `get_snapshot_builder`; openraft builds the snapshot
/// in a separate task while the state machine keeps applying.
pub struct SnapshotBuilder {
    db: Arc<Db>,
    machine: Machine,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, RaftStorageError> {
        let meta = self.machine.snapshot_meta();
        let to_err = raft_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), e));
        let data = serde_json::to_vec(&self.machine).map_err(|e| to_err(e.into()))?;
        let (meta_owned, data_owned) = (meta.clone(), data.clone());
        // A snapshot installed meanwhile may be newer than this one: never replace it.
        blocking(&self.db, move |db| {
            write_snapshot(db, &meta_owned, &data_owned, false)
        })
        .await
        .map_err(to_err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

type StoredSnapshot = (SnapshotMeta<u64, BasicNode>, Vec<u8>);

fn read_snapshot(db: &Database) -> Result<Option<StoredSnapshot>, DbError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(SNAPSHOT)?;
    let (Some(meta), Some(data)) = (table.get(SNAP_META)?, table.get(SNAP_DATA)?) else {
        return Ok(None);
    };
    Ok(Some((
        serde_json::from_slice(meta.value())?,
        data.value().to_vec(),
    )))
}

/// Stores meta and data in one transaction. Unless `replace`, keeps a stored snapshot that
/// covers more of the log than this one.
fn write_snapshot(
    db: &Database,
    meta: &SnapshotMeta<u64, BasicNode>,
    data: &[u8],
    replace: bool,
) -> Result<(), DbError> {
    let txn = db.begin_write()?;
    {
        let mut table = txn.open_table(SNAPSHOT)?;
        let stored = table
            .get(SNAP_META)?
            .map(|v| serde_json::from_slice(v.value()));
        let stored: Option<SnapshotMeta<u64, BasicNode>> = stored.transpose()?;
        if !replace && stored.is_some_and(|s| s.last_log_id > meta.last_log_id) {
            return Ok(());
        }
        table.insert(SNAP_META, serde_json::to_vec(meta)?.as_slice())?;
        table.insert(SNAP_DATA, data)?;
    }
    txn.commit()?;
    Ok(())
}
