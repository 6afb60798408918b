//! `plan`: the rules in the order they apply to each group.
//!
//! Groups are planned one at a time, highest priority first, then by name; each
//! placement updates the `Ledger`, so later groups see the loads and
//! anti-affinity of earlier ones. The whole round is O(groups x (resources +
//! preferred owners) + placements x nodes).

use std::collections::{BTreeMap, BTreeSet};

use crate::candidates::{self, choose, choose_target, evaluate, is_lost, Cluster, Ledger};
use crate::deps::{check_cycles, start_order, stop_order};
use crate::input::{Desired, Failback, GroupStatus, GroupView, MoveRequest, NodeState, NodeView};
use crate::input::{PlanInput, Priority, ResourceState, ResourceView};
use crate::output::{Action, Candidate, Explanation, Plan, Verdict};
use crate::reason::{FailbackText, Reason, Rejection};
use crate::rules::{self, ResourceStep, Retry};
use crate::safety;
use crate::timefmt::format_utc;

/// Computes the actions that move the cluster toward its desired state, and why.
/// Pure: the same input gives the same plan.
pub fn plan(input: &PlanInput) -> Plan {
    let cluster = Cluster::new(&input.nodes);
    let ledger = Ledger::new(&cluster, &input.groups);
    let mut planner = Planner {
        input,
        cluster,
        ledger,
        actions: Vec::new(),
        explanations: BTreeMap::new(),
        place_count: 0,
    };
    let (order, duplicates) = planning_order(&input.groups);
    for group in order {
        let explanation = planner.plan_group(group);
        planner.explanations.insert(group.name.clone(), explanation);
    }
    for name in duplicates {
        if let Some(explanation) = planner.explanations.get_mut(name) {
            explanation
                .summary
                .push_str("; later groups with the same name were ignored");
        }
    }
    let plan = Plan {
        actions: planner.actions,
        explanations: planner.explanations,
        node_names: planner.cluster.names(),
    };
    safety::assert_plan_safe(input, &plan);
    plan
}

/// Groups by priority, then name. A repeated name keeps its first definition
/// (the model's validation reports the duplicate); the names are returned.
fn planning_order(groups: &[GroupView]) -> (Vec<&GroupView>, BTreeSet<&str>) {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut duplicates = BTreeSet::new();
    let mut order: Vec<&GroupView> = Vec::with_capacity(groups.len());
    for group in groups {
        if seen.insert(&group.name) {
            order.push(group);
        } else {
            duplicates.insert(group.name.as_str());
        }
    }
    order.sort_by(|a, b| (a.priority, &a.name).cmp(&(b.priority, &b.name)));
    (order, duplicates)
}

/// Who holds a group's assignment, as far as safety is concerned.
enum Owner<'a> {
    None,
    /// Up, paused or joining: runs or may run the group.
    Live(&'a NodeView),
    /// Not proven stopped (down with a valid lease, or not a member): wait.
    Unproven(u64),
    /// Down with an expired lease: proven to run nothing.
    Lost(&'a NodeView),
}

struct Planner<'a> {
    input: &'a PlanInput,
    cluster: Cluster<'a>,
    ledger: Ledger<'a>,
    actions: Vec<Action>,
    explanations: BTreeMap<String, Explanation>,
    place_count: u32,
}

impl<'a> Planner<'a> {
    fn plan_group(&mut self, group: &'a GroupView) -> Explanation {
        match self.owner(group) {
            Owner::None => self.plan_unassigned(group),
            Owner::Live(owner) => self.plan_assigned(group, owner),
            Owner::Unproven(id) => Explanation::note(
                Some(id),
                format!(
                    "owner {} is not proven stopped (lease not expired, not fenced): \
                     waiting before failover",
                    self.cluster.name(id)
                ),
            ),
            Owner::Lost(owner) => self.plan_lost_owner(group, owner),
        }
    }

