//! The stores through their openraft traits: applying, snapshots, durability across reopen,
//! purge, and the errors of opening a data dir.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use baton_model::CommandResult;
use baton_store::{StoreError, DB_FILE};
use common::*;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{RaftLogReader, RaftSnapshotBuilder, Vote};
use tempfile::TempDir;

#[tokio::test]
async fn apply_publishes_the_state_and_membership() {
    let dir = TempDir::new().unwrap();
    let (_log, mut sm, views) = baton_store::open(dir.path()).unwrap();
    assert_eq!(views.borrow().last_applied_index, 0);

    let results = sm.apply(first_entries()).await.unwrap();

    assert_eq!(
        results,
        vec![CommandResult::Ok, CommandResult::Ok, CommandResult::Ok]
    );
    let view = views.borrow().clone();
    assert_eq!(view.last_applied_index, 2);
    assert_eq!(view.state.cluster_name, "prod");
    assert!(view.state.groups.contains_key("web"));
    assert_eq!(view.membership.voters, BTreeSet::from([1]));
    assert!(view.membership.learners.is_empty());
    assert_eq!(
        view.membership.addrs,
        BTreeMap::from([(1, "10.0.0.1:7000".to_string())])
    );
}

#[tokio::test]
async fn a_stale_command_is_rejected_not_failed() {
    let dir = TempDir::new().unwrap();
    let (_log, mut sm, _views) = baton_store::open(dir.path()).unwrap();
    sm.apply(first_entries()).await.unwrap();

    let results = sm.apply([normal(3, create_group("web"))]).await.unwrap();

    assert!(
        matches!(results[..], [CommandResult::Rejected { .. }]),
        "{results:?}"
    );
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1, 3)));
}

#[tokio::test]
async fn snapshot_restores_into_a_fresh_state_machine() {
    let (dir_a, dir_b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let (_log_a, mut sm_a, views_a) = baton_store::open(dir_a.path()).unwrap();
    sm_a.apply(first_entries()).await.unwrap();
    let snapshot = sm_a
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 2)));

    let (_log_b, mut sm_b, views_b) = baton_store::open(dir_b.path()).unwrap();
    let mut received = sm_b.begin_receiving_snapshot().await.unwrap();
    received
        .get_mut()
        .write_all(snapshot.snapshot.get_ref())
        .unwrap();
    sm_b.install_snapshot(&snapshot.meta, received)
        .await
        .unwrap();

    assert_eq!(*views_b.borrow().clone(), *views_a.borrow().clone());
    assert_eq!(
        sm_b.applied_state().await.unwrap(),
        sm_a.applied_state().await.unwrap()
    );
    drop((_log_b, sm_b));

    // The installed snapshot is durable: a reopened node starts from it.
    let (_log_b, mut sm_b, views_b) = baton_store::open(dir_b.path()).unwrap();
    assert_eq!(*views_b.borrow().clone(), *views_a.borrow().clone());
    let current = sm_b
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("a stored snapshot");
    assert_eq!(current.meta, snapshot.meta);
}

#[tokio::test]
async fn an_older_build_never_replaces_a_newer_snapshot() {
    let dir = TempDir::new().unwrap();
    let (_log, mut sm, _views) = baton_store::open(dir.path()).unwrap();
    sm.apply(first_entries()).await.unwrap();
    let mut old_builder = sm.get_snapshot_builder().await;
    sm.apply([blank(3)]).await.unwrap();
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();

    old_builder.build_snapshot().await.unwrap();

    let current = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta.last_log_id, Some(log_id(1, 3)));
}

