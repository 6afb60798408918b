//! Validation of commands against the state: the single place that decides what is allowed.

use crate::command::Command;
use crate::error::ModelError;
use crate::state::ClusterState;
use crate::types::*;

/// Longest accepted name of a node, group or resource.
pub const NAME_LEN_MAX: usize = 63;

pub(crate) fn validate(
    state: &ClusterState,
    command: &Command,
    now_ms: u64,
) -> Result<(), ModelError> {
    if !state.is_initialized() && !matches!(command, Command::Initialize { .. }) {
        return Err(ModelError::NotInitialized);
    }
    match command {
        Command::Initialize {
            cluster_name,
            node_name,
            ..
        } => {
            if state.is_initialized() {
                return Err(ModelError::AlreadyInitialized);
            }
            check_name("cluster name", cluster_name)?;
            check_name("node name", node_name)
        }
        Command::CreateJoinToken { .. } => Ok(()),
        Command::JoinNode {
            token_id,
            secret_hash,
            name,
            addr,
        } => check_join(state, token_id, secret_hash, name.as_deref(), addr, now_ms),
        Command::NodeUp { node }
        | Command::NodeDown { node, .. }
        | Command::ResumeNode { node } => node_exists(state, *node),
        Command::PauseNode { node, .. } => node_exists(state, *node),
        Command::EvictNode { node } => check_evict(state, *node),
        Command::SetProperties { properties } => check_properties(properties),
        Command::CreateGroup {
            name,
            preferred_owners,
        } => {
            check_name("group name", name)?;
            if state.groups.contains_key(name) {
                return Err(ModelError::Duplicate {
                    kind: "group",
                    name: name.clone(),
                });
            }
            preferred_owners
                .iter()
                .try_for_each(|node| node_exists(state, *node))
        }
        Command::DeleteGroup { name } => check_delete_group(state, name),
        Command::SetGroupDesired { group, .. } => group_exists(state, group).map(drop),
        Command::RequestMove { group, target } => {
            group_exists(state, group)?;
            target.map_or(Ok(()), |node| node_exists(state, node))
        }
        Command::PlaceGroup {
            group,
            node,
            generation,
            ..
        } => check_place(state, group, *node, *generation),
        Command::ReleaseGroup {
            group, generation, ..
        } => {
            let assignment = assigned(state, group)?;
            same_generation("release", assignment.generation, *generation)
        }
        Command::GroupStopped {
            group,
            node,
            generation,
        }
        | Command::ReportGroupStatus {
            group,
            node,
            generation,
            ..
        } => {
            let assignment = assigned(state, group)?;
            same_generation("report", assignment.generation, *generation)?;
            if assignment.node != *node {
                return Err(ModelError::StaleGeneration {
                    what: "owner",
                    current: assignment.node,
                    given: *node,
                });
            }
            Ok(())
        }
        Command::CreateResource {
            name,
            group,
            resource_type,
            params,
        } => check_create_resource(state, name, group, resource_type, params),
        Command::DeleteResource { name } => {
            let resource = state
                .resources
                .get(name)
                .ok_or_else(|| ModelError::UnknownResource(name.clone()))?;
            check_offline(state, &resource.group)
        }
        Command::FailGroup { group, .. } | Command::RejectMove { group, .. } => {
            group_exists(state, group).map(drop)
        }
    }
}

/// Names are DNS-label-like so they work in paths, URLs and environment variables.
pub fn check_name(field: &'static str, name: &str) -> Result<(), ModelError> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    let starts_well = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > NAME_LEN_MAX || !valid_chars || !starts_well {
        return Err(ModelError::InvalidName {
            field,
            value: name.to_string(),
            fix: "use 1 to 63 letters, digits, '-', '_' or '.', starting with a letter or digit",
        });
    }
    Ok(())
}

fn node_exists(state: &ClusterState, node: NodeId) -> Result<(), ModelError> {
    state
        .nodes
        .get(&node)
        .map(drop)
        .ok_or_else(|| ModelError::UnknownNode(format!("#{node}")))
}

fn group_exists<'a>(state: &'a ClusterState, group: &str) -> Result<&'a Group, ModelError> {
    state
        .groups
        .get(group)
        .ok_or_else(|| ModelError::UnknownGroup(group.to_string()))
}

fn assigned(state: &ClusterState, group: &str) -> Result<Assignment, ModelError> {
    group_exists(state, group)?
        .assignment
        .ok_or_else(|| ModelError::NotAssigned(group.to_string()))
}

fn same_generation(what: &'static str, current: u64, given: u64) -> Result<(), ModelError> {
    if current != given {
        return Err(ModelError::StaleGeneration {
            what,
            current,
            given,
        });
    }
    Ok(())
}