    fn owner(&self, group: &GroupView) -> Owner<'a> {
        let Some(assignment) = group.assignment else {
            return Owner::None;
        };
        match self.cluster.get(assignment.node) {
            None => Owner::Unproven(assignment.node),
            Some(node) if is_lost(node) => Owner::Lost(node),
            Some(node) if node.state == NodeState::Down => Owner::Unproven(node.id),
            Some(node) => Owner::Live(node),
        }
    }

    /// The owner can no longer run the group: forget it, then fail over unless
    /// a rule says the group stays down.
    fn plan_lost_owner(&mut self, group: &'a GroupView, owner: &NodeView) -> Explanation {
        self.actions.push(Action::ClearAssignment {
            group: group.name.clone(),
            node: owner.id,
            reason: Reason::OwnerLost {
                node: owner.name.clone(),
            },
        });
        if group.desired == Desired::Offline {
            return Explanation::note(None, format!("owner {} lost; desired offline", owner.name));
        }
        if group.priority == Priority::NoAutoStart {
            return self.fail_group(group, Reason::NoAutoStartAfterFailure, None, Vec::new());
        }
        let node_count = self.cluster.len();
        if let Err(reason) = rules::check_failover_budget(group, self.input.now_ms, node_count) {
            return self.fail_group(group, reason, None, Vec::new());
        }
        let reason = Reason::FailoverOwnerLost {
            node: owner.name.clone(),
        };
        self.place(group, reason, None)
    }

    fn plan_unassigned(&mut self, group: &'a GroupView) -> Explanation {
        if group.desired == Desired::Offline {
            return Explanation::note(None, "desired offline");
        }
        if let Some(pending) = &group.pending_move {
            return self.place(group, pending.reason.clone(), Some(pending.target));
        }
        if let Some(request) = group.move_request {
            return self.place_requested(group, request);
        }
        if group.status == GroupStatus::Failed {
            return self.retry_failed(group);
        }
        self.place(group, Reason::Start, None)
    }

    /// A failed group that runs nowhere waits for its retry period or an operator.
    fn retry_failed(&mut self, group: &'a GroupView) -> Explanation {
        let failed = group
            .failed_reason
            .as_deref()
            .unwrap_or("no reason recorded");
        let retry = match group.priority {
            Priority::NoAutoStart => Retry::Never,
            _ => rules::group_retry(group, self.input.now_ms),
        };
        match retry {
            Retry::Due(reason) => self.place(group, reason, None),
            Retry::At(due_at) => Explanation::note(
                None,
                format!("failed ({failed}); retry at {}", format_utc(due_at)),
            ),
            Retry::Never => Explanation::note(
                None,
                format!("failed ({failed}); no automatic retry: move the group to start it"),
            ),
        }
    }

    /// An operator asked to start an unassigned group, maybe on a given node.
    fn place_requested(&mut self, group: &'a GroupView, request: MoveRequest) -> Explanation {
        let Some(target) = request.target else {
            return self.place(group, Reason::MoveRequested { target: None }, None);
        };
        let mut candidates = evaluate(&self.cluster, &self.ledger, group, None);
        if let Err(rejection) = choose_target(&mut candidates, target) {
            return self.reject_move(group, None, target, rejection, candidates);
        }
        let reason = Reason::MoveRequested {
            target: Some(self.cluster.name(target)),
        };
        self.place(group, reason, Some(target))
    }

    fn plan_assigned(&mut self, group: &'a GroupView, owner: &'a NodeView) -> Explanation {
        if group.status == GroupStatus::Stopping {
            return Explanation::note(Some(owner.id), format!("stopping on {}", owner.name));
        }
        if let Some(pending) = &group.pending_move {
            let summary = format!(
                "release from {} in progress, then to {}: {}",
                owner.name,
                self.cluster.name(pending.target),
                pending.reason
            );
            return Explanation::note(Some(pending.target), summary);
        }
        if group.desired == Desired::Offline {
            return self.release(group, owner, Reason::DesiredOffline, Vec::new());
        }
        if let Some(request) = group.move_request {
            return self.move_assigned(group, owner, request);
        }
        if owner.state == NodeState::Paused {
            return self.drain(group, owner);
        }
        if let Some(explanation) = self.resource_failures(group, owner) {
            return explanation;
        }
        self.failback_or_stay(group, owner)
    }

    fn move_assigned(
        &mut self,
        group: &'a GroupView,
        owner: &'a NodeView,
        request: MoveRequest,
    ) -> Explanation {
        let mut candidates = evaluate(&self.cluster, &self.ledger, group, Some(owner.id));
        let Some(target) = request.target else {
            return match choose(&mut candidates) {
                Some(_) => {
                    let reason = Reason::MoveRequested { target: None };
                    self.release(group, owner, reason, candidates)
                }
                None => self.reject(group, Some(owner.id), Reason::MoveNoOtherNode, candidates),
            };
        };
        if target == owner.id {
            let reason = Reason::MoveAlreadyOnTarget {
                node: owner.name.clone(),
            };
            return self.reject(group, Some(owner.id), reason, Vec::new());
        }
        match choose_target(&mut candidates, target) {
            Ok(_) => {
                let reason = Reason::MoveRequested {
                    target: Some(self.cluster.name(target)),
                };
                self.release(group, owner, reason, candidates)
            }
            Err(rejection) => {
                self.reject_move(group, Some(owner.id), target, rejection, candidates)
            }
        }
    }

    /// The owner is paused: move the group to the best other node, if any.
    fn drain(&mut self, group: &'a GroupView, owner: &'a NodeView) -> Explanation {
        let mut candidates = evaluate(&self.cluster, &self.ledger, group, Some(owner.id));
        if choose(&mut candidates).is_none() {
            let summary = format!(
                "{} is paused but no other node can run the group: it stays",
                owner.name
            );
            return Explanation {
                node: Some(owner.id),
                summary,
                candidates,
            };
        }
        let reason = Reason::Drain {
            node: owner.name.clone(),
        };
        self.release(group, owner, reason, candidates)
    }

    /// The restart policy of each failed resource, in start order. A failover
    /// replaces any restart, so every step is decided before acting.
    fn resource_failures(
        &mut self,
        group: &'a GroupView,
        owner: &'a NodeView,
    ) -> Option<Explanation> {
        let failed = failed_in_start_order(group);
        if failed.is_empty() {
            return None;
        }
        if let Some(resource) = failed.iter().find(|r| r.misconfigured) {
            return Some(self.misconfigured(group, owner, resource));
        }
        let now_ms = self.input.now_ms;
        let steps: Vec<(&ResourceView, ResourceStep)> = failed
            .into_iter()
            .map(|r| (r, rules::resource_step(group, r, now_ms)))
            .collect();
        if let Some((resource, ResourceStep::FailOver { restart_count })) = steps
            .iter()
            .find(|(_, step)| matches!(step, ResourceStep::FailOver { .. }))
        {
            return Some(self.fail_over(group, owner, resource, *restart_count));
        }
        let mut notes = Vec::with_capacity(steps.len());
        for (resource, step) in steps {
            match step {
                ResourceStep::Restart(reason) => {
                    notes.push(format!("restarting {} on {}", resource.name, owner.name));
                    self.actions.push(Action::RestartResource {
                        group: group.name.clone(),
                        resource: resource.name.clone(),
                        node: owner.id,
                        reason,
                    });
                }
                ResourceStep::Wait(note) => notes.push(note),
                ResourceStep::FailOver { .. } => {}
            }
        }
        let status = status_word(group.status);
        let summary = format!("{status} on {}; {}", owner.name, notes.join("; "));
        Some(Explanation::note(Some(owner.id), summary))
    }

    /// A misconfigured resource fails its group where it is, once; it then waits for the
    /// operator (no restart, no retry, no failover: every node would fail the same way).
    fn misconfigured(
        &mut self,
        group: &'a GroupView,
        owner: &'a NodeView,
        resource: &ResourceView,
    ) -> Explanation {
        let reason = Reason::Misconfigured {
            resource: resource.name.clone(),
        };
        if group.status != GroupStatus::Failed {
            return self.fail_group(group, reason, Some(owner.id), Vec::new());
        }
        Explanation::note(
            Some(owner.id),
            format!("failed on {}: {reason}", owner.name),
        )
    }

    /// A resource used up its restarts: move the group, unless the failover
    /// policy or the priority says it stays failed.
    fn fail_over(
        &mut self,
        group: &'a GroupView,
        owner: &'a NodeView,
        resource: &ResourceView,
        restart_count: u32,
    ) -> Explanation {
        let owner_id = Some(owner.id);
        if group.priority == Priority::NoAutoStart {
            return self.fail_group(group, Reason::NoAutoStartAfterFailure, owner_id, Vec::new());
        }
        let node_count = self.cluster.len();
        if let Err(reason) = rules::check_failover_budget(group, self.input.now_ms, node_count) {
            return self.fail_group(group, reason, owner_id, Vec::new());
        }
        let mut candidates = evaluate(&self.cluster, &self.ledger, group, owner_id);
        if choose(&mut candidates).is_none() {
            let reason = Reason::FailoverNoNode {
                resource: resource.name.clone(),
            };
            return self.fail_group(group, reason, owner_id, candidates);
        }
        let reason = Reason::FailoverRestartsExhausted {
            resource: resource.name.clone(),
            node: owner.name.clone(),
            restart_count,
            period_ms: resource.restart.period_ms,
        };
        self.release(group, owner, reason, candidates)
    }

    fn failback_or_stay(&mut self, group: &'a GroupView, owner: &'a NodeView) -> Explanation {
        let here = format!("{} on {}", status_word(group.status), owner.name);
        let target = match group.status {
            GroupStatus::Online => self.failback_target(group, owner),
            _ => None,
        };
        let Some(target) = target else {
            return Explanation::note(Some(owner.id), here);
        };
        let target_name = self.cluster.name(target);
        if !rules::failback_allowed(group.failback, self.input.now_ms) {
            let summary = format!(
                "{here}; preferred owner {target_name} is up but failback is {}",
                match group.failback {
                    Failback::Prevent => "prevented".to_string(),
                    other => format!("outside its {}", FailbackText(&other)),
                }
            );
            return Explanation::note(Some(owner.id), summary);
        }
        let mut candidates = evaluate(&self.cluster, &self.ledger, group, Some(owner.id));
        // `failback_target` already proved the target eligible.
        let _ = choose_target(&mut candidates, target);
        let reason = Reason::Failback {
            node: target_name,
            failback: group.failback,
        };
        self.release(group, owner, reason, candidates)
    }

    /// The first preferred owner ranked above the current owner that could run
    /// the group without an anti-affinity clash.
    fn failback_target(&self, group: &'a GroupView, owner: &NodeView) -> Option<u64> {
        let owner_rank = group.preferred_owners.iter().position(|id| *id == owner.id);
        let better = &group.preferred_owners[..owner_rank.unwrap_or(group.preferred_owners.len())];
        better.iter().copied().find(|&id| {
            self.cluster.get(id).is_some_and(|node| {
                candidates::rejection(group, node, Some(owner.id)).is_none()
                    && self.ledger.conflict(group, id).is_none()
            })
        })
    }
}

