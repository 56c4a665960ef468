//! The controller's database: jobs, job events, attempts, outputs, runners and their
//! credentials (registrations and runner tokens, as digests).
//!
//! One interface, [`Store`], over two backends: SQLite ([`sqlite`], one file in WAL mode, the
//! default) and PostgreSQL ([`postgres`], which several controller replicas may share). Callers
//! see only [`Store`] and the [`records`] it takes and returns, never SQL. Both backends run
//! the same test suite (`store/tests.rs`). Every change that checks a lease and the change it
//! guards are one transaction: `BEGIN IMMEDIATE` on SQLite, row locks (`FOR UPDATE`, leasing
//! with `FOR UPDATE SKIP LOCKED`) on PostgreSQL.

pub(crate) mod codec;
pub mod postgres;
pub mod records;
pub mod sqlite;

use std::path::{Path, PathBuf};

use airlock_attest::Sha256Digest;
use airlock_proto::v1 as pb;

use crate::auth::TokenDigest;
use crate::ids::{JobId, LeaseToken, RunnerId};
use crate::state::JobState;

pub use codec::{EventKind, state_event};
pub use postgres::PostgresStore;
pub use records::*;
pub use sqlite::SqliteStore;

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened.
    #[error("cannot open the database {}: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// PostgreSQL could not be reached or refused the connection.
    #[error(
        "cannot connect to PostgreSQL (database_url in controller.toml; the password is not \
         shown): {source}"
    )]
    Connect {
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The database was written by a newer controller.
    #[error(
        "the database schema is version {found}, newer than this controller knows ({known}); \
         upgrade the controller"
    )]
    SchemaTooNew {
        /// The database's version.
        found: i64,
        /// The newest version this build knows.
        known: usize,
    },
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
    /// A stored value does not parse (the database was edited or corrupted).
    #[error("corrupt database row: {0}")]
    Corrupt(String),
    /// No job has this id.
    #[error("no job with id {0}")]
    JobNotFound(JobId),
    /// No runner has this id.
    #[error("no runner with id {0}; register the runner first")]
    RunnerNotFound(RunnerId),
    /// The lease token is not the job's current lease (completed, re-leased or never issued).
    #[error(
        "the lease token is not the current lease of job {job} (the job is {state}); the job was \
         completed or leased again: stop working on it"
    )]
    StaleLease {
        /// The job.
        job: JobId,
        /// Its current state.
        state: JobState,
    },
    /// The idempotency key names an earlier job with a different spec.
    #[error(
        "idempotency key already used by job {job} with a different spec; use a new key for a \
         different job"
    )]
    IdempotencyConflict {
        /// The job that holds the key.
        job: JobId,
    },
    /// A runner registration with this name exists (perhaps revoked: names are not reused).
    #[error(
        "a runner registration named `{0}` already exists (names of revoked registrations are \
         not reused); pick another name, or see `airlock controller registration list`"
    )]
    RegistrationExists(String),
    /// No runner registration has this name.
    #[error("no runner registration named `{0}`; see `airlock controller registration list`")]
    RegistrationNotFound(String),
    /// An output with this path was already recorded for this attempt.
    #[error("output `{path}` of job {job} was already uploaded; each path is uploaded once")]
    OutputExists {
        /// The job.
        job: JobId,
        /// The output path.
        path: String,
    },
}

