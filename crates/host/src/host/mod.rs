//! The resource host process (`baton resource-host`).
//!
//! Threads: the main loop (this module: lease, reaping, shutdown), one
//! reading requests from stdin, one writing lines to stdout, and one per
//! stop request in progress. They share [`state::Shared`].

/// Logs to stderr, which the daemon points at the host's log file.
macro_rules! log {
    ($($arg:tt)*) => {
        eprintln!("baton resource-host[{}]: {}", std::process::id(), format_args!($($arg)*))
    };
}

mod lease;
mod outbox;
mod requests;
mod run;
mod state;
mod stop;
mod sys;

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use outbox::Outbox;
use state::Shared;

/// Runs the resource host; never returns. The daemon spawns the `baton`
/// binary with the hidden `resource-host` subcommand, which calls this.
///
/// Expects requests on stdin, answers on stdout, and the lease socket on
/// fd 3. Exits 0 once the daemon is gone and every resource is killed.
pub fn run_host() -> ! {
    let code = match serve() {
        Ok(()) => 0,
        Err(err) => {
            log!("cannot run: {err}");
            1
        }
    };
    std::process::exit(code)
}

fn serve() -> io::Result<()> {
    sys::become_subreaper()?;
    // Before any thread exists, so they all get the unblocked signal mask.
    let wake = sys::install_signal_handlers()?;
    let lease_socket = sys::take_lease_socket()?;
    let lease_fd = lease_socket.as_raw_fd();
    let parent = sys::parent_pid();
    let shared = Arc::new(Shared::new(lease_socket, Outbox::start()?));
    requests::spawn_reader(Arc::clone(&shared))?;
    watch(&shared, lease_fd, wake.as_raw_fd(), parent);
    shared.shutdown();
    Ok(())
}

/// The main loop. Wakes on a lease datagram, a signal (SIGCHLD, SIGTERM), the
/// lease's kill point, or every POLL_INTERVAL; returns when the host must
/// shut down.
fn watch(shared: &Shared, lease_fd: RawFd, wake_fd: RawFd, parent: i32) {
    loop {
        let timeout = shared.lock().poll_timeout();
        sys::wait_readable(&[lease_fd, wake_fd], timeout);
        sys::drain(wake_fd);
        shared.tick();
        if let Some(reason) = shutdown_reason(shared, parent) {
            log!("shutting down: {reason}");
            return;
        }
    }
}

fn shutdown_reason(shared: &Shared, parent: i32) -> Option<&'static str> {
    if shared.closing() {
        Some("the daemon closed our stdin")
    } else if sys::term_requested() {
        Some("terminated by signal")
    } else if sys::parent_pid() != parent {
        // Backstop: stdin should have ended, but the daemon is gone anyway.
        Some("the daemon died")
    } else {
        None
    }
}
