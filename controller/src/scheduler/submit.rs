//! Submission: validating a spec, idempotency keys, and queueing (admission).

use airlock_job::{JobSpec, SourceSpec};

use super::{Scheduler, now_ms};
use crate::api::status::ApiError;
use crate::ids::JobId;
use crate::store::{NewJob, StoreError, Submitted};

/// Longest idempotency key accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;

impl Scheduler {
    /// Validates and queues a job. `spec_json` is stored exactly as given. With an
    /// idempotency key that an earlier submission used with the same spec, returns that job
    /// and `true` instead of queueing another. A spec with a `trigger` (which only the
    /// webhook receiver builds; the job API refuses one) also records the event in the job's
    /// history and leaves the forge a commit status to post.
    pub async fn submit(
        &self,
        spec_json: Vec<u8>,
        idempotency_key: &str,
        priority: i32,
    ) -> Result<(JobId, bool), ApiError> {
        if idempotency_key.len() > MAX_IDEMPOTENCY_KEY
            || idempotency_key.bytes().any(|b| !(0x21..0x7f).contains(&b))
        {
            return Err(ApiError::invalid(
                "idempotency_key",
                format!(
                    "must be 1-{MAX_IDEMPOTENCY_KEY} printable ASCII characters without spaces \
                     (or empty for none)"
                ),
            ));
        }
        if !(-100..=100).contains(&priority) {
            return Err(ApiError::invalid(
                "priority",
                format!("{priority} is outside -100..=100"),
            ));
        }
        let spec = JobSpec::from_json(&spec_json)
            .map_err(|e| ApiError::invalid("spec_json", e.to_string()))?;
        let source_sha256 = match &spec.source {
            SourceSpec::Path {
                sha256: Some(digest),
                ..
            } => {
                if !self.blobs.contains(digest).await {
                    return Err(ApiError::FailedPrecondition(format!(
                        "source.sha256: the controller has no source archive {}; upload the \
                         source first (UploadSource), then submit",
                        digest.prefixed()
                    )));
                }
                Some(*digest)
            }
            SourceSpec::Path { sha256: None, .. } => {
                return Err(ApiError::FailedPrecondition(
                    "source.sha256 is missing: upload the source first (UploadSource) and put \
                     the returned sha256 in the spec's source"
                        .into(),
                ));
            }
            // Pinned by commit / sha256 in the spec; the runner fetches and verifies them.
            SourceSpec::Git { .. } | SourceSpec::Archive { .. } => None,
        };
        let id = JobId::new(self.ids.new_id());
        let created_ms = now_ms(&*self.clock);
        let tenant = match &spec.source {
            SourceSpec::Path { .. } => format!("name:{}", spec.job.name),
            other => other.uri(),
        };
        let job = NewJob {
            id,
            name: spec.job.name.clone(),
            spec_json,
            profile: spec.job.profile.clone(),
            labels: spec.job.labels.clone(),
            source_sha256,
            created_ms,
            idempotency_key: (!idempotency_key.is_empty()).then(|| idempotency_key.to_owned()),
            priority,
            queue_key: self.scheduling.queue_key(created_ms, priority),
            tenant,
            timeout_ms: i64::try_from(spec.timeout().as_millis()).unwrap_or(i64::MAX),
            max_attempts: self.scheduling.max_attempts,
            queued_message: match &spec.trigger {
                Some(trigger) => format!(
                    "waiting for a runner; queued by {} (forge `{}`, delivery {}){}",
                    trigger.describe(),
                    trigger.forge,
                    trigger.delivery,
                    if trigger.is_fork() {
                        "; a pull request from a fork runs as untrusted-pr"
                    } else {
                        ""
                    }
                ),
                None => "waiting for a runner".to_owned(),
            },
            forge_status: spec.trigger.is_some(),
        };
        match self.store.insert_job(&job).await {
            Ok(Submitted::New(seq)) => {
                tracing::info!(job_id = %id, name = %job.name, profile = %job.profile, priority, "job queued");
                self.metrics
                    .submitted
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.hub.published(id, seq);
                self.hub.job_queued();
                Ok((id, false))
            }
            Ok(Submitted::Existing(existing)) => {
                tracing::info!(job_id = %existing, "idempotent resubmission; returning the existing job");
                Ok((existing, true))
            }
            Err(StoreError::IdempotencyConflict { job }) => Err(ApiError::AlreadyExists(format!(
                "idempotency_key: already used by job {job} with a different spec; use a new key"
            ))),
            Err(e) => Err(e.into()),
        }
    }
}
