//! The public REST API under `/api/v1`, behind the admin bearer token. Reads answer from this
//! node's applied state; writes are validated here (so the caller gets the error at once) and
//! committed through the coordinator.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use baton_client::dto::*;
use baton_model::{
    ClusterProperties, ClusterState, Command, CommandResult, Desired, ModelError, NodeId, NodeState,
};

use baton_store::StateView;

use crate::clock::wall_ms;
use crate::node::{Node, ProposeError};
use crate::setup::{random_hex, sha256_hex};

mod resources;

type Shared = State<Arc<Node>>;

/// An error answer: status plus the `ApiError` body naming the problem and the fix.
#[derive(Debug)]
pub struct ApiFailure(StatusCode, ApiError);

impl ApiFailure {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self(
            status,
            ApiError {
                error: message.into(),
                field: None,
            },
        )
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<ProposeError> for ApiFailure {
    fn from(error: ProposeError) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
    }
}

impl From<ModelError> for ApiFailure {
    fn from(error: ModelError) -> Self {
        let status = match error {
            ModelError::UnknownNode(_)
            | ModelError::UnknownGroup(_)
            | ModelError::UnknownResource(_) => StatusCode::NOT_FOUND,
            ModelError::Duplicate { .. }
            | ModelError::GroupOnline { .. }
            | ModelError::NodeOwnsGroups { .. }
            | ModelError::StillAssigned { .. }
            | ModelError::LastNode(_) => StatusCode::CONFLICT,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, error.to_string())
    }
}

type ApiResult<T> = Result<Json<T>, ApiFailure>;

pub fn router(node: Arc<Node>) -> Router<Arc<Node>> {
    Router::new()
        .route("/api/v1/cluster", get(cluster))
        .route("/api/v1/cluster/properties", put(set_properties))
        .route("/api/v1/nodes", get(nodes))
        .route("/api/v1/nodes/{name}", axum::routing::delete(evict_node))
        .route("/api/v1/nodes/{name}/pause", post(pause_node))
        .route("/api/v1/nodes/{name}/resume", post(resume_node))
        .route("/api/v1/join-tokens", post(create_join_token))
        .route("/api/v1/groups", get(groups).post(create_group))
        .route(
            "/api/v1/groups/{name}",
            get(group).put(resources::set_group).delete(delete_group),
        )
        .route("/api/v1/groups/{name}/online", post(group_online))
        .route("/api/v1/groups/{name}/offline", post(group_offline))
        .route("/api/v1/groups/{name}/move", post(move_group))
        .route(
            "/api/v1/resources",
            get(resources).post(resources::create_resource),
        )
        .route(
            "/api/v1/resources/{name}",
            get(resources::resource)
                .put(resources::set_resource)
                .delete(delete_resource),
        )
        .route(
            "/api/v1/resources/{name}/dependencies",
            put(resources::set_dependencies),
        )
        .route("/api/v1/resource-types", get(resources::resource_types))
        .route(
            "/api/v1/resource-types/{name}",
            get(resources::resource_type),
        )
        .route("/api/v1/events", get(events))
        .route_layer(axum::middleware::from_fn_with_state(
            node.clone(),
            read_barrier,
        ))
        .route_layer(axum::middleware::from_fn_with_state(node, authorize))
}

/// Compares digests rather than the tokens, so the comparison time says nothing useful.
/// Every API request first sees everything committed before it (see `Node::read_barrier`).
async fn read_barrier(State(node): Shared, request: Request, next: Next) -> Response {
    node.read_barrier().await;
    next.run(request).await
}

async fn authorize(State(node): Shared, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(sha256_hex);
    if presented.as_deref() != Some(sha256_hex(&node.secrets.admin_token).as_str()) {
        let message = "missing or wrong API token: use the client configuration written by `baton cluster create` or `baton node join`";
        return ApiFailure::new(StatusCode::UNAUTHORIZED, message).into_response();
    }
    next.run(request).await
}

