//! Integration tests of resources on real 3-node clusters: health checks, restarts in place
//! and failover after the restart threshold, the failover policy, failback, OCF agents and
//! processes under the real resource host, hanging agents, and a killed resource host.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use baton_client::dto::GroupInfo;
use baton_testkit::{procs, LocalCluster, Options};

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_baton"))
}

async fn cluster() -> LocalCluster {
    LocalCluster::start(&exe(), &Options::nodes(3))
        .await
        .expect("cluster starts")
}

/// Runs the CLI against the cluster.
fn baton(cluster: &LocalCluster, args: &[&str]) -> Output {
    Command::new(exe())
        .arg("--config")
        .arg(&cluster.config_path)
        .args(args)
        .output()
        .expect("the CLI runs")
}

/// Runs the CLI and insists on success; returns stdout.
fn ok(cluster: &LocalCluster, args: &[&str]) -> String {
    let output = baton(cluster, args);
    assert!(
        output.status.success(),
        "baton {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn json(cluster: &LocalCluster, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(cluster, &all)).expect("JSON output")
}

/// Polls the group until `check` holds; panics with the last state after `timeout`.
async fn wait_group(
    cluster: &LocalCluster,
    name: &str,
    timeout: Duration,
    what: &str,
    check: impl Fn(&GroupInfo) -> bool,
) -> GroupInfo {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < timeout {
        if let Ok(group) = cluster.client.group(name).await {
            if check(&group) {
                return group;
            }
            last = Some(group);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "group {name}: not {what} within {timeout:?}; last: {last:#?}; logs in {}",
        cluster.root.display()
    );
}

async fn wait_online_on(cluster: &LocalCluster, name: &str, node: &str) -> GroupInfo {
    let what = format!("online on {node}");
    wait_group(cluster, name, Duration::from_secs(20), &what, |g| {
        g.status == "Online" && g.owner.as_deref() == Some(node)
    })
    .await
}

/// Polls `resource show` until the resource is in `state`; returns it as JSON.
async fn wait_resource(cluster: &LocalCluster, name: &str, state: &str) -> serde_json::Value {
    let start = Instant::now();
    let mut resource = serde_json::Value::Null;
    while start.elapsed() < Duration::from_secs(10) {
        resource = json(cluster, &["resource", "show", name]);
        if resource["state"] == state {
            return resource;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("resource {name} not {state} within 10 s: {resource:#}");
}

fn events(cluster: &LocalCluster) -> String {
    ok(cluster, &["events", "--limit", "500"])
}

/// A group with preferred owners n1, n2, n3 and one process resource `app` whose IsAlive
/// check fails on a node once the file `sick-NODE` exists in `dir`.
fn health_checked_group(cluster: &LocalCluster, dir: &Path, settings: &[&str]) {
    ok(
        cluster,
        &["group", "create", "g", "--preferred", "n1,n2,n3"],
    );
    let check = format!("param.check=test ! -e {}/sick-$BATON_NODE", dir.display());
    ok(
        cluster,
        &[
            "resource",
            "create",
            "app",
            "--group",
            "g",
            "--type",
            "process",
            "--param",
            "command=exec sleep 600",
        ],
    );
    let mut set = vec!["resource", "set", "app", check.as_str()];
    set.extend_from_slice(&["looks_alive=200ms", "is_alive=200ms", "pending_timeout=5s"]);
    set.extend_from_slice(settings);
    ok(cluster, &set);
}

/// Pids of processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<i32> {
    procs::with_cmdline(needle)
}

#[tokio::test(flavor = "multi_thread")]
async fn t31_failing_health_check_restarts_in_place_then_fails_over() {
    // Checks a resource whose IsAlive check fails is restarted in place once (restart=1/15m),
    // and when it fails again its group fails over to the next preferred owner, saying why.
    let cluster = cluster().await;
    let dir = cluster.root.join("health");
    std::fs::create_dir_all(&dir).unwrap();
    health_checked_group(&cluster, &dir, &["restart=1/15m"]);
    ok(&cluster, &["group", "online", "g"]);
    wait_online_on(&cluster, "g", "n1").await;
    std::fs::write(dir.join("sick-n1"), "").unwrap();
    let group = wait_online_on(&cluster, "g", "n2").await;
    let history = events(&cluster);
    assert!(
        history.contains("resource app restarting: resource app failed: restart 1 of 1 in 15 min"),
        "{history}"
    );
    assert!(
        group
            .last_reason
            .contains("failover: resource app failed on n1 after 1 restart(s) in 15 min"),
        "{}",
        group.last_reason
    );
    assert_eq!(group.failovers_recent, 1, "counted by the failover policy");
    let app = wait_resource(&cluster, "app", "Online").await;
    assert_eq!(app["owner"], "n2");
    assert_eq!(
        app["restarts_recent"], 0,
        "a new placement starts a new restart budget"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn t32_group_over_its_failover_threshold_stays_failed_with_the_reason() {
    // Checks failover_threshold=1: the first failure fails over, the second leaves the group
    // failed where it is, and `group show` says why.
    let cluster = cluster().await;
    let dir = cluster.root.join("health");
    std::fs::create_dir_all(&dir).unwrap();
    health_checked_group(&cluster, &dir, &["restart=0/15m"]);
    ok(
        &cluster,
        &[
            "group",
            "set",
            "g",
            "failover_threshold=1",
            "failover_period=1h",
        ],
    );
    ok(&cluster, &["group", "online", "g"]);
    wait_online_on(&cluster, "g", "n1").await;
    std::fs::write(dir.join("sick-n2"), "").unwrap();
    std::fs::write(dir.join("sick-n1"), "").unwrap();
    let group = wait_group(&cluster, "g", Duration::from_secs(20), "failed", |g| {
        g.status == "Failed"
    })
    .await;
    assert_eq!(
        group.owner.as_deref(),
        Some("n2"),
        "failed over once, then stayed"
    );
    let why =
        "1 failover(s) in the last 1 h reached the failover threshold 1: the group stays failed";
    assert!(
        group.status_message.contains(why),
        "{}",
        group.status_message
    );
    let shown = ok(&cluster, &["group", "show", "g"]);
    assert!(shown.contains(why), "{shown}");
    assert!(shown.contains("failover_threshold"), "{shown}");
    // Still failed a moment later: no further failover.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = cluster.client.group("g").await.unwrap();
    assert_eq!(
        (later.status.as_str(), later.generation),
        ("Failed", group.generation)
    );
}

/// `window:HH:MM-HH:MM` around (or away from) the current UTC time.
fn window_around_now(offset_hours: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let minute = (now / 60 + offset_hours * 60) % 1440;
    let (start, end) = ((minute + 1440 - 60) % 1440, (minute + 60) % 1440);
    format!(
        "window:{:02}:{:02}-{:02}:{:02}",
        start / 60,
        start % 60,
        end / 60,
        end % 60
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn t33_failback_immediate_windowed_and_prevented() {
    // Checks that when n1 comes back, groups with failback immediate or inside their window
    // return to it, while failback prevented or outside the window keeps them on n2.
    let cluster = cluster().await;
    let inside = window_around_now(0);
    let outside = window_around_now(12);
    let groups = [
        ("a", "failback=immediate", true),
        ("b", "failback=prevent", false),
        ("c", inside.as_str(), true),
        ("d", outside.as_str(), false),
    ];
    for (name, failback, _) in groups {
        ok(&cluster, &["group", "create", name, "--preferred", "n1,n2"]);
        let failback = format!("failback={}", failback.trim_start_matches("failback="));
        ok(&cluster, &["group", "set", name, &failback]);
        let resource = format!("{name}-app");
        ok(
            &cluster,
            &[
                "resource",
                "create",
                &resource,
                "--group",
                name,
                "--type",
                "process",
                "--param",
                "command=exec sleep 600",
            ],
        );
        ok(&cluster, &["group", "online", name]);
    }
    for (name, _, _) in groups {
        wait_online_on(&cluster, name, "n1").await;
    }
    ok(&cluster, &["node", "pause", "n1", "--drain"]);
    for (name, _, _) in groups {
        wait_online_on(&cluster, name, "n2").await;
    }
    ok(&cluster, &["node", "resume", "n1"]);
    for (name, _, back) in groups.iter().filter(|g| g.2) {
        let group = wait_online_on(&cluster, name, "n1").await;
        assert!(
            group.last_reason.contains("failback to preferred owner n1"),
            "{name}: {back}"
        );
    }
    for (name, _, _) in groups.iter().filter(|g| !g.2) {
        let group = wait_group(&cluster, name, Duration::from_secs(10), "explained", |g| {
            g.explanation
                .contains("preferred owner n1 is up but failback is")
        })
        .await;
        assert_eq!(group.owner.as_deref(), Some("n2"), "{name} stays");
    }
    let b = cluster.client.group("b").await.unwrap();
    assert!(
        b.explanation.ends_with("failback is prevented"),
        "{}",
        b.explanation
    );
    let d = cluster.client.group("d").await.unwrap();
    assert!(
        d.explanation.contains("outside its window"),
        "{}",
        d.explanation
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn t34_ocf_dummy_and_a_dependent_process_under_the_real_resource_host() {
    // Checks OCF meta-data via `resource-type show`, create-time parameter checks, and a
    // Dummy agent with a process depending on it: online in order, offline removes the state.
    let cluster = cluster().await;
    let dummy_type = json(&cluster, &["resource-type", "show", "ocf:heartbeat:Dummy"]);
    let names: Vec<&str> = dummy_type["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["state", "fake"]);
    ok(
        &cluster,
        &["group", "create", "web", "--preferred", "n1,n2,n3"],
    );
    let refused = baton(
        &cluster,
        &[
            "resource",
            "create",
            "vip",
            "--group",
            "web",
            "--type",
            "ocf:heartbeat:IPaddr2",
        ],
    );
    assert_eq!(refused.status.code(), Some(1));
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(error.contains("requires parameter `ip`"), "{error}");
    let refused = baton(
        &cluster,
        &[
            "resource",
            "create",
            "d",
            "--group",
            "web",
            "--type",
            "ocf:heartbeat:Dummy",
            "--param",
            "colour=red",
        ],
    );
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(
        error.contains("no parameter `colour`: accepted are state, fake"),
        "{error}"
    );
    let state = cluster.root.join("dummy.state");
    let state_param = format!("state={}", state.display());
    ok(
        &cluster,
        &[
            "resource",
            "create",
            "dummy",
            "--group",
            "web",
            "--type",
            "ocf:heartbeat:Dummy",
            "--param",
            &state_param,
        ],
    );
    ok(
        &cluster,
        &[
            "resource",
            "create",
            "app",
            "--group",
            "web",
            "--type",
            "process",
            "--param",
            "command=exec sleep 600",
        ],
    );
    let depend = json(&cluster, &["resource", "depend", "app", "dummy"]);
    assert_eq!(depend["depends_on"], "dummy");
    let cycle = baton(&cluster, &["resource", "depend", "dummy", "app"]);
    let error = String::from_utf8_lossy(&cycle.stderr);
    assert!(
        error.contains("dependency cycle in group web: dummy -> app -> dummy"),
        "{error}"
    );
    ok(&cluster, &["group", "online", "web"]);
    wait_online_on(&cluster, "web", "n1").await;
    assert!(state.exists(), "Dummy's state file");
    wait_resource(&cluster, "dummy", "Online").await;
    wait_resource(&cluster, "app", "Online").await;
    let history = events(&cluster);
    let dummy_online = history
        .find("resource dummy is Online")
        .expect("dummy online");
    let app_online = history.find("resource app is Online").expect("app online");
    assert!(dummy_online < app_online, "dependency first: {history}");
    ok(&cluster, &["group", "offline", "web"]);
    assert!(!state.exists(), "stop removed the state file");
}

#[tokio::test(flavor = "multi_thread")]
async fn t35_a_hanging_check_is_killed_at_its_timeout_and_the_resource_fails() {
    // Checks an IsAlive check that hangs is killed at the pending timeout (1 s), with its
    // process group, and the resource is marked failed with that reason.
    let cluster = cluster().await;
    ok(
        &cluster,
        &["group", "create", "g", "--preferred", "n1,n2,n3"],
    );
    ok(
        &cluster,
        &[
            "resource",
            "create",
            "app",
            "--group",
            "g",
            "--type",
            "process",
            "--param",
            "command=exec sleep 600",
            "--param",
            "check=sleep 3999",
        ],
    );
    ok(
        &cluster,
        &[
            "resource",
            "set",
            "app",
            "is_alive=200ms",
            "pending_timeout=1s",
            "restart=never",
        ],
    );
    let began = Instant::now();
    ok(&cluster, &["group", "online", "g"]);
    let app = wait_resource(&cluster, "app", "Failed").await;
    let message = app["status_message"].as_str().unwrap();
    assert!(
        message.contains("check `sleep 3999` timed out after 1000 ms"),
        "{message}"
    );
    assert!(began.elapsed() >= Duration::from_secs(1));
    assert!(
        processes_with("sleep 3999").is_empty(),
        "the hanging check was killed"
    );
    let daemon = cluster.node("n1").unwrap().pid.unwrap();
    assert!(procs::alive(daemon), "the daemon is unharmed");
    let group = cluster.client.group("g").await.unwrap();
    assert_eq!(
        group.owner.as_deref(),
        Some("n1"),
        "restart=never: no failover"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn t36_misconfigured_ocf_resource_fails_its_group_without_failover() {
    // Checks IPaddr2 with an invalid address (OCF_ERR_CONFIGURED) fails the group on its
    // owner with the agent's reason, and it is not tried on the other nodes.
    let cluster = cluster().await;
    ok(
        &cluster,
        &["group", "create", "g", "--preferred", "n1,n2,n3"],
    );
    ok(
        &cluster,
        &[
            "resource",
            "create",
            "vip",
            "--group",
            "g",
            "--type",
            "ocf:heartbeat:IPaddr2",
            "--param",
            "ip=notanip",
        ],
    );
    let online = baton(&cluster, &["group", "online", "g", "--timeout", "20s"]);
    assert_eq!(
        online.status.code(),
        Some(1),
        "the wait reports the failure"
    );
    let group = cluster.client.group("g").await.unwrap();
    assert_eq!(group.status, "Failed");
    assert!(
        group
            .status_message
            .contains("resource vip is misconfigured"),
        "{}",
        group.status_message
    );
    let vip = json(&cluster, &["resource", "show", "vip"]);
    assert_eq!(vip["misconfigured"], true);
    assert!(
        vip["status_message"].as_str().unwrap().contains("notanip"),
        "{vip:#}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = cluster.client.group("g").await.unwrap();
    assert_eq!(
        (later.owner.as_deref(), later.generation),
        (Some("n1"), 1),
        "never moved"
    );
}

/// The resource host of a node: the daemon's child running `resource-host`.
fn resource_host(daemon: i32) -> Option<i32> {
    procs::tree(daemon).into_iter().find(|pid| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        *pid != daemon
            && procs::alive(*pid)
            && String::from_utf8_lossy(&cmdline).contains("resource-host")
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn t37_killed_resource_host_spares_the_daemon_and_healthy_resources() {
    // Checks SIGKILL of the resource host: the daemon restarts it, the process keeps running
    // (adopted by the new host) and the Dummy is re-learned by a probe, the group never
    // moves; a later crash of the adopted process is still seen and restarted.
    let cluster = cluster().await;
    let state = cluster.root.join("d.state");
    ok(
        &cluster,
        &["group", "create", "g", "--preferred", "n1,n2,n3"],
    );
    let state_param = format!("state={}", state.display());
    ok(
        &cluster,
        &[
            "resource",
            "create",
            "dummy",
            "--group",
            "g",
            "--type",
            "ocf:heartbeat:Dummy",
            "--param",
            &state_param,
        ],
    );
    ok(
        &cluster,
        &[
            "resource",
            "create",
            "app",
            "--group",
            "g",
            "--type",
            "process",
            "--param",
            "command=exec sleep 3777",
        ],
    );
    ok(&cluster, &["resource", "set", "app", "looks_alive=200ms"]);
    ok(&cluster, &["group", "online", "g"]);
    wait_online_on(&cluster, "g", "n1").await;
    let daemon = cluster.node("n1").unwrap().pid.unwrap();
    let host = resource_host(daemon).expect("a resource host");
    let app = processes_with("sleep 3777");
    assert_eq!(app.len(), 1);
    // SAFETY: kill(2) on the resource host this test's cluster started.
    unsafe { libc::kill(host, libc::SIGKILL) };
    let start = Instant::now();
    let mut new_host = None;
    while start.elapsed() < Duration::from_secs(10) && new_host.is_none() {
        new_host = resource_host(daemon).filter(|pid| *pid != host);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(new_host.is_some(), "a new resource host runs");
    assert!(procs::alive(daemon), "the daemon keeps running");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        processes_with("sleep 3777"),
        app,
        "the same process still runs"
    );
    let group = cluster.client.group("g").await.unwrap();
    assert_eq!((group.status.as_str(), group.generation), ("Online", 1));
    assert_eq!(
        group.resource_states["dummy"], "Online",
        "re-learned by a probe"
    );
    assert!(state.exists());
    let history = events(&cluster);
    assert!(!history.contains("resource dummy is Failed"), "{history}");
    assert!(!history.contains("resource app is Failed"), "{history}");
    // SAFETY: kill(2) on the role's process this test started.
    unsafe { libc::kill(app[0], libc::SIGKILL) };
    let restarted = wait_group(&cluster, "g", Duration::from_secs(10), "restarted", |g| {
        g.status == "Online"
            && !processes_with("sleep 3777").is_empty()
            && processes_with("sleep 3777") != app
    })
    .await;
    assert_eq!(restarted.owner.as_deref(), Some("n1"), "restarted in place");
    let history = events(&cluster);
    assert!(history.contains("resource app restarting"), "{history}");
}
