//! Completion: ending a lease, re-checking a reported success against the controller's own
//! digests, and signing its provenance.

use airlock_attest::Sha256Digest;
use airlock_job::JobSpec;
use airlock_proto::v1 as pb;

use super::{Scheduler, compare_outputs};
use crate::api::status::ApiError;
use crate::clock::{from_unix_ms, unix_ms};
use crate::ids::{JobId, LeaseToken};
use crate::provenance::caches::CacheUse;
use crate::provenance::dependencies::parse_dependencies;
use crate::provenance::sbom::{SbomInputs, build_sbom, parse_findings, parse_image_contents};
use crate::provenance::statement::{
    CONTROLLER_VERSION, ProvenanceInputs, build_statement, invocation_id, subjects,
};
use crate::provenance::trace::{TraceContext, parse_trace};
use crate::state::JobState;
use crate::store::{Completion, JobRecord, StoredSbom, StoredTrace};

/// What a runner reports when it finishes a job.
#[derive(Debug, Clone, PartialEq)]
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
    /// The image's layer digests as the runner verified them (lowercase hex, base first).
    pub image_layers_sha256: Vec<String>,
    /// The packages of the job's `[[deps]]` lockfiles, as the runner verified them.
    pub dependencies: Vec<pb::ResolvedPackage>,
    /// The caches restored before the first step.
    pub restored_caches: Vec<pb::CacheArchive>,
    /// The caches uploaded after the steps succeeded.
    pub saved_caches: Vec<pb::CacheArchive>,
    /// What the build image's package databases list.
    pub image_contents: Option<pb::ImageContents>,
    /// Known vulnerabilities of the image's packages and the lockfile packages.
    pub vulnerabilities: Vec<pb::VulnerabilityFinding>,
    /// The profile's vulnerability gate failed a build whose steps succeeded.
    pub vulnerability_gate_failed: bool,
    /// What the steps did, when the profile traces them.
    pub trace: Option<pb::RuntimeTrace>,
}

