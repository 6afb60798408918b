//! The heartbeat thread: a plain OS thread with its own UDP socket, so no async work, lock
//! held by the runtime, or busy executor can starve it. It renews the resource host's lease
//! directly, which is what stops resources when the daemon hangs or is paused.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use baton_host::LeaseSender;
use baton_membership::{Membership, NodeId, Packet, PacketKind, PACKET_BODY_LEN};
use ring::hmac;

use crate::clock::mono_ms;

const MAC_LEN: usize = 32;
const PACKET_LEN: usize = PACKET_BODY_LEN + MAC_LEN;

/// What the heartbeat thread shares with the rest of the daemon. Every lock is held for a
/// few microseconds and never across I/O or an await.
pub struct Heartbeat {
    pub membership: Mutex<Membership>,
    pub peer_addrs: Mutex<BTreeMap<NodeId, SocketAddr>>,
    pub stop: AtomicBool,
    self_id: NodeId,
    incarnation: u64,
    key: hmac::Key,
    lease: LeaseSender,
}

impl Heartbeat {
    pub fn new(
        self_id: NodeId,
        key: &[u8],
        incarnation: u64,
        lease: LeaseSender,
        quiet_ms: u64,
    ) -> Arc<Self> {
        Arc::new(Self {
            membership: Mutex::new(Membership::new(self_id, mono_ms(), quiet_ms)),
            peer_addrs: Mutex::new(BTreeMap::new()),
            stop: AtomicBool::new(false),
            self_id,
            incarnation,
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            lease,
        })
    }

    /// The membership state. A poisoned lock means a panic in safety code: stop the node.
    pub fn membership(&self) -> MutexGuard<'_, Membership> {
        self.membership
            .lock()
            .unwrap_or_else(|_| std::process::abort())
    }

    /// Starts the thread on an already bound socket.
    pub fn spawn(
        self: &Arc<Self>,
        socket: UdpSocket,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let heartbeat = Arc::clone(self);
        std::thread::Builder::new()
            .name("heartbeat".into())
            .spawn(move || heartbeat.run(socket))
    }

    fn run(&self, socket: UdpSocket) {
        let mut next_tick = mono_ms();
        let mut lease_sent = None;
        while !self.stop.load(Ordering::Relaxed) {
            let now = mono_ms();
            if now >= next_tick {
                let tick_ms = self.tick(&socket, now.saturating_sub(next_tick));
                next_tick = now + tick_ms;
            }
            self.push_lease(&mut lease_sent);
            let wait = next_tick.saturating_sub(mono_ms()).max(1);
            let _ = socket.set_read_timeout(Some(Duration::from_millis(wait)));
            let mut buffer = [0u8; PACKET_LEN + 1];
            if let Ok((length, from)) = socket.recv_from(&mut buffer) {
                self.receive(&socket, &buffer[..length], from);
                self.push_lease(&mut lease_sent);
            }
        }
        self.lease.revoke();
    }

    /// One round: send heartbeats to the peers that are due. Returns the next tick interval.
    fn tick(&self, socket: &UdpSocket, late_ms: u64) -> u64 {
        let (seq, due, tick_ms) = {
            let mut membership = self.membership();
            membership.note_tick(late_ms);
            let (seq, due) = membership.start_round(mono_ms());
            (seq, due, membership.tick_ms())
        };
        let addrs = self
            .peer_addrs
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default();
        for peer in due {
            if let Some(addr) = addrs.get(&peer) {
                let packet = Packet {
                    kind: PacketKind::Heartbeat,
                    from: self.self_id,
                    to: peer,
                    incarnation: self.incarnation,
                    seq,
                    epoch: 0,
                };
                self.send(socket, &packet, *addr);
            }
        }
        tick_ms
    }

    fn receive(&self, socket: &UdpSocket, bytes: &[u8], from: SocketAddr) {
        let Some(packet) = self.open(bytes) else {
            return;
        };
        if packet.to != self.self_id {
            return;
        }
        let now = mono_ms();
        match packet.kind {
            PacketKind::Heartbeat => {
                let (echo, known) = {
                    let mut membership = self.membership();
                    (
                        membership.on_heartbeat(packet.from, now),
                        membership.knows(packet.from),
                    )
                };
                // Every member's heartbeat is answered, with an ack when this node may credit
                // its lease, else with a pong: the sender judges our liveness by answers.
                let (kind, epoch) = match echo {
                    Some(epoch) => (PacketKind::Ack, epoch),
                    None if known => (PacketKind::Pong, 0),
                    None => return,
                };
                let answer = Packet {
                    kind,
                    from: self.self_id,
                    to: packet.from,
                    epoch,
                    ..packet
                };
                self.send(socket, &answer, from);
            }
            // Answers to an earlier incarnation's heartbeats say nothing about this one.
            _ if packet.incarnation != self.incarnation => {}
            PacketKind::Ack => {
                self.membership()
                    .on_ack(packet.from, packet.seq, packet.epoch, now);
            }
            PacketKind::Pong => self.membership().on_pong(packet.from, now),
        }
    }

    /// Tells the resource host the current lease end whenever it moves.
    fn push_lease(&self, lease_sent: &mut Option<u64>) {
        let until = self.membership().lease_until_ms();
        if until != *lease_sent {
            *lease_sent = until;
            match until {
                Some(until_ms) => {
                    let _ = self.lease.renew(until_ms * 1_000_000);
                }
                None => {
                    let _ = self.lease.revoke();
                }
            }
        }
    }

    fn send(&self, socket: &UdpSocket, packet: &Packet, to: SocketAddr) {
        let body = packet.encode();
        let tag = hmac::sign(&self.key, &body);
        let mut bytes = [0u8; PACKET_LEN];
        bytes[..PACKET_BODY_LEN].copy_from_slice(&body);
        bytes[PACKET_BODY_LEN..].copy_from_slice(tag.as_ref());
        let _ = socket.send_to(&bytes, to);
    }

    /// Verifies the MAC before decoding: an unauthenticated packet changes nothing.
    fn open(&self, bytes: &[u8]) -> Option<Packet> {
        if bytes.len() != PACKET_LEN {
            return None;
        }
        let (body, tag) = bytes.split_at(PACKET_BODY_LEN);
        hmac::verify(&self.key, body, tag).ok()?;
        Packet::decode(body)
    }
}
