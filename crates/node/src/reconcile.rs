//! The local resource manager: makes what runs on this node match the database's assignments
//! for this node, through agents running in the resource host, checks the health of what
//! runs (LooksAlive, IsAlive), and reports each resource's state and each group's status.
//!
//! Rules: a resource runs here only if its group is assigned here, not being released, this
//! node is up in its own view of the database, and this node holds a lease (the host refuses
//! otherwise). A resource starts once its dependencies are online here and stops once its
//! dependents are offline; everything else that runs here is stopped. Restarts in place are
//! decided by the coordinator (`RestartResource`); this loop only reports failures.
//!
//! If the resource host dies, a new one is started at once. Processes keep running (they are
//! in sessions of their own) and are adopted by the new host; every other resource is probed
//! (a monitor): still running means still online, otherwise failed, and the policy restarts
//! it. A host that cannot be restarted for `HOST_DOWN_MAX` leaves the lease unenforced, so
//! the daemon then kills the processes it knows and exits.

mod ops;
mod tracked;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use baton_agents::agent_for;
use baton_host::HostEvent;
use baton_model::{ClusterState, Command, GroupStatus, NodeId, NodeState, Resource, ResourceState};
use baton_policy as policy;
use tokio::sync::mpsc;

use crate::clock::mono_ms;
use crate::node::Node;
use ops::OpDone;
use tracked::{Next, OpKind, Situation, Tracked};

const STEP_INTERVAL: Duration = Duration::from_millis(50);
/// Agent calls finished and not yet folded in; beyond this, callers wait.
const DONE_CAPACITY: usize = 1024;
/// How long the daemon keeps trying to restart a dead resource host before giving up.
const HOST_DOWN_MAX_MS: u64 = 10_000;
const RESPAWN_BACKOFF_MS: u64 = 500;
/// The status message of a group whose resources are coming online.
const STARTING: &str = "starting resources";
/// Longest status message reported to the database.
const MESSAGE_LEN_MAX: usize = 500;

