//! The daemon's side: spawning the resource host and talking to it.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot};

use crate::error::{HostError, Result};
use crate::protocol::{
    AdoptRequest, HostEvent, Op, Request, Response, RunRequest, RunResult, StartRequest, Started,
    NO_LEASE,
};
use crate::LEASE_FD;

/// Time limit for requests that do not wait on processes.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Added to a stop's own timeout: SIGKILL and reaping take a moment too.
const STOP_SLACK: Duration = Duration::from_secs(2);
/// Added to a run's own timeout: the host kills it at its timeout, then waits for the reaper.
const RUN_SLACK: Duration = Duration::from_secs(4);
/// Events not yet taken by the daemon; beyond this, reading the host stalls.
const EVENT_CAPACITY: usize = 1024;
/// Request lines not yet written to the host.
const QUEUE_CAPACITY: usize = 256;

/// The daemon's handle to its resource host. The host can be replaced (`respawn`) after it
/// died; callers keep the same handle. Dropping it closes the host's stdin, upon which the
/// host kills every resource and exits.
#[derive(Debug)]
pub struct HostHandle {
    exe: PathBuf,
    log_path: PathBuf,
    /// The current host process; swapped by `respawn`.
    conn: RwLock<Arc<Connection>>,
    /// Every host's events go here, each host's ending with `HostExited`.
    events: mpsc::Sender<HostEvent>,
    lease: LeaseSender,
}

/// One host process and the plumbing to it.
#[derive(Debug)]
struct Connection {
    pid: u32,
    /// Lines for the writer task, which owns the host's stdin.
    requests: mpsc::Sender<Vec<u8>>,
    waiters: Arc<Waiters>,
    next_id: AtomicU64,
}

/// Callers waiting for the response to their request id.
#[derive(Debug, Default)]
struct Waiters {
    inner: Mutex<WaitersInner>,
}

#[derive(Debug, Default)]
struct WaitersInner {
    by_id: HashMap<u64, oneshot::Sender<Response>>,
    /// The host is gone: nothing will be answered any more.
    closed: bool,
}

impl HostHandle {
    /// Spawns `exe resource-host`, with the host's stderr appended to
    /// `log_path`. Must be called inside a tokio runtime. Returns the handle,
    /// the lease sender (for the heartbeat thread) and the hosts' events,
    /// each host's ending with [`HostEvent::HostExited`].
    pub fn spawn(
        exe: &Path,
        log_path: &Path,
    ) -> Result<(HostHandle, LeaseSender, mpsc::Receiver<HostEvent>)> {
        let (events, events_rx) = mpsc::channel(EVENT_CAPACITY);
        let (conn, socket) = connect(exe, log_path, &events)?;
        let lease = LeaseSender::new(socket);
        let handle = HostHandle {
            exe: exe.to_path_buf(),
            log_path: log_path.to_path_buf(),
            conn: RwLock::new(Arc::new(conn)),
            events,
            lease: lease.clone(),
        };
        Ok((handle, lease, events_rx))
    }

    /// Starts a new host after the previous one died, and hands it the current lease. The
    /// previous host's resources are not its children: `adopt` them. Returns the new pid.
    pub fn respawn(&self) -> Result<u32> {
        let (conn, socket) = connect(&self.exe, &self.log_path, &self.events)?;
        let pid = conn.pid;
        *self.conn.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(conn);
        self.lease.replace(socket);
        Ok(pid)
    }

