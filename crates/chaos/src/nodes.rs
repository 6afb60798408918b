//! A cluster of real `baton daemon` processes, each started with `ip netns exec` inside its
//! node's namespace, and the process-level faults: kill -9 and restart, SIGSTOP of the daemon
//! alone, and a freeze of the whole node (daemon, resource host and resources).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use baton_client::dto::{ClusterInfo, CreateJoinToken, GroupInfo, JoinRequest, NodeInfo};
use baton_client::{Client, ClientConfig};
use baton_node::setup;
use baton_testkit::procs;

use crate::net::{self, Topology};

/// The most nodes a schedule uses; the topology always has this many namespaces.
pub const NODES_MAX: usize = 5;
/// Every node listens on this port of its own address.
const NODE_PORT: u16 = 7400;
/// Reads from the harness must not hang on a stopped or cut-off node.
const READ_TIMEOUT: Duration = Duration::from_millis(1500);

/// What the harness did to a node's processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcState {
    Running,
    Killed,
    /// The daemon alone is SIGSTOPped.
    Paused,
    /// Every process of the node is SIGSTOPped.
    Frozen,
}

pub struct NsNode {
    pub index: usize,
    pub name: String,
    pub ns: String,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub pid: Option<i32>,
    pub state: ProcState,
    /// The processes a freeze stopped, in the order they are to be continued.
    frozen: Vec<i32>,
    client: Client,
}

pub struct NsCluster {
    pub root: PathBuf,
    baton: PathBuf,
    pub nodes: Vec<NsNode>,
    config: ClientConfig,
}

impl NsCluster {
    /// Creates the first node, joins the others with one-time tokens, waits until all are up.
    pub async fn start(
        topology: &Topology,
        baton: &Path,
        root: &Path,
        size: usize,
    ) -> Result<Self> {
        std::fs::create_dir_all(root)?;
        let first_addr = SocketAddr::from((net::node_ip(1), NODE_PORT));
        let first_dir = root.join("n1");
        let created = setup::init_first_node(&first_dir, "chaos", "n1", first_addr)?;
        let config = ClientConfig {
            cluster_name: "chaos".into(),
            endpoints: vec![first_addr.to_string()],
            token: created.admin_token,
            ca_cert_pem: created.ca_cert_pem,
        };
        let mut cluster = Self {
            root: root.to_path_buf(),
            baton: baton.to_path_buf(),
            nodes: Vec::new(),
            config,
        };
        cluster
            .nodes
            .push(cluster.make_node(topology, 1, first_dir)?);
        cluster.spawn(0)?;
        cluster
            .wait_until(
                "the first node is initialized",
                Duration::from_secs(30),
                |c| async move {
                    let info = c.cluster_info(0).await;
                    info.is_some_and(|i| !i.name.is_empty() && i.coordinator.is_some())
                },
            )
            .await?;
        for index in 2..=size {
            cluster.join(topology, index).await?;
        }
        cluster.wait_all_up(Duration::from_secs(60)).await?;
        Ok(cluster)
    }

    fn make_node(&self, topology: &Topology, index: usize, data_dir: PathBuf) -> Result<NsNode> {
        let addr = SocketAddr::from((net::node_ip(index), NODE_PORT));
        let mut config = self.config.clone();
        config.endpoints = vec![addr.to_string()];
        Ok(NsNode {
            index,
            name: format!("n{index}"),
            ns: topology.node_ns(index),
            addr,
            data_dir,
            pid: None,
            state: ProcState::Killed,
            frozen: Vec::new(),
            client: Client::new(&config)?,
        })
    }

    async fn join(&mut self, topology: &Topology, index: usize) -> Result<()> {
        let data_dir = self.root.join(format!("n{index}"));
        let node = self.make_node(topology, index, data_dir)?;
        let token = self.nodes[0]
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
        let first = self.nodes[0].addr.to_string();
        let response = baton_client::join(&first, &fingerprint, &request).await?;
        setup::init_joined_node(&node.data_dir, node.addr, &response)?;
        self.nodes.push(node);
        self.spawn(self.nodes.len() - 1)
    }