/// Validates against the local state, commits, waits until this node applied it (so the
/// answer shows the change), and turns a late rejection into a conflict.
async fn submit(node: &Node, command: Command) -> Result<Arc<StateView>, ApiFailure> {
    node.view().state.validate(&command, wall_ms())?;
    match node.propose_indexed(command).await? {
        (CommandResult::Rejected { reason }, _) => {
            Err(ApiFailure::new(StatusCode::CONFLICT, reason))
        }
        (_, index) => Ok(node.applied(index).await),
    }
}

fn node_id(state: &ClusterState, name: &str) -> Result<NodeId, ApiFailure> {
    state
        .node_by_name(name)
        .map(|n| n.id)
        .ok_or_else(|| ModelError::UnknownNode(name.to_string()).into())
}

async fn cluster(State(node): Shared) -> ApiResult<ClusterInfo> {
    Ok(Json(cluster_info(&node, &node.view().state)))
}

fn cluster_info(node: &Node, state: &ClusterState) -> ClusterInfo {
    let voters = state
        .nodes
        .values()
        .filter(|n| n.state != NodeState::Joining);
    let votes_total: u32 = voters.clone().map(|n| n.votes).sum();
    let votes_up: u32 = voters
        .filter(|n| n.state == NodeState::Up)
        .map(|n| n.votes)
        .sum();
    let coordinator = node.leader().map(|id| state.node_name(id));
    ClusterInfo {
        name: state.cluster_name.clone(),
        node: node.identity.node_name.clone(),
        has_quorum: coordinator.is_some() && votes_up * 2 > votes_total,
        coordinator,
        votes_up,
        votes_total,
        properties: properties_map(&state.properties),
    }
}

fn properties_map(properties: &ClusterProperties) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for (class, settings) in [
        ("same_subnet", properties.same_subnet),
        ("cross_subnet", properties.cross_subnet),
    ] {
        map.insert(
            format!("heartbeat.{class}.delay"),
            format!("{}ms", settings.delay_ms),
        );
        map.insert(
            format!("heartbeat.{class}.threshold"),
            settings.threshold.to_string(),
        );
    }
    map
}

async fn set_properties(
    State(node): Shared,
    Json(request): Json<SetProperties>,
) -> ApiResult<ClusterInfo> {
    let mut properties = node.view().state.properties;
    for (key, value) in &request.properties {
        apply_property(&mut properties, key, value)?;
    }
    let view = submit(&node, Command::SetProperties { properties }).await?;
    Ok(Json(cluster_info(&node, &view.state)))
}

fn apply_property(
    properties: &mut ClusterProperties,
    key: &str,
    value: &str,
) -> Result<(), ApiFailure> {
    let bad = |fix: &str| {
        ApiFailure(
            StatusCode::BAD_REQUEST,
            ApiError {
                error: format!("invalid value `{value}` for {key}: {fix}"),
                field: Some(key.to_string()),
            },
        )
    };
    let settings = match key.rsplit_once('.').map(|(prefix, _)| prefix) {
        Some("heartbeat.same_subnet") => &mut properties.same_subnet,
        Some("heartbeat.cross_subnet") => &mut properties.cross_subnet,
        _ => {
            let known = properties_map(&ClusterProperties::default())
                .into_keys()
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ApiFailure(
                StatusCode::BAD_REQUEST,
                ApiError {
                    error: format!("unknown property `{key}`: known are {known}"),
                    field: Some(key.to_string()),
                },
            ));
        }
    };
    if key.ends_with(".delay") {
        let delay = humantime::parse_duration(value)
            .map_err(|_| bad("use a duration such as 100ms or 1s"))?;
        settings.delay_ms = delay.as_millis() as u64;
    } else if key.ends_with(".threshold") {
        settings.threshold = value
            .parse()
            .map_err(|_| bad("use a whole number of missed heartbeats, e.g. 5"))?;
    } else {
        return Err(bad("the property ends in .delay or .threshold"));
    }
    Ok(())
}

