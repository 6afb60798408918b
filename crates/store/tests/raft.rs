//! A real single-node openraft `Raft` on the stores: snapshots and purging keep the log
//! bounded, and a restart rebuilds the state from snapshot plus committed log.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use baton_store::raft_types::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotError, InstallSnapshotRequest,
    InstallSnapshotResponse, RPCError, VoteRequest, VoteResponse,
};
use baton_store::{Raft, Released, StateView, TypeConfig};
use common::{create_group, initialize};
use openraft::error::NetworkError;
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::{AnyError, BasicNode, SnapshotPolicy};
use tempfile::TempDir;
use tokio::sync::watch;

/// A single-node cluster never sends RPCs; every call fails as unreachable.
struct NoNetwork;

fn unreachable<E: std::error::Error>() -> RPCError<E> {
    RPCError::Network(NetworkError::new(&AnyError::error(
        "single-node test has no network",
    )))
}

impl RaftNetworkFactory<TypeConfig> for NoNetwork {
    type Network = NoNetwork;

    async fn new_client(&mut self, _target: u64, _node: &BasicNode) -> NoNetwork {
        NoNetwork
    }
}

impl RaftNetwork<TypeConfig> for NoNetwork {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse, RPCError> {
        Err(unreachable())
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse, RPCError<InstallSnapshotError>> {
        Err(RPCError::Network(NetworkError::new(&AnyError::error(
            "no network",
        ))))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest,
        _option: RPCOption,
    ) -> Result<VoteResponse, RPCError> {
        Err(unreachable())
    }
}

const SNAPSHOT_EVERY: u64 = 20;
const KEEP: u64 = 5;

async fn start(dir: &Path) -> (Raft, watch::Receiver<Arc<StateView>>, Released) {
    let mut config = baton_store::raft_config(50, 150, 300).unwrap();
    config.snapshot_policy = SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY);
    config.max_in_snapshot_log_to_keep = KEEP;
    config.purge_batch_size = 1;
    let (log, sm, views) = baton_store::open(dir).unwrap();
    let released = log.release_signal();
    let raft = Raft::new(1, Arc::new(config), NoNetwork, log, sm)
        .await
        .unwrap();
    (raft, views, released)
}

async fn wait_leader(raft: &Raft) {
    let wait = raft.wait(Some(Duration::from_secs(10)));
    wait.current_leader(1, "node 1 leads").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_purge_the_log_and_a_restart_replays_it() {
    let dir = TempDir::new().unwrap();
    let (raft, views, released) = start(dir.path()).await;
    let nodes = BTreeMap::from([(1, BasicNode::new("127.0.0.1:7000"))]);
    raft.initialize(nodes).await.unwrap();
    wait_leader(&raft).await;
    raft.client_write(initialize()).await.unwrap();
    for i in 0..60 {
        raft.client_write(create_group(&format!("g{i}")))
            .await
            .unwrap();
    }

    let wait = raft.wait(Some(Duration::from_secs(10)));
    let metrics = wait
        // Snapshots and purges run behind the writes: wait until they caught up with the last
        // write rather than taking the first purge, which may belong to an earlier snapshot.
        .metrics(
            |m| {
                let snapshot = m.snapshot.map(|s| s.index);
                let caught_up = snapshot
                    .zip(m.last_log_index)
                    .is_some_and(|(s, l)| l - s < SNAPSHOT_EVERY);
                caught_up && m.purged.is_some_and(|p| Some(p.index + KEEP) == snapshot)
            },
            "log snapshotted and purged up to the last write",
        )
        .await
        .unwrap();
    let last = metrics.last_log_index.unwrap();
    let snapshot = metrics.snapshot.expect("a snapshot was built").index;
    assert!(
        last - snapshot < SNAPSHOT_EVERY,
        "snapshot {snapshot} lags log {last}"
    );
    assert_eq!(
        metrics.purged.unwrap().index + KEEP,
        snapshot,
        "{metrics:?}"
    );
    let before = views.borrow().clone();
    assert_eq!(before.state.groups.len(), 60);
    assert_eq!(before.last_applied_index, last);
    raft.shutdown().await.unwrap();
    drop(raft);
    // openraft's state machine task may still hold the store for a moment.
    assert!(
        released.wait(Duration::from_secs(5)).await,
        "the store was not released"
    );

    let (raft, views, _released) = start(dir.path()).await;
    wait_leader(&raft).await;
    let wait = raft.wait(Some(Duration::from_secs(10)));
    wait.applied_index_at_least(Some(last), "replayed")
        .await
        .unwrap();
    assert_eq!(views.borrow().state, before.state);
    raft.client_write(create_group("after-restart"))
        .await
        .unwrap();
    assert_eq!(views.borrow().state.groups.len(), 61);
    raft.shutdown().await.unwrap();
}
