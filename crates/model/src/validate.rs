//! Validation of commands against the state: the single place that decides what is allowed.

use crate::command::Command;
use crate::error::ModelError;
use crate::resource::*;
use crate::state::ClusterState;
use crate::types::*;
use baton_policy::DepExpr;

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
            check_members(state, "preferred_owners", preferred_owners)
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
        } => check_owner(state, group, *node, *generation),
        Command::CreateResource {
            name,
            group,
            resource_type,
            params,
        } => check_create_resource(state, name, group, resource_type, params),
        Command::DeleteResource { name } => {
            let resource = resource_exists(state, name)?;
            check_offline(state, &resource.group)?;
            check_not_depended_on(state, resource)
        }
        Command::FailGroup { group, .. }
        | Command::RejectMove { group, .. }
        | Command::ExplainGroup { group, .. } => group_exists(state, group).map(drop),
        Command::SetResource { name, settings } => {
            let resource = resource_exists(state, name)?;
            let next = resource.with_settings(settings);
            check_params(&next.resource_type, &next.params)?;
            check_resource_policy(state, &next)
        }
        Command::SetDependencies {
            resource,
            expression,
        } => check_dependencies(state, resource, expression.as_deref()).map(drop),
        Command::SetGroup { name, settings } => {
            group_exists(state, name)?;
            check_group_settings(state, settings)
        }
        Command::ReportResourceState {
            resource,
            node,
            generation,
            ..
        } => {
            let entry = resource_exists(state, resource)?;
            check_owner(state, &entry.group, *node, *generation)
        }
        Command::RestartResource {
            resource,
            node,
            generation,
            ..
        } => {
            let entry = resource_exists(state, resource)?;
            check_owner(state, &entry.group, *node, *generation)?;
            if entry.status.state != ResourceState::Failed {
                return Err(ModelError::NotFailed {
                    resource: resource.clone(),
                    state: format!("{:?}", entry.status.state),
                });
            }
            Ok(())
        }
        Command::ClearAssignment {
            group,
            node,
            generation,
            ..
        } => check_clear(state, group, *node, *generation),
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

fn resource_exists<'a>(state: &'a ClusterState, name: &str) -> Result<&'a Resource, ModelError> {
    state
        .resources
        .get(name)
        .ok_or_else(|| ModelError::UnknownResource(name.to_string()))
}

fn check_members(
    state: &ClusterState,
    field: &'static str,
    nodes: &[NodeId],
) -> Result<(), ModelError> {
    match nodes.iter().find(|id| !state.nodes.contains_key(id)) {
        Some(id) => Err(ModelError::NotAMember {
            field,
            node: format!("#{id}"),
        }),
        None => Ok(()),
    }
}

/// The report or request is about the group's current assignment on `node`.
fn check_owner(
    state: &ClusterState,
    group: &str,
    node: NodeId,
    generation: u64,
) -> Result<(), ModelError> {
    let assignment = assigned(state, group)?;
    same_generation("report", assignment.generation, generation)?;
    if assignment.node != node {
        return Err(ModelError::StaleGeneration {
            what: "owner",
            current: assignment.node,
            given: node,
        });
    }
    Ok(())
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
    check_params(resource_type, params)
}

/// Required parameters present and non-empty, no unknown ones, for the types whose parameters
/// the model knows (OCF agents are checked against their meta-data by the API).
pub fn check_params(
    resource_type: &ResourceType,
    params: &std::collections::BTreeMap<String, String>,
) -> Result<(), ModelError> {
    params
        .keys()
        .try_for_each(|key| crate::settings::check_param_key(key))?;
    let rtype = resource_type.name();
    if ResourceType::parse(&rtype).as_ref() != Some(resource_type) {
        return Err(ModelError::UnknownType(rtype));
    }
    let Some((required, optional)) = resource_type.parameters() else {
        return Ok(());
    };
    for param in required {
        if params
            .get(*param)
            .is_none_or(|value| value.trim().is_empty())
        {
            return Err(ModelError::MissingParam {
                rtype,
                param: param.to_string(),
            });
        }
    }
    let takes_env = *resource_type == ResourceType::Process;
    for param in params.keys() {
        let known = required.contains(&param.as_str()) || optional.contains(&param.as_str());
        let env = takes_env && param.starts_with("env.");
        if !known && !env {
            let mut accepted: Vec<&str> = required.iter().chain(optional).copied().collect();
            if takes_env {
                accepted.push("env.NAME");
            }
            return Err(ModelError::UnknownParam {
                rtype,
                param: param.clone(),
                accepted: accepted.join(", "),
            });
        }
    }
    check_process_checks(params)
}

/// The IsAlive checks of a process have a syntax the model can check.
fn check_process_checks(
    params: &std::collections::BTreeMap<String, String>,
) -> Result<(), ModelError> {
    let invalid = |field: &str, value: &str, fix: &str| ModelError::InvalidSetting {
        field: format!("param {field}"),
        value: value.to_string(),
        fix: fix.to_string(),
    };
    if let Some(value) = params.get("check_tcp") {
        let port = value.rsplit_once(':').map(|(_, port)| port.parse::<u16>());
        if !matches!(port, Some(Ok(p)) if p > 0) {
            return Err(invalid(
                "check_tcp",
                value,
                "use HOST:PORT, e.g. 127.0.0.1:8080",
            ));
        }
    }
    if let Some(value) = params.get("check_http") {
        if !value.starts_with("http://") {
            return Err(invalid(
                "check_http",
                value,
                "use an http:// URL, e.g. http://127.0.0.1:8080/health",
            ));
        }
    }
    Ok(())
}

