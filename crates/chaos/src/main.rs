//! `baton-chaos`: runs real `baton daemon`s, one per network namespace, injects faults on
//! seeded schedules, and checks that no group ever ran on two nodes at once (a fencing ledger
//! outside the cluster sees every write of every instance) and that no acknowledged
//! configuration change was lost. `tests/chaos/run` builds and runs it.

mod checker;
mod clock;
mod ledger;
mod nemesis;
mod net;
mod nodes;
mod report;
mod rng;
mod schedule;
mod signals;
mod workload;
mod writer;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

/// Exit code when the harness refuses to run (not root, no `ip netns`, no nftables).
const EXIT_REFUSED: u8 = 2;
/// Exit code when a schedule found an overlap, a lost change or another safety violation.
const EXIT_VIOLATION: u8 = 1;
/// Exit code after Ctrl-C or SIGTERM (everything was removed first).
const EXIT_INTERRUPTED: u8 = 130;

#[derive(Debug, Parser)]
#[command(
    name = "baton-chaos",
    about = "Fault injection against real baton daemons in network namespaces."
)]
struct Cli {
    #[command(subcommand)]
    command: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Runs schedules: the fixed CI batch (--ci) or a seed range (long mode).
    Run(RunArgs),
    /// The workload resource: appends records to the ledger while it runs (started by the
    /// cluster as a `process` resource, never by hand).
    Writer {
        #[arg(long)]
        ledger: std::net::SocketAddr,
        #[arg(long, default_value_t = 5)]
        interval_ms: u64,
    },
    /// Removes namespaces and folders left by a crashed earlier run.
    Cleanup {
        #[arg(long, default_value = "target/chaos")]
        work_dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The fixed-seed CI batch (regression schedules plus seeded ones).
    #[arg(long)]
    pub ci: bool,
    /// Long mode: first seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Long mode: number of seeded schedules, from --seed on.
    #[arg(long, default_value_t = 10)]
    pub count: u64,
    /// Length of each schedule's fault phase, e.g. 20s or 2m.
    #[arg(long, default_value = "20s")]
    pub duration: String,
    /// Only the schedules whose name contains this text (e.g. `regress` or `seed-7`).
    #[arg(long)]
    pub only: Option<String>,
    /// Where to write the JSON report.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// The `baton` binary to run as daemons.
    #[arg(long, default_value = "target/debug/baton")]
    pub baton: PathBuf,
    /// Keep every schedule's data dirs and logs (by default only failing ones are kept).
    #[arg(long)]
    pub keep: bool,
    /// Where schedules run (`run-<pid>/`) and where failing ones are kept (`kept/`).
    #[arg(long, default_value = "target/chaos")]
    pub work_dir: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Verb::Writer {
            ledger,
            interval_ms,
        } => writer::run(ledger, interval_ms),
        Verb::Cleanup { work_dir } => {
            net::clean_stale(&work_dir);
            ExitCode::SUCCESS
        }
        Verb::Run(args) => match run(args) {
            Ok(code) => code,
            Err(error) => {
                eprintln!("baton-chaos: error: {error:#}");
                ExitCode::from(EXIT_VIOLATION)
            }
        },
    }
}

fn run(args: RunArgs) -> Result<ExitCode> {
    if let Err(why) = check_prerequisites() {
        eprintln!("baton-chaos: refusing to run: {why}");
        return Ok(ExitCode::from(EXIT_REFUSED));
    }
    signals::install();
    let duration = parse_duration(&args.duration)?;
    let specs = schedule::select(&args, duration);
    if specs.is_empty() {
        bail!("no schedule matches --only {:?}", args.only);
    }
    std::fs::create_dir_all(&args.work_dir)
        .with_context(|| format!("creating {}", args.work_dir.display()))?;
    let work_dir = std::fs::canonicalize(&args.work_dir)?;
    net::clean_stale(&work_dir);
    let run_dir = RunDir(work_dir.join(format!("{}{}", net::RUN_PREFIX, std::process::id())));
    let (baton, chaos) = copy_binaries(&args.baton, &run_dir.0)?;
    let topology = net::Topology::create(nodes::NODES_MAX)?;
    // From here on every thread this process starts lives in the control namespace: the
    // ledger and the API client reach the nodes over the bridge, never the host network.
    topology.enter_ctl()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let env = schedule::Env {
        topology,
        baton,
        chaos,
        keep: args.keep,
        work_dir,
        run_dir: run_dir.0.clone(),
    };
    let outcome = runtime.block_on(schedule::run_all(&env, specs));
    drop(runtime);
    drop(env);
    let results = match outcome {
        Ok(results) => results,
        Err(error) if signals::interrupted() => {
            eprintln!("baton-chaos: interrupted ({error:#}); namespaces and daemons removed");
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        Err(error) => return Err(error),
    };
    let summary = report::Summary::new(args.ci, &results);
    summary.print();
    if let Some(path) = &args.report {
        summary.write(path)?;
        println!("report written to {}", path.display());
    }
    Ok(if summary.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_VIOLATION)
    })
}

/// This run's folder (schedules' data dirs, binaries); removed however the run ends. Kept
/// schedules were moved out of it before.
struct RunDir(PathBuf);

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies `baton` and this binary into the run's folder and returns the copies: a rebuild
/// during a run (cargo replaces the file) must not break daemons that start, or re-exec
/// themselves as the resource host, later in the run.
fn copy_binaries(baton: &Path, run_dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let bin = run_dir.join("bin");
    std::fs::create_dir_all(&bin)?;
    let chaos = std::env::current_exe().context("locating baton-chaos")?;
    let copies = (bin.join("baton"), bin.join("baton-chaos"));
    std::fs::copy(baton, &copies.0).with_context(|| {
        format!(
            "no baton binary at {}: build it with `cargo build -p baton`",
            baton.display()
        )
    })?;
    std::fs::copy(&chaos, &copies.1).context("copying baton-chaos")?;
    Ok(copies)
}

/// Root, `ip netns` and nftables are needed; a run without them must not pass silently.
fn check_prerequisites() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("it needs root (network namespaces, veth, nftables): run it as root".into());
    }
    let works = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !works("ip", &["netns", "list"]) {
        return Err("`ip netns` does not work here: install iproute2 (scripts/install-deps.sh) on a kernel with network namespaces".into());
    }
    if !works("nft", &["--version"]) {
        return Err("`nft` is missing: install nftables (scripts/install-deps.sh)".into());
    }
    Ok(())
}

fn parse_duration(text: &str) -> Result<u64> {
    let text = text.trim();
    let (number, unit_ms) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000)
    } else {
        (text, 1000)
    };
    let value: u64 = number
        .parse()
        .with_context(|| format!("bad duration `{text}`: use e.g. 20s or 2m"))?;
    Ok(value * unit_ms)
}
