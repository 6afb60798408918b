//! Agent calls (`run`), a host replaced after it died (`respawn`, `adopt`), and resources
//! run as another user, with real processes through the test runner binary.

use std::path::Path;
use std::time::{Duration, Instant};

use baton_host::{
    monotonic_now_ns, AdoptRequest, HostError, HostEvent, HostHandle, LeaseSender, RunRequest,
    StartRequest,
};
use tokio::sync::mpsc::Receiver;

struct Host {
    handle: HostHandle,
    lease: LeaseSender,
    events: Receiver<HostEvent>,
    _dir: tempfile::TempDir,
}

fn spawn_host() -> Host {
    let dir = tempfile::tempdir().unwrap();
    let exe = Path::new(env!("CARGO_BIN_EXE_baton-host-runner"));
    let (handle, lease, events) = HostHandle::spawn(exe, &dir.path().join("host.log")).unwrap();
    Host {
        handle,
        lease,
        events,
        _dir: dir,
    }
}

impl Host {
    fn lease_for(&self, d: Duration) {
        let deadline = monotonic_now_ns() + d.as_nanos() as u64;
        self.lease.renew(deadline).unwrap();
    }
}

fn shell(label: &str, script: &str, timeout_ms: u64) -> RunRequest {
    RunRequest {
        label: label.into(),
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        timeout_ms,
        ..RunRequest::default()
    }
}

fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    !matches!(state, None | Some('Z'))
}

async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

#[tokio::test]
async fn run_returns_code_and_output_tails() {
    // Checks exit code, stdout and stderr come back, env is passed, and no lease is needed.
    let host = spawn_host();
    let mut req = shell("t", "echo out $A; echo err >&2; exit 7", 5_000);
    req.env.insert("A".into(), "x".into());
    let result = host.handle.run(req).await.unwrap();
    assert_eq!(result.code, Some(7));
    assert_eq!(result.stdout, "out x\n");
    assert_eq!(result.stderr, "err\n");
    assert!(!result.timed_out);
    let mut big = shell(
        "big",
        "head -c 100000 /dev/zero | tr '\\0' a; echo END",
        5_000,
    );
    big.output_max = Some(10);
    let result = host.handle.run(big).await.unwrap();
    assert_eq!(result.stdout, "aaaaaaEND\n", "the tail is kept");
}

#[tokio::test]
async fn a_hanging_run_is_killed_with_its_group_at_its_timeout() {
    // Checks a run that overruns is SIGKILLed, its children too, close to its timeout.
    let host = spawn_host();
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let script = format!("sleep 60 & echo $! > {}; sleep 60", pids.display());
    let started = Instant::now();
    let result = host.handle.run(shell("hang", &script, 300)).await.unwrap();
    let elapsed = started.elapsed();
    assert!(result.timed_out);
    assert_eq!(result.signal, Some(libc::SIGKILL));
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    let child: u32 = std::fs::read_to_string(&pids)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(eventually(Duration::from_secs(2), || !alive(child)).await);
}

#[tokio::test]
async fn a_daemon_left_behind_does_not_hold_the_run() {
    // Checks a run that leaves a process holding its stdout open still returns promptly.
    let host = spawn_host();
    let script = "setsid sleep 5 & echo started";
    let started = Instant::now();
    let result = host.handle.run(shell("bg", script, 5_000)).await.unwrap();
    assert_eq!(result.code, Some(0));
    assert_eq!(result.stdout, "started\n");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn runs_that_need_a_lease_are_refused_without_one() {
    // Checks an agent's start (needs_lease) is refused before the first renewal.
    let host = spawn_host();
    let mut req = shell("start", "true", 1_000);
    req.needs_lease = true;
    let refused = host.handle.run(req.clone()).await;
    assert!(matches!(refused, Err(HostError::NoLease)), "{refused:?}");
    host.lease_for(Duration::from_secs(30));
    assert_eq!(host.handle.run(req).await.unwrap().code, Some(0));
}

#[tokio::test]
async fn a_respawned_host_adopts_resources_and_enforces_the_lease() {
    // Checks that after the host is SIGKILLed its resource keeps running, a new host adopts
    // it (refusing a wrong start time), reports its exit, and kills it at lease expiry.
    let mut host = spawn_host();
    host.lease_for(Duration::from_secs(30));
    let req = StartRequest {
        resource: "app".into(),
        command: "sleep 60".into(),
        ..StartRequest::default()
    };
    let started = host.handle.start_process(req).await.unwrap();
    let old_host = host.handle.pid();
    // SAFETY: signals our own child.
    unsafe { libc::kill(old_host as i32, libc::SIGKILL) };
    let exited = tokio::time::timeout(Duration::from_secs(5), host.events.recv()).await;
    assert_eq!(
        exited.unwrap(),
        Some(HostEvent::HostExited { pid: old_host })
    );
    assert!(alive(started.pid), "the resource outlives its host");

    let new_host = host.handle.respawn().unwrap();
    assert_ne!(new_host, old_host);
    let wrong = AdoptRequest {
        resource: "app".into(),
        pid: started.pid,
        start_ticks: started.start_ticks + 1,
    };
    assert!(
        host.handle.adopt(wrong).await.is_err(),
        "a reused pid is refused"
    );
    let adopt = AdoptRequest {
        resource: "app".into(),
        pid: started.pid,
        start_ticks: started.start_ticks,
    };
    // The lease was handed over at respawn: no renewal needed.
    host.handle.adopt(adopt).await.unwrap();
    let status = host.handle.status().await.unwrap();
    assert_eq!(status, vec![("app".to_string(), started.pid)]);
    host.lease.revoke();
    let event = tokio::time::timeout(Duration::from_secs(5), host.events.recv()).await;
    let event = event.unwrap().unwrap();
    assert!(
        matches!(&event, HostEvent::LeaseExpired { killed } if killed == &["app".to_string()]),
        "{event:?}"
    );
    assert!(eventually(Duration::from_secs(2), || !alive(started.pid)).await);
    let exited = tokio::time::timeout(Duration::from_secs(5), host.events.recv()).await;
    let exited = exited.unwrap().unwrap();
    assert!(
        matches!(&exited, HostEvent::Exited { resource, code: None, .. } if resource == "app"),
        "{exited:?}"
    );
}

#[tokio::test]
async fn a_resource_runs_as_its_user() {
    // Checks `user` switches the resource's uid, and an unknown user is refused.
    let host = spawn_host();
    host.lease_for(Duration::from_secs(30));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("id");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let req = StartRequest {
        resource: "who".into(),
        command: format!("id -u > {}", out.display()),
        user: Some("nobody".into()),
        ..StartRequest::default()
    };
    host.handle.start(req.clone()).await.unwrap();
    assert!(eventually(Duration::from_secs(2), || out.exists()).await);
    assert!(
        eventually(Duration::from_secs(2), || {
            std::fs::read_to_string(&out).is_ok_and(|id| id.trim() == "65534")
        })
        .await
    );
    let unknown = StartRequest {
        resource: "who2".into(),
        user: Some("no-such-user-here".into()),
        ..req
    };
    let refused = host.handle.start(unknown).await;
    assert!(
        matches!(&refused, Err(HostError::Refused(e)) if e.contains("unknown user")),
        "{refused:?}"
    );
}