impl Scheduler {
    /// Ends a lease. A runner-reported success becomes SUCCEEDED only when every output
    /// matches the controller's own digests and the provenance is signed; otherwise the job is
    /// INFRA_FAILED with the reason. Returns the recorded state.
    pub async fn complete(
        &self,
        job: JobId,
        token: LeaseToken,
        report: RunnerCompletion,
    ) -> Result<JobState, ApiError> {
        let record = self.fenced(self.store.leased_job(job, token).await)?;
        let finished = self.clock.now();
        let finished_ms = unix_ms(finished);
        let failure = |state: JobState, default: &str| {
            let message = if report.message.is_empty() {
                default.to_owned()
            } else {
                report.message.clone()
            };
            Completion {
                exit_code: report.exit_code,
                retryable: state == JobState::InfraFailed,
                ..Completion::ended(state, message, finished_ms, None)
            }
        };
        let mut saved = Vec::new();
        let mut completion = match report.outcome {
            pb::Outcome::Unspecified => {
                return Err(ApiError::invalid(
                    "outcome",
                    "OUTCOME_UNSPECIFIED; send how the job ended",
                ));
            }
            pb::Outcome::Succeeded => {
                let (completion, caches) = self.succeed(&record, &report, finished).await?;
                saved = caches;
                completion
            }
            pb::Outcome::Failed if report.vulnerability_gate_failed => {
                self.gate_failed(&record, &report, finished).await?
            }
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
        let (seq, state) = self.fenced(
            self.store
                .complete(job, token, &completion, &self.scheduling.retry())
                .await,
        )?;
        self.hub.published(job, seq);
        // Saved caches count only for a job that ended SUCCEEDED.
        if state == JobState::Succeeded {
            self.record_saved_caches(job, &saved).await;
        }
        if let Some(started) = record.started_ms {
            self.metrics
                .execution
                .observe_ms(finished_ms.saturating_sub(started));
        }
        let runner = record.runner_id.map(|r| r.to_string()).unwrap_or_default();
        if state == JobState::Queued {
            self.metrics.retries.inc("runner_infra_failure");
            self.hub.job_queued();
            tracing::warn!(job_id = %job, runner_id = %runner, attempt = record.attempt, message = %completion.message, "attempt failed (infrastructure); re-queued");
        } else {
            self.finished(record.created_ms, state, finished_ms);
            tracing::info!(job_id = %job, runner_id = %runner, attempt = record.attempt, %state, message = %completion.message, "job finished");
        }
        Ok(state)
    }

    /// Checks what a runner reports of a build whose steps succeeded against the
    /// controller's own records; `Err` holds why the report is refused.
    async fn check_build(
        &self,
        record: &JobRecord,
        report: &RunnerCompletion,
        finished: std::time::SystemTime,
    ) -> Result<Result<CheckedBuild, String>, ApiError> {
        let outputs = self.store.outputs(record.id, record.attempt).await?;
        if let Err(message) = compare_outputs(&report.outputs, &outputs) {
            return Ok(Err(format!("output verification failed: {message}")));
        }
        let spec = match JobSpec::from_json(&record.spec_json) {
            Ok(spec) => spec,
            Err(e) => return Ok(Err(format!("the stored spec no longer parses: {e}"))),
        };
        let images = match self.verify_images(&spec, &outputs).await {
            Ok(images) => images,
            Err(e) => return Ok(Err(format!("image output verification failed: {e}"))),
        };
        let pinned = *spec.image.reference.digest();
        if !report.image_manifest_sha256.is_empty() && report.image_manifest_sha256 != pinned.hex()
        {
            return Ok(Err(format!(
                "the runner reports image manifest sha256:{} but the job pins {}",
                report.image_manifest_sha256,
                pinned.prefixed()
            )));
        }
        let image_layers = match report
            .image_layers_sha256
            .iter()
            .map(|l| Sha256Digest::from_hex(l))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(layers) => layers,
            Err(e) => {
                return Ok(Err(format!(
                    "the runner reports an image layer digest that is not sha256 hex: {e}"
                )));
            }
        };
        if spec.deps.is_empty() && !report.dependencies.is_empty() {
            return Ok(Err(
                "the runner reports lockfile dependencies for a job without [[deps]]".into(),
            ));
        }
        let dependencies = match parse_dependencies(&report.dependencies) {
            Ok(deps) => deps,
            Err(e) => return Ok(Err(format!("the runner's dependency report: {e}"))),
        };
        let caches = match self
            .check_cache_report(&spec, &report.restored_caches, &report.saved_caches)
            .await
        {
            Ok(caches) => caches,
            Err(e) => return Ok(Err(format!("the runner's cache report: {e}"))),
        };
        let contents = match parse_image_contents(report.image_contents.as_ref()) {
            Ok(contents) => contents,
            Err(e) => return Ok(Err(format!("the runner's image package report: {e}"))),
        };
        let vulnerabilities = match parse_findings(&report.vulnerabilities) {
            Ok(findings) => findings,
            Err(e) => return Ok(Err(format!("the runner's vulnerability report: {e}"))),
        };
        let trace = match &report.trace {
            Some(reported) => {
                let invocation =
                    invocation_id(&self.issuer, &record.id.to_string(), record.attempt);
                let context = TraceContext {
                    issuer: &self.issuer,
                    invocation_id: &invocation,
                    spec: &spec,
                    started: from_unix_ms(record.leased_ms.unwrap_or(record.created_ms)),
                    finished,
                };
                match parse_trace(reported, &context) {
                    Ok(trace) => Some(trace),
                    Err(e) => return Ok(Err(format!("the runner's runtime trace: {e}"))),
                }
            }
            None => None,
        };
        Ok(Ok(CheckedBuild {
            trace,
            spec,
            outputs,
            images,
            pinned,
            image_layers,
            dependencies,
            caches,
            contents,
            vulnerabilities,
        }))
    }

