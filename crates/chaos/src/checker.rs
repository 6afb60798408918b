//! The checker: reads one schedule's ledger, faults and snapshots, and finds double runs
//! (two writer instances of one group whose accepted writes interleave in time), stale writes
//! the ledger had to reject (by the fault they followed), resources that outlived a paused
//! daemon's lease, failovers, and how long each group had no writer while a quorum existed.
//! Times are the writers' own CLOCK_MONOTONIC stamps: when each instance believed it ran.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ledger::Entry;
use crate::nemesis::{FaultKind, FaultRecord, Snapshot};

/// A silence longer than this (writers write every 5 ms) is unavailability.
const GAP_MIN_NS: u64 = 100_000_000;
/// A stale write up to this long after a fault ended is blamed on it.
const ATTRIBUTION_NS: u64 = 5_000_000_000;
/// Unavailability this long after a fault ended still counts as its recovery.
const RECOVERY_NS: u64 = 10_000_000_000;
/// The design's budget past a lease: the host kills 30 ms before the deadline and the
/// coordinator waits 20 ms past it. A paused daemon's resources writing later broke it.
const PAUSE_MARGIN_NS: u64 = 50_000_000;

pub struct Inputs<'a> {
    pub entries: &'a [Entry],
    pub faults: &'a [FaultRecord],
    pub timeline: &'a [Snapshot],
    /// The workload window: every group online at `start_ns`, the run ended at `end_ns`.
    pub start_ns: u64,
    pub end_ns: u64,
    pub groups: &'a [String],
    pub lease_ms: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Findings {
    pub accepted_writes: u64,
    pub overlaps: Vec<Overlap>,
    /// Fault kind (or `none`) → writes the ledger rejected as stale (in its arrival order).
    pub stale_rejected: BTreeMap<String, u64>,
    /// Fault kind (or `none`) → writes a generation check had to reject: sent (by the
    /// writer's clock) by an instance after an instance of a newer generation of the same
    /// group had begun. Only a whole-node freeze may cause them; anything else is a double run.
    pub unfenced_writes: BTreeMap<String, u64>,
    /// The instance pairs behind `unfenced_writes`, for the log.
    pub double_runs: Vec<Overlap>,
    /// Writer instances that had at least one write rejected.
    pub stale_instances: u64,
    /// Writes of a paused daemon's resources after its lease (plus the budget) ran out.
    pub writes_after_lease: Vec<String>,
    pub failovers: u64,
    pub max_unavailability_s: f64,
    pub unavailability: Vec<FaultUnavailability>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Overlap {
    pub group: String,
    pub first: String,
    pub second: String,
    pub overlap_ms: f64,
    pub at_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct FaultUnavailability {
    pub kind: FaultKind,
    pub at_s: f64,
    /// The longest time a group had no writer during the fault or its recovery, counting
    /// only time when a quorum existed.
    pub unavailable_s: f64,
    /// Which group, and when its gap began and ended (seconds from the workload's start).
    pub worst_gap: Option<(String, f64, f64)>,
}

/// One writer process, as its accepted writes show it.
struct Instance {
    label: String,
    first_ns: u64,
    last_ns: u64,
}

pub fn check(inputs: &Inputs) -> Findings {
    let accepted: Vec<&Entry> = inputs.entries.iter().filter(|e| e.accepted).collect();
    let gaps = gaps(inputs, &accepted);
    let mut findings = Findings {
        accepted_writes: accepted.len() as u64,
        overlaps: overlaps(inputs, &accepted),
        double_runs: double_runs(inputs),
        failovers: failovers(inputs, &accepted),
        writes_after_lease: writes_after_lease(inputs),
        ..Findings::default()
    };
    stale(inputs, &mut findings);
    findings.unfenced_writes = unfenced_writes(inputs);
    findings.max_unavailability_s = gaps.iter().map(|g| g.quorum_s).fold(0.0, f64::max);
    findings.unavailability = inputs
        .faults
        .iter()
        .enumerate()
        .map(|(k, fault)| fault_unavailability(inputs, k, fault, &gaps))
        .collect();
    findings
}

/// Pairs of distinct instances of one group whose accepted writes interleave.
fn overlaps(inputs: &Inputs, accepted: &[&Entry]) -> Vec<Overlap> {
    let mut found = Vec::new();
    for group in inputs.groups {
        let mut instances: BTreeMap<u64, Instance> = BTreeMap::new();
        for entry in accepted.iter().filter(|e| &e.write.group == group) {
            let w = &entry.write;
            let instance = instances.entry(w.instance).or_insert_with(|| Instance {
                label: format!("{} generation {}", w.node, w.generation),
                first_ns: w.mono_ns,
                last_ns: w.mono_ns,
            });
            instance.first_ns = instance.first_ns.min(w.mono_ns);
            instance.last_ns = instance.last_ns.max(w.mono_ns);
        }
        let list: Vec<&Instance> = instances.values().collect();
        for (k, a) in list.iter().enumerate() {
            for b in &list[k + 1..] {
                let from = a.first_ns.max(b.first_ns);
                let to = a.last_ns.min(b.last_ns);
                if from <= to {
                    let (first, second) = if a.first_ns <= b.first_ns {
                        (a, b)
                    } else {
                        (b, a)
                    };
                    found.push(Overlap {
                        group: group.clone(),
                        first: first.label.clone(),
                        second: second.label.clone(),
                        overlap_ms: (to - from) as f64 / 1e6,
                        at_s: seconds(inputs, from),
                    });
                }
            }
        }
    }
    found
}

/// Owner changes seen in the ledger, group by group.
fn failovers(inputs: &Inputs, accepted: &[&Entry]) -> u64 {
    let mut count = 0;
    for group in inputs.groups {
        let mut writes: Vec<&Entry> = accepted
            .iter()
            .copied()
            .filter(|e| &e.write.group == group)
            .collect();
        writes.sort_by_key(|e| e.write.mono_ns);
        count += writes
            .windows(2)
            .filter(|pair| pair[0].write.node != pair[1].write.node)
            .count() as u64;
    }
    count
}

/// Per group, instance → (generation, the first time any instance of a newer generation
/// wrote). A write of the instance after that time was sent while a newer one ran.
fn superseded_at(inputs: &Inputs) -> BTreeMap<u64, u64> {
    let mut first: BTreeMap<u64, (String, u64, u64)> = BTreeMap::new();
    for w in inputs.entries.iter().map(|e| &e.write) {
        let slot = first
            .entry(w.instance)
            .or_insert((w.group.clone(), w.generation, w.mono_ns));
        slot.2 = slot.2.min(w.mono_ns);
    }
    let mut superseded = BTreeMap::new();
    for (instance, (group, generation, _)) in &first {
        let newer = first
            .values()
            .filter(|(g, gen, _)| g == group && gen > generation)
            .map(|(_, _, at)| *at)
            .min();
        if let Some(at) = newer {
            superseded.insert(*instance, at);
        }
    }
    superseded
}

fn unfenced_writes(inputs: &Inputs) -> BTreeMap<String, u64> {
    let superseded = superseded_at(inputs);
    let mut counts = BTreeMap::new();
    for w in inputs.entries.iter().map(|e| &e.write) {
        if superseded
            .get(&w.instance)
            .is_some_and(|at| w.mono_ns > *at)
        {
            *counts.entry(blame(inputs, w.mono_ns)).or_default() += 1;
        }
    }
    counts
}

/// Instances whose writes (accepted or not) interleave with a newer generation's.
fn double_runs(inputs: &Inputs) -> Vec<Overlap> {
    let superseded = superseded_at(inputs);
    let mut last: BTreeMap<u64, &crate::ledger::Write> = BTreeMap::new();
    for w in inputs.entries.iter().map(|e| &e.write) {
        if superseded
            .get(&w.instance)
            .is_some_and(|at| w.mono_ns > *at)
        {
            let slot = last.entry(w.instance).or_insert(w);
            if w.mono_ns > slot.mono_ns {
                *slot = w;
            }
        }
    }
    last.iter()
        .map(|(instance, w)| {
            let at = superseded[instance];
            Overlap {
                group: w.group.clone(),
                first: format!("{} generation {}", w.node, w.generation),
                second: "a newer generation".into(),
                overlap_ms: (w.mono_ns - at) as f64 / 1e6,
                at_s: seconds(inputs, at),
            }
        })
        .collect()
}

/// The fault a write at `at_ns` followed: the latest one that began before it and ended at
/// most `ATTRIBUTION_NS` before it; `none` otherwise.
fn blame(inputs: &Inputs, at_ns: u64) -> String {
    inputs
        .faults
        .iter()
        .rev()
        .find(|f| f.start_ns <= at_ns && at_ns <= f.end_ns + ATTRIBUTION_NS)
        .map_or_else(|| "none".to_string(), |f| f.kind.name())
}

fn stale(inputs: &Inputs, findings: &mut Findings) {
    let mut instances = std::collections::BTreeSet::new();
    for entry in inputs.entries.iter().filter(|e| !e.accepted) {
        let blamed = blame(inputs, entry.write.mono_ns);
        *findings.stale_rejected.entry(blamed).or_default() += 1;
        instances.insert(entry.write.instance);
    }
    findings.stale_instances = instances.len() as u64;
}

fn writes_after_lease(inputs: &Inputs) -> Vec<String> {
    let mut found = Vec::new();
    let lease_ns = inputs.lease_ms * 1_000_000;
    for fault in inputs
        .faults
        .iter()
        .filter(|f| f.kind == FaultKind::PauseDaemon)
    {
        let Some(node) = fault.nodes.first() else {
            continue;
        };
        let limit = fault.start_ns + lease_ns + PAUSE_MARGIN_NS;
        let late: Vec<&Entry> = inputs
            .entries
            .iter()
            .filter(|e| {
                &e.write.node == node && e.write.mono_ns > limit && e.write.mono_ns < fault.end_ns
            })
            .collect();
        if let Some(last) = late.last() {
            found.push(format!(
                "{node}: {} writes of {} up to {:.0} ms after its daemon was stopped (lease {} ms)",
                late.len(),
                last.write.group,
                (last.write.mono_ns - fault.start_ns) as f64 / 1e6,
                inputs.lease_ms
            ));
        }
    }
    found
}

/// A stretch with no accepted write of `group`.
struct Gap {
    group: String,
    from_ns: u64,
    to_ns: u64,
    quorum_s: f64,
}

fn gaps(inputs: &Inputs, accepted: &[&Entry]) -> Vec<Gap> {
    let mut found = Vec::new();
    for group in inputs.groups {
        let mut times: Vec<u64> = accepted
            .iter()
            .filter(|e| &e.write.group == group)
            .map(|e| e.write.mono_ns)
            .filter(|t| (inputs.start_ns..=inputs.end_ns).contains(t))
            .collect();
        times.sort_unstable();
        times.insert(0, inputs.start_ns);
        times.push(inputs.end_ns);
        for pair in times.windows(2) {
            if pair[1] - pair[0] > GAP_MIN_NS {
                found.push(Gap {
                    group: group.clone(),
                    from_ns: pair[0],
                    to_ns: pair[1],
                    quorum_s: quorum_ns(inputs.timeline, pair[0], pair[1]) as f64 / 1e9,
                });
            }
        }
    }
    found
}

/// How much of `[from, to]` a quorum existed (before the first snapshot: yes).
fn quorum_ns(timeline: &[Snapshot], from: u64, to: u64) -> u64 {
    let mut total = 0;
    for (k, snapshot) in timeline.iter().enumerate() {
        let start = snapshot.at_ns.max(from);
        let end = timeline.get(k + 1).map_or(to, |next| next.at_ns.min(to));
        if start < end && snapshot.has_quorum() {
            total += end - start;
        }
    }
    let before_first = timeline.first().map_or(to, |s| s.at_ns.min(to));
    total + before_first.saturating_sub(from)
}

fn fault_unavailability(
    inputs: &Inputs,
    k: usize,
    fault: &FaultRecord,
    gaps: &[Gap],
) -> FaultUnavailability {
    let next_start = inputs.faults.get(k + 1).map_or(u64::MAX, |f| f.start_ns);
    let window_end = (fault.end_ns + RECOVERY_NS).min(next_start);
    let worst = gaps
        .iter()
        .filter(|g| g.from_ns < window_end && g.to_ns > fault.start_ns)
        .max_by(|a, b| a.quorum_s.total_cmp(&b.quorum_s));
    FaultUnavailability {
        kind: fault.kind,
        at_s: seconds(inputs, fault.start_ns),
        unavailable_s: worst.map_or(0.0, |g| g.quorum_s),
        worst_gap: worst.map(|g| {
            (
                g.group.clone(),
                seconds(inputs, g.from_ns),
                seconds(inputs, g.to_ns),
            )
        }),
    }
}

fn seconds(inputs: &Inputs, at_ns: u64) -> f64 {
    at_ns.saturating_sub(inputs.start_ns) as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Write;
    use crate::net::NetState;

    fn entry(node: &str, generation: u64, instance: u64, at_ms: u64, accepted: bool) -> Entry {
        Entry {
            write: Write {
                run: "r".into(),
                node: node.into(),
                group: "w1".into(),
                generation,
                wall_ms: 0,
                mono_ns: at_ms * 1_000_000,
                seq: 0,
                instance,
            },
            accepted,
        }
    }

    fn inputs<'a>(
        entries: &'a [Entry],
        timeline: &'a [Snapshot],
        groups: &'a [String],
    ) -> Inputs<'a> {
        Inputs {
            entries,
            faults: &[],
            timeline,
            start_ns: 0,
            end_ns: 10_000_000_000,
            groups,
            lease_ms: 500,
        }
    }

    #[test]
    fn interleaved_instances_are_an_overlap_and_a_handover_is_not() {
        let groups = vec!["w1".to_string()];
        let handover = [
            entry("n1", 1, 1, 10, true),
            entry("n1", 1, 1, 20, true),
            entry("n2", 2, 2, 21, true),
        ];
        assert!(check(&inputs(&handover, &[], &groups)).overlaps.is_empty());
        let double = [
            entry("n1", 1, 1, 10, true),
            entry("n2", 2, 2, 15, true),
            entry("n1", 1, 1, 20, true),
        ];
        let findings = check(&inputs(&double, &[], &groups));
        assert_eq!(findings.overlaps.len(), 1);
        assert_eq!(findings.failovers, 2);
    }

    #[test]
    fn rejected_writes_are_not_overlaps_but_are_counted_stale() {
        let groups = vec!["w1".to_string()];
        let entries = [
            entry("n2", 2, 2, 10, true),
            entry("n1", 1, 1, 15, false),
            entry("n2", 2, 2, 20, true),
        ];
        let findings = check(&inputs(&entries, &[], &groups));
        assert!(findings.overlaps.is_empty());
        assert_eq!(findings.stale_rejected.get("none"), Some(&1));
        // n1 wrote at 15 ms although generation 2 had begun at 10 ms: a double run.
        assert_eq!(findings.unfenced_writes.get("none"), Some(&1));
        assert_eq!(findings.double_runs.len(), 1);
    }

    #[test]
    fn unavailability_counts_only_time_with_a_quorum() {
        let groups = vec!["w1".to_string()];
        let entries = [entry("n1", 1, 1, 0, true), entry("n2", 2, 2, 3000, true)];
        let snapshot = |at_ms: u64, alive: Vec<bool>| Snapshot {
            at_ns: at_ms * 1_000_000,
            alive,
            net: NetState::default(),
        };
        // No quorum from 1 s to 2 s (two of three nodes down): 2 s of the 3 s gap count.
        let timeline = [
            snapshot(0, vec![true, true, true]),
            snapshot(1000, vec![true, false, false]),
            snapshot(2000, vec![true, true, true]),
        ];
        let mut window = inputs(&entries, &timeline, &groups);
        window.end_ns = 3_000_000_000;
        let findings = check(&window);
        assert!((findings.max_unavailability_s - 2.0).abs() < 1e-6);
    }
}
