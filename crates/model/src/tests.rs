//! Unit tests of the cluster database: each command's effect and its refusals.

use std::collections::BTreeMap;

use crate::*;

pub(crate) fn update(now_ms: u64, command: Command) -> Update {
    Update { now_ms, command }
}

pub(crate) fn cluster() -> ClusterState {
    let mut state = ClusterState::default();
    let init = Command::Initialize {
        cluster_name: "prod".into(),
        admin_token_hash: "h".into(),
        node_name: "n1".into(),
        addr: "127.0.0.1:7001".into(),
    };
    assert_eq!(state.apply(&update(1, init)), CommandResult::Ok);
    for (index, addr) in ["127.0.0.2:7001", "127.0.0.3:7001"].iter().enumerate() {
        let token_id = format!("t{index}");
        let token = Command::CreateJoinToken {
            token_id: token_id.clone(),
            secret_hash: "s".into(),
            expires_ms: 100,
        };
        assert_eq!(state.apply(&update(2, token)), CommandResult::Ok);
        let join = Command::JoinNode {
            token_id,
            secret_hash: "s".into(),
            name: None,
            addr: addr.to_string(),
        };
        assert!(matches!(
            state.apply(&update(3, join)),
            CommandResult::Joined { .. }
        ));
    }
    for node in [2, 3] {
        assert_eq!(
            state.apply(&update(4, Command::NodeUp { node })),
            CommandResult::Ok
        );
    }
    state
}

pub(crate) fn with_group(mut state: ClusterState) -> ClusterState {
    let create = Command::CreateGroup {
        name: "web".into(),
        preferred_owners: vec![1, 2, 3],
    };
    assert_eq!(state.apply(&update(5, create)), CommandResult::Ok);
    state
}