/// Possible owners are members, and the group keeps at least one node every resource may
/// run on.
fn check_resource_policy(state: &ClusterState, next: &Resource) -> Result<(), ModelError> {
    let policy = &next.policy;
    for (field, ms) in [
        ("looks_alive", policy.looks_alive_ms),
        ("is_alive", policy.is_alive_ms),
        ("pending_timeout", policy.pending_timeout_ms),
        ("retry_period", policy.retry_period_ms),
        ("restart period", policy.restart.period_ms),
    ] {
        if ms < 100 {
            return Err(ModelError::InvalidSetting {
                field: field.to_string(),
                value: format!("{ms}ms"),
                fix: "use at least 100ms".to_string(),
            });
        }
    }
    if let Some(owners) = &next.policy.possible_owners {
        check_members(state, "possible_owners", owners)?;
    }
    let restricted: Vec<&Resource> = state
        .group_resources(&next.group)
        .map(|r| if r.name == next.name { next } else { r })
        .filter(|r| r.policy.possible_owners.is_some())
        .collect();
    let fits = |id: &NodeId| {
        restricted.iter().all(|r| {
            r.policy
                .possible_owners
                .as_ref()
                .is_none_or(|owners| owners.contains(id))
        })
    };
    if restricted.is_empty() || state.nodes.keys().any(fits) {
        return Ok(());
    }
    let detail = restricted
        .iter()
        .map(|r| {
            let owners = r.policy.possible_owners.as_deref().unwrap_or_default();
            let names: Vec<String> = owners.iter().map(|id| state.node_name(*id)).collect();
            let names = if names.is_empty() {
                "none".to_string()
            } else {
                names.join(",")
            };
            format!("{} may run on {names}", r.name)
        })
        .collect::<Vec<_>>()
        .join("; ");
    Err(ModelError::NoPossibleOwner {
        group: next.group.clone(),
        detail,
    })
}

fn check_group_settings(state: &ClusterState, settings: &[GroupSetting]) -> Result<(), ModelError> {
    for setting in settings {
        match setting {
            GroupSetting::PreferredOwners(owners) => {
                check_members(state, "preferred_owners", owners)?
            }
            GroupSetting::AntiAffinity(classes) => classes
                .iter()
                .try_for_each(|class| check_name("anti_affinity class", class))?,
            GroupSetting::FailoverThreshold(_)
            | GroupSetting::FailoverPeriodMs(_)
            | GroupSetting::Failback(_)
            | GroupSetting::Priority(_) => {}
        }
    }
    Ok(())
}

/// Parses and normalizes a dependency expression: every name a resource of the same group,
/// no cycle. Returns the normalized text (`None` = no dependencies).
pub fn check_dependencies(
    state: &ClusterState,
    resource: &str,
    expression: Option<&str>,
) -> Result<Option<String>, ModelError> {
    let entry = resource_exists(state, resource)?;
    let Some(text) = expression.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let expr = DepExpr::parse(text).map_err(|error| ModelError::DependencySyntax {
        resource: resource.to_string(),
        error: error.to_string(),
    })?;
    for name in expr.references() {
        let same_group = state
            .resources
            .get(name)
            .is_some_and(|r| r.group == entry.group);
        if !same_group {
            return Err(ModelError::DependencyUnknown {
                resource: resource.to_string(),
                name: name.to_string(),
                group: entry.group.clone(),
            });
        }
    }
    let normalized = expr.to_string();
    let mut group = baton_policy::GroupView::new(entry.group.clone());
    // The changed resource first, so a cycle is named starting from it.
    let mut members: Vec<&Resource> = state.group_resources(&entry.group).collect();
    members.sort_by_key(|r| r.name != resource);
    for other in members {
        let mut view = baton_policy::ResourceView::new(other.name.clone());
        view.depends_on = if other.name == resource {
            Some(expr.clone())
        } else {
            other
                .policy
                .depends_on
                .as_deref()
                .and_then(|t| DepExpr::parse(t).ok())
        };
        group.resources.push(view);
    }
    baton_policy::check_cycles(&group)
        .map_err(|cycle| ModelError::DependencyCycle(cycle.to_string()))?;
    Ok(Some(normalized))
}

/// A resource that others name in their dependencies cannot be deleted.
fn check_not_depended_on(state: &ClusterState, resource: &Resource) -> Result<(), ModelError> {
    let dependents: Vec<&str> = state
        .group_resources(&resource.group)
        .filter(|r| {
            r.policy
                .depends_on
                .as_deref()
                .and_then(|t| DepExpr::parse(t).ok())
                .is_some_and(|expr| expr.references().contains(&resource.name.as_str()))
        })
        .map(|r| r.name.as_str())
        .collect();
    if dependents.is_empty() {
        return Ok(());
    }
    Err(ModelError::DependedOn {
        resource: resource.name.clone(),
        dependents: dependents.join(", "),
    })
}

/// Only the coordinator clears an assignment, and only of an owner that is down (it proposes
/// this after the owner's lease has certainly expired).
fn check_clear(
    state: &ClusterState,
    group: &str,
    node: NodeId,
    generation: u64,
) -> Result<(), ModelError> {
    check_owner(state, group, node, generation)?;
    let down = state
        .nodes
        .get(&node)
        .is_none_or(|n| n.state == NodeState::Down);
    if !down {
        return Err(ModelError::OwnerNotLost {
            group: group.to_string(),
            node: state.node_name(node),
        });
    }
    Ok(())
}