async fn nodes(State(node): Shared) -> ApiResult<Vec<NodeInfo>> {
    let view = node.view();
    let leader = node.leader();
    Ok(Json(
        view.state
            .nodes
            .values()
            .map(|n| node_info(&view.state, n, leader))
            .collect(),
    ))
}

fn node_info(state: &ClusterState, entry: &baton_model::Node, leader: Option<NodeId>) -> NodeInfo {
    NodeInfo {
        id: entry.id,
        name: entry.name.clone(),
        addr: entry.addr.clone(),
        state: entry.display_state().to_string(),
        votes: if entry.state == NodeState::Joining {
            0
        } else {
            entry.votes
        },
        groups: state.groups_on(entry.id).map(|g| g.name.clone()).collect(),
        is_coordinator: leader == Some(entry.id),
    }
}

fn node_answer(node: &Node, view: &StateView, id: NodeId) -> ApiResult<NodeInfo> {
    let entry = view
        .state
        .nodes
        .get(&id)
        .ok_or_else(|| ApiFailure::new(StatusCode::NOT_FOUND, "node vanished"))?;
    Ok(Json(node_info(&view.state, entry, node.leader())))
}

async fn pause_node(
    State(node): Shared,
    Path(name): Path<String>,
    Json(request): Json<PauseNode>,
) -> ApiResult<NodeInfo> {
    let id = node_id(&node.view().state, &name)?;
    let view = submit(
        &node,
        Command::PauseNode {
            node: id,
            drain: request.drain,
        },
    )
    .await?;
    node_answer(&node, &view, id)
}

async fn resume_node(State(node): Shared, Path(name): Path<String>) -> ApiResult<NodeInfo> {
    let id = node_id(&node.view().state, &name)?;
    let view = submit(&node, Command::ResumeNode { node: id }).await?;
    node_answer(&node, &view, id)
}

