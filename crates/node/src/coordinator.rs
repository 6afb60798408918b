//! The coordinator: runs on the Raft leader only. It turns the failure detector's suspicions
//! into fenced `NodeDown`s, admits nodes, keeps the Raft configuration in step with the
//! database, and executes the pure policy's plan as global updates.
//!
//! Safety: a lost node's groups are placed elsewhere only after `fenced_after` for that
//! node, computed from a majority's condemnation replies (see `baton_membership::safe_after_ms`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use baton_membership::{safe_after_ms, NodeId};
use baton_model::{ClusterState, Command, NodeState};
use baton_policy as policy;
use openraft::{BasicNode, ChangeMembers};
use tokio::task::JoinSet;

use crate::clock::{mono_ms, wall_ms};
use crate::node::Node;
use crate::rpc::{Condemn, PROBE_TIMEOUT};

/// How often the coordinator looks, besides reacting to database changes.
const STEP_INTERVAL: Duration = Duration::from_millis(25);
/// After an inconclusive probe, wait this long before probing the same node again.
const PROBE_BACKOFF_MS: u64 = 200;

pub async fn run(node: Arc<Node>) {
    let mut coordinator = Coordinator::default();
    let mut last_election_ms = 0;
    let mut changes = node.view.clone();
    let mut interval = tokio::time::interval(STEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = changes.changed() => {}
        }
        if node.is_leader() {
            coordinator.step(&node).await;
            continue;
        }
        if coordinator.leader_since_ms.is_some() {
            tracing::info!("no longer coordinator");
            coordinator = Coordinator::default();
        }
        elect_if_leader_silent(&node, &mut last_election_ms).await;
    }
}

/// The failure detector saw the coordinator silent for a whole detection time: start an
/// election now instead of waiting for Raft's own randomized timeout (openraft 0.9 followers
/// wait `election_timeout_max` plus a random part). Voters grant it once their leader lease
/// (`election_timeout_max`, set below the detection time) has run out.
/// Candidates are staggered by their rank among the other voters, so two followers rarely
/// split the vote by starting at the same instant.
async fn elect_if_leader_silent(node: &Node, last_election_ms: &mut u64) {
    let Some(leader) = node.leader() else { return };
    let now = mono_ms();
    let rank = voter_ids(node)
        .into_iter()
        .filter(|id| *id != leader)
        .position(|id| id == node.id());
    let Some(rank) = rank else { return };
    let stagger_ms = rank as u64 * ELECTION_STAGGER_MS;
    let suspected = {
        let membership = node.heartbeat.membership();
        let silence = membership.silence_ms(leader, now).unwrap_or(0);
        membership.suspects(now).contains(&leader)
            && silence >= membership.suspicion_ms(leader) + stagger_ms
    };
    if suspected && now >= *last_election_ms + ELECTION_BACKOFF_MS {
        *last_election_ms = now;
        tracing::info!(leader, "coordinator silent: starting an election");
        let _ = node.raft.trigger().elect().await;
    }
}

/// At most one early election per this interval from one node.
const ELECTION_BACKOFF_MS: u64 = 60;
/// Delay between the early elections of successive voters.
const ELECTION_STAGGER_MS: u64 = 120;

#[derive(Default)]
struct Coordinator {
    leader_since_ms: Option<u64>,
    /// Down node → monotonic ms after which its lease has certainly expired.
    fenced_after: BTreeMap<NodeId, u64>,
    /// Node → no new probe before this monotonic ms.
    probe_backoff: BTreeMap<NodeId, u64>,
    /// A Raft membership change in flight (one at a time).
    raft_change: Option<tokio::task::JoinHandle<()>>,
}

impl Coordinator {
    async fn step(&mut self, node: &Arc<Node>) {
        let now = mono_ms();
        if self.leader_since_ms.is_none() {
            tracing::info!("became coordinator");
            self.leader_since_ms = Some(now);
        }
        let view = node.view();
        if !view.state.is_initialized() {
            return;
        }
        self.sync_raft_membership(node, &view.state);
        self.admit_nodes(node, &view.state).await;
        self.detect_failures(node, &view.state).await;
        self.fence_down_nodes(node, &view.state).await;
        self.execute_plan(node, &view.state).await;
    }

