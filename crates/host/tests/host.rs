//! The resource host with real processes: spawns the test runner binary
//! (which calls `run_host`) through `HostHandle`.
//!
//! Time bounds are generous: these run on loaded 2-core machines.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use baton_host::{monotonic_now_ns, HostError, HostEvent, HostHandle, LeaseSender, StartRequest};
use tokio::sync::mpsc::Receiver;

struct Host {
    handle: HostHandle,
    lease: LeaseSender,
    events: Receiver<HostEvent>,
    dir: tempfile::TempDir,
}

fn spawn_host() -> Host {
    let dir = tempfile::tempdir().unwrap();
    let exe = Path::new(env!("CARGO_BIN_EXE_baton-host-runner"));
    let (handle, lease, events) = HostHandle::spawn(exe, &dir.path().join("host.log")).unwrap();
    Host {
        handle,
        lease,
        events,
        dir,
    }
}

impl Host {
    fn lease_for(&self, d: Duration) {
        self.lease
            .renew(monotonic_now_ns() + d.as_nanos() as u64)
            .unwrap();
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("host.log")).unwrap_or_default()
    }

    /// The next event, if one comes within `limit`.
    async fn event(&mut self, limit: Duration) -> Option<HostEvent> {
        tokio::time::timeout(limit, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// Skips events until one matches.
    async fn event_where(
        &mut self,
        limit: Duration,
        wanted: impl Fn(&HostEvent) -> bool,
    ) -> Option<HostEvent> {
        let until = Instant::now() + limit;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let event = self.event(left).await?;
            if wanted(&event) {
                return Some(event);
            }
        }
    }
}

fn request(resource: &str, command: &str) -> StartRequest {
    StartRequest {
        resource: resource.into(),
        command: command.into(),
        env: BTreeMap::new(),
        cwd: None,
        log: None,
        user: None,
    }
}

/// (state, ppid, pgrp) from /proc/PID/stat; None once the process is gone.
fn stat(pid: u32) -> Option<(char, u32, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, ppid, pgrp))
}

