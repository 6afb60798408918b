//! `ocf:PROVIDER:AGENT`: an unmodified OCF resource agent (`$OCF_ROOT/resource.d/PROVIDER/
//! AGENT`), called the way Pacemaker calls it: the action as its argument, parameters as
//! `OCF_RESKEY_<name>`, `OCF_RESKEY_CRM_meta_interval` (0 = a probe to many agents, so
//! recurring monitors pass their real interval) and `CRM_meta_timeout`, a per-node
//! `HA_RSCTMP`. LooksAlive and IsAlive are `monitor` at `OCF_CHECK_LEVEL` 0 and 10.
//! `ocf-exit-reason:` lines become the status message.

use std::collections::BTreeMap;
use std::path::PathBuf;

use baton_host::{HostHandle, RunRequest, RunResult, Started};
use baton_model::Resource;

use crate::metadata::{self, AgentMetadata};
use crate::{host_error, last_line, Agent, AgentFuture, Check, OpContext, Outcome};

/// Where Debian's `resource-agents` installs; `OCF_ROOT` in the daemon's environment wins.
pub const OCF_ROOT_DEFAULT: &str = "/usr/lib/ocf";
/// How long `meta-data` may take (agents declare 5 s).
const METADATA_TIMEOUT_MS: u64 = 10_000;
const EXIT_REASON: &str = "ocf-exit-reason:";

/// OCF exit codes (resource-agent API 1.1).
pub mod code {
    pub const SUCCESS: i32 = 0;
    pub const ERR_GENERIC: i32 = 1;
    pub const ERR_ARGS: i32 = 2;
    pub const ERR_UNIMPLEMENTED: i32 = 3;
    pub const ERR_PERM: i32 = 4;
    pub const ERR_INSTALLED: i32 = 5;
    pub const ERR_CONFIGURED: i32 = 6;
    pub const NOT_RUNNING: i32 = 7;
    pub const RUNNING_PROMOTED: i32 = 8;
    pub const FAILED_PROMOTED: i32 = 9;
}

/// What can go wrong reading an agent's meta-data.
#[derive(Debug, thiserror::Error)]
pub enum OcfError {
    #[error("OCF agent {path} is not installed on this node: install it (Debian: apt install resource-agents) on every node")]
    NotInstalled { path: PathBuf },
    #[error("meta-data of {agent} failed: {why}")]
    MetaData { agent: String, why: String },
    #[error("cannot run {agent}: {source}")]
    Host {
        agent: String,
        #[source]
        source: baton_host::HostError,
    },
}

pub struct OcfAgent {
    provider: String,
    agent: String,
}

impl OcfAgent {
    pub fn new(provider: &str, agent: &str) -> Self {
        Self {
            provider: provider.to_string(),
            agent: agent.to_string(),
        }
    }

    pub fn path(&self) -> PathBuf {
        ocf_root()
            .join("resource.d")
            .join(&self.provider)
            .join(&self.agent)
    }

    /// The variables of one call; `interval_ms` 0 makes a monitor a probe.
    fn environment(
        &self,
        cx: &OpContext,
        interval_ms: u64,
        level: Option<u32>,
    ) -> BTreeMap<String, String> {
        let mut env = cx.env.clone();
        let root = ocf_root().display().to_string();
        let fixed = [
            ("OCF_ROOT", root),
            ("OCF_RA_VERSION_MAJOR", "1".to_string()),
            ("OCF_RA_VERSION_MINOR", "1".to_string()),
            ("OCF_RESOURCE_INSTANCE", cx.resource.name.clone()),
            ("OCF_RESOURCE_TYPE", self.agent.clone()),
            ("OCF_RESOURCE_PROVIDER", self.provider.clone()),
            ("OCF_RESKEY_CRM_meta_interval", interval_ms.to_string()),
            ("OCF_RESKEY_CRM_meta_timeout", cx.timeout_ms().to_string()),
            ("HA_RSCTMP", cx.rsctmp.display().to_string()),
        ];
        env.extend(fixed.map(|(key, value)| (key.to_string(), value)));
        for (key, value) in &cx.resource.params {
            env.insert(format!("OCF_RESKEY_{key}"), value.clone());
        }
        if let Some(level) = level {
            env.insert("OCF_CHECK_LEVEL".into(), level.to_string());
        }
        env
    }

    async fn call(
        &self,
        host: &HostHandle,
        cx: &OpContext,
        action: &str,
        env: BTreeMap<String, String>,
    ) -> Result<RunResult, Outcome> {
        // Agents keep state files there; it is per node and may not exist yet.
        if let Err(error) = std::fs::create_dir_all(&cx.rsctmp) {
            return Err(Outcome::Failed(format!(
                "cannot create HA_RSCTMP {}: {error}",
                cx.rsctmp.display()
            )));
        }
        let request = RunRequest {
            label: format!("{} {action}", cx.resource.name),
            program: self.path().display().to_string(),
            args: vec![action.to_string()],
            env,
            cwd: None,
            user: None,
            timeout_ms: cx.timeout_ms(),
            needs_lease: action == "start",
            output_max: Some(8192),
        };
        host.run(request)
            .await
            .map_err(|error| host_error(action, error))
    }

