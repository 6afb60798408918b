//! REST handlers for resources, their settings and dependencies, group settings, and
//! resource types. OCF agents' parameters are checked against their meta-data here (the
//! model cannot run an agent): required ones present, unknown ones refused.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use baton_agents::{ocf, AgentMetadata};
use baton_client::dto::*;
use baton_model::settings::{self, format_duration_ms};
use baton_model::{ClusterState, Command, GroupPolicy, ModelError, Resource, ResourceType};

use super::{group_answer, submit, ApiFailure, ApiResult, Shared};
use crate::clock::wall_ms;
use crate::node::Node;

/// A bad `key=value`: the error names the key as its field.
fn setting_error(key: &str, error: ModelError) -> ApiFailure {
    ApiFailure(
        StatusCode::BAD_REQUEST,
        ApiError {
            error: error.to_string(),
            field: Some(key.to_string()),
        },
    )
}

fn nothing_to_set(keys: &[&str]) -> ApiFailure {
    let message = format!(
        "nothing to set: give KEY=VALUE pairs; keys are {}",
        keys.join(", ")
    );
    ApiFailure::new(StatusCode::BAD_REQUEST, message)
}

pub async fn resource(State(node): Shared, Path(name): Path<String>) -> ApiResult<ResourceInfo> {
    resource_answer(&node.view().state, &name)
}

fn resource_answer(state: &ClusterState, name: &str) -> ApiResult<ResourceInfo> {
    let resource = state
        .resources
        .get(name)
        .ok_or_else(|| ApiFailure::from(ModelError::UnknownResource(name.to_string())))?;
    Ok(Json(resource_info(state, resource, wall_ms())))
}

pub fn resource_info(state: &ClusterState, resource: &Resource, now_ms: u64) -> ResourceInfo {
    let group = state.groups.get(&resource.group);
    let policy = &resource.policy;
    let status = &resource.status;
    let restart_period_ms = policy.restart.period_ms;
    ResourceInfo {
        name: resource.name.clone(),
        group: resource.group.clone(),
        resource_type: resource.resource_type.name(),
        params: resource.params.clone(),
        owner: group
            .and_then(|g| g.assignment)
            .map(|a| state.node_name(a.node)),
        status: group.map_or_else(|| "Offline".to_string(), |g| format!("{:?}", g.status)),
        state: format!("{:?}", status.state),
        status_message: status.message.clone(),
        misconfigured: status.misconfigured,
        depends_on: policy.depends_on.clone(),
        settings: resource_settings(state, resource),
        restarts_recent: status
            .restart_history_ms
            .iter()
            .filter(|t| now_ms.saturating_sub(**t) < restart_period_ms)
            .count(),
    }
}

/// The policy in the syntax `baton resource set` accepts.
fn resource_settings(state: &ClusterState, resource: &Resource) -> BTreeMap<String, String> {
    let policy = &resource.policy;
    let owners = policy.possible_owners.as_ref().map_or_else(
        || "all".to_string(),
        |ids| {
            let names: Vec<String> = ids.iter().map(|id| state.node_name(*id)).collect();
            names.join(",")
        },
    );
    BTreeMap::from([
        (
            "looks_alive".into(),
            format_duration_ms(policy.looks_alive_ms),
        ),
        ("is_alive".into(), format_duration_ms(policy.is_alive_ms)),
        (
            "pending_timeout".into(),
            format_duration_ms(policy.pending_timeout_ms),
        ),
        ("restart".into(), settings::restart_text(&policy.restart)),
        (
            "retry_period".into(),
            format_duration_ms(policy.retry_period_ms),
        ),
        ("possible_owners".into(), owners),
    ])
}

/// The group policy in the syntax `baton group set` accepts.
pub fn group_settings(policy: &GroupPolicy) -> BTreeMap<String, String> {
    let threshold = policy
        .failover_threshold
        .map_or_else(|| "default".to_string(), |n| n.to_string());
    BTreeMap::from([
        ("failover_threshold".into(), threshold),
        (
            "failover_period".into(),
            format_duration_ms(policy.failover_period_ms),
        ),
        ("failback".into(), settings::failback_text(&policy.failback)),
        (
            "priority".into(),
            settings::priority_text(policy.priority).to_string(),
        ),
        ("anti_affinity".into(), policy.anti_affinity.join(",")),
    ])
}

/// `Online`, or `Failed: why` for `baton group show`.
pub fn state_text(resource: &Resource) -> String {
    let status = &resource.status;
    match status.message.is_empty() {
        true => format!("{:?}", status.state),
        false => format!("{:?}: {}", status.state, status.message),
    }
}

pub async fn create_resource(
    State(node): Shared,
    Json(request): Json<CreateResource>,
) -> Result<(StatusCode, Json<ResourceInfo>), ApiFailure> {
    let resource_type = ResourceType::parse(&request.resource_type)
        .ok_or_else(|| ApiFailure::from(ModelError::UnknownType(request.resource_type.clone())))?;
    let command = Command::CreateResource {
        name: request.name.clone(),
        group: request.group.clone(),
        resource_type: resource_type.clone(),
        params: request.params.clone(),
    };
    // The model's checks first: they need no agent and name the problem just as well.
    node.view().state.validate(&command, wall_ms())?;
    check_agent_params(&node, &resource_type, &request.params).await?;
    let view = submit(&node, command).await?;
    Ok((
        StatusCode::CREATED,
        resource_answer(&view.state, &request.name)?,
    ))
}