/// The actions that share a shape: place, release, fail, reject.
impl<'a> Planner<'a> {
    /// Places an unassigned group: on `target` when it is eligible, else on the
    /// best node. Respects the per-plan place bound.
    fn place(&mut self, group: &'a GroupView, reason: Reason, target: Option<u64>) -> Explanation {
        if let Some(place_count_max) = self.input.options.place_count_max {
            if self.place_count >= place_count_max {
                let summary = format!(
                    "deferred to a later plan: higher priority groups used this plan's \
                     {place_count_max} placement(s) ({reason})"
                );
                return Explanation::note(None, summary);
            }
        }
        let mut candidates = evaluate(&self.cluster, &self.ledger, group, None);
        let chosen = target
            .and_then(|node| choose_target(&mut candidates, node).ok())
            .or_else(|| choose(&mut candidates));
        let Some(index) = chosen else {
            let summary = format!("no node can run the group: it stays offline ({reason})");
            return Explanation {
                node: None,
                summary,
                candidates,
            };
        };
        let node = candidates[index].node;
        let start_order = start_order(group);
        let requested = matches!(reason, Reason::MoveRequested { .. });
        let why = why_chosen(&candidates[index], target, requested);
        let mut summary = format!("placed on {}: {why}", self.cluster.name(node));
        if start_order.len() < group.resources.len() {
            summary.push_str(&never_started_note(group, &start_order));
        }
        self.actions.push(Action::Place {
            group: group.name.clone(),
            node,
            generation: group.next_generation(),
            start_order,
            reason,
        });
        self.ledger.add(group, node);
        self.place_count += 1;
        Explanation {
            node: Some(node),
            summary,
            candidates,
        }
    }

