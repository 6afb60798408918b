//! `baton`: one binary. `baton daemon` runs a node; every other verb is the CLI, talking to
//! a node's REST API through `baton-client`. Exit codes are in [`exit`] and in `--help`.

mod bench;
mod cli;
mod demo;
mod exit;
mod output;
mod resources;
mod setup;
mod verbs;

use std::io::Write;
use std::path::PathBuf;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{BenchCommand, Cli, Command};

fn main() {
    let cli = Cli::parse();
    if let Command::ResourceHost = cli.command {
        // Speaks JSON lines on stdout: nothing else may write there. Never returns.
        baton_host::run_host();
    }
    if let Command::ServeHttp { addr } = cli.command {
        if let Err(error) = baton_testkit::http::serve_http(addr) {
            eprintln!("error: cannot serve http on {addr}: {error}");
            std::process::exit(1);
        }
        return;
    }
    let daemon = matches!(cli.command, Command::Daemon { .. });
    init_logging(daemon, cli.verbose);
    // Only plain CLI verbs: the daemon, the demo and the benchmarks write to pipes of their
    // children and must see EPIPE, not die of SIGPIPE.
    if !matches!(
        cli.command,
        Command::Daemon { .. } | Command::Demo { .. } | Command::Bench(_)
    ) {
        restore_sigpipe();
    }
    let code = match run(cli) {
        Ok(()) => exit::OK,
        Err(error) => {
            let _ = std::io::stdout().flush();
            eprintln!("error: {}", exit::one_line(&error));
            exit::code_of(&error)
        }
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

/// What every verb needs from the global flags.
pub struct Ctx {
    pub json: bool,
    pub config_path: PathBuf,
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = Ctx {
        json: cli.json,
        config_path: cli
            .config
            .clone()
            .unwrap_or_else(baton_client::ClientConfig::default_path),
    };
    match cli.command {
        Command::ResourceHost | Command::ServeHttp { .. } => unreachable!("handled in main"),
        Command::Daemon { data_dir } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(baton_node::run_daemon(data_dir.path))
        }
        // The demo and the benchmarks run their own runtimes (and clusters).
        Command::Demo { keep } => demo::run_demo(keep),
        Command::Bench(BenchCommand::Failover {
            runs,
            delay,
            threshold,
        }) => {
            let delay = delay
                .map(|d| exit::parse_duration("--delay", &d))
                .transpose()?;
            bench::run_failover(runs, ctx.json, delay, threshold)
        }
        Command::Bench(BenchCommand::Soak { minutes }) => bench::run_soak(minutes, ctx.json),
        Command::Simulate { file } => resources::simulate(&file),
        command => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(verbs::run(&ctx, command))
        }
    }
}

/// Logs go to stderr. `BATON_LOG` wins; otherwise `info` for the daemon and `warn` for the
/// CLI, one level more per `-v`.
fn init_logging(daemon: bool, verbose: u8) {
    const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];
    let base = if daemon { 2 } else { 1 };
    let level = LEVELS[(base + verbose as usize).min(LEVELS.len() - 1)];
    let filter = match std::env::var("BATON_LOG") {
        Ok(spec) if !spec.trim().is_empty() => {
            EnvFilter::try_new(spec.trim()).unwrap_or_else(|e| {
                eprintln!("warning: ignoring BATON_LOG ({e}); using `{level}`");
                EnvFilter::new(level)
            })
        }
        _ => EnvFilter::new(level),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// A CLI whose output is piped into `head` should end quietly, not fail writing to stdout.
fn restore_sigpipe() {
    // SAFETY: setting a signal's disposition to the default has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
