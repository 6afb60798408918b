//! Lease bookkeeping: the latest deadline the daemon sent, and whether the
//! lease we acted on is still good.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::KILL_MARGIN;

#[derive(Debug, Default)]
pub struct Lease {
    /// CLOCK_MONOTONIC ns; 0 = no lease.
    deadline_ns: u64,
    /// The lease was valid when last looked at, so resources may be running
    /// under it and must be killed when it lapses.
    live: bool,
}

impl Lease {
    /// Resources may run at `now`: we are before the kill point.
    pub fn valid_at(&self, now_ns: u64) -> bool {
        self.deadline_ns != 0 && now_ns < self.kill_point()
    }

    fn kill_point(&self) -> u64 {
        let margin = KILL_MARGIN.as_nanos() as u64;
        self.deadline_ns.saturating_sub(margin)
    }

    /// Whether a live lease has lapsed at `now`; if so it is no longer live.
    pub fn lapsed(&mut self, now_ns: u64) -> bool {
        let lapsed = self.live && !self.valid_at(now_ns);
        if lapsed {
            self.live = false;
        }
        lapsed
    }

    /// Takes a new deadline. Returns whether that revoked a live lease (the
    /// deadline is 0 or already past), which the caller must enforce.
    pub fn renew(&mut self, deadline_ns: u64, now_ns: u64) -> bool {
        self.deadline_ns = deadline_ns;
        let valid = self.valid_at(now_ns);
        let revoked = self.live && !valid;
        self.live = valid;
        revoked
    }

    /// How long until the main loop must look again.
    pub fn time_to_kill_point(&self, now_ns: u64) -> Option<Duration> {
        self.live
            .then(|| Duration::from_nanos(self.kill_point().saturating_sub(now_ns)))
    }
}

/// The newest deadline waiting on the lease socket, if any. Datagrams arrive
/// in order, so the last one wins (a revocation must beat older renewals).
pub fn read_latest(socket: &UnixDatagram) -> Option<u64> {
    let mut latest = None;
    let mut buf = [0u8; 16];
    loop {
        match socket.recv(&mut buf) {
            Ok(8) => {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(&buf[..8]);
                latest = Some(u64::from_le_bytes(bytes));
            }
            Ok(n) => log!("ignoring a {n}-byte lease datagram"),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return latest,
            Err(err) => {
                log!("cannot read the lease socket: {err}");
                return latest;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn no_lease_at_first() {
        let lease = Lease::default();
        assert!(!lease.valid_at(1));
        assert_eq!(lease.time_to_kill_point(1), None);
    }

    #[test]
    fn lapses_kill_margin_before_the_deadline() {
        let mut lease = Lease::default();
        assert!(!lease.renew(1000 * MS, 0));
        assert!(lease.valid_at(969 * MS));
        assert_eq!(
            lease.time_to_kill_point(900 * MS),
            Some(Duration::from_millis(70))
        );
        assert!(!lease.lapsed(969 * MS));
        assert!(lease.lapsed(970 * MS));
        // Reported once.
        assert!(!lease.lapsed(980 * MS));
    }

    #[test]
    fn zero_or_past_deadline_revokes() {
        let mut lease = Lease::default();
        lease.renew(1000 * MS, 0);
        assert!(lease.renew(0, 10 * MS));
        assert!(!lease.valid_at(10 * MS));
        lease.renew(1000 * MS, 10 * MS);
        assert!(lease.renew(500 * MS, 490 * MS));
        // Nothing live to revoke.
        assert!(!lease.renew(0, 500 * MS));
    }
}