pub async fn set_resource(
    State(node): Shared,
    Path(name): Path<String>,
    Json(request): Json<SetSettings>,
) -> ApiResult<ResourceInfo> {
    let view = node.view();
    let state = &view.state;
    let resource = state
        .resources
        .get(&name)
        .ok_or_else(|| ApiFailure::from(ModelError::UnknownResource(name.clone())))?;
    let settings = request
        .settings
        .iter()
        .map(|(key, value)| {
            settings::resource_setting(state, key, value).map_err(|e| setting_error(key, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if settings.is_empty() {
        return Err(nothing_to_set(settings::RESOURCE_KEYS));
    }
    let next = resource.with_settings(&settings);
    check_agent_params(&node, &next.resource_type, &next.params).await?;
    let view = submit(
        &node,
        Command::SetResource {
            name: name.clone(),
            settings,
        },
    )
    .await?;
    resource_answer(&view.state, &name)
}

pub async fn set_dependencies(
    State(node): Shared,
    Path(name): Path<String>,
    Json(request): Json<SetDependencies>,
) -> ApiResult<ResourceInfo> {
    let expression = Some(request.expression.trim().to_string()).filter(|e| !e.is_empty());
    let command = Command::SetDependencies {
        resource: name.clone(),
        expression,
    };
    let view = submit(&node, command).await?;
    resource_answer(&view.state, &name)
}

pub async fn set_group(
    State(node): Shared,
    Path(name): Path<String>,
    Json(request): Json<SetSettings>,
) -> ApiResult<GroupInfo> {
    let view = node.view();
    let state = &view.state;
    let settings = request
        .settings
        .iter()
        .map(|(key, value)| {
            settings::group_setting(state, key, value).map_err(|e| setting_error(key, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if settings.is_empty() {
        return Err(nothing_to_set(settings::GROUP_KEYS));
    }
    let view = submit(
        &node,
        Command::SetGroup {
            name: name.clone(),
            settings,
        },
    )
    .await?;
    group_answer(&view.state, &name)
}

pub async fn resource_types(State(_node): Shared) -> ApiResult<Vec<ResourceTypeSummary>> {
    let builtin = [
        (baton_agents::process::metadata()),
        (baton_agents::systemd::metadata()),
    ];
    let mut types: Vec<ResourceTypeSummary> = builtin
        .into_iter()
        .map(|m| ResourceTypeSummary {
            name: m.name,
            description: m.shortdesc,
        })
        .collect();
    types.extend(
        ocf::installed_agents()
            .into_iter()
            .map(|name| ResourceTypeSummary {
                name,
                description: "OCF resource agent (`baton resource-type show` for its parameters)"
                    .into(),
            }),
    );
    Ok(Json(types))
}

pub async fn resource_type(
    State(node): Shared,
    Path(name): Path<String>,
) -> ApiResult<ResourceTypeInfo> {
    let resource_type = ResourceType::parse(&name)
        .ok_or_else(|| ApiFailure::from(ModelError::UnknownType(name.clone())))?;
    let metadata = type_metadata(&node, &resource_type).await?;
    let parameters = metadata
        .parameters
        .into_iter()
        .map(|p| ParameterDto {
            name: p.name,
            required: p.required,
            unique: p.unique,
            description: p.shortdesc,
            content_type: p.content_type,
            default: p.default.filter(|d| !d.is_empty()),
        })
        .collect();
    Ok(Json(ResourceTypeInfo {
        name: resource_type.name(),
        description: metadata.shortdesc,
        long_description: metadata.longdesc,
        parameters,
        actions: metadata.actions,
        node: node.identity.node_name.clone(),
    }))
}

async fn type_metadata(
    node: &Node,
    resource_type: &ResourceType,
) -> Result<AgentMetadata, ApiFailure> {
    match resource_type {
        ResourceType::Process => Ok(baton_agents::process::metadata()),
        ResourceType::Systemd => Ok(baton_agents::systemd::metadata()),
        ResourceType::Ocf { provider, agent } => ocf::metadata(&node.host, provider, agent)
            .await
            .map_err(|error| {
                let status = match error {
                    ocf::OcfError::NotInstalled { .. } => StatusCode::NOT_FOUND,
                    _ => StatusCode::BAD_GATEWAY,
                };
                ApiFailure::new(status, error.to_string())
            }),
    }
}

/// An OCF agent's required parameters are present and every parameter is one it declares.
async fn check_agent_params(
    node: &Node,
    resource_type: &ResourceType,
    params: &BTreeMap<String, String>,
) -> Result<(), ApiFailure> {
    if !matches!(resource_type, ResourceType::Ocf { .. }) {
        return Ok(());
    }
    let metadata = type_metadata(node, resource_type).await?;
    let rtype = resource_type.name();
    for required in metadata.required() {
        if params
            .get(&required.name)
            .is_none_or(|v| v.trim().is_empty())
        {
            let error = ModelError::MissingParam {
                rtype: rtype.clone(),
                param: required.name.clone(),
            };
            return Err(setting_error(&required.name, error));
        }
    }
    if let Some(unknown) = params.keys().find(|k| metadata.parameter(k).is_none()) {
        let accepted: Vec<&str> = metadata
            .parameters
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        let error = ModelError::UnknownParam {
            rtype,
            param: unknown.clone(),
            accepted: accepted.join(", "),
        };
        return Err(setting_error(unknown, error));
    }
    Ok(())
}
