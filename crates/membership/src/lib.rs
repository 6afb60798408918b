//! Heartbeats, failure suspicion, quorum and leases, as a sans-IO state machine.
//!
//! Architecture invariant: no I/O, no clock, no threads. The daemon's heartbeat thread owns
//! the socket and the clock; it feeds packets and `now_ms` (monotonic milliseconds) in, and
//! reads decisions out. That keeps the safety arithmetic testable step by step.
//!
//! The lease protocol, in short (ARCHITECTURE.md has the whole argument):
//! * Every `delay` a node sends heartbeat round `seq` to its peers and remembers when.
//! * A peer acknowledges a heartbeat unless it has condemned the sender, sees it down in its
//!   cluster database, or is still in its start-up quiet period. The ack echoes `seq` and the
//!   sender's `down_epoch` as the acker's database knows it.
//! * When acks for round `seq` from a majority of votes (counting its own) arrive, with an
//!   epoch equal to the node's own view, its lease becomes `sent(seq) + lease_ms`.
//! * The coordinator condemns a node by telling a majority to stop acking it; each reports
//!   how long ago it last acked. No later round can then gather a majority, and the node's
//!   lease ends at most `lease_ms` after the latest of those acks (see [`safe_after_ms`]).

mod detector;
mod packet;

pub use detector::{Detector, Settings};
pub use packet::{Packet, PacketKind, PACKET_BODY_LEN};

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A node's identity, as in the cluster database.
pub type NodeId = u64;

/// How many heartbeat rounds wait for acks; older rounds can no longer extend the lease.
pub const ROUNDS_MAX: usize = 64;
/// Clock rate difference between two nodes we tolerate, in parts per thousand.
pub const DRIFT_PER_MILLE: u64 = 10;
/// Fixed safety margin added to every lease wait, covering scheduling and kill latency.
pub const LEASE_MARGIN_MS: u64 = 20;

/// What the heartbeat thread needs to know about one peer, derived from the cluster database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub id: NodeId,
    /// Votes it contributes to a majority (0 while it is joining).
    pub votes: u32,
    pub settings: Settings,
    /// Its `down_epoch` in this node's database; echoed in acks.
    pub down_epoch: u64,
    /// False while this node's database says the peer is down: it gets no acks then.
    pub ackable: bool,
}

/// The membership view that the daemon hands the heartbeat thread after each database change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    pub self_votes: u32,
    /// This node's own `down_epoch` in its database; acks must echo it to count.
    pub self_down_epoch: u64,
    pub peers: Vec<PeerInfo>,
}

/// One heartbeat round waiting for acks.
#[derive(Clone, Debug)]
struct Round {
    seq: u64,
    sent_ms: u64,
    acked_votes: u32,
    ackers: BTreeSet<NodeId>,
}

/// Per-peer bookkeeping.
#[derive(Clone, Debug)]
struct Peer {
    info: PeerInfo,
    detector: Detector,
    last_sent_ms: Option<u64>,
    last_ack_sent_ms: Option<u64>,
}

/// The heartbeat and lease state of one node.
#[derive(Clone, Debug)]
pub struct Membership {
    self_id: NodeId,
    view: View,
    peers: BTreeMap<NodeId, Peer>,
    rounds: VecDeque<Round>,
    next_seq: u64,
    lease_until_ms: Option<u64>,
    /// Peer → the `down_epoch` it had when this node condemned it.
    condemned: BTreeMap<NodeId, u64>,
    /// No acks before this time: a restarted node forgot whom it condemned.
    quiet_until_ms: u64,
    /// Lifeguard-style local health: grows when this node's own ticks run late.
    local_health: u32,
}

/// Upper bound for `local_health`; suspicion timeouts stretch by at most this factor + 1.
pub const LOCAL_HEALTH_MAX: u32 = 4;

impl Membership {
    pub fn new(self_id: NodeId, now_ms: u64, quiet_ms: u64) -> Self {
        Self {
            self_id,
            view: View::default(),
            peers: BTreeMap::new(),
            rounds: VecDeque::new(),
            next_seq: 1,
            lease_until_ms: None,
            condemned: BTreeMap::new(),
            quiet_until_ms: now_ms + quiet_ms,
            local_health: 0,
        }
    }

    pub fn self_id(&self) -> NodeId {
        self.self_id
    }

