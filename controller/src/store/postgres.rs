//! Connecting to the PostgreSQL backend, for one controller or several replicas sharing a
//! database, and migrating it once however many replicas start together.

use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::StoreError;
use super::migrations;
use super::sql::Pool;

/// Advisory lock key held while migrating ("airlock" in ASCII), so replicas that start
/// together migrate once.
const MIGRATION_LOCK: i64 = 0x0061_6972_6c6f_636b;

/// Connects with parsed `options` and up to `max_connections` connections, and brings the
/// schema up to date.
pub(crate) async fn connect(
    options: PgConnectOptions,
    max_connections: u32,
) -> Result<Pool, StoreError> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections.max(2))
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Connect { source })?;
    migrate(&pool).await?;
    Ok(Pool::Postgres(pool))
}

/// The schema version of the open database.
pub(crate) async fn schema_version(pool: &PgPool) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM airlock_schema")
        .fetch_one(pool)
        .await?;
    Ok(row.try_get::<i64, _>(0)?)
}

async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
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
    for (version, sql) in migrations::pending(version, migrations::postgres::MIGRATIONS)? {
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO airlock_schema (version) VALUES ($1)")
            .bind(version)
            .execute(&mut *tx)
            .await?;
        tracing::info!(version, "applied PostgreSQL migration");
    }
    tx.commit().await?;
    Ok(())
}