    async fn action(&self, host: &HostHandle, cx: &OpContext, action: &str) -> Outcome {
        let env = self.environment(cx, 0, None);
        match self.call(host, cx, action, env).await {
            Ok(result) => outcome(action, &result, cx.timeout_ms()),
            Err(outcome) => outcome,
        }
    }

    async fn monitor(&self, host: &HostHandle, cx: &OpContext, check: Check) -> Outcome {
        let policy = &cx.resource.policy;
        let (interval_ms, level) = match check {
            Check::LooksAlive => (policy.looks_alive_ms, 0),
            Check::IsAlive => (policy.is_alive_ms, 10),
            Check::Probe => (0, 0),
        };
        let env = self.environment(cx, interval_ms, Some(level));
        match self.call(host, cx, "monitor", env).await {
            Ok(result) => outcome("monitor", &result, cx.timeout_ms()),
            Err(outcome) => outcome,
        }
    }
}

impl Agent for OcfAgent {
    /// `validate-all`, then `start`: a configuration error is reported as such before the
    /// agent touches anything.
    fn start<'a>(
        &'a self,
        host: &'a HostHandle,
        cx: &'a OpContext,
    ) -> AgentFuture<'a, (Outcome, Option<Started>)> {
        Box::pin(async move {
            match self.action(host, cx, "validate-all").await {
                Outcome::Ok => (self.action(host, cx, "start").await, None),
                other => (other, None),
            }
        })
    }

    fn stop<'a>(&'a self, host: &'a HostHandle, cx: &'a OpContext) -> AgentFuture<'a, Outcome> {
        Box::pin(async move { self.action(host, cx, "stop").await })
    }

    fn check<'a>(
        &'a self,
        host: &'a HostHandle,
        cx: &'a OpContext,
        check: Check,
        _process: Option<Started>,
    ) -> AgentFuture<'a, Outcome> {
        Box::pin(async move { self.monitor(host, cx, check).await })
    }

    fn has_is_alive(&self, _resource: &Resource) -> bool {
        true
    }
}

pub fn ocf_root() -> PathBuf {
    std::env::var_os("OCF_ROOT").map_or_else(|| PathBuf::from(OCF_ROOT_DEFAULT), PathBuf::from)
}

/// Maps an action's exit onto an outcome (OCF API 1.1; `stop` of a stopped resource is fine;
/// ERR_CONFIGURED means no node can run it; ERR_ARGS and ERR_INSTALLED are this node's).
pub fn outcome(action: &str, result: &RunResult, timeout_ms: u64) -> Outcome {
    if result.timed_out {
        return Outcome::Failed(format!(
            "{action} timed out after {timeout_ms} ms; the agent was killed"
        ));
    }
    let Some(exit) = result.code else {
        let signal = result.signal.unwrap_or(0);
        return Outcome::Failed(format!("{action} was killed by signal {signal}"));
    };
    let message = message(action, exit, result);
    match (action, exit) {
        (_, code::SUCCESS) => Outcome::Ok,
        ("stop", code::NOT_RUNNING) => Outcome::Ok,
        ("monitor", code::NOT_RUNNING) => Outcome::NotRunning(message),
        ("monitor", code::RUNNING_PROMOTED) => Outcome::Ok,
        (_, code::ERR_CONFIGURED) => Outcome::Misconfigured(message),
        _ => Outcome::Failed(message),
    }
}

/// `monitor: not running (7): No process state file found`.
fn message(action: &str, exit: i32, result: &RunResult) -> String {
    let name = match exit {
        code::SUCCESS => "success",
        code::ERR_GENERIC => "generic error",
        code::ERR_ARGS => "invalid arguments on this node",
        code::ERR_UNIMPLEMENTED => "unimplemented action",
        code::ERR_PERM => "insufficient permissions",
        code::ERR_INSTALLED => "not installed on this node",
        code::ERR_CONFIGURED => "misconfigured",
        code::NOT_RUNNING => "not running",
        code::RUNNING_PROMOTED => "running promoted",
        code::FAILED_PROMOTED => "failed promoted",
        _ => "unknown exit code",
    };
    let logged = last_error_log(result);
    let reason = match (exit_reason(result), logged) {
        (Some(reason), Some(logged)) if !reason.contains(&logged) => {
            format!(": {reason}; {logged}")
        }
        (Some(reason), _) => format!(": {reason}"),
        (None, Some(logged)) => format!(": {logged}"),
        (None, None) => last_line(&result.stderr)
            .map(|line| format!(": {line}"))
            .unwrap_or_default(),
    };
    format!("{action}: {name} ({exit}){reason}")
}

