//! Submission: validating a spec, idempotency keys, and queueing (admission).

use airlock_job::{JobSpec, SourceSpec};

use super::{Scheduler, now_ms};
use crate::api::status::ApiError;
use crate::ids::JobId;
use crate::policy::{AdmissionRecord, ClientInput, admission_input};
use crate::store::{NewJob, StoreError, Submitted};

/// Longest idempotency key accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;

impl Scheduler {
    /// Validates and queues a job. `spec_json` is stored exactly as given. With an
    /// idempotency key that an earlier submission used with the same spec, returns that job
    /// and `true` instead of queueing another. A spec with a `trigger` (which only the
    /// webhook receiver builds; the job API refuses one) also records the event in the job's
    /// history and leaves the forge a commit status to post. With `[policy]`, `client` (and
    /// the keyid of the spec's `signer`, if signed) are part of the admission input.
    pub async fn submit(
        &self,
        spec_json: Vec<u8>,
        idempotency_key: &str,
        priority: i32,
        client: &ClientInput,
        signer: Option<&str>,
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
        // Every submission passes the admission policy; there is no other way in.
        let admission = self.admit(&spec, client, signer)?;
        let admission = admission.as_ref();
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
            queued_message: queued_message(&spec, admission),
            forge_status: spec.trigger.is_some(),
            admission_json: admission.map(|a| a.to_json().to_string()),
            signer_keyid: signer.map(str::to_owned),
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

/// The first event's message: who queued the job, and what an evaluate-mode policy would
/// have denied.
fn queued_message(spec: &JobSpec, admission: Option<&AdmissionRecord>) -> String {
    let mut message = "waiting for a runner".to_owned();
    if let Some(trigger) = &spec.trigger {
        message.push_str(&format!(
            "; queued by {} (forge `{}`, delivery {})",
            trigger.describe(),
            trigger.forge,
            trigger.delivery
        ));
        if trigger.is_fork() {
            message.push_str("; a pull request from a fork runs as untrusted-pr");
        }
    }
    if let Some(record) = admission.filter(|r| !r.messages.is_empty()) {
        message.push_str(&format!(
            "; admission policy {} (evaluate mode) would deny: {}",
            record.digest.prefixed(),
            record.messages.join("; ")
        ));
    }
    message
}

impl Scheduler {
    /// Evaluates the admission policy for `spec` submitted by `client` (signed by `signer`).
    /// `None` without `[policy]`. In enforce mode a denial is `PERMISSION_DENIED` with every
    /// message, logged as an audit event; an evaluation error refuses the job in enforce mode
    /// and is recorded as a message in evaluate mode.
    fn admit(
        &self,
        spec: &JobSpec,
        client: &ClientInput,
        signer: Option<&str>,
    ) -> Result<Option<AdmissionRecord>, ApiError> {
        let Some(admission) = &self.admission else {
            return Ok(None);
        };
        let input = admission_input(spec, client, signer);
        let record = match admission.evaluate(&input) {
            Ok(record) => record,
            Err(e) if admission.mode() == crate::config::PolicyMode::Evaluate => AdmissionRecord {
                digest: admission.digest(),
                mode: admission.mode(),
                decision: crate::policy::Decision::Deny,
                messages: vec![e.to_string()],
            },
            Err(e) => {
                tracing::warn!(target: "airlock::audit", client = %client.name, job = %spec.job.name, error = %e, "admission failed closed");
                return Err(ApiError::FailedPrecondition(format!(
                    "{e}; the job is refused (enforce mode fails closed)"
                )));
            }
        };
        if !record.admits() {
            tracing::warn!(
                target: "airlock::audit",
                client = %client.name,
                job = %spec.job.name,
                profile = %spec.job.profile,
                policy = %record.digest.prefixed(),
                messages = ?record.messages,
                "admission denied"
            );
            return Err(ApiError::PermissionDenied(format!(
                "the admission policy {} denied the job: {}",
                record.digest.prefixed(),
                record.messages.join("; ")
            )));
        }
        Ok(Some(record))
    }
}
