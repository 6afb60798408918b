//! The ledger: an append-only store outside the cluster, in the control namespace, that every
//! writer reaches over the bridge. Like a fencing-aware store (or a SCSI reservation) it
//! accepts a write only if its generation is at least the highest it has seen for the group,
//! and it keeps the rejected stale writes apart. Plain threads, one per connection: the
//! ledger must keep answering whatever the harness' runtime is busy with.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Port of the ledger on the control namespace's address.
pub const LEDGER_PORT: u16 = 7600;
/// Entries kept per run; beyond it writes are answered but only counted.
const ENTRIES_MAX: usize = 2_000_000;
/// Connections served at once (writers of every group of one run, plus stragglers).
const CONNECTIONS_MAX: usize = 256;

/// One record a writer appends while it believes its group is online here.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Write {
    /// Which schedule started the writer (records of any other run are refused).
    pub run: String,
    pub node: String,
    pub group: String,
    /// The fencing token the cluster handed this instance (BATON_GENERATION).
    pub generation: u64,
    pub wall_ms: u64,
    /// CLOCK_MONOTONIC when the writer sent it.
    pub mono_ns: u64,
    pub seq: u64,
    /// Random per writer process: two instances are never confused.
    pub instance: u64,
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub write: Write,
    pub accepted: bool,
}

#[derive(Default)]
struct State {
    run: String,
    highest: BTreeMap<String, u64>,
    entries: Vec<Entry>,
    dropped_count: u64,
    connections: usize,
}

#[derive(Clone)]
pub struct Ledger {
    state: Arc<Mutex<State>>,
    pub addr: SocketAddr,
}

impl Ledger {
    /// Listens on `addr` and serves writers until the process ends.
    pub fn start(addr: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind(addr).with_context(|| format!("ledger on {addr}"))?;
        let ledger = Self {
            state: Arc::default(),
            addr,
        };
        let serving = ledger.clone();
        std::thread::Builder::new()
            .name("ledger".into())
            .spawn(move || serving.accept(listener))?;
        Ok(ledger)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a new run: forgets every entry and generation.
    pub fn begin(&self, run: &str) {
        let mut state = self.lock();
        *state = State {
            run: run.to_string(),
            connections: state.connections,
            ..State::default()
        };
    }

    /// Ends the run: returns its entries (in the order the ledger decided them) and how many
    /// were not kept for lack of room.
    pub fn finish(&self) -> (Vec<Entry>, u64) {
        let mut state = self.lock();
        state.run.clear();
        (std::mem::take(&mut state.entries), state.dropped_count)
    }

    fn accept(&self, listener: TcpListener) {
        for stream in listener.incoming().flatten() {
            if self.lock().connections >= CONNECTIONS_MAX {
                continue;
            }
            self.lock().connections += 1;
            let ledger = self.clone();
            let spawned = std::thread::Builder::new()
                .name("ledger-conn".into())
                .spawn(move || {
                    ledger.serve(stream);
                    ledger.lock().connections -= 1;
                });
            if spawned.is_err() {
                self.lock().connections -= 1;
            }
        }
    }

    /// One JSON line in, one word out: `ok`, `stale` or `refused`.
    fn serve(&self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
        let Ok(mut reply) = stream.try_clone() else {
            return;
        };
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            let answer = match serde_json::from_str::<Write>(&line) {
                Ok(write) => self.decide(write),
                Err(_) => "refused",
            };
            if reply.write_all(format!("{answer}\n").as_bytes()).is_err() {
                return;
            }
        }
    }

    /// The fencing rule, under the lock so that decisions are totally ordered.
    fn decide(&self, write: Write) -> &'static str {
        let mut state = self.lock();
        if write.run != state.run {
            return "refused";
        }
        let highest = state.highest.entry(write.group.clone()).or_insert(0);
        let accepted = write.generation >= *highest;
        *highest = (*highest).max(write.generation);
        if state.entries.len() < ENTRIES_MAX {
            state.entries.push(Entry { write, accepted });
        } else {
            state.dropped_count += 1;
        }
        if accepted {
            "ok"
        } else {
            "stale"
        }
    }
}
