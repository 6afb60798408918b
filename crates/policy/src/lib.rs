//! baton's placement policy: `plan(input) -> Plan`, a pure, deterministic
//! function (no I/O, no clock, no randomness) from membership, configuration and
//! status to the actions that move groups toward their desired state, each with
//! its reason, plus an explanation per group of every node weighed.
//!
//! Also here: the dependency expression language and the start/stop orders a
//! node follows (`deps`), plan rendering (`render`), the scenario file loader
//! behind `baton simulate` (`scenario`, the only module doing I/O), and a
//! generator of large clusters for benchmarks (`generate`).
//!
//! Safety: `plan` asserts that no group is placed while an owner may still run
//! it (see `safety`); a violation panics rather than return a dangerous plan.

mod candidates;
pub mod deps;
pub mod generate;
pub mod input;
pub mod output;
mod plan;
pub mod reason;
pub mod render;
mod rules;
pub mod safety;
pub mod scenario;
pub mod timefmt;

pub use deps::{check_cycles, start_order, stop_order, CycleError, DepError, DepExpr};
pub use generate::generate;
pub use input::{
    Assignment, Desired, Failback, GroupStatus, GroupView, MoveRequest, NodeState, NodeView,
    PendingMove, PlanInput, PlanOptions, Priority, ResourceState, ResourceView, RestartMode,
    RestartPolicy,
};
pub use output::{Action, Candidate, Explanation, Plan, Verdict};
pub use plan::plan;
pub use reason::{Conflict, Reason, Rejection};
pub use render::render;
pub use scenario::{simulate_file, ScenarioError};
