//! `baton demo`: a real 3-node cluster on loopback, a role serving HTTP, the owner killed
//! with SIGKILL, and the role answering from another node, timed. Everything it starts is
//! stopped and its folder removed at the end, also on Ctrl-C.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use baton_testkit::{http, LocalCluster, Options};

/// How long the demo waits for the role to answer after the kill.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);

pub fn run_demo(keep: bool) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        tokio::select! {
            result = demo(keep) => result,
            _ = tokio::signal::ctrl_c() => {
                // Dropping the demo future drops the cluster, which stops and removes it.
                println!("\ninterrupted: stopping the demo cluster and removing its files");
                Ok(())
            }
        }
    })
}

async fn demo(keep: bool) -> Result<()> {
    let exe = std::env::current_exe().context("locating the baton binary")?;
    step("starting a 3-node cluster (each node a `baton daemon` on its own 127.x address)");
    let mut cluster = LocalCluster::start(&exe, &Options::nodes(3)).await?;
    for node in cluster.nodes_info().await {
        let role = if node.is_coordinator {
            " (coordinator)"
        } else {
            ""
        };
        println!(
            "    {:<4} {:<18} {}{role}",
            node.name, node.addr, node.state
        );
    }
    let addr = cluster.role_addr(100, 8080);
    step(&format!(
        "creating role `web`: a process serving HTTP on {addr}"
    ));
    let group = cluster.create_http_role("web", addr).await?;
    let owner = group.owner.clone().context("web has no owner")?;
    let answer = wait_answer(addr, Duration::from_secs(10))
        .await
        .context("web does not answer")?;
    println!(
        "    web is online on {owner} (generation {}): {}",
        group.generation,
        answer.trim()
    );
    step(&format!(
        "killing {owner} with SIGKILL (its daemon, resource host and the web process)"
    ));
    let killed_at = Instant::now();
    cluster.kill(&owner)?;
    let answer = wait_answer_not_from(addr, &owner, FAILOVER_TIMEOUT)
        .await
        .context("web never answered from another node")?;
    let elapsed = killed_at.elapsed();
    println!(
        "    web answers again after {:.3} s: {}",
        elapsed.as_secs_f64(),
        answer.trim()
    );
    let group = cluster.client.group("web").await?;
    println!(
        "    why is web on {}? {}",
        group.owner.as_deref().unwrap_or("-"),
        group.last_reason
    );
    step("what the cluster recorded (`baton events`)");
    for event in cluster.client.events(8).await? {
        println!("    {}", event.text);
    }
    println!(
        "\nfailover OK: {owner} was killed, web answered from {} in {:.3} s",
        group.owner.as_deref().unwrap_or("?"),
        elapsed.as_secs_f64()
    );
    if keep {
        cluster.keep();
        println!(
            "cluster kept in {} (client config: BATON_CONFIG={})",
            cluster.root.display(),
            cluster.config_path.display()
        );
    } else {
        step("stopping the cluster and removing its files");
    }
    Ok(())
}

fn step(text: &str) {
    println!("==> {text}");
}

/// Polls the role every 5 ms until it answers.
pub async fn wait_answer(addr: std::net::SocketAddr, timeout: Duration) -> Option<String> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some(body) = probe(addr).await {
            return Some(body);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// Polls until the role answers from a node other than `old_owner`.
pub async fn wait_answer_not_from(
    addr: std::net::SocketAddr,
    old_owner: &str,
    timeout: Duration,
) -> Option<String> {
    let start = Instant::now();
    let old = format!("from {old_owner} ");
    while start.elapsed() < timeout {
        if let Some(body) = probe(addr).await.filter(|body| !body.contains(&old)) {
            return Some(body);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

async fn probe(addr: std::net::SocketAddr) -> Option<String> {
    tokio::task::spawn_blocking(move || http::get(addr, Duration::from_millis(200)))
        .await
        .ok()
        .flatten()
}
