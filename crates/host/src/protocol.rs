//! The JSON-lines protocol between the daemon and the resource host.
//!
//! Requests go down the host's stdin, one object per line, each with an `id`
//! and an `op`. Every request gets exactly one response line with the same
//! `id`. Event lines (field `event`, no `id`) may come at any time.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The error text of a `start` refused for lack of a lease.
pub(crate) const NO_LEASE: &str = "no lease";

/// How to start one resource: `/bin/sh -c command` in a new session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartRequest {
    pub resource: String,
    /// A shell command line.
    pub command: String,
    /// Added to the host's environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory; the host's when absent.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// File that stdout and stderr are appended to; /dev/null when absent.
    #[serde(default)]
    pub log: Option<PathBuf>,
    /// Run as this user (name) instead of the host's.
    #[serde(default)]
    pub user: Option<String>,
}

/// One agent call: a program run to completion (or killed with its whole process group at
/// `timeout_ms`), with the tails of its output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRequest {
    /// What the call is for, in logs: `web-ip start`.
    pub label: String,
    pub program: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Added to the host's environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    #[serde(default)]
    pub user: Option<String>,
    pub timeout_ms: u64,
    /// Refused without a lease: calls that bring something online (an agent's start).
    #[serde(default)]
    pub needs_lease: bool,
    /// Bytes kept of the end of stdout and of stderr (default and cap: `OUTPUT_MAX`).
    #[serde(default)]
    pub output_max: Option<usize>,
}

/// Most output kept of one stream of a run: enough for any agent's meta-data.
pub const OUTPUT_MAX: usize = 256 * 1024;

/// How a run ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResult {
    /// Exit status, when it exited normally.
    pub code: Option<i32>,
    /// Signal number, when a signal killed it.
    pub signal: Option<i32>,
    /// It overran its timeout and its process group was killed.
    pub timed_out: bool,
    /// The end of its stdout and stderr (lossy UTF-8).
    pub stdout: String,
    pub stderr: String,
    pub duration_ms: u64,
}

/// Take over a resource process a previous host started (after that host died): the new
/// host watches it and enforces the lease on it again. `start_ticks` (from
/// /proc/PID/stat) proves the pid was not reused meanwhile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptRequest {
    pub resource: String,
    pub pid: u32,
    pub start_ticks: u64,
}

/// A resource process the host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// Its pid, which is also its process group id.
    pub pid: u32,
    /// Its start time in clock ticks since boot (/proc/PID/stat field 22): with the pid, it
    /// names the process for good.
    pub start_ticks: u64,
}

/// Something that happened in the host, reported without being asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum HostEvent {
    /// A resource's leader process ended and was reaped.
    Exited {
        resource: String,
        pid: u32,
        /// Exit status, when it exited normally.
        code: Option<i32>,
        /// Signal number, when a signal killed it.
        signal: Option<i32>,
    },
    /// The lease ran out (or was revoked): every resource was killed.
    LeaseExpired { killed: Vec<String> },
    /// The host process `pid` is gone. Made by the daemon side, never sent.
    #[serde(skip)]
    HostExited { pid: u32 },
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    pub id: u64,
    #[serde(flatten)]
    pub op: Op,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Op {
    Start(StartRequest),
    Run(RunRequest),
    Adopt(AdoptRequest),
    Stop { resource: String, timeout_ms: u64 },
    Status,
    StopAll { timeout_ms: u64 },
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Response {
    pub id: u64,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `start`: the resource's pid (= its process group id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// `start`: the resource's start time (see `Started`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ticks: Option<u64>,
    /// `run`: how the program ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunResult>,
    /// `status`: the running resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<Running>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Running {
    pub resource: String,
    pub pid: u32,
    #[serde(default)]
    pub start_ticks: u64,
}

impl Response {
    pub fn ok(id: u64) -> Response {
        Response {
            id,
            ok: true,
            ..Response::default()
        }
    }

    pub fn error(id: u64, error: impl Into<String>) -> Response {
        Response {
            id,
            ok: false,
            error: Some(error.into()),
            ..Response::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_have_the_documented_shape() {
        let req = Request {
            id: 7,
            op: Op::Start(StartRequest {
                resource: "web".into(),
                command: "sleep 1".into(),
                ..StartRequest::default()
            }),
        };
        let value = serde_json::to_value(&req).unwrap();
        assert_eq!(value["op"], "start");
        assert_eq!(value["id"], 7);
        assert_eq!(value["resource"], "web");

        let stop: Request =
            serde_json::from_value(json!({"op":"stop","id":3,"resource":"web","timeout_ms":50}))
                .unwrap();
        assert!(matches!(stop.op, Op::Stop { timeout_ms: 50, .. }));
        let status: Request = serde_json::from_value(json!({"op":"status","id":4})).unwrap();
        assert!(matches!(status.op, Op::Status));
        let start: Request =
            serde_json::from_value(json!({"op":"start","id":5,"resource":"a","command":"true"}))
                .unwrap();
        assert!(matches!(
            start.op,
            Op::Start(StartRequest { log: None, .. })
        ));
    }

    #[test]
    fn events_have_the_documented_shape() {
        let exited = HostEvent::Exited {
            resource: "web".into(),
            pid: 42,
            code: Some(1),
            signal: None,
        };
        let value = serde_json::to_value(&exited).unwrap();
        assert_eq!(
            value,
            json!({"event":"exited","resource":"web","pid":42,"code":1,"signal":null})
        );
        let expired: HostEvent =
            serde_json::from_value(json!({"event":"lease_expired","killed":["a"]})).unwrap();
        assert_eq!(
            expired,
            HostEvent::LeaseExpired {
                killed: vec!["a".into()]
            }
        );
    }

    #[test]
    fn responses_omit_empty_fields() {
        let line = serde_json::to_string(&Response::ok(1)).unwrap();
        assert_eq!(line, r#"{"id":1,"ok":true}"#);
        let line = serde_json::to_string(&Response::error(2, NO_LEASE)).unwrap();
        assert_eq!(line, r#"{"id":2,"ok":false,"error":"no lease"}"#);
    }
}
