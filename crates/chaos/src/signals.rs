//! Ctrl-C, SIGTERM and SIGHUP set a flag that every wait of the harness watches, so an
//! interrupted run still kills its daemons and removes its namespaces (through `Drop`).
//! A plain handler rather than tokio's: it must work before the runtime exists, while the
//! topology is being built.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub fn install() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(
                signal,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            )
        };
    }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Resolves once a signal arrived (polled: the handler cannot wake a future).
pub async fn wait_interrupt() {
    while !interrupted() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
