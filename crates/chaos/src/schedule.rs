//! Schedules: which ones a run executes (the fixed CI batch or a seed range), and one
//! schedule from start to verdict: a fresh cluster, the workload, the faults, healing,
//! recovery, the configuration check and the ledger check.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use baton_client::dto::{CreateGroup, CreateResource, SetSettings};
use serde::Serialize;
use tokio::sync::watch;

use crate::checker::{self, Findings};
use crate::clock::mono_ns;
use crate::ledger::{Ledger, LEDGER_PORT};
use crate::nemesis::{self, FaultKind, FaultRecord, Nemesis};
use crate::net::{self, Topology};
use crate::nodes::NsCluster;
use crate::rng::Rng;
use crate::RunArgs;

/// Seeds of the CI batch besides the regression schedules. Fixed: CI runs the same faults
/// at the same moments every time (what the cluster does in between still varies).
const CI_SEEDS: [u64; 10] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
/// Logs of a schedule where a group had no writer for longer than this (with a quorum) are
/// kept even when it passed.
const SLOW_S: f64 = 5.0;
/// How long the cluster may take to be whole again once every fault is healed.
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct Spec {
    pub name: String,
    pub seed: u64,
    pub nodes: usize,
    pub groups: usize,
    pub duration_ms: u64,
    /// Regression schedules cycle through these kinds instead of drawing at random.
    pub kinds: Option<Vec<FaultKind>>,
}

pub struct Env {
    pub topology: Topology,
    pub baton: PathBuf,
    pub chaos: PathBuf,
    pub keep: bool,
    pub work_dir: PathBuf,
    pub run_dir: PathBuf,
}

#[derive(Clone, Debug, Serialize)]
pub struct ScheduleResult {
    pub name: String,
    pub seed: u64,
    pub nodes: usize,
    pub groups: usize,
    pub duration_s: f64,
    pub faults: Vec<FaultRecord>,
    pub findings: Findings,
    pub config_changes: usize,
    pub config_acknowledged: usize,
    pub lost_acknowledged: Vec<String>,
    /// Every node up and every workload group online again after the faults were healed.
    pub recovered: bool,
    /// The harness itself failed (the cluster did not start, nft failed, ...).
    pub error: Option<String>,
    /// Where the data dirs and logs were kept.
    pub logs: Option<String>,
    pub ledger_dropped: u64,
}

impl ScheduleResult {
    /// What makes the schedule fail. Stale writes are allowed only after whole-node freezes:
    /// a partition, a kill or a paused daemon must be safe without the fencing token.
    pub fn violations(&self) -> Vec<String> {
        if let Some(error) = &self.error {
            return vec![format!("harness error: {error}")];
        }
        let mut found = Vec::new();
        let f = &self.findings;
        if !f.overlaps.is_empty() {
            found.push(format!("{} overlapping runs", f.overlaps.len()));
        }
        if !self.lost_acknowledged.is_empty() {
            found.push(format!(
                "{} acknowledged changes lost",
                self.lost_acknowledged.len()
            ));
        }
        if !f.writes_after_lease.is_empty() {
            found.push("resources outlived a paused daemon's lease".into());
        }
        let unfenced: u64 = f
            .unfenced_writes
            .iter()
            .filter(|(kind, _)| kind.as_str() != FaultKind::FreezeNode.name())
            .map(|(_, count)| count)
            .sum();
        if unfenced > 0 {
            found.push(format!(
                "{unfenced} writes after a newer generation began, not after a freeze"
            ));
        }
        if !self.recovered {
            found.push("the cluster did not recover after healing".into());
        }
        found
    }
}

/// The schedules a run executes.
pub fn select(args: &RunArgs, duration_ms: u64) -> Vec<Spec> {
    let specs = if args.ci {
        ci_batch(duration_ms)
    } else {
        (args.seed..args.seed + args.count)
            .map(|seed| seeded(seed, duration_ms))
            .collect()
    };
    specs
        .into_iter()
        .filter(|s| {
            args.only
                .as_deref()
                .is_none_or(|only| s.name.contains(only))
        })
        .collect()
}