    fn conn(&self) -> Arc<Connection> {
        Arc::clone(&self.conn.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The current host's process id.
    pub fn pid(&self) -> u32 {
        self.conn().pid
    }

    /// Starts a resource (or finds it running); returns its pid, which is
    /// also its process group id.
    pub async fn start(&self, req: StartRequest) -> Result<u32> {
        self.start_process(req).await.map(|started| started.pid)
    }

    /// Like `start`, also returning the process start time (for a later `adopt`).
    pub async fn start_process(&self, req: StartRequest) -> Result<Started> {
        let response = self.call(Op::Start(req), REQUEST_TIMEOUT).await?;
        let pid = response
            .pid
            .ok_or_else(|| HostError::Protocol("start answered without a pid".into()))?;
        Ok(Started {
            pid,
            start_ticks: response.start_ticks.unwrap_or(0),
        })
    }

    /// Runs a program to completion inside the host (an agent call); its process group is
    /// killed at `timeout_ms`. Returns how it ended, with the tails of its output.
    pub async fn run(&self, req: RunRequest) -> Result<RunResult> {
        let limit = Duration::from_millis(req.timeout_ms) + RUN_SLACK;
        let response = self.call(Op::Run(req), limit).await?;
        response
            .run
            .ok_or_else(|| HostError::Protocol("run answered without a result".into()))
    }

    /// Takes over a resource process that a previous host started.
    pub async fn adopt(&self, req: AdoptRequest) -> Result<()> {
        self.call(Op::Adopt(req), REQUEST_TIMEOUT).await.map(drop)
    }

    /// Stops a resource: SIGTERM to its process group, SIGKILL after
    /// `timeout`. Returns once it is reaped; stopping a stopped one is ok.
    pub async fn stop(&self, resource: &str, timeout: Duration) -> Result<()> {
        let op = Op::Stop {
            resource: resource.to_owned(),
            timeout_ms: millis(timeout),
        };
        self.call(op, timeout + STOP_SLACK).await.map(drop)
    }

    /// Stops every resource, and anything else left below the host.
    pub async fn stop_all(&self, timeout: Duration) -> Result<()> {
        let op = Op::StopAll {
            timeout_ms: millis(timeout),
        };
        self.call(op, timeout + STOP_SLACK).await.map(drop)
    }

    /// The running resources and their pids.
    pub async fn status(&self) -> Result<Vec<(String, u32)>> {
        let running = self.status_processes().await?;
        Ok(running.into_iter().map(|(name, p)| (name, p.pid)).collect())
    }

    /// The running resources and their processes.
    pub async fn status_processes(&self) -> Result<Vec<(String, Started)>> {
        let response = self.call(Op::Status, REQUEST_TIMEOUT).await?;
        let running = response
            .resources
            .ok_or_else(|| HostError::Protocol("status answered without resources".into()))?;
        let started = |r: &crate::protocol::Running| Started {
            pid: r.pid,
            start_ticks: r.start_ticks,
        };
        Ok(running
            .iter()
            .map(|r| (r.resource.clone(), started(r)))
            .collect())
    }

    /// Sends one request and waits, at most `limit`, for its response.
    async fn call(&self, op: Op, limit: Duration) -> Result<Response> {
        let conn = self.conn();
        let id = conn.next_id.fetch_add(1, Ordering::Relaxed);
        let mut line = serde_json::to_vec(&Request { id, op })
            .map_err(|e| HostError::Protocol(e.to_string()))?;
        line.push(b'\n');
        let answer = conn.waiters.register(id)?;
        // Forgets the id however this ends (timeout, error, caller dropped).
        let _forget = Forget {
            waiters: &conn.waiters,
            id,
        };
        let exchange = async {
            conn.requests
                .send(line)
                .await
                .map_err(|_| HostError::HostGone)?;
            answer.await.map_err(|_| HostError::HostGone)
        };
        let response = tokio::time::timeout(limit, exchange)
            .await
            .map_err(|_| HostError::Timeout(limit))??;
        if response.ok {
            return Ok(response);
        }
        match response.error {
            Some(error) if error == NO_LEASE => Err(HostError::NoLease),
            error => Err(HostError::Refused(error.unwrap_or_default())),
        }
    }
}

/// Spawns one host process with a fresh lease socket pair; returns the connection and the
/// daemon's end of the lease socket.
fn connect(
    exe: &Path,
    log_path: &Path,
    events: &mpsc::Sender<HostEvent>,
) -> Result<(Connection, UnixDatagram)> {
    let log = OpenOptions::new().create(true).append(true).open(log_path);
    let log = log.map_err(HostError::Spawn)?;
    let (ours, theirs) = UnixDatagram::pair().map_err(HostError::Spawn)?;
    ours.set_nonblocking(true).map_err(HostError::Spawn)?;

    let mut command = Command::new(exe);
    command
        .arg("resource-host")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        // The host must outlive a dropped handle long enough to kill
        // its resources; it exits on its own when stdin closes.
        .kill_on_drop(false);
    let their_fd = theirs.as_raw_fd();
    // SAFETY: the closure only makes async-signal-safe calls (fcntl,
    // dup2, setsid), as required between fork and exec.
    unsafe { command.pre_exec(move || prepare_host(their_fd)) };
    let mut child = command.spawn().map_err(HostError::Spawn)?;
    drop(theirs);

    let pid = child.id().ok_or(HostError::HostGone)?;
    let (stdin, stdout) = match (child.stdin.take(), child.stdout.take()) {
        (Some(stdin), Some(stdout)) => (stdin, stdout),
        _ => return Err(HostError::Spawn(io::Error::other("host pipes missing"))),
    };
    let (requests, queued) = mpsc::channel(QUEUE_CAPACITY);
    let waiters = Arc::new(Waiters::default());
    tokio::spawn(write_requests(stdin, queued));
    tokio::spawn(read_host(
        stdout,
        child,
        pid,
        Arc::clone(&waiters),
        events.clone(),
    ));
    let conn = Connection {
        pid,
        requests,
        waiters,
        next_id: AtomicU64::new(1),
    };
    Ok((conn, ours))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// In the host child, between fork and exec: the lease socket goes to fd 3
/// (without close-on-exec), and the host gets its own session so a Ctrl-C
/// meant for the daemon does not kill it before it has stopped resources.
fn prepare_host(lease_fd: RawFd) -> io::Result<()> {
    // SAFETY: plain fd syscalls on descriptors valid in this process.
    let ret = unsafe {
        if lease_fd == LEASE_FD {
            // dup2 onto itself would keep close-on-exec set.
            libc::fcntl(LEASE_FD, libc::F_SETFD, 0)
        } else {
            libc::dup2(lease_fd, LEASE_FD)
        }
    };
    // SAFETY: setsid has no preconditions.
    if ret == -1 || unsafe { libc::setsid() } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Waiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, WaitersInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(&self, id: u64) -> Result<oneshot::Receiver<Response>> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(HostError::HostGone);
        }
        let (tx, rx) = oneshot::channel();
        inner.by_id.insert(id, tx);
        Ok(rx)
    }

    fn answer(&self, response: Response) {
        let waiter = self.lock().by_id.remove(&response.id);
        match waiter {
            // The caller may have timed out meanwhile.
            Some(waiter) => _ = waiter.send(response),
            None => tracing::debug!(id = response.id, "response nobody waits for"),
        }
    }

    /// Fails every waiting caller and every later one.
    fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.by_id.clear();
    }
}

