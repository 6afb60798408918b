//! `baton bench`: measurements on a real local 3-node cluster, printed as JSON.
//!
//! * `failover`: N times, SIGKILL the owner of an HTTP role and time from the kill to the
//!   first good answer from the new owner; the killed node is restarted between runs. Also
//!   reports each daemon's idle resident memory and planned-move times.
//! * `soak`: a healthy cluster with every core saturated by CPU burners for M minutes,
//!   counting node-down events (false alarms).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use baton_client::dto::MoveGroup;
use baton_testkit::{LocalCluster, Options};
use serde_json::json;

use crate::demo::{wait_answer, wait_answer_not_from};

/// Pacemaker 2.1 + Corosync 3.1 measured the same way on these machines (3 nodes, no
/// fencing): median seconds with its defaults, and with a 300 ms token.
const PACEMAKER_DEFAULT_S: f64 = 8.1;
const PACEMAKER_TOKEN_300MS_S: f64 = 1.9;
const PACEMAKER_MOVE_S: f64 = 0.5;

pub fn run_failover(
    runs: u32,
    json: bool,
    delay: Option<Duration>,
    threshold: Option<u32>,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(failover(runs.max(1), delay, threshold))?;
    print_report(&report, json);
    Ok(())
}

async fn failover(
    runs: u32,
    delay: Option<Duration>,
    threshold: Option<u32>,
) -> Result<serde_json::Value> {
    let exe = std::env::current_exe()?;
    let mut cluster = LocalCluster::start(
        &exe,
        &Options {
            size: 3,
            delay,
            threshold,
        },
    )
    .await?;
    let addr = cluster.role_addr(100, 8080);
    cluster.create_http_role("web", addr).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_mib = idle_rss_mib(&cluster);
    let moves = planned_moves(&cluster, 5).await?;
    let mut samples = Vec::new();
    let mut victims = Vec::new();
    for run in 0..runs {
        // A fresh role per run: the failover policy (nodes - 1 failovers in 6 h) would rightly
        // leave one role failed after two kills.
        let name = format!("bench{run}");
        let addr = cluster.role_addr(110 + (run % 100) as u8, 8080);
        // Rotate the preferred owner so the coordinator is killed in some runs too.
        let group = cluster
            .create_http_role_from(&name, addr, run as usize)
            .await?;
        let owner = group.owner.context("the role has no owner")?;
        let coordinator = cluster.client.cluster().await?.coordinator;
        victims.push(json!({ "node": owner, "was_coordinator": coordinator.as_deref() == Some(owner.as_str()) }));
        wait_answer(addr, Duration::from_secs(10))
            .await
            .context("no answer before the kill")?;
        let killed_at = Instant::now();
        cluster.kill(&owner)?;
        if wait_answer_not_from(addr, &owner, Duration::from_secs(30))
            .await
            .is_none()
        {
            cluster.keep();
            let root = cluster.root.display();
            anyhow::bail!(
                "run {}: no failover within 30 s; cluster kept in {root}",
                run + 1
            );
        }
        samples.push(killed_at.elapsed().as_secs_f64());
        eprintln!(
            "run {}: {owner} killed, answered after {:.3} s",
            run + 1,
            samples[samples.len() - 1]
        );
        cluster.restart(&owner)?;
        cluster.wait_all_up(Duration::from_secs(60)).await?;
        // Let the restarted node's start-up quiet period pass, as in a steady cluster.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    if std::env::var_os("BATON_BENCH_KEEP").is_some() {
        cluster.keep();
        eprintln!("cluster kept in {}", cluster.root.display());
    }
    let properties = cluster.client.cluster().await?.properties;
    let failover_median = median(&samples);
    let move_median = median(&moves);
    Ok(json!({
        "benchmark": "failover",
        "runs": runs,
        "median_s": failover_median,
        "min_s": samples.iter().cloned().fold(f64::INFINITY, f64::min),
        "max_s": samples.iter().cloned().fold(0.0, f64::max),
        "samples_s": samples,
        "victims": victims,
        "heartbeat": {
            "delay": properties.get("heartbeat.same_subnet.delay"),
            "threshold": properties.get("heartbeat.same_subnet.threshold"),
        },
        "pacemaker_default_median_s": PACEMAKER_DEFAULT_S,
        "speedup_vs_pacemaker_default": PACEMAKER_DEFAULT_S / failover_median,
        "speedup_vs_pacemaker_token_300ms": PACEMAKER_TOKEN_300MS_S / failover_median,
        "move_median_s": move_median,
        "move_samples_s": moves,
        "speedup_move_vs_pacemaker": PACEMAKER_MOVE_S / move_median,
        "idle_rss_mib": rss_mib,
    }))
}

