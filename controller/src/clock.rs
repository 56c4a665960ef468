//! Injected time and id generation, so lease, state and provenance logic is testable with a
//! fixed clock and predictable ids.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// Generates ids: job ids, runner ids and lease tokens.
pub trait IdGen: Send + Sync + fmt::Debug {
    /// A fresh, unique id.
    fn new_id(&self) -> Uuid;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Random version 4 UUIDs (122 random bits: lease tokens are unguessable).
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomIds;

impl IdGen for RandomIds {
    fn new_id(&self) -> Uuid {
        Uuid::new_v4()
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<SystemTime>,
}

impl ManualClock {
    /// A clock reading `unix_ms` milliseconds after the Unix epoch.
    pub fn at_unix_ms(unix_ms: u64) -> Self {
        Self {
            now: Mutex::new(UNIX_EPOCH + Duration::from_millis(unix_ms)),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Version-4-shaped UUIDs counting up from 1 (tests): `00000000-0000-4000-8000-000000000001`,
/// then `...0002`, and so on.
#[derive(Debug, Default)]
pub struct SequentialIds {
    next: AtomicU64,
}

impl IdGen for SequentialIds {
    fn new_id(&self) -> Uuid {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        // Version 4 and RFC 4122 variant bits set, so the ids parse like real ones.
        Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0000 | u128::from(n))
    }
}

/// Milliseconds since the Unix epoch (0 for times before it; saturating far in the future).
pub fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The instant `ms` milliseconds after the Unix epoch (negative values clamp to the epoch).
pub fn from_unix_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_ids_are_valid_v4() {
        let ids = SequentialIds::default();
        let a = ids.new_id();
        assert_eq!(a.to_string(), "00000000-0000-4000-8000-000000000001");
        assert_eq!(a.get_version_num(), 4);
        assert_eq!(
            ids.new_id().to_string(),
            "00000000-0000-4000-8000-000000000002"
        );
    }

    #[test]
    fn manual_clock_and_ms_round_trip() {
        let clock = ManualClock::at_unix_ms(1_700_000_000_123);
        assert_eq!(unix_ms(clock.now()), 1_700_000_000_123);
        clock.advance(Duration::from_secs(2));
        assert_eq!(unix_ms(clock.now()), 1_700_000_002_123);
        assert_eq!(from_unix_ms(5), UNIX_EPOCH + Duration::from_millis(5));
    }
}
