//! Scheduler time at scale: median of 7 runs of `plan()` on generated clusters
//! where node 1 is lost and its groups fail over. Prints one JSON document.
//! Run: `cargo bench -p baton-policy --bench plan_scale`.

use std::hint::black_box;
use std::time::Instant;

use baton_policy::{generate, plan, Action};

const SIZES: [(usize, usize); 5] = [(3, 10), (8, 100), (16, 1000), (32, 5000), (64, 10_000)];
const RUN_COUNT: usize = 7;

fn main() {
    let mut rows = Vec::new();
    for (node_count, group_count) in SIZES {
        let input = generate(node_count, group_count);
        let mut times_ms: Vec<f64> = Vec::with_capacity(RUN_COUNT);
        let mut place_count = 0;
        for _ in 0..RUN_COUNT {
            let start = Instant::now();
            let result = black_box(plan(black_box(&input)));
            times_ms.push(start.elapsed().as_secs_f64() * 1e3);
            place_count = result
                .actions
                .iter()
                .filter(|a| matches!(a, Action::Place { .. }))
                .count();
        }
        times_ms.sort_by(f64::total_cmp);
        rows.push(serde_json::json!({
            "nodes": node_count,
            "groups": group_count,
            "placements": place_count,
            "median_ms": (times_ms[RUN_COUNT / 2] * 1000.0).round() / 1000.0,
            "min_ms": (times_ms[0] * 1000.0).round() / 1000.0,
        }));
    }
    let report = serde_json::json!({ "bench": "plan_scale", "runs": RUN_COUNT, "results": rows });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).expect("serialize report")
    );
}
