//! Large synthetic clusters for benchmarks and scale tests. Deterministic.

use crate::deps::DepExpr;
use crate::input::{Assignment, GroupStatus, GroupView, NodeState, NodeView, PlanInput};
use crate::input::{PlanOptions, Priority, ResourceState, ResourceView};

/// 2024-01-01 10:00:00 UTC, a fixed clock for generated inputs.
pub const GENERATED_NOW_MS: u64 = 1_704_103_200_000;

/// `nodes` nodes and `groups` online groups of two resources each (`app`
/// depends on `ip`), preferred owners assigned round-robin, each group on its
/// first preferred owner. Node 1 is down with its lease expired, so its groups
/// must fail over. Priorities cycle high, medium, low.
pub fn generate(nodes: usize, groups: usize) -> PlanInput {
    let node_views = (1..=nodes as u64)
        .map(|id| NodeView {
            id,
            name: format!("n{id}"),
            state: if id == 1 {
                NodeState::Down
            } else {
                NodeState::Up
            },
            lease_expired: id == 1,
        })
        .collect();
    let group_views = (0..groups)
        .map(|index| generate_group(index, nodes))
        .collect();
    PlanInput {
        now_ms: GENERATED_NOW_MS,
        nodes: node_views,
        groups: group_views,
        options: PlanOptions::default(),
    }
}

fn generate_group(index: usize, nodes: usize) -> GroupView {
    let node_count = nodes.max(1) as u64;
    let first = index as u64 % node_count + 1;
    let second = (index as u64 + 1) % node_count + 1;
    let name = format!("g{index:05}");
    let mut group = GroupView::new(name.clone());
    group.preferred_owners = if first == second {
        vec![first]
    } else {
        vec![first, second]
    };
    group.assignment = Some(Assignment {
        node: first,
        generation: 1,
    });
    group.generation = 1;
    group.status = GroupStatus::Online;
    group.priority = [Priority::High, Priority::Medium, Priority::Low][index % 3];
    let mut ip = ResourceView::new(format!("{name}-ip"));
    ip.state = ResourceState::Online;
    let mut app = ResourceView::new(format!("{name}-app"));
    app.state = ResourceState::Online;
    app.depends_on = Some(DepExpr::Ref(ip.name.clone()));
    group.resources = vec![ip, app];
    group
}
