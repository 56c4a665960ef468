//! The values the store takes and returns, the same for every backend.

use airlock_attest::Sha256Digest;

use crate::auth::digest::TokenDigest;
use crate::ids::{JobId, LeaseToken, RunnerId};
use crate::state::JobState;

/// A job as submitted, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// The new job's id.
    pub id: JobId,
    /// `job.name` of the spec.
    pub name: String,
    /// The spec bytes exactly as submitted.
    pub spec_json: Vec<u8>,
    /// `job.profile` of the spec.
    pub profile: String,
    /// `job.labels` of the spec.
    pub labels: Vec<String>,
    /// The uploaded source archive's digest.
    pub source_sha256: Option<Sha256Digest>,
    /// Submission time, ms since the Unix epoch.
    pub created_ms: i64,
    /// The client's idempotency key, if any.
    pub idempotency_key: Option<String>,
    /// Scheduling priority (higher first).
    pub priority: i32,
    /// Queue order (smallest first): `created_ms - priority * aging_ms`.
    pub queue_key: i64,
    /// Who shares a concurrency limit (repository, or job name for path sources).
    pub tenant: String,
    /// The job's own time limit (`job.timeout`), in ms.
    pub timeout_ms: i64,
    /// How many attempts infrastructure failures may use up (at least 1).
    pub max_attempts: u32,
    /// The message of the first (QUEUED) event: who or what queued the job.
    pub queued_message: String,
    /// True when a forge queued the job: the status reporter then owes it commit statuses.
    pub forge_status: bool,
    /// The admission policy's record (`[policy]`), as JSON.
    pub admission_json: Option<String>,
    /// The keyid of the key that signed the spec (`[job_signatures]`).
    pub signer_keyid: Option<String>,
}

/// What [`Store::insert_job`](super::Store::insert_job) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// A new job was queued; its first event has this sequence number.
    New(u64),
    /// The idempotency key named this earlier job with the same spec; nothing was queued.
    Existing(JobId),
}

/// The signed provenance of a succeeded job, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredProvenance {
    /// The DSSE envelope as one JSON line (with its `\n`).
    pub envelope_json: String,
    /// The Sigstore bundle v0.3 JSON.
    pub bundle_json: String,
    /// Keyid of the signing key.
    pub keyid: String,
    /// SPKI PEM of the key that verifies the envelope.
    pub public_key_pem: String,
}

/// The signed SBOM of a job: both documents and the statement carrying the SPDX one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSbom {
    /// The SPDX 2.3 JSON document.
    pub spdx_json: String,
    /// The CycloneDX 1.6 JSON BOM.
    pub cyclonedx_json: String,
    /// The signed SBOM statement, one DSSE envelope as a JSON line (with its `\n`).
    pub envelope_json: String,
    /// Keyid of the signing key.
    pub keyid: String,
    /// SPKI PEM of the key that verifies the envelope.
    pub public_key_pem: String,
}

/// The signed runtime trace of a job and its hermeticity verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTrace {
    /// The signed trace statement, one DSSE envelope as a JSON line (with its `\n`).
    pub envelope_json: String,
    /// `hermetic`, or `not hermetic: ...`.
    pub hermeticity: String,
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// Its id.
    pub id: JobId,
    /// `job.name`.
    pub name: String,
    /// The spec bytes exactly as submitted.
    pub spec_json: Vec<u8>,
    /// `job.profile`.
    pub profile: String,
    /// `job.labels`.
    pub labels: Vec<String>,
    /// The source archive's digest.
    pub source_sha256: Option<Sha256Digest>,
    /// Current state.
    pub state: JobState,
    /// Why the job is in its state (failing step, infrastructure error).
    pub message: String,
    /// The failing step's exit code.
    pub exit_code: i32,
    /// How many times the job was leased.
    pub attempt: u32,
    /// The runner of the current or last attempt.
    pub runner_id: Option<RunnerId>,
    /// The current lease.
    pub lease_token: Option<LeaseToken>,
    /// ms since the Unix epoch.
    pub created_ms: i64,
    /// When the current attempt was leased.
    pub leased_ms: Option<i64>,
    /// When the runner first reported progress.
    pub started_ms: Option<i64>,
    /// When the job reached a terminal state.
    pub finished_ms: Option<i64>,
    /// sha256 of the job's log bytes (set at completion).
    pub log_sha256: Option<Sha256Digest>,
    /// The builder id the provenance names.
    pub builder_id: Option<String>,
    /// Signed provenance (succeeded jobs only).
    pub provenance: Option<StoredProvenance>,
    /// Scheduling priority.
    pub priority: i32,
    /// Who shares a concurrency limit.
    pub tenant: String,
    /// The job's own time limit, in ms.
    pub timeout_ms: i64,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// When the current lease lapses unless renewed.
    pub lease_expires_ms: Option<i64>,
    /// When the current attempt times out (controller-side deadline).
    pub deadline_ms: Option<i64>,
    /// A cancel was requested.
    pub cancel_requested: bool,
    /// When the current attempt's job token expires (its deadline plus the job-token grace).
    pub job_token_expires_ms: Option<i64>,
    /// The admission policy's record, as JSON (jobs admitted under `[policy]`).
    pub admission_json: Option<String>,
    /// The keyid of the key that signed the spec, if it was signed.
    pub signer_keyid: Option<String>,
}

/// One recorded output file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRecord {
    /// Path relative to `/out`.
    pub path: String,
    /// sha256 the controller computed.
    pub sha256: Sha256Digest,
    /// Size in bytes.
    pub size: u64,
    /// Whether the file had an execute bit in `/out`.
    pub executable: bool,
}

