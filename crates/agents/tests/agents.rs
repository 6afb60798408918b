//! The agents against a real resource host and real programs: Debian's OCF agents (Dummy,
//! IPaddr2's meta-data and its configuration check), process checks, and systemctl (skipped
//! loudly where systemd is not PID 1).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use baton_agents::{agent_for, ocf, systemd, Check, OpContext, Outcome};
use baton_host::{monotonic_now_ns, HostHandle, LeaseSender};
use baton_model::{Resource, ResourcePolicy, ResourceStatus, ResourceType};

struct Host {
    handle: HostHandle,
    _lease: LeaseSender,
    dir: tempfile::TempDir,
}

fn spawn_host() -> Host {
    let dir = tempfile::tempdir().unwrap();
    let exe = Path::new(env!("CARGO_BIN_EXE_baton-agents-host-runner"));
    let (handle, lease, _events) = HostHandle::spawn(exe, &dir.path().join("host.log")).unwrap();
    lease
        .renew(monotonic_now_ns() + Duration::from_secs(60).as_nanos() as u64)
        .unwrap();
    Host {
        handle,
        _lease: lease,
        dir,
    }
}

fn resource(name: &str, rtype: &str, params: &[(&str, &str)]) -> Resource {
    Resource {
        name: name.into(),
        group: "g".into(),
        resource_type: ResourceType::parse(rtype).expect("a known type"),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        policy: ResourcePolicy::default(),
        status: ResourceStatus::default(),
    }
}

fn context(host: &Host, resource: Resource, timeout: Duration) -> OpContext {
    OpContext {
        env: BTreeMap::from([("BATON_NODE".to_string(), "n1".to_string())]),
        timeout,
        rsctmp: host.dir.path().join("rsctmp"),
        log: None,
        resource,
    }
}

/// Debian's resource-agents must be installed (scripts/install-deps.sh does it).
fn require_resource_agents() {
    let dummy = ocf::ocf_root().join("resource.d/heartbeat/Dummy");
    assert!(
        dummy.is_file(),
        "{} is missing: run scripts/install-deps.sh (installs resource-agents)",
        dummy.display()
    );
}

#[tokio::test]
async fn ocf_dummy_start_monitor_stop() {
    // Checks the Dummy agent's whole lifecycle, including the not-running exit reason.
    require_resource_agents();
    let host = spawn_host();
    let state = host.dir.path().join("d1.state");
    let state_param = state.display().to_string();
    let dummy = resource("d1", "ocf:heartbeat:Dummy", &[("state", &state_param)]);
    let cx = context(&host, dummy, Duration::from_secs(20));
    let agent = agent_for(&cx.resource.resource_type);
    let probe = agent.check(&host.handle, &cx, Check::Probe, None).await;
    assert!(matches!(probe, Outcome::NotRunning(_)), "{probe:?}");
    let (started, process) = agent.start(&host.handle, &cx).await;
    assert_eq!(started, Outcome::Ok);
    assert_eq!(process, None);
    assert!(state.exists(), "Dummy's state file");
    for check in [Check::LooksAlive, Check::IsAlive, Check::Probe] {
        assert_eq!(
            agent.check(&host.handle, &cx, check, None).await,
            Outcome::Ok
        );
    }
    assert_eq!(agent.stop(&host.handle, &cx).await, Outcome::Ok);
    assert_eq!(
        agent.stop(&host.handle, &cx).await,
        Outcome::Ok,
        "stop twice"
    );
    let gone = agent
        .check(&host.handle, &cx, Check::LooksAlive, None)
        .await;
    assert_eq!(
        gone,
        Outcome::NotRunning("monitor: not running (7): No process state file found".into())
    );
}

#[tokio::test]
async fn ocf_dummy_default_state_goes_to_the_nodes_rsctmp() {
    // Checks HA_RSCTMP is per node: Dummy's default state file lands there.
    require_resource_agents();
    let host = spawn_host();
    let cx = context(
        &host,
        resource("d2", "ocf:heartbeat:Dummy", &[]),
        Duration::from_secs(20),
    );
    let agent = agent_for(&cx.resource.resource_type);
    assert_eq!(agent.start(&host.handle, &cx).await.0, Outcome::Ok);
    assert!(cx.rsctmp.join("Dummy-d2.state").exists());
    assert_eq!(agent.stop(&host.handle, &cx).await, Outcome::Ok);
}

#[tokio::test]
async fn ocf_meta_data_lists_parameters() {
    // Checks meta-data parsing on real agents: Dummy's optional and IPaddr2's required ones.
    require_resource_agents();
    let host = spawn_host();
    let dummy = ocf::metadata(&host.handle, "heartbeat", "Dummy")
        .await
        .unwrap();
    let names: Vec<&str> = dummy.parameters.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["state", "fake"]);
    assert_eq!(dummy.required().count(), 0);
    assert!(dummy.actions.iter().any(|a| a == "validate-all"));
    let ip = ocf::metadata(&host.handle, "heartbeat", "IPaddr2")
        .await
        .unwrap();
    let required: Vec<&str> = ip.required().map(|p| p.name.as_str()).collect();
    assert_eq!(required, ["ip"]);
    let missing = ocf::metadata(&host.handle, "heartbeat", "NoSuchAgent").await;
    let error = missing.unwrap_err().to_string();
    assert!(error.contains("not installed on this node"), "{error}");
    assert!(ocf::installed_agents().contains(&"ocf:heartbeat:Dummy".to_string()));
}

