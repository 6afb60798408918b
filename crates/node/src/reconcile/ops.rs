//! Agent calls as tasks: each runs on its own, through the resource host, and reports back
//! on a channel, so a slow start of one resource never delays another's checks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use baton_agents::{agent_for, Check, OpContext, Outcome};
use baton_host::Started;
use baton_model::Resource;
use tokio::sync::mpsc;

use super::tracked::OpKind;
use crate::node::Node;

/// A finished agent call.
#[derive(Debug)]
pub struct OpDone {
    pub resource: String,
    pub generation: u64,
    pub kind: OpKind,
    pub outcome: Outcome,
    pub process: Option<Started>,
}

/// Starts one agent call for `resource` (generation `generation`) in a task of its own.
pub fn spawn(
    node: &Arc<Node>,
    resource: &Resource,
    generation: u64,
    kind: OpKind,
    process: Option<Started>,
    done: &mpsc::Sender<OpDone>,
) {
    let cx = context(node, resource, generation);
    let node = Arc::clone(node);
    let done = done.clone();
    tokio::spawn(async move {
        let agent = agent_for(&cx.resource.resource_type);
        let host = &node.host;
        let (outcome, process) = match kind {
            OpKind::Start => agent.start(host, &cx).await,
            OpKind::Stop { .. } => (agent.stop(host, &cx).await, None),
            OpKind::Check(check) => {
                let outcome = agent.check(host, &cx, check, process).await;
                (outcome, process.filter(|_| check == Check::Probe))
            }
        };
        log_outcome(&cx.resource.name, kind, &outcome);
        let report = OpDone {
            resource: cx.resource.name.clone(),
            generation,
            kind,
            outcome,
            process,
        };
        // The loop only stops with the daemon.
        let _ = done.send(report).await;
    });
}

fn log_outcome(resource: &str, kind: OpKind, outcome: &Outcome) {
    match outcome {
        Outcome::Ok => tracing::debug!(resource, ?kind, "agent call done"),
        Outcome::Unavailable(why) => tracing::info!(resource, ?kind, %why, "agent call not made"),
        other => tracing::warn!(resource, ?kind, ?other, "agent call failed"),
    }
}

/// What an agent needs to know: the resource, its fencing token and names, its timeout,
/// this node's HA_RSCTMP and the resource's log file.
fn context(node: &Node, resource: &Resource, generation: u64) -> OpContext {
    let env = BTreeMap::from([
        ("BATON_GROUP".to_string(), resource.group.clone()),
        ("BATON_RESOURCE".to_string(), resource.name.clone()),
        ("BATON_GENERATION".to_string(), generation.to_string()),
        ("BATON_NODE".to_string(), node.identity.node_name.clone()),
    ]);
    let log_dir = node.data_dir.join("resources");
    // Best effort: without it the process logs nowhere, which the host reports on start.
    let _ = std::fs::create_dir_all(&log_dir);
    OpContext {
        resource: resource.clone(),
        env,
        timeout: Duration::from_millis(resource.policy.pending_timeout_ms),
        rsctmp: node.data_dir.join("rsctmp"),
        log: Some(log_dir.join(format!("{}.log", resource.name))),
    }
}
