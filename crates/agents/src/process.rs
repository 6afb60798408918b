//! `process`: a generic application. `command` (plus `args`) runs under `/bin/sh -c` in a
//! session of its own, with `env.NAME` parameters and the `BATON_*` variables in its
//! environment, in `cwd`, as `user`. LooksAlive: the process is alive. IsAlive: the optional
//! `check` command (exit 0 = healthy), `check_tcp` (HOST:PORT accepts a connection) or
//! `check_http` (an http:// URL answers 2xx or 3xx).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use baton_host::{AdoptRequest, HostError, HostHandle, RunRequest, StartRequest, Started};
use baton_model::Resource;

use crate::{host_error, last_line, probe, Agent, AgentFuture, Check, OpContext, Outcome};

/// Grace between SIGTERM and SIGKILL when `stop_timeout` is not set.
pub const STOP_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

pub struct ProcessAgent;

impl Agent for ProcessAgent {
    fn start<'a>(
        &'a self,
        host: &'a HostHandle,
        cx: &'a OpContext,
    ) -> AgentFuture<'a, (Outcome, Option<Started>)> {
        Box::pin(async move {
            match host.start_process(start_request(cx)).await {
                Ok(started) => (Outcome::Ok, Some(started)),
                Err(error) => (host_error("start", error), None),
            }
        })
    }

    fn stop<'a>(&'a self, host: &'a HostHandle, cx: &'a OpContext) -> AgentFuture<'a, Outcome> {
        Box::pin(async move {
            let grace = stop_timeout(&cx.resource).min(cx.timeout);
            match host.stop(&cx.resource.name, grace).await {
                Ok(()) => Outcome::Ok,
                Err(error) => host_error("stop", error),
            }
        })
    }

    fn check<'a>(
        &'a self,
        host: &'a HostHandle,
        cx: &'a OpContext,
        check: Check,
        process: Option<Started>,
    ) -> AgentFuture<'a, Outcome> {
        Box::pin(async move {
            match check {
                Check::Probe => adopt(host, cx, process).await,
                Check::LooksAlive => running(host, cx).await,
                Check::IsAlive => match running(host, cx).await {
                    Outcome::Ok => is_alive(host, cx).await,
                    other => other,
                },
            }
        })
    }

    fn has_is_alive(&self, resource: &Resource) -> bool {
        ["check", "check_tcp", "check_http"]
            .iter()
            .any(|key| resource.params.contains_key(*key))
    }
}

/// LooksAlive: the host still has the process (it reports exits at once, too).
async fn running(host: &HostHandle, cx: &OpContext) -> Outcome {
    match host.status().await {
        Ok(running) if running.iter().any(|(name, _)| *name == cx.resource.name) => Outcome::Ok,
        Ok(_) => Outcome::NotRunning("the process is not running".into()),
        Err(error) => host_error("looks-alive", error),
    }
}

/// After the host was replaced: the process the old host started is adopted if it still
/// runs, so the new host watches it and enforces the lease on it.
async fn adopt(host: &HostHandle, cx: &OpContext, process: Option<Started>) -> Outcome {
    let Some(process) = process else {
        return running(host, cx).await;
    };
    let request = AdoptRequest {
        resource: cx.resource.name.clone(),
        pid: process.pid,
        start_ticks: process.start_ticks,
    };
    match host.adopt(request).await {
        Ok(()) => Outcome::Ok,
        Err(HostError::Refused(why)) => Outcome::NotRunning(why),
        Err(error) => host_error("adopt", error),
    }
}

async fn is_alive(host: &HostHandle, cx: &OpContext) -> Outcome {
    let params = &cx.resource.params;
    if let Some(command) = params.get("check") {
        return check_command(host, cx, command).await;
    }
    if let Some(addr) = params.get("check_tcp") {
        return probe::tcp(addr, cx.timeout).await;
    }
    if let Some(url) = params.get("check_http") {
        return probe::http(url, cx.timeout).await;
    }
    Outcome::Ok
}

