//! The control plane's job logic: admission, the queue and leases, progress, output checks,
//! completion and provenance. The gRPC services are thin adapters over [`Scheduler`]; time
//! and ids are injected so every decision here is testable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use airlock_attest::Sha256Digest;
use airlock_job::{JobSpec, SourceSpec, is_clean_relative};
use airlock_proto::v1 as pb;

use crate::blobs::BlobStore;
use crate::clock::{Clock, IdGen, from_unix_ms, unix_ms};
use crate::config::Mode;
use crate::hub::Hub;
use crate::ids::{JobId, LeaseToken, RunnerId};
use crate::provenance::{self, CONTROLLER_VERSION, ProvenanceInputs};
use crate::signer::Signer;
use crate::state::JobState;
use crate::status::ApiError;
use crate::store::{Completion, EventKind, JobRecord, NewJob, OutputRecord, RunnerRecord, Store};

/// The longest an AcquireJob call waits for work.
pub const MAX_ACQUIRE_WAIT: Duration = Duration::from_secs(30);

/// What a runner reports when it finishes a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerCompletion {
    /// How the job ended, from the runner's point of view.
    pub outcome: pb::Outcome,
    /// Why (for anything but success).
    pub message: String,
    /// The failing step's exit code.
    pub exit_code: i32,
    /// Every output the runner uploaded, with the runner's digests.
    pub outputs: Vec<pb::OutputFile>,
    /// The image manifest digest the runner ran (lowercase hex; may be empty).
    pub image_manifest_sha256: String,
}

/// An output upload that passed its checks and may now stream bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputClaim {
    /// The job.
    pub job: JobId,
    /// The lease.
    pub token: LeaseToken,
    /// The clean relative path.
    pub path: String,
    /// The runner's claimed digest.
    pub sha256: Sha256Digest,
    /// The runner's claimed size.
    pub size: u64,
    /// Whether the file had an execute bit.
    pub executable: bool,
}

/// Shared state and logic behind both services.
#[derive(Debug)]
pub struct Scheduler {
    store: Store,
    blobs: BlobStore,
    hub: Arc<Hub>,
    signer: Signer,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGen>,
    issuer: String,
    mode: Mode,
    max_upload: u64,
}

/// The parts a [`Scheduler`] is made of.
#[derive(Debug)]
pub struct SchedulerParts {
    /// The database.
    pub store: Store,
    /// The blob store.
    pub blobs: BlobStore,
    /// The provenance signer.
    pub signer: Signer,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The id generator.
    pub ids: Arc<dyn IdGen>,
    /// Issuer URL (no trailing `/`).
    pub issuer: String,
    /// Server or local.
    pub mode: Mode,
    /// Upload cap, in bytes.
    pub max_upload: u64,
}

fn now_ms(clock: &dyn Clock) -> i64 {
    unix_ms(clock.now())
}