fn check_join(
    state: &ClusterState,
    token_id: &str,
    secret_hash: &str,
    name: Option<&str>,
    addr: &str,
    now_ms: u64,
) -> Result<(), ModelError> {
    let token = state
        .join_tokens
        .get(token_id)
        .ok_or(ModelError::JoinRefused(
            "unknown token: ask an administrator for a new one (`baton node token`)",
        ))?;
    if token.used {
        return Err(ModelError::JoinRefused(
            "this token was already used: tokens are single use",
        ));
    }
    if token.expires_ms <= now_ms {
        return Err(ModelError::JoinRefused(
            "this token has expired: create a new one (`baton node token`)",
        ));
    }
    if token.secret_hash != secret_hash {
        return Err(ModelError::JoinRefused(
            "wrong token secret: copy the whole token",
        ));
    }
    if let Some(name) = name {
        check_name("node name", name)?;
        if state.node_by_name(name).is_some() {
            return Err(ModelError::NodeNameTaken(name.to_string()));
        }
    }
    if let Some(other) = state.nodes.values().find(|node| node.addr == addr) {
        return Err(ModelError::AddressTaken(
            addr.to_string(),
            other.name.clone(),
        ));
    }
    Ok(())
}

fn check_evict(state: &ClusterState, node: NodeId) -> Result<(), ModelError> {
    node_exists(state, node)?;
    let name = state.node_name(node);
    if state.nodes.len() == 1 {
        return Err(ModelError::LastNode(name));
    }
    let groups: Vec<&str> = state.groups_on(node).map(|g| g.name.as_str()).collect();
    if !groups.is_empty() {
        return Err(ModelError::NodeOwnsGroups {
            node: name,
            groups: groups.join(", "),
        });
    }
    Ok(())
}

fn check_properties(properties: &ClusterProperties) -> Result<(), ModelError> {
    for (field, settings) in [
        ("heartbeat.same_subnet", properties.same_subnet),
        ("heartbeat.cross_subnet", properties.cross_subnet),
    ] {
        if !(10..=60_000).contains(&settings.delay_ms) {
            let reason = format!("{field}.delay must be between 10ms and 60s");
            return Err(ModelError::InvalidProperty {
                field: "delay",
                reason,
            });
        }
        if !(2..=120).contains(&settings.threshold) {
            let reason = format!("{field}.threshold must be between 2 and 120 missed heartbeats");
            return Err(ModelError::InvalidProperty {
                field: "threshold",
                reason,
            });
        }
    }
    Ok(())
}

fn check_delete_group(state: &ClusterState, name: &str) -> Result<(), ModelError> {
    group_exists(state, name)?;
    check_offline(state, name)
}

fn check_offline(state: &ClusterState, group: &str) -> Result<(), ModelError> {
    let entry = group_exists(state, group)?;
    if let Some(assignment) = entry.assignment {
        let node = state.node_name(assignment.node);
        return Err(ModelError::GroupOnline {
            group: group.to_string(),
            node,
        });
    }
    Ok(())
}

fn check_place(
    state: &ClusterState,
    group: &str,
    node: NodeId,
    generation: u64,
) -> Result<(), ModelError> {
    let entry = group_exists(state, group)?;
    same_generation("placement", entry.generation + 1, generation)?;
    let target = state
        .nodes
        .get(&node)
        .ok_or_else(|| ModelError::UnknownNode(format!("#{node}")))?;
    let unfit = |why| ModelError::NodeUnfit {
        node: target.name.clone(),
        group: group.to_string(),
        why,
    };
    if target.state != NodeState::Up {
        return Err(unfit("not up"));
    }
    if let Some(current) = entry.assignment {
        // Safety: only a down owner's assignment may be replaced; the coordinator proposes
        // this only after that node's lease has certainly expired.
        let owner = state.nodes.get(&current.node);
        if let Some(owner) = owner.filter(|owner| owner.state != NodeState::Down) {
            let state_name = owner.display_state();
            return Err(ModelError::StillAssigned {
                group: group.to_string(),
                node: owner.name.clone(),
                state: state_name,
            });
        }
    }
    Ok(())
}

fn check_create_resource(
    state: &ClusterState,
    name: &str,
    group: &str,
    resource_type: &ResourceType,
    params: &std::collections::BTreeMap<String, String>,
) -> Result<(), ModelError> {
    check_name("resource name", name)?;
    if state.resources.contains_key(name) {
        return Err(ModelError::Duplicate {
            kind: "resource",
            name: name.to_string(),
        });
    }
    group_exists(state, group)?;
    let (required, optional) = resource_type.parameters();
    let rtype = resource_type.name();
    for param in required {
        if params
            .get(*param)
            .is_none_or(|value| value.trim().is_empty())
        {
            return Err(ModelError::MissingParam { rtype, param });
        }
    }
    for param in params.keys() {
        let known = required.contains(&param.as_str()) || optional.contains(&param.as_str());
        if !known && !param.starts_with("env.") {
            let accepted = required
                .iter()
                .chain(optional)
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ModelError::UnknownParam {
                rtype,
                param: param.clone(),
                accepted,
            });
        }
    }
    Ok(())
}
