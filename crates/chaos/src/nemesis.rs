//! Nemeses: what can go wrong, planned from a seed, injected one at a time and healed. Every
//! change of who runs and who can talk to whom is kept as a snapshot, from which the checker
//! knows when a quorum existed.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::clock::mono_ns;
use crate::net::{NetState, Topology};
use crate::nodes::{NsCluster, ProcState};
use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// The nodes split into two random sides.
    PartitionHalves,
    /// A workload group's owner cut off from every other node.
    IsolateOwner,
    /// The coordinator (Raft leader) cut off from every other node.
    IsolateLeader,
    /// Two sides that only a bridge node connects (A–B, B–C, not A–C).
    Bridge,
    /// One-way partition: a node hears nobody, while everybody hears it.
    OneWayIn,
    /// One-way partition: nobody hears a node, while it hears everybody.
    OneWayOut,
    /// kill -9 of a whole node, restarted at the end of the fault.
    Kill,
    /// SIGSTOP of the daemon alone for longer than its lease, then SIGCONT.
    PauseDaemon,
    /// SIGSTOP of every process of a node for longer than its lease, then SIGCONT.
    FreezeNode,
    /// Random packet loss between all nodes (nftables; the kernel has no netem).
    Loss,
}

impl FaultKind {
    pub const ALL: [FaultKind; 10] = [
        FaultKind::PartitionHalves,
        FaultKind::IsolateOwner,
        FaultKind::IsolateLeader,
        FaultKind::Bridge,
        FaultKind::OneWayIn,
        FaultKind::OneWayOut,
        FaultKind::Kill,
        FaultKind::PauseDaemon,
        FaultKind::FreezeNode,
        FaultKind::Loss,
    ];

    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// How long it lasts: process faults outlast the 500 ms lease by far, partitions give
    /// the cluster time to fail over and to settle on the majority side.
    fn duration_ms(self, rng: &mut Rng) -> u64 {
        match self {
            FaultKind::PauseDaemon | FaultKind::FreezeNode => rng.range(1200, 3000),
            FaultKind::Kill => rng.range(1500, 4000),
            FaultKind::Loss => rng.range(3000, 5000),
            _ => rng.range(2000, 4500),
        }
    }
}

/// One planned fault: what, when (from the schedule's start), how long, and random bits for
/// choosing its targets when it is injected.
#[derive(Clone, Debug)]
pub struct Step {
    pub kind: FaultKind,
    pub at_ms: u64,
    pub duration_ms: u64,
    pub pick: u64,
}

/// The schedule's faults: one at a time, with healthy gaps between them, all within
/// `total_ms`. `kinds`, if given, is cycled through instead of drawing kinds at random.
pub fn plan(rng: &mut Rng, total_ms: u64, kinds: Option<&[FaultKind]>) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut at_ms = 1500;
    loop {
        let kind = match kinds {
            Some(list) if !list.is_empty() => list[steps.len() % list.len()],
            _ => FaultKind::ALL[rng.index(FaultKind::ALL.len())],
        };
        let duration_ms = kind.duration_ms(rng);
        if at_ms + duration_ms > total_ms {
            return steps;
        }
        let pick = rng.next_u64();
        steps.push(Step {
            kind,
            at_ms,
            duration_ms,
            pick,
        });
        at_ms += duration_ms + rng.range(1500, 3000);
    }
}

/// A fault as it was injected.
#[derive(Clone, Debug, Serialize)]
pub struct FaultRecord {
    pub kind: FaultKind,
    /// Human-readable: which nodes, which direction.
    pub what: String,
    /// The nodes it hit directly (the isolated, killed, paused or frozen ones).
    pub nodes: Vec<String>,
    #[serde(skip)]
    pub start_ns: u64,
    #[serde(skip)]
    pub end_ns: u64,
    /// Seconds from the workload's start.
    pub at_s: f64,
    pub duration_s: f64,
}

/// Who runs and who can talk to whom, from `at_ns` on.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub at_ns: u64,
    /// Per node (0-based): its daemon runs and is not stopped.
    pub alive: Vec<bool>,
    pub net: NetState,
}