impl Scheduler {
    /// Assembles a scheduler.
    pub fn new(parts: SchedulerParts) -> Self {
        Self {
            store: parts.store,
            blobs: parts.blobs,
            hub: Arc::new(Hub::default()),
            signer: parts.signer,
            clock: parts.clock,
            ids: parts.ids,
            issuer: parts.issuer.trim_end_matches('/').to_owned(),
            mode: parts.mode,
            max_upload: parts.max_upload,
        }
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The notification hub.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Validates and queues a job. `spec_json` is stored exactly as given.
    pub async fn submit(&self, spec_json: Vec<u8>) -> Result<JobId, ApiError> {
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
                *digest
            }
            SourceSpec::Path { sha256: None, .. } => {
                return Err(ApiError::FailedPrecondition(
                    "source.sha256 is missing: upload the source first (UploadSource) and put \
                     the returned sha256 in the spec's source"
                        .into(),
                ));
            }
            SourceSpec::Git { .. } => {
                return Err(ApiError::FailedPrecondition(
                    "git sources are not supported yet; use `path = DIR` (the client uploads it)"
                        .into(),
                ));
            }
            SourceSpec::Archive { .. } => {
                return Err(ApiError::FailedPrecondition(
                    "archive sources are not supported yet; use `path = DIR` (the client \
                     uploads it)"
                        .into(),
                ));
            }
        };
        let id = JobId::new(self.ids.new_id());
        let job = NewJob {
            id,
            name: spec.job.name.clone(),
            spec_json,
            profile: spec.job.profile.clone(),
            labels: spec.job.labels.clone(),
            source_sha256: Some(source_sha256),
            created_ms: now_ms(&*self.clock),
        };
        let seq = self.store.insert_job(&job).await?;
        tracing::info!(job_id = %id, name = %job.name, profile = %job.profile, "job queued");
        self.hub.published(id, seq);
        self.hub.job_queued();
        Ok(id)
    }

    /// The client view of a job.
    pub async fn job_view(&self, id: JobId) -> Result<pb::Job, ApiError> {
        let job = self.store.job(id).await?;
        let outputs = if job.attempt > 0 {
            self.store.outputs(id, job.attempt).await?
        } else {
            Vec::new()
        };
        Ok(pb::Job {
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
        match (job.state, job.provenance) {
            (JobState::Succeeded, Some(p)) => Ok(pb::ProvenanceDocuments {
                envelope_json: p.envelope_json,
                bundle_json: p.bundle_json,
                keyid: p.keyid,
                builder_id: job.builder_id.unwrap_or_default(),
                public_key_pem: p.public_key_pem,
            }),
            (state, _) => Err(ApiError::FailedPrecondition(format!(
                "job {id} is {state}; provenance exists only for SUCCEEDED jobs"
            ))),
        }
    }

    /// Registers a runner.
    pub async fn register_runner(
        &self,
        name: String,
        labels: Vec<String>,
        version: String,
    ) -> Result<RunnerId, ApiError> {
        if name.trim().is_empty() {
            return Err(ApiError::invalid(
                "name",
                "empty; send the runner's host name",
            ));
        }
        if version.trim().is_empty() {
            return Err(ApiError::invalid(
                "version",
                "empty; send the runner's airlock version (it is recorded in provenance)",
            ));
        }
        if let Some(i) = labels.iter().position(|l| l.trim().is_empty()) {
            return Err(ApiError::invalid(format!("labels[{i}]"), "empty label"));
        }
        let id = RunnerId::new(self.ids.new_id());
        self.store
            .insert_runner(&RunnerRecord {
                id,
                name: name.clone(),
                labels,
                version,
                registered_ms: now_ms(&*self.clock),
            })
            .await?;
        tracing::info!(runner_id = %id, runner = %name, "runner registered");
        Ok(id)
    }

    /// Leases the oldest queued job `runner` can run, waiting up to `wait` (capped at
    /// [`MAX_ACQUIRE_WAIT`]) for one to arrive.
    pub async fn acquire(
        &self,
        runner: RunnerId,
        wait: Duration,
    ) -> Result<Option<pb::Lease>, ApiError> {
        let runner = self.store.runner(runner).await?;
        let deadline = tokio::time::Instant::now() + wait.min(MAX_ACQUIRE_WAIT);
        loop {
            // Subscribe before looking, so a job queued in between still wakes us.
            let mut queued = self.hub.queue_receiver();
            let token = LeaseToken::new(self.ids.new_id());
            let leased = self
                .store
                .lease_next(&runner, token, now_ms(&*self.clock))
                .await?;
            if let Some((job, seq)) = leased {
                tracing::info!(job_id = %job.id, runner_id = %runner.id, attempt = job.attempt, "job leased");
                self.hub.published(job.id, seq);
                return Ok(Some(pb::Lease {
                    job_id: job.id.to_string(),
                    lease_token: token.to_string(),
                    attempt: job.attempt,
                    spec_json: job.spec_json,
                }));
            }
            tokio::select! {
                woke = tokio::time::timeout_at(deadline, queued.changed()) => match woke {
                    Ok(Ok(())) => continue,
                    Ok(Err(_)) | Err(_) => return Ok(None),
                },
                () = self.hub.shutting_down() => return Ok(None),
            }
        }
    }

    /// Records runner events under a lease; the first report marks the job RUNNING.
    pub async fn report(
        &self,
        job: JobId,
        token: LeaseToken,
        events: Vec<pb::RunnerEvent>,
    ) -> Result<(), ApiError> {
        let kinds = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| match e.kind {
                Some(pb::runner_event::Kind::Step(step)) => Ok(EventKind::Step(step)),
                Some(pb::runner_event::Kind::Log(log)) => Ok(EventKind::Log(log)),
                None => Err(ApiError::invalid(
                    format!("events[{i}]"),
                    "has neither `step` nor `log`",
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let seq = self
            .store
            .report(job, token, now_ms(&*self.clock), kinds)
            .await?;
        self.hub.published(job, seq);
        Ok(())
    }

    /// The source archive digest of a leased job.
    pub async fn source_of(&self, job: JobId, token: LeaseToken) -> Result<Sha256Digest, ApiError> {
        let record = self.store.leased_job(job, token).await?;
        record.source_sha256.ok_or_else(|| {
            ApiError::FailedPrecondition(format!("job {job} has no uploaded source archive"))
        })
    }

    /// Checks an output header before any bytes are accepted.
    pub async fn claim_output(&self, header: &pb::OutputHeader) -> Result<OutputClaim, ApiError> {
        let job = JobId::parse("header.job_id", &header.job_id)?;
        let token = LeaseToken::parse("header.lease_token", &header.lease_token)?;
        let record = self.store.leased_job(job, token).await?;
        let path = header.path.clone();
        if !is_clean_relative(&path) || path.contains('\\') {
            return Err(ApiError::invalid(
                "header.path",
                format!(
                    "{path:?} is not a clean relative path ('/'-separated, no `..` or `.`, not \
                     absolute, no NUL)"
                ),
            ));
        }
        let sha256 = Sha256Digest::from_hex(&header.sha256).map_err(|e| {
            ApiError::invalid("header.sha256", format!("not 64 lowercase hex digits: {e}"))
        })?;
        if header.size > self.max_upload {
            return Err(ApiError::ResourceExhausted(format!(
                "output `{path}` is {} bytes; the controller accepts at most {} \
                 (max_upload_bytes)",
                header.size, self.max_upload
            )));
        }
        if self.store.output_exists(job, record.attempt, &path).await? {
            return Err(ApiError::AlreadyExists(format!(
                "output `{path}` of job {job} was already uploaded; each path is uploaded once"
            )));
        }
        Ok(OutputClaim {
            job,
            token,
            path,
            sha256,
            size: header.size,
            executable: header.executable,
        })
    }

    /// Records an uploaded output whose bytes the controller hashed itself.
    pub async fn record_output(
        &self,
        claim: &OutputClaim,
        sha256: Sha256Digest,
        size: u64,
    ) -> Result<(), ApiError> {
        self.store
            .insert_output(
                claim.job,
                claim.token,
                &OutputRecord {
                    path: claim.path.clone(),
                    sha256,
                    size,
                    executable: claim.executable,
                },
            )
            .await?;
        tracing::info!(job_id = %claim.job, path = %claim.path, sha256 = %sha256, size, "output recorded");
        Ok(())
    }

    /// Ends a lease. A runner-reported success becomes SUCCEEDED only when every output
    /// matches the controller's own digests and the provenance is signed; otherwise the job is
    /// INFRA_FAILED with the reason. Returns the recorded state.
    pub async fn complete(
        &self,
        job: JobId,
        token: LeaseToken,
        report: RunnerCompletion,
    ) -> Result<JobState, ApiError> {
        let record = self.store.leased_job(job, token).await?;
        let finished = self.clock.now();
        let finished_ms = unix_ms(finished);
        let failure = |state: JobState, default: &str| Completion {
            state,
            message: if report.message.is_empty() {
                default.to_owned()
            } else {
                report.message.clone()
            },
            exit_code: report.exit_code,
            finished_ms,
            log_sha256: None,
            builder_id: None,
            provenance: None,
        };
        let mut completion = match report.outcome {
            pb::Outcome::Unspecified => {
                return Err(ApiError::invalid(
                    "outcome",
                    "OUTCOME_UNSPECIFIED; send how the job ended",
                ));
            }
            pb::Outcome::Succeeded => self.succeed(&record, &report, finished).await?,
            pb::Outcome::Failed => failure(JobState::Failed, "a step failed"),
            pb::Outcome::TimedOut => failure(JobState::TimedOut, "the job timed out"),
            pb::Outcome::Cancelled => failure(JobState::Cancelled, "the job was cancelled"),
            pb::Outcome::InfraFailed => failure(
                JobState::InfraFailed,
                "the runner reported an infrastructure failure",
            ),
        };
        if completion.log_sha256.is_none() {
            completion.log_sha256 = Some(self.store.log_digest(job).await?);
        }
        let seq = self.store.complete(job, token, &completion).await?;
        self.hub.published(job, seq);
        tracing::info!(job_id = %job, state = %completion.state, message = %completion.message, "job finished");
        Ok(completion.state)
    }

    /// The completion of a runner-reported success: verified and signed, or INFRA_FAILED.
    async fn succeed(
        &self,
        record: &JobRecord,
        report: &RunnerCompletion,
        finished: std::time::SystemTime,
    ) -> Result<Completion, ApiError> {
        let finished_ms = unix_ms(finished);
        let log_sha256 = self.store.log_digest(record.id).await?;
        let outputs = self.store.outputs(record.id, record.attempt).await?;
        let infra = |message: String| {
            tracing::warn!(job_id = %record.id, %message, "success report refused");
            Completion {
                state: JobState::InfraFailed,
                message,
                exit_code: 0,
                finished_ms,
                log_sha256: Some(log_sha256),
                builder_id: None,
                provenance: None,
            }
        };
        if let Err(message) = compare_outputs(&report.outputs, &outputs) {
            return Ok(infra(format!("output verification failed: {message}")));
        }
        let spec = match JobSpec::from_json(&record.spec_json) {
            Ok(spec) => spec,
            Err(e) => return Ok(infra(format!("the stored spec no longer parses: {e}"))),
        };
        let pinned = *spec.image.reference.digest();
        if !report.image_manifest_sha256.is_empty() && report.image_manifest_sha256 != pinned.hex()
        {
            return Ok(infra(format!(
                "the runner reports image manifest sha256:{} but the job pins {}",
                report.image_manifest_sha256,
                pinned.prefixed()
            )));
        }
        let Some(runner_id) = record.runner_id else {
            return Ok(infra("the job has no runner on record".into()));
        };
        let runner = self.store.runner(runner_id).await?;
        let started = from_unix_ms(record.leased_ms.unwrap_or(record.created_ms));
        let job_id = record.id.to_string();
        let runner_id = runner.id.to_string();
        let inputs = ProvenanceInputs {
            issuer: &self.issuer,
            mode: self.mode,
            controller_version: CONTROLLER_VERSION,
            job_id: &job_id,
            attempt: record.attempt,
            spec: &spec,
            spec_json: &record.spec_json,
            runner_id: &runner_id,
            runner_version: &runner.version,
            image_digest: &pinned,
            outputs: &outputs,
            log_sha256: &log_sha256,
            started,
            finished,
        };
        let statement = match provenance::build_statement(&inputs) {
            Ok(s) => s,
            Err(e) => return Ok(infra(format!("cannot build provenance: {e}"))),
        };
        let signed = match self.signer.sign(&statement) {
            Ok(signed) => signed,
            Err(e) => return Ok(infra(format!("cannot sign provenance: {e}"))),
        };
        Ok(Completion {
            state: JobState::Succeeded,
            message: String::new(),
            exit_code: 0,
            finished_ms,
            log_sha256: Some(log_sha256),
            builder_id: Some(statement.predicate.run_details.builder.id.clone()),
            provenance: Some(signed),
        })
    }
}

/// Checks that the runner's reported outputs and the controller's recorded outputs are the same
/// set with the same digests and sizes. The error names every mismatch.
pub fn compare_outputs(
    reported: &[pb::OutputFile],
    recorded: &[OutputRecord],
) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut claimed: BTreeMap<&str, &pb::OutputFile> = BTreeMap::new();
    for o in reported {
        if claimed.insert(o.path.as_str(), o).is_some() {
            problems.push(format!("output `{}` is reported twice", o.path));
        }
    }
    let stored: BTreeMap<&str, &OutputRecord> =
        recorded.iter().map(|o| (o.path.as_str(), o)).collect();
    for (path, claim) in &claimed {
        match stored.get(path) {
            None => problems.push(format!(
                "output `{path}` is reported by the runner but was never uploaded"
            )),
            Some(rec) if rec.sha256.hex() != claim.sha256 => problems.push(format!(
                "output `{path}`: the runner reports sha256 {} but the controller computed {}",
                claim.sha256, rec.sha256
            )),
            Some(rec) if rec.size != claim.size => problems.push(format!(
                "output `{path}`: the runner reports {} bytes but the controller received {}",
                claim.size, rec.size
            )),
            Some(rec) if rec.executable != claim.executable => problems.push(format!(
                "output `{path}`: the runner reports executable={} but uploaded it with \
                 executable={}",
                claim.executable, rec.executable
            )),
            Some(_) => {}
        }
    }
    for path in stored.keys() {
        if !claimed.contains_key(path) {
            problems.push(format!(
                "output `{path}` was uploaded but is missing from the completion report"
            ));
        }
    }
    if recorded.is_empty() && reported.is_empty() {
        problems.push("no outputs were uploaded".to_owned());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(path: &str, data: &[u8]) -> OutputRecord {
        OutputRecord {
            path: path.into(),
            sha256: Sha256Digest::of(data),
            size: data.len() as u64,
            executable: false,
        }
    }

    fn rep(path: &str, data: &[u8]) -> pb::OutputFile {
        pb::OutputFile {
            path: path.into(),
            sha256: Sha256Digest::of(data).hex(),
            size: data.len() as u64,
            executable: false,
        }
    }

    #[test]
    fn output_sets_must_match() {
        let stored = [rec("a", b"1"), rec("b", b"2")];
        assert!(compare_outputs(&[rep("b", b"2"), rep("a", b"1")], &stored).is_ok());
        let e = compare_outputs(&[rep("a", b"1"), rep("b", b"X")], &stored).unwrap_err();
        assert!(
            e.contains("output `b`") && e.contains("controller computed"),
            "{e}"
        );
        let e = compare_outputs(&[rep("a", b"1")], &stored).unwrap_err();
        assert!(e.contains("`b` was uploaded but is missing"), "{e}");
        let e = compare_outputs(&[rep("a", b"1"), rep("b", b"2"), rep("c", b"3")], &stored)
            .unwrap_err();
        assert!(
            e.contains("`c` is reported by the runner but was never uploaded"),
            "{e}"
        );
        assert!(compare_outputs(&[], &[]).is_err());
    }
}
