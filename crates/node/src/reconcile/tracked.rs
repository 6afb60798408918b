//! One resource as this node manages it: its local state, the agent call in flight, its
//! health-check schedule. Pure: `next_op` decides the next agent call from the state and
//! what the loop knows (desired here? dependencies online? lease held?), and
//! `apply_outcome` folds a call's outcome back in. Time is an argument.

use baton_agents::{Check, Outcome};
use baton_host::Started;
use baton_model::{ResourcePolicy, ResourceState};

/// How long to wait before trying again a call that could not be made or a stop that failed.
pub const RETRY_MS: u64 = 1_000;
pub const STOP_RETRY_MS: u64 = 5_000;

/// An agent call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Start,
    /// `cleanup`: after a failure, the resource stays failed once stopped.
    Stop {
        cleanup: bool,
    },
    Check(Check),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracked {
    pub group: String,
    pub generation: u64,
    /// What this node knows; reported to the database when it differs from it.
    pub state: ResourceState,
    pub message: String,
    pub misconfigured: bool,
    /// The database's restart request counter last acted on.
    pub restarts_seen: u64,
    pub busy: Option<OpKind>,
    /// What a process `start` returned: adopted by a new resource host after a crash.
    pub process: Option<Started>,
    pub next_looks_alive_ms: u64,
    pub next_is_alive_ms: u64,
    /// Failed and not stopped since: stop it before a restart or before letting go.
    pub needs_cleanup: bool,
    /// No new call before this (monotonic ms): backs off retries.
    pub not_before_ms: u64,
    /// The resource host was replaced: learn whether it still runs (probe).
    pub needs_probe: bool,
}

/// What the loop knows about a resource besides its own record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Situation {
    /// Assigned here for the tracked generation, not releasing, and this node has a lease.
    pub desired: bool,
    /// Its dependency expression holds with the resources online here.
    pub dependencies_online: bool,
    /// A resource of its group that depends on it is not offline yet.
    pub dependents_active: bool,
    /// Its agent has an IsAlive beyond LooksAlive.
    pub has_is_alive: bool,
}

/// The next step for one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Nothing,
    /// Offline (or failed and cleaned up) and not wanted: forget it.
    Forget,
    Op(OpKind),
}

impl Tracked {
    pub fn new(group: &str, generation: u64, restarts_seen: u64) -> Tracked {
        Tracked {
            group: group.to_string(),
            generation,
            state: ResourceState::Offline,
            message: String::new(),
            misconfigured: false,
            restarts_seen,
            busy: None,
            process: None,
            next_looks_alive_ms: 0,
            next_is_alive_ms: 0,
            needs_cleanup: false,
            not_before_ms: 0,
            needs_probe: false,
        }
    }

    /// Running or maybe running: it must be stopped before it is forgotten.
    pub fn is_active(&self) -> bool {
        match self.state {
            ResourceState::Offline => false,
            ResourceState::Failed => self.needs_cleanup,
            _ => true,
        }
    }

    /// The coordinator asked for a restart: it is pending until started again.
    pub fn restart_requested(&mut self, requests: u64) {
        if requests <= self.restarts_seen {
            return;
        }
        self.restarts_seen = requests;
        if self.state == ResourceState::Failed {
            self.state = ResourceState::OnlinePending;
            self.message = "restarting".to_string();
            self.misconfigured = false;
        }
    }

    /// A health check or the host said the resource is not running or failed.
    pub fn fail(&mut self, message: String, misconfigured: bool) {
        self.state = ResourceState::Failed;
        self.message = message;
        self.misconfigured = misconfigured;
        self.needs_cleanup = true;
    }
}

