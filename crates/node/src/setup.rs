//! A node's data directory: identity, keys and certificates, and how it is first written
//! (`baton cluster create`, `baton node join`) and later read (`baton daemon`).

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use baton_client::dto::JoinResponse;
use baton_transport::pki::ClusterCa;
use serde::{Deserialize, Serialize};

const IDENTITY: &str = "identity.json";
const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
const NODE_CERT: &str = "node.pem";
const NODE_KEY: &str = "node.key";
const HEARTBEAT_KEY: &str = "heartbeat.key";
const ADMIN_TOKEN: &str = "admin.token";
/// The daemon's log when started in the background.
pub const DAEMON_LOG: &str = "daemon.log";

/// Who this node is. Written once, at create or join.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Identity {
    pub cluster_name: String,
    pub node_id: u64,
    pub node_name: String,
    pub listen: SocketAddr,
    /// True for the first node until its daemon has initialized Raft and the database.
    pub bootstrap: bool,
}

/// Keys and certificates, each in its own owner-only file.
#[derive(Clone, Debug)]
pub struct Secrets {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub node_cert_pem: String,
    pub node_key_pem: String,
    pub heartbeat_key: Vec<u8>,
    pub admin_token: String,
}

/// What `cluster create` hands back to the CLI.
pub struct CreatedCluster {
    pub admin_token: String,
    pub ca_cert_pem: String,
}

/// Writes the first node's data directory: a new cluster CA, the node's certificate, a
/// heartbeat key and an admin token.
pub fn init_first_node(
    data_dir: &Path,
    cluster_name: &str,
    node_name: &str,
    listen: SocketAddr,
) -> Result<CreatedCluster> {
    baton_model::check_name("cluster name", cluster_name)?;
    baton_model::check_name("node name (--name)", node_name)?;
    prepare_empty_dir(data_dir)?;
    let ca = ClusterCa::generate(cluster_name).context("making the cluster CA")?;
    let cert = ca
        .issue_node_cert(node_name, &[listen.ip()])
        .context("issuing the node certificate")?;
    let secrets = Secrets {
        ca_cert_pem: ca.cert_pem.clone(),
        ca_key_pem: ca.key_pem.clone(),
        node_cert_pem: cert.cert_pem,
        node_key_pem: cert.key_pem,
        heartbeat_key: random_bytes(32)?,
        admin_token: random_hex(24)?,
    };
    let identity = Identity {
        cluster_name: cluster_name.to_string(),
        node_id: 1,
        node_name: node_name.to_string(),
        listen,
        bootstrap: true,
    };
    write_all(data_dir, &identity, &secrets)?;
    Ok(CreatedCluster {
        admin_token: secrets.admin_token,
        ca_cert_pem: secrets.ca_cert_pem,
    })
}

/// Writes a joining node's data directory from the coordinator's answer.
pub fn init_joined_node(
    data_dir: &Path,
    listen: SocketAddr,
    response: &JoinResponse,
) -> Result<()> {
    prepare_empty_dir(data_dir)?;
    let heartbeat_key =
        hex_decode(&response.heartbeat_key_hex).context("heartbeat key in the join answer")?;
    let secrets = Secrets {
        ca_cert_pem: response.ca_cert_pem.clone(),
        ca_key_pem: response.ca_key_pem.clone(),
        node_cert_pem: response.node_cert_pem.clone(),
        node_key_pem: response.node_key_pem.clone(),
        heartbeat_key,
        admin_token: response.admin_token.clone(),
    };
    let identity = Identity {
        cluster_name: response.cluster_name.clone(),
        node_id: response.node_id,
        node_name: response.node_name.clone(),
        listen,
        bootstrap: false,
    };
    write_all(data_dir, &identity, &secrets)
}

/// Reads a data directory written by `init_first_node` or `init_joined_node`.
pub fn load(data_dir: &Path) -> Result<(Identity, Secrets)> {
    let identity_path = data_dir.join(IDENTITY);
    if !identity_path.exists() {
        bail!(
            "{} holds no baton node (no {IDENTITY}): run `baton cluster create` or `baton node join` first, or pass the right --data-dir",
            data_dir.display()
        );
    }
    let text = read(data_dir, IDENTITY)?;
    let identity: Identity = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is corrupt: restore the data dir or join the node again",
            identity_path.display()
        )
    })?;
    let secrets = Secrets {
        ca_cert_pem: read(data_dir, CA_CERT)?,
        ca_key_pem: read(data_dir, CA_KEY)?,
        node_cert_pem: read(data_dir, NODE_CERT)?,
        node_key_pem: read(data_dir, NODE_KEY)?,
        heartbeat_key: hex_decode(read(data_dir, HEARTBEAT_KEY)?.trim())?,
        admin_token: read(data_dir, ADMIN_TOKEN)?.trim().to_string(),
    };
    Ok((identity, secrets))
}

