//! `systemd`: a unit (`unit` parameter), started and stopped with `systemctl`, checked with
//! `systemctl is-active`. systemctl runs inside the resource host like any agent, so a hung
//! D-Bus call is killed at the resource's timeout. Needs systemd as PID 1; elsewhere every
//! call fails with systemctl's own explanation.

use std::path::Path;

use baton_host::{HostHandle, RunRequest, Started};
use baton_model::Resource;

use crate::{host_error, last_line, Agent, AgentFuture, Check, OpContext, Outcome};

const SYSTEMCTL: &str = "systemctl";

pub struct SystemdAgent;

/// Whether systemd runs this machine (the test sd_booted(3) uses).
pub fn systemd_is_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

impl Agent for SystemdAgent {
    fn start<'a>(
        &'a self,
        host: &'a HostHandle,
        cx: &'a OpContext,
    ) -> AgentFuture<'a, (Outcome, Option<Started>)> {
        Box::pin(async move { (systemctl(host, cx, "start", true).await, None) })
    }

    fn stop<'a>(&'a self, host: &'a HostHandle, cx: &'a OpContext) -> AgentFuture<'a, Outcome> {
        Box::pin(async move { systemctl(host, cx, "stop", false).await })
    }

    fn check<'a>(
        &'a self,
        host: &'a HostHandle,
        cx: &'a OpContext,
        _check: Check,
        _process: Option<Started>,
    ) -> AgentFuture<'a, Outcome> {
        Box::pin(async move { systemctl(host, cx, "is-active", false).await })
    }

    fn has_is_alive(&self, _resource: &Resource) -> bool {
        false
    }
}

/// The command line of one call: `systemctl ACTION UNIT`.
pub fn command(unit: &str, action: &str) -> Vec<String> {
    vec![action.to_string(), "--".to_string(), unit.to_string()]
}

async fn systemctl(host: &HostHandle, cx: &OpContext, action: &str, needs_lease: bool) -> Outcome {
    let Some(unit) = cx.resource.params.get("unit") else {
        return Outcome::Misconfigured("parameter `unit` is not set".into());
    };
    let request = RunRequest {
        label: format!("{} {action}", cx.resource.name),
        program: SYSTEMCTL.into(),
        args: command(unit, action),
        timeout_ms: cx.timeout_ms(),
        needs_lease,
        output_max: Some(4096),
        ..RunRequest::default()
    };
    let result = match host.run(request).await {
        Ok(result) => result,
        Err(error) => return host_error(action, error),
    };
    if result.timed_out {
        return Outcome::Failed(format!(
            "systemctl {action} {unit} timed out after {} ms and was killed",
            cx.timeout_ms()
        ));
    }
    let said = last_line(&result.stderr)
        .or_else(|| last_line(&result.stdout))
        .unwrap_or("no output")
        .to_string();
    // is-active prints the unit's state (inactive, failed, activating...) on stdout.
    let state = last_line(&result.stdout).filter(|s| !s.contains(' '));
    match (action, result.code, state) {
        (_, Some(0), _) => Outcome::Ok,
        ("is-active", Some(_), Some(state)) => {
            Outcome::NotRunning(format!("unit {unit} is {state}"))
        }
        (_, code, _) => Outcome::Failed(format!(
            "systemctl {action} {unit} failed ({}): {said}",
            code.map_or_else(|| "killed".to_string(), |c| format!("exit {c}"))
        )),
    }
}

/// The parameters of the `systemd` type, for `baton resource-type show systemd`.
pub fn metadata() -> crate::AgentMetadata {
    crate::AgentMetadata {
        name: "systemd".into(),
        shortdesc: "A systemd unit, started and stopped with systemctl".into(),
        longdesc: "LooksAlive: systemctl is-active. Needs systemd as PID 1.".into(),
        parameters: vec![crate::ParameterInfo {
            name: "unit".into(),
            required: true,
            unique: true,
            shortdesc: "the unit, e.g. nginx.service".into(),
            content_type: "string".into(),
            default: None,
        }],
        actions: ["start", "stop", "is-active"].map(String::from).to_vec(),
    }
}