/// The check command runs in the host with the process's environment, killed at the
/// resource's pending timeout.
async fn check_command(host: &HostHandle, cx: &OpContext, command: &str) -> Outcome {
    let request = RunRequest {
        label: format!("{} check", cx.resource.name),
        program: "/bin/sh".into(),
        args: vec!["-c".into(), command.into()],
        env: environment(cx),
        cwd: cx.resource.params.get("cwd").map(PathBuf::from),
        user: cx.resource.params.get("user").cloned(),
        timeout_ms: cx.timeout_ms(),
        needs_lease: false,
        output_max: Some(4096),
    };
    let result = match host.run(request).await {
        Ok(result) => result,
        Err(error) => return host_error("check", error),
    };
    if result.timed_out {
        return Outcome::Failed(format!(
            "check `{command}` timed out after {} ms and was killed",
            cx.timeout_ms()
        ));
    }
    match result.code {
        Some(0) => Outcome::Ok,
        code => {
            let how = code.map_or_else(
                || format!("was killed by signal {}", result.signal.unwrap_or(0)),
                |c| format!("exited with code {c}"),
            );
            let said = last_line(&result.stderr)
                .or_else(|| last_line(&result.stdout))
                .map(|line| format!(": {line}"))
                .unwrap_or_default();
            Outcome::Failed(format!("check `{command}` {how}{said}"))
        }
    }
}

/// `env.NAME` parameters, then the `BATON_*` variables (which win).
fn environment(cx: &OpContext) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = cx
        .resource
        .params
        .iter()
        .filter_map(|(key, value)| Some((key.strip_prefix("env.")?.to_string(), value.clone())))
        .collect();
    env.extend(cx.env.clone());
    env
}

pub fn start_request(cx: &OpContext) -> StartRequest {
    let params = &cx.resource.params;
    let command = params.get("command").cloned().unwrap_or_default();
    let command = match params.get("args") {
        Some(args) if !args.trim().is_empty() => format!("{command} {args}"),
        _ => command,
    };
    StartRequest {
        resource: cx.resource.name.clone(),
        command,
        env: environment(cx),
        cwd: params.get("cwd").map(PathBuf::from),
        log: cx.log.clone(),
        user: params.get("user").cloned(),
    }
}

/// `stop_timeout` parameter, or the default grace.
pub fn stop_timeout(resource: &Resource) -> Duration {
    let parsed = resource
        .params
        .get("stop_timeout")
        .and_then(|text| baton_model::settings::parse_duration_ms(text));
    parsed.map_or(STOP_TIMEOUT_DEFAULT, Duration::from_millis)
}

/// The parameters of the `process` type, for `baton resource-type show process`.
pub fn metadata() -> crate::AgentMetadata {
    let parameters = [
        (
            "command",
            true,
            "shell command line run by /bin/sh -c (use exec for a long-running program)",
        ),
        ("args", false, "appended to the command line after a space"),
        ("cwd", false, "working directory"),
        ("user", false, "run as this user (and as its primary group)"),
        (
            "stop_timeout",
            false,
            "grace between SIGTERM and SIGKILL on stop (default 10s)",
        ),
        (
            "check",
            false,
            "IsAlive: a shell command that exits 0 while the resource is healthy",
        ),
        (
            "check_tcp",
            false,
            "IsAlive: HOST:PORT that must accept a TCP connection",
        ),
        (
            "check_http",
            false,
            "IsAlive: an http:// URL that must answer 2xx or 3xx",
        ),
        (
            "env.NAME",
            false,
            "environment variable NAME of the process and its check",
        ),
    ];
    crate::AgentMetadata {
        name: "process".into(),
        shortdesc: "A generic application: a process run in a session of its own".into(),
        longdesc: "LooksAlive: the process is alive. IsAlive: its check, check_tcp or \
                   check_http, if one is set. It receives BATON_GROUP, BATON_RESOURCE, \
                   BATON_NODE and BATON_GENERATION (the fencing token) in its environment."
            .into(),
        parameters: parameters
            .into_iter()
            .map(|(name, required, shortdesc)| crate::ParameterInfo {
                name: name.into(),
                required,
                unique: false,
                shortdesc: shortdesc.into(),
                content_type: "string".into(),
                default: None,
            })
            .collect(),
        actions: ["start", "stop", "looks-alive", "is-alive"]
            .map(String::from)
            .to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_matches_the_models_parameters() {
        // Checks `resource-type show process` lists exactly what the model accepts.
        let metadata = metadata();
        let required: Vec<&str> = metadata.required().map(|p| p.name.as_str()).collect();
        assert_eq!(required, baton_model::PROCESS_REQUIRED);
        let optional: Vec<&str> = metadata
            .parameters
            .iter()
            .filter(|p| !p.required && p.name != "env.NAME")
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(optional, baton_model::PROCESS_OPTIONAL);
    }
}