/// Marks the first node as bootstrapped, so a restart does not initialize again.
pub fn clear_bootstrap(data_dir: &Path, identity: &Identity) -> Result<()> {
    let mut identity = identity.clone();
    identity.bootstrap = false;
    write_secret(
        data_dir,
        IDENTITY,
        &serde_json::to_string_pretty(&identity)?,
    )
}

/// Fails with a clear message when something already listens on `listen` (TCP or UDP).
pub fn check_listen_free(listen: SocketAddr) -> Result<()> {
    let in_use = |what: &str, error: std::io::Error| {
        anyhow::anyhow!("cannot listen on {listen} ({what}): {error}; choose another --listen address or stop what uses it")
    };
    TcpListener::bind(listen).map_err(|e| in_use("tcp", e))?;
    UdpSocket::bind(listen).map_err(|e| in_use("udp", e))?;
    Ok(())
}

/// Starts `exe daemon --data-dir DIR` in its own session, detached, logging to the data dir.
pub fn spawn_daemon(exe: &Path, data_dir: &Path) -> Result<u32> {
    let log_path = data_dir.join(DAEMON_LOG);
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let mut command = Command::new(exe);
    command
        .arg("daemon")
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; it detaches the daemon from the CLI's terminal and
    // process group, so Ctrl-C in the shell that ran the CLI does not reach it.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    Ok(child.id())
}

fn prepare_empty_dir(data_dir: &Path) -> Result<()> {
    if data_dir.join(IDENTITY).exists() {
        bail!(
            "{} already holds a baton node: start it with `baton daemon --data-dir {}`, or choose another --data-dir",
            data_dir.display(),
            data_dir.display()
        );
    }
    fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700))?;
    Ok(())
}

fn write_all(data_dir: &Path, identity: &Identity, secrets: &Secrets) -> Result<()> {
    write_secret(data_dir, CA_CERT, &secrets.ca_cert_pem)?;
    write_secret(data_dir, CA_KEY, &secrets.ca_key_pem)?;
    write_secret(data_dir, NODE_CERT, &secrets.node_cert_pem)?;
    write_secret(data_dir, NODE_KEY, &secrets.node_key_pem)?;
    write_secret(data_dir, HEARTBEAT_KEY, &hex_encode(&secrets.heartbeat_key))?;
    write_secret(data_dir, ADMIN_TOKEN, &secrets.admin_token)?;
    // Identity last: its presence marks a complete data dir.
    write_secret(data_dir, IDENTITY, &serde_json::to_string_pretty(identity)?)
}

/// Writes a file readable by its owner only, atomically (temp file + rename).
fn write_secret(data_dir: &Path, name: &str, text: &str) -> Result<()> {
    let path = data_dir.join(name);
    let temp = data_dir.join(format!(".{name}.tmp"));
    let mut file = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .with_context(|| format!("writing {}", temp.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    fs::rename(&temp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn read(data_dir: &Path, name: &str) -> Result<String> {
    let path: PathBuf = data_dir.join(name);
    fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {}: the data dir is incomplete; restore it or join the node again",
            path.display()
        )
    })
}

pub fn random_bytes(count: usize) -> Result<Vec<u8>> {
    use ring::rand::SecureRandom;
    let mut bytes = vec![0u8; count];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("the system random source failed"))?;
    Ok(bytes)
}

pub fn random_hex(byte_count: usize) -> Result<String> {
    Ok(hex_encode(&random_bytes(byte_count)?))
}

pub fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn hex_decode(text: &str) -> Result<Vec<u8>> {
    if text.len() % 2 != 0 || !text.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("not a hex string");
    }
    (0..text.len())
        .step_by(2)
        .map(|i| Ok(u8::from_str_radix(&text[i..i + 2], 16)?))
        .collect()
}

/// SHA-256 of a secret, hex: what the cluster database stores instead of the secret.
pub fn sha256_hex(text: &str) -> String {
    hex_encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref())
}