pub(crate) fn rejected(result: CommandResult) -> String {
    match result {
        CommandResult::Rejected { reason } => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn join_assigns_ids_and_names() {
    let state = cluster();
    let names: Vec<_> = state
        .nodes
        .values()
        .map(|n| (n.id, n.name.as_str(), n.state))
        .collect();
    assert_eq!(
        names,
        vec![
            (1, "n1", NodeState::Up),
            (2, "n2", NodeState::Up),
            (3, "n3", NodeState::Up)
        ]
    );
    assert_eq!(state.votes_total(), 3);
}

#[test]
fn join_token_is_single_use_expiring_and_secret() {
    let mut state = cluster();
    let token = Command::CreateJoinToken {
        token_id: "x".into(),
        secret_hash: "good".into(),
        expires_ms: 50,
    };
    state.apply(&update(10, token));
    let join = |secret: &str, addr: &str| Command::JoinNode {
        token_id: "x".into(),
        secret_hash: secret.into(),
        name: None,
        addr: addr.into(),
    };
    assert!(
        rejected(state.apply(&update(11, join("bad", "127.0.0.9:1"))))
            .contains("wrong token secret")
    );
    assert!(rejected(state.apply(&update(60, join("good", "127.0.0.9:1")))).contains("expired"));
    assert!(matches!(
        state.apply(&update(12, join("good", "127.0.0.9:1"))),
        CommandResult::Joined { node: 4, .. }
    ));
    assert!(
        rejected(state.apply(&update(13, join("good", "127.0.0.8:1")))).contains("already used")
    );
    let unknown = Command::JoinNode {
        token_id: "nope".into(),
        secret_hash: "good".into(),
        name: None,
        addr: "a".into(),
    };
    assert!(rejected(state.apply(&update(13, unknown))).contains("unknown token"));
}

#[test]
fn placement_never_replaces_a_live_owner() {
    let mut state = with_group(cluster());
    let place = |node, generation| Command::PlaceGroup {
        group: "web".into(),
        node,
        generation,
        reason: "test".into(),
        failover: false,
    };
    assert_eq!(state.apply(&update(6, place(1, 1))), CommandResult::Ok);
    // Node 1 is up: a second placement must be refused, whatever the generation.
    assert!(rejected(state.apply(&update(7, place(2, 2)))).contains("still assigned to n1"));
    assert!(rejected(state.apply(&update(7, place(2, 1)))).contains("stale placement"));
    // Once node 1 is down (its lease expired, says the coordinator), the group may move.
    state.apply(&update(
        8,
        Command::NodeDown {
            node: 1,
            reason: "silent".into(),
        },
    ));
    assert_eq!(state.apply(&update(9, place(2, 2))), CommandResult::Ok);
    let group = &state.groups["web"];
    assert_eq!(
        group.assignment,
        Some(Assignment {
            node: 2,
            generation: 2,
            releasing: false
        })
    );
    assert_eq!(state.nodes[&1].down_epoch, 1);
}

#[test]
fn planned_move_goes_through_release_and_stop() {
    let mut state = with_group(cluster());
    state.apply(&update(
        6,
        Command::PlaceGroup {
            group: "web".into(),
            node: 1,
            generation: 1,
            reason: "start".into(),
            failover: false,
        },
    ));
    state.apply(&update(
        7,
        Command::RequestMove {
            group: "web".into(),
            target: Some(3),
        },
    ));
    state.apply(&update(
        8,
        Command::ReleaseGroup {
            group: "web".into(),
            generation: 1,
            target: Some(3),
            reason: "move".into(),
            pending_reason: None,
        },
    ));
    assert!(state.groups["web"].assignment.is_some_and(|a| a.releasing));
    // A report from a stale generation or a wrong node changes nothing.
    let stale = Command::GroupStopped {
        group: "web".into(),
        node: 1,
        generation: 0,
    };
    assert!(rejected(state.apply(&update(9, stale))).contains("stale report"));
    let wrong = Command::GroupStopped {
        group: "web".into(),
        node: 2,
        generation: 1,
    };
    assert!(rejected(state.apply(&update(9, wrong))).contains("stale owner"));
    let stopped = Command::GroupStopped {
        group: "web".into(),
        node: 1,
        generation: 1,
    };
    assert_eq!(state.apply(&update(9, stopped)), CommandResult::Ok);
    assert_eq!(state.groups["web"].assignment, None);
    let place = Command::PlaceGroup {
        group: "web".into(),
        node: 3,
        generation: 2,
        reason: "moved".into(),
        failover: false,
    };
    assert_eq!(state.apply(&update(10, place)), CommandResult::Ok);
    assert_eq!(state.groups["web"].move_request, None);
}

#[test]
fn resource_parameters_are_checked() {
    let mut state = with_group(cluster());
    let create = |params: &[(&str, &str)]| Command::CreateResource {
        name: "app".into(),
        group: "web".into(),
        resource_type: ResourceType::Process,
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    };
    assert!(rejected(state.apply(&update(6, create(&[])))).contains("requires parameter `command`"));
    assert!(
        rejected(state.apply(&update(6, create(&[("command", "x"), ("colour", "red")]))))
            .contains("no parameter `colour`")
    );
    assert_eq!(
        state.apply(&update(6, create(&[("command", "x"), ("env.PORT", "80")]))),
        CommandResult::Ok
    );
    assert!(
        rejected(state.apply(&update(6, create(&[("command", "x")])))).contains("already exists")
    );
}

#[test]
fn evict_refuses_owner_and_last_node() {
    let mut state = with_group(cluster());
    state.apply(&update(
        6,
        Command::PlaceGroup {
            group: "web".into(),
            node: 2,
            generation: 1,
            reason: "s".into(),
            failover: false,
        },
    ));
    assert!(
        rejected(state.apply(&update(7, Command::EvictNode { node: 2 })))
            .contains("still owns group(s) web")
    );
    assert_eq!(
        state.apply(&update(7, Command::EvictNode { node: 3 })),
        CommandResult::Ok
    );
    assert_eq!(state.groups["web"].preferred_owners, vec![1, 2]);
}

#[test]
fn drain_requests_moves_of_the_nodes_groups() {
    let mut state = with_group(cluster());
    state.apply(&update(
        6,
        Command::PlaceGroup {
            group: "web".into(),
            node: 2,
            generation: 1,
            reason: "s".into(),
            failover: false,
        },
    ));
    state.apply(&update(
        7,
        Command::PauseNode {
            node: 2,
            drain: true,
        },
    ));
    assert_eq!(state.nodes[&2].display_state(), "Paused");
    assert_eq!(
        state.groups["web"].move_request,
        Some(MoveRequest { target: None })
    );
}

#[test]
fn properties_are_bounded_and_events_bounded() {
    let mut state = cluster();
    let mut properties = ClusterProperties::default();
    properties.same_subnet.threshold = 1;
    let reason = rejected(state.apply(&update(6, Command::SetProperties { properties })));
    assert!(
        reason.contains("heartbeat.same_subnet.threshold"),
        "{reason}"
    );
    for index in 0..(EVENTS_MAX + 10) {
        state.apply(&update(index as u64, Command::ResumeNode { node: 1 }));
    }
    assert_eq!(state.events.len(), EVENTS_MAX);
}

#[test]
fn commands_before_initialize_are_refused() {
    let mut state = ClusterState::default();
    let reason = rejected(state.apply(&update(1, Command::NodeUp { node: 1 })));
    assert!(reason.contains("not initialized"));
    assert_eq!(state, ClusterState::default());
}
