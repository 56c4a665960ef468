//! The periodic sweep: lapsed leases, attempts past their deadline, expired runner tokens and
//! web sessions.

use super::{Scheduler, now_ms};
use crate::api::status::ApiError;
use crate::state::JobState;
use crate::store::ExpiryCause;
#[cfg(doc)]
use crate::store::Store;

impl Scheduler {
    /// Ends lapsed leases and attempts past their deadline (see [`Store::expire_leases`]) and
    /// deletes expired runner tokens and web sessions; called periodically by the server.
    /// Returns how many leases were ended.
    pub async fn sweep(&self) -> Result<usize, ApiError> {
        let now = now_ms(&*self.clock);
        self.store.delete_expired_runner_tokens(now).await?;
        self.store.delete_expired_web_sessions(now).await?;
        let ended = self
            .store
            .expire_leases(now, &self.scheduling.retry())
            .await?;
        for e in &ended {
            self.hub.published(e.job, e.seq);
            let runner = e.runner_id.map(|r| r.to_string()).unwrap_or_default();
            match e.cause {
                ExpiryCause::LeaseExpired => {
                    self.metrics
                        .lease_expiries
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(job_id = %e.job, runner_id = %runner, attempt = e.attempt, state = %e.state, "lease expired");
                }
                ExpiryCause::Deadline => {
                    tracing::warn!(job_id = %e.job, runner_id = %runner, attempt = e.attempt, "attempt passed its deadline");
                }
            }
            if e.state == JobState::Queued {
                self.metrics.retries.inc("lease_expired");
                self.hub.job_queued();
            } else if let Ok(record) = self.store.job(e.job).await {
                self.finished(record.created_ms, e.state, now);
            }
        }
        Ok(ended.len())
    }
}
