//! Requests from the daemon: read from stdin, one JSON object a line.

use std::io::{self, BufRead};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::run;
use super::state::Shared;
use super::stop::{self, Targets};
use crate::protocol::{Op, Request, Response, Running};

/// Reads requests until stdin ends, then tells the main loop to shut down:
/// EOF means the daemon is gone.
pub fn spawn_reader(shared: Arc<Shared>) -> io::Result<()> {
    let reader = move || {
        read_requests(&shared);
        shared.close();
    };
    thread::Builder::new()
        .name("host-stdin".into())
        .spawn(reader)?;
    Ok(())
}

fn read_requests(shared: &Arc<Shared>) {
    let mut input = io::stdin().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => handle_line(shared, &line),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => {
                log!("cannot read requests: {err}");
                return;
            }
        }
    }
}

fn handle_line(shared: &Arc<Shared>, line: &[u8]) {
    if line.trim_ascii().is_empty() {
        return;
    }
    match serde_json::from_slice::<Request>(line) {
        Ok(request) => dispatch(shared, request.id, request.op),
        Err(err) => refuse_malformed(shared, line, &err),
    }
}

/// Answers a malformed request if it at least has an id; logs it otherwise.
fn refuse_malformed(shared: &Shared, line: &[u8], err: &serde_json::Error) {
    let value: Option<serde_json::Value> = serde_json::from_slice(line).ok();
    match value.as_ref().and_then(|v| v.get("id")?.as_u64()) {
        Some(id) => shared
            .lock()
            .out
            .send(&Response::error(id, format!("bad request: {err}"))),
        None => log!("ignoring a bad request: {err}"),
    }
}

fn dispatch(shared: &Arc<Shared>, id: u64, op: Op) {
    match op {
        Op::Start(req) => {
            let mut state = shared.lock();
            let response = match state.start(&req) {
                Ok(proc) => Response {
                    pid: Some(proc.pid),
                    start_ticks: Some(proc.start_ticks),
                    ..Response::ok(id)
                },
                Err(err) => Response::error(id, err),
            };
            // Sent under the lock, so it precedes the resource's exit event.
            state.out.send(&response);
        }
        Op::Run(req) => run::spawn_run(shared, id, req),
        Op::Adopt(req) => {
            let mut state = shared.lock();
            let response = match state.adopt(&req) {
                Ok(()) => Response::ok(id),
                Err(err) => Response::error(id, err),
            };
            state.out.send(&response);
        }
        Op::Status => {
            let mut state = shared.lock();
            // A zombie is dead, not running.
            state.reap();
            let running = state.running().into_iter();
            let resources = running.map(|(resource, proc)| Running {
                resource,
                pid: proc.pid,
                start_ticks: proc.start_ticks,
            });
            let response = Response {
                resources: Some(resources.collect()),
                ..Response::ok(id)
            };
            state.out.send(&response);
        }
        Op::Stop {
            resource,
            timeout_ms,
        } => {
            let state = shared.lock();
            let resources = state
                .running()
                .into_iter()
                .filter(|(name, _)| *name == resource);
            let targets = Targets {
                resources: resources.collect(),
                everything: false,
            };
            drop(state);
            spawn_stop(shared, id, targets, Duration::from_millis(timeout_ms));
        }
        Op::StopAll { timeout_ms } => {
            let targets = Targets {
                resources: shared.lock().running(),
                everything: true,
            };
            spawn_stop(shared, id, targets, Duration::from_millis(timeout_ms));
        }
    }
}

/// Stops take up to their timeout, so they run on their own thread and the
/// next request is read meanwhile.
fn spawn_stop(shared: &Arc<Shared>, id: u64, targets: Targets, grace: Duration) {
    let stopper = {
        let shared = Arc::clone(shared);
        move || {
            let response = match stop::stop(&shared, &targets, grace) {
                Ok(()) => Response::ok(id),
                Err(err) => Response::error(id, err),
            };
            shared.lock().out.send(&response);
        }
    };
    if let Err(err) = thread::Builder::new()
        .name("host-stop".into())
        .spawn(stopper)
    {
        let response = Response::error(id, format!("cannot stop: {err}"));
        shared.lock().out.send(&response);
    }
}
