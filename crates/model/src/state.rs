//! The replicated cluster state and its deterministic `apply`.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandResult, Update};
use crate::error::ModelError;
use crate::resource::*;
use crate::types::*;

/// How many events the database keeps; older ones are dropped first.
pub const EVENTS_MAX: usize = 500;
/// How many past failovers a group remembers.
pub const FAILOVER_HISTORY_MAX: usize = 64;

/// Everything the cluster database holds. Ground state: everything else is derived from it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    pub cluster_name: String,
    pub admin_token_hash: String,
    pub nodes: BTreeMap<NodeId, Node>,
    pub next_node_id: NodeId,
    pub groups: BTreeMap<String, Group>,
    pub resources: BTreeMap<String, Resource>,
    pub properties: ClusterProperties,
    pub join_tokens: BTreeMap<String, JoinToken>,
    pub events: VecDeque<Event>,
}

impl ClusterState {
    pub fn is_initialized(&self) -> bool {
        !self.cluster_name.is_empty()
    }

    pub fn node_by_name(&self, name: &str) -> Option<&Node> {
        self.nodes.values().find(|node| node.name == name)
    }

    pub fn node_name(&self, id: NodeId) -> String {
        self.nodes
            .get(&id)
            .map_or_else(|| format!("node#{id}"), |node| node.name.clone())
    }

    /// Sum of the votes of all member nodes (up or not): the quorum denominator.
    pub fn votes_total(&self) -> u32 {
        self.nodes.values().map(|node| node.votes).sum()
    }

    /// Resources of a group, in name order.
    pub fn group_resources<'a>(&'a self, group: &'a str) -> impl Iterator<Item = &'a Resource> {
        self.resources
            .values()
            .filter(move |resource| resource.group == group)
    }

    /// Groups assigned to a node.
    pub fn groups_on(&self, node: NodeId) -> impl Iterator<Item = &Group> {
        self.groups
            .values()
            .filter(move |g| g.assignment.is_some_and(|a| a.node == node))
    }

    /// Applies one committed update. Never fails: a command that is no longer valid is
    /// rejected without changing anything (its validity was checked when it was proposed).
    pub fn apply(&mut self, update: &Update) -> CommandResult {
        if let Err(error) = self.validate(&update.command, update.now_ms) {
            return CommandResult::Rejected {
                reason: error.to_string(),
            };
        }
        self.mutate(&update.command, update.now_ms)
    }

    fn record(&mut self, now_ms: u64, text: String) {
        if self.events.len() == EVENTS_MAX {
            self.events.pop_front();
        }
        self.events.push_back(Event {
            time_ms: now_ms,
            text,
        });
    }

