//! Vocabulary types stored in the cluster database.

use serde::{Deserialize, Serialize};

use crate::resource::GroupPolicy;

/// A node's identity in the cluster and in the Raft configuration. Assigned at join, never reused.
pub type NodeId = u64;

/// Whether a node can run groups, as recorded in the cluster database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeState {
    /// Admitted by a join token; not yet a voter nor known alive.
    Joining,
    /// Alive and holding a lease.
    Up,
    /// Declared down by the coordinator after a majority stopped hearing it.
    Down,
}

/// One server of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: NodeId,
    pub name: String,
    /// `ip:port` of its TLS listener (API, node RPC) and of its UDP heartbeats.
    pub addr: String,
    pub state: NodeState,
    /// Paused nodes keep their vote but take no new groups.
    pub paused: bool,
    pub votes: u32,
    /// How many times this node was declared down; a condemnation names the epoch it ends.
    pub down_epoch: u64,
}

impl Node {
    /// The state an operator sees: `Paused` wins over `Up`.
    pub fn display_state(&self) -> &'static str {
        match (self.state, self.paused) {
            (NodeState::Up, true) => "Paused",
            (NodeState::Up, false) => "Up",
            (NodeState::Down, _) => "Down",
            (NodeState::Joining, _) => "Joining",
        }
    }
}

/// What the operator wants a group to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Desired {
    Online,
    Offline,
}

/// What the owner last reported about a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupStatus {
    Offline,
    Pending,
    Online,
    Stopping,
    Failed,
}

/// The node a group is placed on, with the fencing token of that placement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub node: NodeId,
    /// Grows by one at every placement; resources receive it as their fencing token.
    pub generation: u64,
    /// Set when the coordinator asked the owner to take the group offline.
    pub releasing: bool,
}

/// An operator's request to move a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveRequest {
    pub target: Option<NodeId>,
}

/// A role: resources that fail over together and run on one node at a time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub preferred_owners: Vec<NodeId>,
    pub desired: Desired,
    pub assignment: Option<Assignment>,
    /// The last generation handed out, also after the assignment is cleared.
    pub generation: u64,
    pub status: GroupStatus,
    pub status_message: String,
    pub move_request: Option<MoveRequest>,
    /// Where a released group goes next (set by a planned move, cleared when placed).
    pub pending_target: Option<NodeId>,
    /// Why the group is where it is: the reason of its last placement decision.
    pub last_reason: String,
    /// Unix ms of past failovers, for the failover policy.
    pub failover_history_ms: Vec<u64>,
    #[serde(default)]
    pub policy: GroupPolicy,
    /// Why the group was released toward `pending_target`, kept for its placement there (a
    /// failover released after restarts were used up still counts as a failover).
    #[serde(default)]
    pub pending_reason: Option<baton_policy::Reason>,
    /// The coordinator's latest explanation of where the group is or goes, and why.
    #[serde(default)]
    pub explanation: String,
}

/// Heartbeat interval and missed-beat threshold for one class of peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatSettings {
    pub delay_ms: u64,
    pub threshold: u32,
}

impl HeartbeatSettings {
    /// Silence after which a peer is suspected: `delay × threshold`.
    pub fn detection_ms(&self) -> u64 {
        self.delay_ms * u64::from(self.threshold)
    }
}

/// Cluster-wide properties settable at run time (`baton cluster set KEY VALUE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterProperties {
    pub same_subnet: HeartbeatSettings,
    pub cross_subnet: HeartbeatSettings,
}

impl Default for ClusterProperties {
    fn default() -> Self {
        Self {
            same_subnet: HeartbeatSettings {
                delay_ms: 100,
                threshold: 5,
            },
            cross_subnet: HeartbeatSettings {
                delay_ms: 1000,
                threshold: 5,
            },
        }
    }
}

/// A one-time join token: only a hash of its secret is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinToken {
    pub secret_hash: String,
    pub expires_ms: u64,
    pub used: bool,
}

/// One line of the cluster's event history ("why did this group move?").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub time_ms: u64,
    pub text: String,
}