/// Evicts a node from the database; the coordinator then removes it from Raft.
async fn evict_node(
    State(node): Shared,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiFailure> {
    let id = node_id(&node.view().state, &name)?;
    submit(&node, Command::EvictNode { node: id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_join_token(
    State(node): Shared,
    Json(request): Json<CreateJoinToken>,
) -> ApiResult<JoinTokenInfo> {
    if !(60..=7 * 24 * 3600).contains(&request.ttl_s) {
        return Err(ApiFailure::new(
            StatusCode::BAD_REQUEST,
            "invalid --ttl: between 1m and 7d",
        ));
    }
    let internal =
        |e: anyhow::Error| ApiFailure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let token_id = random_hex(8).map_err(internal)?;
    let secret = random_hex(16).map_err(internal)?;
    let expires_ms = wall_ms() + request.ttl_s * 1000;
    let command = Command::CreateJoinToken {
        token_id: token_id.clone(),
        secret_hash: sha256_hex(&secret),
        expires_ms,
    };
    submit(&node, command).await?;
    let fingerprint = baton_transport::pki::ca_fingerprint(&node.secrets.ca_cert_pem)
        .map_err(|e| ApiFailure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(JoinTokenInfo {
        token: format!("{token_id}.{secret}.{fingerprint}"),
        expires_ms,
    }))
}

async fn groups(State(node): Shared) -> ApiResult<Vec<GroupInfo>> {
    let view = node.view();
    Ok(Json(
        view.state
            .groups
            .values()
            .map(|g| group_info(&view.state, g))
            .collect(),
    ))
}

async fn group(State(node): Shared, Path(name): Path<String>) -> ApiResult<GroupInfo> {
    group_answer(&node.view().state, &name)
}

fn group_answer(state: &ClusterState, name: &str) -> ApiResult<GroupInfo> {
    let entry = state
        .groups
        .get(name)
        .ok_or_else(|| ApiFailure::from(ModelError::UnknownGroup(name.to_string())))?;
    Ok(Json(group_info(state, entry)))
}

fn group_info(state: &ClusterState, entry: &baton_model::Group) -> GroupInfo {
    let now = wall_ms();
    let period_ms = entry.policy.failover_period_ms;
    GroupInfo {
        name: entry.name.clone(),
        preferred_owners: entry
            .preferred_owners
            .iter()
            .map(|id| state.node_name(*id))
            .collect(),
        desired: format!("{:?}", entry.desired),
        owner: entry.assignment.map(|a| state.node_name(a.node)),
        generation: entry.generation,
        status: format!("{:?}", entry.status),
        status_message: entry.status_message.clone(),
        last_reason: entry.last_reason.clone(),
        resources: state
            .group_resources(&entry.name)
            .map(|r| r.name.clone())
            .collect(),
        failovers_recent: entry
            .failover_history_ms
            .iter()
            .filter(|t| now.saturating_sub(**t) < period_ms)
            .count(),
        explanation: entry.explanation.clone(),
        settings: resources::group_settings(&entry.policy),
        resource_states: state
            .group_resources(&entry.name)
            .map(|r| (r.name.clone(), resources::state_text(r)))
            .collect(),
    }
}

async fn create_group(
    State(node): Shared,
    Json(request): Json<CreateGroup>,
) -> Result<(StatusCode, Json<GroupInfo>), ApiFailure> {
    let state = &node.view().state;
    let preferred_owners = request
        .preferred_owners
        .iter()
        .map(|name| node_id(state, name))
        .collect::<Result<Vec<_>, _>>()?;
    let view = submit(
        &node,
        Command::CreateGroup {
            name: request.name.clone(),
            preferred_owners,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        group_answer(&view.state, &request.name)?,
    ))
}

async fn delete_group(
    State(node): Shared,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiFailure> {
    submit(&node, Command::DeleteGroup { name }).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_desired(node: &Node, group: String, desired: Desired) -> ApiResult<GroupInfo> {
    let view = submit(
        node,
        Command::SetGroupDesired {
            group: group.clone(),
            desired,
        },
    )
    .await?;
    group_answer(&view.state, &group)
}

async fn group_online(State(node): Shared, Path(name): Path<String>) -> ApiResult<GroupInfo> {
    set_desired(&node, name, Desired::Online).await
}

async fn group_offline(State(node): Shared, Path(name): Path<String>) -> ApiResult<GroupInfo> {
    set_desired(&node, name, Desired::Offline).await
}

async fn move_group(
    State(node): Shared,
    Path(name): Path<String>,
    Json(request): Json<MoveGroup>,
) -> ApiResult<GroupInfo> {
    let state = &node.view().state;
    let target = request
        .to
        .as_deref()
        .map(|to| node_id(state, to))
        .transpose()?;
    let entry = state
        .groups
        .get(&name)
        .ok_or_else(|| ApiFailure::from(ModelError::UnknownGroup(name.clone())))?;
    if entry.assignment.is_none() {
        let message = format!("group `{name}` is not online: `baton group online {name}` places it on its preferred owner");
        return Err(ApiFailure::new(StatusCode::CONFLICT, message));
    }
    let view = submit(
        &node,
        Command::RequestMove {
            group: name.clone(),
            target,
        },
    )
    .await?;
    group_answer(&view.state, &name)
}

async fn resources(State(node): Shared) -> ApiResult<Vec<ResourceInfo>> {
    let view = node.view();
    Ok(Json(
        view.state
            .resources
            .values()
            .map(|r| resources::resource_info(&view.state, r, wall_ms()))
            .collect(),
    ))
}

async fn delete_resource(
    State(node): Shared,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiFailure> {
    submit(&node, Command::DeleteResource { name }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
struct EventsQuery {
    limit: Option<usize>,
}

async fn events(
    State(node): Shared,
    Query(query): Query<EventsQuery>,
) -> ApiResult<Vec<EventInfo>> {
    let view = node.view();
    let limit = query.limit.unwrap_or(50);
    let skip = view.state.events.len().saturating_sub(limit);
    Ok(Json(
        view.state
            .events
            .iter()
            .skip(skip)
            .map(|e| EventInfo {
                time_ms: e.time_ms,
                text: e.text.clone(),
            })
            .collect(),
    ))
}
