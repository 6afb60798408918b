//! The host's state, behind one lock: the running resources, the agent calls in
//! flight, and the lease.
//!
//! Every thread that spawns, reaps or signals holds the lock. That is what
//! keeps pids safe to signal: a resource stays in the table until its leader
//! is reaped, and an unreaped pid (which is also the process group id) cannot
//! be reused by another process.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::lease::{self, Lease};
use super::outbox::Outbox;
use super::sys;
use crate::monotonic_now_ns;
use crate::protocol::{AdoptRequest, HostEvent, StartRequest, NO_LEASE};

/// The main loop looks at least this often (reaping, lease, parent).
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How long a kill-everything waits for SIGKILLed leaders to be reaped.
const REAP_WAIT: Duration = Duration::from_millis(500);
/// Pause between looks while waiting for killed processes to die.
const KILL_PAUSE: Duration = Duration::from_millis(2);

/// A resource's leader process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    pub start_ticks: u64,
    /// Started by a previous host: not our child, so watched through /proc, not reaped.
    pub adopted: bool,
}

pub struct Shared {
    state: Mutex<State>,
    /// Notified after every main-loop pass, for stop requests waiting on reaps.
    changed: Condvar,
    /// The daemon is gone (stdin closed): the main loop must shut down.
    closing: AtomicBool,
}

pub struct State {
    /// Resource name → its leader process (pid = process group id).
    running: BTreeMap<String, Proc>,
    /// Agent calls in flight: pid → how it ended, once reaped (see `run`).
    pub runs: HashMap<u32, Option<sys::Reaped>>,
    lease: Lease,
    lease_socket: UnixDatagram,
    pub out: Outbox,
}

impl Shared {
    pub fn new(lease_socket: UnixDatagram, out: Outbox) -> Shared {
        let state = State {
            running: BTreeMap::new(),
            runs: HashMap::new(),
            lease: Lease::default(),
            lease_socket,
            out,
        };
        Shared {
            state: Mutex::new(state),
            changed: Condvar::new(),
            closing: AtomicBool::new(false),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking thread leaves the table consistent enough to keep
        // killing things, which beats refusing to.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One pass of the main loop: reap, then enforce and refresh the lease.
    pub fn tick(&self) {
        {
            let mut state = self.lock();
            state.reap();
            state.refresh_lease();
        }
        self.changed.notify_all();
    }

    /// Releases the lock until the next main-loop pass, or `limit`.
    pub fn wait<'a>(&self, state: MutexGuard<'a, State>, limit: Duration) -> MutexGuard<'a, State> {
        let limit = limit.min(POLL_INTERVAL);
        match self.changed.wait_timeout(state, limit) {
            Ok((state, _)) => state,
            Err(poisoned) => poisoned.into_inner().0,
        }
    }

    pub fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        sys::wake();
    }

    pub fn closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Kills everything and gives the last events a moment to reach the daemon.
    pub fn shutdown(&self) {
        let mut state = self.lock();
        state.kill_all();
        state.out.flush(Duration::from_millis(200));
    }
}

impl State {
    /// Reaps every exited child and reports the resources among them, adopted ones included.
    pub fn reap(&mut self) {
        let mut exits = self.collect_exits();
        exits.extend(self.collect_adopted_exits());
        self.report(&exits);
    }

    /// Adopted leaders are not our children: one that is gone, a zombie, or replaced by
    /// another process with its pid has ended (its exit status went to someone else).
    fn collect_adopted_exits(&mut self) -> Vec<HostEvent> {
        let ended: Vec<(String, u32)> = self
            .running
            .iter()
            .filter(|(_, p)| p.adopted && !sys::is_alive(p.pid, p.start_ticks))
            .map(|(name, p)| (name.clone(), p.pid))
            .collect();
        ended
            .into_iter()
            .map(|(resource, pid)| {
                self.running.remove(&resource);
                HostEvent::Exited {
                    resource,
                    pid,
                    code: None,
                    signal: None,
                }
            })
            .collect()
    }

    /// Reaps every exited child. Leaders become exit events; other children
    /// are orphans adopted from resources (we are their subreaper).
    fn collect_exits(&mut self) -> Vec<HostEvent> {
        let mut exits = Vec::new();
        while let Some(child) = sys::reap_one() {
            if let Some(slot) = self.runs.get_mut(&child.pid) {
                *slot = Some(child);
                continue;
            }
            let Some(resource) = self.name_of(child.pid) else {
                continue;
            };
            self.running.remove(&resource);
            exits.push(HostEvent::Exited {
                resource,
                pid: child.pid,
                code: child.code,
                signal: child.signal,
            });
        }
        exits
    }

    fn report(&self, events: &[HostEvent]) {
        for event in events {
            self.out.send(event);
        }
    }

    fn name_of(&self, pid: u32) -> Option<String> {
        let (name, _) = self
            .running
            .iter()
            .find(|(_, p)| p.pid == pid && !p.adopted)?;
        Some(name.clone())
    }