impl Snapshot {
    /// A majority of nodes that run and are pairwise connected both ways exists.
    pub fn has_quorum(&self) -> bool {
        let n = self.alive.len();
        (0u32..1 << n).any(|set| {
            let members: Vec<usize> = (0..n).filter(|i| set & (1 << i) != 0).collect();
            members.len() * 2 > n
                && members.iter().all(|&i| self.alive[i])
                && members.iter().all(|&a| {
                    members
                        .iter()
                        .all(|&b| a == b || self.net.connected(a + 1, b + 1))
                })
        })
    }
}

/// Injects faults and undoes them, keeping the record and the snapshots.
pub struct Nemesis<'a> {
    topology: &'a Topology,
    net: NetState,
    origin_ns: u64,
    pub faults: Vec<FaultRecord>,
    pub timeline: Vec<Snapshot>,
}

/// What healing a fault takes.
enum Undo {
    Net,
    Restart(usize),
    Resume(usize),
}

impl<'a> Nemesis<'a> {
    pub fn new(topology: &'a Topology, cluster: &NsCluster, origin_ns: u64) -> Self {
        let mut nemesis = Self {
            topology,
            net: NetState::default(),
            origin_ns,
            faults: Vec::new(),
            timeline: Vec::new(),
        };
        nemesis.snapshot(cluster);
        nemesis
    }

    fn snapshot(&mut self, cluster: &NsCluster) {
        let alive = cluster
            .nodes
            .iter()
            .map(|n| n.state == ProcState::Running)
            .collect();
        self.timeline.push(Snapshot {
            at_ns: mono_ns(),
            alive,
            net: self.net.clone(),
        });
    }