    fn mutate(&mut self, command: &Command, now_ms: u64) -> CommandResult {
        match command {
            Command::Initialize {
                cluster_name,
                admin_token_hash,
                node_name,
                addr,
            } => {
                self.cluster_name = cluster_name.clone();
                self.admin_token_hash = admin_token_hash.clone();
                self.next_node_id = 2;
                self.nodes
                    .insert(1, new_node(1, node_name, addr, NodeState::Up));
                self.record(
                    now_ms,
                    format!("cluster {cluster_name} created on {node_name}"),
                );
            }
            Command::CreateJoinToken {
                token_id,
                secret_hash,
                expires_ms,
            } => {
                let token = JoinToken {
                    secret_hash: secret_hash.clone(),
                    expires_ms: *expires_ms,
                    used: false,
                };
                self.join_tokens.insert(token_id.clone(), token);
                self.join_tokens
                    .retain(|_, token| !token.used && token.expires_ms > now_ms);
            }
            Command::JoinNode {
                token_id,
                name,
                addr,
                ..
            } => return self.join(token_id, name, addr, now_ms),
            Command::NodeUp { node } => self.set_node_state(*node, NodeState::Up, "is up", now_ms),
            Command::NodeDown { node, reason } => {
                let text = format!("is down: {reason}");
                self.set_node_state(*node, NodeState::Down, &text, now_ms);
                if let Some(entry) = self.nodes.get_mut(node) {
                    entry.down_epoch += 1;
                }
            }
            Command::PauseNode { node, drain } => self.pause(*node, *drain, now_ms),
            Command::ResumeNode { node } => {
                self.nodes
                    .entry(*node)
                    .and_modify(|entry| entry.paused = false);
                let name = self.node_name(*node);
                self.record(now_ms, format!("node {name} resumed"));
            }
            Command::EvictNode { node } => self.evict(*node, now_ms),
            Command::SetProperties { properties } => {
                self.properties = *properties;
                self.record(
                    now_ms,
                    format!(
                        "heartbeats set: same subnet {} ms x {}, cross subnet {} ms x {}",
                        properties.same_subnet.delay_ms,
                        properties.same_subnet.threshold,
                        properties.cross_subnet.delay_ms,
                        properties.cross_subnet.threshold
                    ),
                );
            }
            Command::CreateGroup {
                name,
                preferred_owners,
            } => {
                self.groups
                    .insert(name.clone(), new_group(name, preferred_owners));
                self.record(now_ms, format!("group {name} created"));
            }
            Command::DeleteGroup { name } => {
                self.groups.remove(name);
                self.resources.retain(|_, resource| &resource.group != name);
                self.record(now_ms, format!("group {name} deleted"));
            }
            Command::SetGroupDesired { group, desired } => {
                self.set_desired(group, *desired, now_ms)
            }
            Command::RequestMove { group, target } => {
                if let Some(entry) = self.groups.get_mut(group) {
                    entry.move_request = Some(MoveRequest { target: *target });
                }
                let to =
                    target.map_or_else(|| "the best other node".to_string(), |n| self.node_name(n));
                self.record(now_ms, format!("move of group {group} to {to} requested"));
            }
            Command::PlaceGroup {
                group,
                node,
                generation,
                reason,
                failover,
            } => self.place(group, *node, *generation, reason, *failover, now_ms),
            Command::ReleaseGroup {
                group,
                target,
                reason,
                pending_reason,
                ..
            } => {
                self.release(group, *target, reason, now_ms);
                if let Some(entry) = self.groups.get_mut(group) {
                    entry.pending_reason = pending_reason.clone().filter(|_| target.is_some());
                }
            }
            Command::GroupStopped {
                group,
                node,
                generation,
            } => self.stopped(group, *node, *generation, now_ms),
            Command::ReportGroupStatus {
                group,
                status,
                message,
                ..
            } => self.report_status(group, *status, message, now_ms),
            Command::CreateResource {
                name,
                group,
                resource_type,
                params,
            } => {
                let resource = Resource {
                    name: name.clone(),
                    group: group.clone(),
                    resource_type: resource_type.clone(),
                    params: params.clone(),
                    policy: ResourcePolicy::default(),
                    status: ResourceStatus::default(),
                };
                self.resources.insert(name.clone(), resource);
                self.record(now_ms, format!("resource {name} created in group {group}"));
            }
            Command::DeleteResource { name } => {
                self.resources.remove(name);
                self.record(now_ms, format!("resource {name} deleted"));
            }
            Command::FailGroup { group, reason } => {
                if let Some(entry) = self.groups.get_mut(group) {
                    entry.status = GroupStatus::Failed;
                    entry.status_message = reason.clone();
                    entry.last_reason = reason.clone();
                }
                self.record(now_ms, format!("group {group} failed: {reason}"));
            }
            Command::RejectMove { group, reason } => {
                if let Some(entry) = self.groups.get_mut(group) {
                    entry.move_request = None;
                }
                self.record(now_ms, format!("move of group {group} refused: {reason}"));
            }
            _ => self.mutate_resources(command, now_ms),
        }
        CommandResult::Ok
    }

    /// The commands of resource and group policies, resource states and the executor's
    /// bookkeeping (commands 22 and later).
    fn mutate_resources(&mut self, command: &Command, now_ms: u64) {
        match command {
            Command::SetResource { name, settings } => {
                if let Some(entry) = self.resources.get_mut(name) {
                    *entry = entry.with_settings(settings);
                }
                self.record(now_ms, format!("resource {name} settings changed"));
            }
            Command::SetDependencies {
                resource,
                expression,
            } => {
                let normalized =
                    crate::validate::check_dependencies(self, resource, expression.as_deref());
                let normalized = normalized.ok().flatten();
                let text = normalized.clone().unwrap_or_else(|| "nothing".to_string());
                if let Some(entry) = self.resources.get_mut(resource) {
                    entry.policy.depends_on = normalized;
                }
                self.record(now_ms, format!("resource {resource} depends on {text}"));
            }
            Command::SetGroup { name, settings } => {
                if let Some(entry) = self.groups.get_mut(name) {
                    settings.iter().for_each(|s| apply_group_setting(entry, s));
                }
                self.record(now_ms, format!("group {name} settings changed"));
            }
            Command::ReportResourceState {
                resource,
                node,
                state,
                message,
                misconfigured,
                ..
            } => self.report_resource(resource, *node, *state, message, *misconfigured, now_ms),
            Command::RestartResource {
                resource, reason, ..
            } => self.restart_resource(resource, reason, now_ms),
            Command::ClearAssignment { group, reason, .. } => {
                self.clear_assignment(group, reason, now_ms)
            }
            Command::ExplainGroup { group, text } => {
                if let Some(entry) = self.groups.get_mut(group) {
                    entry.explanation = text.clone();
                }
            }
            _ => {}
        }
    }

