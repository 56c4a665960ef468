//! The controller's database: jobs, job events, outputs and runners.
//!
//! SQLite (one file, WAL) through sqlx today. Callers see only [`Store`] and the record types
//! here, never SQL, so a PostgreSQL backend can come in behind the same methods. Every write
//! that reads before it writes runs in a `BEGIN IMMEDIATE` transaction, so writers are
//! serialized and a lease check and the change it guards are one atomic step.

mod events;
mod jobs;
mod leases;
mod migrations;
mod outputs;
mod runners;

use std::path::{Path, PathBuf};
use std::time::Duration;

use airlock_attest::Sha256Digest;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Row};

use crate::ids::{JobId, LeaseToken, RunnerId};
use crate::state::JobState;

pub use events::EventKind;
pub use jobs::Reported;
pub use leases::{AttemptRecord, Expired, ExpiryCause, LeaseTerms, RetryPolicy};

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
    /// An output with this path was already recorded for this attempt.
    #[error("output `{path}` of job {job} was already uploaded; each path is uploaded once")]
    OutputExists {
        /// The job.
        job: JobId,
        /// The output path.
        path: String,
    },
}

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
}

/// What [`Store::insert_job`] did.
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
    /// An [`JobState::InfraFailed`] completion the runner reported itself: the job is
    /// re-queued while attempts are left. Failures the controller found (an output digest
    /// mismatch, a signing error) are final: they are not retried blindly.
    pub retryable: bool,
}

/// The database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` in WAL mode and brings its
    /// schema up to date.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Open {
                path: path.to_owned(),
                source: sqlx::Error::Io(e),
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = sqlx::pool::PoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// The schema version of the open database.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("PRAGMA user_version")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query("PRAGMA user_version")
            .fetch_one(&mut *tx)
            .await?;
        let version: i64 = row.try_get(0)?;
        let known = migrations::MIGRATIONS.len();
        let current = usize::try_from(version).unwrap_or(usize::MAX);
        if current > known {
            return Err(StoreError::SchemaTooNew {
                found: version,
                known,
            });
        }
        for (i, sql) in migrations::MIGRATIONS.iter().enumerate().skip(current) {
            sqlx::raw_sql(*sql).execute(&mut *tx).await?;
            // PRAGMA takes no bind parameters; the value is a number from this loop.
            let set = format!("PRAGMA user_version = {}", i + 1);
            sqlx::query(AssertSqlSafe(set)).execute(&mut *tx).await?;
            tracing::info!(version = i + 1, "applied database migration");
        }
        tx.commit().await?;
        Ok(())
    }

    /// Closes the connection pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn labels_to_json(labels: &[String]) -> String {
    serde_json::to_string(labels).unwrap_or_else(|_| "[]".to_owned())
}

fn labels_from_json(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("labels {text:?}: {e}")))
}

fn parse_digest(column: &str, hex: &str) -> Result<Sha256Digest, StoreError> {
    Sha256Digest::from_hex(hex).map_err(|e| StoreError::Corrupt(format!("{column} {hex:?}: {e}")))
}

fn parse_uuid(column: &str, s: &str) -> Result<uuid::Uuid, StoreError> {
    uuid::Uuid::try_parse(s).map_err(|e| StoreError::Corrupt(format!("{column} {s:?}: {e}")))
}

#[cfg(test)]
mod tests;