/// Times `count` planned moves (`baton group move web`): from the request to the first
/// answer from the new owner.
async fn planned_moves(cluster: &LocalCluster, count: usize) -> Result<Vec<f64>> {
    let addr = cluster.role_addr(100, 8080);
    let mut samples = Vec::new();
    for _ in 0..count {
        let owner = cluster
            .client
            .group("web")
            .await?
            .owner
            .context("web has no owner")?;
        let started = Instant::now();
        cluster
            .client
            .move_group("web", &MoveGroup { to: None })
            .await?;
        wait_answer_not_from(addr, &owner, Duration::from_secs(30))
            .await
            .context("the move did not complete")?;
        samples.push(started.elapsed().as_secs_f64());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(samples)
}

/// Resident memory of each daemon (not its resource host) in MiB.
fn idle_rss_mib(cluster: &LocalCluster) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for node in &cluster.nodes {
        let Some(pid) = node.pid else { continue };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok());
        map.insert(
            node.name.clone(),
            json!(kib.map(|k| (k / 1024.0 * 10.0).round() / 10.0)),
        );
    }
    serde_json::Value::Object(map)
}

pub fn run_soak(minutes: u64, json: bool) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(soak(minutes))?;
    print_report(&report, json);
    Ok(())
}

async fn soak(minutes: u64) -> Result<serde_json::Value> {
    let exe = std::env::current_exe()?;
    let cluster = LocalCluster::start(&exe, &Options::nodes(3)).await?;
    let addr = cluster.role_addr(100, 8080);
    cluster.create_http_role("web", addr).await?;
    let events_before = cluster.client.events(500).await?.len();
    let burners = start_burners()?;
    let started = Instant::now();
    let deadline = Duration::from_secs(minutes * 60);
    let mut coordinator_changes = 0;
    let mut last_coordinator = cluster.client.cluster().await?.coordinator;
    while started.elapsed() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let coordinator = cluster
            .client
            .cluster()
            .await
            .ok()
            .and_then(|c| c.coordinator);
        if coordinator.is_some() && coordinator != last_coordinator {
            coordinator_changes += 1;
            last_coordinator = coordinator;
        }
    }
    stop_burners(burners);
    let events = cluster.client.events(500).await?;
    let downs: Vec<String> = events
        .iter()
        .skip(events_before.min(events.len()))
        .filter(|e| e.text.contains(" is down"))
        .map(|e| e.text.clone())
        .collect();
    let properties = cluster.client.cluster().await?.properties;
    Ok(json!({
        "benchmark": "soak",
        "minutes": minutes,
        "cpu_burners": burner_count(),
        "jitter": "not applied: the loopback cluster shares one interface with the whole machine; link loss and partitions are exercised by the chaos harness (tc netem is missing from this kernel)",
        "node_down_events": downs.len(),
        "node_down_texts": downs,
        "coordinator_changes": coordinator_changes,
        "heartbeat": {
            "delay": properties.get("heartbeat.same_subnet.delay"),
            "threshold": properties.get("heartbeat.same_subnet.threshold"),
        },
    }))
}

fn burner_count() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// One busy shell loop per core, each in its own process so it competes like real load.
fn start_burners() -> Result<Vec<Child>> {
    (0..burner_count())
        .map(|_| {
            Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .stdin(Stdio::null())
                .spawn()
                .context("starting a CPU burner")
        })
        .collect()
}

fn stop_burners(burners: Vec<Child>) {
    for mut burner in burners {
        let _ = burner.kill();
        let _ = burner.wait();
    }
}

fn median(samples: &[f64]) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 0 {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    }
}

fn print_report(report: &serde_json::Value, json: bool) {
    if json {
        println!("{report}");
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
    }
}