struct Forget<'a> {
    waiters: &'a Waiters,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.waiters.lock().by_id.remove(&self.id);
    }
}

/// Writes whole request lines, so a caller timing out mid-write cannot leave
/// half a line behind. Ends (closing the host's stdin) when the handle drops.
async fn write_requests(mut stdin: ChildStdin, mut queued: mpsc::Receiver<Vec<u8>>) {
    while let Some(line) = queued.recv().await {
        let written = async {
            stdin.write_all(&line).await?;
            stdin.flush().await
        };
        if let Err(err) = written.await {
            tracing::warn!(%err, "cannot write to the resource host");
            return;
        }
    }
}

/// Routes the host's output: responses to their callers, events to the
/// channel. When the output ends, the host is gone: fail the callers, reap
/// the host, and report [`HostEvent::HostExited`].
async fn read_host(
    stdout: ChildStdout,
    mut child: Child,
    pid: u32,
    waiters: Arc<Waiters>,
    events: mpsc::Sender<HostEvent>,
) {
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => route(&line, &waiters, &events).await,
            Ok(None) => break,
            Err(err) => {
                tracing::warn!(%err, "cannot read from the resource host");
                break;
            }
        }
    }
    waiters.close();
    match child.wait().await {
        Ok(status) => tracing::info!(%status, "resource host exited"),
        Err(err) => tracing::warn!(%err, "cannot reap the resource host"),
    }
    // The daemon may have stopped listening; then nobody needs to know.
    _ = events.send(HostEvent::HostExited { pid }).await;
}

