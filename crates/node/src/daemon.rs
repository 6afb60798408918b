//! `baton daemon`: start-up, the tasks of a running node, and shutdown.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use baton_host::HostHandle;
use baton_membership::{PeerInfo, Settings, View};
use baton_model::{ClusterState, Command, HeartbeatSettings, NodeState};
use baton_store::StateView;
use openraft::BasicNode;

use crate::heartbeat::Heartbeat;
use crate::network::Network;
use crate::node::Node;
use crate::setup::{self, Identity};

/// Lock file that keeps a second daemon off the same data dir.
const LOCK_FILE: &str = "daemon.lock";

/// Runs a node until SIGTERM or SIGINT.
pub async fn run_daemon(data_dir: PathBuf) -> Result<()> {
    let _lock = lock_data_dir(&data_dir)?;
    let (identity, secrets) = setup::load(&data_dir)?;
    let listener = tokio::net::TcpListener::bind(identity.listen).await.with_context(|| {
        format!("cannot listen on {}: another process uses it; stop it or change the node's address", identity.listen)
    })?;
    let udp = UdpSocket::bind(identity.listen).with_context(|| {
        format!(
            "cannot bind heartbeat socket udp {}: another process uses it",
            identity.listen
        )
    })?;
    let (log_store, state_machine, view) = baton_store::open(&data_dir)?;
    let initial_settings = timer_settings(&data_dir, view.borrow().state.properties.same_subnet);
    let peer_tls = baton_transport::tls::client_config(
        &secrets.ca_cert_pem,
        Some((&secrets.node_cert_pem, &secrets.node_key_pem)),
    )?;
    let peer_client = baton_transport::client::http_client(peer_tls, Duration::from_secs(5))?;
    let config = Arc::new(raft_config(
        initial_settings.delay_ms,
        initial_settings.detection_ms(),
    )?);
    let network = Network {
        client: peer_client.clone(),
    };
    let raft = baton_store::Raft::new(identity.node_id, config, network, log_store, state_machine)
        .await
        .context("starting Raft")?;
    let exe = std::env::current_exe().context("locating the baton binary")?;
    let (host, lease, host_events) = HostHandle::spawn(&exe, &data_dir.join("host.log"))
        .context("starting the resource host")?;
    let incarnation = u64::from_be_bytes(setup::random_bytes(8)?.try_into().unwrap_or([1; 8]));
    // A restarted node does not remember whom it condemned: it acks nobody for a full lease.
    let quiet_ms = initial_settings.detection_ms() * 11 / 10 + baton_membership::LEASE_MARGIN_MS;
    let heartbeat = Heartbeat::new(
        identity.node_id,
        &secrets.heartbeat_key,
        incarnation,
        lease,
        quiet_ms,
    );
    let heartbeat_thread = heartbeat.spawn(udp)?;
    let node = Arc::new(Node {
        identity: identity.clone(),
        secrets,
        raft,
        view,
        peer_client,
        heartbeat: Arc::clone(&heartbeat),
        host,
        data_dir: data_dir.clone(),
    });
    tracing::info!(node = %identity.node_name, id = identity.node_id, listen = %identity.listen, "baton daemon started");
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let server = spawn_server(&node, listener, shutdown_rx)?;
    tokio::spawn(sync_membership_view(Arc::clone(&node)));
    tokio::spawn(crate::coordinator::run(Arc::clone(&node)));
    tokio::spawn(crate::reconcile::run(Arc::clone(&node), host_events));
    if identity.bootstrap {
        bootstrap(&node, &data_dir, &identity).await?;
    }
    wait_for_signal().await;
    tracing::info!("shutting down: stopping resources");
    heartbeat.stop.store(true, Ordering::Relaxed);
    let _ = node.host.stop_all(Duration::from_secs(10)).await;
    let _ = shutdown_tx.send(true);
    let _ = node.raft.shutdown().await;
    let _ = heartbeat_thread.join();
    server.abort();
    Ok(())
}

/// Raft timers scaled to the failure detector: elections take about one detection time, so a
/// dead coordinator is replaced about as fast as a dead node is noticed.
fn raft_config(delay_ms: u64, detection_ms: u64) -> Result<openraft::Config> {
    let heartbeat_ms = (delay_ms / 2).max(20);
    // Below the detection time even when the last Raft heartbeat came a little after the last
    // heartbeat answer the detector saw.
    let election_max = (detection_ms * 8 / 10).max(3 * heartbeat_ms + 50);
    let election_min = (election_max * 2 / 3).max(heartbeat_ms + 10);
    Ok(baton_store::raft_config(
        heartbeat_ms,
        election_min,
        election_max,
    )?)
}

