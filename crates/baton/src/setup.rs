//! `baton cluster create` and `baton node join`: write a node's data directory, start its
//! daemon, write the client configuration, and wait until the node answers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use baton_client::{Client, ClientConfig, ClientError, CreateJoinToken, JoinRequest};
use serde::Serialize;

use crate::exit;
use crate::output::{fields, print_json};
use crate::verbs::transient;
use crate::Ctx;

/// How long `cluster create` waits for its daemon to answer.
const CREATE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `node join` waits for the new node to be Up.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often they ask.
const POLL: Duration = Duration::from_millis(100);
/// The join token printed by `cluster create` is valid this long.
const FIRST_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The command to run on a new node.
pub fn join_command(token: &str, peer: Option<&str>) -> String {
    let peer = peer.unwrap_or("PEER_IP:PORT");
    let port = peer.rsplit_once(':').map(|(_, p)| p).unwrap_or("PORT");
    format!("baton node join --token {token} --listen NEW_NODE_IP:{port} {peer}")
}

#[derive(Serialize)]
struct Created {
    cluster: String,
    node: String,
    listen: String,
    data_dir: PathBuf,
    daemon_pid: Option<u32>,
    daemon_log: PathBuf,
    client_config: PathBuf,
    join_token: Option<String>,
    join_command: Option<String>,
}

pub async fn create(
    ctx: &Ctx,
    cluster: &str,
    listen: SocketAddr,
    data_dir: &Path,
    node_name: &str,
    no_start: bool,
) -> anyhow::Result<()> {
    let data_dir = absolute(data_dir)?;
    baton_node::setup::check_listen_free(listen)?;
    let created = baton_node::setup::init_first_node(&data_dir, cluster, node_name, listen)?;
    let config = ClientConfig {
        cluster_name: cluster.to_string(),
        endpoints: vec![listen.to_string()],
        token: created.admin_token.clone(),
        ca_cert_pem: created.ca_cert_pem.clone(),
    };
    if let Ok(old) = ClientConfig::load(&ctx.config_path) {
        if old.cluster_name != cluster {
            eprintln!(
                "note: {} pointed at cluster {}; it now points at {cluster}",
                ctx.config_path.display(),
                old.cluster_name
            );
        }
    }
    config.save(&ctx.config_path)?;
    let log = data_dir.join(baton_node::setup::DAEMON_LOG);
    let mut summary = Created {
        cluster: cluster.to_string(),
        node: node_name.to_string(),
        listen: listen.to_string(),
        data_dir: data_dir.clone(),
        daemon_pid: None,
        daemon_log: log.clone(),
        client_config: ctx.config_path.clone(),
        join_token: None,
        join_command: None,
    };
    if !no_start {
        let pid = baton_node::setup::spawn_daemon(&std::env::current_exe()?, &data_dir)?;
        summary.daemon_pid = Some(pid);
        let client = Client::new(&config)?;
        let token = first_token(&client, pid, &log).await?;
        summary.join_command = Some(join_command(&token, Some(&listen.to_string())));
        summary.join_token = Some(token);
    }
    if ctx.json {
        return print_json(&summary);
    }
    println!("cluster {cluster} created");
    print!(
        "{}",
        indent(&fields(&[
            ("node", format!("{node_name} ({listen})")),
            (
                "daemon",
                match summary.daemon_pid {
                    Some(pid) => format!("pid {pid}, log {}", log.display()),
                    None => "not started".into(),
                }
            ),
            ("data dir", data_dir.display().to_string()),
            ("client config", ctx.config_path.display().to_string()),
        ]))
    );
    match (&summary.join_token, &summary.join_command) {
        (Some(token), Some(command)) => {
            println!();
            println!("join token (single use, valid 1h; more with `baton node token`):");
            println!("  {token}");
            println!();
            println!("to add a node, run on it:");
            println!("  {command}");
        }
        _ => {
            println!();
            println!(
                "start the node with `baton daemon --data-dir {}`, then make a join token with `baton node token`",
                data_dir.display()
            );
        }
    }
    Ok(())
}