/// The database: SQLite or PostgreSQL behind one set of methods.
#[derive(Debug, Clone)]
pub enum Store {
    /// A SQLite file.
    Sqlite(SqliteStore),
    /// A PostgreSQL database (possibly shared by several controller replicas).
    Postgres(PostgresStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Sqlite($s) => $e,
            Store::Postgres($s) => $e,
        }
    };
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Store::Sqlite(SqliteStore::open(path).await?))
    }

    /// Connects to PostgreSQL at `url` (`postgres://user@host:port/db`) and migrates the
    /// schema (under an advisory lock, so replicas starting together migrate once).
    pub async fn connect_postgres(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        Ok(Store::Postgres(
            PostgresStore::connect(url, max_connections).await?,
        ))
    }

    /// Which backend this is: `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// The schema version of the open database.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        dispatch!(self, s => s.schema_version().await)
    }

    /// Closes the connection pool.
    pub async fn close(&self) {
        dispatch!(self, s => s.close().await)
    }

    /// Stores a new job as QUEUED with its first event, unless its idempotency key names an
    /// earlier job: then that job is returned when its spec is byte-identical, and
    /// [`StoreError::IdempotencyConflict`] otherwise.
    pub async fn insert_job(&self, job: &NewJob) -> Result<Submitted, StoreError> {
        dispatch!(self, s => s.insert_job(job).await)
    }

    /// The job with this id.
    pub async fn job(&self, id: JobId) -> Result<JobRecord, StoreError> {
        dispatch!(self, s => s.job(id).await)
    }

    /// The job, if `token` is its current lease.
    pub async fn leased_job(&self, id: JobId, token: LeaseToken) -> Result<JobRecord, StoreError> {
        dispatch!(self, s => s.leased_job(id, token).await)
    }

    /// Leases the first QUEUED job (by queue key: priority with aging, then FIFO) whose labels
    /// `runner` all carries, whose retry backoff has passed and whose tenant is under its
    /// concurrency limit, recording `job_token` as the attempt's job token (in the same
    /// UPDATE). Returns the job and its LEASED event's sequence number.
    pub async fn lease_next(
        &self,
        runner: &RunnerRecord,
        token: LeaseToken,
        job_token: &JobTokenGrant,
        terms: &LeaseTerms,
    ) -> Result<Option<(JobRecord, u64)>, StoreError> {
        dispatch!(self, s => s.lease_next(runner, token, job_token, terms).await)
    }

    /// Records runner events under the lease `token`; the first report moves LEASED to
    /// RUNNING.
    pub async fn report(
        &self,
        job: JobId,
        token: LeaseToken,
        now_ms: i64,
        kinds: Vec<EventKind>,
    ) -> Result<Reported, StoreError> {
        dispatch!(self, s => s.report(job, token, now_ms, kinds).await)
    }

    /// Ends the lease `token` with `completion` (a retryable infrastructure failure re-queues
    /// the job while attempts are left). Returns the event's sequence number and the state.
    pub async fn complete(
        &self,
        job: JobId,
        token: LeaseToken,
        completion: &Completion,
        retry: &RetryPolicy,
    ) -> Result<(u64, JobState), StoreError> {
        dispatch!(self, s => s.complete(job, token, completion, retry).await)
    }

    /// Renews the lease `token` until `now_ms + ttl_ms`; returns whether a cancel was asked.
    pub async fn renew_lease(
        &self,
        job: JobId,
        token: LeaseToken,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.renew_lease(job, token, now_ms, ttl_ms).await)
    }

    /// Whether the lease `token` is current and a cancel was requested.
    pub async fn cancel_requested(
        &self,
        job: JobId,
        token: LeaseToken,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.cancel_requested(job, token).await)
    }

    /// Asks for `job` to stop; returns its state afterwards and the event appended, if any.
    pub async fn request_cancel(
        &self,
        job: JobId,
        now_ms: i64,
        reason: &str,
    ) -> Result<(JobState, Option<u64>), StoreError> {
        dispatch!(self, s => s.request_cancel(job, now_ms, reason).await)
    }

    /// Ends every lease that lapsed or passed its deadline by `now_ms`.
    pub async fn expire_leases(
        &self,
        now_ms: i64,
        retry: &RetryPolicy,
    ) -> Result<Vec<Expired>, StoreError> {
        dispatch!(self, s => s.expire_leases(now_ms, retry).await)
    }

    /// Every attempt of `job`, oldest first.
    pub async fn attempts(&self, job: JobId) -> Result<Vec<AttemptRecord>, StoreError> {
        dispatch!(self, s => s.attempts(job).await)
    }

    /// (queued, leased, running) job counts.
    pub async fn queue_depth(&self) -> Result<(i64, i64, i64), StoreError> {
        dispatch!(self, s => s.queue_depth().await)
    }

    /// Up to `limit` events of `job` with `seq > after_seq`, in order.
    pub async fn events_after(
        &self,
        job: JobId,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<pb::JobEvent>, StoreError> {
        dispatch!(self, s => s.events_after(job, after_seq, limit).await)
    }

    /// sha256 of the concatenated log bytes of the job, in event order.
    pub async fn log_digest(&self, job: JobId) -> Result<Sha256Digest, StoreError> {
        dispatch!(self, s => s.log_digest(job).await)
    }

    /// True when `path` was already recorded for `attempt` of `job`.
    pub async fn output_exists(
        &self,
        job: JobId,
        attempt: u32,
        path: &str,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.output_exists(job, attempt, path).await)
    }

    /// Records an output under the lease `token`.
    pub async fn insert_output(
        &self,
        job: JobId,
        token: LeaseToken,
        output: &OutputRecord,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.insert_output(job, token, output).await)
    }

    /// The outputs recorded for `attempt` of `job`, sorted by path.
    pub async fn outputs(&self, job: JobId, attempt: u32) -> Result<Vec<OutputRecord>, StoreError> {
        dispatch!(self, s => s.outputs(job, attempt).await)
    }

    /// Records a runner.
    pub async fn insert_runner(&self, runner: &RunnerRecord) -> Result<(), StoreError> {
        dispatch!(self, s => s.insert_runner(runner).await)
    }

    /// The runner with this id.
    pub async fn runner(&self, id: RunnerId) -> Result<RunnerRecord, StoreError> {
        dispatch!(self, s => s.runner(id).await)
    }

    /// Creates a runner registration; [`StoreError::RegistrationExists`] if the name is taken.
    pub async fn create_registration(
        &self,
        name: &str,
        secret_sha256: &TokenDigest,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.create_registration(name, secret_sha256, now_ms).await)
    }

    /// Brings a registration declared in the configuration into the database: inserted if
    /// absent, replaced and made active again if its digest changed, else left alone (a
    /// revoked one stays revoked).
    pub async fn sync_registration(
        &self,
        name: &str,
        secret_sha256: &TokenDigest,
        now_ms: i64,
    ) -> Result<RegistrationSync, StoreError> {
        dispatch!(self, s => s.sync_registration(name, secret_sha256, now_ms).await)
    }

    /// Revokes a registration and deletes the runner tokens issued under it; returns false
    /// if it was revoked already.
    pub async fn revoke_registration(&self, name: &str, now_ms: i64) -> Result<bool, StoreError> {
        dispatch!(self, s => s.revoke_registration(name, now_ms).await)
    }

    /// Every runner registration, by name.
    pub async fn registrations(&self) -> Result<Vec<RegistrationRecord>, StoreError> {
        dispatch!(self, s => s.registrations().await)
    }

    /// The name of the active registration whose secret hashes to `secret_sha256`.
    pub async fn active_registration(
        &self,
        secret_sha256: &TokenDigest,
    ) -> Result<Option<String>, StoreError> {
        dispatch!(self, s => s.active_registration(secret_sha256).await)
    }

    /// Stores a runner token while its registration is active; returns whether it did.
    pub async fn insert_runner_token(&self, token: &RunnerTokenRecord) -> Result<bool, StoreError> {
        dispatch!(self, s => s.insert_runner_token(token).await)
    }

    /// The runner a token hashing to `token_sha256` belongs to: only if unexpired at
    /// `now_ms` and its registration is not revoked.
    pub async fn runner_for_token(
        &self,
        token_sha256: &TokenDigest,
        now_ms: i64,
    ) -> Result<Option<RunnerIdentity>, StoreError> {
        dispatch!(self, s => s.runner_for_token(token_sha256, now_ms).await)
    }

    /// True when `token_sha256` is the current job token of `job`, unexpired at `now_ms`,
    /// and the job's current attempt is `runner`'s.
    pub async fn job_token_valid(
        &self,
        job: JobId,
        token_sha256: &TokenDigest,
        runner: RunnerId,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.job_token_valid(job, token_sha256, runner, now_ms).await)
    }

    /// Deletes runner tokens expired by `now_ms`; returns how many.
    pub async fn delete_expired_runner_tokens(&self, now_ms: i64) -> Result<u64, StoreError> {
        dispatch!(self, s => s.delete_expired_runner_tokens(now_ms).await)
    }
}

#[cfg(test)]
mod tests;
