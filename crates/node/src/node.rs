//! The running node: handles shared by the API, the RPC handlers and the control loops.

use std::sync::Arc;
use std::time::Duration;

use baton_host::HostHandle;
use baton_model::{Command, CommandResult, Update};
use baton_store::{Raft, StateView};
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::watch;

use crate::clock::{mono_ms, wall_ms};
use crate::heartbeat::Heartbeat;
use crate::setup::{Identity, Secrets};

/// How long a proposal may look for a coordinator before giving up.
const PROPOSE_DEADLINE: Duration = Duration::from_secs(5);
/// Timeout of asking the coordinator for a read index.
const READ_BARRIER_TIMEOUT: Duration = Duration::from_secs(1);
/// Timeout of one forwarded proposal.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Node {
    pub identity: Identity,
    pub secrets: Secrets,
    pub raft: Raft,
    pub view: watch::Receiver<Arc<StateView>>,
    /// HTTPS client presenting this node's certificate (mutual TLS to peers).
    pub peer_client: reqwest::Client,
    pub heartbeat: Arc<Heartbeat>,
    pub host: HostHandle,
    pub data_dir: std::path::PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    #[error("no coordinator reachable: the cluster has no quorum right now ({0})")]
    NoLeader(String),
    #[error("the cluster database failed: {0}")]
    Raft(String),
}

impl Node {
    pub fn id(&self) -> u64 {
        self.identity.node_id
    }

    /// The latest applied cluster state.
    pub fn view(&self) -> Arc<StateView> {
        self.view.borrow().clone()
    }

    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.id())
    }

    pub fn holds_lease(&self) -> bool {
        self.heartbeat.membership().holds_lease(mono_ms())
    }

    /// Commits a global update through the coordinator and returns what applying it did.
    /// Acknowledged only once a majority has it.
    pub async fn propose(&self, command: Command) -> Result<CommandResult, ProposeError> {
        self.propose_indexed(command)
            .await
            .map(|(result, _)| result)
    }

    /// The log index up to which a read is linearizable, asked of the coordinator (a round
    /// of heartbeats to a quorum there).
    pub async fn read_index(&self) -> Result<u64, String> {
        if self.is_leader() {
            let read = self
                .raft
                .ensure_linearizable()
                .await
                .map_err(|e| e.to_string())?;
            return Ok(read.map_or(0, |log_id| log_id.index));
        }
        let leader = self.leader().ok_or("no coordinator")?;
        let addr = self
            .view()
            .membership
            .addrs
            .get(&leader)
            .cloned()
            .ok_or("coordinator address unknown")?;
        let url = format!("https://{addr}/rpc/read-index");
        let sent = self
            .peer_client
            .get(url)
            .timeout(READ_BARRIER_TIMEOUT)
            .send()
            .await;
        let response = sent.map_err(|error| error.to_string())?;
        response
            .json::<Result<u64, String>>()
            .await
            .map_err(|error| error.to_string())?
    }

    /// Waits until this node has applied everything committed before the call, so an API
    /// answer never shows a state older than an acknowledged change (after a restart a node
    /// replays its log before it learns what else was committed). Without a coordinator the
    /// local state is the best answer there is.
    pub async fn read_barrier(&self) {
        match self.read_index().await {
            Ok(index) => {
                self.applied(index).await;
            }
            Err(error) => {
                tracing::debug!(%error, "read barrier unavailable; answering from local state")
            }
        }
    }

    /// Proposes an update whose caller retries on its next step anyway: the outcome is only
    /// logged (a rejection means the state moved on since the caller looked).
    pub async fn propose_logged(&self, command: Command) {
        let summary = format!("{command:?}");
        match self.propose(command).await {
            Ok(CommandResult::Rejected { reason }) => {
                tracing::info!(%summary, %reason, "update rejected")
            }
            Ok(_) => tracing::debug!(%summary, "update committed"),
            Err(error) => tracing::warn!(%summary, %error, "update not committed"),
        }
    }

    /// Like `propose`, also returning the log index the update was committed at.
    pub async fn propose_indexed(
        &self,
        command: Command,
    ) -> Result<(CommandResult, u64), ProposeError> {
        let update = Update {
            now_ms: wall_ms(),
            command,
        };
        let deadline = tokio::time::Instant::now() + PROPOSE_DEADLINE;
        let mut last_error = "no leader elected".to_string();
        while tokio::time::Instant::now() < deadline {
            match self.raft.client_write(update.clone()).await {
                Ok(response) => return Ok((response.data, response.log_id.index)),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                    if let Some(leader) = forward.leader_node {
                        match self.forward(&leader.addr, &update).await {
                            Ok(answer) => return Ok(answer),
                            Err(error) => last_error = error,
                        }
                    }
                }
                Err(error) => return Err(ProposeError::Raft(error.to_string())),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(ProposeError::NoLeader(last_error))
    }

    async fn forward(&self, addr: &str, update: &Update) -> Result<(CommandResult, u64), String> {
        let url = format!("https://{addr}/rpc/propose");
        let sent = self
            .peer_client
            .post(url)
            .timeout(FORWARD_TIMEOUT)
            .json(update)
            .send()
            .await;
        let response = sent.map_err(|error| format!("coordinator at {addr}: {error}"))?;
        let result: Result<(CommandResult, u64), String> = response
            .json()
            .await
            .map_err(|error| format!("coordinator at {addr}: {error}"))?;
        result
    }

    /// Waits (bounded) until this node applied `index`, so a read shows a write just made.
    pub async fn applied(&self, index: u64) -> Arc<StateView> {
        let mut view = self.view.clone();
        let wait = view.wait_for(|v| v.last_applied_index >= index);
        let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
        self.view()
    }

    /// POSTs a JSON request to a peer's RPC endpoint.
    pub async fn call_peer<Req, Resp>(
        &self,
        addr: &str,
        path: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, String>
    where
        Req: serde::Serialize,
        Resp: serde::de::DeserializeOwned,
    {
        let url = format!("https://{addr}{path}");
        let sent = self
            .peer_client
            .post(url)
            .timeout(timeout)
            .json(request)
            .send()
            .await;
        let response = sent.map_err(|error| error.to_string())?;
        if !response.status().is_success() {
            return Err(format!("{} answered {}", addr, response.status()));
        }
        response.json().await.map_err(|error| error.to_string())
    }
}