    /// Injects `step`, waits its duration, heals it.
    pub async fn run_step(&mut self, cluster: &mut NsCluster, step: &Step) -> Result<()> {
        let mut rng = Rng::new(step.pick);
        let start_ns = mono_ns();
        let (what, nodes, undo) = self.inject(cluster, step.kind, &mut rng).await?;
        self.snapshot(cluster);
        println!(
            "    {:>5.1}s  {:<17} {what}",
            (start_ns - self.origin_ns) as f64 / 1e9,
            step.kind.name()
        );
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(step.duration_ms)) => {}
            _ = crate::signals::wait_interrupt() => {}
        }
        let end_ns = mono_ns();
        match undo {
            Undo::Net => self.set_net(NetState::default())?,
            Undo::Restart(i) => cluster.restart(i)?,
            Undo::Resume(i) => cluster.resume(i),
        }
        self.snapshot(cluster);
        self.faults.push(FaultRecord {
            kind: step.kind,
            what,
            nodes,
            start_ns,
            end_ns,
            at_s: (start_ns - self.origin_ns) as f64 / 1e9,
            duration_s: (end_ns - start_ns) as f64 / 1e9,
        });
        Ok(())
    }

    /// Undoes everything (also after an error or an interruption).
    pub fn heal_all(&mut self, cluster: &mut NsCluster) -> Result<()> {
        self.set_net(NetState::default())?;
        cluster.revive_all()?;
        self.snapshot(cluster);
        Ok(())
    }

    fn set_net(&mut self, net: NetState) -> Result<()> {
        self.topology.apply(&net)?;
        self.net = net;
        Ok(())
    }

    async fn inject(
        &mut self,
        cluster: &mut NsCluster,
        kind: FaultKind,
        rng: &mut Rng,
    ) -> Result<(String, Vec<String>, Undo)> {
        let all: Vec<usize> = (1..=cluster.nodes.len()).collect();
        let name = |i: usize| format!("n{i}");
        match kind {
            FaultKind::PartitionHalves => {
                let mut order = all.clone();
                rng.shuffle(&mut order);
                let split = 1 + rng.index(order.len() - 1);
                let (a, b) = order.split_at(split);
                let mut net = NetState::default();
                net.cut(a, b);
                self.set_net(net)?;
                let what = format!("{} | {}", names(a), names(b));
                Ok((what, a.iter().map(|&i| name(i)).collect(), Undo::Net))
            }
            FaultKind::IsolateOwner | FaultKind::IsolateLeader => {
                let target = if kind == FaultKind::IsolateOwner {
                    owner_target(cluster, rng).await
                } else {
                    leader_target(cluster, rng).await
                };
                let others: Vec<usize> = all.iter().copied().filter(|&i| i != target).collect();
                let mut net = NetState::default();
                net.cut(&[target], &others);
                self.set_net(net)?;
                Ok((
                    format!("{} cut off", name(target)),
                    vec![name(target)],
                    Undo::Net,
                ))
            }
            FaultKind::Bridge => {
                let mut order = all.clone();
                rng.shuffle(&mut order);
                let rest = &order[1..];
                let split = 1 + rng.index(rest.len() - 1);
                let (a, b) = rest.split_at(split);
                let mut net = NetState::default();
                net.cut(a, b);
                self.set_net(net)?;
                let what = format!(
                    "{} | {} | {} (bridge {})",
                    names(a),
                    name(order[0]),
                    names(b),
                    name(order[0])
                );
                Ok((what, vec![name(order[0])], Undo::Net))
            }
            FaultKind::OneWayIn | FaultKind::OneWayOut => {
                let target = owner_target(cluster, rng).await;
                let deaf = kind == FaultKind::OneWayIn;
                let mut net = NetState::default();
                for &other in all.iter().filter(|&&i| i != target) {
                    let link = if deaf {
                        (other, target)
                    } else {
                        (target, other)
                    };
                    net.blocked.insert(link);
                }
                self.set_net(net)?;
                let how = if deaf {
                    "hears nobody"
                } else {
                    "is heard by nobody"
                };
                Ok((
                    format!("{} {how}", name(target)),
                    vec![name(target)],
                    Undo::Net,
                ))
            }
            FaultKind::Loss => {
                let percent = rng.range(10, 30) as u8;
                let mut net = NetState::default();
                for &a in &all {
                    for &b in all.iter().filter(|&&b| b != a) {
                        net.loss.insert((a, b), percent);
                    }
                }
                self.set_net(net)?;
                Ok((
                    format!("{percent}% loss on every link"),
                    Vec::new(),
                    Undo::Net,
                ))
            }
            FaultKind::Kill | FaultKind::PauseDaemon | FaultKind::FreezeNode => {
                self.process_fault(cluster, kind, rng).await
            }
        }
    }

    async fn process_fault(
        &mut self,
        cluster: &mut NsCluster,
        kind: FaultKind,
        rng: &mut Rng,
    ) -> Result<(String, Vec<String>, Undo)> {
        // Mostly an owner (that is where a double run could happen), sometimes the leader.
        let target = if rng.chance(25) {
            leader_target(cluster, rng).await
        } else {
            owner_target(cluster, rng).await
        };
        let i = target - 1;
        let (verb, undo) = match kind {
            FaultKind::Kill => {
                cluster.kill(i);
                (
                    "killed (kill -9 of daemon, host and resources)",
                    Undo::Restart(i),
                )
            }
            FaultKind::PauseDaemon => {
                cluster.pause_daemon(i);
                ("daemon SIGSTOPped", Undo::Resume(i))
            }
            _ => {
                cluster.freeze(i);
                ("frozen (every process SIGSTOPped)", Undo::Resume(i))
            }
        };
        Ok((
            format!("n{target} {verb}"),
            vec![format!("n{target}")],
            undo,
        ))
    }
}

fn names(nodes: &[usize]) -> String {
    let list: Vec<String> = nodes.iter().map(|i| format!("n{i}")).collect();
    list.join(",")
}

/// The owner of a random workload group (1-based), or a random node if none is known.
async fn owner_target(cluster: &NsCluster, rng: &mut Rng) -> usize {
    let owners: Vec<String> = cluster
        .owners()
        .await
        .into_iter()
        .filter(|(group, _)| group.starts_with('w'))
        .map(|(_, owner)| owner)
        .collect();
    let chosen = (!owners.is_empty()).then(|| owners[rng.index(owners.len())].clone());
    chosen
        .and_then(|name| cluster.index_of(&name))
        .map_or_else(|| 1 + rng.index(cluster.nodes.len()), |i| i + 1)
}

/// The coordinator (1-based), or a random node if no coordinator is agreed on.
async fn leader_target(cluster: &NsCluster, rng: &mut Rng) -> usize {
    match cluster.coordinator_index().await {
        Some(i) => i + 1,
        None => 1 + rng.index(cluster.nodes.len()),
    }
}