async fn route(line: &str, waiters: &Waiters, events: &mpsc::Sender<HostEvent>) {
    let value: serde_json::Value = match serde_json::from_str(line) {
        Ok(value) => value,
        Err(err) => {
            tracing::warn!(%err, line, "bad line from the resource host");
            return;
        }
    };
    if value.get("event").is_some() {
        match serde_json::from_value(value) {
            Ok(event) => _ = events.send(event).await,
            Err(err) => tracing::warn!(%err, line, "bad event from the resource host"),
        }
    } else {
        match serde_json::from_value(value) {
            Ok(response) => waiters.answer(response),
            Err(err) => tracing::warn!(%err, line, "bad response from the resource host"),
        }
    }
}

/// Sends lease deadlines to the host. Cheap to clone, usable from a plain
/// thread (the heartbeat thread), never blocks.
///
/// When every clone is dropped no renewals come any more, so the lease runs
/// out and the host kills the resources.
#[derive(Debug, Clone)]
pub struct LeaseSender {
    inner: Arc<LeaseInner>,
}

#[derive(Debug)]
struct LeaseInner {
    /// The current host's socket; replaced when the host is respawned.
    socket: RwLock<Arc<UnixDatagram>>,
    /// The last deadline sent (0 = revoked), replayed to a respawned host.
    last_ns: AtomicU64,
}

impl LeaseSender {
    fn new(socket: UnixDatagram) -> Self {
        let inner = LeaseInner {
            socket: RwLock::new(Arc::new(socket)),
            last_ns: AtomicU64::new(0),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    fn socket(&self) -> Arc<UnixDatagram> {
        let socket = self.inner.socket.read();
        Arc::clone(&socket.unwrap_or_else(PoisonError::into_inner))
    }

    /// Points at a new host and hands it the current lease at once, so it need not wait
    /// for the next renewal.
    fn replace(&self, socket: UnixDatagram) {
        *self
            .inner
            .socket
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(socket);
        let last = self.inner.last_ns.load(Ordering::SeqCst);
        if last != 0 {
            let _ = self.renew(last);
        }
    }

    /// Sets the lease deadline (CLOCK_MONOTONIC ns, see
    /// [`crate::monotonic_now_ns`]). A full socket buffer means the host is
    /// not reading; the renewal is dropped, which only brings the kill closer.
    pub fn renew(&self, deadline_monotonic_ns: u64) -> io::Result<()> {
        self.inner
            .last_ns
            .store(deadline_monotonic_ns, Ordering::SeqCst);
        match self.socket().send(&deadline_monotonic_ns.to_le_bytes()) {
            Ok(_) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Revokes the lease: the host kills every resource now. Unlike a
    /// renewal this must not be lost, so a full buffer is retried briefly.
    pub fn revoke(&self) {
        self.inner.last_ns.store(0, Ordering::SeqCst);
        let socket = self.socket();
        let until = Instant::now() + Duration::from_millis(100);
        loop {
            match socket.send(&0u64.to_le_bytes()) {
                Ok(_) => return,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock && Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(err) => {
                    tracing::warn!(%err, "cannot revoke the lease");
                    return;
                }
            }
        }
    }
}
