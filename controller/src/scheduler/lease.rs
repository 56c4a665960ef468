//! Leasing: a runner's long-polling AcquireJob, and what a lease holder may fetch.

use std::time::Duration;

use airlock_attest::Sha256Digest;
use airlock_proto::v1 as pb;

use super::{ACQUIRE_REPOLL, Scheduler, now_ms};
use crate::api::status::ApiError;
use crate::auth::digest::TokenDigest;
use crate::ids::{JobId, LeaseToken, RunnerId};
use crate::store::JobTokenGrant;

/// The longest an AcquireJob call waits for work.
pub const MAX_ACQUIRE_WAIT: Duration = Duration::from_secs(30);

impl Scheduler {
    /// Leases the oldest queued job `runner` can run, waiting up to `wait` (capped at
    /// [`MAX_ACQUIRE_WAIT`]) for one to arrive. The lease records `job_token` as the attempt's
    /// job token; the returned lease carries its expiry but not the token (the caller has it).
    pub async fn acquire(
        &self,
        runner: RunnerId,
        wait: Duration,
        job_token: &JobTokenGrant,
        runner_token: &TokenDigest,
    ) -> Result<Option<pb::Lease>, ApiError> {
        let runner = self.store.runner(runner).await?;
        let deadline = tokio::time::Instant::now() + wait.min(MAX_ACQUIRE_WAIT);
        let mut first = true;
        loop {
            // The caller's runner token was checked when the call arrived; a long poll can
            // outlive it (expiry, a revoked registration), so check again before any later
            // attempt: a revoked runner gets no lease.
            if !std::mem::take(&mut first)
                && self
                    .store
                    .runner_for_token(runner_token, now_ms(&*self.clock))
                    .await?
                    .is_none()
            {
                tracing::warn!(runner_id = %runner.id, "runner token expired or revoked during AcquireJob; no lease");
                return Ok(None);
            }
            // Subscribe before looking, so a job queued in between still wakes us.
            let mut queued = self.hub.queue_receiver();
            let token = LeaseToken::new(self.ids.new_id());
            let now = now_ms(&*self.clock);
            let leased = self
                .store
                .lease_next(&runner, token, job_token, &self.scheduling.lease_terms(now))
                .await?;
            if let Some((job, seq)) = leased {
                tracing::info!(job_id = %job.id, runner_id = %runner.id, attempt = job.attempt, "job leased");
                if job.attempt == 1 {
                    self.metrics
                        .queue_wait
                        .observe_ms(now.saturating_sub(job.created_ms));
                }
                self.hub.published(job.id, seq);
                return Ok(Some(pb::Lease {
                    job_id: job.id.to_string(),
                    lease_token: token.to_string(),
                    attempt: job.attempt,
                    spec_json: job.spec_json,
                    lease_ttl_ms: u32::try_from(self.scheduling.lease_ttl.0.as_millis())
                        .unwrap_or(u32::MAX),
                    job_token: String::new(),
                    job_token_expires_at_unix: crate::auth::runners::job_token_expiry_unix(
                        job.job_token_expires_ms,
                    ),
                }));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::select! {
                woke = tokio::time::timeout_at(deadline, queued.changed()) => match woke {
                    Ok(Ok(())) => continue,
                    Ok(Err(_)) | Err(_) => return Ok(None),
                },
                () = tokio::time::sleep(ACQUIRE_REPOLL) => continue,
                () = self.hub.shutting_down() => return Ok(None),
            }
        }
    }

    /// The source archive digest of a leased job.
    pub async fn source_of(&self, job: JobId, token: LeaseToken) -> Result<Sha256Digest, ApiError> {
        let record = self.fenced(self.store.leased_job(job, token).await)?;
        record.source_sha256.ok_or_else(|| {
            ApiError::FailedPrecondition(format!("job {job} has no uploaded source archive"))
        })
    }
}
