//! The local resource manager: makes what runs on this node match the database's assignments
//! for this node, through the resource host, and reports each group's status.
//!
//! Rules: a group runs here only if it is assigned here, not being released, this node is up
//! in its own view of the database, and this node holds a lease (the host refuses otherwise).
//! Everything else that runs here is stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use baton_host::{HostEvent, StartRequest};
use baton_model::{ClusterState, Command, GroupStatus, NodeState, Resource};
use tokio::sync::mpsc;

use crate::node::Node;

const STEP_INTERVAL: Duration = Duration::from_millis(50);
const STOP_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// A resource started by this node.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Running {
    group: String,
    generation: u64,
    pid: u32,
}

#[derive(Default)]
struct Local {
    running: BTreeMap<String, Running>,
    /// Group → (generation, status) last committed by this node.
    reported: BTreeMap<String, (u64, GroupStatus)>,
    /// Group → (generation, why) for groups that failed here.
    failed: BTreeMap<String, (u64, String)>,
}

pub async fn run(node: Arc<Node>, mut events: mpsc::Receiver<HostEvent>) {
    let mut local = Local::default();
    let mut changes = node.view.clone();
    let mut interval = tokio::time::interval(STEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = changes.changed() => {}
            event = events.recv() => match event {
                Some(HostEvent::HostExited) | None => return host_lost(&local),
                Some(event) => local.on_event(event),
            },
        }
        local.step(&node).await;
    }
}

/// The resource host died: its resources may be orphaned and nothing enforces the lease any
/// more. Kill what we started and stop the daemon, so a supervisor starts it afresh.
fn host_lost(local: &Local) {
    tracing::error!("the resource host exited; killing its resources and stopping the daemon");
    for running in local.running.values() {
        // SAFETY: kill(2) on a process group we created (the host setsid'ed each resource).
        unsafe { libc::kill(-(running.pid as i32), libc::SIGKILL) };
    }
    std::process::exit(70);
}

impl Local {
    fn on_event(&mut self, event: HostEvent) {
        match event {
            HostEvent::Exited {
                resource,
                code,
                signal,
                ..
            } => {
                if let Some(running) = self.running.remove(&resource) {
                    let how = code.map_or_else(
                        || format!("signal {}", signal.unwrap_or(0)),
                        |c| format!("code {c}"),
                    );
                    let why = format!("resource {resource} exited with {how}");
                    tracing::warn!(group = %running.group, %why, "resource failed");
                    self.failed.insert(running.group, (running.generation, why));
                }
            }
            HostEvent::LeaseExpired { killed } => {
                tracing::warn!(
                    ?killed,
                    "lease expired: the resource host stopped every resource"
                );
                self.running.clear();
            }
            HostEvent::HostExited => {}
        }
    }

    async fn step(&mut self, node: &Node) {
        let view = node.view();
        let state = &view.state;
        let desired = self.desired(node, state);
        self.stop_undesired(node, state, &desired).await;
        self.finish_releases(node, state).await;
        if node.holds_lease() {
            self.start_desired(node, state, &desired).await;
        }
        self.report(node, state).await;
    }