    /// Asks the owner to let go. The `Chosen` candidate, if any, is the target
    /// and is charged with the group now, so later groups see its load.
    fn release(
        &mut self,
        group: &'a GroupView,
        owner: &NodeView,
        reason: Reason,
        candidates: Vec<Candidate>,
    ) -> Explanation {
        let chosen = candidates.iter().find(|c| c.verdict == Verdict::Chosen);
        let target = chosen.map(|c| c.node);
        let summary = match chosen {
            Some(c) => {
                let requested = matches!(reason, Reason::MoveRequested { target: Some(_) });
                format!(
                    "releasing from {} toward {} ({}): {reason}",
                    owner.name,
                    self.cluster.name(c.node),
                    why_chosen(c, Some(c.node).filter(|_| requested), requested)
                )
            }
            None => format!("releasing from {}: {reason}", owner.name),
        };
        if let Some(node) = target {
            self.ledger.add(group, node);
        }
        self.actions.push(Action::Release {
            group: group.name.clone(),
            node: owner.id,
            target,
            stop_order: stop_order(group),
            reason,
        });
        Explanation {
            node: target,
            summary,
            candidates,
        }
    }

    fn fail_group(
        &mut self,
        group: &GroupView,
        reason: Reason,
        node: Option<u64>,
        candidates: Vec<Candidate>,
    ) -> Explanation {
        let summary = match node {
            Some(node) => format!("failed on {}: {reason}", self.cluster.name(node)),
            None => format!("failed: {reason}"),
        };
        self.actions.push(Action::FailGroup {
            group: group.name.clone(),
            reason,
        });
        Explanation {
            node,
            summary,
            candidates,
        }
    }

