//! Resources and the WSFC policies of resources and groups, as the cluster database stores
//! them. Every field added after the first release has `#[serde(default)]`, so older log
//! entries and snapshots keep decoding.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::types::NodeId;

pub const SECOND_MS: u64 = 1_000;
pub const MINUTE_MS: u64 = 60 * SECOND_MS;
pub const HOUR_MS: u64 = 60 * MINUTE_MS;

/// WSFC defaults (see `../shared/DESIGN.md` §4).
pub const LOOKS_ALIVE_MS_DEFAULT: u64 = 5 * SECOND_MS;
pub const IS_ALIVE_MS_DEFAULT: u64 = 60 * SECOND_MS;
pub const PENDING_TIMEOUT_MS_DEFAULT: u64 = 3 * MINUTE_MS;
pub const RESTART_THRESHOLD_DEFAULT: u32 = 1;
pub const RESTART_PERIOD_MS_DEFAULT: u64 = 15 * MINUTE_MS;
pub const RETRY_PERIOD_MS_DEFAULT: u64 = 60 * MINUTE_MS;
pub const FAILOVER_PERIOD_MS_DEFAULT: u64 = 6 * HOUR_MS;
/// How many past restarts in place a resource remembers.
pub const RESTART_HISTORY_MAX: usize = 64;

/// The agent that manages a resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResourceType {
    /// A generic application: `command` run by `/bin/sh -c`.
    Process,
    /// An OCF resource agent: `$OCF_ROOT/resource.d/<provider>/<agent>` (`ocf:heartbeat:Dummy`).
    Ocf { provider: String, agent: String },
    /// A systemd unit, through `systemctl`.
    Systemd,
}

/// Parameters of the `process` type besides `env.NAME` ones.
pub const PROCESS_REQUIRED: &[&str] = &["command"];
pub const PROCESS_OPTIONAL: &[&str] = &[
    "args",
    "cwd",
    "user",
    "stop_timeout",
    "check",
    "check_tcp",
    "check_http",
];
pub const SYSTEMD_REQUIRED: &[&str] = &["unit"];

impl ResourceType {
    /// `process`, `systemd` or `ocf:PROVIDER:AGENT`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "process" => return Some(Self::Process),
            "systemd" => return Some(Self::Systemd),
            _ => {}
        }
        let mut parts = text.split(':');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("ocf"), Some(provider), Some(agent), None)
                if is_path_word(provider) && is_path_word(agent) =>
            {
                Some(Self::Ocf {
                    provider: provider.to_string(),
                    agent: agent.to_string(),
                })
            }
            _ => None,
        }
    }

    pub fn name(&self) -> String {
        match self {
            Self::Process => "process".to_string(),
            Self::Systemd => "systemd".to_string(),
            Self::Ocf { provider, agent } => format!("ocf:{provider}:{agent}"),
        }
    }

    /// Parameters this type requires and those it accepts besides, when the model knows them.
    /// `None` for OCF agents: their meta-data says, and only a node can run it.
    pub fn parameters(&self) -> Option<(&'static [&'static str], &'static [&'static str])> {
        match self {
            Self::Process => Some((PROCESS_REQUIRED, PROCESS_OPTIONAL)),
            Self::Systemd => Some((SYSTEMD_REQUIRED, &[])),
            Self::Ocf { .. } => None,
        }
    }
}

/// A provider or agent name becomes a path component: no separators, no dot-dot.
fn is_path_word(word: &str) -> bool {
    !word.is_empty()
        && word != "."
        && word != ".."
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// One managed thing inside a group: its configuration and its last reported status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    pub name: String,
    pub group: String,
    pub resource_type: ResourceType,
    /// Type parameters; `env.NAME` keys become environment variables of a process.
    pub params: BTreeMap<String, String>,
    #[serde(default)]
    pub policy: ResourcePolicy,
    #[serde(default)]
    pub status: ResourceStatus,
}

/// Health checks, timeouts, restart policy, possible owners and dependencies of a resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourcePolicy {
    /// Cheap health check interval (a process: is it alive; OCF: monitor, check level 0).
    pub looks_alive_ms: u64,
    /// Thorough health check interval (a process: its check; OCF: monitor, check level 10).
    pub is_alive_ms: u64,
    /// Longest an agent call (start, stop, check) may take before it is killed and the
    /// resource marked failed.
    pub pending_timeout_ms: u64,
    pub restart: RestartPolicy,
    /// A failed resource whose restarts are used up is tried again after this long.
    pub retry_period_ms: u64,
    /// `None`: every node may run it.
    pub possible_owners: Option<Vec<NodeId>>,
    /// A dependency expression over resources of the same group, e.g. `a and (b or c)`,
    /// normalized by `baton_policy::DepExpr`.
    pub depends_on: Option<String>,
}

