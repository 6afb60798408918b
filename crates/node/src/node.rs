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
