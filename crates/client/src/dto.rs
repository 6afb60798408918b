//! Wire types of the public REST API (`/api/v1`). They are a compatibility promise, kept
//! apart from the cluster database's types on purpose: the daemon converts between them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `GET /api/v1/cluster`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub name: String,
    /// The node answering.
    pub node: String,
    /// The coordinator (Raft leader) as the answering node knows it.
    pub coordinator: Option<String>,
    pub has_quorum: bool,
    pub votes_up: u32,
    pub votes_total: u32,
    pub properties: BTreeMap<String, String>,
}

/// `GET /api/v1/nodes` items.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: u64,
    pub name: String,
    pub addr: String,
    /// Up, Down, Paused or Joining.
    pub state: String,
    pub votes: u32,
    /// Groups this node owns.
    pub groups: Vec<String>,
    pub is_coordinator: bool,
}

/// `GET /api/v1/groups` items and `GET /api/v1/groups/{name}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub name: String,
    pub preferred_owners: Vec<String>,
    /// Online or Offline: what the operator asked for.
    pub desired: String,
    pub owner: Option<String>,
    pub generation: u64,
    /// Offline, Pending, Online, Stopping or Failed.
    pub status: String,
    pub status_message: String,
    /// Why the group is where it is (its last placement decision).
    pub last_reason: String,
    pub resources: Vec<String>,
    /// Failovers inside the failover period.
    pub failovers_recent: usize,
    /// The coordinator's latest word on where the group is or goes, and why.
    #[serde(default)]
    pub explanation: String,
    /// Failover policy, failback, priority, anti-affinity, in `baton group set` syntax.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Each resource's state: `Online`, or `Failed: why`.
    #[serde(default)]
    pub resource_states: BTreeMap<String, String>,
}

/// `GET /api/v1/resources` items and `GET /api/v1/resources/{name}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceInfo {
    pub name: String,
    pub group: String,
    pub resource_type: String,
    pub params: BTreeMap<String, String>,
    pub owner: Option<String>,
    /// The group's status.
    pub status: String,
    /// The resource's own state: Offline, OnlinePending, Online, OfflinePending or Failed.
    #[serde(default)]
    pub state: String,
    /// Why it failed, or what it waits for.
    #[serde(default)]
    pub status_message: String,
    #[serde(default)]
    pub misconfigured: bool,
    /// The dependency expression, e.g. `ip and (disk1 or disk2)`.
    #[serde(default)]
    pub depends_on: Option<String>,
    /// Health checks, timeouts, restart policy, possible owners, in `baton resource set`
    /// syntax.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Restarts in place inside the restart period.
    #[serde(default)]
    pub restarts_recent: usize,
}

/// `PUT /api/v1/resources/{name}`: `key=value` settings (`looks_alive`, `restart`,
/// `param.NAME`...), or `PUT /api/v1/groups/{name}` (`failback`, `priority`...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetSettings {
    pub settings: BTreeMap<String, String>,
}

/// `PUT /api/v1/resources/{name}/dependencies`: an expression such as `a and (b or c)`;
/// empty removes them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetDependencies {
    pub expression: String,
}

/// `GET /api/v1/resource-types` items.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceTypeSummary {
    /// `process`, `systemd` or `ocf:PROVIDER:AGENT`.
    pub name: String,
    pub description: String,
}

/// `GET /api/v1/resource-types/{name}`: the type's parameters (for OCF agents, from their
/// meta-data on the answering node).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceTypeInfo {
    pub name: String,
    pub description: String,
    pub long_description: String,
    pub parameters: Vec<ParameterDto>,
    pub actions: Vec<String>,
    /// The node whose agent answered.
    pub node: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParameterDto {
    pub name: String,
    pub required: bool,
    pub unique: bool,
    pub description: String,
    pub content_type: String,
    pub default: Option<String>,
}

/// `GET /api/v1/events` items, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInfo {
    pub time_ms: u64,
    pub text: String,
}

/// `POST /api/v1/groups`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateGroup {
    pub name: String,
    /// Node names, most preferred first.
    #[serde(default)]
    pub preferred_owners: Vec<String>,
}

/// `POST /api/v1/groups/{name}/move`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveGroup {
    /// A node name; none: the best other node.
    pub to: Option<String>,
}

/// `POST /api/v1/resources`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateResource {
    pub name: String,
    pub group: String,
    pub resource_type: String,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// `POST /api/v1/nodes/{name}/pause`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseNode {
    #[serde(default)]
    pub drain: bool,
}

/// `PUT /api/v1/cluster/properties`: keys such as `heartbeat.same_subnet.delay`
/// (a duration like `100ms`) or `heartbeat.same_subnet.threshold` (a count).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetProperties {
    pub properties: BTreeMap<String, String>,
}

/// `POST /api/v1/join-tokens`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateJoinToken {
    pub ttl_s: u64,
}

/// The answer to `POST /api/v1/join-tokens`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinTokenInfo {
    /// `<id>.<secret>.<CA fingerprint>`: single use, expiring.
    pub token: String,
    pub expires_ms: u64,
}

/// Every error answer: a message naming the problem and the fix, and the field if any.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
    #[serde(default)]
    pub field: Option<String>,
}

/// `POST /join` (unauthenticated but for the token): a new node asks to join.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub token_id: String,
    pub secret: String,
    pub name: Option<String>,
    /// The joining node's `ip:port`.
    pub addr: String,
}

/// What a joining node receives: its identity and the cluster's keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinResponse {
    pub cluster_name: String,
    pub node_id: u64,
    pub node_name: String,
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub node_cert_pem: String,
    pub node_key_pem: String,
    pub heartbeat_key_hex: String,
    pub admin_token: String,
    /// `ip:port` of every member, for the client configuration.
    pub endpoints: Vec<String>,
}
