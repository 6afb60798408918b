//! Why the policy did something: every action carries a `Reason`, every
//! rejected node a `Rejection`, so an operator can ask "why did this group move?"
//! and read the answer. Nodes appear by name because the text is for people;
//! the actions themselves carry node ids.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::input::Failback;
use crate::timefmt::{format_duration, format_minute_of_day};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Desired online and running nowhere.
    Start,
    /// The owner is down and proven stopped (lease expired or fenced).
    OwnerLost {
        node: String,
    },
    /// Placed elsewhere because its owner was lost.
    FailoverOwnerLost {
        node: String,
    },
    /// Moved because a resource used up its restarts in place.
    FailoverRestartsExhausted {
        resource: String,
        node: String,
        restart_count: u32,
        period_ms: u64,
    },
    /// Too many failovers in the failover period: the group stays failed.
    FailoverThresholdExceeded {
        failover_count: u32,
        threshold: u32,
        period_ms: u64,
    },
    /// A resource used up its restarts and no other node can run the group.
    FailoverNoNode {
        resource: String,
    },
    /// A no-auto-start group is never started again after a failure.
    NoAutoStartAfterFailure,
    /// A resource's configuration is invalid: no restart nor other node can help.
    Misconfigured {
        resource: String,
    },
    RestartInPlace {
        resource: String,
        attempt: u32,
        threshold: u32,
        period_ms: u64,
    },
    /// A failed resource whose restarts were used up is tried again.
    RetryPeriodElapsed {
        resource: String,
        retry_period_ms: u64,
    },
    /// An operator moved the group; `None` = to the best other node.
    MoveRequested {
        target: Option<String>,
    },
    MoveAlreadyOnTarget {
        node: String,
    },
    MoveTargetRejected {
        node: String,
        rejection: Rejection,
    },
    MoveTargetUnknown {
        node: u64,
    },
    MoveNoOtherNode,
    DesiredOffline,
    /// The owner is paused, so its groups move away.
    Drain {
        node: String,
    },
    /// Back to a more preferred owner.
    Failback {
        node: String,
        failback: Failback,
    },
}

/// Why a node cannot take a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    NodeDown,
    NodePaused,
    NodeJoining,
    NotPossibleOwner {
        resource: String,
    },
    /// The group is moving away from this node.
    CurrentOwner,
    /// The node id is not a member of the cluster.
    UnknownNode,
}

/// An anti-affinity clash: another group of a shared class is on the node.
/// Soft, as in WSFC: such a node is avoided while another one can be had.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    pub group: String,
    pub class: String,
}

impl Reason {
    /// Whether a `Place` with this reason counts against the failover policy;
    /// the executor appends `now_ms` to `failover_history_ms` for those.
    pub fn is_failover(&self) -> bool {
        matches!(
            self,
            Reason::FailoverOwnerLost { .. } | Reason::FailoverRestartsExhausted { .. }
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Start => f.write_str("desired online and not running on any node"),
            Reason::OwnerLost { node } => {
                write!(f, "lease of {node} expired: it can no longer run the group")
            }
            Reason::FailoverOwnerLost { node } => write!(f, "failover: lease of {node} expired"),
            Reason::FailoverRestartsExhausted {
                resource,
                node,
                restart_count,
                period_ms,
            } => {
                write!(
                    f,
                    "failover: resource {resource} failed on {node} after {restart_count} \
                     restart(s) in {}",
                    format_duration(*period_ms)
                )
            }
            Reason::FailoverThresholdExceeded {
                failover_count,
                threshold,
                period_ms,
            } => write!(
                f,
                "{failover_count} failover(s) in the last {} reached the failover threshold \
                 {threshold}: the group stays failed",
                format_duration(*period_ms)
            ),
            Reason::FailoverNoNode { resource } => write!(
                f,
                "resource {resource} used up its restarts and no other node can run the group"
            ),
            Reason::NoAutoStartAfterFailure => {
                f.write_str("priority no-auto-start: not started again after a failure")
            }
            Reason::Misconfigured { resource } => write!(
                f,
                "resource {resource} is misconfigured: no restart or other node can help; \
                 fix its parameters, then bring the group online again"
            ),
            Reason::RestartInPlace {
                resource,
                attempt,
                threshold,
                period_ms,
            } => write!(
                f,
                "resource {resource} failed: restart {attempt} of {threshold} in {}",
                format_duration(*period_ms)
            ),
            Reason::RetryPeriodElapsed {
                resource,
                retry_period_ms,
            } => write!(
                f,
                "retry period of {} elapsed since resource {resource} failed",
                format_duration(*retry_period_ms)
            ),
            Reason::MoveRequested { .. }
            | Reason::MoveAlreadyOnTarget { .. }
            | Reason::MoveTargetRejected { .. }
            | Reason::MoveTargetUnknown { .. }
            | Reason::MoveNoOtherNode
            | Reason::DesiredOffline
            | Reason::Drain { .. }
            | Reason::Failback { .. } => fmt_move_reason(self, f),
        }
    }
}

/// The operator- and node-driven half of `Reason`'s text.
fn fmt_move_reason(reason: &Reason, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match reason {
        Reason::MoveRequested { target: Some(node) } => {
            write!(f, "operator moved the group to {node}")
        }
        Reason::MoveRequested { target: None } => {
            f.write_str("operator moved the group to the best other node")
        }
        Reason::MoveAlreadyOnTarget { node } => write!(f, "move done: already on {node}"),
        Reason::MoveTargetRejected { node, rejection } => {
            write!(f, "move to {node} rejected: {rejection}")
        }
        Reason::MoveTargetUnknown { node } => {
            write!(f, "move rejected: node id {node} is not a cluster member")
        }
        Reason::MoveNoOtherNode => f.write_str("move rejected: no other node can run the group"),
        Reason::DesiredOffline => f.write_str("desired offline"),
        Reason::Drain { node } => write!(f, "{node} is paused: draining"),
        Reason::Failback { node, failback } => {
            write!(
                f,
                "failback to preferred owner {node} ({})",
                FailbackText(failback)
            )
        }
        // `Reason::fmt` routes only the variants above here; its match is exhaustive.
        _ => write!(f, "{reason:?}"),
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::NodeDown => f.write_str("node is down"),
            Rejection::NodePaused => f.write_str("node is paused"),
            Rejection::NodeJoining => f.write_str("node is still joining"),
            Rejection::NotPossibleOwner { resource } => {
                write!(f, "not a possible owner of resource {resource}")
            }
            Rejection::CurrentOwner => f.write_str("the group is moving away from this node"),
            Rejection::UnknownNode => f.write_str("not a cluster member"),
        }
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "anti-affinity with {} (class {})",
            self.group, self.class
        )
    }
}

/// `Failback` as words: "immediate", "window 22:00-02:00 UTC".
pub struct FailbackText<'a>(pub &'a Failback);

impl fmt::Display for FailbackText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Failback::Prevent => f.write_str("prevent"),
            Failback::Immediate => f.write_str("immediate"),
            Failback::Window { start_min, end_min } => write!(
                f,
                "window {}-{} UTC",
                format_minute_of_day(*start_min),
                format_minute_of_day(*end_min)
            ),
        }
    }
}
