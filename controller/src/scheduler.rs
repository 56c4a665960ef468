//! The control plane's job logic: admission, the queue and leases, progress, output checks,
//! completion and provenance. The gRPC services are thin adapters over [`Scheduler`]; time
//! and ids are injected so every decision here is testable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use airlock_attest::Sha256Digest;
use airlock_job::{JobSpec, SourceSpec, is_clean_relative};
use airlock_proto::v1 as pb;

use crate::auth::TokenDigest;
use crate::blobs::BlobStore;
use crate::clock::{Clock, IdGen, from_unix_ms, unix_ms};
use crate::config::Mode;
use crate::hub::Hub;
use crate::ids::{JobId, LeaseToken, RunnerId};
use crate::metrics::Metrics;
use crate::oidc::{JobFacts, JobTokenContext, MintError, MintRequest, MintedToken, Minter};
use crate::provenance::{self, CONTROLLER_VERSION, ProvenanceInputs};
use crate::scheduling::SchedulingConfig;
use crate::signer::Signer;
use crate::state::JobState;
use crate::status::ApiError;
use crate::store::{
    Completion, EventKind, ExpiryCause, JobRecord, JobTokenGrant, NewJob, OutputRecord,
    RunnerRecord, Store, StoreError, Submitted,
};

/// Longest idempotency key accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;

