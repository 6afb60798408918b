//! The configuration client: while the nemesis works it creates groups and resources and
//! moves workload groups, through a random node each time (so also through cut-off ones),
//! and records which changes were acknowledged. Every acknowledged creation must be in the
//! database after the run; an unacknowledged one may or may not be.

use std::collections::BTreeMap;
use std::time::Duration;

use baton_client::dto::{CreateGroup, CreateResource, MoveGroup};
use baton_client::Client;
use serde::Serialize;
use tokio::sync::watch;

use crate::rng::Rng;

/// One request's whole time limit: a cut-off node makes its caller wait for a coordinator.
const REQUEST_LIMIT: Duration = Duration::from_secs(8);

#[derive(Clone, Debug, Serialize)]
pub struct ConfigOp {
    pub op: String,
    pub target: String,
    pub via: String,
    pub acked: bool,
    pub outcome: String,
}

/// `clients`: node name → a client of that node only.
pub async fn run(
    clients: Vec<(String, Client)>,
    writer_groups: Vec<String>,
    seed: u64,
    mut stop: watch::Receiver<bool>,
) -> Vec<ConfigOp> {
    let mut rng = Rng::new(seed ^ 0xc0f1_9000);
    let nodes: Vec<String> = clients.iter().map(|(name, _)| name.clone()).collect();
    let mut history: Vec<ConfigOp> = Vec::new();
    let mut next = 1;
    while !*stop.borrow() {
        let pause = Duration::from_millis(rng.range(150, 500));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => break,
        }
        let (via, client) = &clients[rng.index(clients.len())];
        let roll = rng.range(0, 99);
        let op = if roll < 50 {
            create_group(client, &format!("c{next}"), &nodes, &mut rng).await
        } else if roll < 80 {
            match resource_target(&history, &mut rng) {
                Some(group) => create_resource(client, &group, &format!("r{next}")).await,
                None => continue,
            }
        } else {
            let group = &writer_groups[rng.index(writer_groups.len())];
            let to = rng
                .chance(50)
                .then(|| nodes[rng.index(nodes.len())].clone());
            move_group(client, group, to).await
        };
        next += 1;
        history.push(ConfigOp {
            via: via.clone(),
            ..op
        });
    }
    history
}

/// A group this client created and saw acknowledged, for a new resource.
fn resource_target(history: &[ConfigOp], rng: &mut Rng) -> Option<String> {
    let groups: Vec<&ConfigOp> = history
        .iter()
        .filter(|op| op.op == "create-group" && op.acked)
        .collect();
    (!groups.is_empty()).then(|| groups[rng.index(groups.len())].target.clone())
}

async fn create_group(client: &Client, name: &str, nodes: &[String], rng: &mut Rng) -> ConfigOp {
    let mut preferred_owners = nodes.to_vec();
    rng.shuffle(&mut preferred_owners);
    let request = CreateGroup {
        name: name.to_string(),
        preferred_owners,
    };
    outcome("create-group", name, client.create_group(&request)).await
}

async fn create_resource(client: &Client, group: &str, name: &str) -> ConfigOp {
    let params = BTreeMap::from([("command".to_string(), "exec sleep 600".to_string())]);
    let request = CreateResource {
        name: name.to_string(),
        group: group.to_string(),
        resource_type: "process".into(),
        params,
    };
    outcome("create-resource", name, client.create_resource(&request)).await
}

async fn move_group(client: &Client, group: &str, to: Option<String>) -> ConfigOp {
    let target = match &to {
        Some(node) => format!("{group} -> {node}"),
        None => group.to_string(),
    };
    outcome(
        "move-group",
        &target,
        client.move_group(group, &MoveGroup { to }),
    )
    .await
}

async fn outcome<T, E: std::fmt::Display>(
    op: &str,
    target: &str,
    call: impl std::future::Future<Output = Result<T, E>>,
) -> ConfigOp {
    let (acked, outcome) = match tokio::time::timeout(REQUEST_LIMIT, call).await {
        Ok(Ok(_)) => (true, "acknowledged".to_string()),
        Ok(Err(error)) => (false, error.to_string()),
        Err(_) => (false, "no answer in time".to_string()),
    };
    ConfigOp {
        op: op.to_string(),
        target: target.to_string(),
        via: String::new(),
        acked,
        outcome,
    }
}

/// Acknowledged creations missing from the coordinator's database, as `kind name`. Asks
/// again for a while: a new coordinator applies committed entries a moment after its election.
pub async fn missing(cluster: &crate::nodes::NsCluster, history: &[ConfigOp]) -> Vec<String> {
    let mut lost = vec!["no coordinator answered".to_string()];
    for _ in 0..30 {
        if let Some(found) = lost_now(cluster, history).await {
            lost = found;
            if lost.is_empty() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    lost
}

async fn lost_now(cluster: &crate::nodes::NsCluster, history: &[ConfigOp]) -> Option<Vec<String>> {
    let i = cluster.coordinator_index().await?;
    let client = cluster.client(i);
    let groups = tokio::time::timeout(REQUEST_LIMIT, client.groups())
        .await
        .ok()?
        .ok()?;
    let resources = tokio::time::timeout(REQUEST_LIMIT, client.resources())
        .await
        .ok()?
        .ok()?;
    let lost = history
        .iter()
        .filter(|op| op.acked)
        .filter(|op| match op.op.as_str() {
            "create-group" => !groups.iter().any(|g| g.name == op.target),
            "create-resource" => !resources.iter().any(|r| r.name == op.target),
            _ => false,
        })
        .map(|op| format!("{} {}", op.op, op.target))
        .collect();
    Some(lost)
}