fn all_pids() -> Vec<u32> {
    let entries = fs::read_dir("/proc").unwrap().flatten();
    entries
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

fn group_members(pgrp: u32) -> Vec<u32> {
    let pids = all_pids().into_iter();
    pids.filter(|&pid| matches!(stat(pid), Some((_, _, g)) if g == pgrp))
        .collect()
}

fn children_of(parent: u32) -> Vec<(u32, char)> {
    let pids = all_pids().into_iter();
    pids.filter_map(|pid| match stat(pid) {
        Some((state, ppid, _)) if ppid == parent => Some((pid, state)),
        _ => None,
    })
    .collect()
}

/// Polls `cond` until it holds or `limit` passes.
async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while !cond() {
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

#[tokio::test]
async fn start_status_stop() {
    let host = spawn_host();
    host.lease_for(Duration::from_secs(5));
    let pid = host
        .handle
        .start(request("sleeper", "sleep 30"))
        .await
        .unwrap();
    assert_eq!(stat(pid).map(|s| s.2), Some(pid), "leads its own group");

    let again = host
        .handle
        .start(request("sleeper", "sleep 30"))
        .await
        .unwrap();
    assert_eq!(again, pid, "start is idempotent");
    let status = host.handle.status().await.unwrap();
    assert_eq!(status, vec![("sleeper".to_string(), pid)]);

    host.handle
        .stop("sleeper", Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(stat(pid), None, "stopped and reaped, not a zombie");
    assert!(host.handle.status().await.unwrap().is_empty());
    host.handle
        .stop("sleeper", Duration::from_secs(1))
        .await
        .expect("stopping a stopped resource is ok");
}

#[tokio::test]
async fn stop_escalates_to_sigkill() {
    let host = spawn_host();
    host.lease_for(Duration::from_secs(10));
    // Ignored signals stay ignored across exec, so sleep ignores TERM too.
    let command = "trap '' TERM; sleep 30 & sleep 30";
    let pid = host
        .handle
        .start(request("stubborn", command))
        .await
        .unwrap();
    assert!(eventually(Duration::from_secs(2), || group_members(pid).len() == 3).await);
    let members = group_members(pid);

    let started = Instant::now();
    host.handle
        .stop("stubborn", Duration::from_millis(300))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(250));
    for member in members {
        assert_eq!(stat(member), None, "group member {member} survived");
    }
}

#[tokio::test]
async fn lease_expiry_kills_the_whole_group() {
    let mut host = spawn_host();
    let renewed = Instant::now();
    host.lease_for(Duration::from_millis(300));
    let pid = host
        .handle
        .start(request("web", "sleep 30 & sleep 30"))
        .await
        .unwrap();
    assert!(eventually(Duration::from_millis(200), || group_members(pid).len() == 3).await);
    let members = group_members(pid);

    let expired = host
        .event_where(Duration::from_secs(2), |e| {
            matches!(e, HostEvent::LeaseExpired { .. })
        })
        .await
        .expect("lease_expired event");
    let elapsed = renewed.elapsed();
    assert_eq!(
        expired,
        HostEvent::LeaseExpired {
            killed: vec!["web".into()]
        }
    );
    assert!(
        elapsed >= Duration::from_millis(260),
        "killed early: {elapsed:?}"
    );
    let log = host.log();
    assert!(
        elapsed <= Duration::from_millis(700),
        "killed late: {elapsed:?}\n{log}"
    );
    // The event comes once everything is killed and reaped.
    for member in &members {
        assert_eq!(stat(*member), None, "{member} outlived the lease\n{log}");
    }
    let exited = host.event(Duration::from_secs(1)).await;
    assert_eq!(
        exited,
        Some(HostEvent::Exited {
            resource: "web".into(),
            pid,
            code: None,
            signal: Some(libc::SIGKILL)
        })
    );

    let refused = host.handle.start(request("web", "sleep 30")).await;
    assert!(matches!(refused, Err(HostError::NoLease)), "{refused:?}");
}

#[tokio::test]
async fn no_lease_at_first() {
    let host = spawn_host();
    let refused = host.handle.start(request("web", "sleep 30")).await;
    assert!(matches!(refused, Err(HostError::NoLease)), "{refused:?}");
    assert_eq!(refused.unwrap_err().to_string(), "no lease");
}

#[tokio::test]
async fn renewals_keep_resources_alive_until_revoked() {
    let mut host = spawn_host();
    host.lease_for(Duration::from_millis(300));
    let pid = host.handle.start(request("db", "sleep 30")).await.unwrap();

    // The heartbeat thread is a plain thread, outside the runtime.
    let lease = host.lease.clone();
    let heartbeat = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            lease.renew(monotonic_now_ns() + 300_000_000).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    heartbeat.join().unwrap();
    assert_eq!(
        host.event(Duration::ZERO).await,
        None,
        "no event while leased"
    );
    let status = host.handle.status().await.unwrap();
    assert_eq!(status, vec![("db".to_string(), pid)]);

    host.lease.revoke();
    let expired = host.event(Duration::from_secs(1)).await;
    assert_eq!(
        expired,
        Some(HostEvent::LeaseExpired {
            killed: vec!["db".into()]
        })
    );
    assert!(eventually(Duration::from_secs(1), || stat(pid).is_none()).await);
}

#[tokio::test]
async fn dropping_the_handle_kills_resources_and_the_host() {
    let mut host = spawn_host();
    host.lease_for(Duration::from_secs(30));
    let pid = host
        .handle
        .start(request("svc", "sleep 30 & sleep 30"))
        .await
        .unwrap();
    assert!(eventually(Duration::from_secs(2), || group_members(pid).len() == 3).await);
    let members = group_members(pid);
    let host_pid = host.handle.pid();

    drop(host.handle);
    // The host may report the resource's death on its way out; HostExited
    // comes last.
    let mut seen = Vec::new();
    while !matches!(seen.last(), Some(HostEvent::HostExited { .. })) {
        let next = tokio::time::timeout(Duration::from_secs(5), host.events.recv()).await;
        seen.push(
            next.expect("HostExited within 5 s")
                .expect("events end after HostExited"),
        );
    }
    assert_eq!(stat(host_pid), None, "host exited and was reaped");
    for member in members {
        assert_eq!(
            stat(member),
            None,
            "resource process {member} survived the host"
        );
    }
}

#[tokio::test]
async fn orphans_are_reaped() {
    let mut host = spawn_host();
    host.lease_for(Duration::from_secs(30));
    let host_pid = host.handle.pid();
    let leader = host
        .handle
        .start(request("forker", "sleep 0.5 & exit 0"))
        .await
        .unwrap();
    let exited = host.event(Duration::from_secs(2)).await;
    assert_eq!(
        exited,
        Some(HostEvent::Exited {
            resource: "forker".into(),
            pid: leader,
            code: Some(0),
            signal: None
        })
    );
    // The orphaned sleep now belongs to the host (subreaper), not to init.
    let orphans = group_members(leader);
    for orphan in &orphans {
        if let Some((state, ppid, _)) = stat(*orphan) {
            assert!(state == 'Z' || ppid == host_pid, "reparented to {ppid}");
        }
    }
    assert!(
        eventually(Duration::from_secs(3), || children_of(host_pid).is_empty()).await,
        "host children left: {:?}",
        children_of(host_pid)
    );
    assert!(orphans.iter().all(|&o| stat(o).is_none()));
}

#[tokio::test]
async fn exits_are_reported_with_code_or_signal() {
    let mut host = spawn_host();
    host.lease_for(Duration::from_secs(30));
    let pid = host.handle.start(request("fails", "exit 7")).await.unwrap();
    let exited = host.event(Duration::from_secs(2)).await;
    assert_eq!(
        exited,
        Some(HostEvent::Exited {
            resource: "fails".into(),
            pid,
            code: Some(7),
            signal: None
        })
    );
    let pid = host
        .handle
        .start(request("killed", "kill -KILL $$"))
        .await
        .unwrap();
    let exited = host.event(Duration::from_secs(2)).await;
    assert_eq!(
        exited,
        Some(HostEvent::Exited {
            resource: "killed".into(),
            pid,
            code: None,
            signal: Some(libc::SIGKILL)
        })
    );
    assert!(host.handle.status().await.unwrap().is_empty());
}

#[tokio::test]
async fn env_cwd_and_log_are_applied() {
    let mut host = spawn_host();
    host.lease_for(Duration::from_secs(30));
    let log = host.dir.path().join("res.log");
    let mut req = request("env", "echo \"$GREETING from $(pwd)\"; echo oops >&2");
    req.env.insert("GREETING".into(), "hello".into());
    req.cwd = Some(host.dir.path().to_path_buf());
    req.log = Some(log.clone());
    host.handle.start(req).await.unwrap();
    assert!(matches!(
        host.event(Duration::from_secs(2)).await,
        Some(HostEvent::Exited { code: Some(0), .. })
    ));
    let expected = format!("hello from {}\noops\n", host.dir.path().display());
    assert_eq!(fs::read_to_string(&log).unwrap(), expected);

    let mut bad = request("nowhere", "true");
    bad.cwd = Some(host.dir.path().join("missing"));
    let refused = host.handle.start(bad).await;
    assert!(matches!(refused, Err(HostError::Refused(_))), "{refused:?}");
}

#[tokio::test]
async fn stop_all_stops_everything() {
    let host = spawn_host();
    host.lease_for(Duration::from_secs(30));
    let a = host.handle.start(request("a", "sleep 30")).await.unwrap();
    // Escapes its resource's process group: stop_all gets it anyway.
    let b = host
        .handle
        .start(request("b", "setsid sleep 30 & sleep 30"))
        .await
        .unwrap();
    let host_pid = host.handle.pid();
    assert!(eventually(Duration::from_secs(2), || group_members(b).len() == 2).await);
    host.handle.stop_all(Duration::from_secs(1)).await.unwrap();
    assert_eq!(stat(a), None);
    assert_eq!(stat(b), None);
    assert!(
        eventually(Duration::from_secs(1), || children_of(host_pid).is_empty()).await,
        "left: {:?}",
        children_of(host_pid)
    );
    assert!(host.handle.status().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_stopped_host_times_out_requests() {
    let host = spawn_host();
    let pid = host.handle.pid() as i32;
    // SAFETY: signals our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let started = Instant::now();
    let result = host.handle.status().await;
    assert!(matches!(result, Err(HostError::Timeout(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(7));
    unsafe { libc::kill(pid, libc::SIGCONT) };
    // The late answer is dropped; the next request works.
    assert!(host.handle.status().await.unwrap().is_empty());
}

/// Speaks the wire protocol directly, and checks the backstop for a daemon
/// that dies while our stdin stays open: the host's parent changes.
#[test]
fn raw_protocol_and_parent_death() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixDatagram;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::sync::mpsc;

    let (lease, theirs) = UnixDatagram::pair().unwrap();
    let fd = theirs.as_raw_fd();
    // The host's parent is a shell that exits after 2 s. A background job's
    // stdin would be /dev/null, hence the detour through fd 4.
    let script = r#"exec 4<&0; "$0" resource-host <&4 4<&- & echo $!; exec sleep 2"#;
    let mut shell = Command::new("/bin/sh");
    shell
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_baton-host-runner"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    // SAFETY: dup2 is async-signal-safe.
    unsafe {
        shell.pre_exec(move || match libc::dup2(fd, 3) {
            -1 => Err(std::io::Error::last_os_error()),
            _ => Ok(()),
        });
    }
    let mut shell = shell.spawn().unwrap();
    drop(theirs);
    let mut input = shell.stdin.take().unwrap();
    let output = BufReader::new(shell.stdout.take().unwrap());
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in output.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || -> serde_json::Value {
        let line = lines.recv_timeout(Duration::from_secs(5)).expect("a line");
        serde_json::from_str(&line).unwrap_or(serde_json::Value::String(line))
    };
    let host_pid: u32 = next().as_u64().expect("host pid") as u32;

    let deadline = monotonic_now_ns() + 30_000_000_000;
    lease.send(&deadline.to_le_bytes()).unwrap();
    let requests = concat!(
        r#"{"op":"start","id":1,"resource":"r","command":"sleep 30","env":{"A":"1"}}"#,
        "\n",
        r#"{"op":"status","id":2}"#,
        "\n",
        r#"{"op":"bogus","id":3}"#,
        "\n",
        "not json\n",
        r#"{"op":"stop","id":4,"resource":"none","timeout_ms":100}"#,
        "\n",
    );
    input.write_all(requests.as_bytes()).unwrap();

    let started = next();
    assert_eq!(started["id"], 1);
    assert_eq!(started["ok"], true);
    let pid = started["pid"].as_u64().expect("pid") as u32;
    let status = next();
    assert_eq!(
        (status["id"].as_u64(), status["ok"].as_bool()),
        (Some(2), Some(true))
    );
    assert_eq!(status["resources"][0]["resource"], "r");
    assert_eq!(status["resources"][0]["pid"].as_u64(), Some(u64::from(pid)));
    assert_eq!(
        status["resources"][0]["start_ticks"],
        started["start_ticks"]
    );
    let bogus = next();
    assert_eq!(
        (bogus["id"].as_u64(), bogus["ok"].as_bool()),
        (Some(3), Some(false))
    );
    assert!(bogus["error"].as_str().unwrap().starts_with("bad request"));
    assert_eq!(next(), serde_json::json!({"id":4,"ok":true}));

    // The shell exits: the host's parent changes, and stdin is still open.
    shell.wait().unwrap();
    assert_eq!(
        next(),
        serde_json::json!({"event":"exited","resource":"r","pid":pid,"code":null,"signal":9})
    );
    assert!(
        lines.recv_timeout(Duration::from_secs(5)).is_err(),
        "output ends"
    );
    assert_eq!(stat(pid), None);
    // Reparented to init, which may or may not reap it in a container.
    let host_gone = || matches!(stat(host_pid), None | Some(('Z', _, _)));
    let until = Instant::now() + Duration::from_secs(5);
    while !host_gone() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(host_gone(), "host still running");
    drop(input);
}
