//! The test network: a switch namespace holding a bridge, one namespace per node and a
//! control namespace (the ledger and the harness' API client), each plugged into the bridge
//! with a veth. Addresses are in 10.214.77.0/24 and exist only inside these namespaces.
//! Faults are nftables rules inside the node namespaces; they never touch the control
//! namespace's traffic, so the ledger sees every write of every node, as shared storage would.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// Every namespace of a run is named `PREFIX<pid>-<host>`; a crashed run's are found by it.
const PREFIX: &str = "bchaos";
/// A run's folder under the work dir: `run-<pid>`.
pub const RUN_PREFIX: &str = "run-";

pub fn ctl_ip() -> Ipv4Addr {
    Ipv4Addr::new(10, 214, 77, 2)
}

/// Node `index` (1-based) lives at 10.214.77.(10 + index).
pub fn node_ip(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 214, 77, 10 + index as u8)
}

/// Which directed links drop packets, all of them or a share. Nodes are 1-based indices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetState {
    /// `(from, to)`: packets from `from` to `to` are dropped.
    pub blocked: BTreeSet<(usize, usize)>,
    /// `(from, to)` → percent of packets dropped at random.
    pub loss: BTreeMap<(usize, usize), u8>,
}

impl NetState {
    /// Blocks both directions between every node of `a` and every node of `b`.
    pub fn cut(&mut self, a: &[usize], b: &[usize]) {
        for &x in a {
            for &y in b {
                self.blocked.insert((x, y));
                self.blocked.insert((y, x));
            }
        }
    }

    /// Whether `a` and `b` can exchange packets both ways.
    pub fn connected(&self, a: usize, b: usize) -> bool {
        !self.blocked.contains(&(a, b)) && !self.blocked.contains(&(b, a))
    }
}

pub struct Topology {
    pub name: String,
    pub node_count: usize,
    removed: bool,
}

impl Topology {
    /// Builds the switch, the control namespace and `node_count` node namespaces.
    pub fn create(node_count: usize) -> Result<Self> {
        let topology = Self {
            name: format!("{PREFIX}{}", std::process::id()),
            node_count,
            removed: false,
        };
        // On any error `topology` drops here and removes what was made.
        topology.build().context(
            "cannot build the test network (network namespaces, veth and a bridge are needed)",
        )?;
        Ok(topology)
    }

    fn build(&self) -> Result<()> {
        let sw = self.ns("sw");
        ip(&["netns", "add", &sw])?;
        ip(&["-n", &sw, "link", "set", "lo", "up"])?;
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        // No STP and no forwarding delay: ports forward at once.
        ip(&[
            "-n",
            &sw,
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        self.plug("ctl", ctl_ip())?;
        for index in 1..=self.node_count {
            self.check_interrupt()?;
            self.plug(&format!("n{index}"), node_ip(index))?;
            nft(&self.node_ns(index), FILTER_TABLE)?;
        }
        Ok(())
    }

    fn check_interrupt(&self) -> Result<()> {
        if crate::signals::interrupted() {
            bail!("interrupted while building the test network");
        }
        Ok(())
    }

    /// A host namespace with `eth0` on the bridge.
    fn plug(&self, host: &str, addr: Ipv4Addr) -> Result<()> {
        let (sw, ns, port) = (self.ns("sw"), self.ns(host), format!("p-{host}"));
        ip(&["netns", "add", &ns])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ])?;
        ip(&["-n", &sw, "link", "set", &port, "master", "br0", "up"])?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])
    }

    pub fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.name)
    }

    pub fn node_ns(&self, index: usize) -> String {
        self.ns(&format!("n{index}"))
    }

    /// Moves the calling thread (and every thread it starts later) into the control
    /// namespace. Call it before any other thread exists.
    pub fn enter_ctl(&self) -> Result<()> {
        let path = format!("/var/run/netns/{}", self.ns("ctl"));
        let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
        use std::os::fd::AsRawFd;
        // SAFETY: setns on a namespace file we hold open; affects only this thread.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            bail!("entering {path}: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Replaces every node's filter rules with those of `state` (one atomic nft batch each).
    pub fn apply(&self, state: &NetState) -> Result<()> {
        for index in 1..=self.node_count {
            nft(&self.node_ns(index), &rules_for(index, state))?;
        }
        Ok(())
    }

    /// Kills whatever still runs in the namespaces and deletes them.
    pub fn remove(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        let mut hosts = vec!["ctl".to_string()];
        hosts.extend((1..=self.node_count).map(|i| format!("n{i}")));
        hosts.push("sw".into());
        for host in hosts {
            remove_ns(&self.ns(&host));
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.remove();
    }
}

const FILTER_TABLE: &str = "\
add table inet chaos
add chain inet chaos input { type filter hook input priority 0; policy accept; }
add chain inet chaos output { type filter hook output priority 0; policy accept; }
";

/// The nft batch for node `me`: drop what `state` blocks on its way out and on its way in
/// (both ends, so a rule missed on one side still holds).
fn rules_for(me: usize, state: &NetState) -> String {
    let mut script = String::from("flush chain inet chaos input\nflush chain inet chaos output\n");
    for &(from, to) in &state.blocked {
        if from == me {
            script += &format!("add rule inet chaos output ip daddr {} drop\n", node_ip(to));
        }
        if to == me {
            script += &format!(
                "add rule inet chaos input ip saddr {} drop\n",
                node_ip(from)
            );
        }
    }
    for (&(from, to), percent) in &state.loss {
        if to == me {
            script += &format!(
                "add rule inet chaos input ip saddr {} numgen random mod 100 < {percent} drop\n",
                node_ip(from)
            );
        }
    }
    script
}

fn ip(args: &[&str]) -> Result<()> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running ip")?;
    if !output.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn nft(ns: &str, script: &str) -> Result<()> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "nft in {ns} failed: {}\n{script}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// SIGKILLs every process in namespace `ns` (all started by this harness, or by a crashed
/// earlier run of it), except this process, then deletes the namespace.
fn remove_ns(ns: &str) {
    let me = std::process::id().to_string();
    if let Ok(output) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&output.stdout).split_whitespace() {
            if pid == me {
                continue;
            }
            if let Ok(pid) = pid.parse::<i32>() {
                // SAFETY: kill(2) on a process inside a namespace this harness made.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    let _ = Command::new("ip")
        .args(["netns", "del", ns])
        .stderr(Stdio::null())
        .status();
}

/// Removes the namespaces and run folders of earlier runs whose process is gone.
pub fn clean_stale(work_dir: &std::path::Path) {
    let listed = Command::new("ip").args(["netns", "list"]).output();
    let names = listed
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    for name in names.lines().filter_map(|l| l.split_whitespace().next()) {
        if owner_is_gone(name, PREFIX) {
            eprintln!("baton-chaos: removing namespace {name} left by an earlier run");
            remove_ns(name);
        }
    }
    let Ok(entries) = std::fs::read_dir(work_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if owner_is_gone(&name, RUN_PREFIX) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// `name` is `<prefix><pid>-…` and no process `pid` runs any more.
fn owner_is_gone(name: &str, prefix: &str) -> bool {
    let Some(rest) = name.strip_prefix(prefix) else {
        return false;
    };
    let pid: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}