/// Regression schedules first (each pins faults that once broke something), then seeds.
fn ci_batch(duration_ms: u64) -> Vec<Spec> {
    let mut specs = vec![
        // Long enough for one fault of every kind.
        regression("regress-every-fault", 3, &FaultKind::ALL, duration_ms * 3),
        // A deaf owner loses its lease while its reconcile loop waits on a proposal; the
        // old writer's exit event, handled after a new writer started, made the node forget
        // the new one, which then ran beside its failover (reconcile.rs, Local::on_event).
        regression("regress-deaf-owner", 3, &[FaultKind::OneWayIn], duration_ms),
        // An owner back before its groups moved was condemned again by the step that had
        // just admitted it (a stale snapshot), for an epoch its NodeUp could not end: up,
        // heard, and without a lease, its groups stuck (coordinator.rs fence_down_nodes).
        regression(
            "regress-owner-back",
            3,
            &[FaultKind::PauseDaemon, FaultKind::FreezeNode],
            duration_ms,
        ),
    ];
    specs.extend(CI_SEEDS.iter().map(|&seed| seeded(seed, duration_ms)));
    specs
}

fn regression(name: &str, nodes: usize, kinds: &[FaultKind], duration_ms: u64) -> Spec {
    Spec {
        name: name.to_string(),
        seed: 0,
        nodes,
        groups: 3,
        duration_ms,
        kinds: Some(kinds.to_vec()),
    }
}

/// A schedule drawn from `seed`: size, groups, and (at run time) the faults.
pub fn seeded(seed: u64, duration_ms: u64) -> Spec {
    let mut rng = Rng::new(seed);
    Spec {
        name: format!("seed-{seed}"),
        seed,
        nodes: if rng.chance(40) { 5 } else { 3 },
        groups: rng.range(2, 4) as usize,
        duration_ms,
        kinds: None,
    }
}

pub async fn run_all(env: &Env, specs: Vec<Spec>) -> Result<Vec<ScheduleResult>> {
    let ledger = Ledger::start(SocketAddr::from((net::ctl_ip(), LEDGER_PORT)))?;
    let mut results = Vec::new();
    for (k, spec) in specs.iter().enumerate() {
        println!(
            "== schedule {}/{}: {} ({} nodes, {} groups, {:.0} s)",
            k + 1,
            specs.len(),
            spec.name,
            spec.nodes,
            spec.groups,
            spec.duration_ms as f64 / 1000.0
        );
        let result = tokio::select! {
            result = run_one(env, &ledger, spec) => result,
            _ = crate::signals::wait_interrupt() => bail!("interrupted during {}", spec.name),
        };
        if crate::signals::interrupted() {
            bail!("interrupted during {}", spec.name);
        }
        print_verdict(&result);
        results.push(result);
    }
    Ok(results)
}

fn print_verdict(result: &ScheduleResult) {
    let f = &result.findings;
    let violations = result.violations();
    let verdict = if violations.is_empty() {
        "ok".to_string()
    } else {
        format!("FAILED: {}", violations.join("; "))
    };
    println!(
        "   -> {} faults, {} failovers, {} overlaps, {} unfenced, {} stale, {} lost of {} acknowledged, worst unavailability {:.2} s: {verdict}",
        result.faults.len(),
        f.failovers,
        f.overlaps.len(),
        f.unfenced_writes.values().sum::<u64>(),
        f.stale_rejected.values().sum::<u64>(),
        result.lost_acknowledged.len(),
        result.config_acknowledged,
        f.max_unavailability_s
    );
    for overlap in &f.overlaps {
        println!(
            "      overlap in {}: {} and {} for {:.1} ms at {:.2} s",
            overlap.group, overlap.first, overlap.second, overlap.overlap_ms, overlap.at_s
        );
    }
    for u in f.unavailability.iter().filter(|u| u.unavailable_s > 2.0) {
        if let Some((group, from, to)) = &u.worst_gap {
            println!(
                "      {} at {:.1} s: {group} had no writer from {from:.2} s to {to:.2} s",
                u.kind.name(),
                u.at_s
            );
        }
    }
    for run in &f.double_runs {
        println!(
            "      {}: {} wrote {:.1} ms after {} began at {:.2} s",
            run.group, run.first, run.overlap_ms, run.second, run.at_s
        );
    }
    for late in &f.writes_after_lease {
        println!("      {late}");
    }
    if let Some(logs) = &result.logs {
        println!("      logs kept in {logs}");
    }
}

