//! The run's verdict: a JSON report and a readable summary with one line per schedule and
//! one per fault type.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::nemesis::FaultKind;
use crate::schedule::ScheduleResult;

/// What the kernel here lacks, said in every report rather than silently skipped.
const NETEM: &str = "tc netem is not available in this kernel (qdisc kind unknown): delay is not injected; loss is injected with nftables (numgen random) instead";

#[derive(Clone, Debug, Serialize)]
pub struct FaultStats {
    pub injected: usize,
    pub worst_unavailability_s: f64,
    pub median_unavailability_s: f64,
    pub stale_rejected: u64,
    pub unfenced_writes: u64,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub mode: String,
    pub schedules: usize,
    pub faults: usize,
    pub failovers: u64,
    pub overlaps: usize,
    pub lost_acknowledged: usize,
    pub max_unavailability_s: f64,
    pub stale_rejected: u64,
    /// Writes a generation check had to reject (sent after a newer generation began).
    pub unfenced_writes: u64,
    pub writes_after_lease: usize,
    pub config_changes: usize,
    pub config_acknowledged: usize,
    pub by_fault: BTreeMap<String, FaultStats>,
    pub seeds: Vec<u64>,
    pub failed: Vec<String>,
    pub netem: String,
    pub per_schedule: Vec<ScheduleResult>,
}

impl Summary {
    pub fn new(ci: bool, results: &[ScheduleResult]) -> Self {
        let sum = |f: &dyn Fn(&ScheduleResult) -> usize| results.iter().map(f).sum::<usize>();
        Self {
            mode: if ci { "ci" } else { "long" }.into(),
            schedules: results.len(),
            faults: sum(&|r| r.faults.len()),
            failovers: results.iter().map(|r| r.findings.failovers).sum(),
            overlaps: sum(&|r| r.findings.overlaps.len()),
            lost_acknowledged: sum(&|r| r.lost_acknowledged.len()),
            max_unavailability_s: results
                .iter()
                .map(|r| r.findings.max_unavailability_s)
                .fold(0.0, f64::max),
            stale_rejected: results
                .iter()
                .flat_map(|r| r.findings.stale_rejected.values())
                .sum(),
            unfenced_writes: results
                .iter()
                .flat_map(|r| r.findings.unfenced_writes.values())
                .sum(),
            writes_after_lease: sum(&|r| r.findings.writes_after_lease.len()),
            config_changes: sum(&|r| r.config_changes),
            config_acknowledged: sum(&|r| r.config_acknowledged),
            by_fault: by_fault(results),
            seeds: results.iter().map(|r| r.seed).collect(),
            failed: results
                .iter()
                .filter(|r| !r.violations().is_empty())
                .map(|r| r.name.clone())
                .collect(),
            netem: NETEM.into(),
            per_schedule: results.to_vec(),
        }
    }

    pub fn passed(&self) -> bool {
        self.failed.is_empty() && self.schedules > 0
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }

    pub fn print(&self) {
        println!(
            "\n{:<22} {:>5} {:>5} {:>6} {:>9} {:>8} {:>8} {:>5} {:>5} {:>9}  verdict",
            "schedule",
            "seed",
            "nodes",
            "faults",
            "failovers",
            "overlaps",
            "unfenced",
            "stale",
            "lost",
            "unavail_s"
        );
        for r in &self.per_schedule {
            let violations = r.violations();
            let verdict = if violations.is_empty() {
                "ok".to_string()
            } else {
                violations.join("; ")
            };
            println!(
                "{:<22} {:>5} {:>5} {:>6} {:>9} {:>8} {:>8} {:>5} {:>5} {:>9.2}  {verdict}",
                r.name,
                r.seed,
                r.nodes,
                r.faults.len(),
                r.findings.failovers,
                r.findings.overlaps.len(),
                r.findings.unfenced_writes.values().sum::<u64>(),
                r.findings.stale_rejected.values().sum::<u64>(),
                r.lost_acknowledged.len(),
                r.findings.max_unavailability_s
            );
        }
        println!(
            "\n{:<18} {:>8} {:>15} {:>16} {:>8} {:>6}",
            "fault", "injected", "worst_unavail_s", "median_unavail_s", "unfenced", "stale"
        );
        for (kind, stats) in &self.by_fault {
            println!(
                "{kind:<18} {:>8} {:>15.2} {:>16.2} {:>8} {:>6}",
                stats.injected,
                stats.worst_unavailability_s,
                stats.median_unavailability_s,
                stats.unfenced_writes,
                stats.stale_rejected
            );
        }
        println!(
            "\n{} schedules, {} faults, {} failovers, {} overlaps, {} unfenced writes, {} stale writes rejected, {} of {} acknowledged changes lost, worst unavailability {:.2} s",
            self.schedules, self.faults, self.failovers, self.overlaps, self.unfenced_writes, self.stale_rejected, self.lost_acknowledged, self.config_acknowledged, self.max_unavailability_s
        );
        println!("note: {}", self.netem);
        if self.passed() {
            println!("chaos: PASSED");
        } else {
            println!("chaos: FAILED ({})", self.failed.join(", "));
        }
    }
}

fn by_fault(results: &[ScheduleResult]) -> BTreeMap<String, FaultStats> {
    let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in results {
        for u in &r.findings.unavailability {
            samples
                .entry(u.kind.name())
                .or_default()
                .push(u.unavailable_s);
        }
    }
    let mut stats = BTreeMap::new();
    for kind in FaultKind::ALL
        .iter()
        .map(|k| k.name())
        .chain(["none".to_string()])
    {
        let mut values = samples.remove(&kind).unwrap_or_default();
        values.sort_by(f64::total_cmp);
        let count = |pick: &dyn Fn(&ScheduleResult) -> Option<u64>| {
            results.iter().filter_map(pick).sum::<u64>()
        };
        let stale = count(&|r| r.findings.stale_rejected.get(&kind).copied());
        let unfenced = count(&|r| r.findings.unfenced_writes.get(&kind).copied());
        if values.is_empty() && stale == 0 && unfenced == 0 {
            continue;
        }
        stats.insert(
            kind,
            FaultStats {
                injected: values.len(),
                worst_unavailability_s: values.last().copied().unwrap_or(0.0),
                median_unavailability_s: values.get(values.len() / 2).copied().unwrap_or(0.0),
                stale_rejected: stale,
                unfenced_writes: unfenced,
            },
        );
    }
    stats
}