    /// Installs a new view; peers keep their history, removed peers are forgotten.
    pub fn configure(&mut self, view: View) {
        let mut peers = BTreeMap::new();
        for info in view.peers.iter().filter(|info| info.id != self.self_id) {
            let mut peer = self.peers.remove(&info.id).unwrap_or_else(|| Peer {
                info: *info,
                detector: Detector::new(info.settings),
                last_sent_ms: None,
                last_ack_sent_ms: None,
            });
            peer.info = *info;
            peer.detector.set_settings(info.settings);
            peers.insert(info.id, peer);
        }
        // A condemnation ends once the database moved past the condemned epoch and the
        // node is ackable again (it was declared down and then up).
        self.condemned.retain(|id, epoch| {
            peers
                .get(id)
                .is_some_and(|peer: &Peer| !(peer.info.ackable && peer.info.down_epoch > *epoch))
        });
        if view.self_down_epoch != self.view.self_down_epoch {
            // Acks counted for the old epoch must not extend a lease in the new one.
            self.rounds.clear();
        }
        self.peers = peers;
        self.view = view;
    }

    /// Total votes of the membership: the quorum denominator.
    pub fn votes_total(&self) -> u32 {
        self.view.self_votes + self.peers.values().map(|peer| peer.info.votes).sum::<u32>()
    }

    /// Votes needed for a majority.
    pub fn votes_needed(&self) -> u32 {
        self.votes_total() / 2 + 1
    }

    /// How long a renewed lease lasts: the slowest voter's detection time, so that a peer
    /// never suspects this node before its lease could have run out.
    pub fn lease_ms(&self) -> u64 {
        let peers = self.peers.values().filter(|peer| peer.info.votes > 0);
        peers
            .map(|peer| peer.info.settings.detection_ms())
            .max()
            .unwrap_or(0)
            .max(1)
    }

    /// The tick interval: the shortest delay among peers (or 100 ms alone).
    pub fn tick_ms(&self) -> u64 {
        self.peers
            .values()
            .map(|peer| peer.info.settings.delay_ms)
            .min()
            .unwrap_or(100)
    }

    /// Starts a heartbeat round: returns its sequence number and the peers due a heartbeat.
    /// A node that holds a majority of votes by itself renews its lease at once.
    pub fn start_round(&mut self, now_ms: u64) -> (u64, Vec<NodeId>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let due: Vec<NodeId> = self
            .peers
            .values()
            .filter(|peer| {
                peer.last_sent_ms
                    .is_none_or(|sent| now_ms >= sent + peer.info.settings.delay_ms)
            })
            .map(|peer| peer.info.id)
            .collect();
        for id in &due {
            if let Some(peer) = self.peers.get_mut(id) {
                peer.last_sent_ms = Some(now_ms);
            }
        }
        if self.rounds.len() == ROUNDS_MAX {
            self.rounds.pop_front();
        }
        let round = Round {
            seq,
            sent_ms: now_ms,
            acked_votes: self.view.self_votes,
            ackers: BTreeSet::new(),
        };
        self.rounds.push_back(round);
        self.renew_if_majority(seq);
        (seq, due)
    }

    /// A heartbeat arrived from `from`. Returns the epoch to echo if this node acks it; a
    /// known peer that gets no ack gets a pong.
    pub fn on_heartbeat(&mut self, from: NodeId, now_ms: u64) -> Option<u64> {
        let quiet = now_ms < self.quiet_until_ms;
        let condemned = self.condemned.contains_key(&from);
        let peer = self.peers.get_mut(&from)?;
        peer.detector.heard(now_ms);
        if quiet || condemned || !peer.info.ackable {
            return None;
        }
        peer.last_ack_sent_ms = Some(now_ms);
        Some(peer.info.down_epoch)
    }

    /// A pong arrived from `from`: it heard this node, though it may not ack it.
    pub fn on_pong(&mut self, from: NodeId, now_ms: u64) {
        if let Some(peer) = self.peers.get_mut(&from) {
            peer.detector.heard_ack(now_ms);
        }
    }

    /// Whether `peer` is a member this node exchanges heartbeats with.
    pub fn knows(&self, peer: NodeId) -> bool {
        self.peers.contains_key(&peer)
    }

    /// An ack arrived from `from` for round `seq`, echoing `epoch`.
    pub fn on_ack(&mut self, from: NodeId, seq: u64, epoch: u64, now_ms: u64) {
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        peer.detector.heard_ack(now_ms);
        let votes = peer.info.votes;
        if epoch != self.view.self_down_epoch || votes == 0 {
            return;
        }
        let Some(round) = self.rounds.iter_mut().find(|round| round.seq == seq) else {
            return;
        };
        if round.ackers.insert(from) {
            round.acked_votes += votes;
        }
        self.renew_if_majority(seq);
    }

