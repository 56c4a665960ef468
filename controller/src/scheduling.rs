//! `[scheduling]` in `controller.toml`: lease, retry, deadline, fairness and concurrency
//! settings. Every field has a default, so the section may be left out.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::store::{LeaseTerms, RetryPolicy};

/// A duration written as a human string in the configuration (`"30s"`, `"5m"`, `"250ms"`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl fmt::Debug for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "{s:?} is not a duration ({e}); write e.g. \"30s\", \"5m\", \"250ms\""
                ))
            })
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `[scheduling]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulingConfig {
    /// A lease lapses this long after it was granted or last renewed by a heartbeat; the job
    /// then goes back to the queue as a new attempt. Default `"30s"`.
    pub lease_ttl: HumanDuration,
    /// The longest a Heartbeat long poll is held (must be well under `lease_ttl`).
    /// Default `"5s"`.
    pub heartbeat_wait: HumanDuration,
    /// Attempts a job may use when infrastructure fails (a lost runner, a sandbox error);
    /// build failures are never retried. Default 3.
    pub max_attempts: u32,
    /// Delay before the second attempt, doubled for each further one. Default `"1s"`.
    pub retry_backoff: HumanDuration,
    /// The longest retry delay. Default `"1m"`.
    pub retry_backoff_max: HumanDuration,
    /// The controller times an attempt out at `lease time + job.timeout + deadline_grace`,
    /// whether or not its runner is still there. Default `"2m"`.
    pub deadline_grace: HumanDuration,
    /// Queue aging: a job of priority p is ordered as if submitted `p * aging` earlier, so
    /// higher priorities go first and a low-priority job that waited long enough overtakes
    /// newer high-priority ones (no starvation). Default `"1m"`.
    pub aging: HumanDuration,
    /// At most this many leased or running jobs per tenant (the source repository; the job
    /// name for path sources). 0 = no limit (default).
    pub max_running_per_tenant: u32,
    /// How often lapsed leases and deadlines are swept. Default `"500ms"`.
    pub sweep_interval: HumanDuration,
}

impl Default for SchedulingConfig {
    fn default() -> Self {
        Self {
            lease_ttl: HumanDuration(Duration::from_secs(30)),
            heartbeat_wait: HumanDuration(Duration::from_secs(5)),
            max_attempts: 3,
            retry_backoff: HumanDuration(Duration::from_secs(1)),
            retry_backoff_max: HumanDuration(Duration::from_secs(60)),
            deadline_grace: HumanDuration(Duration::from_secs(120)),
            aging: HumanDuration(Duration::from_secs(60)),
            max_running_per_tenant: 0,
            sweep_interval: HumanDuration(Duration::from_millis(500)),
        }
    }
}

impl SchedulingConfig {
    /// Checks relations serde cannot: a heartbeat wait shorter than half the TTL, at least
    /// one attempt, non-zero intervals. Returns the field at fault and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.lease_ttl.0 < Duration::from_millis(200) {
            return Err(("scheduling.lease_ttl", "must be at least 200ms".into()));
        }
        if self.heartbeat_wait.0 * 2 >= self.lease_ttl.0 {
            return Err((
                "scheduling.heartbeat_wait",
                "must be less than half of scheduling.lease_ttl, or leases lapse between \
                 heartbeats"
                    .into(),
            ));
        }
        if self.max_attempts == 0 {
            return Err(("scheduling.max_attempts", "must be at least 1".into()));
        }
        if self.sweep_interval.0.is_zero() || self.aging.0.is_zero() {
            return Err((
                "scheduling.sweep_interval",
                "sweep_interval and aging must be more than 0".into(),
            ));
        }
        Ok(())
    }

    /// The terms of a lease granted at `now_ms`.
    pub fn lease_terms(&self, now_ms: i64) -> LeaseTerms {
        LeaseTerms {
            now_ms,
            ttl_ms: ms(self.lease_ttl.0),
            deadline_grace_ms: ms(self.deadline_grace.0),
            tenant_limit: self.max_running_per_tenant,
        }
    }

    /// The retry policy.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            backoff_base_ms: ms(self.retry_backoff.0),
            backoff_max_ms: ms(self.retry_backoff_max.0),
        }
    }

    /// The queue key of a job submitted at `created_ms` with `priority`.
    pub fn queue_key(&self, created_ms: i64, priority: i32) -> i64 {
        created_ms.saturating_sub(i64::from(priority).saturating_mul(ms(self.aging.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_parse() {
        SchedulingConfig::default().check().unwrap();
        let c: SchedulingConfig =
            toml::from_str("lease_ttl = \"3s\"\nheartbeat_wait = \"1s\"\n").unwrap();
        assert_eq!(c.lease_ttl.0, Duration::from_secs(3));
        assert_eq!(c.max_attempts, 3);
        c.check().unwrap();
        let bad: SchedulingConfig = toml::from_str("lease_ttl = \"2s\"").unwrap();
        assert_eq!(bad.check().unwrap_err().0, "scheduling.heartbeat_wait");
        assert!(toml::from_str::<SchedulingConfig>("lease_ttl = \"soon\"").is_err());
        assert!(toml::from_str::<SchedulingConfig>("nope = 1").is_err());
    }

    #[test]
    fn aging_orders_priorities_without_starvation() {
        let c = SchedulingConfig::default();
        // Priority 1 submitted at t=30s goes before priority 0 submitted at t=0...
        assert!(c.queue_key(30_000, 1) < c.queue_key(0, 0));
        // ...but not before priority 0 that has waited more than `aging`.
        assert!(c.queue_key(61_000, 1) > c.queue_key(0, 0));
        // FIFO within a priority.
        assert!(c.queue_key(1, 5) < c.queue_key(2, 5));
        let r = c.retry();
        assert_eq!(
            [1, 2, 3, 10].map(|a| r.backoff_ms(a)),
            [1000, 2000, 4000, 60_000]
        );
    }
}
