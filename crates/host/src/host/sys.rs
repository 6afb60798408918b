//! Thin wrappers over the Linux calls the host needs.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

use crate::LEASE_FD;

/// Write end of the self-pipe that wakes the main loop (signals, shutdown).
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
/// Set by the SIGTERM/SIGINT handler.
static TERM_REQUESTED: AtomicBool = AtomicBool::new(false);

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Orphaned descendants of resources get reparented to us instead of init,
/// so we can reap them and kill them with everything else.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: plain prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) })?;
    Ok(())
}

pub fn parent_pid() -> i32 {
    // SAFETY: getppid cannot fail.
    unsafe { libc::getppid() }
}

/// Takes fd 3, which the daemon set up as our end of the lease socket.
pub fn take_lease_socket() -> io::Result<UnixDatagram> {
    // SAFETY: fstat writes into a zeroed, properly sized struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstat(LEASE_FD, &mut st) })
        .map_err(|e| io::Error::new(e.kind(), format!("no lease socket on fd {LEASE_FD}: {e}")))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(io::Error::other(format!(
            "fd {LEASE_FD} is not the lease socket"
        )));
    }
    // Resources must not inherit it.
    // SAFETY: fd 3 is open (fstat succeeded).
    check(unsafe { libc::fcntl(LEASE_FD, libc::F_SETFD, libc::FD_CLOEXEC) })?;
    // SAFETY: nothing else in this process owns fd 3.
    let socket = unsafe { UnixDatagram::from_raw_fd(LEASE_FD) };
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Routes SIGCHLD, SIGTERM and SIGINT into a self-pipe and returns its read
/// end, which the main loop polls. Must run before any thread is spawned, so
/// every thread inherits the unblocked signal mask.
pub fn install_signal_handlers() -> io::Result<OwnedFd> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) })?;
    // The write end lives as long as the process.
    WAKE_FD.store(fds[1], Ordering::SeqCst);
    // SAFETY: zeroed sigaction/sigset are valid starting values; the handler
    // only touches atomics and calls write(2), which is async-signal-safe.
    unsafe {
        // The daemon's thread may have had signals blocked; the mask survives exec.
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        for sig in [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT] {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART | libc::SA_NOCLDSTOP;
            libc::sigemptyset(&mut action.sa_mask);
            check(libc::sigaction(sig, &action, std::ptr::null_mut()))?;
        }
        Ok(OwnedFd::from_raw_fd(fds[0]))
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    // SAFETY: errno is thread-local; restoring it keeps the interrupted code
    // from seeing our write's errno.
    let errno = unsafe { *libc::__errno_location() };
    if sig == libc::SIGTERM || sig == libc::SIGINT {
        TERM_REQUESTED.store(true, Ordering::SeqCst);
    }
    wake();
    unsafe { *libc::__errno_location() = errno };
}

pub fn term_requested() -> bool {
    TERM_REQUESTED.load(Ordering::SeqCst)
}

/// Wakes the main loop out of `poll`. Async-signal-safe.
pub fn wake() {
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // A full pipe already guarantees a wake-up, so the result is moot.
        // SAFETY: writes one byte from a valid buffer.
        unsafe { libc::write(fd, [1u8].as_ptr().cast(), 1) };
    }
}

/// Empties the (non-blocking) self-pipe.
pub fn drain(fd: RawFd) {
    let mut buf = [0u8; 64];
    // SAFETY: reads into a valid buffer of the given size.
    while unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}

/// Waits until one of `fds` is readable or `timeout` passes.
pub fn wait_readable(fds: &[RawFd], timeout: Duration) {
    let mut polls: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // Round up, so we never wake just before a deadline and spin.
    let ms = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
    // SAFETY: `polls` is a valid array of the given length. EINTR (a signal
    // arrived) is just an early wake-up.
    unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, ms) };
}

/// How a reaped child ended.
#[derive(Clone, Copy, Debug)]
pub struct Reaped {
    pub pid: u32,
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

/// Reaps one exited child, if any.
pub fn reap_one() -> Option<Reaped> {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    if pid <= 0 {
        return None;
    }
    let (code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (None, None)
    };
    Some(Reaped {
        pid: pid as u32,
        code,
        signal,
    })
}

/// Whether we have any child left, exited or not.
pub fn has_children() -> bool {
    // SAFETY: zeroed siginfo is a valid out-buffer; WNOWAIT leaves any
    // exited child for `reap_one`.
    let ret = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        libc::waitid(libc::P_ALL, 0, &mut info, flags)
    };
    ret == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ECHILD)
}

