//! The daemon's two clocks. Monotonic time orders local events and leases (it is the same
//! CLOCK_MONOTONIC the resource host reads); wall time only stamps database updates.

use std::time::{SystemTime, UNIX_EPOCH};

/// CLOCK_MONOTONIC in milliseconds.
pub fn mono_ms() -> u64 {
    baton_host::monotonic_now_ns() / 1_000_000
}

/// Unix time in milliseconds (0 if the clock is before 1970).
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