    fn report_resource(
        &mut self,
        resource: &str,
        node: NodeId,
        state: ResourceState,
        message: &str,
        misconfigured: bool,
        now_ms: u64,
    ) {
        let node_name = self.node_name(node);
        let Some(entry) = self.resources.get_mut(resource) else {
            return;
        };
        let status = &mut entry.status;
        let changed = status.state != state;
        if changed && state == ResourceState::Failed {
            status.failed_at_ms = Some(now_ms);
        }
        status.state = state;
        status.message = message.to_string();
        status.misconfigured = misconfigured;
        // Pending states are transient: stored for `resource show`, not worth an event.
        let pending = matches!(
            state,
            ResourceState::OnlinePending | ResourceState::OfflinePending
        );
        if changed && !pending {
            let text = format!(
                "resource {resource} is {state:?} on {node_name}{}",
                suffix(message)
            );
            self.record(now_ms, text);
        }
    }

    fn restart_resource(&mut self, resource: &str, reason: &str, now_ms: u64) {
        let Some(entry) = self.resources.get_mut(resource) else {
            return;
        };
        let status = &mut entry.status;
        status.restart_history_ms.push(now_ms);
        let excess = status
            .restart_history_ms
            .len()
            .saturating_sub(RESTART_HISTORY_MAX);
        status.restart_history_ms.drain(..excess);
        status.restart_requests += 1;
        status.state = ResourceState::OnlinePending;
        status.message = format!("restarting: {reason}");
        self.record(now_ms, format!("resource {resource} restarting: {reason}"));
    }

    fn clear_assignment(&mut self, group: &str, reason: &str, now_ms: u64) {
        let Some(entry) = self.groups.get_mut(group) else {
            return;
        };
        entry.assignment = None;
        if entry.status != GroupStatus::Failed {
            entry.status = GroupStatus::Offline;
        }
        entry.last_reason = reason.to_string();
        self.offline_resources(group);
        self.record(now_ms, format!("group {group} unassigned: {reason}"));
    }

    /// The group runs nowhere any more: its resources are offline, but a failure stays
    /// recorded (its retry period and message still matter).
    fn offline_resources(&mut self, group: &str) {
        for resource in self.resources.values_mut().filter(|r| r.group == group) {
            if resource.status.state != ResourceState::Failed {
                resource.status.state = ResourceState::Offline;
                resource.status.message.clear();
            }
        }
    }

    fn join(
        &mut self,
        token_id: &str,
        name: &Option<String>,
        addr: &str,
        now_ms: u64,
    ) -> CommandResult {
        if let Some(token) = self.join_tokens.get_mut(token_id) {
            token.used = true;
        }
        let id = self.next_node_id.max(1);
        self.next_node_id = id + 1;
        let name = name.clone().unwrap_or_else(|| format!("n{id}"));
        self.nodes
            .insert(id, new_node(id, &name, addr, NodeState::Joining));
        self.record(now_ms, format!("node {name} joined at {addr}"));
        CommandResult::Joined { node: id, name }
    }

    fn set_node_state(&mut self, node: NodeId, state: NodeState, text: &str, now_ms: u64) {
        if let Some(entry) = self.nodes.get_mut(&node) {
            entry.state = state;
        }
        let name = self.node_name(node);
        self.record(now_ms, format!("node {name} {text}"));
    }

    fn pause(&mut self, node: NodeId, drain: bool, now_ms: u64) {
        self.nodes
            .entry(node)
            .and_modify(|entry| entry.paused = true);
        let name = self.node_name(node);
        if drain {
            for group in self.groups.values_mut() {
                if group.assignment.is_some_and(|a| a.node == node) {
                    group.move_request = Some(MoveRequest { target: None });
                }
            }
        }
        let how = if drain { " and drained" } else { "" };
        self.record(now_ms, format!("node {name} paused{how}"));
    }

    fn evict(&mut self, node: NodeId, now_ms: u64) {
        let name = self.node_name(node);
        self.nodes.remove(&node);
        for group in self.groups.values_mut() {
            group.preferred_owners.retain(|owner| *owner != node);
        }
        for resource in self.resources.values_mut() {
            if let Some(owners) = resource.policy.possible_owners.as_mut() {
                owners.retain(|owner| *owner != node);
            }
        }
        self.record(now_ms, format!("node {name} evicted"));
    }

    fn set_desired(&mut self, group: &str, desired: Desired, now_ms: u64) {
        if let Some(entry) = self.groups.get_mut(group) {
            entry.desired = desired;
            if entry.status == GroupStatus::Failed && desired == Desired::Online {
                // An explicit online clears a failure: the operator asks for a new attempt.
                entry.status = GroupStatus::Offline;
                entry.failover_history_ms.clear();
                for resource in self.resources.values_mut().filter(|r| r.group == group) {
                    resource.status.misconfigured = false;
                    resource.status.restart_history_ms.clear();
                }
            }
        }
        self.record(now_ms, format!("group {group} set {desired:?}"));
    }