fn spawn_server(
    node: &Arc<Node>,
    listener: tokio::net::TcpListener,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>> {
    let tls = baton_transport::tls::server_config(
        &node.secrets.ca_cert_pem,
        &node.secrets.node_cert_pem,
        &node.secrets.node_key_pem,
    )?;
    let router = crate::api::router(Arc::clone(node))
        .merge(crate::rpc::router())
        .with_state(Arc::clone(node));
    Ok(tokio::spawn(async move {
        if let Err(error) = baton_transport::serve::serve(listener, tls, router, shutdown).await {
            tracing::error!(%error, "the API server stopped");
        }
    }))
}

/// First start of the first node: a one-voter Raft, then the `Initialize` update.
async fn bootstrap(node: &Node, data_dir: &Path, identity: &Identity) -> Result<()> {
    let members = BTreeMap::from([(
        identity.node_id,
        BasicNode {
            addr: identity.listen.to_string(),
        },
    )]);
    if let Err(error) = node.raft.initialize(members).await {
        tracing::info!(%error, "Raft already initialized");
    }
    if !node.view().state.is_initialized() {
        let command = Command::Initialize {
            cluster_name: identity.cluster_name.clone(),
            admin_token_hash: setup::sha256_hex(&node.secrets.admin_token),
            node_name: identity.node_name.clone(),
            addr: identity.listen.to_string(),
        };
        node.propose(command)
            .await
            .context("initializing the cluster database")?;
    }
    setup::clear_bootstrap(data_dir, identity)
}

/// Where the last heartbeat settings seen in the database are kept: at start-up the state
/// machine only holds its snapshot until Raft replays the log, but Raft's timers must be
/// chosen before that.
const TIMERS_FILE: &str = "heartbeat-settings.json";

fn timer_settings(data_dir: &Path, fallback: HeartbeatSettings) -> HeartbeatSettings {
    let text = std::fs::read_to_string(data_dir.join(TIMERS_FILE)).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(fallback)
}

fn remember_timer_settings(data_dir: &Path, settings: HeartbeatSettings) {
    if timer_settings(
        data_dir,
        HeartbeatSettings {
            delay_ms: 0,
            threshold: 0,
        },
    ) != settings
    {
        if let Ok(text) = serde_json::to_string(&settings) {
            let _ = std::fs::write(data_dir.join(TIMERS_FILE), text);
        }
    }
}

/// Hands the heartbeat thread a fresh view after every database change.
async fn sync_membership_view(node: Arc<Node>) {
    let mut changes = node.view.clone();
    loop {
        let view = changes.borrow_and_update().clone();
        apply_view(&node, &view);
        if view.state.is_initialized() {
            remember_timer_settings(&node.data_dir, view.state.properties.same_subnet);
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

fn apply_view(node: &Node, view: &StateView) {
    let state = &view.state;
    let me = node.id();
    let own_addr = node.identity.listen;
    let mut addrs = BTreeMap::new();
    let mut peers = Vec::new();
    for entry in state.nodes.values().filter(|n| n.id != me) {
        let Ok(addr) = entry.addr.parse::<SocketAddr>() else {
            continue;
        };
        let settings = settings_for(state, own_addr, addr);
        let votes = if entry.state == NodeState::Joining {
            0
        } else {
            entry.votes
        };
        let ackable = entry.state != NodeState::Down;
        peers.push(PeerInfo {
            id: entry.id,
            votes,
            settings,
            down_epoch: entry.down_epoch,
            ackable,
        });
        addrs.insert(entry.id, addr);
    }
    let own = state.nodes.get(&me);
    let self_votes = own.map_or(1, |n| {
        if n.state == NodeState::Joining {
            0
        } else {
            n.votes
        }
    });
    let self_down_epoch = own.map_or(0, |n| n.down_epoch);
    if let Ok(mut peer_addrs) = node.heartbeat.peer_addrs.lock() {
        *peer_addrs = addrs;
    }
    node.heartbeat.membership().configure(View {
        self_votes,
        self_down_epoch,
        peers,
    });
}

/// Peers on the same subnet (/24 for IPv4, /64 for IPv6) use the same-subnet settings.
fn settings_for(state: &ClusterState, own: SocketAddr, peer: SocketAddr) -> Settings {
    let same_subnet = match (own.ip(), peer.ip()) {
        (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => a.octets()[..3] == b.octets()[..3],
        (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => {
            a.segments()[..4] == b.segments()[..4]
        }
        _ => false,
    };
    let chosen = if same_subnet || peer.ip().is_loopback() {
        state.properties.same_subnet
    } else {
        state.properties.cross_subnet
    };
    Settings {
        delay_ms: chosen.delay_ms,
        threshold: chosen.threshold,
    }
}

/// Takes an exclusive lock on the data dir, or explains who holds it.
fn lock_data_dir(data_dir: &Path) -> Result<File> {
    if !data_dir.is_dir() {
        bail!(
            "data dir {} does not exist: run `baton cluster create` or `baton node join` first",
            data_dir.display()
        );
    }
    let path = data_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock on a file descriptor we own; the lock lives as long as `file`.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if !locked {
        let holder = std::fs::read_to_string(&path).unwrap_or_default();
        bail!(
            "another baton daemon (pid {}) is running on data dir {}: stop it first",
            holder.trim(),
            data_dir.display()
        );
    }
    std::fs::write(&path, std::process::id().to_string())?;
    Ok(file)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