    fn renew_if_majority(&mut self, seq: u64) {
        let needed = self.votes_needed();
        let lease_ms = self.lease_ms();
        let Some(round) = self.rounds.iter().find(|round| round.seq == seq) else {
            return;
        };
        if round.acked_votes >= needed {
            let until = round.sent_ms + lease_ms;
            self.lease_until_ms = Some(self.lease_until_ms.map_or(until, |old| old.max(until)));
        }
    }

    /// The end of this node's lease, if it ever had one.
    pub fn lease_until_ms(&self) -> Option<u64> {
        self.lease_until_ms
    }

    /// Whether this node may run groups at `now_ms`.
    pub fn holds_lease(&self, now_ms: u64) -> bool {
        self.lease_until_ms.is_some_and(|until| now_ms < until)
    }

    /// Drops the lease at once (the node learned it was declared down, or shuts down).
    pub fn revoke_lease(&mut self) {
        self.lease_until_ms = None;
        self.rounds.clear();
    }

    /// How long since `peer` was last heard, if ever.
    pub fn silence_ms(&self, peer: NodeId, now_ms: u64) -> Option<u64> {
        self.peers
            .get(&peer)
            .and_then(|p| p.detector.silence_ms(now_ms))
    }

    /// Peers silent for longer than their (adaptive, health-stretched) suspicion timeout.
    pub fn suspects(&self, now_ms: u64) -> Vec<NodeId> {
        let stretch = u64::from(self.local_health) + 1;
        self.peers
            .values()
            .filter(|peer| peer.detector.suspected(now_ms, stretch))
            .map(|peer| peer.info.id)
            .collect()
    }

    /// The silence after which `peer` is suspected now (adaptive, stretched by local health).
    pub fn suspicion_ms(&self, peer: NodeId) -> u64 {
        let stretch = u64::from(self.local_health) + 1;
        self.peers
            .get(&peer)
            .map_or(u64::MAX / 4, |p| p.detector.timeout_ms() * stretch)
    }

    /// Stops acking `peer` until the database shows it up with a `down_epoch` above `epoch`
    /// (it was declared down and came back). Returns how long ago this node last acked it
    /// (None: never), for [`safe_after_ms`].
    pub fn condemn(&mut self, peer: NodeId, epoch: u64, now_ms: u64) -> Option<u64> {
        // A request that arrives after this node already saw the peer come back (a
        // coordinator acting on a state older than ours) is over at once; recorded, it would
        // wait for the next database change, or for ever if the peer never goes down again.
        let back = self
            .peers
            .get(&peer)
            .is_some_and(|p| p.info.ackable && p.info.down_epoch > epoch);
        if !back {
            self.condemned.insert(peer, epoch);
        }
        let last = self.peers.get(&peer).and_then(|p| p.last_ack_sent_ms);
        last.map(|sent| now_ms.saturating_sub(sent))
    }

    pub fn is_condemned(&self, peer: NodeId) -> bool {
        self.condemned.contains_key(&peer)
    }

    /// Records how late this node's own heartbeat tick ran: late ticks mean this node is
    /// overloaded, so its view of others' silence is less trustworthy (Lifeguard).
    pub fn note_tick(&mut self, late_ms: u64) {
        let tolerance = self.tick_ms() / 2;
        if late_ms > tolerance {
            self.local_health = (self.local_health + 1).min(LOCAL_HEALTH_MAX);
        } else if late_ms < tolerance / 2 {
            self.local_health = self.local_health.saturating_sub(1);
        }
    }

    pub fn local_health(&self) -> u32 {
        self.local_health
    }
}

/// The earliest time (on the coordinator's monotonic clock) at which a condemned node's lease
/// has certainly expired. `acks` holds, for each node of a condemning majority, when its reply
/// arrived and how long before replying it last acked the condemned node. Every later lease
/// renewal would need one of them, so the node's last possible lease started no later than
/// the latest of those acks; it lasts `lease_ms` on a clock that may run `DRIFT_PER_MILLE`
/// slower than ours.
pub fn safe_after_ms(acks: &[(u64, Option<u64>)], lease_ms: u64, now_ms: u64) -> u64 {
    let last_ack = acks
        .iter()
        .filter_map(|(received_ms, age)| age.map(|age| received_ms.saturating_sub(age)))
        .max();
    let stretched = lease_ms + lease_ms * DRIFT_PER_MILLE / 1000;
    last_ack.map_or(now_ms, |last| (last + stretched).max(now_ms)) + LEASE_MARGIN_MS
}

#[cfg(test)]
mod tests;
