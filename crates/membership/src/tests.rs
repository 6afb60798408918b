//! Step tests: build a state, feed events at given times, check the decisions.

use super::*;

const FAST: Settings = Settings {
    delay_ms: 100,
    threshold: 5,
};

fn peer(id: NodeId) -> PeerInfo {
    PeerInfo {
        id,
        votes: 1,
        settings: FAST,
        down_epoch: 0,
        ackable: true,
    }
}

fn three_nodes(self_id: NodeId, now_ms: u64) -> Membership {
    let mut membership = Membership::new(self_id, now_ms, 0);
    let peers = [1, 2, 3]
        .into_iter()
        .filter(|id| *id != self_id)
        .map(peer)
        .collect();
    membership.configure(View {
        self_votes: 1,
        self_down_epoch: 0,
        peers,
    });
    membership
}

#[test]
fn lease_needs_a_majority_of_acks() {
    // Node 1 of 3 sends a round; one ack (plus its own vote) is a majority.
    let mut membership = three_nodes(1, 0);
    let (seq, due) = membership.start_round(1000);
    assert_eq!(due, vec![2, 3]);
    assert!(!membership.holds_lease(1000));
    membership.on_ack(2, seq, 0, 1005);
    assert_eq!(membership.lease_until_ms(), Some(1000 + 500));
    assert!(membership.holds_lease(1499));
    assert!(!membership.holds_lease(1500));
}

#[test]
fn ack_with_stale_epoch_does_not_renew() {
    // The acker's database still shows an older epoch of this node: its ack must not count.
    let mut membership = three_nodes(1, 0);
    membership.configure(View {
        self_votes: 1,
        self_down_epoch: 2,
        peers: vec![peer(2), peer(3)],
    });
    let (seq, _) = membership.start_round(1000);
    membership.on_ack(2, seq, 1, 1001);
    membership.on_ack(3, seq, 1, 1001);
    assert_eq!(membership.lease_until_ms(), None);
    membership.on_ack(3, seq, 2, 1002);
    assert_eq!(membership.lease_until_ms(), Some(1500));
}

#[test]
fn single_node_renews_alone() {
    let mut membership = Membership::new(1, 0, 0);
    membership.configure(View {
        self_votes: 1,
        self_down_epoch: 0,
        peers: vec![],
    });
    membership.start_round(10);
    assert!(membership.holds_lease(10));
}

#[test]
fn condemned_peer_gets_no_acks_and_reports_last_ack_age() {
    let mut membership = three_nodes(2, 0);
    assert_eq!(membership.on_heartbeat(1, 1000), Some(0));
    assert_eq!(membership.condemn(1, 0, 1300), Some(300));
    assert_eq!(membership.on_heartbeat(1, 1400), None);
    // Still condemned while the database shows the same epoch.
    membership.configure(View {
        self_votes: 1,
        self_down_epoch: 0,
        peers: vec![peer(1), peer(3)],
    });
    assert!(membership.is_condemned(1));
    // Declared down (epoch 1, not ackable): still no acks.
    let down = PeerInfo {
        down_epoch: 1,
        ackable: false,
        ..peer(1)
    };
    membership.configure(View {
        self_votes: 1,
        self_down_epoch: 0,
        peers: vec![down, peer(3)],
    });
    assert_eq!(membership.on_heartbeat(1, 1500), None);
    // Up again after the down: acks resume, echoing the new epoch.
    let up = PeerInfo {
        down_epoch: 1,
        ..peer(1)
    };
    membership.configure(View {
        self_votes: 1,
        self_down_epoch: 0,
        peers: vec![up, peer(3)],
    });
    assert!(!membership.is_condemned(1));
    assert_eq!(membership.on_heartbeat(1, 1600), Some(1));
}

#[test]
fn restarted_node_stays_quiet() {
    // A node that just started does not know whom it condemned before: no acks at first.
    let mut membership = Membership::new(2, 1000, 550);
    membership.configure(View {
        self_votes: 1,
        self_down_epoch: 0,
        peers: vec![peer(1), peer(3)],
    });
    assert_eq!(membership.on_heartbeat(1, 1200), None);
    assert_eq!(membership.on_heartbeat(1, 1550), Some(0));
}

#[test]
fn suspicion_after_detection_time_stretched_by_local_health() {
    let mut membership = three_nodes(1, 0);
    membership.on_pong(2, 1000);
    membership.on_ack(3, 1, 0, 1000);
    assert!(membership.suspects(1500).is_empty());
    membership.on_pong(3, 1450);
    assert_eq!(membership.suspects(1501), vec![2]);
    // This node ran late: it trusts its own silence measurements less.
    membership.note_tick(80);
    assert_eq!(membership.local_health(), 1);
    assert!(membership.suspects(1900).is_empty());
    assert_eq!(membership.suspects(2001), vec![2]);
}

