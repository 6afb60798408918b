//! Output to the daemon (stdout), written by a thread of its own.
//!
//! A hung or stopped daemon stops reading our stdout; once the pipe fills,
//! writes block. Only this thread may block on that: the main loop must keep
//! enforcing the lease, so everyone else just queues lines.

use std::io::{self, Write};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde::Serialize;

enum Message {
    Line(String),
    /// Answered once every line queued before it is written.
    Flush(mpsc::Sender<()>),
}

#[derive(Clone)]
pub struct Outbox {
    queue: mpsc::Sender<Message>,
}

impl Outbox {
    pub fn start() -> io::Result<Outbox> {
        let (queue, lines) = mpsc::channel();
        thread::Builder::new()
            .name("host-stdout".into())
            .spawn(move || write_lines(lines))?;
        Ok(Outbox { queue })
    }

    /// Queues one JSON line.
    pub fn send(&self, message: &impl Serialize) {
        match serde_json::to_string(message) {
            // If the writer is gone, stdout is broken and the daemon with it.
            Ok(line) => _ = self.queue.send(Message::Line(line)),
            Err(err) => log!("cannot encode a message: {err}"),
        }
    }

    /// Waits (at most `limit`) until everything queued so far is written.
    pub fn flush(&self, limit: Duration) {
        let (done, wait) = mpsc::channel();
        if self.queue.send(Message::Flush(done)).is_ok() {
            _ = wait.recv_timeout(limit);
        }
    }
}

fn write_lines(lines: mpsc::Receiver<Message>) {
    let mut out = io::stdout().lock();
    for message in lines {
        match message {
            Message::Line(line) => {
                if let Err(err) = writeln!(out, "{line}").and_then(|()| out.flush()) {
                    log!("cannot write to the daemon: {err}");
                    return;
                }
            }
            Message::Flush(done) => _ = done.send(()),
        }
    }
}
