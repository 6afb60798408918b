//! WSFC's time-based rules as pure functions of the input and `now_ms`:
//! restart policy, failover policy, retry period and failback window.

use crate::input::{Failback, GroupStatus, GroupView, ResourceState, ResourceView, RestartMode};
use crate::input::{DAY_MS, MINUTE_MS};
use crate::reason::Reason;
use crate::timefmt::format_utc;

/// What to do about one failed resource on a live owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ResourceStep {
    Restart(Reason),
    /// Restarts are used up and the policy says fail the group over.
    FailOver {
        restart_count: u32,
    },
    /// Nothing now; the text says why or until when.
    Wait(String),
}

/// Retry of a failed group that runs nowhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    Due(Reason),
    At(u64),
    Never,
}

/// Events of `history` inside the period ending now. Timestamps ahead of `now`
/// (another coordinator's clock) count as recent, which errs on the side of
/// fewer automatic actions.
pub(crate) fn count_recent(history: &[u64], period_ms: u64, now_ms: u64) -> u32 {
    let recent = history
        .iter()
        .filter(|&&at| now_ms.saturating_sub(at) < period_ms)
        .count();
    u32::try_from(recent).unwrap_or(u32::MAX)
}

/// `Err` with the reason when one more failover would exceed the failover
/// policy: at most `threshold` (default nodes - 1) failovers in the period.
pub(crate) fn check_failover_budget(
    group: &GroupView,
    now_ms: u64,
    node_count: usize,
) -> Result<(), Reason> {
    let default_threshold = u32::try_from(node_count.saturating_sub(1)).unwrap_or(u32::MAX);
    let threshold = group.failover_threshold.unwrap_or(default_threshold);
    let failover_count = count_recent(&group.failover_history_ms, group.failover_period_ms, now_ms);
    if failover_count < threshold {
        return Ok(());
    }
    Err(Reason::FailoverThresholdExceeded {
        failover_count,
        threshold,
        period_ms: group.failover_period_ms,
    })
}

/// The restart policy for one failed resource: restart in place while the
/// budget lasts; then fail over (mode `restart`, group not already failed) or
/// wait for the retry period.
pub(crate) fn resource_step(
    group: &GroupView,
    resource: &ResourceView,
    now_ms: u64,
) -> ResourceStep {
    let policy = resource.restart;
    if policy.mode == RestartMode::NoRestart {
        return ResourceStep::Wait(format!(
            "resource {} failed; its restart policy is no-restart",
            resource.name
        ));
    }
    let restart_count = count_recent(&resource.restart_history_ms, policy.period_ms, now_ms);
    if restart_count < policy.threshold {
        return ResourceStep::Restart(Reason::RestartInPlace {
            resource: resource.name.clone(),
            attempt: restart_count + 1,
            threshold: policy.threshold,
            period_ms: policy.period_ms,
        });
    }
    if policy.mode == RestartMode::Restart && group.status != GroupStatus::Failed {
        return ResourceStep::FailOver { restart_count };
    }
    match resource.failed_at_ms {
        Some(failed_at) if now_ms >= failed_at.saturating_add(resource.retry_period_ms) => {
            ResourceStep::Restart(Reason::RetryPeriodElapsed {
                resource: resource.name.clone(),
                retry_period_ms: resource.retry_period_ms,
            })
        }
        Some(failed_at) => ResourceStep::Wait(format!(
            "resource {} used up its restarts; retry at {}",
            resource.name,
            format_utc(failed_at.saturating_add(resource.retry_period_ms))
        )),
        None => ResourceStep::Wait(format!(
            "resource {} used up its restarts; no failure time recorded to start its retry period",
            resource.name
        )),
    }
}

/// When a failed group that runs nowhere is tried again: once the retry period
/// of every failed resource has elapsed. Without failed resources (failed by
/// the failover policy alone), only an operator's move starts it.
pub(crate) fn group_retry(group: &GroupView, now_ms: u64) -> Retry {
    let latest = group
        .resources
        .iter()
        .filter(|r| r.state == ResourceState::Failed && r.restart.mode != RestartMode::NoRestart)
        .filter(|r| !r.misconfigured)
        .filter_map(|r| Some((r.failed_at_ms?.saturating_add(r.retry_period_ms), r)))
        .max_by_key(|(due_at, _)| *due_at);
    match latest {
        None => Retry::Never,
        Some((due_at, _)) if now_ms < due_at => Retry::At(due_at),
        Some((_, resource)) => Retry::Due(Reason::RetryPeriodElapsed {
            resource: resource.name.clone(),
            retry_period_ms: resource.retry_period_ms,
        }),
    }
}

/// Whether failback may happen now. A window is daily, in UTC, end exclusive;
/// `start > end` crosses midnight; `start == end` is an empty window.
pub(crate) fn failback_allowed(failback: Failback, now_ms: u64) -> bool {
    match failback {
        Failback::Prevent => false,
        Failback::Immediate => true,
        Failback::Window { start_min, end_min } => {
            let minute = (now_ms % DAY_MS / MINUTE_MS) as u16;
            let (start, end) = (start_min % 1440, end_min % 1440);
            if start <= end {
                start <= minute && minute < end
            } else {
                minute >= start || minute < end
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::HOUR_MS;

    #[test]
    fn window_crossing_midnight() {
        // Checks both sides of midnight and the exclusive end of 22:00-02:00.
        let window = Failback::Window {
            start_min: 22 * 60,
            end_min: 2 * 60,
        };
        let day = 19_723 * DAY_MS;
        assert!(failback_allowed(window, day + 23 * HOUR_MS));
        assert!(failback_allowed(window, day + HOUR_MS));
        assert!(!failback_allowed(window, day + 2 * HOUR_MS));
        assert!(!failback_allowed(window, day + 12 * HOUR_MS));
    }

    #[test]
    fn recent_counts_only_inside_period() {
        // Checks the period is half-open: an event exactly one period ago is out.
        assert_eq!(count_recent(&[0, 50, 100], 100, 100), 2);
        assert_eq!(count_recent(&[150], 100, 100), 1);
    }
}