    /// The signed SBOM of a checked build.
    fn sign_sbom(
        &self,
        record: &JobRecord,
        build: &CheckedBuild,
        created: std::time::SystemTime,
    ) -> Result<StoredSbom, String> {
        let invocation = invocation_id(&self.issuer, &record.id.to_string(), record.attempt);
        let (sbom, subject) = build_sbom(SbomInputs {
            invocation_id: &invocation,
            spec: &build.spec,
            outputs: &build.outputs,
            images: &build.images,
            image_digest: &build.pinned,
            contents: build.contents.clone(),
            dependencies: &build.dependencies,
            vulnerabilities: build.vulnerabilities.clone(),
            created,
            serial_number: format!("urn:uuid:{}", self.ids.new_id()),
            controller_version: CONTROLLER_VERSION,
        });
        let documents = airlock_attest::sbom::render(&sbom, subject)
            .map_err(|e| format!("cannot build the SBOM: {e}"))?;
        self.signer
            .sign_sbom(&build.spec.job.profile, &documents)
            .map_err(|e| format!("cannot sign the SBOM: {e}"))
    }

    /// The signed runtime trace of a checked build, if it was traced, with the network
    /// exceptions when its profile fails jobs on them.
    #[allow(clippy::type_complexity)]
    fn sign_trace(
        &self,
        record: &JobRecord,
        build: &CheckedBuild,
    ) -> Result<Option<(StoredTrace, Option<String>)>, String> {
        let Some(trace) = &build.trace else {
            return Ok(None);
        };
        let verdict = airlock_attest::trace::hermeticity(&trace.steps);
        let predicate = trace
            .predicate()
            .map_err(|e| format!("cannot build the runtime trace: {e}"))?;
        let statement = airlock_attest::trace::TraceStatement::new(
            subjects(&build.spec, &build.outputs, &build.images),
            predicate,
        );
        let stored = self
            .signer
            .sign_trace(&build.spec.job.profile, &statement, verdict.summary())
            .map_err(|e| format!("cannot sign the runtime trace: {e}"))?;
        tracing::info!(job_id = %record.id, hermeticity = %stored.hermeticity, "runtime trace signed");
        let network = (trace.fail_on_network && verdict.network).then(|| {
            verdict
                .exceptions
                .iter()
                .filter(|e| e.starts_with("network:"))
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        });
        Ok(Some((stored, network)))
    }

    /// The completion of a build the profile's vulnerability gate failed after its steps
    /// succeeded: FAILED with the runner's list, and the SBOM still made and signed (no
    /// provenance). A report that does not check out is INFRA_FAILED, as for a success.
    async fn gate_failed(
        &self,
        record: &JobRecord,
        report: &RunnerCompletion,
        finished: std::time::SystemTime,
    ) -> Result<Completion, ApiError> {
        let finished_ms = unix_ms(finished);
        let log_sha256 = self.store.log_digest(record.id).await?;
        let mut completion = Completion::ended(
            JobState::InfraFailed,
            String::new(),
            finished_ms,
            Some(log_sha256),
        );
        let build = match self.check_build(record, report, finished).await? {
            Ok(build) => build,
            Err(message) => {
                completion.message = message;
                return Ok(completion);
            }
        };
        match self.sign_sbom(record, &build, finished) {
            Ok(sbom) => {
                completion.state = JobState::Failed;
                completion.message = if report.message.is_empty() {
                    "the profile's vulnerability gate refused the build".to_owned()
                } else {
                    report.message.clone()
                };
                completion.sbom = Some(sbom);
                match self.sign_trace(record, &build) {
                    Ok(trace) => completion.trace = trace.map(|(stored, _)| stored),
                    Err(message) => {
                        completion.state = JobState::InfraFailed;
                        completion.message = message;
                        completion.sbom = None;
                    }
                }
            }
            Err(message) => completion.message = message,
        }
        Ok(completion)
    }

