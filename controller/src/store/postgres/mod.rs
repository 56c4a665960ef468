//! The PostgreSQL backend, for one controller or several replicas sharing a database.
//!
//! Concurrency: every change that checks a job and then writes it holds the job's row lock
//! (`SELECT ... FOR UPDATE`) until commit; leasing picks candidates in queue order and takes
//! the first one it can lock with `FOR UPDATE SKIP LOCKED`, re-checking `state = 'QUEUED'`
//! under the lock, so two replicas never lease one job and never wait on each other's rows;
//! per-tenant limits take a transaction-scoped advisory lock on the tenant; the lease sweep
//! skips rows another replica is sweeping. Transactions run at READ COMMITTED.

mod events;
mod jobs;
mod leases;
mod migrations;
mod outputs;
mod registrations;
mod runners;

use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::StoreError;

/// Advisory lock key held while migrating ("airlock" in ASCII), so replicas that start
/// together migrate once.
const MIGRATION_LOCK: i64 = 0x0061_6972_6c6f_636b;

/// The PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pub(crate) pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` with up to `max_connections` connections and brings the schema up
    /// to date.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|source| StoreError::Connect { source })?;
        Self::connect_with(options, max_connections).await
    }

    /// [`PostgresStore::connect`] with parsed options (tests use them to pick a schema).
    pub async fn connect_with(
        options: PgConnectOptions,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect { source })?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// The schema version of the open database.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM airlock_schema")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS airlock_schema (version BIGINT NOT NULL)")
            .execute(&mut *tx)
            .await?;
        let version: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM airlock_schema")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
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
            let next = i64::try_from(i + 1).unwrap_or(i64::MAX);
            sqlx::query("INSERT INTO airlock_schema (version) VALUES ($1)")
                .bind(next)
                .execute(&mut *tx)
                .await?;
            tracing::info!(version = next, "applied PostgreSQL migration");
        }
        tx.commit().await?;
        Ok(())
    }

    /// Closes the connection pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