/// How often a waiting AcquireJob re-queries the store even without a local notification
/// (retry backoffs ending, jobs queued through another replica).
const ACQUIRE_REPOLL: Duration = Duration::from_millis(500);

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
    /// The image's layer digests as the runner verified them (lowercase hex, base first).
    pub image_layers_sha256: Vec<String>,
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
    scheduling: SchedulingConfig,
    metrics: Arc<Metrics>,
    minter: Option<Minter>,
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
    /// Leases, retries, deadlines, fairness.
    pub scheduling: SchedulingConfig,
    /// The build-token minter (`[oidc]`); `None`: no build tokens are issued.
    pub minter: Option<Minter>,
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
            scheduling: parts.scheduling,
            metrics: Arc::new(Metrics::default()),
            minter: parts.minter,
        }
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The scheduling settings.
    pub fn scheduling(&self) -> &SchedulingConfig {
        &self.scheduling
    }

    /// The `/metrics` text.
    pub async fn render_metrics(&self) -> Result<String, ApiError> {
        let depth = self.store.queue_depth().await?;
        Ok(self.metrics.render(depth))
    }

    /// Counts a refused stale-lease call, then passes the error on.
    fn fenced<T>(&self, r: Result<T, StoreError>) -> Result<T, ApiError> {
        if let Err(StoreError::StaleLease { job, state }) = &r {
            self.metrics
                .stale_lease_calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(job_id = %job, %state, "refused a call with a stale lease token");
        }
        Ok(r?)
    }

    /// Records a job that reached a terminal state.
    fn finished(&self, record_created_ms: i64, state: JobState, now_ms: i64) {
        self.metrics.finished.inc(state.as_str());
        self.metrics
            .end_to_end
            .observe_ms(now_ms.saturating_sub(record_created_ms));
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

    /// Validates and queues a job. `spec_json` is stored exactly as given. With an
    /// idempotency key that an earlier submission used with the same spec, returns that job
    /// and `true` instead of queueing another.
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

    /// Asks a job to stop (see `CancelJob`). Returns the state after the request.
    pub async fn cancel(&self, id: JobId, reason: &str) -> Result<JobState, ApiError> {
        let reason = if reason.trim().is_empty() {
            "cancelled on request".to_owned()
        } else {
            format!("cancelled on request: {}", reason.trim())
        };
        let now = now_ms(&*self.clock);
        let (state, seq) = self.store.request_cancel(id, now, &reason).await?;
        if let Some(seq) = seq {
            self.hub.published(id, seq);
            let created = self.store.job(id).await?.created_ms;
            self.finished(created, state, now);
        }
        if state.is_leased() {
            self.hub.cancel_requested();
        }
        tracing::info!(job_id = %id, %state, "cancel requested");
        Ok(state)
    }

    /// Renews a lease and, as a long poll, waits up to `wait` (capped at the configured
    /// heartbeat wait) for a cancel request. Returns whether a cancel was requested and the
    /// lease TTL.
    pub async fn heartbeat(
        &self,
        job: JobId,
        token: LeaseToken,
        wait: Duration,
    ) -> Result<(bool, Duration), ApiError> {
        let ttl = self.scheduling.lease_ttl.0;
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let mut cancels = self.hub.cancel_receiver();
        let cancel = self.fenced(
            self.store
                .renew_lease(job, token, now_ms(&*self.clock), ttl_ms)
                .await,
        )?;
        if cancel {
            return Ok((true, ttl));
        }
        let deadline = tokio::time::Instant::now() + wait.min(self.scheduling.heartbeat_wait.0);
        loop {
            tokio::select! {
                r = tokio::time::timeout_at(deadline, cancels.changed()) => match r {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) => return Ok((false, ttl)),
                },
                () = tokio::time::sleep(ACQUIRE_REPOLL) => {}
                () = self.hub.shutting_down() => return Ok((false, ttl)),
            }
            if self.fenced(self.store.cancel_requested(job, token).await)? {
                return Ok((true, ttl));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok((false, ttl));
            }
        }
    }

    /// Ends lapsed leases and attempts past their deadline (see [`Store::expire_leases`]) and
    /// deletes expired runner tokens; called periodically by the server. Returns how many
    /// leases were ended.
    pub async fn sweep(&self) -> Result<usize, ApiError> {
        let now = now_ms(&*self.clock);
        self.store.delete_expired_runner_tokens(now).await?;
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

    /// The client view of a job.
    pub async fn job_view(&self, id: JobId) -> Result<pb::Job, ApiError> {
        let job = self.store.job(id).await?;
        let outputs = if job.attempt > 0 {
            self.store.outputs(id, job.attempt).await?
        } else {
            Vec::new()
        };
        let attempts = self.store.attempts(id).await?;
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

    /// Registers a runner that authenticated with the secret of `registration`.
    pub async fn register_runner(
        &self,
        name: String,
        labels: Vec<String>,
        version: String,
        registration: String,
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
                registration: registration.clone(),
            })
            .await?;
        tracing::info!(runner_id = %id, runner = %name, %registration, "runner registered");
        Ok(id)
    }

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
                    job_token_expires_at_unix: crate::runner_auth::job_token_expiry_unix(
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

    /// Records runner events under a lease; the first report marks the job RUNNING. Returns
    /// whether a cancel was requested.
    pub async fn report(
        &self,
        job: JobId,
        token: LeaseToken,
        events: Vec<pb::RunnerEvent>,
    ) -> Result<bool, ApiError> {
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
        let reported = self.fenced(
            self.store
                .report(job, token, now_ms(&*self.clock), kinds)
                .await,
        )?;
        if let Some(ms) = reported.started_after_ms {
            self.metrics.start_latency.observe_ms(ms);
        }
        self.hub.published(job, reported.seq);
        Ok(reported.cancel_requested)
    }

    /// The source archive digest of a leased job.
    pub async fn source_of(&self, job: JobId, token: LeaseToken) -> Result<Sha256Digest, ApiError> {
        let record = self.fenced(self.store.leased_job(job, token).await)?;
        record.source_sha256.ok_or_else(|| {
            ApiError::FailedPrecondition(format!("job {job} has no uploaded source archive"))
        })
    }

    /// Mints a build token for the running job `job` (only its current attempt, fenced by
    /// `token`). Every claim comes from the job's record; the request only picks an audience
    /// the job declared and a lifetime. The token is never logged.
    pub async fn mint_build_token(
        &self,
        job: JobId,
        token: LeaseToken,
        request: MintRequest,
    ) -> Result<MintedToken, ApiError> {
        let Some(minter) = &self.minter else {
            return Err(ApiError::FailedPrecondition(
                "this controller issues no build tokens (no [oidc] in controller.toml)".into(),
            ));
        };
        let record = self.fenced(self.store.leased_job(job, token).await)?;
        if !record.state.is_leased() {
            return Err(ApiError::FailedPrecondition(format!(
                "job {job} is {}; no build tokens are issued for it",
                record.state.as_str()
            )));
        }
        let spec = JobSpec::from_json(&record.spec_json).map_err(|e| {
            ApiError::FailedPrecondition(format!(
                "the stored spec of job {job} does not parse: {e}"
            ))
        })?;
        let started = from_unix_ms(record.leased_ms.unwrap_or(record.created_ms));
        let facts = JobFacts {
            job_id: job.to_string(),
            runner_id: record.runner_id.map(|r| r.to_string()).unwrap_or_default(),
            builder_id: provenance::builder_id(&self.issuer, self.mode, &spec.job.profile),
            // `[oidc] build_token_profiles` decides (never `untrusted-pr`; the minter refuses
            // that again); the runner's profile file may still withhold its broker.
            profile_allows_tokens: minter.settings().allows_build_tokens(&spec.job.profile),
            verified_ref: None,
            job_definition_sha256: Sha256Digest::of(&record.spec_json),
            ended: record.state.is_terminal(),
            deadline: started + spec.timeout(),
        };
        let context = JobTokenContext::for_job(&spec, facts).map_err(|e| {
            ApiError::FailedPrecondition(format!("job {job} cannot get build tokens: {e}"))
        })?;
        let audience_declared = context.audiences.contains(&request.audience);
        match minter.mint(&context, &request) {
            Ok(minted) => {
                tracing::info!(job_id = %job, jti = minted.jti(), "minted a build token");
                Ok(minted)
            }
            Err(e) => {
                if audience_declared {
                    tracing::warn!(job_id = %job, audience = %request.audience, error = %e, "refused a build token");
                } else {
                    tracing::warn!(job_id = %job, error = %e, "refused a build token");
                }
                Err(match e {
                    MintError::ProfileWithoutTokens { .. } | MintError::UndeclaredAudience => {
                        ApiError::PermissionDenied(e.to_string())
                    }
                    MintError::JobEnded => ApiError::FailedPrecondition(e.to_string()),
                    MintError::Lifetime { .. } => {
                        ApiError::invalid("lifetime_seconds", e.to_string())
                    }
                    MintError::NoSigningKey | MintError::Sign(_) => {
                        ApiError::FailedPrecondition(e.to_string())
                    }
                })
            }
        }
    }

    /// Checks an output header before any bytes are accepted.
    pub async fn claim_output(&self, header: &pb::OutputHeader) -> Result<OutputClaim, ApiError> {
        let job = JobId::parse("header.job_id", &header.job_id)?;
        let token = LeaseToken::parse("header.lease_token", &header.lease_token)?;
        let record = self.fenced(self.store.leased_job(job, token).await)?;
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
        let record = self.fenced(self.store.leased_job(job, token).await)?;
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
            retryable: state == JobState::InfraFailed,
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
        let (seq, state) = self.fenced(
            self.store
                .complete(job, token, &completion, &self.scheduling.retry())
                .await,
        )?;
        self.hub.published(job, seq);
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
                retryable: false,
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
        let image_layers = match report
            .image_layers_sha256
            .iter()
            .map(|l| Sha256Digest::from_hex(l))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(layers) => layers,
            Err(e) => {
                return Ok(infra(format!(
                    "the runner reports an image layer digest that is not sha256 hex: {e}"
                )));
            }
        };
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
            image_layers: &image_layers,
            outputs: &outputs,
            log_sha256: &log_sha256,
            started,
            finished,
        };
        let statement = match provenance::build_statement(&inputs) {
            Ok(s) => s,
            Err(e) => return Ok(infra(format!("cannot build provenance: {e}"))),
        };
        let signed = match self.signer.sign(&spec.job.profile, &statement) {
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
            retryable: false,
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
