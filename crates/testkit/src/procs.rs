//! Process trees read from /proc: a node is its daemon plus every descendant (the resource
//! host and the resources, which the host keeps as its children by being a subreaper).

use std::collections::BTreeSet;

/// `(pid, parent pid, state)` of every process.
fn processes() -> Vec<(i32, i32, char)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The command name may contain spaces: fields start after the last ')'.
            let rest = &stat[stat.rfind(')')? + 2..];
            let mut fields = rest.split(' ');
            let state = fields.next()?.chars().next()?;
            let parent = fields.next()?.parse().ok()?;
            Some((pid, parent, state))
        })
        .collect()
}

/// `root` and all its descendants.
pub fn tree(root: i32) -> BTreeSet<i32> {
    let all = processes();
    let mut found = BTreeSet::from([root]);
    loop {
        let before = found.len();
        for (pid, parent, _) in &all {
            if found.contains(parent) {
                found.insert(*pid);
            }
        }
        if found.len() == before {
            return found;
        }
    }
}

/// Whether `pid` runs (a zombie is dead, never "still running").
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 2..].chars().next())
            .is_some_and(|s| s != 'Z'),
        Err(_) => false,
    }
}

/// Sends `signal` to a whole tree at once: stop everything first so no member reacts to the
/// others' deaths, then deliver the signal.
pub fn signal_tree(root: i32, signal: i32) {
    let members = tree(root);
    for pid in &members {
        // SAFETY: kill(2) on processes this test harness started (the node's tree).
        unsafe { libc::kill(*pid, libc::SIGSTOP) };
    }
    for pid in &members {
        // SAFETY: as above.
        unsafe {
            libc::kill(*pid, signal);
            libc::kill(*pid, libc::SIGCONT);
        }
    }
}

/// Reaps a child of this process if it has exited (the daemons we spawned are our children).
pub fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: waitpid on our own child, non-blocking.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
}

/// Live processes whose command line contains `needle`: how tests count copies of a resource.
pub fn with_cmdline(needle: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| alive(*pid))
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline)
                .replace('\0', " ")
                .contains(needle)
        })
        .collect()
}
