//! Conversions from the cluster database's types to the policy's input, and the explanation
//! updates that keep `baton group show` saying why a group is where it is. Used by the
//! coordinator's `plan_input`/`group_view` and `execute_plan`.

use std::collections::BTreeMap;

use baton_model::{ClusterState, Command, GroupPolicy, GroupStatus, Resource};
use baton_policy as policy;

/// Longest explanation stored; the plan's own text is one sentence, so this only guards
/// against a pathological one.
const EXPLANATION_LEN_MAX: usize = 1000;

pub fn group_status(status: GroupStatus) -> policy::GroupStatus {
    match status {
        GroupStatus::Offline => policy::GroupStatus::Offline,
        GroupStatus::Pending => policy::GroupStatus::Pending,
        GroupStatus::Online => policy::GroupStatus::Online,
        GroupStatus::Stopping => policy::GroupStatus::Stopping,
        GroupStatus::Failed => policy::GroupStatus::Failed,
    }
}

/// Failover policy, failback, priority and anti-affinity.
pub fn apply_group_policy(view: &mut policy::GroupView, group: &GroupPolicy) {
    view.priority = match group.priority {
        baton_model::Priority::High => policy::Priority::High,
        baton_model::Priority::Medium => policy::Priority::Medium,
        baton_model::Priority::Low => policy::Priority::Low,
        baton_model::Priority::NoAutoStart => policy::Priority::NoAutoStart,
    };
    view.failover_threshold = group.failover_threshold;
    view.failover_period_ms = group.failover_period_ms;
    view.failback = match group.failback {
        baton_model::Failback::Prevent => policy::Failback::Prevent,
        baton_model::Failback::Immediate => policy::Failback::Immediate,
        baton_model::Failback::Window { start_min, end_min } => {
            policy::Failback::Window { start_min, end_min }
        }
    };
    view.anti_affinity = group.anti_affinity.clone();
}

pub fn resource_view(resource: &Resource) -> policy::ResourceView {
    let config = &resource.policy;
    let status = &resource.status;
    let mut view = policy::ResourceView::new(resource.name.clone());
    view.possible_owners = config.possible_owners.clone();
    // Validated when set; an unparsable one (never expected) counts as no dependency.
    view.depends_on = config
        .depends_on
        .as_deref()
        .and_then(|text| policy::DepExpr::parse(text).ok());
    view.state = match status.state {
        baton_model::ResourceState::Offline => policy::ResourceState::Offline,
        baton_model::ResourceState::OnlinePending => policy::ResourceState::OnlinePending,
        baton_model::ResourceState::Online => policy::ResourceState::Online,
        baton_model::ResourceState::OfflinePending => policy::ResourceState::OfflinePending,
        baton_model::ResourceState::Failed => policy::ResourceState::Failed,
    };
    view.restart = policy::RestartPolicy {
        mode: match config.restart.mode {
            baton_model::RestartMode::Restart => policy::RestartMode::Restart,
            baton_model::RestartMode::Never => policy::RestartMode::NoRestart,
            baton_model::RestartMode::NoFailover => policy::RestartMode::RestartNoFailover,
        },
        threshold: config.restart.threshold,
        period_ms: config.restart.period_ms,
    };
    view.restart_history_ms = status.restart_history_ms.clone();
    view.retry_period_ms = config.retry_period_ms;
    view.failed_at_ms = status.failed_at_ms;
    view.misconfigured = status.misconfigured;
    view
}

/// Explanation updates proposed per planning round: a large cluster's first round would
/// otherwise propose one update per group at once; the rest follow in later rounds.
const EXPLANATIONS_PER_ROUND_MAX: usize = 64;

/// `ExplainGroup` updates for (some of) the groups whose explanation changed.
pub fn explanations(
    state: &ClusterState,
    explanations: &BTreeMap<String, policy::Explanation>,
) -> Vec<Command> {
    explanations
        .iter()
        .filter_map(|(group, explanation)| {
            let mut text = explanation.summary.clone();
            if text.len() > EXPLANATION_LEN_MAX {
                let cut = (0..=EXPLANATION_LEN_MAX)
                    .rev()
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(0);
                text.truncate(cut);
            }
            let stored = &state.groups.get(group)?.explanation;
            (*stored != text).then(|| Command::ExplainGroup {
                group: group.clone(),
                text,
            })
        })
        .take(EXPLANATIONS_PER_ROUND_MAX)
        .collect()
}
