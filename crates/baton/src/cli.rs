//! The command line: every verb and flag, as clap derive types. No behaviour here.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

/// Shown at the end of `baton --help`.
const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  the cluster refused the request or the operation failed
     (also: no client configuration, a group that went Failed)
  2  usage error: unknown verb, bad flag, bad duration, malformed join token
  3  cluster unreachable: no endpoint in the client configuration answered
  4  timed out waiting (for a group to come online/offline/move, or for a node to start)

Errors are one line on stderr: `error: <message>`.

Environment:
  BATON_CONFIG    client configuration file (default $HOME/.config/baton/client.json)
  BATON_DATA_DIR  node data directory (default /var/lib/baton)
  BATON_LOG       log filter, e.g. debug or baton_node=trace (default: info for the
                  daemon, warn for every other verb)";

#[derive(Debug, Parser)]
#[command(
    name = "baton",
    version,
    about = "baton: a failover cluster manager. `baton daemon` runs a node; every other verb talks to a node's API.",
    after_help = AFTER_HELP,
    propagate_version = true
)]
pub struct Cli {
    /// Client configuration file (endpoints, token, CA).
    #[arg(long, global = true, env = "BATON_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Machine output: print the answer as one JSON document.
    #[arg(long, global = true)]
    pub json: bool,