    /// Enforces a lapsed lease, then takes renewals waiting on the socket.
    pub fn refresh_lease(&mut self) {
        // A lapse is enforced before reading renewals: one read late may have
        // arrived late too, and the cluster may already count on us being down.
        if self.lease.lapsed(monotonic_now_ns()) {
            self.expire();
        }
        if let Some(deadline) = lease::read_latest(&self.lease_socket) {
            if self.lease.renew(deadline, monotonic_now_ns()) {
                self.expire();
            }
        }
    }

    /// Kills everything; reported once it is all dead and reaped.
    fn expire(&mut self) {
        let killed: Vec<String> = self.running.keys().cloned().collect();
        log!("lease expired; killing {killed:?}");
        self.signal_groups(libc::SIGKILL);
        let exits = self.finish_kill();
        self.out.send(&HostEvent::LeaseExpired { killed });
        self.report(&exits);
    }

    /// SIGKILLs every resource and everything else below us, and reaps them.
    pub fn kill_all(&mut self) {
        self.signal_groups(libc::SIGKILL);
        let exits = self.finish_kill();
        self.report(&exits);
    }

    fn signal_groups(&self, signal: libc::c_int) {
        for proc in self.running.values() {
            sys::signal_group(proc.pid, signal);
        }
    }

    /// After the groups got SIGKILL: kills whatever else is below us and
    /// reaps it all. Returns the leaders' exits.
    fn finish_kill(&mut self) -> Vec<HostEvent> {
        // Also processes that left their resource's group or session.
        for _ in 0..10 {
            if sys::signal_descendants(libc::SIGKILL) == 0 {
                break;
            }
            thread::sleep(KILL_PAUSE);
        }
        // Until no child is left: orphaned grandchildren are reparented to
        // us as their parents die, and are reaped like the leaders.
        let until = Instant::now() + REAP_WAIT;
        let mut exits = Vec::new();
        loop {
            exits.extend(self.collect_exits());
            if !sys::has_children() || Instant::now() >= until {
                break;
            }
            thread::sleep(KILL_PAUSE);
        }
        if !self.running.is_empty() {
            log!("not reaped yet after SIGKILL: {:?}", self.running);
        }
        exits
    }

    pub fn lease_valid(&self) -> bool {
        self.lease.valid_at(monotonic_now_ns())
    }

    /// How long the main loop may sleep.
    pub fn poll_timeout(&self) -> Duration {
        let to_kill = self.lease.time_to_kill_point(monotonic_now_ns());
        to_kill.map_or(POLL_INTERVAL, |d| d.min(POLL_INTERVAL))
    }

    /// Starts a resource, or returns the process it already runs as.
    pub fn start(&mut self, req: &StartRequest) -> Result<Proc, String> {
        if req.resource.is_empty() {
            return Err("empty resource name".into());
        }
        // A dead but unreaped leader is not "already running".
        self.reap();
        // A renewal sent just before this request must count.
        self.refresh_lease();
        if !self.lease_valid() {
            return Err(NO_LEASE.into());
        }
        if let Some(proc) = self.running.get(&req.resource) {
            return Ok(*proc);
        }
        let pid = spawn(req).map_err(|e| format!("cannot start {}: {e}", req.resource))?;
        // Unreaped (we hold the lock the reaper needs), so /proc still has it.
        let start_ticks = sys::start_ticks(pid).unwrap_or(0);
        let proc = Proc {
            pid,
            start_ticks,
            adopted: false,
        };
        self.running.insert(req.resource.clone(), proc);
        Ok(proc)
    }

    /// Takes over a resource process of a previous host, if it still is what it was.
    pub fn adopt(&mut self, req: &AdoptRequest) -> Result<(), String> {
        self.refresh_lease();
        if !self.lease_valid() {
            return Err(NO_LEASE.into());
        }
        if let Some(proc) = self.running.get(&req.resource) {
            return match proc.pid == req.pid {
                true => Ok(()),
                false => Err(format!("{} already runs as pid {}", req.resource, proc.pid)),
            };
        }
        if !sys::is_alive(req.pid, req.start_ticks) {
            return Err(format!("{} (pid {}) is not running", req.resource, req.pid));
        }
        let proc = Proc {
            pid: req.pid,
            start_ticks: req.start_ticks,
            adopted: true,
        };
        self.running.insert(req.resource.clone(), proc);
        Ok(())
    }

    pub fn running(&self) -> Vec<(String, Proc)> {
        let entries = self.running.iter();
        entries.map(|(name, proc)| (name.clone(), *proc)).collect()
    }

    pub fn is_running(&self, resource: &str, pid: u32) -> bool {
        self.running.get(resource).is_some_and(|p| p.pid == pid)
    }
}

/// `/bin/sh -c command` as the leader of a new session (so of a new process
/// group too), output appended to the log.
fn spawn(req: &StartRequest) -> io::Result<u32> {
    let log = open_log(req.log.as_deref().unwrap_or(Path::new("/dev/null")))?;
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(&req.command)
        .envs(&req.env)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    sys::prepare_child(&mut command, req.cwd.as_deref(), req.user.as_deref())?;
    // Dropping the Child neither waits nor kills: our reaper collects it.
    Ok(command.spawn()?.id())
}

fn open_log(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new().create(true).append(true).open(path);
    file.map_err(|e| io::Error::new(e.kind(), format!("cannot open log {}: {e}", path.display())))
}
