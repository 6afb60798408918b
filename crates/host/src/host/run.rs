//! Agent calls (`run`): a program run to completion on a thread of its own, its output
//! collected, and its whole process group killed if it overruns its timeout. A hanging agent
//! thus costs a thread until its timeout, never the host or the daemon.
//!
//! The main loop reaps every child (we are a subreaper), so a run's exit status is handed
//! over through `State::runs`: the child is spawned and registered under the lock the reaper
//! needs, so its status cannot be reaped before the slot exists.

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::process::{ChildStderr, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::state::Shared;
use super::sys;
use crate::protocol::{Response, RunRequest, RunResult, NO_LEASE, OUTPUT_MAX};

/// How often a run looks at its pipes and its exit status.
const POLL: Duration = Duration::from_millis(10);
/// After the program exited, how long to wait for the rest of its output: a daemon it
/// left behind may hold the pipes open for ever.
const OUTPUT_GRACE: Duration = Duration::from_millis(100);
/// After SIGKILL at the timeout, how long to wait for the reaper before giving up.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// Answers the request from a thread of its own, so requests keep flowing meanwhile.
pub fn spawn_run(shared: &Arc<Shared>, id: u64, req: RunRequest) {
    let runner = {
        let shared = Arc::clone(shared);
        move || {
            let response = match run(&shared, &req) {
                Ok(result) => Response {
                    run: Some(result),
                    ..Response::ok(id)
                },
                Err(err) => Response::error(id, err),
            };
            shared.lock().out.send(&response);
        }
    };
    if let Err(err) = thread::Builder::new().name("host-run".into()).spawn(runner) {
        let response = Response::error(id, format!("cannot run: {err}"));
        shared.lock().out.send(&response);
    }
}

fn run(shared: &Shared, req: &RunRequest) -> Result<RunResult, String> {
    let started = Instant::now();
    let (pid, stdout, stderr) = spawn_registered(shared, req)?;
    let max = req.output_max.unwrap_or(OUTPUT_MAX).min(OUTPUT_MAX);
    let mut out = Stream::new(stdout, max);
    let mut err = Stream::new(stderr, max);
    let deadline = started + Duration::from_millis(req.timeout_ms);
    let mut timed_out = false;
    let mut exited_at: Option<Instant> = None;
    let status = loop {
        sys::wait_readable(&[out.fd(), err.fd()], POLL);
        out.read_available();
        err.read_available();
        let now = Instant::now();
        let status = shared.lock().runs.get(&pid).copied().flatten();
        if let Some(status) = status {
            let since = *exited_at.get_or_insert(now);
            if (out.closed() && err.closed()) || now >= since + OUTPUT_GRACE {
                break Some(status);
            }
        } else if now >= deadline && !timed_out {
            log!(
                "{} overran its timeout of {} ms: killing it",
                req.label,
                req.timeout_ms
            );
            // Unreaped (its slot is empty), so the group id is still ours to signal.
            sys::signal_group(pid, libc::SIGKILL);
            timed_out = true;
        } else if timed_out && now >= deadline + KILL_WAIT {
            break None;
        }
    };
    shared.lock().runs.remove(&pid);
    let status = status.ok_or_else(|| format!("{}: not reaped after SIGKILL", req.label))?;
    Ok(RunResult {
        code: status.code,
        signal: status.signal,
        timed_out,
        stdout: out.text(),
        stderr: err.text(),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// Spawns the program in a new session, under the lock, and registers it for the reaper.
fn spawn_registered(
    shared: &Shared,
    req: &RunRequest,
) -> Result<(u32, ChildStdout, ChildStderr), String> {
    let mut state = shared.lock();
    if req.needs_lease {
        state.refresh_lease();
        if !state.lease_valid() {
            return Err(NO_LEASE.into());
        }
    }
    let mut child = command(req)
        .and_then(|mut command| command.spawn())
        .map_err(|e| format!("cannot run {} ({}): {e}", req.label, req.program))?;
    let pid = child.id();
    state.runs.insert(pid, None);
    match (child.stdout.take(), child.stderr.take()) {
        (Some(stdout), Some(stderr)) => Ok((pid, stdout, stderr)),
        // Both were asked for as pipes; the reaper will collect the child.
        _ => Err(format!("cannot run {}: no output pipes", req.label)),
    }
}

fn command(req: &RunRequest) -> io::Result<Command> {
    let mut command = Command::new(&req.program);
    command
        .args(&req.args)
        .envs(&req.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    sys::prepare_child(&mut command, req.cwd.as_deref(), req.user.as_deref())?;
    Ok(command)
}

/// Appends `bytes`, keeping only the last `max`.
fn keep(tail: &mut Vec<u8>, max: usize, bytes: &[u8]) {
    tail.extend_from_slice(bytes);
    let excess = tail.len().saturating_sub(max);
    tail.drain(..excess);
}

/// One output pipe read without blocking, keeping the last `max` bytes.
struct Stream<R> {
    pipe: Option<R>,
    tail: Vec<u8>,
    max: usize,
}

impl<R: Read + AsRawFd> Stream<R> {
    fn new(pipe: R, max: usize) -> Self {
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            let fd = pipe.as_raw_fd();
            let flags = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        Self {
            pipe: Some(pipe),
            tail: Vec::new(),
            max,
        }
    }

    /// -1 once closed: poll ignores negative descriptors.
    fn fd(&self) -> i32 {
        self.pipe.as_ref().map_or(-1, |p| p.as_raw_fd())
    }

    fn closed(&self) -> bool {
        self.pipe.is_none()
    }

    fn read_available(&mut self) {
        let Some(pipe) = self.pipe.as_mut() else {
            return;
        };
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => {
                    self.pipe = None;
                    return;
                }
                Ok(n) => keep(&mut self.tail, self.max, &buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.pipe = None;
                    return;
                }
            }
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.tail).into_owned()
    }
}
