//! Read-only views for clients: a job, its outputs and its provenance.

use airlock_proto::v1 as pb;

use super::Scheduler;
use crate::api::status::ApiError;
use crate::ids::JobId;
use crate::state::JobState;
use crate::store::{JobRecord, OutputRecord};

impl Scheduler {
    /// The client view of a job.
    pub async fn job_view(&self, id: JobId) -> Result<pb::Job, ApiError> {
        let job = self.store.job(id).await?;
        let outputs = if job.attempt > 0 {
            self.store.outputs(id, job.attempt).await?
        } else {
            Vec::new()
        };
        let attempts = self.store.attempts(id).await?;
        let hermeticity = self
            .store
            .trace(id)
            .await?
            .map(|t| t.hermeticity)
            .unwrap_or_default();
        Ok(pb::Job {
            hermeticity,
            job_id: id.to_string(),
            name: job.name,
            state: job.state.to_proto_i32(),
            message: job.message,
            exit_code: job.exit_code,
            created_at_ms: job.created_ms,
            started_at_ms: job.started_ms.or(job.leased_ms).unwrap_or(0),
            finished_at_ms: job.finished_ms.unwrap_or(0),
            outputs: outputs
                .into_iter()
                .map(|o| pb::OutputFile {
                    path: o.path,
                    sha256: o.sha256.hex(),
                    size: o.size,
                    executable: o.executable,
                })
                .collect(),
            builder_id: job.builder_id.unwrap_or_default(),
            runner_id: job.runner_id.map(|r| r.to_string()).unwrap_or_default(),
            attempt: job.attempt,
            attempts: attempts
                .into_iter()
                .map(|a| pb::Attempt {
                    attempt: a.attempt,
                    runner_id: a.runner_id.to_string(),
                    leased_at_ms: a.leased_ms,
                    finished_at_ms: a.finished_ms.unwrap_or(0),
                    state: a.state.map(JobState::to_proto_i32).unwrap_or(0),
                    reason: a.reason,
                })
                .collect(),
            cancel_requested: job.cancel_requested,
            priority: job.priority,
            triggered_by: trigger_of(&job.spec_json)
                .map(|t| t.describe())
                .unwrap_or_default(),
            policy_violations: job
                .admission_json
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok())
                .map(|v| crate::policy::AdmissionRecord::stored_messages(&v))
                .unwrap_or_default(),
        })
    }

    /// The job record (NOT_FOUND if unknown).
    pub async fn job(&self, id: JobId) -> Result<JobRecord, ApiError> {
        Ok(self.store.job(id).await?)
    }

    /// The stored output `path` of the job's latest attempt.
    pub async fn output(&self, id: JobId, path: &str) -> Result<OutputRecord, ApiError> {
        let job = self.store.job(id).await?;
        let outputs = self.store.outputs(id, job.attempt).await?;
        outputs
            .into_iter()
            .find(|o| o.path == path)
            .ok_or_else(|| ApiError::NotFound(format!("job {id} has no output `{path}`")))
    }

    /// The signed provenance of a succeeded job.
    pub async fn provenance(&self, id: JobId) -> Result<pb::ProvenanceDocuments, ApiError> {
        let job = self.store.job(id).await?;
        let sbom = self.store.sbom(id).await?;
        let trace_envelope_json = self
            .store
            .trace(id)
            .await?
            .map(|t| t.envelope_json)
            .unwrap_or_default();
        match (job.state, job.provenance, sbom) {
            (JobState::Succeeded, Some(p), sbom) => {
                let sbom = sbom.unwrap_or_else(no_sbom);
                Ok(pb::ProvenanceDocuments {
                    envelope_json: p.envelope_json,
                    bundle_json: p.bundle_json,
                    keyid: p.keyid,
                    builder_id: job.builder_id.unwrap_or_default(),
                    public_key_pem: p.public_key_pem,
                    sbom_envelope_json: sbom.envelope_json,
                    spdx_json: sbom.spdx_json,
                    cyclonedx_json: sbom.cyclonedx_json,
                    trace_envelope_json,
                })
            }
            // The vulnerability gate, or the trace's network rule, failed the job: its SBOM
            // and trace, and no provenance.
            (JobState::Failed, None, Some(sbom)) => Ok(pb::ProvenanceDocuments {
                trace_envelope_json,
                keyid: sbom.keyid,
                public_key_pem: sbom.public_key_pem,
                sbom_envelope_json: sbom.envelope_json,
                spdx_json: sbom.spdx_json,
                cyclonedx_json: sbom.cyclonedx_json,
                ..Default::default()
            }),
            (state, _, _) => Err(ApiError::FailedPrecondition(format!(
                "job {id} is {state}; provenance exists only for SUCCEEDED jobs"
            ))),
        }
    }
}

/// Jobs that succeeded before SBOMs existed have none: their fields stay empty.
fn no_sbom() -> crate::store::StoredSbom {
    crate::store::StoredSbom {
        spdx_json: String::new(),
        cyclonedx_json: String::new(),
        envelope_json: String::new(),
        keyid: String::new(),
        public_key_pem: String::new(),
    }
}

/// The `trigger` of a stored spec, if a forge queued the job. Only that field is read: the
/// spec was validated when it was queued.
pub fn trigger_of(spec_json: &[u8]) -> Option<airlock_job::Trigger> {
    #[derive(serde::Deserialize)]
    struct WithTrigger {
        #[serde(default)]
        trigger: Option<airlock_job::Trigger>,
    }
    serde_json::from_slice::<WithTrigger>(spec_json)
        .ok()
        .and_then(|s| s.trigger)
}