/// Waits until the new cluster answers with a coordinator, then makes the first join token.
async fn first_token(client: &Client, pid: u32, log: &Path) -> anyhow::Result<String> {
    let started = Instant::now();
    loop {
        let last_error = match client.cluster().await {
            Ok(info) if info.coordinator.is_some() => {
                match client
                    .create_join_token(&CreateJoinToken {
                        ttl_s: FIRST_TOKEN_TTL.as_secs(),
                    })
                    .await
                {
                    Ok(token) => return Ok(token.token),
                    Err(e) if transient(&e) => e.to_string(),
                    Err(e) => return Err(e).context("the new cluster refused a join token"),
                }
            }
            Ok(_) => "no coordinator elected yet".to_string(),
            Err(e) if transient(&e) => e.to_string(),
            Err(e) => return Err(e.into()),
        };
        daemon_alive(pid, log)?;
        if started.elapsed() >= CREATE_TIMEOUT {
            return Err(exit::timed_out(format!(
                "the daemon (pid {pid}) did not answer within {} ({last_error}); read {}",
                humantime::format_duration(CREATE_TIMEOUT),
                log.display()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[derive(Serialize)]
struct Joined {
    cluster: String,
    node: String,
    node_id: u64,
    listen: String,
    data_dir: PathBuf,
    daemon_pid: Option<u32>,
    daemon_log: PathBuf,
    client_config: PathBuf,
    endpoints: Vec<String>,
}

pub async fn join(
    ctx: &Ctx,
    token: &str,
    listen: SocketAddr,
    data_dir: &Path,
    name: Option<String>,
    no_start: bool,
    peer: SocketAddr,
) -> anyhow::Result<()> {
    let (token_id, secret, fingerprint) = baton_client::parse_join_token(token)?;
    let data_dir = absolute(data_dir)?;
    baton_node::setup::check_listen_free(listen)?;
    let request = JoinRequest {
        token_id,
        secret,
        name,
        addr: listen.to_string(),
    };
    let response = match baton_client::join(&peer.to_string(), &fingerprint, &request).await {
        Ok(response) => response,
        Err(e @ ClientError::Api { .. }) => {
            return Err(anyhow::Error::new(e).context(format!("{peer} refused the join")))
        }
        Err(e) => return Err(e.into()),
    };
    baton_node::setup::init_joined_node(&data_dir, listen, &response)?;
    let log = data_dir.join(baton_node::setup::DAEMON_LOG);
    let pid = if no_start {
        None
    } else {
        Some(baton_node::setup::spawn_daemon(
            &std::env::current_exe()?,
            &data_dir,
        )?)
    };

    // Our own endpoint first: this machine's CLI should ask this machine's node.
    let own = listen.to_string();
    let mut endpoints = vec![own.clone()];
    add_all(&mut endpoints, &response.endpoints);
    let config = match ClientConfig::load(&ctx.config_path) {
        Ok(mut old) if old.cluster_name == response.cluster_name => {
            add_all(&mut old.endpoints, &endpoints);
            old.token = response.admin_token.clone();
            old.ca_cert_pem = response.ca_cert_pem.clone();
            old
        }
        old => {
            if let Ok(old) = old {
                eprintln!(
                    "note: {} pointed at cluster {}; it now points at {}",
                    ctx.config_path.display(),
                    old.cluster_name,
                    response.cluster_name
                );
            }
            ClientConfig {
                cluster_name: response.cluster_name.clone(),
                endpoints: endpoints.clone(),
                token: response.admin_token.clone(),
                ca_cert_pem: response.ca_cert_pem.clone(),
            }
        }
    };
    config.save(&ctx.config_path)?;

    if let Some(pid) = pid {
        let waiting = Client::new(&ClientConfig {
            endpoints: endpoints.clone(),
            ..config.clone()
        })?;
        wait_until_up(&waiting, &response.node_name, pid, &log).await?;
    }

    let summary = Joined {
        cluster: response.cluster_name.clone(),
        node: response.node_name.clone(),
        node_id: response.node_id,
        listen: own,
        data_dir: data_dir.clone(),
        daemon_pid: pid,
        daemon_log: log.clone(),
        client_config: ctx.config_path.clone(),
        endpoints: config.endpoints.clone(),
    };
    if ctx.json {
        return print_json(&summary);
    }
    println!(
        "node {} (id {}) joined cluster {}",
        summary.node, summary.node_id, summary.cluster
    );
    print!(
        "{}",
        indent(&fields(&[
            ("listen", summary.listen.clone()),
            (
                "daemon",
                match pid {
                    Some(pid) => format!("pid {pid}, Up, log {}", log.display()),
                    None => format!(
                        "not started: run `baton daemon --data-dir {}`",
                        data_dir.display()
                    ),
                }
            ),
            ("data dir", data_dir.display().to_string()),
            ("client config", ctx.config_path.display().to_string()),
            ("endpoints", summary.endpoints.join(", ")),
        ]))
    );
    Ok(())
}

/// Waits until the cluster lists `node` as Up.
async fn wait_until_up(client: &Client, node: &str, pid: u32, log: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let last = match client.nodes().await {
            Ok(nodes) => match nodes.iter().find(|n| n.name == node) {
                Some(n) if n.state == "Up" => return Ok(()),
                Some(n) => format!("state {}", n.state),
                None => "not listed yet".into(),
            },
            Err(e) if transient(&e) => e.to_string(),
            Err(e) => return Err(e.into()),
        };
        daemon_alive(pid, log)?;
        if started.elapsed() >= JOIN_TIMEOUT {
            return Err(exit::timed_out(format!(
                "node {node} joined but is not Up after {} ({last}); read {}",
                humantime::format_duration(JOIN_TIMEOUT),
                log.display()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Fails when the daemon we started has already exited, quoting the end of its log.
fn daemon_alive(pid: u32, log: &Path) -> anyhow::Result<()> {
    let mut status = 0;
    // SAFETY: `pid` is our own child (spawn_daemon does not wait for it); WNOHANG never
    // blocks, and `status` is a valid out-pointer.
    let reaped = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
    if reaped != pid as libc::pid_t {
        return Ok(());
    }
    let how = if libc::WIFEXITED(status) {
        format!("exit status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("signal {}", libc::WTERMSIG(status))
    } else {
        "unknown status".into()
    };
    let last_line = std::fs::read_to_string(log)
        .ok()
        .and_then(|text| {
            text.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        })
        .map(|line| format!(": {}", line.trim()))
        .unwrap_or_default();
    Err(exit::failed(format!(
        "the daemon (pid {pid}) exited during startup ({how}){last_line}; read {}",
        log.display()
    )))
}

/// Appends the entries of `more` not yet in `list`.
fn add_all(list: &mut Vec<String>, more: &[String]) {
    for item in more {
        if !list.contains(item) {
            list.push(item.clone());
        }
    }
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("data dir {}", path.display()))
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_commands_reuse_the_port() {
        assert_eq!(
            join_command("T", Some("10.0.0.1:7946")),
            "baton node join --token T --listen NEW_NODE_IP:7946 10.0.0.1:7946"
        );
    }

    #[test]
    fn endpoints_merge_without_duplicates() {
        let mut list = vec!["a".to_string(), "b".to_string()];
        add_all(&mut list, &["b".to_string(), "c".to_string()]);
        assert_eq!(list, ["a", "b", "c"]);
    }
}
