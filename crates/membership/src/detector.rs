//! Failure suspicion for one peer: a fixed `delay × threshold` floor, stretched adaptively
//! by the observed arrival jitter (in the spirit of phi-accrual) and by local health.

use std::collections::VecDeque;

/// How many inter-arrival intervals the detector remembers.
const INTERVALS_MAX: usize = 32;
/// Standard deviations above the mean interval before a silence is suspicious.
const SIGMAS: u64 = 6;
/// The adaptive timeout never exceeds this multiple of the configured detection time.
const ADAPTIVE_CAP: u64 = 4;

/// Heartbeat interval and missed-beat threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    pub delay_ms: u64,
    pub threshold: u32,
}

impl Settings {
    pub fn detection_ms(&self) -> u64 {
        self.delay_ms * u64::from(self.threshold)
    }
}

/// Arrival history of one peer.
#[derive(Clone, Debug)]
pub struct Detector {
    settings: Settings,
    last_heard_ms: Option<u64>,
    last_heartbeat_ms: Option<u64>,
    intervals: VecDeque<u64>,
}

impl Detector {
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            last_heard_ms: None,
            last_heartbeat_ms: None,
            intervals: VecDeque::new(),
        }
    }

    pub fn set_settings(&mut self, settings: Settings) {
        self.settings = settings;
    }

    /// A heartbeat from the peer: it feeds the arrival history (the adaptive timeout). It
    /// does not prove the peer alive: a peer that sends but cannot receive (a one-way cut)
    /// gets no acks, so holds no lease and runs nothing, and must be suspected so that its
    /// groups move. Only answers to this node's heartbeats ([`Detector::heard_ack`]) do.
    /// A gap longer than the detection time is an outage, not jitter: it starts a new history
    /// instead of inflating the adaptive timeout for every later failure.
    pub fn heard(&mut self, now_ms: u64) {
        if let Some(last) = self.last_heartbeat_ms {
            let interval = now_ms.saturating_sub(last);
            if interval > self.settings.detection_ms() {
                self.intervals.clear();
            } else {
                if self.intervals.len() == INTERVALS_MAX {
                    self.intervals.pop_front();
                }
                self.intervals.push_back(interval);
            }
        }
        self.last_heartbeat_ms = Some(now_ms);
    }

    /// An answer (ack or pong) to one of this node's heartbeats: proof of life both ways. Its
    /// timing follows our own heartbeats, so it stays out of the arrival history (mixing both
    /// would inflate the variance).
    pub fn heard_ack(&mut self, now_ms: u64) {
        self.last_heard_ms = Some(now_ms.max(self.last_heard_ms.unwrap_or(0)));
    }

    pub fn silence_ms(&self, now_ms: u64) -> Option<u64> {
        self.last_heard_ms.map(|last| now_ms.saturating_sub(last))
    }

    /// The silence after which the peer is suspected, before local-health stretching.
    pub fn timeout_ms(&self) -> u64 {
        let floor = self.settings.detection_ms();
        if self.intervals.len() < 8 {
            return floor;
        }
        let count = self.intervals.len() as u64;
        let mean = self.intervals.iter().sum::<u64>() / count;
        let variance = self
            .intervals
            .iter()
            .map(|i| i.abs_diff(mean).pow(2))
            .sum::<u64>()
            / count;
        let adaptive = mean + SIGMAS * variance.isqrt();
        adaptive.clamp(floor, floor * ADAPTIVE_CAP)
    }

    /// A peer never heard is not suspected: it may not have started yet; the coordinator
    /// handles never-seen nodes by their database state.
    pub fn suspected(&self, now_ms: u64, stretch: u64) -> bool {
        self.silence_ms(now_ms)
            .is_some_and(|silence| silence > self.timeout_ms() * stretch)
    }
}