async fn run_one(env: &Env, ledger: &Ledger, spec: &Spec) -> ScheduleResult {
    let root = env.run_dir.join(&spec.name);
    let _ = std::fs::remove_dir_all(&root);
    let mut result = ScheduleResult {
        name: spec.name.clone(),
        seed: spec.seed,
        nodes: spec.nodes,
        groups: spec.groups,
        duration_s: spec.duration_ms as f64 / 1000.0,
        faults: Vec::new(),
        findings: Findings::default(),
        config_changes: 0,
        config_acknowledged: 0,
        lost_acknowledged: Vec::new(),
        recovered: false,
        error: None,
        logs: None,
        ledger_dropped: 0,
    };
    if let Err(error) = execute(env, ledger, spec, &root, &mut result).await {
        result.error = Some(format!("{error:#}"));
    }
    let kept = env
        .work_dir
        .join("kept")
        .join(format!("{}-{}", std::process::id(), spec.name));
    // A long outage is worth a look even when nothing unsafe happened.
    let slow = result.findings.max_unavailability_s > SLOW_S;
    let keep = env.keep || slow || !result.violations().is_empty();
    result.logs = keep_or_remove(&root, &kept, keep);
    result
}

/// Moves a schedule's folder where the stale-run cleanup leaves it alone, or removes it.
fn keep_or_remove(root: &Path, kept: &Path, keep: bool) -> Option<String> {
    if !keep {
        let _ = std::fs::remove_dir_all(root);
        return None;
    }
    std::fs::create_dir_all(kept.parent()?).ok()?;
    let _ = std::fs::remove_dir_all(kept);
    std::fs::rename(root, kept).ok()?;
    Some(kept.display().to_string())
}

async fn execute(
    env: &Env,
    ledger: &Ledger,
    spec: &Spec,
    root: &Path,
    result: &mut ScheduleResult,
) -> Result<()> {
    let run_id = format!("{}-{}", std::process::id(), spec.name);
    ledger.begin(&run_id);
    let mut cluster = NsCluster::start(&env.topology, &env.baton, root, spec.nodes).await?;
    let groups = create_workload(&cluster, spec.groups, &env.chaos, &run_id, ledger.addr).await?;
    cluster
        .wait_groups_online(&groups, Duration::from_secs(30))
        .await?;
    let lease_ms = lease_ms(&cluster).await;
    let start_ns = mono_ns();
    let (stop_tx, stop_rx) = watch::channel(false);
    let clients = (0..cluster.nodes.len())
        .map(|i| (cluster.nodes[i].name.clone(), cluster.client(i).clone()))
        .collect();
    let config = tokio::spawn(crate::workload::run(
        clients,
        groups.clone(),
        spec.seed,
        stop_rx,
    ));
    let mut nemesis = Nemesis::new(&env.topology, &cluster, start_ns);
    let faulted = run_faults(&mut nemesis, &mut cluster, spec, start_ns).await;
    nemesis.heal_all(&mut cluster)?;
    faulted?;
    result.recovered = recover(&cluster, &groups).await;
    let _ = stop_tx.send(true);
    let history = config.await.context("the configuration client panicked")?;
    result.config_changes = history.len();
    result.config_acknowledged = history.iter().filter(|op| op.acked).count();
    result.lost_acknowledged = crate::workload::missing(&cluster, &history).await;
    let end_ns = mono_ns();
    let (entries, dropped) = ledger.finish();
    cluster.stop_all();
    save_evidence(root, &entries, &nemesis.faults);
    result.ledger_dropped = dropped;
    result.faults = nemesis.faults.clone();
    result.findings = checker::check(&checker::Inputs {
        entries: &entries,
        faults: &nemesis.faults,
        timeline: &nemesis.timeline,
        start_ns,
        end_ns,
        groups: &groups,
        lease_ms,
    });
    Ok(())
}

async fn run_faults(
    nemesis: &mut Nemesis<'_>,
    cluster: &mut NsCluster,
    spec: &Spec,
    start_ns: u64,
) -> Result<()> {
    let mut rng = Rng::new(spec.seed.wrapping_mul(0x1000_0001) ^ spec.nodes as u64);
    let steps = nemesis::plan(&mut rng, spec.duration_ms, spec.kinds.as_deref());
    for step in &steps {
        sleep_until(start_ns + step.at_ms * 1_000_000).await?;
        nemesis.run_step(cluster, step).await?;
    }
    sleep_until(start_ns + spec.duration_ms * 1_000_000).await
}

async fn sleep_until(at_ns: u64) -> Result<()> {
    let wait = Duration::from_nanos(at_ns.saturating_sub(mono_ns()));
    tokio::select! {
        _ = tokio::time::sleep(wait) => Ok(()),
        _ = crate::signals::wait_interrupt() => bail!("interrupted"),
    }
}