    /// The completion of a runner-reported success: verified and signed (with the caches
    /// to record once it is stored), or INFRA_FAILED.
    async fn succeed(
        &self,
        record: &JobRecord,
        report: &RunnerCompletion,
        finished: std::time::SystemTime,
    ) -> Result<(Completion, Vec<CacheUse>), ApiError> {
        let finished_ms = unix_ms(finished);
        let log_sha256 = self.store.log_digest(record.id).await?;
        // A refused success saves no cache.
        let infra = |message: String| {
            tracing::warn!(job_id = %record.id, %message, "success report refused");
            let completion = Completion::ended(
                JobState::InfraFailed,
                message,
                finished_ms,
                Some(log_sha256),
            );
            (completion, Vec::new())
        };
        let build = match self.check_build(record, report, finished).await? {
            Ok(build) => build,
            Err(message) => return Ok(infra(message)),
        };
        let Some(runner_id) = record.runner_id else {
            return Ok(infra("the job has no runner on record".into()));
        };
        let runner = self.store.runner(runner_id).await?;
        let started = from_unix_ms(record.leased_ms.unwrap_or(record.created_ms));
        let job_id = record.id.to_string();
        let runner_id = runner.id.to_string();
        let admission: Option<serde_json::Value> = match record.admission_json.as_deref() {
            Some(text) => match serde_json::from_str(text) {
                Ok(value) => Some(value),
                Err(e) => {
                    return Ok(infra(format!(
                        "the stored admission record is corrupt: {e}"
                    )));
                }
            },
            None => None,
        };
        let inputs = ProvenanceInputs {
            issuer: &self.issuer,
            mode: self.mode,
            controller_version: CONTROLLER_VERSION,
            job_id: &job_id,
            attempt: record.attempt,
            spec: &build.spec,
            spec_json: &record.spec_json,
            runner_id: &runner_id,
            runner_version: &runner.version,
            image_digest: &build.pinned,
            image_layers: &build.image_layers,
            dependencies: &build.dependencies,
            caches: &build.caches,
            outputs: &build.outputs,
            images: &build.images,
            log_sha256: &log_sha256,
            started,
            finished,
            admission: admission.as_ref(),
            signer_keyid: record.signer_keyid.as_deref(),
        };
        let statement = match build_statement(&inputs) {
            Ok(s) => s,
            Err(e) => return Ok(infra(format!("cannot build provenance: {e}"))),
        };
        let signed = match self.signer.sign(&build.spec.job.profile, &statement) {
            Ok(signed) => signed,
            Err(e) => return Ok(infra(format!("cannot sign provenance: {e}"))),
        };
        // Nothing is stored unsigned: an SBOM that cannot be made or signed fails the job
        // like provenance that cannot.
        let sbom = match self.sign_sbom(record, &build, finished) {
            Ok(sbom) => sbom,
            Err(message) => return Ok(infra(message)),
        };
        let trace = match self.sign_trace(record, &build) {
            Ok(trace) => trace,
            Err(message) => return Ok(infra(message)),
        };
        // A profile that fails jobs on network attempts: FAILED, with the signed SBOM and
        // trace that show why, and no provenance.
        if let Some((stored, Some(network))) = &trace {
            return Ok((
                Completion {
                    sbom: Some(sbom),
                    trace: Some(stored.clone()),
                    ..Completion::ended(
                        JobState::Failed,
                        format!(
                            "the runtime trace saw network attempts and profile `{}` fails \
                             jobs on them: {network}",
                            build.spec.job.profile
                        ),
                        finished_ms,
                        Some(log_sha256),
                    )
                },
                Vec::new(),
            ));
        }
        Ok((
            Completion {
                builder_id: Some(statement.predicate.run_details.builder.id.clone()),
                provenance: Some(signed),
                sbom: Some(sbom),
                trace: trace.map(|(stored, _)| stored),
                ..Completion::ended(
                    JobState::Succeeded,
                    String::new(),
                    finished_ms,
                    Some(log_sha256),
                )
            },
            build.caches.saved,
        ))
    }
}

/// A runner's report of a build whose steps succeeded, as checked by [`Scheduler::check_build`].
struct CheckedBuild {
    spec: JobSpec,
    outputs: Vec<crate::store::OutputRecord>,
    images: Vec<crate::provenance::images::ImageSubject>,
    pinned: Sha256Digest,
    image_layers: Vec<Sha256Digest>,
    dependencies: Vec<crate::provenance::dependencies::PackageDependency>,
    caches: crate::provenance::caches::CacheReport,
    contents: airlock_attest::sbom::ImageContents,
    vulnerabilities: Vec<airlock_attest::sbom::SbomVulnerability>,
    trace: Option<airlock_attest::trace::Trace>,
}
