//! Resource types: one trait, [`Agent`], and its implementations: `process` (a generic
//! application), `ocf` (unmodified OCF resource agents, e.g. Debian's `resource-agents`) and
//! `systemd` (a unit, through systemctl).
//!
//! Every agent call that runs a program (an OCF action, a process's check command,
//! systemctl) runs inside the resource host (`HostHandle::run`), which kills it with its
//! whole process group at its timeout: a hanging agent costs a timeout, never the daemon.
//! TCP and HTTP checks run in the daemon with their own timeouts.
//!
//! Adding a resource type: a variant of `baton_model::ResourceType` (its parameters), a
//! module here implementing `Agent`, and a line in [`agent_for`].

pub mod metadata;
pub mod ocf;
mod probe;
pub mod process;
pub mod systemd;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use baton_host::{HostHandle, Started};
use baton_model::{Resource, ResourceType};

pub use metadata::{AgentMetadata, ParameterInfo};

/// What an agent call returns: a boxed future, so `Agent` stays object-safe.
pub type AgentFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The outcome of one agent call, mapped onto resource states by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done (start, stop) or healthy (checks).
    Ok,
    /// Cleanly not running (a check or probe found it stopped).
    NotRunning(String),
    /// Failed here; a restart or another node may help.
    Failed(String),
    /// The configuration is invalid (OCF_ERR_CONFIGURED): no node can run it.
    Misconfigured(String),
    /// Not attempted (no lease, the resource host is gone): not the resource's fault.
    Unavailable(String),
}

/// Which health check, after WSFC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Cheap and frequent: is it running at all.
    LooksAlive,
    /// Thorough: does it work.
    IsAlive,
    /// Is it running, after the resource host was replaced: re-learn its state.
    Probe,
}

/// Everything an agent call needs to know about the resource and this node.
#[derive(Clone, Debug)]
pub struct OpContext {
    pub resource: Resource,
    /// `BATON_GROUP`, `BATON_RESOURCE`, `BATON_NODE`, `BATON_GENERATION`.
    pub env: BTreeMap<String, String>,
    /// The call is killed after this long (the resource's pending timeout).
    pub timeout: Duration,
    /// Per-node scratch directory of OCF agents (`HA_RSCTMP`).
    pub rsctmp: PathBuf,
    /// Where a process resource's output is appended.
    pub log: Option<PathBuf>,
}

impl OpContext {
    pub fn timeout_ms(&self) -> u64 {
        u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX)
    }
}

/// A resource type: how to bring one resource online and offline and check its health.
pub trait Agent: Send + Sync {
    /// Brings it online. A process also returns the process it runs as, for a later `adopt`.
    fn start<'a>(
        &'a self,
        host: &'a HostHandle,
        cx: &'a OpContext,
    ) -> AgentFuture<'a, (Outcome, Option<Started>)>;

    /// Takes it offline; stopping a stopped resource is `Ok`.
    fn stop<'a>(&'a self, host: &'a HostHandle, cx: &'a OpContext) -> AgentFuture<'a, Outcome>;

    /// A health check. `process` is what `start` returned, for a `Probe` after the resource
    /// host was replaced (a process is adopted by the new host).
    fn check<'a>(
        &'a self,
        host: &'a HostHandle,
        cx: &'a OpContext,
        check: Check,
        process: Option<Started>,
    ) -> AgentFuture<'a, Outcome>;

    /// Whether IsAlive checks more than LooksAlive (a process with no check configured:
    /// no), so the caller can skip it.
    fn has_is_alive(&self, resource: &Resource) -> bool;
}

/// The agent of a resource type.
pub fn agent_for(resource_type: &ResourceType) -> Box<dyn Agent> {
    match resource_type {
        ResourceType::Process => Box::new(process::ProcessAgent),
        ResourceType::Ocf { provider, agent } => Box::new(ocf::OcfAgent::new(provider, agent)),
        ResourceType::Systemd => Box::new(systemd::SystemdAgent),
    }
}

/// The last non-empty line of an agent's output, for a status message.
pub(crate) fn last_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .rev()
        .find(|line| !line.is_empty())
}

/// `host.run` failed before the program ran: no lease or no host is not the resource's
/// fault; anything else is.
pub(crate) fn host_error(what: &str, error: baton_host::HostError) -> Outcome {
    match error {
        baton_host::HostError::NoLease | baton_host::HostError::HostGone => {
            Outcome::Unavailable(format!("{what}: {error}"))
        }
        other => Outcome::Failed(format!("{what}: {other}")),
    }
}