/// The ledger and the faults next to the node logs, for a schedule whose folder is kept.
fn save_evidence(root: &Path, entries: &[crate::ledger::Entry], faults: &[FaultRecord]) {
    let mut text = String::new();
    for entry in entries {
        let verdict = if entry.accepted { "ok" } else { "stale" };
        if let Ok(line) = serde_json::to_string(&entry.write) {
            text += &format!("{verdict} {line}\n");
        }
    }
    let _ = std::fs::write(root.join("ledger.txt"), text);
    let faults: Vec<String> = faults
        .iter()
        .map(|f| {
            format!(
                "{} {} {:?} {} mono {}..{}",
                f.at_s,
                f.kind.name(),
                f.nodes,
                f.what,
                f.start_ns,
                f.end_ns
            )
        })
        .collect();
    let _ = std::fs::write(root.join("faults.txt"), faults.join("\n") + "\n");
}

/// After healing: every node up and every workload group online again.
async fn recover(cluster: &NsCluster, groups: &[String]) -> bool {
    let up = cluster.wait_all_up(RECOVERY_LIMIT).await;
    let online = cluster.wait_groups_online(groups, RECOVERY_LIMIT).await;
    if let Err(error) = up.and(online) {
        println!("      not recovered: {error:#}");
        for line in describe_groups(cluster, groups).await {
            println!("        {line}");
        }
        return false;
    }
    true
}

/// The workload groups as the coordinator (or any answering node) has them, for the log.
async fn describe_groups(cluster: &NsCluster, names: &[String]) -> Vec<String> {
    let coordinator = cluster.coordinator_index().await;
    for i in coordinator.into_iter().chain(cluster.answering()) {
        let Some(groups) = cluster.groups_info(i).await else {
            continue;
        };
        let wanted = groups.into_iter().filter(|g| names.contains(&g.name));
        return wanted
            .map(|g| {
                let owner = g.owner.as_deref().unwrap_or("-");
                format!(
                    "{} (as {} sees it): {} on {owner}, generation {}, {}; {}",
                    g.name,
                    cluster.nodes[i].name,
                    g.status,
                    g.generation,
                    g.status_message,
                    g.last_reason
                )
            })
            .collect();
    }
    vec!["no node answered".into()]
}

/// Groups `w1..wN`, each with one writer resource, preferred owners rotated so the groups
/// start spread over the nodes.
async fn create_workload(
    cluster: &NsCluster,
    count: usize,
    chaos: &Path,
    run_id: &str,
    ledger: SocketAddr,
) -> Result<Vec<String>> {
    let client = cluster.client(0);
    let names = cluster.node_names();
    let mut groups = Vec::new();
    for k in 0..count {
        let name = format!("w{}", k + 1);
        let mut preferred_owners = names.clone();
        preferred_owners.rotate_left(k % names.len());
        client
            .create_group(&CreateGroup {
                name: name.clone(),
                preferred_owners,
            })
            .await?;
        let command = format!("exec '{}' writer --ledger {ledger}", chaos.display());
        let params = BTreeMap::from([
            ("command".to_string(), command),
            ("env.CHAOS_RUN".to_string(), run_id.to_string()),
            ("stop_timeout".to_string(), "1s".to_string()),
        ]);
        let resource = CreateResource {
            name: format!("{name}-writer"),
            group: name.clone(),
            resource_type: "process".into(),
            params,
        };
        client.create_resource(&resource).await?;
        // The failover policy rightly fails a group after nodes - 1 failovers in 6 h; chaos
        // causes dozens, and what is measured here is safety and availability, not the policy.
        let settings = BTreeMap::from([("failover_threshold".to_string(), "1000".to_string())]);
        client.set_group(&name, &SetSettings { settings }).await?;
        client.online_group(&name).await?;
        groups.push(name);
    }
    Ok(groups)
}

/// The lease length the nodes use: the same-subnet detection time (delay × threshold).
async fn lease_ms(cluster: &NsCluster) -> u64 {
    let properties = match cluster.cluster_info(0).await {
        Some(info) => info.properties,
        None => return 500,
    };
    let delay = properties
        .get("heartbeat.same_subnet.delay")
        .and_then(|d| d.trim_end_matches("ms").parse::<u64>().ok())
        .unwrap_or(100);
    let threshold = properties
        .get("heartbeat.same_subnet.threshold")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(5);
    delay * threshold
}