/// Signals a whole process group. Callers make sure the group id is still
/// pinned (its leader unreaped, or members left), so it cannot be reused.
pub fn signal_group(pgid: u32, sig: libc::c_int) {
    // Never let 0 or 1 through: kill(0) is our own group, kill(-1) is everyone.
    if pgid > 1 && pgid <= i32::MAX as u32 {
        // SAFETY: plain kill; ESRCH (already gone) is fine.
        unsafe { libc::kill(-(pgid as i32), sig) };
    }
}

/// Whether any process is still in the process group.
pub fn group_exists(pgid: u32) -> bool {
    if pgid <= 1 || pgid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence.
    let ret = unsafe { libc::kill(-(pgid as i32), 0) };
    ret == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Sends `sig` to every live (non-zombie) process below us in the process
/// tree, whatever its process group or session: this catches processes that
/// left their resource's group. Returns how many there were.
pub fn signal_descendants(sig: libc::c_int) -> usize {
    let live = live_descendants();
    for &pid in &live {
        // SAFETY: plain kill. The pid was our descendant a moment ago; reuse
        // in between would need the pid space to wrap in microseconds.
        unsafe { libc::kill(pid, sig) };
    }
    live.len()
}

/// Live (non-zombie) descendants of this process, read from /proc.
pub fn live_descendants() -> Vec<i32> {
    let mut children: HashMap<i32, Vec<(i32, bool)>> = HashMap::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        // The process may be gone already; then it needs no killing.
        if let Some((state, ppid)) = read_stat(pid) {
            children.entry(ppid).or_default().push((pid, state == 'Z'));
        }
    }
    let mut live = Vec::new();
    let mut queue = vec![std::process::id() as i32];
    while let Some(parent) = queue.pop() {
        for &(pid, zombie) in children.get(&parent).into_iter().flatten() {
            if !zombie {
                live.push(pid);
            }
            queue.push(pid);
        }
    }
    live
}

/// State letter and parent pid from /proc/PID/stat.
fn read_stat(pid: i32) -> Option<(char, i32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: skip past the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Start time of a process in clock ticks since boot (/proc/PID/stat field 22).
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    // `rest` starts at field 3 (state); field 22 is 19 further.
    rest.split(' ').nth(19)?.parse().ok()
}

/// The process `pid` exists, is not a zombie, and started at `start_ticks` (so the pid was
/// not reused), and it still leads its own process group.
pub fn is_alive(pid: u32, start_ticks: u64) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
        return false;
    };
    let fields: Vec<&str> = rest.split(' ').collect();
    let state = fields.first().and_then(|f| f.chars().next());
    let pgrp = fields.get(2).and_then(|f| f.parse::<u32>().ok());
    let ticks = fields.get(19).and_then(|f| f.parse::<u64>().ok());
    !matches!(state, None | Some('Z') | Some('X'))
        && pgrp == Some(pid)
        && ticks == Some(start_ticks)
}

/// Whether any live (non-zombie) process is in the process group. Slower than
/// `group_exists` (reads /proc), for groups whose leader is not our child.
pub fn group_has_live_members(pgid: u32) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            return false;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
            return false;
        };
        let mut fields = rest.split(' ');
        let state = fields.next().and_then(|f| f.chars().next());
        let pgrp = fields.nth(1).and_then(|f| f.parse::<u32>().ok());
        pgrp == Some(pgid) && !matches!(state, Some('Z') | Some('X'))
    })
}

/// A user's uid and primary gid, for running a resource as that user.
pub fn lookup_user(name: &str) -> io::Result<(u32, u32)> {
    let c_name = std::ffi::CString::new(name)
        .map_err(|_| io::Error::other(format!("bad user name {name:?}")))?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: zeroed passwd is a valid out-struct; buf outlives the call and its size is given.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let ret = unsafe {
        libc::getpwnam_r(
            c_name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if ret != 0 || found.is_null() {
        return Err(io::Error::other(format!("unknown user {name:?}")));
    }
    Ok((pwd.pw_uid, pwd.pw_gid))
}

/// Sets up a child the host will own: working directory, user, and a session of its own
/// (so its whole process group can be killed at once, at a timeout or a lease expiry).
pub fn prepare_child(
    command: &mut std::process::Command,
    cwd: Option<&std::path::Path>,
    user: Option<&str>,
) -> io::Result<()> {
    use std::os::unix::process::CommandExt;
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    if let Some(user) = user {
        let (uid, gid) = lookup_user(user)?;
        command.uid(uid).gid(gid);
    }
    // SAFETY: setsid is async-signal-safe, fine between fork and exec.
    unsafe {
        command.pre_exec(|| match libc::setsid() {
            -1 => Err(io::Error::last_os_error()),
            _ => Ok(()),
        });
    }
    Ok(())
}