#[tokio::test]
async fn reopen_brings_back_vote_committed_log_and_snapshot() {
    let dir = TempDir::new().unwrap();
    let vote = Vote::new_committed(3, 1);
    {
        let (mut log, mut sm, _views) = baton_store::open(dir.path()).unwrap();
        log.save_vote(&vote).await.unwrap();
        log.blocking_append(first_entries()).await.unwrap();
        log.save_committed(Some(log_id(1, 2))).await.unwrap();
        sm.apply(first_entries().into_iter().take(2)).await.unwrap();
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
    }

    let (mut log, mut sm, views) = baton_store::open(dir.path()).unwrap();
    assert_eq!(log.read_vote().await.unwrap(), Some(vote));
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 2)));
    let entries = log
        .get_log_reader()
        .await
        .try_get_log_entries(0..)
        .await
        .unwrap();
    assert_eq!(entries, first_entries());
    let state = log.get_log_state().await.unwrap();
    assert_eq!(
        (state.last_purged_log_id, state.last_log_id),
        (None, Some(log_id(1, 2)))
    );
    let snapshot = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 1)));
    // Restored from the snapshot only; openraft re-applies index 2 from the committed log.
    assert_eq!(views.borrow().last_applied_index, 1);
    assert_eq!(views.borrow().state.cluster_name, "prod");
}

#[tokio::test]
async fn purge_deletes_the_prefix_durably() {
    let dir = TempDir::new().unwrap();
    {
        let (mut log, _sm, _views) = baton_store::open(dir.path()).unwrap();
        log.blocking_append((0..100).map(blank)).await.unwrap();
        log.purge(log_id(1, 59)).await.unwrap();
    }

    let (mut log, _sm, _views) = baton_store::open(dir.path()).unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 59)));
    assert_eq!(state.last_log_id, Some(log_id(1, 99)));
    let entries = log.try_get_log_entries(..).await.unwrap();
    assert_eq!(entries.first().map(|e| e.log_id.index), Some(60));
    assert_eq!(entries.len(), 40);

    // Purging everything leaves the last log id at the purge point.
    log.purge(log_id(1, 99)).await.unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(1, 99)));
    assert!(log.try_get_log_entries(..).await.unwrap().is_empty());
}

#[tokio::test]
async fn truncate_deletes_the_suffix() {
    let dir = TempDir::new().unwrap();
    let (mut log, _sm, _views) = baton_store::open(dir.path()).unwrap();
    log.blocking_append((0..10).map(blank)).await.unwrap();

    log.truncate(log_id(1, 4)).await.unwrap();

    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(1, 3)));
}

#[test]
fn a_second_open_of_a_live_data_dir_fails_clearly() {
    let dir = TempDir::new().unwrap();
    let _first = baton_store::open(dir.path()).unwrap();

    let error = baton_store::open(dir.path())
        .err()
        .expect("the second open must fail");

    assert!(matches!(error, StoreError::InUse { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("in use by another baton daemon"),
        "{message}"
    );
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );
}

#[test]
fn the_data_dir_can_be_reopened_after_closing() {
    let dir = TempDir::new().unwrap();
    drop(baton_store::open(dir.path()).unwrap());
    baton_store::open(dir.path()).unwrap();
}

#[test]
fn a_corrupt_file_names_the_file_and_the_fix() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join(DB_FILE);
    std::fs::write(&file, vec![0xAB; 8192]).unwrap();

    let error = baton_store::open(dir.path())
        .err()
        .expect("a corrupt file must not open");

    assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("is corrupt"), "{message}");
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(
        message.contains("snapshot") && message.contains("re-join"),
        "{message}"
    );
}

#[test]
fn a_missing_data_dir_is_created() {
    let dir = TempDir::new().unwrap();
    let nested = dir.path().join("a/b");
    baton_store::open(&nested).unwrap();
    assert!(nested.join(DB_FILE).exists());
}

#[test]
fn raft_config_is_validated() {
    let config = baton_store::raft_config(100, 500, 1000).unwrap();
    assert_eq!(
        config.snapshot_policy,
        openraft::SnapshotPolicy::LogsSinceLast(1000)
    );
    assert_eq!(
        (config.max_in_snapshot_log_to_keep, config.purge_batch_size),
        (500, 256)
    );

    let error = baton_store::raft_config(500, 400, 1000).unwrap_err();
    assert!(
        error.to_string().starts_with("invalid raft timing"),
        "{error}"
    );
    assert!(baton_store::raft_config(100, 1000, 1000).is_err());
}