/// The next agent call for a resource not busy with one. Control flow in one place: probe
/// after a host restart, stop what is not wanted (dependents first), clean up failures,
/// start what is wanted once its dependencies are online, check what is online.
pub fn next_op(t: &Tracked, here: Situation, now_ms: u64) -> Next {
    if t.busy.is_some() || now_ms < t.not_before_ms {
        return Next::Nothing;
    }
    if t.needs_probe && t.is_active() && t.state != ResourceState::Failed {
        return Next::Op(OpKind::Check(Check::Probe));
    }
    let online_allowed = here.desired && here.dependencies_online;
    if !online_allowed {
        return match (t.is_active(), here.dependents_active) {
            (false, _) if !here.desired => Next::Forget,
            (false, _) => Next::Nothing,
            // Dependents go offline first.
            (true, true) => Next::Nothing,
            (true, false) => Next::Op(OpKind::Stop {
                cleanup: t.state == ResourceState::Failed,
            }),
        };
    }
    match t.state {
        ResourceState::Failed if t.needs_cleanup => Next::Op(OpKind::Stop { cleanup: true }),
        ResourceState::Failed => Next::Nothing,
        ResourceState::Offline | ResourceState::OnlinePending if t.needs_cleanup => {
            Next::Op(OpKind::Stop { cleanup: true })
        }
        ResourceState::Offline | ResourceState::OnlinePending => Next::Op(OpKind::Start),
        ResourceState::OfflinePending => Next::Op(OpKind::Stop { cleanup: false }),
        ResourceState::Online if here.has_is_alive && now_ms >= t.next_is_alive_ms => {
            Next::Op(OpKind::Check(Check::IsAlive))
        }
        ResourceState::Online if now_ms >= t.next_looks_alive_ms => {
            Next::Op(OpKind::Check(Check::LooksAlive))
        }
        ResourceState::Online => Next::Nothing,
    }
}

/// Marks the call in flight and the state it implies.
pub fn begin(t: &mut Tracked, kind: OpKind) {
    t.busy = Some(kind);
    match kind {
        OpKind::Start => {
            t.state = ResourceState::OnlinePending;
            t.message = "starting".to_string();
        }
        OpKind::Stop { cleanup: false } => {
            t.state = ResourceState::OfflinePending;
            t.message = "stopping".to_string();
        }
        OpKind::Stop { cleanup: true } | OpKind::Check(_) => {}
    }
}

/// Folds a finished call's outcome into the record.
pub fn apply_outcome(
    t: &mut Tracked,
    kind: OpKind,
    outcome: Outcome,
    process: Option<Started>,
    policy: &ResourcePolicy,
    now_ms: u64,
) {
    t.busy = None;
    match kind {
        OpKind::Start => started(t, outcome, process, policy, now_ms),
        OpKind::Stop { cleanup } => stopped(t, outcome, cleanup, now_ms),
        OpKind::Check(Check::Probe) => probed(t, outcome, policy, now_ms),
        OpKind::Check(check) => checked(t, check, outcome, policy, now_ms),
    }
}

fn schedule_checks(t: &mut Tracked, policy: &ResourcePolicy, now_ms: u64) {
    t.next_looks_alive_ms = now_ms + policy.looks_alive_ms;
    t.next_is_alive_ms = now_ms + policy.is_alive_ms;
}

fn started(
    t: &mut Tracked,
    outcome: Outcome,
    process: Option<Started>,
    policy: &ResourcePolicy,
    now_ms: u64,
) {
    match outcome {
        Outcome::Ok => {
            t.state = ResourceState::Online;
            t.message.clear();
            t.process = process;
            schedule_checks(t, policy, now_ms);
        }
        Outcome::Unavailable(why) => {
            // Not the resource's fault (no lease, host restarting): try again shortly.
            t.state = ResourceState::OnlinePending;
            t.message = format!("start postponed: {why}");
            t.not_before_ms = now_ms + RETRY_MS;
        }
        Outcome::Misconfigured(why) => t.fail(why, true),
        Outcome::NotRunning(why) | Outcome::Failed(why) => t.fail(why, false),
    }
}

fn stopped(t: &mut Tracked, outcome: Outcome, cleanup: bool, now_ms: u64) {
    match (outcome, cleanup) {
        (Outcome::Ok, true) => t.needs_cleanup = false,
        (Outcome::Ok, false) => {
            t.state = ResourceState::Offline;
            t.message.clear();
            t.process = None;
        }
        (Outcome::Unavailable(_), _) => t.not_before_ms = now_ms + RETRY_MS,
        // A stop that failed leaves it failed, maybe running: stop again later.
        (Outcome::Misconfigured(why) | Outcome::Failed(why) | Outcome::NotRunning(why), _) => {
            let misconfigured = t.misconfigured;
            t.fail(format!("stop failed: {why}"), misconfigured);
            t.not_before_ms = now_ms + STOP_RETRY_MS;
        }
    }
}