    fn reject_move(
        &mut self,
        group: &GroupView,
        node: Option<u64>,
        target: u64,
        rejection: Rejection,
        candidates: Vec<Candidate>,
    ) -> Explanation {
        let reason = match (rejection, self.cluster.get(target)) {
            (Rejection::UnknownNode, _) | (_, None) => Reason::MoveTargetUnknown { node: target },
            (rejection, Some(target)) => Reason::MoveTargetRejected {
                node: target.name.clone(),
                rejection,
            },
        };
        self.reject(group, node, reason, candidates)
    }

    fn reject(
        &mut self,
        group: &GroupView,
        node: Option<u64>,
        reason: Reason,
        candidates: Vec<Candidate>,
    ) -> Explanation {
        let summary = reason.to_string();
        self.actions.push(Action::RejectMove {
            group: group.name.clone(),
            reason,
        });
        Explanation {
            node,
            summary,
            candidates,
        }
    }
}

/// The failed resources, dependencies first (restarting a dependency may
/// bring its dependents back), then any outside the start order.
fn failed_in_start_order(group: &GroupView) -> Vec<&ResourceView> {
    let failed: Vec<&ResourceView> = group
        .resources
        .iter()
        .filter(|r| r.state == ResourceState::Failed)
        .collect();
    if failed.len() < 2 {
        return failed;
    }
    let order = start_order(group);
    let rank = |r: &ResourceView| {
        order
            .iter()
            .position(|name| *name == r.name)
            .unwrap_or(usize::MAX)
    };
    let mut sorted = failed;
    sorted.sort_by_key(|r| rank(r));
    sorted
}

/// Names the resources left out of the start order and why.
fn never_started_note(group: &GroupView, order: &[String]) -> String {
    let left_out: Vec<&str> = group
        .resources
        .iter()
        .filter(|r| !order.contains(&r.name))
        .map(|r| r.name.as_str())
        .collect();
    let why = match check_cycles(group) {
        Err(cycle) => cycle.to_string(),
        Ok(()) => "a dependency names no resource of the group".to_string(),
    };
    format!(
        "; not started because their dependencies cannot be met: {} ({why})",
        left_out.join(", ")
    )
}

/// Why the chosen candidate won, in words; `target` is a node asked for by
/// an operator (`requested`) or by an earlier plan's release.
fn why_chosen(candidate: &Candidate, target: Option<u64>, requested: bool) -> String {
    let mut text = match (target, candidate.preferred_rank) {
        (Some(node), _) if node == candidate.node && requested => "the requested node".to_string(),
        (Some(node), _) if node == candidate.node => "the target chosen at release".to_string(),
        (_, Some(rank)) => format!("preferred owner #{rank}"),
        (_, None) => format!("least loaded possible owner, load {}", candidate.load),
    };
    if let Some(conflict) = &candidate.conflict {
        text.push_str(&format!(", despite {conflict}"));
    }
    text
}

fn status_word(status: GroupStatus) -> &'static str {
    match status {
        GroupStatus::Offline => "offline",
        GroupStatus::Pending => "pending",
        GroupStatus::Online => "online",
        GroupStatus::Stopping => "stopping",
        GroupStatus::Failed => "failed",
    }
}
