//! The cluster database's global updates. Numbered and append-only: a variant is never removed
//! nor reordered, because old log entries and snapshots must keep decoding.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::resource::{GroupSetting, ResourceSetting, ResourceState, ResourceType};
use crate::types::{ClusterProperties, Desired, GroupStatus, NodeId};

/// One global update. IDs and timestamps are made before proposing, so `apply` is deterministic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// 1. The first node creates the cluster.
    Initialize {
        cluster_name: String,
        admin_token_hash: String,
        node_name: String,
        addr: String,
    },
    /// 2. A one-time join token (only its secret's hash is stored).
    CreateJoinToken {
        token_id: String,
        secret_hash: String,
        expires_ms: u64,
    },
    /// 3. A node joins with a token; the state assigns its id.
    JoinNode {
        token_id: String,
        secret_hash: String,
        name: Option<String>,
        addr: String,
    },
    /// 4. The coordinator heard a node that was joining or down.
    NodeUp { node: NodeId },
    /// 5. A majority stopped hearing the node and stopped renewing its lease.
    NodeDown { node: NodeId, reason: String },
    /// 6. `baton node pause N [--drain]`.
    PauseNode { node: NodeId, drain: bool },
    /// 7. `baton node resume N`.
    ResumeNode { node: NodeId },
    /// 8. `baton node evict N`.
    EvictNode { node: NodeId },
    /// 9. `baton cluster set`.
    SetProperties { properties: ClusterProperties },
    /// 10. `baton group create`.
    CreateGroup {
        name: String,
        preferred_owners: Vec<NodeId>,
    },
    /// 11. `baton group delete` (also deletes its resources).
    DeleteGroup { name: String },
    /// 12. `baton group online|offline`.
    SetGroupDesired { group: String, desired: Desired },
    /// 13. `baton group move [--to N]`.
    RequestMove {
        group: String,
        target: Option<NodeId>,
    },
    /// 14. Coordinator: bring the group online on `node` with a new generation; `failover`
    /// counts it against the group's failover policy.
    PlaceGroup {
        group: String,
        node: NodeId,
        generation: u64,
        reason: String,
        failover: bool,
    },
    /// 15. Coordinator: ask the owner to take the group offline; `target` is where the group
    /// goes next, remembered until it is placed.
    ReleaseGroup {
        group: String,
        generation: u64,
        target: Option<NodeId>,
        reason: String,
        /// The policy's reason, kept for the placement on `target` (added with command 22).
        #[serde(default)]
        pending_reason: Option<baton_policy::Reason>,
    },
    /// 16. Owner: the group is offline on `node` for `generation`; its assignment ends.
    GroupStopped {
        group: String,
        node: NodeId,
        generation: u64,
    },
    /// 17. Owner: status of the group for `generation`.
    ReportGroupStatus {
        group: String,
        node: NodeId,
        generation: u64,
        status: GroupStatus,
        message: String,
    },
    /// 18. `baton resource create`.
    CreateResource {
        name: String,
        group: String,
        resource_type: ResourceType,
        params: BTreeMap<String, String>,
    },
    /// 19. `baton resource delete`.
    DeleteResource { name: String },
    /// 20. Coordinator: the group cannot be placed; it stays failed and says why.
    FailGroup { group: String, reason: String },
    /// 21. Coordinator: a move request cannot be carried out; it is dropped with the reason.
    RejectMove { group: String, reason: String },
    /// 22. `baton resource set R key=value...`: health checks, timeouts, restart policy,
    ///     possible owners, type parameters.
    SetResource {
        name: String,
        settings: Vec<ResourceSetting>,
    },
    /// 23. `baton resource depend R EXPR`: `None` (or an empty expression) removes them.
    SetDependencies {
        resource: String,
        expression: Option<String>,
    },
    /// 24. `baton group set G key=value...`: failover policy, failback, priority,
    ///     anti-affinity, preferred owners.
    SetGroup {
        name: String,
        settings: Vec<GroupSetting>,
    },
    /// 25. Owner: the state of one resource of a group it runs for `generation`.
    ReportResourceState {
        resource: String,
        node: NodeId,
        generation: u64,
        state: ResourceState,
        message: String,
        misconfigured: bool,
    },
    /// 26. Coordinator: restart a failed resource in place on its owner; appends to its
    ///     restart history. Only applies to a resource that is failed.
    RestartResource {
        resource: String,
        node: NodeId,
        generation: u64,
        reason: String,
    },
    /// 27. Coordinator: forget the assignment to a lost owner (down, lease expired).
    ClearAssignment {
        group: String,
        node: NodeId,
        generation: u64,
        reason: String,
    },
    /// 28. Coordinator: the plan's explanation of where the group is or goes, and why.
    ExplainGroup { group: String, text: String },
}

/// A command together with the proposer's wall clock, the only time `apply` may use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    pub now_ms: u64,
    pub command: Command,
}

/// What applying an update produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum CommandResult {
    #[default]
    Ok,
    Joined {
        node: NodeId,
        name: String,
    },
    /// The command was valid when proposed but not any more when applied; nothing changed.
    Rejected {
        reason: String,
    },
}
