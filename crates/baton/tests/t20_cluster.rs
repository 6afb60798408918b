//! Integration tests with real daemon processes on private loopback addresses: create and
//! join, failover of a killed owner, restart of everything, loss of the coordinator, an
//! isolated node stopping its resources, a paused daemon, and join-token refusals.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use baton_client::dto::{CreateGroup, JoinRequest};
use baton_testkit::{http, procs, LocalCluster, Options};

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_baton"))
}

async fn cluster(size: usize) -> LocalCluster {
    LocalCluster::start(&exe(), &Options::nodes(size))
        .await
        .expect("cluster starts")
}

/// Pids of `serve-http` processes for a role address: how many copies of the role run.
fn role_processes(addr: std::net::SocketAddr) -> Vec<i32> {
    procs::with_cmdline(&format!("serve-http --addr {addr}"))
}

async fn answer_from(addr: std::net::SocketAddr, timeout: Duration) -> Option<String> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        let body = tokio::task::spawn_blocking(move || http::get(addr, Duration::from_millis(200)))
            .await
            .ok()
            .flatten();
        if body.is_some() {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// The CLI against the test cluster, parsing `--json` output.
fn cli_json(cluster: &LocalCluster, args: &[&str]) -> serde_json::Value {
    let output = Command::new(exe())
        .arg("--config")
        .arg(&cluster.config_path)
        .arg("--json")
        .args(args)
        .output()
        .expect("the CLI runs");
    assert!(
        output.status.success(),
        "baton {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "baton {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn t21_three_nodes_join_and_cli_json_parses() {
    // Creates a cluster and joins two nodes with one-time tokens, then reads it via the CLI.
    let cluster = cluster(3).await;
    let nodes = cli_json(&cluster, &["node", "list"]);
    let nodes = nodes.as_array().expect("a list of nodes");
    assert_eq!(nodes.len(), 3);
    assert!(nodes.iter().all(|n| n["state"] == "Up"), "{nodes:?}");
    let info = cli_json(&cluster, &["cluster", "show"]);
    assert_eq!(info["has_quorum"], true);
    cli_json(&cluster, &["group", "create", "db", "--preferred", "n3,n1"]);
    let groups = cli_json(&cluster, &["group", "list"]);
    assert_eq!(groups[0]["name"], "db");
    assert_eq!(
        groups[0]["preferred_owners"],
        serde_json::json!(["n3", "n1"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn t22_killed_owner_fails_over_to_next_preferred_exactly_once() {
    // SIGKILL the owner (daemon, host, role): the role answers from the next preferred owner,
    // and exactly one copy of it runs.
    let mut cluster = cluster(3).await;
    let addr = cluster.role_addr(100, 8080);
    let group = cluster
        .create_http_role("web", addr)
        .await
        .expect("role online");
    assert_eq!(group.owner.as_deref(), Some("n1"));
    assert!(answer_from(addr, Duration::from_secs(5))
        .await
        .expect("answers")
        .contains("from n1 "));
    cluster.kill("n1").unwrap();
    let group = cluster
        .wait_group_online("web", Some("n1"), Duration::from_secs(20))
        .await
        .expect("failover");
    assert_eq!(group.owner.as_deref(), Some("n2"), "next preferred owner");
    assert_eq!(group.generation, 2);
    assert!(
        group.last_reason.contains("n1"),
        "the reason names the lost owner: {}",
        group.last_reason
    );
    let body = answer_from(addr, Duration::from_secs(5))
        .await
        .expect("answers after failover");
    assert!(body.contains("from n2 generation 2"), "{body}");
    assert_eq!(
        role_processes(addr).len(),
        1,
        "exactly one copy of the role runs"
    );
    let nodes = cluster.nodes_info().await;
    assert_eq!(
        nodes
            .iter()
            .find(|n| n.name == "n1")
            .map(|n| n.state.as_str()),
        Some("Down")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn t23_configuration_survives_a_full_restart() {
    // Stops every daemon, starts them again: groups, resources and placements come back.
    let mut cluster = cluster(3).await;
    let addr = cluster.role_addr(101, 8080);
    cluster
        .create_http_role("web", addr)
        .await
        .expect("role online");
    for name in ["keep1", "keep2"] {
        cluster
            .client
            .create_group(&CreateGroup {
                name: name.into(),
                preferred_owners: vec![],
            })
            .await
            .unwrap();
    }
    for name in ["n1", "n2", "n3"] {
        cluster.kill(name).unwrap();
    }
    // SIGKILL is delivered at once, but a loaded machine takes a moment to run the exit.
    let killed_at = Instant::now();
    while !role_processes(addr).is_empty() && killed_at.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        role_processes(addr).is_empty(),
        "the role died with its node"
    );
    for name in ["n1", "n2", "n3"] {
        cluster.restart(name).unwrap();
    }
    cluster
        .wait_all_up(Duration::from_secs(60))
        .await
        .expect("all back up");
    let groups: Vec<String> = cluster
        .client
        .groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(groups, vec!["keep1", "keep2", "web"]);
    assert_eq!(cluster.client.resources().await.unwrap().len(), 1);
    cluster
        .wait_group_online("web", None, Duration::from_secs(30))
        .await
        .expect("web online again");
    assert!(answer_from(addr, Duration::from_secs(10)).await.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn t24_killed_coordinator_is_replaced_and_no_acknowledged_change_is_lost() {
    // Ten acknowledged changes, then the coordinator is killed: a new one is elected and
    // every change is still there.
    let mut cluster = cluster(3).await;
    for index in 0..10 {
        let name = format!("g{index}");
        cluster
            .client
            .create_group(&CreateGroup {
                name,
                preferred_owners: vec![],
            })
            .await
            .expect("acknowledged");
    }
    let old = cluster
        .client
        .cluster()
        .await
        .unwrap()
        .coordinator
        .expect("a coordinator");
    cluster.kill(&old).unwrap();
    cluster
        .wait_until("a new coordinator", Duration::from_secs(20), |c| {
            let old = old.clone();
            async move {
                c.client
                    .cluster()
                    .await
                    .ok()
                    .and_then(|i| i.coordinator)
                    .is_some_and(|n| n != old)
            }
        })
        .await
        .unwrap();
    let groups = cluster.client.groups().await.unwrap();
    assert_eq!(groups.len(), 10, "no acknowledged change lost");
    cluster
        .client
        .create_group(&CreateGroup {
            name: "after".into(),
            preferred_owners: vec![],
        })
        .await
        .expect("writes work again");
}

#[tokio::test(flavor = "multi_thread")]
async fn t25_node_cut_off_from_quorum_stops_its_resources() {
    // Kill both peers of the owner: it can no longer renew its lease, so its resource host
    // stops the role although the owner's daemon lives.
    let mut cluster = cluster(3).await;
    let addr = cluster.role_addr(102, 8080);
    cluster
        .create_http_role("web", addr)
        .await
        .expect("role online");
    assert_eq!(role_processes(addr).len(), 1);
    cluster.kill("n2").unwrap();
    cluster.kill("n3").unwrap();
    let start = Instant::now();
    while !role_processes(addr).is_empty() && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        role_processes(addr).is_empty(),
        "the isolated owner stopped its resource"
    );
    assert!(
        procs::alive(cluster.node("n1").unwrap().pid.unwrap()),
        "its daemon still runs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn t26_paused_daemon_loses_its_resources_and_the_role_moves_once() {
    // SIGSTOP only the owner's daemon: its resource host stops the role when the lease runs
    // out, the role moves, and after SIGCONT the old owner does not start it again.
    let cluster = cluster(3).await;
    let addr = cluster.role_addr(103, 8080);
    cluster
        .create_http_role("web", addr)
        .await
        .expect("role online");
    cluster.signal_daemon("n1", libc::SIGSTOP).unwrap();
    let group = cluster
        .wait_group_online("web", Some("n1"), Duration::from_secs(20))
        .await
        .expect("moved");
    assert_ne!(group.owner.as_deref(), Some("n1"));
    cluster.signal_daemon("n1", libc::SIGCONT).unwrap();
    cluster
        .wait_all_up(Duration::from_secs(30))
        .await
        .expect("n1 is admitted again");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        role_processes(addr).len(),
        1,
        "exactly one copy after the thaw"
    );
    assert_eq!(
        cluster.client.group("web").await.unwrap().owner,
        group.owner
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn t27_bad_and_reused_join_tokens_are_refused() {
    let cluster = cluster(1).await;
    let first = cluster.nodes[0].addr.to_string();
    let token = cluster
        .client
        .create_join_token(&baton_client::dto::CreateJoinToken { ttl_s: 600 })
        .await
        .unwrap()
        .token;
    let (token_id, secret, fingerprint) = baton_client::parse_join_token(&token).unwrap();
    let request = |secret: &str, last: u8| JoinRequest {
        token_id: token_id.clone(),
        secret: secret.to_string(),
        name: None,
        addr: cluster.role_addr(last, 7400).to_string(),
    };
    let wrong = baton_client::join(&first, &fingerprint, &request(&"0".repeat(32), 20))
        .await
        .unwrap_err();
    assert!(wrong.to_string().contains("wrong token secret"), "{wrong}");
    baton_client::join(&first, &fingerprint, &request(&secret, 21))
        .await
        .expect("the right token admits once");
    let reused = baton_client::join(&first, &fingerprint, &request(&secret, 22))
        .await
        .unwrap_err();
    assert!(reused.to_string().contains("already used"), "{reused}");
    let other_ca = "ab".repeat(32);
    let pinned = baton_client::join(&first, &other_ca, &request(&secret, 23))
        .await
        .unwrap_err();
    assert!(
        pinned.is_unreachable() || pinned.to_string().contains("certificate"),
        "{pinned}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn t28_second_daemon_on_a_data_dir_is_refused() {
    let cluster = cluster(1).await;
    let output = Command::new(exe())
        .args(["daemon", "--data-dir"])
        .arg(&cluster.nodes[0].data_dir)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("another baton daemon"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn t29_pause_with_drain_moves_groups_away_and_evict_removes_the_node() {
    // Pausing the owner with --drain moves its role to another node and keeps new ones off;
    // evicting an empty node removes it from the membership.
    let cluster = cluster(3).await;
    let addr = cluster.role_addr(104, 8080);
    cluster
        .create_http_role("web", addr)
        .await
        .expect("role online");
    cli_json(&cluster, &["node", "pause", "n1", "--drain"]);
    let group = cluster
        .wait_group_online("web", Some("n1"), Duration::from_secs(20))
        .await
        .expect("drained");
    assert_ne!(group.owner.as_deref(), Some("n1"));
    let nodes = cluster.nodes_info().await;
    assert_eq!(
        nodes
            .iter()
            .find(|n| n.name == "n1")
            .map(|n| n.state.as_str()),
        Some("Paused")
    );
    cli_json(&cluster, &["node", "resume", "n1"]);
    let idle = if group.owner.as_deref() == Some("n2") {
        "n3"
    } else {
        "n2"
    };
    let output = Command::new(exe())
        .arg("--config")
        .arg(&cluster.config_path)
        .args(["node", "evict", idle])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    cluster
        .wait_until(
            "the evicted node is gone",
            Duration::from_secs(10),
            |c| async move { c.nodes_info().await.iter().all(|n| n.name != idle) },
        )
        .await
        .unwrap();
    let info = cluster.client.cluster().await.unwrap();
    assert_eq!(info.votes_total, 2);
}

#[test]
fn t30_daemon_on_a_missing_data_dir_and_create_on_a_used_port_fail_clearly() {
    let missing = Command::new(exe())
        .args(["daemon", "--data-dir", "/nonexistent/baton-test"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("does not exist") && stderr.contains("cluster create"),
        "{stderr}"
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let used = listener.local_addr().unwrap().to_string();
    let dir = std::env::temp_dir().join(format!("baton-port-test-{}", std::process::id()));
    let output = Command::new(exe())
        .args(["cluster", "create", "x", "--listen", &used, "--data-dir"])
        .arg(&dir)
        .env("BATON_CONFIG", dir.join("client.json"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot listen on") && stderr.contains("--listen"),
        "{stderr}"
    );
    assert!(!dir.join("identity.json").exists(), "nothing written");
    let _ = std::fs::remove_dir_all(&dir);
}
