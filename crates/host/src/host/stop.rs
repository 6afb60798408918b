//! Stopping resources: SIGTERM to the process group, SIGKILL after the grace
//! period, done when the leader is reaped and the group is empty.

use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use super::state::{Proc, Shared, State};
use super::sys;

/// How long to wait for SIGKILLed processes to be reaped.
const KILL_WAIT: Duration = Duration::from_millis(1500);

/// What to stop.
pub struct Targets {
    /// (resource, leader) pairs, as they were when the request came.
    pub resources: Vec<(String, Proc)>,
    /// Also everything else below the host (stop_all): processes that left
    /// their resource's group must not survive either.
    pub everything: bool,
}

/// Stops the targets; blocks for up to `grace` plus the SIGKILL wait.
pub fn stop(shared: &Shared, targets: &Targets, grace: Duration) -> Result<(), String> {
    let mut state = shared.lock();
    signal(&state, targets, libc::SIGTERM);
    state = wait_gone(shared, state, targets, grace);
    if !all_gone(&state, targets) {
        signal(&state, targets, libc::SIGKILL);
        state = wait_gone(shared, state, targets, KILL_WAIT);
    }
    let resources = targets.resources.iter();
    let stuck: Vec<&str> = resources
        .filter(|(name, proc)| state.is_running(name, proc.pid))
        .map(|(name, _)| name.as_str())
        .collect();
    match stuck.is_empty() {
        true => Ok(()),
        false => Err(format!("still running after sigkill: {}", stuck.join(", "))),
    }
}

fn signal(state: &State, targets: &Targets, signal: libc::c_int) {
    for (name, proc) in &targets.resources {
        // A group whose leader is reaped is only signalled while it still
        // has members, which keep its id from being reused.
        if !gone(state, name, proc) {
            sys::signal_group(proc.pid, signal);
        }
    }
    if targets.everything {
        sys::signal_descendants(signal);
    }
}

/// The leader is reaped and nothing is left in its process group. An adopted leader is
/// reaped by someone else (or stays a zombie), so only live members count.
fn gone(state: &State, resource: &str, proc: &Proc) -> bool {
    let members = match proc.adopted {
        true => sys::group_has_live_members(proc.pid),
        false => sys::group_exists(proc.pid),
    };
    !state.is_running(resource, proc.pid) && !members
}

fn all_gone(state: &State, targets: &Targets) -> bool {
    let mut resources = targets.resources.iter();
    resources.all(|(name, proc)| gone(state, name, proc))
        && (!targets.everything || sys::live_descendants().is_empty())
}

fn wait_gone<'a>(
    shared: &'a Shared,
    mut state: MutexGuard<'a, State>,
    targets: &Targets,
    limit: Duration,
) -> MutexGuard<'a, State> {
    let until = Instant::now() + limit;
    while !all_gone(&state, targets) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        state = shared.wait(state, left);
    }
    state
}
