//! Unix-seconds arithmetic for token and key windows (JWT `NumericDate`s are whole seconds).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Whole seconds since the Unix epoch (0 before it).
pub fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A duration in whole seconds, rounded down.
pub fn secs(duration: Duration) -> u64 {
    duration.as_secs()
}
