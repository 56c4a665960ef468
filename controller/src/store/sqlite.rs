//! Opening the SQLite backend: one file in WAL mode, migrated under its write lock.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Row};

use super::StoreError;
use super::migrations;
use super::sql::Pool;

/// Opens (creating if needed) the SQLite database at `path` in WAL mode and brings its
/// schema up to date.
pub(crate) async fn open(path: &Path) -> Result<Pool, StoreError> {
    let open_error = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| open_error(sqlx::Error::Io(e)))?;
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
        .map_err(open_error)?;
    migrate(&pool).await?;
    Ok(Pool::sqlite(pool))
}

/// The schema version of the open database.
pub(crate) async fn schema_version(pool: &SqlitePool) -> Result<i64, StoreError> {
    let row = sqlx::query("PRAGMA user_version").fetch_one(pool).await?;
    Ok(row.try_get::<i64, _>(0)?)
}

/// Runs before the pool is shared, so only other processes can race it, and `BEGIN
/// IMMEDIATE` serializes those.
async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let version: i64 = sqlx::query("PRAGMA user_version")
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
    for (version, sql) in migrations::pending(version, migrations::sqlite::MIGRATIONS)? {
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        // PRAGMA takes no bind parameters; the value is a number from this loop.
        let set = format!("PRAGMA user_version = {version}");
        sqlx::query(AssertSqlSafe(set)).execute(&mut *tx).await?;
        tracing::info!(version, "applied database migration");
    }
    tx.commit().await?;
    Ok(())
}
