//! The plan's safety invariants, checked against the input after planning.
//!
//! A violation is a bug in the policy that could put a group online on two
//! nodes or reuse a generation; the coordinator must crash rather than execute
//! it (its lease then expires and a healthy node takes over).

use std::collections::{BTreeMap, BTreeSet};

use crate::input::{GroupView, NodeState, NodeView, PlanInput};
use crate::output::{Action, Plan};

/// Panics if `plan` breaks a safety rule for `input`:
/// * `Place` only for a group without assignment, or after a `ClearAssignment`
///   of an owner that is down with an expired lease; at most once per group;
///   with a generation above every one issued.
/// * `ClearAssignment` only for an owner that is down with an expired lease.
/// * `Release` and `RestartResource` only on the group's current owner.
pub fn assert_plan_safe(input: &PlanInput, plan: &Plan) {
    let groups: BTreeMap<&str, &GroupView> = input
        .groups
        .iter()
        .rev()
        .map(|g| (g.name.as_str(), g))
        .collect();
    let nodes: BTreeMap<u64, &NodeView> = input.nodes.iter().rev().map(|n| (n.id, n)).collect();
    let mut cleared: BTreeSet<&str> = BTreeSet::new();
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    for action in &plan.actions {
        let name = action.group();
        let group = groups.get(name).copied();
        let group = group.unwrap_or_else(|| panic!("plan names unknown group {name}"));
        let owner = group.assignment.map(|a| a.node);
        match action {
            Action::ClearAssignment { node, .. } => {
                assert_eq!(
                    owner,
                    Some(*node),
                    "clear of {name} names a node that is not its owner"
                );
                let lost = nodes
                    .get(node)
                    .is_some_and(|n| n.state == NodeState::Down && n.lease_expired);
                assert!(lost, "clear of {name}: owner {node} is not proven stopped");
                cleared.insert(name);
            }
            Action::Place { generation, .. } => {
                assert!(placed.insert(name), "group {name} placed twice in one plan");
                let free = owner.is_none() || cleared.contains(name);
                assert!(free, "group {name} placed while its owner may still run it");
                assert!(
                    *generation > group.generation,
                    "generation of {name} goes backwards"
                );
                let assigned = group.assignment.map_or(0, |a| a.generation);
                assert!(
                    *generation > assigned,
                    "generation of {name} goes backwards"
                );
            }
            Action::Release { node, .. } | Action::RestartResource { node, .. } => {
                assert_eq!(
                    owner,
                    Some(*node),
                    "{name}: action on a node that does not own it"
                );
            }
            Action::FailGroup { .. } | Action::RejectMove { .. } => {}
        }
    }
}
