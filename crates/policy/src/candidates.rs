//! Feasibility and ranking of nodes for one group.
//!
//! `Cluster` indexes the nodes; `Ledger` keeps each node's load and anti-affinity
//! classes, computed once from the input and updated as the plan assigns groups,
//! so choosing a node costs O(nodes) and never rescans the groups.

use std::collections::BTreeMap;

use crate::input::{GroupView, NodeState, NodeView};
use crate::output::{Candidate, Verdict};
use crate::reason::{Conflict, Rejection};

/// The nodes by id, in id order.
pub(crate) struct Cluster<'a> {
    nodes: Vec<&'a NodeView>,
    index_by_id: BTreeMap<u64, usize>,
}

impl<'a> Cluster<'a> {
    pub(crate) fn new(nodes: &'a [NodeView]) -> Cluster<'a> {
        let mut sorted: Vec<&NodeView> = nodes.iter().collect();
        sorted.sort_by_key(|node| node.id);
        // A repeated id keeps its first entry, so lookups stay unambiguous.
        sorted.dedup_by_key(|node| node.id);
        let index_by_id = sorted
            .iter()
            .enumerate()
            .map(|(i, node)| (node.id, i))
            .collect();
        Cluster {
            nodes: sorted,
            index_by_id,
        }
    }

    pub(crate) fn get(&self, id: u64) -> Option<&'a NodeView> {
        self.index_by_id.get(&id).map(|&index| self.nodes[index])
    }

    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The node's name, or `node <id>` for an id that is not a member.
    pub(crate) fn name(&self, id: u64) -> String {
        self.get(id)
            .map_or_else(|| format!("node {id}"), |node| node.name.clone())
    }

    pub(crate) fn names(&self) -> BTreeMap<u64, String> {
        self.nodes
            .iter()
            .map(|node| (node.id, node.name.clone()))
            .collect()
    }
}

/// Loads and anti-affinity class members per node, kept current during planning.
pub(crate) struct Ledger<'a> {
    load_by_id: BTreeMap<u64, u32>,
    /// (class, node) -> groups of that class assigned to the node.
    class_members: BTreeMap<(&'a str, u64), Vec<&'a str>>,
}

impl<'a> Ledger<'a> {
    /// Counts every assignment except those to a lost owner, whose groups are
    /// about to be cleared; an owner waiting for its lease still counts.
    pub(crate) fn new(cluster: &Cluster<'a>, groups: &'a [GroupView]) -> Ledger<'a> {
        let mut ledger = Ledger {
            load_by_id: BTreeMap::new(),
            class_members: BTreeMap::new(),
        };
        for node in &cluster.nodes {
            ledger.load_by_id.insert(node.id, 0);
        }
        for group in groups {
            let Some(assignment) = group.assignment else {
                continue;
            };
            if cluster.get(assignment.node).is_some_and(is_lost) {
                continue;
            }
            ledger.add(group, assignment.node);
        }
        ledger
    }

    pub(crate) fn add(&mut self, group: &'a GroupView, node: u64) {
        if let Some(load) = self.load_by_id.get_mut(&node) {
            *load += 1;
        }
        for class in &group.anti_affinity {
            self.class_members
                .entry((class.as_str(), node))
                .or_default()
                .push(&group.name);
        }
    }

    pub(crate) fn load(&self, node: u64) -> u32 {
        self.load_by_id.get(&node).copied().unwrap_or(0)
    }

    /// The first other group sharing an anti-affinity class with `group` on `node`.
    pub(crate) fn conflict(&self, group: &'a GroupView, node: u64) -> Option<Conflict> {
        group.anti_affinity.iter().find_map(|class| {
            let members = self.class_members.get(&(class.as_str(), node))?;
            let other = members.iter().find(|member| **member != group.name)?;
            Some(Conflict {
                group: other.to_string(),
                class: class.clone(),
            })
        })
    }
}

/// Down with the lease expired (or fenced): proven to run nothing.
pub(crate) fn is_lost(node: &NodeView) -> bool {
    node.state == NodeState::Down && node.lease_expired
}

/// Why `node` cannot run `group` at all, if it cannot. `away_from` is a node
/// the group is leaving (move, drain, failover), which is never a candidate.
pub(crate) fn rejection(
    group: &GroupView,
    node: &NodeView,
    away_from: Option<u64>,
) -> Option<Rejection> {
    if away_from == Some(node.id) {
        return Some(Rejection::CurrentOwner);
    }
    match node.state {
        NodeState::Up => {}
        NodeState::Down => return Some(Rejection::NodeDown),
        NodeState::Paused => return Some(Rejection::NodePaused),
        NodeState::Joining => return Some(Rejection::NodeJoining),
    }
    group
        .resources
        .iter()
        .find(|resource| !resource.may_run_on(node.id))
        .map(|resource| Rejection::NotPossibleOwner {
            resource: resource.name.clone(),
        })
}

/// Weighs every node for `group`, in node id order. No verdict is `Chosen` yet.
pub(crate) fn evaluate<'a>(
    cluster: &Cluster<'a>,
    ledger: &Ledger<'a>,
    group: &'a GroupView,
    away_from: Option<u64>,
) -> Vec<Candidate> {
    cluster
        .nodes
        .iter()
        .map(|node| {
            let preferred_rank = group
                .preferred_owners
                .iter()
                .position(|id| *id == node.id)
                .map(|index| index as u32 + 1);
            let verdict =
                rejection(group, node, away_from).map_or(Verdict::Eligible, Verdict::Rejected);
            Candidate {
                node: node.id,
                preferred_rank,
                load: ledger.load(node.id),
                conflict: ledger.conflict(group, node.id),
                verdict,
            }
        })
        .collect()
}

/// Picks the home for a group: among eligible nodes, those without an
/// anti-affinity clash if any exist (WSFC treats the clash as soft); then the
/// first preferred owner; else the least loaded node, ties by node id.
/// Marks the winner `Chosen` and returns its index.
pub(crate) fn choose(candidates: &mut [Candidate]) -> Option<usize> {
    let eligible = |c: &Candidate| c.verdict == Verdict::Eligible;
    let any_clean = candidates
        .iter()
        .any(|c| eligible(c) && c.conflict.is_none());
    let best = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| eligible(c) && (!any_clean || c.conflict.is_none()))
        .min_by_key(|(_, c)| (c.preferred_rank.unwrap_or(u32::MAX), c.load, c.node))
        .map(|(index, _)| index)?;
    candidates[best].verdict = Verdict::Chosen;
    Some(best)
}

/// Marks `node` as chosen when it is eligible; returns its index, or the
/// rejection (or `UnknownNode`) that rules it out.
pub(crate) fn choose_target(candidates: &mut [Candidate], node: u64) -> Result<usize, Rejection> {
    let index = candidates
        .iter()
        .position(|c| c.node == node)
        .ok_or(Rejection::UnknownNode)?;
    match &candidates[index].verdict {
        Verdict::Rejected(rejection) => Err(rejection.clone()),
        _ => {
            candidates[index].verdict = Verdict::Chosen;
            Ok(index)
        }
    }
}