#[test]
fn adaptive_timeout_grows_with_jitter() {
    let mut detector = Detector::new(FAST);
    let mut now = 0;
    detector.heard(now);
    for index in 0..32 {
        now += if index % 2 == 0 { 20 } else { 180 };
        detector.heard(now);
    }
    // Mean 100, deviation 80: 100 + 6 × 80 = 580 > 500.
    assert_eq!(detector.timeout_ms(), 580);
}

#[test]
fn safe_after_uses_latest_ack_of_the_majority() {
    // Replies: node A acked 300 ms before its reply arrived at 1000, node B 100 ms before 1010.
    let acks = [(1000, Some(300)), (1010, Some(100)), (1005, None)];
    let safe = safe_after_ms(&acks, 500, 1010);
    assert_eq!(safe, 910 + 505 + LEASE_MARGIN_MS);
    // Nobody ever acked: the lease cannot exist, only the margin applies.
    assert_eq!(safe_after_ms(&[(50, None)], 500, 60), 60 + LEASE_MARGIN_MS);
}

#[test]
fn rounds_are_per_peer_delay() {
    let mut membership = Membership::new(1, 0, 0);
    let slow = PeerInfo {
        settings: Settings {
            delay_ms: 1000,
            threshold: 5,
        },
        ..peer(3)
    };
    membership.configure(View {
        self_votes: 1,
        self_down_epoch: 0,
        peers: vec![peer(2), slow],
    });
    assert_eq!(membership.start_round(0).1, vec![2, 3]);
    assert_eq!(membership.start_round(100).1, vec![2]);
    assert_eq!(membership.start_round(1000).1, vec![2, 3]);
    assert_eq!(membership.lease_ms(), 5000);
}

#[test]
fn packet_round_trip_and_garbage() {
    let packet = Packet {
        kind: PacketKind::Ack,
        from: 3,
        to: 1,
        incarnation: 77,
        seq: 9,
        epoch: 2,
    };
    assert_eq!(Packet::decode(&packet.encode()), Some(packet));
    assert_eq!(Packet::decode(b"nonsense"), None);
    let mut bad = packet.encode();
    bad[4] = 9;
    assert_eq!(Packet::decode(&bad), None);
}

#[test]
fn an_outage_does_not_inflate_the_adaptive_timeout() {
    // A peer that was down for seconds and came back must be suspected as fast as before.
    let mut detector = Detector::new(FAST);
    let mut now = 0;
    for _ in 0..20 {
        now += 100;
        detector.heard(now);
    }
    now += 3000;
    detector.heard(now);
    for _ in 0..20 {
        now += 100;
        detector.heard(now);
    }
    assert_eq!(detector.timeout_ms(), 500);
}

#[test]
fn a_condemnation_the_peer_already_came_back_from_ends_at_once() {
    // The coordinator condemned node 1 while its state still showed it down at epoch 1
    // (asking for epoch 0: "until it is up after that down"); this node already applied the
    // NodeUp. Recording it would stop acks until node 1 goes down again.
    let mut membership = three_nodes(2, 0);
    let back = PeerInfo {
        down_epoch: 1,
        ..peer(1)
    };
    membership.configure(View {
        self_votes: 1,
        self_down_epoch: 0,
        peers: vec![back, peer(3)],
    });
    assert_eq!(membership.on_heartbeat(1, 1000), Some(1));
    assert_eq!(membership.condemn(1, 0, 1100), Some(100));
    assert!(!membership.is_condemned(1));
    assert_eq!(membership.on_heartbeat(1, 1200), Some(1));
    // The same epoch as the database's is a real condemnation.
    membership.condemn(1, 1, 1300);
    assert_eq!(membership.on_heartbeat(1, 1400), None);
}

#[test]
fn a_peer_that_sends_but_does_not_answer_is_suspected() {
    // Node 2 hears nobody (a one-way cut): its heartbeats still arrive, but it answers none
    // of ours. It cannot hold a lease, so it must be suspected for its groups to move.
    let mut membership = three_nodes(1, 0);
    membership.on_ack(2, 1, 0, 1000);
    membership.on_ack(3, 1, 0, 1000);
    for now in (1100..=1600).step_by(100) {
        assert_eq!(membership.on_heartbeat(2, now), Some(0));
        membership.on_pong(3, now);
    }
    assert_eq!(membership.suspects(1601), vec![2]);
}