    /// `ip netns exec NS baton daemon --data-dir D`, in its own session, logging to the data
    /// dir. `ip netns exec` execs the daemon, so the pid is the daemon's.
    fn spawn(&mut self, i: usize) -> Result<()> {
        let node = &mut self.nodes[i];
        let log_path = node.data_dir.join(setup::DAEMON_LOG);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &node.ns])
            .arg(&self.baton)
            .arg("daemon")
            .arg("--data-dir")
            .arg(&node.data_dir)
            .env("BATON_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: setsid is async-signal-safe; Ctrl-C on the harness must reach the harness
        // only, which then removes the daemons itself.
        unsafe {
            command.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let child = command
            .spawn()
            .context("starting a daemon with ip netns exec")?;
        node.pid = Some(child.id() as i32);
        node.state = ProcState::Running;
        Ok(())
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// A client talking to node `i` only.
    pub fn client(&self, i: usize) -> &Client {
        &self.nodes[i].client
    }

    /// Nodes whose daemon can answer (not killed, paused or frozen).
    pub fn answering(&self) -> Vec<usize> {
        let running = |n: &&NsNode| n.state == ProcState::Running;
        self.nodes
            .iter()
            .filter(running)
            .map(|n| n.index - 1)
            .collect()
    }

    pub async fn cluster_info(&self, i: usize) -> Option<ClusterInfo> {
        bounded(self.nodes[i].client.cluster()).await
    }

    pub async fn nodes_info(&self, i: usize) -> Option<Vec<NodeInfo>> {
        bounded(self.nodes[i].client.nodes()).await
    }

    pub async fn groups_info(&self, i: usize) -> Option<Vec<GroupInfo>> {
        bounded(self.nodes[i].client.groups()).await
    }

    /// The coordinator most answering nodes name (a cut-off old leader may still think it
    /// leads, so no single node is trusted).
    pub async fn coordinator(&self) -> Option<String> {
        let mut votes: BTreeMap<String, usize> = BTreeMap::new();
        for i in self.answering() {
            if let Some(name) = self.cluster_info(i).await.and_then(|c| c.coordinator) {
                *votes.entry(name).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(_, count)| *count)
            .map(|(name, _)| name)
    }

    /// The index of the node that coordinates, if the answering nodes agree on one.
    pub async fn coordinator_index(&self) -> Option<usize> {
        let name = self.coordinator().await?;
        self.index_of(&name)
    }

    /// Group owners as the coordinator's database has them.
    pub async fn owners(&self) -> BTreeMap<String, String> {
        let Some(i) = self.coordinator_index().await else {
            return BTreeMap::new();
        };
        let groups = self.groups_info(i).await.unwrap_or_default();
        groups
            .into_iter()
            .filter_map(|g| g.owner.map(|owner| (g.name, owner)))
            .collect()
    }

    /// Polls `check` every 50 ms until it holds or `timeout` passes.
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
            if crate::signals::interrupted() {
                bail!("interrupted");
            }
            if check(self).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "timed out after {timeout:?} waiting until {what}; logs in {}",
            self.root.display()
        )
    }

    /// Waits until the coordinator sees every node Up.
    pub async fn wait_all_up(&self, timeout: Duration) -> Result<()> {
        let count = self.nodes.len();
        self.wait_until("every node is up", timeout, |c| async move {
            let Some(i) = c.coordinator_index().await else {
                return false;
            };
            let nodes = c.nodes_info(i).await.unwrap_or_default();
            nodes.len() == count && nodes.iter().all(|n| n.state == "Up")
        })
        .await
    }

    /// Waits until the coordinator sees each of `groups` Online.
    pub async fn wait_groups_online(&self, groups: &[String], timeout: Duration) -> Result<()> {
        self.wait_until("every workload group is online", timeout, |c| async move {
            let Some(i) = c.coordinator_index().await else {
                return false;
            };
            let all = c.groups_info(i).await.unwrap_or_default();
            groups.iter().all(|name| {
                all.iter()
                    .any(|g| &g.name == name && g.status == "Online" && g.owner.is_some())
            })
        })
        .await
    }

    /// kill -9 of the whole node (daemon, resource host, resources) at once.
    pub fn kill(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if let Some(pid) = node.pid.take() {
            procs::signal_tree(pid, libc::SIGKILL);
            reap(pid);
        }
        node.frozen.clear();
        node.state = ProcState::Killed;
    }

    pub fn restart(&mut self, i: usize) -> Result<()> {
        if self.nodes[i].pid.is_some() {
            bail!("{} is running", self.nodes[i].name);
        }
        self.spawn(i)
    }

    /// SIGSTOP to the daemon alone: its heartbeat thread stops, its resources keep running
    /// until the resource host's lease runs out.
    pub fn pause_daemon(&mut self, i: usize) {
        if let Some(pid) = self.nodes[i].pid {
            signal(pid, libc::SIGSTOP);
            self.nodes[i].state = ProcState::Paused;
        }
    }

    /// SIGSTOP to every process of the node, as a VM pause would. Scans again until no new
    /// process appears, so nothing forked during the scan escapes.
    pub fn freeze(&mut self, i: usize) {
        let Some(pid) = self.nodes[i].pid else { return };
        let mut stopped: Vec<i32> = Vec::new();
        loop {
            let fresh: Vec<i32> = procs::tree(pid)
                .into_iter()
                .filter(|p| !stopped.contains(p))
                .collect();
            if fresh.is_empty() {
                break;
            }
            for p in fresh {
                signal(p, libc::SIGSTOP);
                stopped.push(p);
            }
        }
        self.nodes[i].frozen = stopped;
        self.nodes[i].state = ProcState::Frozen;
    }

    /// SIGCONT to what was paused or frozen, in the order stopped (daemon first).
    pub fn resume(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        match node.state {
            ProcState::Paused => node.pid.into_iter().for_each(|p| signal(p, libc::SIGCONT)),
            ProcState::Frozen => node.frozen.drain(..).for_each(|p| signal(p, libc::SIGCONT)),
            ProcState::Running | ProcState::Killed => return,
        }
        node.state = ProcState::Running;
    }

    /// Brings every node back: continues stopped ones, restarts killed ones.
    pub fn revive_all(&mut self) -> Result<()> {
        for i in 0..self.nodes.len() {
            match self.nodes[i].state {
                ProcState::Paused | ProcState::Frozen => self.resume(i),
                ProcState::Killed => self.restart(i)?,
                ProcState::Running => {}
            }
        }
        Ok(())
    }

    /// kill -9 of every node; the data dirs stay for the caller to keep or remove.
    pub fn stop_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

impl Drop for NsCluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// A read with a short timeout: `None` when the node does not answer in time.
async fn bounded<T, E>(call: impl std::future::Future<Output = Result<T, E>>) -> Option<T> {
    tokio::time::timeout(READ_TIMEOUT, call).await.ok()?.ok()
}

fn signal(pid: i32, signal: i32) {
    // SAFETY: kill(2) on a process of a node this harness started.
    unsafe { libc::kill(pid, signal) };
}

/// Waits (bounded) for a killed daemon, our child, so no zombie is left.
fn reap(pid: i32) {
    let start = Instant::now();
    while procs::alive(pid) && start.elapsed() < Duration::from_secs(2) {
        procs::reap(pid);
        std::thread::sleep(Duration::from_millis(5));
    }
    procs::reap(pid);
}