    /// Resources that should run here: name → (resource, generation).
    fn desired<'a>(
        &self,
        node: &Node,
        state: &'a ClusterState,
    ) -> BTreeMap<String, (&'a Resource, u64)> {
        let up = state
            .nodes
            .get(&node.id())
            .is_some_and(|n| n.state == NodeState::Up);
        let mut desired = BTreeMap::new();
        if !up {
            return desired;
        }
        for group in state.groups_on(node.id()) {
            let Some(assignment) = group.assignment.filter(|a| !a.releasing) else {
                continue;
            };
            if self
                .failed
                .get(&group.name)
                .is_some_and(|(generation, _)| *generation == assignment.generation)
            {
                continue;
            }
            for resource in state.group_resources(&group.name) {
                desired.insert(resource.name.clone(), (resource, assignment.generation));
            }
        }
        desired
    }

    async fn stop_undesired(
        &mut self,
        node: &Node,
        state: &ClusterState,
        desired: &BTreeMap<String, (&Resource, u64)>,
    ) {
        let unwanted: Vec<String> = self
            .running
            .iter()
            .filter(|(name, running)| {
                desired
                    .get(*name)
                    .is_none_or(|(_, generation)| *generation != running.generation)
            })
            .map(|(name, _)| name.clone())
            .collect();
        // Dependents first: resources stop in reverse name order within the node.
        for name in unwanted.iter().rev() {
            let timeout = state
                .resources
                .get(name)
                .map_or(STOP_TIMEOUT_DEFAULT, stop_timeout);
            match node.host.stop(name, timeout).await {
                Ok(()) => {
                    tracing::info!(resource = %name, "resource stopped");
                    self.running.remove(name);
                }
                Err(error) => {
                    tracing::warn!(resource = %name, %error, "stopping failed; will retry")
                }
            }
        }
    }

    /// Groups being released from this node: once none of their resources runs, say so.
    async fn finish_releases(&mut self, node: &Node, state: &ClusterState) {
        for group in state.groups_on(node.id()) {
            let Some(assignment) = group.assignment.filter(|a| a.releasing) else {
                continue;
            };
            if self.running.values().any(|r| r.group == group.name) {
                continue;
            }
            let command = Command::GroupStopped {
                group: group.name.clone(),
                node: node.id(),
                generation: assignment.generation,
            };
            if node.propose(command).await.is_ok() {
                self.reported.remove(&group.name);
            }
        }
    }

    async fn start_desired(
        &mut self,
        node: &Node,
        state: &ClusterState,
        desired: &BTreeMap<String, (&Resource, u64)>,
    ) {
        for (name, (resource, generation)) in desired {
            if self.running.contains_key(name) {
                continue;
            }
            let request = start_request(node, resource, *generation);
            match node.host.start(request).await {
                Ok(pid) => {
                    tracing::info!(resource = %name, pid, generation, "resource started");
                    let running = Running {
                        group: resource.group.clone(),
                        generation: *generation,
                        pid,
                    };
                    self.running.insert(name.clone(), running);
                }
                Err(error) => {
                    let why = format!("resource {name} did not start: {error}");
                    tracing::warn!(%why);
                    if !error.to_string().contains("no lease") {
                        self.failed
                            .insert(resource.group.clone(), (*generation, why));
                    }
                }
            }
        }
        let _ = state;
    }

    /// Commits each owned group's status when it changes (once per generation and status).
    async fn report(&mut self, node: &Node, state: &ClusterState) {
        for group in state.groups_on(node.id()) {
            let Some(assignment) = group.assignment.filter(|a| !a.releasing) else {
                continue;
            };
            let (status, message) = self.group_status(state, &group.name, assignment.generation);
            let current = (assignment.generation, status);
            if self.reported.get(&group.name) == Some(&current)
                || group.status == status && status != GroupStatus::Failed
            {
                self.reported.insert(group.name.clone(), current);
                continue;
            }
            let command = Command::ReportGroupStatus {
                group: group.name.clone(),
                node: node.id(),
                generation: assignment.generation,
                status,
                message,
            };
            if node.propose(command).await.is_ok() {
                self.reported.insert(group.name.clone(), current);
            }
        }
    }

    fn group_status(
        &self,
        state: &ClusterState,
        group: &str,
        generation: u64,
    ) -> (GroupStatus, String) {
        if let Some((failed_generation, why)) = self.failed.get(group) {
            if *failed_generation == generation {
                return (GroupStatus::Failed, why.clone());
            }
        }
        let wanted: BTreeSet<&str> = state
            .group_resources(group)
            .map(|r| r.name.as_str())
            .collect();
        let all_running = wanted.iter().all(|name| {
            self.running
                .get(*name)
                .is_some_and(|r| r.generation == generation)
        });
        if all_running {
            (GroupStatus::Online, String::new())
        } else {
            (GroupStatus::Pending, "starting resources".to_string())
        }
    }
}

fn stop_timeout(resource: &Resource) -> Duration {
    let parsed = resource
        .params
        .get("stop_timeout")
        .and_then(|text| humantime::parse_duration(text).ok());
    parsed.unwrap_or(STOP_TIMEOUT_DEFAULT)
}

/// The resource's command with its parameters and fencing token in the environment.
fn start_request(node: &Node, resource: &Resource, generation: u64) -> StartRequest {
    let mut env: BTreeMap<String, String> = resource
        .params
        .iter()
        .filter_map(|(key, value)| {
            key.strip_prefix("env.")
                .map(|name| (name.to_string(), value.clone()))
        })
        .collect();
    env.insert("BATON_GROUP".into(), resource.group.clone());
    env.insert("BATON_RESOURCE".into(), resource.name.clone());
    env.insert("BATON_GENERATION".into(), generation.to_string());
    env.insert("BATON_NODE".into(), node.identity.node_name.clone());
    let log_dir = node.data_dir.join("resources");
    let _ = std::fs::create_dir_all(&log_dir);
    StartRequest {
        resource: resource.name.clone(),
        command: resource.params.get("command").cloned().unwrap_or_default(),
        env,
        cwd: resource.params.get("cwd").map(PathBuf::from),
        log: Some(log_dir.join(format!("{}.log", resource.name))),
    }
}