pub async fn run(node: Arc<Node>, mut events: mpsc::Receiver<HostEvent>) {
    let (done_tx, mut done_rx) = mpsc::channel(DONE_CAPACITY);
    let mut local = Local::new(done_tx);
    let mut changes = node.view.clone();
    let mut interval = tokio::time::interval(STEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Biased, host events first: the host reports a lease expiry (which forgets the killed
        // processes by name) before it answers any later start, and the start's completion
        // reaches `done_rx` only after that event is queued. Handling them in that order keeps
        // a newly started process from being forgotten while it runs.
        tokio::select! {
            biased;
            event = events.recv() => match event {
                Some(event) => local.on_host_event(&node, event),
                // The handle (in `node`) holds the sender: this only ends with the daemon.
                None => return,
            },
            Some(done) = done_rx.recv() => local.on_done(done),
            _ = changes.changed() => {}
            _ = interval.tick() => {}
        }
        local.step(&node);
    }
}

struct Local {
    tracked: BTreeMap<String, Tracked>,
    /// The last configuration seen of each tracked resource, for calls after it changed.
    specs: BTreeMap<String, Resource>,
    done: mpsc::Sender<OpDone>,
    /// Since when the resource host is down and could not be restarted (monotonic ms).
    host_down_since_ms: Option<u64>,
    next_respawn_ms: u64,
    /// The last batch of reports, while it is being committed.
    reporting: Option<tokio::task::JoinHandle<()>>,
}

impl Local {
    fn new(done: mpsc::Sender<OpDone>) -> Local {
        Local {
            tracked: BTreeMap::new(),
            specs: BTreeMap::new(),
            done,
            host_down_since_ms: None,
            next_respawn_ms: 0,
            reporting: None,
        }
    }

    fn step(&mut self, node: &Arc<Node>) {
        let now = mono_ms();
        if !self.keep_host(node, now) {
            return;
        }
        let view = node.view();
        let state = &view.state;
        let assigned = assigned_here(node, state);
        self.track(state, &assigned);
        self.launch(node, state, &assigned, now);
        self.report(node, state);
    }

    /// Proposes what changed (finished releases, group statuses, resource states) in the
    /// background, so agent calls keep flowing while a partitioned node's proposals wait
    /// for a coordinator. One batch at a time: the next reads the state the last produced.
    fn report(&mut self, node: &Arc<Node>, state: &ClusterState) {
        if self
            .reporting
            .as_ref()
            .is_some_and(|task| !task.is_finished())
        {
            return;
        }
        let me = node.id();
        let mut commands = self.releases_done(me, state);
        commands.extend(self.group_reports(me, state));
        commands.extend(self.resource_reports(me, state));
        if commands.is_empty() {
            return;
        }
        let node = Arc::clone(node);
        self.reporting = Some(tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for command in commands {
                let node = Arc::clone(&node);
                tasks.spawn(async move { node.propose_logged(command).await });
            }
            while tasks.join_next().await.is_some() {}
        }));
    }

    /// Tracks the resources of groups newly assigned here, and passes restart requests on.
    fn track(&mut self, state: &ClusterState, assigned: &BTreeMap<String, u64>) {
        for (group, generation) in assigned {
            for resource in state.group_resources(group) {
                let requests = resource.status.restart_requests;
                let entry = self
                    .tracked
                    .entry(resource.name.clone())
                    .or_insert_with(|| Tracked::new(group, *generation, requests));
                if entry.generation == *generation {
                    entry.restart_requested(requests);
                }
            }
        }
        for (name, resource) in &state.resources {
            if self.tracked.contains_key(name) {
                self.specs.insert(name.clone(), resource.clone());
            }
        }
    }

    /// Decides every resource's next agent call from one snapshot, then starts them:
    /// starts in dependency order, stops in reverse (see `policy::start_order`).
    fn launch(
        &mut self,
        node: &Arc<Node>,
        state: &ClusterState,
        assigned: &BTreeMap<String, u64>,
        now: u64,
    ) {
        let lease = node.holds_lease();
        let mut decisions: Vec<(usize, String, Next)> = Vec::new();
        for (name, t) in &self.tracked {
            let here = self.situation(state, assigned, lease, name, t);
            let next = tracked::next_op(t, here, now);
            if next != Next::Nothing {
                decisions.push((self.order_rank(state, name, next), name.clone(), next));
            }
        }
        decisions.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        for (_, name, next) in decisions {
            match next {
                Next::Nothing => {}
                Next::Forget => {
                    self.tracked.remove(&name);
                    self.specs.remove(&name);
                }
                Next::Op(kind) => self.begin(node, &name, kind),
            }
        }
    }

    fn begin(&mut self, node: &Arc<Node>, name: &str, kind: OpKind) {
        let (Some(t), Some(spec)) = (self.tracked.get_mut(name), self.specs.get(name)) else {
            return;
        };
        tracing::info!(
            resource = name,
            ?kind,
            generation = t.generation,
            "agent call"
        );
        tracked::begin(t, kind);
        ops::spawn(node, spec, t.generation, kind, t.process, &self.done);
    }

    /// Position in the group's start order (stops: reverse), so calls go out in
    /// dependency order.
    fn order_rank(&self, state: &ClusterState, name: &str, next: Next) -> usize {
        let Some(group) = self.tracked.get(name).map(|t| t.group.as_str()) else {
            return 0;
        };
        let order = policy::start_order(&dependency_view(state, group));
        let rank = order.iter().position(|n| n == name).unwrap_or(order.len());
        match next {
            Next::Op(OpKind::Stop { .. }) => order.len().saturating_sub(rank),
            _ => rank,
        }
    }

    /// What the loop knows about one resource: wanted here, dependencies, dependents.
    fn situation(
        &self,
        state: &ClusterState,
        assigned: &BTreeMap<String, u64>,
        lease: bool,
        name: &str,
        t: &Tracked,
    ) -> Situation {
        let spec = self.specs.get(name);
        let desired = lease
            && assigned.get(&t.group) == Some(&t.generation)
            && state.resources.contains_key(name);
        let online = |other: &str| {
            self.tracked
                .get(other)
                .is_some_and(|o| o.state == ResourceState::Online && o.generation == t.generation)
        };
        let dependencies_online = spec
            .and_then(dependencies)
            .is_none_or(|expr| expr.is_satisfied(&online));
        let dependents_active = self.tracked.iter().any(|(other, o)| {
            o.group == t.group
                && o.is_active()
                && self
                    .specs
                    .get(other)
                    .and_then(dependencies)
                    .is_some_and(|expr| expr.references().contains(&name))
        });
        let has_is_alive = spec.is_some_and(|s| agent_for(&s.resource_type).has_is_alive(s));
        Situation {
            desired,
            dependencies_online,
            dependents_active,
            has_is_alive,
        }
    }

    fn on_done(&mut self, done: OpDone) {
        let now = mono_ms();
        let (Some(t), Some(spec)) = (
            self.tracked.get_mut(&done.resource),
            self.specs.get(&done.resource),
        ) else {
            return;
        };
        if t.generation != done.generation || t.busy != Some(done.kind) {
            return;
        }
        tracked::apply_outcome(t, done.kind, done.outcome, done.process, &spec.policy, now);
        if t.state == ResourceState::Failed {
            tracing::warn!(resource = %done.resource, message = %t.message, "resource failed");
        }
    }

    fn on_host_event(&mut self, node: &Node, event: HostEvent) {
        match event {
            HostEvent::Exited {
                resource,
                pid,
                code,
                signal,
            } => self.process_exited(&resource, pid, code, signal),
            HostEvent::LeaseExpired { killed } => {
                tracing::warn!(
                    ?killed,
                    "lease expired: the resource host killed every process"
                );
                for name in killed {
                    if let Some(t) = self.tracked.get_mut(&name) {
                        t.state = ResourceState::Offline;
                        t.message = "killed: the node's lease expired".to_string();
                        t.process = None;
                        t.needs_cleanup = false;
                    }
                }
            }
            HostEvent::HostExited { pid } if pid == node.host.pid() => {
                tracing::error!(pid, "the resource host died; starting a new one");
                self.host_down_since_ms.get_or_insert(mono_ms());
                self.next_respawn_ms = 0;
            }
            HostEvent::HostExited { .. } => {}
        }
    }

    /// A process resource's leader exited: it failed, unless it was being stopped.
    fn process_exited(&mut self, name: &str, pid: u32, code: Option<i32>, signal: Option<i32>) {
        let Some(t) = self.tracked.get_mut(name) else {
            return;
        };
        let ours = t.process.is_some_and(|p| p.pid == pid);
        let stopping = matches!(t.busy, Some(OpKind::Stop { .. }));
        if !ours || stopping || t.state != ResourceState::Online {
            return;
        }
        let how = match (code, signal) {
            (Some(code), _) => format!("exited with code {code}"),
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            (None, None) => "exited (it was adopted after a resource host restart)".to_string(),
        };
        t.process = None;
        t.fail(format!("the process {how}"), false);
        tracing::warn!(resource = name, %how, "resource process ended");
    }

    /// Restarts a dead resource host (with backoff) and marks what it ran for a probe.
    /// Returns whether a host runs.
    fn keep_host(&mut self, node: &Node, now: u64) -> bool {
        let Some(since) = self.host_down_since_ms else {
            return true;
        };
        if now < self.next_respawn_ms {
            return false;
        }
        match node.host.respawn() {
            Ok(pid) => {
                tracing::warn!(
                    pid,
                    "new resource host started; re-learning resource states"
                );
                self.host_down_since_ms = None;
                for t in self.tracked.values_mut().filter(|t| t.is_active()) {
                    t.needs_probe = true;
                    t.not_before_ms = 0;
                }
                true
            }
            Err(error) if now.saturating_sub(since) >= HOST_DOWN_MAX_MS => self.host_lost(&error),
            Err(error) => {
                tracing::error!(%error, "cannot start a new resource host; retrying");
                self.next_respawn_ms = now + RESPAWN_BACKOFF_MS;
                false
            }
        }
    }

    /// No resource host for too long: nothing enforces the lease on what runs here. Kill
    /// what we started and stop the daemon, so a supervisor starts it afresh.
    fn host_lost(&self, error: &baton_host::HostError) -> ! {
        tracing::error!(%error, "no resource host; killing resources and stopping the daemon");
        for process in self.tracked.values().filter_map(|t| t.process) {
            if process.pid > 1 {
                // SAFETY: kill(2) on a process group we created (each resource is setsid'ed).
                unsafe { libc::kill(-(process.pid as i32), libc::SIGKILL) };
            }
        }
        std::process::exit(70);
    }

    /// Groups being released from this node: once none of their resources runs, say so.
    fn releases_done(&self, me: NodeId, state: &ClusterState) -> Vec<Command> {
        state
            .groups_on(me)
            .filter_map(|group| {
                let assignment = group.assignment.filter(|a| a.releasing)?;
                let running = self.tracked.values().any(|t| t.group == group.name);
                (!running).then(|| Command::GroupStopped {
                    group: group.name.clone(),
                    node: me,
                    generation: assignment.generation,
                })
            })
            .collect()
    }

    /// Commits each owned group's status when it changes. A failure the coordinator
    /// recorded (`FailGroup`) stays until the group is fully online again.
    fn group_reports(&self, me: NodeId, state: &ClusterState) -> Vec<Command> {
        let mut reports = Vec::new();
        for group in state.groups_on(me) {
            let Some(assignment) = group.assignment.filter(|a| !a.releasing) else {
                continue;
            };
            let (status, message) = self.group_status(state, &group.name, assignment.generation);
            // "starting" says nothing the Pending a placement sets does not: no update for it.
            let unchanged =
                group.status == status && (group.status_message == message || message == STARTING);
            let keeps_failure =
                group.status == GroupStatus::Failed && status != GroupStatus::Online;
            if unchanged || keeps_failure {
                continue;
            }
            reports.push(Command::ReportGroupStatus {
                group: group.name.clone(),
                node: me,
                generation: assignment.generation,
                status,
                message,
            });
        }
        reports
    }

    fn group_status(
        &self,
        state: &ClusterState,
        group: &str,
        generation: u64,
    ) -> (GroupStatus, String) {
        let mut failed = None;
        let mut all_online = true;
        for resource in state.group_resources(group) {
            let t = self
                .tracked
                .get(&resource.name)
                .filter(|t| t.generation == generation);
            match t.map(|t| t.state) {
                Some(ResourceState::Online) => {}
                Some(ResourceState::Failed) => {
                    all_online = false;
                    failed = failed.or_else(|| Some((&resource.name, t.map(|t| &t.message))));
                }
                _ => all_online = false,
            }
        }
        match (all_online, failed) {
            (true, _) => (GroupStatus::Online, String::new()),
            (false, Some((name, message))) => {
                let message = message.map(String::as_str).unwrap_or_default();
                (
                    GroupStatus::Pending,
                    bounded(&format!("resource {name} failed: {message}")),
                )
            }
            (false, None) => (GroupStatus::Pending, STARTING.to_string()),
        }
    }

    /// Commits each resource's state when it differs from the database's.
    fn resource_reports(&self, me: NodeId, state: &ClusterState) -> Vec<Command> {
        let mut reports = Vec::new();
        for (name, t) in &self.tracked {
            let owned = state
                .groups
                .get(&t.group)
                .and_then(|g| g.assignment)
                .is_some_and(|a| a.node == me && a.generation == t.generation);
            let Some(stored) = state.resources.get(name).map(|r| &r.status) else {
                continue;
            };
            let message = bounded(&t.message);
            let differs = stored.state != t.state
                || stored.message != message
                || stored.misconfigured != t.misconfigured;
            if owned && differs {
                reports.push(Command::ReportResourceState {
                    resource: name.clone(),
                    node: me,
                    generation: t.generation,
                    state: t.state,
                    message,
                    misconfigured: t.misconfigured,
                });
            }
        }
        reports
    }
}