/// A registered runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerRecord {
    /// Its id.
    pub id: RunnerId,
    /// Its human name.
    pub name: String,
    /// The labels it carries.
    pub labels: Vec<String>,
    /// Its airlock version.
    pub version: String,
    /// Registration time, ms since the Unix epoch.
    pub registered_ms: i64,
    /// The runner registration whose secret it registered with.
    pub registration: String,
}

/// A runner registration: a name and the sha256 of its secret (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationRecord {
    /// Its unique name.
    pub name: String,
    /// sha256 of the registration secret.
    pub secret_sha256: TokenDigest,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: i64,
    /// When it was revoked; a revoked registration admits no runner and no token issued
    /// under it.
    pub revoked_ms: Option<i64>,
}

/// What [`Store::sync_registration`](super::Store::sync_registration) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationSync {
    /// The registration was new.
    Inserted,
    /// Its secret digest changed: replaced, and active again.
    Replaced,
    /// Same digest: left as it was (a revoked one stays revoked).
    Unchanged,
}

/// A runner token as stored: only its sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerTokenRecord {
    /// sha256 of the token.
    pub token_sha256: TokenDigest,
    /// The runner it was issued to.
    pub runner_id: RunnerId,
    /// The registration that runner registered with.
    pub registration: String,
    /// Expiry, ms since the Unix epoch.
    pub expires_ms: i64,
}

/// Who a valid runner token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerIdentity {
    /// The runner.
    pub runner_id: RunnerId,
    /// Its registration.
    pub registration: String,
}

/// The job token a lease carries: its sha256 and how long it outlives the attempt's
/// deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobTokenGrant {
    /// sha256 of the job token.
    pub token_sha256: TokenDigest,
    /// The token expires this long after the attempt's deadline, in ms.
    pub grace_ms: i64,
}

/// How a leased job ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The terminal state.
    pub state: JobState,
    /// Why.
    pub message: String,
    /// The failing step's exit code.
    pub exit_code: i32,
    /// Completion time, ms since the Unix epoch.
    pub finished_ms: i64,
    /// Digest of the job's log bytes.
    pub log_sha256: Option<Sha256Digest>,
    /// Builder id of the provenance.
    pub builder_id: Option<String>,
    /// Signed provenance (only with [`JobState::Succeeded`]).
    pub provenance: Option<StoredProvenance>,
    /// The signed SBOM (a succeeded job, or one its vulnerability gate failed).
    pub sbom: Option<StoredSbom>,
    /// The signed runtime trace (a traced job that got an SBOM).
    pub trace: Option<StoredTrace>,
    /// An [`JobState::InfraFailed`] completion the runner reported itself: the job is
    /// re-queued while attempts are left. Failures the controller found (an output digest
    /// mismatch, a signing error) are final: they are not retried blindly.
    pub retryable: bool,
}

impl Completion {
    /// A completion in `state` with no signed document and no retry: the
    /// base the scheduler adds documents to (`..Completion::ended(..)`).
    pub fn ended(
        state: JobState,
        message: String,
        finished_ms: i64,
        log_sha256: Option<Sha256Digest>,
    ) -> Self {
        Self {
            state,
            message,
            exit_code: 0,
            finished_ms,
            log_sha256,
            builder_id: None,
            provenance: None,
            sbom: None,
            trace: None,
            retryable: false,
        }
    }
}

/// The terms a lease is granted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTerms {
    /// Now, ms since the Unix epoch.
    pub now_ms: i64,
    /// The lease lapses this long after it was granted or last renewed.
    pub ttl_ms: i64,
    /// The attempt's controller-side deadline is `now + job timeout + deadline_grace_ms`
    /// (the grace covers output upload and signing after the steps).
    pub deadline_grace_ms: i64,
    /// At most this many LEASED/RUNNING jobs per tenant (0: no limit).
    pub tenant_limit: u32,
}

/// How infrastructure failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the second attempt, in ms; doubled for each further attempt.
    pub backoff_base_ms: i64,
    /// The longest delay, in ms.
    pub backoff_max_ms: i64,
}

impl RetryPolicy {
    /// The delay before the attempt after `attempt` (1-based).
    pub fn backoff_ms(&self, attempt: u32) -> i64 {
        let doublings = attempt.saturating_sub(1).min(30);
        self.backoff_base_ms
            .saturating_mul(1i64 << doublings)
            .min(self.backoff_max_ms)
            .max(0)
    }
}

/// One attempt of a job, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// 1-based attempt number.
    pub attempt: u32,
    /// The runner that held it.
    pub runner_id: RunnerId,
    /// When it was leased.
    pub leased_ms: i64,
    /// When it ended (`None` while live).
    pub finished_ms: Option<i64>,
    /// How it ended (`None` while live).
    pub state: Option<JobState>,
    /// Why.
    pub reason: String,
}

/// Why a sweep ended a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryCause {
    /// The runner stopped renewing the lease.
    LeaseExpired,
    /// The attempt ran past its deadline.
    Deadline,
}

/// A lease a sweep ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// The job.
    pub job: JobId,
    /// Its runner.
    pub runner_id: Option<RunnerId>,
    /// The attempt that ended.
    pub attempt: u32,
    /// Why.
    pub cause: ExpiryCause,
    /// The job's state now (QUEUED when it is retried).
    pub state: JobState,
    /// The sequence number of the state event.
    pub seq: u64,
}

/// What [`Store::report`](super::Store::report) recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reported {
    /// The last sequence number.
    pub seq: u64,
    /// Set when this report moved the job to RUNNING: ms since the lease was granted.
    pub started_after_ms: Option<i64>,
    /// A cancel was requested.
    pub cancel_requested: bool,
}