    fn place(
        &mut self,
        group: &str,
        node: NodeId,
        generation: u64,
        reason: &str,
        failover: bool,
        now_ms: u64,
    ) {
        let node_name = self.node_name(node);
        let Some(entry) = self.groups.get_mut(group) else {
            return;
        };
        entry.pending_target = None;
        entry.assignment = Some(Assignment {
            node,
            generation,
            releasing: false,
        });
        entry.generation = generation;
        entry.status = GroupStatus::Pending;
        entry.status_message.clear();
        entry.last_reason = reason.to_string();
        entry.move_request = None;
        entry.pending_reason = None;
        for resource in self.resources.values_mut().filter(|r| r.group == group) {
            // A new placement starts afresh: restart budgets are per placement, as in WSFC.
            resource.status = ResourceStatus {
                restart_requests: resource.status.restart_requests,
                ..ResourceStatus::default()
            };
        }
        let Some(entry) = self.groups.get_mut(group) else {
            return;
        };
        if failover {
            entry.failover_history_ms.push(now_ms);
            let excess = entry
                .failover_history_ms
                .len()
                .saturating_sub(FAILOVER_HISTORY_MAX);
            entry.failover_history_ms.drain(..excess);
        }
        self.record(
            now_ms,
            format!("group {group} placed on {node_name} (generation {generation}): {reason}"),
        );
    }

    fn release(&mut self, group: &str, target: Option<NodeId>, reason: &str, now_ms: u64) {
        let Some(entry) = self.groups.get_mut(group) else {
            return;
        };
        entry.pending_target = target;
        entry.move_request = None;
        if let Some(assignment) = entry.assignment.as_mut() {
            assignment.releasing = true;
        }
        entry.status = GroupStatus::Stopping;
        entry.last_reason = reason.to_string();
        self.record(now_ms, format!("group {group} released: {reason}"));
    }

    fn stopped(&mut self, group: &str, node: NodeId, generation: u64, now_ms: u64) {
        let node_name = self.node_name(node);
        let Some(entry) = self.groups.get_mut(group) else {
            return;
        };
        entry.assignment = None;
        if entry.status != GroupStatus::Failed {
            entry.status = GroupStatus::Offline;
        }
        self.offline_resources(group);
        self.record(
            now_ms,
            format!("group {group} offline on {node_name} (generation {generation})"),
        );
    }

    fn report_status(&mut self, group: &str, status: GroupStatus, message: &str, now_ms: u64) {
        let Some(entry) = self.groups.get_mut(group) else {
            return;
        };
        let changed = entry.status != status;
        entry.status = status;
        entry.status_message = message.to_string();
        if changed {
            let text = format!("group {group} is {status:?}{}", suffix(message));
            self.record(now_ms, text);
        }
    }

    /// Checks a command against the current state. Used before proposing (the API answers
    /// with the error) and again in `apply` (a stale command is rejected, not half-applied).
    pub fn validate(&self, command: &Command, now_ms: u64) -> Result<(), ModelError> {
        crate::validate::validate(self, command, now_ms)
    }
}

fn suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

fn new_node(id: NodeId, name: &str, addr: &str, state: NodeState) -> Node {
    Node {
        id,
        name: name.to_string(),
        addr: addr.to_string(),
        state,
        paused: false,
        votes: 1,
        down_epoch: 0,
    }
}

fn new_group(name: &str, preferred_owners: &[NodeId]) -> Group {
    Group {
        name: name.to_string(),
        preferred_owners: preferred_owners.to_vec(),
        desired: Desired::Offline,
        assignment: None,
        generation: 0,
        status: GroupStatus::Offline,
        status_message: String::new(),
        move_request: None,
        pending_target: None,
        last_reason: "created".to_string(),
        failover_history_ms: Vec::new(),
        policy: GroupPolicy::default(),
        pending_reason: None,
        explanation: String::new(),
    }
}

fn apply_group_setting(group: &mut Group, setting: &GroupSetting) {
    let policy = &mut group.policy;
    match setting {
        GroupSetting::FailoverThreshold(threshold) => policy.failover_threshold = *threshold,
        GroupSetting::FailoverPeriodMs(ms) => policy.failover_period_ms = *ms,
        GroupSetting::Failback(failback) => policy.failback = *failback,
        GroupSetting::Priority(priority) => policy.priority = *priority,
        GroupSetting::AntiAffinity(classes) => policy.anti_affinity = classes.clone(),
        GroupSetting::PreferredOwners(owners) => group.preferred_owners = owners.clone(),
    }
}
