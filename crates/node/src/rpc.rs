//! Node-to-node RPC under `/rpc`: only callers presenting a certificate of the cluster CA get
//! past `require_peer`. `/join` is the one public route, authenticated by a one-time token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use baton_client::dto::{ApiError, JoinRequest, JoinResponse};
use baton_model::{Command, CommandResult, NodeState, Update};
use baton_store::TypeConfig;
use baton_transport::pki::ClusterCa;
use baton_transport::serve::PeerIdentity;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use crate::clock::mono_ms;
use crate::node::Node;
use crate::setup::{hex_encode, sha256_hex};

type Shared = State<Arc<Node>>;
type Rejection = (StatusCode, Json<ApiError>);

/// `POST /rpc/condemn`: stop acking `node` (its epoch in the caller's database).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Condemn {
    pub node: u64,
    pub epoch: u64,
}

pub fn router() -> Router<Arc<Node>> {
    Router::new()
        .route("/rpc/raft/append", post(raft_append))
        .route("/rpc/raft/vote", post(raft_vote))
        .route("/rpc/raft/snapshot", post(raft_snapshot))
        .route("/rpc/propose", post(propose))
        .route("/rpc/read-index", get(read_index))
        .route("/rpc/silence/{node}", get(silence))
        .route("/rpc/condemn", post(condemn))
        .route("/join", post(join_public))
}

fn require_peer(peer: &PeerIdentity) -> Result<(), Rejection> {
    if peer.authenticated() {
        Ok(())
    } else {
        Err(rejection(
            StatusCode::UNAUTHORIZED,
            "node RPC needs a node certificate of this cluster",
        ))
    }
}

fn rejection(status: StatusCode, message: impl Into<String>) -> Rejection {
    (
        status,
        Json(ApiError {
            error: message.into(),
            field: None,
        }),
    )
}

async fn raft_append(
    State(node): Shared,
    Extension(peer): Extension<PeerIdentity>,
    Json(request): Json<AppendEntriesRequest<TypeConfig>>,
) -> Result<Json<Result<AppendEntriesResponse<u64>, RaftError<u64>>>, Rejection> {
    require_peer(&peer)?;
    Ok(Json(node.raft.append_entries(request).await))
}

async fn raft_vote(
    State(node): Shared,
    Extension(peer): Extension<PeerIdentity>,
    Json(request): Json<VoteRequest<u64>>,
) -> Result<Json<Result<VoteResponse<u64>, RaftError<u64>>>, Rejection> {
    require_peer(&peer)?;
    Ok(Json(node.raft.vote(request).await))
}

async fn raft_snapshot(
    State(node): Shared,
    Extension(peer): Extension<PeerIdentity>,
    Json(request): Json<InstallSnapshotRequest<TypeConfig>>,
) -> Result<
    Json<Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>>,
    Rejection,
> {
    require_peer(&peer)?;
    Ok(Json(node.raft.install_snapshot(request).await))
}

/// A follower forwards a proposal here; only the leader writes (no second forwarding).
async fn propose(
    State(node): Shared,
    Extension(peer): Extension<PeerIdentity>,
    Json(update): Json<Update>,
) -> Result<Json<Result<(CommandResult, u64), String>>, Rejection> {
    require_peer(&peer)?;
    let result = node.raft.client_write(update).await;
    Ok(Json(
        result
            .map(|response| (response.data, response.log_id.index))
            .map_err(|error| error.to_string()),
    ))
}

/// The coordinator's linearizable read index, for a follower's read barrier.
async fn read_index(
    State(node): Shared,
    Extension(peer): Extension<PeerIdentity>,
) -> Result<Json<Result<u64, String>>, Rejection> {
    require_peer(&peer)?;
    if !node.is_leader() {
        return Ok(Json(Err("not the coordinator".to_string())));
    }
    Ok(Json(node.read_index().await))
}

/// How long since this node heard `node` (the coordinator's indirect probe).
async fn silence(
    State(node): Shared,
    Extension(peer): Extension<PeerIdentity>,
    Path(target): Path<u64>,
) -> Result<Json<Option<u64>>, Rejection> {
    require_peer(&peer)?;
    Ok(Json(
        node.heartbeat.membership().silence_ms(target, mono_ms()),
    ))
}

/// Stops acking `node`; answers how long ago this node last acked it.
async fn condemn(
    State(node): Shared,
    Extension(peer): Extension<PeerIdentity>,
    Json(request): Json<Condemn>,
) -> Result<Json<Option<u64>>, Rejection> {
    require_peer(&peer)?;
    let age = node
        .heartbeat
        .membership()
        .condemn(request.node, request.epoch, mono_ms());
    tracing::info!(target_node = request.node, epoch = request.epoch, age_ms = ?age, "condemned");
    Ok(Json(age))
}

async fn join_public(
    State(node): Shared,
    Json(request): Json<JoinRequest>,
) -> Result<Json<JoinResponse>, Rejection> {
    join(node, request).await.map(Json)
}

/// Admits a node: the token is consumed by a committed `JoinNode` (so it is single use
/// cluster-wide), then this node's CA issues the newcomer's certificate.
async fn join(node: Arc<Node>, request: JoinRequest) -> Result<JoinResponse, Rejection> {
    let addr: SocketAddr = request.addr.parse().map_err(|_| {
        rejection(
            StatusCode::BAD_REQUEST,
            format!("invalid --listen address `{}`: use IP:PORT", request.addr),
        )
    })?;
    let command = Command::JoinNode {
        token_id: request.token_id.clone(),
        secret_hash: sha256_hex(&request.secret),
        name: request.name.clone(),
        addr: request.addr.clone(),
    };
    if let Err(error) = node
        .view()
        .state
        .validate(&command, crate::clock::wall_ms())
    {
        return Err(rejection(StatusCode::FORBIDDEN, error.to_string()));
    }
    let result = node
        .propose(command)
        .await
        .map_err(|e| rejection(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let (node_id, node_name) = match result {
        CommandResult::Joined { node, name } => (node, name),
        CommandResult::Rejected { reason } => return Err(rejection(StatusCode::FORBIDDEN, reason)),
        CommandResult::Ok => {
            return Err(rejection(
                StatusCode::INTERNAL_SERVER_ERROR,
                "join produced no node id",
            ))
        }
    };
    tracing::info!(node_id, node_name = %node_name, %addr, "node admitted");
    let ca = ClusterCa {
        cert_pem: node.secrets.ca_cert_pem.clone(),
        key_pem: node.secrets.ca_key_pem.clone(),
    };
    let cert = ca
        .issue_node_cert(&node_name, &[addr.ip()])
        .map_err(|e| rejection(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let view = node.view();
    let mut endpoints: Vec<String> = view
        .state
        .nodes
        .values()
        .filter(|n| n.state != NodeState::Down)
        .map(|n| n.addr.clone())
        .collect();
    endpoints.sort();
    Ok(JoinResponse {
        cluster_name: view.state.cluster_name.clone(),
        node_id,
        node_name,
        ca_cert_pem: node.secrets.ca_cert_pem.clone(),
        ca_key_pem: node.secrets.ca_key_pem.clone(),
        node_cert_pem: cert.cert_pem,
        node_key_pem: cert.key_pem,
        heartbeat_key_hex: hex_encode(&node.secrets.heartbeat_key),
        admin_token: node.secrets.admin_token.clone(),
        endpoints,
    })
}

/// Timeout for probe and condemn calls: a dead peer must not stall a failover.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
