//! The workload resource. While the cluster runs it (so while it believes its group is online
//! on this node) it appends a record every few milliseconds to the ledger: node, group,
//! generation (BATON_GENERATION, the fencing token), wall time, monotonic time, sequence.
//! It keeps writing after a `stale` answer: how long a fenced-off instance went on is part of
//! what the checker reports.

use std::io::{BufRead, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use crate::clock::{mono_ns, wall_ms};
use crate::ledger::Write;

const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

pub fn run(ledger: SocketAddr, interval_ms: u64) -> ExitCode {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let generation = var("BATON_GENERATION").parse().unwrap_or(0);
    if var("BATON_GROUP").is_empty() || generation == 0 {
        eprintln!("baton-chaos writer: BATON_GROUP and BATON_GENERATION must be set (it runs as a baton resource)");
        return ExitCode::from(2);
    }
    let mut record = Write {
        run: var("CHAOS_RUN"),
        node: var("BATON_NODE"),
        group: var("BATON_GROUP"),
        generation,
        wall_ms: 0,
        mono_ns: 0,
        seq: 0,
        instance: instance_id(),
    };
    let mut connection: Option<(TcpStream, BufReader<TcpStream>)> = None;
    loop {
        if connection.is_none() {
            connection = connect(ledger);
        }
        if let Some((stream, answers)) = connection.as_mut() {
            record.seq += 1;
            record.wall_ms = wall_ms();
            record.mono_ns = mono_ns();
            if append(stream, answers, &record).is_err() {
                connection = None;
            }
        }
        std::thread::sleep(Duration::from_millis(interval_ms));
    }
}

fn connect(ledger: SocketAddr) -> Option<(TcpStream, BufReader<TcpStream>)> {
    let stream = TcpStream::connect_timeout(&ledger, CONNECT_TIMEOUT).ok()?;
    stream.set_nodelay(true).ok()?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT)).ok()?;
    let answers = BufReader::new(stream.try_clone().ok()?);
    Some((stream, answers))
}

/// Sends one record and waits for the ledger's verdict, so at most one write is in flight.
fn append(
    stream: &mut TcpStream,
    answers: &mut BufReader<TcpStream>,
    record: &Write,
) -> std::io::Result<()> {
    let mut line = serde_json::to_string(record)?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut answer = String::new();
    if answers.read_line(&mut answer)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Distinct per process: pid and the monotonic clock at start.
fn instance_id() -> u64 {
    (u64::from(std::process::id()) << 40) ^ mono_ns()
}