#[tokio::test]
async fn ocf_misconfiguration_is_reported_as_such() {
    // Checks IPaddr2 with a bad address is misconfigured (OCF_ERR_CONFIGURED) with the
    // agent's exit reason, found by validate-all before start touches anything.
    require_resource_agents();
    let host = spawn_host();
    let vip = resource("vip", "ocf:heartbeat:IPaddr2", &[("ip", "notanip")]);
    let cx = context(&host, vip, Duration::from_secs(20));
    let (outcome, _) = agent_for(&cx.resource.resource_type)
        .start(&host.handle, &cx)
        .await;
    match outcome {
        Outcome::Misconfigured(message) => {
            assert!(message.contains("notanip"), "{message}");
            assert!(
                message.starts_with("validate-all: misconfigured (6)"),
                "{message}"
            );
        }
        other => panic!("expected misconfigured, got {other:?}"),
    }
}

#[tokio::test]
async fn process_checks_and_a_hanging_check() {
    // Checks LooksAlive, a passing and a failing check command, and a hanging one killed at
    // the timeout.
    let host = spawn_host();
    let flag = host.dir.path().join("sick");
    let check = format!(
        "test ! -e {} || {{ echo sick >&2; exit 3; }}",
        flag.display()
    );
    let app = resource(
        "app",
        "process",
        &[("command", "sleep 60"), ("check", &check)],
    );
    let cx = context(&host, app, Duration::from_millis(500));
    let agent = agent_for(&cx.resource.resource_type);
    let (started, process) = agent.start(&host.handle, &cx).await;
    assert_eq!(started, Outcome::Ok);
    assert!(process.is_some_and(|p| p.pid > 1 && p.start_ticks > 0));
    assert_eq!(
        agent
            .check(&host.handle, &cx, Check::LooksAlive, None)
            .await,
        Outcome::Ok
    );
    assert_eq!(
        agent.check(&host.handle, &cx, Check::IsAlive, None).await,
        Outcome::Ok
    );
    std::fs::write(&flag, "").unwrap();
    let sick = agent.check(&host.handle, &cx, Check::IsAlive, None).await;
    assert!(
        matches!(&sick, Outcome::Failed(m) if m.ends_with("exited with code 3: sick")),
        "{sick:?}"
    );
    let mut hanging = cx.clone();
    hanging
        .resource
        .params
        .insert("check".into(), "sleep 30".into());
    let began = Instant::now();
    let hung = agent
        .check(&host.handle, &hanging, Check::IsAlive, None)
        .await;
    assert!(
        matches!(&hung, Outcome::Failed(m) if m.contains("timed out after 500 ms")),
        "{hung:?}"
    );
    assert!(began.elapsed() < Duration::from_secs(3));
    assert_eq!(agent.stop(&host.handle, &cx).await, Outcome::Ok);
    let gone = agent
        .check(&host.handle, &cx, Check::LooksAlive, None)
        .await;
    assert!(matches!(gone, Outcome::NotRunning(_)), "{gone:?}");
}

#[tokio::test]
async fn process_tcp_and_http_checks() {
    // Checks check_tcp and check_http against a tiny local server, then with it gone.
    let host = spawn_host();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(b"HTTP/1.0 200 OK\r\n\r\nok").await;
        }
    });
    let tcp = resource(
        "t",
        "process",
        &[("command", "sleep 60"), ("check_tcp", &addr.to_string())],
    );
    let url = format!("http://{addr}/health");
    let http = resource(
        "h",
        "process",
        &[("command", "sleep 60"), ("check_http", &url)],
    );
    for r in [tcp, http] {
        let cx = context(&host, r, Duration::from_secs(2));
        let agent = agent_for(&cx.resource.resource_type);
        assert_eq!(agent.start(&host.handle, &cx).await.0, Outcome::Ok);
        assert_eq!(
            agent.check(&host.handle, &cx, Check::IsAlive, None).await,
            Outcome::Ok
        );
    }
    server.abort();
    let _ = server.await;
    let cx = context(
        &host,
        resource(
            "t",
            "process",
            &[("command", "sleep 60"), ("check_tcp", &addr.to_string())],
        ),
        Duration::from_secs(2),
    );
    let refused = agent_for(&ResourceType::Process)
        .check(&host.handle, &cx, Check::IsAlive, None)
        .await;
    assert!(matches!(refused, Outcome::Failed(_)), "{refused:?}");
}

#[tokio::test]
async fn systemd_unit_lifecycle() {
    // Checks a unit's start, is-active and stop through systemctl, where systemd runs.
    let host = spawn_host();
    let unit = resource(
        "svc",
        "systemd",
        &[("unit", "baton-test-nonexistent.service")],
    );
    let cx = context(&host, unit, Duration::from_secs(10));
    let agent = agent_for(&cx.resource.resource_type);
    if !systemd::systemd_is_running() {
        eprintln!(
            "\n!!!!! SKIPPED systemd_unit_lifecycle: systemd is not PID 1 on this machine \
             (/run/systemd/system is missing), so no unit can be started. Only the failure \
             path was checked. !!!!!\n"
        );
        let (outcome, _) = agent.start(&host.handle, &cx).await;
        assert!(matches!(outcome, Outcome::Failed(_)), "{outcome:?}");
        return;
    }
    let (outcome, _) = agent.start(&host.handle, &cx).await;
    assert!(
        matches!(&outcome, Outcome::Failed(m) if m.contains("baton-test-nonexistent")),
        "{outcome:?}"
    );
    let check = agent
        .check(&host.handle, &cx, Check::LooksAlive, None)
        .await;
    assert!(matches!(check, Outcome::NotRunning(_)), "{check:?}");
}
