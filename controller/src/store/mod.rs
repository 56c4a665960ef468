//! The controller's database: jobs, job events, attempts, outputs, runners and their
//! credentials (registrations and runner tokens, as digests).
//!
//! One [`Store`] over two backends: SQLite (one file in WAL mode, the default) and PostgreSQL
//! (which several controller replicas may share). Callers see only [`Store`] and the
//! [`records`] it takes and returns, never SQL.
//!
//! Each query is written once (`jobs`, `leases`, `events`, `outputs`, `registrations`,
//! `runners`, `listings`, `sessions`) and runs on either backend through `sql`; what differs
//! between the dialects is in `dialect`; only opening a database (`sqlite`, `postgres`) and
//! the schema's types (`migrations`) are per backend. Every check of a lease and the change
//! it guards are one transaction: `BEGIN IMMEDIATE` on SQLite, row locks (`FOR UPDATE`,
//! leasing and sweeping with `FOR UPDATE SKIP LOCKED`) on PostgreSQL. Both backends run the
//! same test suite (`store/tests.rs`), the store's contract.

mod attempts;
mod caches;
pub(crate) mod codec;
mod dialect;
mod events;
mod forge_statuses;
mod job_rows;
mod jobs;
mod leases;
mod listings;
mod migrations;
mod outputs;
mod postgres;
pub mod records;
mod registrations;
mod runners;
mod sboms;
mod sessions;
mod sql;
mod sqlite;

use std::path::{Path, PathBuf};

use sqlx::postgres::PgConnectOptions;

use crate::ids::{JobId, RunnerId};
use crate::state::JobState;
use sql::Pool;

pub use caches::CacheRecord;
pub use codec::{EventKind, state_event};
pub use events::LogTail;
pub use forge_statuses::{DueStatus, ForgeStatusStage};
pub use listings::{HeldJob, RunnerActivity};
pub use records::*;
pub use sessions::WebSessionRecord;

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

/// The database, SQLite or PostgreSQL; every query and state transition is written once,
/// in the files named after what they store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            pool: sqlite::open(path).await?,
        })
    }

    /// Connects to PostgreSQL at `url` (`postgres://user@host:port/db`) and migrates the
    /// schema (under an advisory lock, so replicas starting together migrate once).
    pub async fn connect_postgres(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|source| StoreError::Connect { source })?;
        Self::connect_postgres_with(options, max_connections).await
    }

    /// [`Store::connect_postgres`] with parsed options (tests use them to pick a schema).
    pub async fn connect_postgres_with(
        options: PgConnectOptions,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            pool: postgres::connect(options, max_connections).await?,
        })
    }

    /// Which backend this is: `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        self.pool.dialect().name()
    }

    /// The schema version of the open database.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        match &self.pool {
            Pool::Sqlite { pool, .. } => sqlite::schema_version(pool).await,
            Pool::Postgres(pool) => postgres::schema_version(pool).await,
        }
    }

    /// Closes the connection pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests;
