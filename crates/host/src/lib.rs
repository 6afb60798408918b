//! The resource host: a child process of the node daemon that runs resources.
//!
//! Two halves live here:
//!
//! * the host process itself ([`run_host`], entered via the hidden
//!   `baton resource-host` subcommand): a small synchronous program that
//!   starts resources in their own sessions, reaps every child, and kills
//!   everything when the node's lease runs out or the daemon goes away;
//! * the daemon's side ([`HostHandle`], [`LeaseSender`]): spawns the host and
//!   talks to it: start, stop and adopt resource processes, run agent calls
//!   (`run`: a program killed with its process group at its timeout), and
//!   `respawn` a host that died, handing it the current lease.
//!
//! The daemon and the host speak JSON lines over the host's stdin/stdout.
//! The lease travels on a separate datagram socket (fd 3 in the host), so
//! the daemon's heartbeat thread can renew it without the daemon's async
//! runtime, and so the host enforces it even when the daemon hangs.

mod error;
mod handle;
mod host;
mod protocol;

use std::time::Duration;

pub use error::{HostError, Result};
pub use handle::{HostHandle, LeaseSender};
pub use host::run_host;
pub use protocol::{
    AdoptRequest, HostEvent, RunRequest, RunResult, StartRequest, Started, OUTPUT_MAX,
};

/// How long before the lease deadline the host kills the resources, so they
/// are certainly dead when the deadline passes.
pub const KILL_MARGIN: Duration = Duration::from_millis(30);

/// The host's fd number for the lease socket.
const LEASE_FD: i32 = 3;

/// CLOCK_MONOTONIC in nanoseconds: the clock lease deadlines are written in.
/// It is the same clock in every process on one machine.
pub fn monotonic_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on
    // Linux, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    // Monotonic time is never negative.
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}