impl Default for ResourcePolicy {
    fn default() -> Self {
        Self {
            looks_alive_ms: LOOKS_ALIVE_MS_DEFAULT,
            is_alive_ms: IS_ALIVE_MS_DEFAULT,
            pending_timeout_ms: PENDING_TIMEOUT_MS_DEFAULT,
            restart: RestartPolicy::default(),
            retry_period_ms: RETRY_PERIOD_MS_DEFAULT,
            possible_owners: None,
            depends_on: None,
        }
    }
}

/// Restart in place up to `threshold` times in `period_ms`, then act by `mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    pub mode: RestartMode,
    pub threshold: u32,
    pub period_ms: u64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            mode: RestartMode::Restart,
            threshold: RESTART_THRESHOLD_DEFAULT,
            period_ms: RESTART_PERIOD_MS_DEFAULT,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartMode {
    /// Restart in place, then fail the group over.
    Restart,
    /// Leave the resource failed.
    Never,
    /// Restart in place, then leave it failed (retried after the retry period).
    NoFailover,
}

/// The states of a resource (WSFC's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResourceState {
    #[default]
    Offline,
    OnlinePending,
    Online,
    OfflinePending,
    Failed,
}

/// What the owner last reported about a resource, and the failure bookkeeping the policy
/// reads. Reset when its group is placed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourceStatus {
    pub state: ResourceState,
    /// Why it failed (an OCF `ocf-exit-reason:`, an exit code, a timeout), or what it waits for.
    pub message: String,
    /// The agent said the configuration is wrong (OCF_ERR_CONFIGURED): no node can run it.
    pub misconfigured: bool,
    /// Unix ms of the last transition to `Failed`: starts the retry period.
    pub failed_at_ms: Option<u64>,
    /// Unix ms of restarts in place asked by the coordinator.
    pub restart_history_ms: Vec<u64>,
    /// Counts restart requests; the owner restarts when it sees a number it has not acted on.
    pub restart_requests: u64,
}

/// Placement order and what happens after a failure. `NoAutoStart` groups are never started
/// or failed over automatically after a failure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Priority {
    High,
    #[default]
    Medium,
    Low,
    NoAutoStart,
}

/// Whether a group moves back to a more preferred owner that is up again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Failback {
    #[default]
    Prevent,
    Immediate,
    /// A daily window in minutes after midnight UTC, end exclusive; start > end crosses midnight.
    Window {
        start_min: u16,
        end_min: u16,
    },
}

/// The failover policy, failback, priority and anti-affinity of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupPolicy {
    /// At most this many failovers in `failover_period_ms`; `None` = nodes - 1.
    pub failover_threshold: Option<u32>,
    pub failover_period_ms: u64,
    pub failback: Failback,
    pub priority: Priority,
    /// Groups sharing a class avoid sharing a node when another node can take them.
    pub anti_affinity: Vec<String>,
}

impl Default for GroupPolicy {
    fn default() -> Self {
        Self {
            failover_threshold: None,
            failover_period_ms: FAILOVER_PERIOD_MS_DEFAULT,
            failback: Failback::Prevent,
            priority: Priority::Medium,
            anti_affinity: Vec::new(),
        }
    }
}

/// One change of `baton resource set`; the command carries them typed (see `settings`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResourceSetting {
    LooksAliveMs(u64),
    IsAliveMs(u64),
    PendingTimeoutMs(u64),
    Restart(RestartPolicy),
    RetryPeriodMs(u64),
    PossibleOwners(Option<Vec<NodeId>>),
    /// A type parameter; `None` removes it.
    Param {
        key: String,
        value: Option<String>,
    },
}

/// One change of `baton group set`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupSetting {
    FailoverThreshold(Option<u32>),
    FailoverPeriodMs(u64),
    Failback(Failback),
    Priority(Priority),
    AntiAffinity(Vec<String>),
    PreferredOwners(Vec<NodeId>),
}

impl Resource {
    /// Applies settings to a copy; validation checks the result as a whole.
    pub fn with_settings(&self, settings: &[ResourceSetting]) -> Resource {
        let mut next = self.clone();
        for setting in settings {
            let policy = &mut next.policy;
            match setting {
                ResourceSetting::LooksAliveMs(ms) => policy.looks_alive_ms = *ms,
                ResourceSetting::IsAliveMs(ms) => policy.is_alive_ms = *ms,
                ResourceSetting::PendingTimeoutMs(ms) => policy.pending_timeout_ms = *ms,
                ResourceSetting::Restart(restart) => policy.restart = *restart,
                ResourceSetting::RetryPeriodMs(ms) => policy.retry_period_ms = *ms,
                ResourceSetting::PossibleOwners(owners) => policy.possible_owners = owners.clone(),
                ResourceSetting::Param {
                    key,
                    value: Some(value),
                } => {
                    next.params.insert(key.clone(), value.clone());
                }
                ResourceSetting::Param { key, value: None } => {
                    next.params.remove(key);
                }
            }
        }
        next
    }
}
