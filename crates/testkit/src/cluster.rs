//! A real cluster of `baton daemon` processes on loopback addresses, each node with its own
//! 127.x.y.z address and data dir under one temporary folder that is removed at the end.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use baton_client::dto::{
    CreateGroup, CreateJoinToken, CreateResource, GroupInfo, JoinRequest, NodeInfo, SetProperties,
};
use baton_client::{Client, ClientConfig};
use baton_node::setup;

use crate::procs;

/// Port every node listens on (each node has its own loopback address).
const NODE_PORT: u16 = 7400;

/// How to build the cluster.
#[derive(Clone, Debug)]
pub struct Options {
    pub size: usize,
    /// Same-subnet heartbeat overrides (`None`: the cluster defaults).
    pub delay: Option<Duration>,
    pub threshold: Option<u32>,
}

impl Options {
    pub fn nodes(size: usize) -> Self {
        Self {
            size,
            delay: None,
            threshold: None,
        }
    }
}

pub struct LocalNode {
    pub name: String,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// The daemon's pid while this harness believes it runs.
    pub pid: Option<i32>,
}

pub struct LocalCluster {
    pub root: PathBuf,
    pub exe: PathBuf,
    pub nodes: Vec<LocalNode>,
    pub config_path: PathBuf,
    pub client: Client,
    /// A loopback prefix private to this cluster (127.a.b.0/24), for role addresses too.
    pub prefix: [u8; 3],
    keep: bool,
}

impl LocalCluster {
    /// Creates the first node, joins the others with one-time tokens, waits until all are up.
    pub async fn start(exe: &Path, options: &Options) -> Result<Self> {
        let random = setup::random_bytes(2)?;
        let prefix = [127, random[0].max(1), random[1]];
        let root = std::env::temp_dir().join(format!(
            "baton-{}-{}",
            std::process::id(),
            setup::random_hex(4)?
        ));
        std::fs::create_dir_all(&root)?;
        let first = node_at(&root, prefix, 1);
        let created = setup::init_first_node(&first.data_dir, "demo", &first.name, first.addr)?;
        let config = ClientConfig {
            cluster_name: "demo".into(),
            endpoints: vec![first.addr.to_string()],
            token: created.admin_token.clone(),
            ca_cert_pem: created.ca_cert_pem.clone(),
        };
        let config_path = root.join("client.json");
        config.save(&config_path)?;
        let client = Client::new(&config)?;
        let mut cluster = Self {
            root,
            exe: exe.to_path_buf(),
            nodes: vec![first],
            config_path,
            client,
            prefix,
            keep: false,
        };
        cluster.spawn(0)?;
        cluster
            .wait_until(
                "the first node is initialized",
                Duration::from_secs(30),
                |c| async move {
                    c.client
                        .cluster()
                        .await
                        .is_ok_and(|info| !info.name.is_empty() && info.coordinator.is_some())
                },
            )
            .await?;
        cluster.set_heartbeat(options).await?;
        for index in 2..=options.size {
            cluster.join(index).await?;
        }
        cluster.client =
            Client::new(&cluster.client_config(created.admin_token, created.ca_cert_pem))?;
        cluster.client_config_save()?;
        cluster.wait_all_up(Duration::from_secs(60)).await?;
        if options.delay.is_some() || options.threshold.is_some() {
            cluster.rolling_restart().await?;
        }
        Ok(cluster)
    }