    /// More log output on stderr (repeat for more).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node in the foreground.
    Daemon {
        #[command(flatten)]
        data_dir: DataDir,
    },
    /// The resource host child process (started by the daemon, not by people).
    #[command(hide = true)]
    ResourceHost,
    /// A tiny HTTP server used as a role's process by the demo, benchmarks and tests.
    #[command(hide = true)]
    ServeHttp {
        #[arg(long)]
        addr: std::net::SocketAddr,
    },
    /// Create a cluster, show it, set its properties.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Join, list, pause, resume and evict nodes; make join tokens.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Groups (roles): create, bring online/offline, move, inspect.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Resources: create, delete, list, show, set their policy, set their dependencies.
    #[command(subcommand)]
    Resource(ResourceCommand),
    /// Resource types (agents) and their parameters.
    #[command(subcommand)]
    ResourceType(ResourceTypeCommand),
    /// Run the placement policy offline on a scenario file and print the plan with reasons.
    #[command(after_help = SIMULATE_HELP)]
    Simulate {
        /// A scenario: a TOML plan input (nodes, groups with resources, now_ms).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// The cluster's recent events, oldest first.
    Events {
        /// How many events.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Start a throwaway local cluster and show failover.
    Demo {
        /// Leave the demo cluster running at the end.
        #[arg(long)]
        keep: bool,
    },
    /// Benchmarks printing timings (with --json: machine-readable).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Args)]
pub struct DataDir {
    /// The node's data directory.
    #[arg(
        long = "data-dir",
        env = "BATON_DATA_DIR",
        default_value = "/var/lib/baton",
        value_name = "DIR"
    )]
    pub path: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Create a new cluster with this machine as its first node, start it, and print a join token.
    Create {
        /// The cluster's name.
        #[arg(value_name = "NAME")]
        cluster: String,
        /// This node's address for the API and for other nodes.
        #[arg(long, value_name = "IP:PORT")]
        listen: SocketAddr,
        #[command(flatten)]
        data_dir: DataDir,
        /// This node's name.
        #[arg(long = "name", value_name = "NODE", default_value = "n1")]
        node_name: String,
        /// Write the data directory and client configuration but do not start the daemon.
        #[arg(long)]
        no_start: bool,
    },
    /// Show the cluster: quorum, coordinator, properties.
    Show,
    /// Set cluster properties: `KEY VALUE [KEY VALUE...]` or `KEY=VALUE...`.
    Set {
        #[arg(value_name = "KEY VALUE | KEY=VALUE", required = true, num_args = 1..)]
        pairs: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Join this machine to a cluster through one of its nodes, and start the daemon.
    Join {
        /// A join token from `baton cluster create` or `baton node token`.
        #[arg(long, value_name = "TOKEN")]
        token: String,
        /// This node's address for the API and for other nodes.
        #[arg(long, value_name = "IP:PORT")]
        listen: SocketAddr,
        #[command(flatten)]
        data_dir: DataDir,
        /// This node's name (default: the cluster picks one).
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Write the data directory and client configuration but do not start the daemon.
        #[arg(long)]
        no_start: bool,
        /// The `IP:PORT` of a node already in the cluster.
        #[arg(value_name = "PEER_ADDR")]
        peer: SocketAddr,
    },
    /// Print a new single-use join token.
    Token {
        /// How long the token stays valid.
        #[arg(long, default_value = "1h", value_name = "DURATION")]
        ttl: String,
    },
    /// List the nodes, quorum and coordinator.
    List,
    /// Pause a node: it keeps its vote but takes no new groups.
    Pause {
        #[arg(value_name = "NODE")]
        name: String,
        /// Also move its groups away.
        #[arg(long)]
        drain: bool,
    },
    /// Resume a paused node.
    Resume {
        #[arg(value_name = "NODE")]
        name: String,
    },
    /// Remove a node from the cluster for good.
    Evict {
        #[arg(value_name = "NODE")]
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct Wait {
    /// Return once the cluster accepted the request, without waiting for the result.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after this long (exit code 4).
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub timeout: String,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create an empty group.
    Create {
        #[arg(value_name = "NAME")]
        name: String,
        /// Preferred owners, most preferred first.
        #[arg(long, value_delimiter = ',', value_name = "NODE,NODE,...")]
        preferred: Vec<String>,
    },
    /// Delete a group.
    Delete {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Bring a group online and wait until it is.
    Online {
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// Take a group offline and wait until it is.
    Offline {
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// Move a group to another node and wait until it is online there.
    Move {
        #[arg(value_name = "NAME")]
        name: String,
        /// The target node (default: the best other node).
        #[arg(long, value_name = "NODE")]
        to: Option<String>,
        #[command(flatten)]
        wait: Wait,
    },
    /// List groups.
    List,
    /// Show everything about one group, including why it is where it is.
    Show {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Set a group's failover policy, failback, priority, anti-affinity or preferred owners.
    #[command(after_help = GROUP_SET_HELP)]
    Set {
        #[arg(value_name = "NAME")]
        name: String,
        #[arg(value_name = "KEY=VALUE", required = true, num_args = 1..)]
        pairs: Vec<String>,
    },
}

const GROUP_SET_HELP: &str = "\
Keys:
  failover_threshold=N|default   at most N failovers in the failover period (default: nodes - 1)
  failover_period=6h             the failover policy's period
  failback=prevent|immediate|window:HH:MM-HH:MM   back to a more preferred owner (UTC window)
  priority=high|medium|low|no-auto-start          placement order; no-auto-start: never
                                 started again automatically after a failure
  anti_affinity=CLASS,...        groups sharing a class avoid sharing a node (empty clears)
  preferred_owners=NODE,...      ordered, most preferred first

Example: baton group set web failback=window:01:00-05:00 priority=high";

const RESOURCE_SET_HELP: &str = "\
Keys:
  looks_alive=5s         cheap health check interval (a process: is it alive)
  is_alive=60s           thorough health check interval (a process: its check)
  pending_timeout=3m     longest start, stop or check; the agent is killed after it
  restart=N/PERIOD[,no-failover] | never
                         restart in place up to N times in PERIOD, then fail the group
                         over (no-failover: stay failed until the retry period)
  retry_period=1h        a failed resource is tried again after this long
  possible_owners=NODE,...|all   nodes that may run it
  param.NAME=VALUE       a type parameter (empty value removes it)

Example: baton resource set web-app looks_alive=5s is_alive=30s restart=2/15m";

const SIMULATE_HELP: &str = "\
The scenario format is documented in crates/policy/tests/scenarios/README.md; dozens of
examples live next to it. Exit code 1 when the file cannot be read or is not a valid
scenario.";

#[derive(Debug, Subcommand)]
pub enum ResourceCommand {
    /// Create a resource in a group.
    Create {
        #[arg(value_name = "NAME")]
        name: String,
        /// The group it belongs to.
        #[arg(long, value_name = "GROUP")]
        group: String,
        /// The resource type (agent).
        #[arg(long = "type", value_name = "TYPE")]
        resource_type: String,
        /// A parameter of the agent (repeatable).
        #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
    },
    /// Delete a resource.
    Delete {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// List resources.
    List,
    /// Show a resource: state, why it failed, settings, dependencies.
    Show {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Set a resource's health checks, timeouts, restart policy, possible owners or parameters.
    #[command(after_help = RESOURCE_SET_HELP)]
    Set {
        #[arg(value_name = "NAME")]
        name: String,
        #[arg(value_name = "KEY=VALUE", required = true, num_args = 1..)]
        pairs: Vec<String>,
    },
    /// Set what a resource depends on, e.g. 'ip and (disk1 or disk2)'; '' removes it.
    Depend {
        #[arg(value_name = "NAME")]
        name: String,
        /// Resources of the same group joined with `and`, `or` and parentheses.
        #[arg(value_name = "EXPRESSION")]
        expression: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ResourceTypeCommand {
    /// List the resource types: process, systemd and the OCF agents installed on the node.
    List,
    /// Show a type's parameters (for OCF agents: from their meta-data).
    Show {
        /// process, systemd or ocf:PROVIDER:AGENT (e.g. ocf:heartbeat:IPaddr2).
        #[arg(value_name = "TYPE")]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Measure failover time: kill the owner of a group, time until it is online elsewhere.
    Failover {
        /// How many failovers to measure.
        #[arg(long, default_value_t = 10)]
        runs: u32,
        /// Heartbeat interval for the benchmark cluster (e.g. 100ms).
        #[arg(long, value_name = "DURATION")]
        delay: Option<String>,
        /// Missed heartbeats before a node is down.
        #[arg(long, value_name = "COUNT")]
        threshold: Option<u32>,
    },
    /// Run a soak test: keep moving and failing groups for a while, check invariants.
    Soak {
        /// How long to run, in minutes.
        #[arg(long)]
        minutes: u64,
    },
}

/// `KEY=VALUE`, with a non-empty key.
fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err("expected KEY=VALUE, e.g. --param port=8080".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
