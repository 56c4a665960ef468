//! The SQLite backend: one file in WAL mode. Every write that reads before it writes runs in
//! a `BEGIN IMMEDIATE` transaction, so writers are serialized and a lease check and the change
//! it guards are one atomic step.

mod events;
mod jobs;
mod leases;
mod migrations;
mod outputs;
mod registrations;
mod runners;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Row};

use super::StoreError;

/// The SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    /// Write transactions of this process queue here instead of inside SQLite: SQLite's
    /// busy handler backs off in sleeps of milliseconds, which would cap the lease rate.
    write_lock: Arc<tokio::sync::Mutex<()>>,
}

impl SqliteStore {
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
        let store = Self {
            pool,
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
        };
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
        let _writer = self.write_lock.lock().await;
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