fn checked(t: &mut Tracked, check: Check, outcome: Outcome, policy: &ResourcePolicy, now: u64) {
    // A check finishing after the resource was stopped or failed says nothing new.
    if t.state != ResourceState::Online {
        return;
    }
    match outcome {
        Outcome::Ok | Outcome::Unavailable(_) => {
            t.next_looks_alive_ms = now + policy.looks_alive_ms;
            if check == Check::IsAlive {
                t.next_is_alive_ms = now + policy.is_alive_ms;
            }
        }
        Outcome::Misconfigured(why) => t.fail(why, true),
        Outcome::NotRunning(why) | Outcome::Failed(why) => {
            let which = match check {
                Check::IsAlive => "IsAlive",
                _ => "LooksAlive",
            };
            t.fail(format!("{which} failed: {why}"), false);
        }
    }
}

/// After a resource host restart: running ones stay online, the others failed (or offline,
/// if they were being stopped anyway).
fn probed(t: &mut Tracked, outcome: Outcome, policy: &ResourcePolicy, now_ms: u64) {
    match outcome {
        Outcome::Ok => {
            t.needs_probe = false;
            if t.state != ResourceState::OfflinePending {
                t.state = ResourceState::Online;
                t.message.clear();
            }
            schedule_checks(t, policy, now_ms);
        }
        Outcome::Unavailable(_) => t.not_before_ms = now_ms + RETRY_MS,
        Outcome::NotRunning(why) if t.state == ResourceState::OfflinePending => {
            t.needs_probe = false;
            t.state = ResourceState::Offline;
            t.message = why;
            t.process = None;
        }
        Outcome::NotRunning(why) | Outcome::Failed(why) => {
            t.needs_probe = false;
            t.fail(
                format!("not running after the resource host restarted: {why}"),
                false,
            );
        }
        Outcome::Misconfigured(why) => {
            t.needs_probe = false;
            t.fail(why, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired() -> Situation {
        Situation {
            desired: true,
            dependencies_online: true,
            dependents_active: false,
            has_is_alive: true,
        }
    }

    fn policy() -> ResourcePolicy {
        ResourcePolicy {
            looks_alive_ms: 100,
            is_alive_ms: 1_000,
            ..ResourcePolicy::default()
        }
    }

    fn online(now_ms: u64) -> Tracked {
        let mut t = Tracked::new("web", 1, 0);
        begin(&mut t, OpKind::Start);
        apply_outcome(&mut t, OpKind::Start, Outcome::Ok, None, &policy(), now_ms);
        t
    }

    #[test]
    fn starts_when_wanted_and_dependencies_are_online() {
        // Checks a new resource starts only with its dependencies online.
        let t = Tracked::new("web", 1, 0);
        let waiting = Situation {
            dependencies_online: false,
            ..desired()
        };
        assert_eq!(next_op(&t, waiting, 0), Next::Nothing);
        assert_eq!(next_op(&t, desired(), 0), Next::Op(OpKind::Start));
    }

    #[test]
    fn checks_follow_their_intervals() {
        // Checks LooksAlive and IsAlive come due at their own intervals.
        let t = online(0);
        assert_eq!(t.state, ResourceState::Online);
        assert_eq!(next_op(&t, desired(), 50), Next::Nothing);
        let looks = Next::Op(OpKind::Check(Check::LooksAlive));
        assert_eq!(next_op(&t, desired(), 100), looks);
        let is = Next::Op(OpKind::Check(Check::IsAlive));
        assert_eq!(next_op(&t, desired(), 1_000), is);
        let no_is_alive = Situation {
            has_is_alive: false,
            ..desired()
        };
        assert_eq!(next_op(&t, no_is_alive, 1_000), looks);
    }

    #[test]
    fn a_failed_check_fails_and_cleans_up_then_waits_for_a_restart() {
        // Checks a failure is stopped (cleanup) and then waits for the coordinator.
        let mut t = online(0);
        let kind = OpKind::Check(Check::IsAlive);
        begin(&mut t, kind);
        let outcome = Outcome::Failed("check exited 1".into());
        apply_outcome(&mut t, kind, outcome, None, &policy(), 1_000);
        assert_eq!(t.state, ResourceState::Failed);
        assert_eq!(t.message, "IsAlive failed: check exited 1");
        let cleanup = Next::Op(OpKind::Stop { cleanup: true });
        assert_eq!(next_op(&t, desired(), 1_001), cleanup);
        begin(&mut t, OpKind::Stop { cleanup: true });
        let stop = OpKind::Stop { cleanup: true };
        apply_outcome(&mut t, stop, Outcome::Ok, None, &policy(), 1_002);
        assert_eq!(t.state, ResourceState::Failed);
        assert_eq!(next_op(&t, desired(), 1_003), Next::Nothing);
        t.restart_requested(1);
        assert_eq!(t.state, ResourceState::OnlinePending);
        assert_eq!(next_op(&t, desired(), 1_004), Next::Op(OpKind::Start));
        t.restart_requested(1);
        assert_eq!(t.restarts_seen, 1, "one request, one restart");
    }

    #[test]
    fn undesired_resources_stop_after_their_dependents() {
        // Checks stop order: a resource with an active dependent waits, then stops, then is
        // forgotten.
        let mut t = online(0);
        let leaving = Situation {
            desired: false,
            dependents_active: true,
            ..desired()
        };
        assert_eq!(next_op(&t, leaving, 10), Next::Nothing);
        let alone = Situation {
            dependents_active: false,
            ..leaving
        };
        let stop = OpKind::Stop { cleanup: false };
        assert_eq!(next_op(&t, alone, 10), Next::Op(stop));
        begin(&mut t, stop);
        assert_eq!(t.state, ResourceState::OfflinePending);
        apply_outcome(&mut t, stop, Outcome::Ok, None, &policy(), 20);
        assert_eq!(next_op(&t, alone, 30), Next::Forget);
    }

    #[test]
    fn a_lost_dependency_takes_a_resource_offline_not_failed() {
        // Checks a dependent of a failed resource is stopped and restarted later.
        let t = online(0);
        let orphaned = Situation {
            dependencies_online: false,
            ..desired()
        };
        let stop = Next::Op(OpKind::Stop { cleanup: false });
        assert_eq!(next_op(&t, orphaned, 10), stop);
    }

    #[test]
    fn misconfigured_and_unavailable_starts() {
        // Checks a misconfiguration is kept as such and a start without lease is retried.
        let mut t = Tracked::new("web", 1, 0);
        begin(&mut t, OpKind::Start);
        let unavailable = Outcome::Unavailable("no lease".into());
        apply_outcome(&mut t, OpKind::Start, unavailable, None, &policy(), 0);
        assert_eq!(t.state, ResourceState::OnlinePending);
        assert_eq!(next_op(&t, desired(), 10), Next::Nothing);
        assert_eq!(next_op(&t, desired(), RETRY_MS), Next::Op(OpKind::Start));
        begin(&mut t, OpKind::Start);
        let bad = Outcome::Misconfigured("bad ip".into());
        apply_outcome(&mut t, OpKind::Start, bad, None, &policy(), RETRY_MS);
        assert!(t.misconfigured && t.state == ResourceState::Failed);
    }

    #[test]
    fn probes_after_a_host_restart() {
        // Checks re-learning: a running resource stays online, a vanished one fails.
        let mut t = online(0);
        t.needs_probe = true;
        let probe = OpKind::Check(Check::Probe);
        assert_eq!(next_op(&t, desired(), 10), Next::Op(probe));
        let mut gone = t.clone();
        apply_outcome(&mut t, probe, Outcome::Ok, None, &policy(), 20);
        assert_eq!((t.state, t.needs_probe), (ResourceState::Online, false));
        let vanished = Outcome::NotRunning("pid 7 is not running".into());
        apply_outcome(&mut gone, probe, vanished, None, &policy(), 20);
        assert_eq!(gone.state, ResourceState::Failed);
        assert!(gone.message.contains("after the resource host restarted"));
    }

    #[test]
    fn a_late_check_after_a_stop_changes_nothing() {
        // Checks a check result for a resource no longer online is dropped.
        let mut t = online(0);
        t.state = ResourceState::Offline;
        let kind = OpKind::Check(Check::LooksAlive);
        let failed = Outcome::Failed("gone".into());
        apply_outcome(&mut t, kind, failed, None, &policy(), 10);
        assert_eq!(t.state, ResourceState::Offline);
    }
}
