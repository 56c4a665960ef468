//! Prometheus metrics of the control plane, rendered in the text exposition format (0.0.4)
//! at `/metrics`. Counters and histograms live in memory (per replica); queue depth is read
//! from the store at scrape time, so every replica reports the shared queue.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];

/// A histogram of durations with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    inner: Mutex<HistogramData>,
}

#[derive(Debug, Default)]
struct HistogramData {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let mut h = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// Records `ms` milliseconds (negative values count as 0).
    pub fn observe_ms(&self, ms: i64) {
        self.observe(Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let h = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", h.counts[i]);
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "{name}_sum {}", h.sum);
        let _ = writeln!(out, "{name}_count {}", h.count);
    }
}

/// A counter split by one label.
#[derive(Debug, Default)]
pub struct LabeledCounter {
    values: Mutex<BTreeMap<&'static str, u64>>,
}

impl LabeledCounter {
    /// Adds one for `label`.
    pub fn inc(&self, label: &'static str) {
        let mut v = self.values.lock().unwrap_or_else(|e| e.into_inner());
        *v.entry(label).or_insert(0) += 1;
    }

    /// The count for `label`.
    pub fn get(&self, label: &str) -> u64 {
        let v = self.values.lock().unwrap_or_else(|e| e.into_inner());
        v.get(label).copied().unwrap_or(0)
    }

    fn render(&self, out: &mut String, name: &str, label: &str, help: &str) {
        let v = self.values.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (value, n) in v.iter() {
            let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
        }
    }
}

/// The controller's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Submit -> first lease.
    pub queue_wait: Histogram,
    /// Lease -> the runner's first report (steps started).
    pub start_latency: Histogram,
    /// First report -> completion.
    pub execution: Histogram,
    /// Submit -> terminal state (for succeeded jobs: provenance signed and stored).
    pub end_to_end: Histogram,
    /// Leases that lapsed because their runner stopped renewing them.
    pub lease_expiries: AtomicU64,
    /// Attempts retried, by cause (`lease_expired`, `runner_infra_failure`).
    pub retries: LabeledCounter,
    /// Jobs that reached a terminal state, by state.
    pub finished: LabeledCounter,
    /// Calls refused because their lease token was stale.
    pub stale_lease_calls: AtomicU64,
    /// Jobs submitted (new, not idempotent repeats).
    pub submitted: AtomicU64,
}

impl Metrics {
    /// The exposition text; `depth` is (queued, leased, running) from the store.
    pub fn render(&self, depth: (i64, i64, i64)) -> String {
        let mut out = String::with_capacity(4096);
        let _ = writeln!(
            out,
            "# HELP airlock_jobs Jobs in each non-terminal state (queue depth).\n\
             # TYPE airlock_jobs gauge\n\
             airlock_jobs{{state=\"queued\"}} {}\n\
             airlock_jobs{{state=\"leased\"}} {}\n\
             airlock_jobs{{state=\"running\"}} {}",
            depth.0, depth.1, depth.2
        );
        self.queue_wait.render(
            &mut out,
            "airlock_queue_wait_seconds",
            "Time from submit to the first lease.",
        );
        self.start_latency.render(
            &mut out,
            "airlock_start_latency_seconds",
            "Time from lease to the runner's first report.",
        );
        self.execution.render(
            &mut out,
            "airlock_execution_seconds",
            "Time from the first report to completion.",
        );
        self.end_to_end.render(
            &mut out,
            "airlock_end_to_end_seconds",
            "Time from submit to a terminal state (provenance signed for successes).",
        );
        let counter = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        };
        counter(
            &mut out,
            "airlock_lease_expiries_total",
            "Leases that lapsed because their runner stopped renewing them.",
            &self.lease_expiries,
        );
        counter(
            &mut out,
            "airlock_stale_lease_calls_total",
            "Runner calls refused because their lease token was stale.",
            &self.stale_lease_calls,
        );
        counter(
            &mut out,
            "airlock_jobs_submitted_total",
            "Jobs queued (idempotent repeats not counted).",
            &self.submitted,
        );
        self.retries.render(
            &mut out,
            "airlock_retries_total",
            "cause",
            "Attempts retried automatically, by cause.",
        );
        self.finished.render(
            &mut out,
            "airlock_jobs_finished_total",
            "state",
            "Jobs that reached a terminal state, by state.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.queue_wait.observe(Duration::from_millis(20));
        m.queue_wait.observe(Duration::from_secs(2));
        m.retries.inc("lease_expired");
        m.lease_expiries.fetch_add(1, Ordering::Relaxed);
        let text = m.render((3, 1, 2));
        assert!(text.contains("airlock_jobs{state=\"queued\"} 3"), "{text}");
        assert!(text.contains("airlock_queue_wait_seconds_bucket{le=\"0.025\"} 1"));
        assert!(text.contains("airlock_queue_wait_seconds_bucket{le=\"2.5\"} 2"));
        assert!(text.contains("airlock_queue_wait_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("airlock_queue_wait_seconds_count 2"));
        assert!(text.contains("airlock_retries_total{cause=\"lease_expired\"} 1"));
        assert!(text.contains("airlock_lease_expiries_total 1"));
    }
}