    /// Marks up the nodes this coordinator hears again (joining nodes once they vote).
    async fn admit_nodes(&mut self, node: &Node, state: &ClusterState) {
        let voters = voter_ids(node);
        for entry in state.nodes.values().filter(|n| n.state != NodeState::Up) {
            let heard = entry.id == node.id() || self.heard_recently(node, state, entry.id);
            let votes_ready = entry.state != NodeState::Joining || voters.contains(&entry.id);
            if heard && votes_ready {
                tracing::info!(node = %entry.name, "node is back or admitted");
                self.fenced_after.remove(&entry.id);
                node.propose_logged(Command::NodeUp { node: entry.id })
                    .await;
            }
        }
    }

    fn heard_recently(&self, node: &Node, state: &ClusterState, peer: NodeId) -> bool {
        let membership = node.heartbeat.membership();
        let delay = delay_ms_for(state);
        let silence = membership.silence_ms(peer, mono_ms());
        silence.is_some_and(|s| s < 2 * delay) && !membership.suspects(mono_ms()).contains(&peer)
    }

    /// Suspected up nodes: confirm through the others (indirect probe), then condemn.
    async fn detect_failures(&mut self, node: &Arc<Node>, state: &ClusterState) {
        for suspect in self.suspects(node, state) {
            let now = mono_ms();
            if self
                .probe_backoff
                .get(&suspect)
                .is_some_and(|until| now < *until)
            {
                continue;
            }
            self.probe_backoff.insert(suspect, now + PROBE_BACKOFF_MS);
            let Some(reason) = confirm_silence(node, state, suspect).await else {
                continue;
            };
            if let Some(fenced_after) = condemn(node, state, suspect).await {
                let lease_left = fenced_after.saturating_sub(mono_ms());
                let reason = format!("{reason}; its lease ends within {lease_left} ms");
                tracing::warn!(node = %state.node_name(suspect), %reason, "declaring node down");
                self.fenced_after.insert(suspect, fenced_after);
                node.propose_logged(Command::NodeDown {
                    node: suspect,
                    reason,
                })
                .await;
            }
        }
    }

    /// Up nodes the detector suspects, and up nodes never heard since this node became
    /// coordinator (a node that died before we ever heard it).
    fn suspects(&self, node: &Node, state: &ClusterState) -> Vec<NodeId> {
        let now = mono_ms();
        let membership = node.heartbeat.membership();
        let suspected: BTreeSet<NodeId> = membership.suspects(now).into_iter().collect();
        let detection = detection_ms_for(state);
        let leader_for = now.saturating_sub(self.leader_since_ms.unwrap_or(now));
        state
            .nodes
            .values()
            .filter(|n| n.state == NodeState::Up && n.id != node.id())
            .filter(|n| {
                suspected.contains(&n.id)
                    || (membership.silence_ms(n.id, now).is_none() && leader_for > 2 * detection)
            })
            .map(|n| n.id)
            .collect()
    }

    /// Down nodes that still own groups but were not fenced by this coordinator (it was
    /// elected after the node went down): condemn again to learn when their lease ended.
    async fn fence_down_nodes(&mut self, node: &Arc<Node>, state: &ClusterState) {
        let owners: BTreeSet<NodeId> = state
            .groups
            .values()
            .filter_map(|g| g.assignment.map(|a| a.node))
            .collect();
        for entry in state.nodes.values() {
            let unfenced = !self.fenced_after.contains_key(&entry.id);
            if entry.state == NodeState::Down && owners.contains(&entry.id) && unfenced {
                if let Some(fenced_after) = condemn(node, state, entry.id).await {
                    self.fenced_after.insert(entry.id, fenced_after);
                }
            }
        }
    }

    async fn execute_plan(&mut self, node: &Arc<Node>, state: &ClusterState) {
        let now = mono_ms();
        let unreachable: BTreeSet<NodeId> = node
            .heartbeat
            .membership()
            .suspects(now)
            .into_iter()
            .collect();
        let input = plan_input(state, &self.fenced_after, &unreachable, now, wall_ms());
        let plan = policy::plan(&input);
        let mut commands: Vec<Command> = plan
            .actions
            .into_iter()
            .filter_map(|action| command_for(state, action))
            .collect();
        commands.extend(crate::policy_input::explanations(state, &plan.explanations));
        propose_all(node, commands).await;
    }

