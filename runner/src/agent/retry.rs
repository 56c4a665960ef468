//! Retrying a runner call that a controller restart cut off.

use std::time::{Duration, Instant};

/// How long a call is retried: a restarting controller is back well within this, and a
/// lease that lapsed meanwhile makes the next try fail for good (fencing).
const BUDGET: Duration = Duration::from_secs(30);

/// Backoff between tries of one call, for errors that mean "the controller was not there".
#[derive(Debug)]
pub(super) struct Transient {
    started: Instant,
    delay: Duration,
}

impl Transient {
    /// A fresh budget.
    pub(super) fn new() -> Self {
        Self {
            started: Instant::now(),
            delay: Duration::from_millis(200),
        }
    }

    /// Whether `status` is worth another try; if so, waits before it.
    pub(super) async fn wait(&mut self, status: &tonic::Status) -> bool {
        if !is_transient(status.code()) || self.started.elapsed() >= BUDGET {
            return false;
        }
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Duration::from_secs(5));
        true
    }
}

/// Codes a restarting or unreachable controller produces; never an answer about the job.
pub(super) fn is_transient(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connection_failures_are_retried() {
        assert!(is_transient(tonic::Code::Unavailable));
        for final_answer in [
            tonic::Code::FailedPrecondition,
            tonic::Code::PermissionDenied,
            tonic::Code::InvalidArgument,
            tonic::Code::ResourceExhausted,
            tonic::Code::Internal,
        ] {
            assert!(!is_transient(final_answer), "{final_answer:?}");
        }
    }
}