/// The last `ERROR: ...` an agent logged to stderr: often more telling than its exit reason
/// (IPaddr2 logs "IP address [x] not valid." and gives "[findif] failed" as the reason).
fn last_error_log(result: &RunResult) -> Option<String> {
    result
        .stderr
        .lines()
        .rev()
        .find_map(|line| {
            line.split_once("ERROR: ")
                .map(|(_, text)| text.trim().to_string())
        })
        .filter(|text| !text.is_empty())
}

/// The last `ocf-exit-reason:` line an agent printed (stderr, or stdout for old agents).
pub fn exit_reason(result: &RunResult) -> Option<String> {
    [&result.stderr, &result.stdout]
        .into_iter()
        .find_map(|text| {
            text.lines()
                .rev()
                .find_map(|line| line.trim().strip_prefix(EXIT_REASON))
                .map(|reason| reason.trim().to_string())
        })
}

/// Runs the agent's `meta-data` action in the resource host and parses it.
pub async fn metadata(
    host: &HostHandle,
    provider: &str,
    agent: &str,
) -> Result<AgentMetadata, OcfError> {
    let ocf = OcfAgent::new(provider, agent);
    let path = ocf.path();
    let name = format!("ocf:{provider}:{agent}");
    if !path.is_file() {
        return Err(OcfError::NotInstalled { path });
    }
    let env = BTreeMap::from([
        ("OCF_ROOT".to_string(), ocf_root().display().to_string()),
        ("OCF_RESOURCE_INSTANCE".to_string(), "meta-data".to_string()),
    ]);
    let request = RunRequest {
        label: format!("{name} meta-data"),
        program: path.display().to_string(),
        args: vec!["meta-data".into()],
        env,
        timeout_ms: METADATA_TIMEOUT_MS,
        ..RunRequest::default()
    };
    let result = host.run(request).await.map_err(|source| OcfError::Host {
        agent: name.clone(),
        source,
    })?;
    if result.code != Some(code::SUCCESS) {
        let why = message("meta-data", result.code.unwrap_or(-1), &result);
        return Err(OcfError::MetaData { agent: name, why });
    }
    metadata::parse(&result.stdout).map_err(|why| OcfError::MetaData { agent: name, why })
}

/// Every installed agent, as `ocf:PROVIDER:AGENT`, sorted.
pub fn installed_agents() -> Vec<String> {
    let mut agents = Vec::new();
    let Ok(providers) = std::fs::read_dir(ocf_root().join("resource.d")) else {
        return agents;
    };
    for provider in providers.flatten() {
        let Ok(entries) = std::fs::read_dir(provider.path()) else {
            continue;
        };
        let provider = provider.file_name().to_string_lossy().into_owned();
        for entry in entries.flatten() {
            let is_file = entry
                .file_type()
                .is_ok_and(|t| t.is_file() || t.is_symlink());
            let agent = entry.file_name().to_string_lossy().into_owned();
            if is_file && !agent.starts_with('.') {
                agents.push(format!("ocf:{provider}:{agent}"));
            }
        }
    }
    agents.sort();
    agents
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: i32, stderr: &str) -> RunResult {
        RunResult {
            code: Some(code),
            stderr: stderr.to_string(),
            ..RunResult::default()
        }
    }

    #[test]
    fn exit_codes_map_to_outcomes() {
        // Checks the OCF codes the resource states depend on, per action.
        assert_eq!(outcome("start", &exited(0, ""), 1), Outcome::Ok);
        assert_eq!(outcome("stop", &exited(7, ""), 1), Outcome::Ok);
        let monitor = outcome("monitor", &exited(7, "ocf-exit-reason:No state file\n"), 1);
        assert_eq!(
            monitor,
            Outcome::NotRunning("monitor: not running (7): No state file".into())
        );
        let bad = outcome(
            "validate-all",
            &exited(6, "x\nocf-exit-reason:IP [no] not valid.\n"),
            1,
        );
        assert_eq!(
            bad,
            Outcome::Misconfigured("validate-all: misconfigured (6): IP [no] not valid.".into())
        );
        assert!(matches!(
            outcome("start", &exited(2, ""), 1),
            Outcome::Failed(_)
        ));
        assert!(matches!(
            outcome("start", &exited(5, ""), 1),
            Outcome::Failed(_)
        ));
        let hung = RunResult {
            timed_out: true,
            signal: Some(9),
            ..RunResult::default()
        };
        assert_eq!(
            outcome("start", &hung, 1500),
            Outcome::Failed("start timed out after 1500 ms; the agent was killed".into())
        );
    }

    #[test]
    fn the_last_exit_reason_wins() {
        // Checks agents that print several reasons report the last one.
        let result = exited(
            1,
            "ocf-exit-reason:first\nnoise\nocf-exit-reason: second \n",
        );
        assert_eq!(exit_reason(&result).as_deref(), Some("second"));
        assert_eq!(exit_reason(&exited(1, "plain\n")), None);
    }
}