    /// Restarts every node in turn (SIGTERM, start, wait until all are up): Raft timers are
    /// derived from the heartbeat properties when a daemon starts.
    pub async fn rolling_restart(&mut self) -> Result<()> {
        for index in 0..self.nodes.len() {
            if let Some(pid) = self.nodes[index].pid.take() {
                stop_gracefully(pid);
            }
            self.spawn(index)?;
            self.wait_all_up(Duration::from_secs(60)).await?;
            // The restarted node acks nobody during its start-up quiet period.
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
        Ok(())
    }

    fn client_config(&self, token: String, ca_cert_pem: String) -> ClientConfig {
        let endpoints = self.nodes.iter().map(|n| n.addr.to_string()).collect();
        ClientConfig {
            cluster_name: "demo".into(),
            endpoints,
            token,
            ca_cert_pem,
        }
    }

    fn client_config_save(&self) -> Result<()> {
        let mut config = ClientConfig::load(&self.config_path)?;
        config.endpoints = self.nodes.iter().map(|n| n.addr.to_string()).collect();
        config.save(&self.config_path)?;
        Ok(())
    }

    async fn set_heartbeat(&self, options: &Options) -> Result<()> {
        let mut properties = BTreeMap::new();
        if let Some(delay) = options.delay {
            properties.insert(
                "heartbeat.same_subnet.delay".to_string(),
                format!("{}ms", delay.as_millis()),
            );
        }
        if let Some(threshold) = options.threshold {
            properties.insert(
                "heartbeat.same_subnet.threshold".to_string(),
                threshold.to_string(),
            );
        }
        if !properties.is_empty() {
            self.client
                .set_properties(&SetProperties { properties })
                .await?;
        }
        Ok(())
    }

    async fn join(&mut self, index: usize) -> Result<()> {
        let node = node_at(&self.root, self.prefix, index);
        let token = self
            .client
            .create_join_token(&CreateJoinToken { ttl_s: 600 })
            .await?
            .token;
        let (token_id, secret, fingerprint) = baton_client::parse_join_token(&token)?;
        let request = JoinRequest {
            token_id,
            secret,
            name: Some(node.name.clone()),
            addr: node.addr.to_string(),
        };
        let response =
            baton_client::join(&self.nodes[0].addr.to_string(), &fingerprint, &request).await?;
        setup::init_joined_node(&node.data_dir, node.addr, &response)?;
        self.nodes.push(node);
        self.spawn(self.nodes.len() - 1)
    }

    fn spawn(&mut self, index: usize) -> Result<()> {
        let node = &mut self.nodes[index];
        let pid = setup::spawn_daemon(&self.exe, &node.data_dir)?;
        node.pid = Some(pid as i32);
        Ok(())
    }

    pub fn node(&self, name: &str) -> Result<&LocalNode> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .with_context(|| format!("no node {name}"))
    }

    fn index_of(&self, name: &str) -> Result<usize> {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .with_context(|| format!("no node {name}"))
    }

    /// Kills a node like a power cut: SIGKILL to its daemon, resource host and resources.
    pub fn kill(&mut self, name: &str) -> Result<()> {
        let index = self.index_of(name)?;
        if let Some(pid) = self.nodes[index].pid.take() {
            procs::signal_tree(pid, libc::SIGKILL);
            procs::reap(pid);
        }
        Ok(())
    }

    /// Starts a stopped node again on its data dir.
    pub fn restart(&mut self, name: &str) -> Result<()> {
        let index = self.index_of(name)?;
        if self.nodes[index].pid.is_some() {
            bail!("node {name} is running");
        }
        self.spawn(index)
    }

    /// SIGSTOP or SIGCONT to the daemon alone (not its resource host nor resources).
    pub fn signal_daemon(&self, name: &str, signal: i32) -> Result<()> {
        let pid = self
            .node(name)?
            .pid
            .with_context(|| format!("node {name} is not running"))?;
        // SAFETY: kill(2) on a daemon this harness started.
        unsafe { libc::kill(pid, signal) };
        Ok(())
    }