/// Groups to run here: group → generation. Empty unless this node is up in its own view.
fn assigned_here(node: &Node, state: &ClusterState) -> BTreeMap<String, u64> {
    let up = state
        .nodes
        .get(&node.id())
        .is_some_and(|n| n.state == NodeState::Up);
    if !up {
        return BTreeMap::new();
    }
    state
        .groups_on(node.id())
        .filter_map(|g| {
            g.assignment
                .filter(|a| !a.releasing)
                .map(|a| (g.name.clone(), a.generation))
        })
        .collect()
}

fn dependencies(resource: &Resource) -> Option<policy::DepExpr> {
    let text = resource.policy.depends_on.as_deref()?;
    // Validated when set; an unparsable one (never expected) counts as none.
    policy::DepExpr::parse(text).ok()
}

/// The group's resources with their dependencies, for `policy::start_order`.
fn dependency_view(state: &ClusterState, group: &str) -> policy::GroupView {
    let mut view = policy::GroupView::new(group);
    view.resources = state
        .group_resources(group)
        .map(|r| {
            let mut resource = policy::ResourceView::new(r.name.clone());
            resource.depends_on = dependencies(r);
            resource
        })
        .collect();
    view
}

fn bounded(message: &str) -> String {
    if message.len() <= MESSAGE_LEN_MAX {
        return message.to_string();
    }
    let cut = (0..=MESSAGE_LEN_MAX)
        .rev()
        .find(|i| message.is_char_boundary(*i))
        .unwrap_or(0);
    format!("{}...", &message[..cut])
}
