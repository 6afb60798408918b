//! The policy's input: a value snapshot of membership, configuration and status.
//!
//! Every type here is plain data with public fields so that the coordinator can
//! build it from the cluster database and a scenario file can spell it out in TOML.
//! Optional things have `#[serde(default)]` so scenarios stay short.

use serde::{Deserialize, Serialize};

use crate::deps::DepExpr;
use crate::reason::Reason;

pub const SECOND_MS: u64 = 1_000;
pub const MINUTE_MS: u64 = 60 * SECOND_MS;
pub const HOUR_MS: u64 = 60 * MINUTE_MS;
pub const DAY_MS: u64 = 24 * HOUR_MS;

/// WSFC default: restart in place once in 15 minutes, then fail over.
pub const RESTART_THRESHOLD_DEFAULT: u32 = 1;
pub const RESTART_PERIOD_MS_DEFAULT: u64 = 15 * MINUTE_MS;
/// WSFC default: a failed resource whose restarts are used up is tried again after an hour.
pub const RETRY_PERIOD_MS_DEFAULT: u64 = 60 * MINUTE_MS;
/// WSFC default: at most nodes - 1 failovers in 6 hours.
pub const FAILOVER_PERIOD_MS_DEFAULT: u64 = 6 * HOUR_MS;

/// Everything `plan` looks at. Time enters only as `now_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanInput {
    /// The coordinator's clock, Unix milliseconds (UTC).
    pub now_ms: u64,
    #[serde(default)]
    pub nodes: Vec<NodeView>,
    #[serde(default)]
    pub groups: Vec<GroupView>,
    #[serde(default)]
    pub options: PlanOptions,
}

/// Knobs of one planning round.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanOptions {
    /// Bound on `Place` actions per plan, so a mass failover starts in waves
    /// (higher priority first). `None` = unbounded.
    #[serde(default)]
    pub place_count_max: Option<u32>,
}

/// One node as membership sees it. A node's load (number of groups assigned to
/// it) is derived by the policy from the groups, never taken from the input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeView {
    pub id: u64,
    pub name: String,
    pub state: NodeState,
    /// Meaningful for `Down`: the coordinator has proven the node can no longer
    /// run anything (its lease expired, or it was fenced).
    #[serde(default)]
    pub lease_expired: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    Up,
    Down,
    /// Administratively paused: runs what it has, takes nothing new, drains.
    Paused,
    /// Joining the cluster: not yet a placement target.
    Joining,
}

/// One group (role) with its configuration and observed status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupView {
    pub name: String,
    /// Ordered: the first is the most preferred.
    #[serde(default)]
    pub preferred_owners: Vec<u64>,
    #[serde(default)]
    pub desired: Desired,
    /// The node the coordinator last assigned the group to, if any.
    #[serde(default)]
    pub assignment: Option<Assignment>,
    /// The highest generation ever assigned. It survives the clearing of an
    /// assignment, so a new `Place` never reuses a generation.
    #[serde(default)]
    pub generation: u64,
    #[serde(default)]
    pub status: GroupStatus,
    /// An operator's move, kept until a `Place` or `RejectMove` answers it.
    #[serde(default)]
    pub move_request: Option<MoveRequest>,
    /// Set by the executor from a `Release` that names a target: where the group
    /// goes once its owner reports it offline, and why. Cleared on `Place`.
    #[serde(default)]
    pub pending_move: Option<PendingMove>,
    #[serde(default)]
    pub priority: Priority,
    /// `None` = number of nodes - 1 (WSFC default).
    #[serde(default)]
    pub failover_threshold: Option<u32>,
    #[serde(default = "failover_period_ms_default")]
    pub failover_period_ms: u64,
    /// Unix ms of past failovers; the executor appends one for every `Place`
    /// whose reason is a failover.
    #[serde(default)]
    pub failover_history_ms: Vec<u64>,
    #[serde(default)]
    pub failback: Failback,
    /// Anti-affinity class names: groups sharing a class avoid sharing a node.
    #[serde(default)]
    pub anti_affinity: Vec<String>,
    /// In configuration order; `start_order` gives the dependency order.
    #[serde(default)]
    pub resources: Vec<ResourceView>,
    #[serde(default)]
    pub failed_reason: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Desired {
    #[default]
    Online,
    Offline,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    pub node: u64,
    pub generation: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupStatus {
    #[default]
    Offline,
    Pending,
    Online,
    Stopping,
    Failed,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    /// `None` = the best node other than the current owner.
    #[serde(default)]
    pub target: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingMove {
    pub target: u64,
    pub reason: Reason,
}

/// Placement order: `High` groups are placed first. `NoAutoStart` groups are
/// never started or failed over automatically after a failure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    High,
    #[default]
    Medium,
    Low,
    NoAutoStart,
}

/// Whether a group moves back to a more preferred owner that is up again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failback {
    #[default]
    Prevent,
    Immediate,
    /// Daily window in minutes after midnight UTC; `start_min > end_min`
    /// crosses midnight. The end is exclusive.
    Window {
        start_min: u16,
        end_min: u16,
    },
}