    /// Polls `check` every 20 ms until it holds or `timeout` passes.
    pub async fn wait_until<'a, F, Fut>(
        &'a self,
        what: &str,
        timeout: Duration,
        mut check: F,
    ) -> Result<()>
    where
        F: FnMut(&'a Self) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if check(self).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!(
            "timed out after {timeout:?} waiting until {what}; node logs are in {}",
            self.root.display()
        )
    }

    pub async fn nodes_info(&self) -> Vec<NodeInfo> {
        self.client.nodes().await.unwrap_or_default()
    }

    /// Waits until every running node is Up with a coordinator elected.
    pub async fn wait_all_up(&self, timeout: Duration) -> Result<()> {
        let running: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.pid.is_some())
            .map(|n| n.name.clone())
            .collect();
        self.wait_until("all nodes are up", timeout, |c| {
            let running = running.clone();
            async move {
                let nodes = c.nodes_info().await;
                let up = running
                    .iter()
                    .all(|name| nodes.iter().any(|n| &n.name == name && n.state == "Up"));
                up && nodes.iter().any(|n| n.is_coordinator)
            }
        })
        .await
    }

    /// A loopback address private to this cluster for a role (a stand-in for a virtual IP).
    pub fn role_addr(&self, last_octet: u8, port: u16) -> SocketAddr {
        SocketAddr::from((
            Ipv4Addr::new(self.prefix[0], self.prefix[1], self.prefix[2], last_octet),
            port,
        ))
    }

    /// Creates group `name` with one `process` resource serving HTTP on `addr`, and brings it
    /// online; returns the group once it is online.
    pub async fn create_http_role(&self, name: &str, addr: SocketAddr) -> Result<GroupInfo> {
        self.create_http_role_from(name, addr, 0).await
    }

    /// Like `create_http_role`, with the preferred owners rotated to start at node `first`.
    pub async fn create_http_role_from(
        &self,
        name: &str,
        addr: SocketAddr,
        first: usize,
    ) -> Result<GroupInfo> {
        let count = self.nodes.len();
        let preferred_owners = (0..count)
            .map(|i| self.nodes[(first + i) % count].name.clone())
            .collect();
        self.client
            .create_group(&CreateGroup {
                name: name.into(),
                preferred_owners,
            })
            .await?;
        let command = format!("exec {} serve-http --addr {addr}", shell_quote(&self.exe));
        let params = BTreeMap::from([
            ("command".to_string(), command),
            ("stop_timeout".to_string(), "2s".to_string()),
        ]);
        let resource = CreateResource {
            name: format!("{name}-app"),
            group: name.into(),
            resource_type: "process".into(),
            params,
        };
        self.client.create_resource(&resource).await?;
        self.client.online_group(name).await?;
        self.wait_group_online(name, None, Duration::from_secs(30))
            .await
    }

    /// Waits until the group is online (on a node other than `not_on`, if given).
    pub async fn wait_group_online(
        &self,
        name: &str,
        not_on: Option<&str>,
        timeout: Duration,
    ) -> Result<GroupInfo> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(group) = self.client.group(name).await {
                let elsewhere = not_on.is_none_or(|old| group.owner.as_deref() != Some(old));
                if group.status == "Online" && elsewhere {
                    return Ok(group);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!(
            "group {name} did not come online within {timeout:?}; logs in {}",
            self.root.display()
        )
    }

    /// Leaves the processes and the folder in place (for `baton demo --keep`).
    pub fn keep(&mut self) {
        self.keep = true;
    }

    /// Stops every daemon (SIGTERM, then SIGKILL after 5 s) and removes the folder.
    /// `BATON_KEEP=1` in the environment keeps every cluster, for inspection after a test.
    pub fn shutdown(&mut self) {
        if self.keep || std::env::var_os("BATON_KEEP").is_some() {
            eprintln!("cluster kept in {}", self.root.display());
            return;
        }
        for node in &mut self.nodes {
            if let Some(pid) = node.pid.take() {
                stop_gracefully(pid);
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn stop_gracefully(pid: i32) {
    let members = procs::tree(pid);
    // SAFETY: kill(2) on the daemon this harness started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let start = Instant::now();
    while procs::alive(pid) && start.elapsed() < Duration::from_secs(5) {
        procs::reap(pid);
        std::thread::sleep(Duration::from_millis(20));
    }
    for member in members.into_iter().filter(|p| procs::alive(*p)) {
        // SAFETY: leftovers of the tree this harness started.
        unsafe { libc::kill(member, libc::SIGKILL) };
    }
    procs::reap(pid);
}

fn node_at(root: &Path, prefix: [u8; 3], index: usize) -> LocalNode {
    let addr = SocketAddr::from((
        Ipv4Addr::new(prefix[0], prefix[1], prefix[2], index as u8),
        NODE_PORT,
    ));
    LocalNode {
        name: format!("n{index}"),
        addr,
        data_dir: root.join(format!("n{index}")),
        pid: None,
    }
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}
