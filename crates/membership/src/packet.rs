//! The heartbeat wire format. The body is fixed-size big-endian; the daemon appends an
//! HMAC-SHA256 of the body (keyed by the cluster's heartbeat key) and checks it on receipt.

/// Bytes of a packet body before the MAC.
pub const PACKET_BODY_LEN: usize = 4 + 1 + 8 * 5;
const MAGIC: [u8; 4] = *b"BTH1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketKind {
    Heartbeat = 1,
    Ack = 2,
    /// The answer to a heartbeat of a node that may not ack it (this node is in its start-up
    /// quiet period, condemned the sender, or sees it down): proof that the link works both
    /// ways, without any lease credit.
    Pong = 3,
}

/// One heartbeat, ack or pong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    pub kind: PacketKind,
    pub from: u64,
    pub to: u64,
    /// Random per daemon start, so an ack for a previous incarnation's round never counts.
    pub incarnation: u64,
    /// The heartbeat round (echoed by an ack).
    pub seq: u64,
    /// In an ack: the heartbeat sender's `down_epoch` as the acker's database knows it.
    pub epoch: u64,
}

impl Packet {
    pub fn encode(&self) -> [u8; PACKET_BODY_LEN] {
        let mut out = [0u8; PACKET_BODY_LEN];
        out[..4].copy_from_slice(&MAGIC);
        out[4] = self.kind as u8;
        for (index, value) in [self.from, self.to, self.incarnation, self.seq, self.epoch]
            .iter()
            .enumerate()
        {
            let start = 5 + index * 8;
            out[start..start + 8].copy_from_slice(&value.to_be_bytes());
        }
        out
    }

    /// Decodes a body; `None` for anything malformed (it is dropped, never trusted).
    pub fn decode(body: &[u8]) -> Option<Packet> {
        if body.len() != PACKET_BODY_LEN || body[..4] != MAGIC {
            return None;
        }
        let kind = match body[4] {
            1 => PacketKind::Heartbeat,
            2 => PacketKind::Ack,
            3 => PacketKind::Pong,
            _ => return None,
        };
        let field = |index: usize| {
            let start = 5 + index * 8;
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&body[start..start + 8]);
            u64::from_be_bytes(bytes)
        };
        Some(Packet {
            kind,
            from: field(0),
            to: field(1),
            incarnation: field(2),
            seq: field(3),
            epoch: field(4),
        })
    }
}