/// One resource of a group with its configuration and observed state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceView {
    pub name: String,
    /// `None` = every node may run it.
    #[serde(default)]
    pub possible_owners: Option<Vec<u64>>,
    /// In a scenario file a string such as `"ip1 or ip2"`.
    #[serde(default)]
    pub depends_on: Option<DepExpr>,
    #[serde(default)]
    pub state: ResourceState,
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Unix ms of past restarts in place.
    #[serde(default)]
    pub restart_history_ms: Vec<u64>,
    #[serde(default = "retry_period_ms_default")]
    pub retry_period_ms: u64,
    /// When the resource last failed; starts its retry period.
    #[serde(default)]
    pub failed_at_ms: Option<u64>,
    /// The agent said the configuration is invalid (OCF_ERR_CONFIGURED): neither a restart
    /// nor another node can help, so the group fails until an operator fixes it.
    #[serde(default)]
    pub misconfigured: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceState {
    #[default]
    Offline,
    OnlinePending,
    Online,
    OfflinePending,
    Failed,
}

/// Restart in place up to `threshold` times in `period_ms`, then act by `mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicy {
    #[serde(default)]
    pub mode: RestartMode,
    #[serde(default = "restart_threshold_default")]
    pub threshold: u32,
    #[serde(default = "restart_period_ms_default")]
    pub period_ms: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartMode {
    /// Restart in place, then fail the group over.
    #[default]
    Restart,
    /// Leave the resource failed.
    NoRestart,
    /// Restart in place, then leave it failed (retried after the retry period)
    /// without moving the group.
    RestartNoFailover,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            mode: RestartMode::Restart,
            threshold: RESTART_THRESHOLD_DEFAULT,
            period_ms: RESTART_PERIOD_MS_DEFAULT,
        }
    }
}

fn failover_period_ms_default() -> u64 {
    FAILOVER_PERIOD_MS_DEFAULT
}

fn retry_period_ms_default() -> u64 {
    RETRY_PERIOD_MS_DEFAULT
}

fn restart_threshold_default() -> u32 {
    RESTART_THRESHOLD_DEFAULT
}

fn restart_period_ms_default() -> u64 {
    RESTART_PERIOD_MS_DEFAULT
}

impl GroupView {
    /// A group with defaults for everything but its name, for tests and generators.
    pub fn new(name: impl Into<String>) -> GroupView {
        GroupView {
            name: name.into(),
            preferred_owners: Vec::new(),
            desired: Desired::Online,
            assignment: None,
            generation: 0,
            status: GroupStatus::Offline,
            move_request: None,
            pending_move: None,
            priority: Priority::Medium,
            failover_threshold: None,
            failover_period_ms: FAILOVER_PERIOD_MS_DEFAULT,
            failover_history_ms: Vec::new(),
            failback: Failback::Prevent,
            anti_affinity: Vec::new(),
            resources: Vec::new(),
            failed_reason: None,
        }
    }

    /// The generation the next `Place` must carry: above every one issued.
    pub fn next_generation(&self) -> u64 {
        let assigned = self
            .assignment
            .map_or(0, |assignment| assignment.generation);
        self.generation.max(assigned) + 1
    }
}

impl ResourceView {
    /// A resource with defaults for everything but its name.
    pub fn new(name: impl Into<String>) -> ResourceView {
        ResourceView {
            name: name.into(),
            possible_owners: None,
            depends_on: None,
            state: ResourceState::Offline,
            restart: RestartPolicy::default(),
            restart_history_ms: Vec::new(),
            retry_period_ms: RETRY_PERIOD_MS_DEFAULT,
            failed_at_ms: None,
            misconfigured: false,
        }
    }

    pub fn may_run_on(&self, node: u64) -> bool {
        self.possible_owners
            .as_ref()
            .is_none_or(|owners| owners.contains(&node))
    }
}
