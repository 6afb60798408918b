//! The policy's output: actions for the executor and an explanation per group.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::reason::{Conflict, Reason, Rejection};

/// The result of one planning round. Data only: the coordinator executes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// In execution order: higher priority groups first, then by group name;
    /// a `ClearAssignment` always precedes the `Place` of the same group.
    pub actions: Vec<Action>,
    /// One entry per group in the input.
    pub explanations: BTreeMap<String, Explanation>,
    /// Node names by id, so plans render without the input.
    pub node_names: BTreeMap<u64, String>,
}

/// One step for the executor.
///
/// Executor contract, which the next plan relies on:
/// * `Place`: assign the group (node, generation), clear its `move_request` and
///   `pending_move`; if `reason.is_failover()`, append `now_ms` to its failover history.
/// * `Release`: ask the owner to take the group offline; when it reports offline,
///   clear the assignment (keep `generation`), and if `target` is set, store
///   `pending_move = { target, reason }` and clear `move_request`.
/// * `ClearAssignment`: drop the assignment of a lost owner (keep `generation`).
/// * `RestartResource`: ask the owner to restart the resource in place and append
///   `now_ms` to its restart history (retries included).
/// * `FailGroup`: set status failed and `failed_reason` to the reason's text.
/// * `RejectMove`: clear `move_request` and tell the operator why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// Bring the group online on `node`. Only emitted for a group with no
    /// assignment, or whose owner is down with an expired lease (then after a
    /// `ClearAssignment` for it): a group is never online on two nodes.
    /// `start_order` lists the resources dependencies first (see `deps::start_order`).
    Place {
        group: String,
        node: u64,
        generation: u64,
        start_order: Vec<String>,
        reason: Reason,
    },
    /// Take the group offline on its owner `node`; `target` is where the group
    /// goes next (placed by a later plan once the assignment is cleared).
    /// `stop_order` lists the resources dependents first (see `deps::stop_order`).
    Release {
        group: String,
        node: u64,
        target: Option<u64>,
        stop_order: Vec<String>,
        reason: Reason,
    },
    /// Forget the assignment to a lost owner that can no longer run the group.
    ClearAssignment {
        group: String,
        node: u64,
        reason: Reason,
    },
    /// Restart a failed resource in place on its owner `node`.
    RestartResource {
        group: String,
        resource: String,
        node: u64,
        reason: Reason,
    },
    /// Leave the group failed, with the reason for the operator.
    FailGroup { group: String, reason: Reason },
    /// Answer an operator's move request with why it cannot be done.
    RejectMove { group: String, reason: Reason },
}

impl Action {
    pub fn group(&self) -> &str {
        match self {
            Action::Place { group, .. }
            | Action::Release { group, .. }
            | Action::ClearAssignment { group, .. }
            | Action::RestartResource { group, .. }
            | Action::FailGroup { group, .. }
            | Action::RejectMove { group, .. } => group,
        }
    }

    pub fn reason(&self) -> &Reason {
        match self {
            Action::Place { reason, .. }
            | Action::Release { reason, .. }
            | Action::ClearAssignment { reason, .. }
            | Action::RestartResource { reason, .. }
            | Action::FailGroup { reason, .. }
            | Action::RejectMove { reason, .. } => reason,
        }
    }
}

/// Why a group is where it is (or goes where it goes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// Where the group runs or goes after this plan; `None` = nowhere.
    pub node: Option<u64>,
    /// One sentence for the operator.
    pub summary: String,
    /// Every node weighed, by node id; empty when no placement choice was made.
    pub candidates: Vec<Candidate>,
}

/// How one node fared as a home for a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub node: u64,
    /// 1-based position in the group's preferred owners, if listed.
    pub preferred_rank: Option<u32>,
    /// Groups assigned to the node when it was weighed.
    pub load: u32,
    /// Anti-affinity clash on this node, if any (soft: avoided when possible).
    pub conflict: Option<Conflict>,
    pub verdict: Verdict,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Chosen,
    /// Could have run the group, ranked lower.
    Eligible,
    Rejected(Rejection),
}

impl Explanation {
    pub fn note(node: Option<u64>, summary: impl Into<String>) -> Explanation {
        Explanation {
            node,
            summary: summary.into(),
            candidates: Vec::new(),
        }
    }
}
