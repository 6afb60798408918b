//! Plan as text: what `baton simulate` prints and scenario `.plan` files hold.

use std::fmt::Write;

use crate::output::{Action, Candidate, Explanation, Plan, Verdict};

/// One action per line with its reason, then each group's explanation with
/// every candidate node weighed. Stable: the same plan renders the same text.
pub fn render(plan: &Plan) -> String {
    let mut text = String::new();
    if plan.actions.is_empty() {
        text.push_str("actions: none\n");
    } else {
        text.push_str("actions:\n");
        for (index, action) in plan.actions.iter().enumerate() {
            let line = render_action(plan, action);
            // Writing to a String cannot fail.
            let _ = writeln!(text, "  {}. {line}", index + 1);
            match action {
                Action::Place { start_order, .. } if !start_order.is_empty() => {
                    let _ = writeln!(text, "       start order: {}", start_order.join(", "));
                }
                Action::Release { stop_order, .. } if !stop_order.is_empty() => {
                    let _ = writeln!(text, "       stop order: {}", stop_order.join(", "));
                }
                _ => {}
            }
        }
    }
    text.push_str("explanations:\n");
    for (group, explanation) in &plan.explanations {
        render_explanation(plan, group, explanation, &mut text);
    }
    text
}

/// `place web on n2 generation 4: failover: lease of n1 expired`.
pub fn render_action(plan: &Plan, action: &Action) -> String {
    let name = |id: &u64| node_name(plan, *id);
    match action {
        Action::Place {
            group,
            node,
            generation,
            reason,
            ..
        } => {
            format!(
                "place {group} on {} generation {generation}: {reason}",
                name(node)
            )
        }
        Action::Release {
            group,
            node,
            target: Some(target),
            reason,
            ..
        } => {
            format!(
                "release {group} on {} toward {}: {reason}",
                name(node),
                name(target)
            )
        }
        Action::Release {
            group,
            node,
            target: None,
            reason,
            ..
        } => {
            format!("release {group} on {}: {reason}", name(node))
        }
        Action::ClearAssignment {
            group,
            node,
            reason,
        } => {
            format!("clear-assignment {group} on {}: {reason}", name(node))
        }
        Action::RestartResource {
            group,
            resource,
            node,
            reason,
        } => {
            format!(
                "restart-resource {group}/{resource} on {}: {reason}",
                name(node)
            )
        }
        Action::FailGroup { group, reason } => format!("fail-group {group}: {reason}"),
        Action::RejectMove { group, reason } => format!("reject-move {group}: {reason}"),
    }
}

fn render_explanation(plan: &Plan, group: &str, explanation: &Explanation, text: &mut String) {
    let _ = writeln!(text, "  {group}: {}", explanation.summary);
    for candidate in &explanation.candidates {
        let _ = writeln!(text, "    {}", render_candidate(plan, candidate));
    }
}

/// `n2: chosen; preferred #1, load 0` or `n1: rejected: node is down`.
fn render_candidate(plan: &Plan, candidate: &Candidate) -> String {
    let name = node_name(plan, candidate.node);
    let verdict = match &candidate.verdict {
        Verdict::Chosen => "chosen".to_string(),
        Verdict::Eligible => "eligible".to_string(),
        Verdict::Rejected(rejection) => return format!("{name}: rejected: {rejection}"),
    };
    let rank = match candidate.preferred_rank {
        Some(rank) => format!("preferred #{rank}"),
        None => "not preferred".to_string(),
    };
    let mut line = format!("{name}: {verdict}; {rank}, load {}", candidate.load);
    if let Some(conflict) = &candidate.conflict {
        let _ = write!(line, ", {conflict}");
    }
    line
}

fn node_name(plan: &Plan, id: u64) -> String {
    plan.node_names
        .get(&id)
        .cloned()
        .unwrap_or_else(|| format!("node {id}"))
}
