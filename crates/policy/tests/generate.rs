//! The generated large cluster: its lost node's groups all fail over, nothing else moves.

use std::collections::BTreeMap;

use baton_policy::{generate, plan, Action, Reason};

#[test]
fn generated_cluster_fails_over_exactly_the_lost_nodes_groups() {
    // Checks every group of node 1 is cleared and placed on its second preferred
    // owner, and that no other group gets an action.
    let input = generate(16, 1000);
    let result = plan(&input);
    let on_lost_node: Vec<&str> = input
        .groups
        .iter()
        .filter(|g| g.assignment.is_some_and(|a| a.node == 1))
        .map(|g| g.name.as_str())
        .collect();
    let mut placed: BTreeMap<&str, u64> = BTreeMap::new();
    for action in &result.actions {
        match action {
            Action::ClearAssignment { node, .. } => assert_eq!(*node, 1),
            Action::Place {
                group,
                node,
                generation,
                reason,
                ..
            } => {
                assert_eq!(*generation, 2);
                assert_eq!(
                    reason,
                    &Reason::FailoverOwnerLost {
                        node: "n1".to_string()
                    }
                );
                placed.insert(group, *node);
            }
            other => panic!("unexpected action {other:?}"),
        }
    }
    assert_eq!(placed.len(), on_lost_node.len());
    for name in on_lost_node {
        let group = input.groups.iter().find(|g| g.name == name).expect("group");
        assert_eq!(placed.get(name), Some(&group.preferred_owners[1]), "{name}");
    }
    assert_eq!(result.explanations.len(), 1000);
}

#[test]
fn generated_input_is_deterministic() {
    // Checks the generator and the plan are pure: two runs are identical.
    assert_eq!(generate(8, 100), generate(8, 100));
    assert_eq!(plan(&generate(8, 100)), plan(&generate(8, 100)));
}