    /// Keeps Raft voters and learners equal to the database's members, one change at a time.
    fn sync_raft_membership(&mut self, node: &Arc<Node>, state: &ClusterState) {
        if self
            .raft_change
            .as_ref()
            .is_some_and(|task| !task.is_finished())
        {
            return;
        }
        let Some(change) = next_raft_change(node, state) else {
            return;
        };
        let node = Arc::clone(node);
        self.raft_change = Some(tokio::spawn(async move {
            tracing::info!(?change, "changing the Raft configuration");
            let result = match change {
                RaftChange::AddLearner(id, addr) => node
                    .raft
                    .add_learner(id, BasicNode { addr }, false)
                    .await
                    .map(drop),
                RaftChange::Promote(id) => node
                    .raft
                    .change_membership(ChangeMembers::AddVoterIds([id].into()), false)
                    .await
                    .map(drop),
                RaftChange::Remove(id) => {
                    let removed = node
                        .raft
                        .change_membership(ChangeMembers::RemoveVoters([id].into()), false)
                        .await;
                    match removed {
                        Ok(_) => node
                            .raft
                            .change_membership(ChangeMembers::RemoveNodes([id].into()), false)
                            .await
                            .map(drop),
                        Err(error) => Err(error),
                    }
                }
            };
            if let Err(error) = result {
                tracing::warn!(%error, "Raft configuration change failed; will retry");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }
}

#[derive(Debug)]
enum RaftChange {
    AddLearner(NodeId, String),
    Promote(NodeId),
    Remove(NodeId),
}

fn voter_ids(node: &Node) -> BTreeSet<NodeId> {
    node.raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect()
}

/// The next step that brings Raft's configuration closer to the database's members.
fn next_raft_change(node: &Node, state: &ClusterState) -> Option<RaftChange> {
    let metrics = node.raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let known: BTreeSet<NodeId> = membership.nodes().map(|(id, _)| *id).collect();
    if let Some(entry) = state.nodes.values().find(|n| !known.contains(&n.id)) {
        return Some(RaftChange::AddLearner(entry.id, entry.addr.clone()));
    }
    let last_index = metrics.last_log_index.unwrap_or(0);
    let replication = metrics.replication.unwrap_or_default();
    let caught_up = |id: &NodeId| {
        replication
            .get(id)
            .and_then(|m| *m)
            .is_some_and(|log_id| log_id.index + 10 >= last_index)
    };
    if let Some(id) = known
        .iter()
        .find(|id| !voters.contains(id) && state.nodes.contains_key(id) && caught_up(id))
    {
        return Some(RaftChange::Promote(*id));
    }
    known
        .iter()
        .find(|id| !state.nodes.contains_key(id))
        .map(|id| RaftChange::Remove(*id))
}

/// Asks every other voting node how long it has not heard `suspect`. Returns the reason to
/// declare it down if a majority of votes (this node's included) agrees it is silent.
async fn confirm_silence(
    node: &Arc<Node>,
    state: &ClusterState,
    suspect: NodeId,
) -> Option<String> {
    let detection = detection_ms_for(state);
    let own_silence = node.heartbeat.membership().silence_ms(suspect, mono_ms());
    let mut tasks = JoinSet::new();
    for peer in state
        .nodes
        .values()
        .filter(|n| n.id != suspect && n.id != node.id() && n.state == NodeState::Up)
    {
        let (node, addr, id) = (Arc::clone(node), peer.addr.clone(), peer.id);
        tasks.spawn(async move {
            let url = format!("https://{addr}/rpc/silence/{suspect}");
            let answer = node
                .peer_client
                .get(url)
                .timeout(PROBE_TIMEOUT)
                .send()
                .await;
            let silence = match answer {
                Ok(response) => response.json::<Option<u64>>().await.ok(),
                Err(_) => None,
            };
            (id, silence)
        });
    }
    let mut silent = vec![(node.id(), own_silence)];
    let mut heard_by = Vec::new();
    while let Some(Ok((id, answer))) = tasks.join_next().await {
        match answer {
            Some(silence) if silence.is_some_and(|s| s < detection / 2) => heard_by.push(id),
            Some(silence) => silent.push((id, silence)),
            None => {}
        }
    }
    let votes = |ids: &mut dyn Iterator<Item = NodeId>| {
        ids.filter_map(|id| state.nodes.get(&id))
            .map(|n| n.votes)
            .sum::<u32>()
    };
    let silent_votes = votes(&mut silent.iter().map(|(id, _)| *id));
    if silent_votes * 2 <= state.votes_total()
        || !heard_by.is_empty() && silent_votes * 2 <= state.votes_total()
    {
        tracing::info!(suspect = %state.node_name(suspect), ?heard_by, "suspicion not confirmed by a majority");
        return None;
    }
    let names: Vec<String> = silent.iter().map(|(id, _)| state.node_name(*id)).collect();
    let own = own_silence.map_or_else(
        || "never heard".to_string(),
        |s| format!("silent for {s} ms"),
    );
    Some(format!("{own}, confirmed silent by {}", names.join(", ")))
}

/// Tells every node but `target` to stop acking it and collects when each last did. Returns
/// when `target`'s lease has certainly expired, if a majority of votes answered.
async fn condemn(node: &Arc<Node>, state: &ClusterState, target: NodeId) -> Option<u64> {
    let entry = state.nodes.get(&target)?;
    // Until the database shows `target` up after a down it is not yet back from: for an up
    // node the NodeDown still to come, for a down one the NodeDown it is in (its NodeUp keeps
    // that epoch). Asking a down node for its own epoch would outlast its NodeUp, leaving it
    // up without acks, so without a lease, until it went down once more.
    let epoch = match entry.state {
        NodeState::Down => entry.down_epoch.saturating_sub(1),
        _ => entry.down_epoch,
    };
    let lease_ms = node.heartbeat.membership().lease_ms();
    let mut tasks = JoinSet::new();
    for peer in state
        .nodes
        .values()
        .filter(|n| n.id != target && n.id != node.id())
    {
        let (node, addr, id) = (Arc::clone(node), peer.addr.clone(), peer.id);
        tasks.spawn(async move {
            let request = Condemn {
                node: target,
                epoch,
            };
            let answer: Result<Option<u64>, String> = node
                .call_peer(&addr, "/rpc/condemn", &request, PROBE_TIMEOUT)
                .await;
            (id, mono_ms(), answer)
        });
    }
    let own_age = node
        .heartbeat
        .membership()
        .condemn(target, epoch, mono_ms());
    let mut acks = vec![(mono_ms(), own_age)];
    let mut votes = state.nodes.get(&node.id()).map_or(0, |n| n.votes);
    while let Some(Ok((id, received, answer))) = tasks.join_next().await {
        if let Ok(age) = answer {
            acks.push((received, age));
            votes += state.nodes.get(&id).map_or(0, |n| n.votes);
        }
    }
    if votes * 2 <= state.votes_total() {
        tracing::warn!(target_node = %state.node_name(target), votes, "condemnation reached no majority; not fenced");
        return None;
    }
    Some(safe_after_ms(&acks, lease_ms, mono_ms()))
}

/// The same-subnet heartbeat delay: the unit for "heard recently".
fn delay_ms_for(state: &ClusterState) -> u64 {
    state.properties.same_subnet.delay_ms
}

fn detection_ms_for(state: &ClusterState) -> u64 {
    state.properties.same_subnet.detection_ms()
}

/// Proposes independent updates concurrently: openraft batches them into few log appends, so
/// a node owning many groups fails over in about one commit, not one commit per group. Each
/// update is still validated on its own when applied.
async fn propose_all(node: &Arc<Node>, commands: Vec<Command>) {
    let mut tasks = JoinSet::new();
    for command in commands {
        let node = Arc::clone(node);
        tasks.spawn(async move { node.propose_logged(command).await });
    }
    while tasks.join_next().await.is_some() {}
}

/// Translates one policy action into the global update that carries it out (the executor
/// contract of `policy::Action`). Actions already carried out return `None`, so a plan
/// repeated before the database changes proposes nothing twice.
fn command_for(state: &ClusterState, action: policy::Action) -> Option<Command> {
    match action {
        policy::Action::Place {
            group,
            node,
            generation,
            reason,
            ..
        } => {
            let failover = reason.is_failover();
            Some(Command::PlaceGroup {
                group,
                node,
                generation,
                reason: reason.to_string(),
                failover,
            })
        }
        policy::Action::Release {
            group,
            target,
            reason,
            ..
        } => {
            let assignment = state.groups.get(&group)?.assignment?;
            // Already asked: the owner is stopping it; do not repeat the update every step.
            (!assignment.releasing).then(|| Command::ReleaseGroup {
                group,
                generation: assignment.generation,
                target,
                reason: reason.to_string(),
                pending_reason: target.map(|_| reason),
            })
        }
        policy::Action::ClearAssignment {
            group,
            node,
            reason,
        } => {
            let assignment = state.groups.get(&group)?.assignment?;
            (assignment.node == node).then(|| Command::ClearAssignment {
                group,
                node,
                generation: assignment.generation,
                reason: reason.to_string(),
            })
        }
        policy::Action::RestartResource {
            group,
            resource,
            node,
            reason,
        } => {
            let assignment = state.groups.get(&group)?.assignment?;
            let failed =
                state.resources.get(&resource)?.status.state == baton_model::ResourceState::Failed;
            failed.then(|| Command::RestartResource {
                resource,
                node,
                generation: assignment.generation,
                reason: reason.to_string(),
            })
        }
        policy::Action::FailGroup { group, reason } => {
            let entry = state.groups.get(&group)?;
            (entry.status != baton_model::GroupStatus::Failed).then(|| Command::FailGroup {
                group,
                reason: reason.to_string(),
            })
        }
        policy::Action::RejectMove { group, reason } => Some(Command::RejectMove {
            group,
            reason: reason.to_string(),
        }),
    }
}

/// The policy's input: the database plus which down nodes are proven fenced. Up nodes this
/// coordinator currently suspects (silent, not yet confirmed down) take no new groups: a
/// placement or planned move there would wait for the node to answer again.
fn plan_input(
    state: &ClusterState,
    fenced_after: &BTreeMap<NodeId, u64>,
    unreachable: &BTreeSet<NodeId>,
    now_mono: u64,
    now_wall: u64,
) -> policy::PlanInput {
    let nodes = state
        .nodes
        .values()
        .map(|n| node_view(n, fenced_after, unreachable.contains(&n.id), now_mono))
        .collect();
    let groups = state
        .groups
        .values()
        .map(|g| group_view(state, g))
        .collect();
    policy::PlanInput {
        now_ms: now_wall,
        nodes,
        groups,
        options: Default::default(),
    }
}

fn node_view(
    entry: &baton_model::Node,
    fenced_after: &BTreeMap<NodeId, u64>,
    unreachable: bool,
    now_mono: u64,
) -> policy::NodeView {
    let state = match (entry.state, entry.paused || unreachable) {
        (NodeState::Up, true) => policy::NodeState::Paused,
        (NodeState::Up, false) => policy::NodeState::Up,
        (NodeState::Down, _) => policy::NodeState::Down,
        (NodeState::Joining, _) => policy::NodeState::Joining,
    };
    let lease_expired = entry.state == NodeState::Down
        && fenced_after.get(&entry.id).is_some_and(|t| now_mono >= *t);
    policy::NodeView {
        id: entry.id,
        name: entry.name.clone(),
        state,
        lease_expired,
    }
}

fn group_view(state: &ClusterState, group: &baton_model::Group) -> policy::GroupView {
    use crate::policy_input as convert;
    let mut view = policy::GroupView::new(group.name.clone());
    view.preferred_owners = group.preferred_owners.clone();
    view.desired = match group.desired {
        baton_model::Desired::Online => policy::Desired::Online,
        baton_model::Desired::Offline => policy::Desired::Offline,
    };
    view.assignment = group.assignment.map(|a| policy::Assignment {
        node: a.node,
        generation: a.generation,
    });
    view.generation = group.generation;
    view.status = convert::group_status(group.status);
    view.move_request = group
        .move_request
        .map(|m| policy::MoveRequest { target: m.target });
    view.pending_move = group
        .pending_target
        .filter(|_| group.assignment.is_none())
        .map(|target| policy::PendingMove {
            target,
            // A release stored its reason (a failover stays a failover); older ones did not.
            reason: group
                .pending_reason
                .clone()
                .unwrap_or(policy::Reason::MoveRequested {
                    target: Some(state.node_name(target)),
                }),
        });
    view.failover_history_ms = group.failover_history_ms.clone();
    view.failed_reason =
        (group.status == baton_model::GroupStatus::Failed).then(|| group.status_message.clone());
    convert::apply_group_policy(&mut view, &group.policy);
    view.resources = state
        .group_resources(&group.name)
        .map(convert::resource_view)
        .collect();
    view
}
