//! The one query layer both backends run through: a pool, a write transaction, a connection,
//! a query with its arguments and a result row, each an enum over SQLite and PostgreSQL.
//!
//! Every query of the store is written once, with `$1`-style placeholders (SQLite reads
//! `$N` as parameter N, as PostgreSQL does), and bound with typed arguments; the few places
//! where the dialects differ ask [`Dialect`](super::dialect::Dialect). `sqlx::Any` would be
//! the off-the-shelf way to do this, but it cannot decode SQLite `BOOLEAN` columns and takes
//! only a URL (no WAL, busy timeout or foreign keys options), so this layer keeps sqlx's own
//! drivers and types and only chooses between them.

use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{ColumnIndex, Decode, PgConnection, Postgres, SqlStr, Sqlite, SqliteConnection, Type};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::StoreError;
use super::dialect::Dialect;

/// The connection pool of either backend.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    /// A SQLite file in WAL mode.
    Sqlite {
        /// The pool.
        pool: SqlitePool,
        /// Write transactions of this process queue here instead of inside SQLite: SQLite's
        /// busy handler backs off in sleeps of milliseconds, which would cap the lease rate.
        writer: Arc<Mutex<()>>,
    },
    /// A PostgreSQL database.
    Postgres(PgPool),
}

impl Pool {
    /// A SQLite pool with its in-process writer queue.
    pub(crate) fn sqlite(pool: SqlitePool) -> Self {
        Pool::Sqlite {
            pool,
            writer: Arc::new(Mutex::new(())),
        }
    }

    /// Which SQL dialect the pool speaks.
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Pool::Sqlite { .. } => Dialect::Sqlite,
            Pool::Postgres(_) => Dialect::Postgres,
        }
    }

    /// A connection for reads outside a transaction.
    pub(crate) async fn acquire(&self) -> Result<Pooled, StoreError> {
        Ok(match self {
            Pool::Sqlite { pool, .. } => Pooled::Sqlite(pool.acquire().await?),
            Pool::Postgres(pool) => Pooled::Postgres(pool.acquire().await?),
        })
    }

    /// Begins a transaction that may read and then write. SQLite: this process's writers
    /// queue first, then `BEGIN IMMEDIATE` takes the database's write lock, so a check and
    /// the change it guards are one atomic step. PostgreSQL: `BEGIN` at READ COMMITTED; the
    /// queries take the row locks they need ([`Dialect::lock_rows`]).
    pub(crate) async fn begin_write(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Pool::Sqlite { pool, writer } => {
                let guard = Arc::clone(writer).lock_owned().await;
                let tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                Tx::Sqlite(tx, guard)
            }
            Pool::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Closes every connection.
    pub(crate) async fn close(&self) {
        match self {
            Pool::Sqlite { pool, .. } => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}

/// A connection borrowed from the pool.
pub(crate) enum Pooled {
    /// SQLite.
    Sqlite(PoolConnection<Sqlite>),
    /// PostgreSQL.
    Postgres(PoolConnection<Postgres>),
}

impl Pooled {
    /// The connection, to run queries on.
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Pooled::Sqlite(c) => Conn::Sqlite(c),
            Pooled::Postgres(c) => Conn::Postgres(c),
        }
    }
}

/// A write transaction; dropped without [`Tx::commit`], it rolls back.
pub(crate) enum Tx {
    /// SQLite: the transaction, then the writer queue's guard (fields drop in order, so the
    /// rollback is queued before the next writer may begin).
    Sqlite(sqlx::Transaction<'static, Sqlite>, OwnedMutexGuard<()>),
    /// PostgreSQL.
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    /// The transaction's connection, to run queries on.
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Tx::Sqlite(tx, _) => Conn::Sqlite(tx),
            Tx::Postgres(tx) => Conn::Postgres(tx),
        }
    }

    /// Commits.
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(tx, _writer) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// A connection of either backend (pooled or a transaction's).
pub(crate) enum Conn<'a> {
    /// SQLite.
    Sqlite(&'a mut SqliteConnection),
    /// PostgreSQL.
    Postgres(&'a mut PgConnection),
}

impl Conn<'_> {
    /// Serializes the transactions that call this with the same `name` until they commit:
    /// a transaction-scoped advisory lock on PostgreSQL (several replicas); nothing more on
    /// SQLite, whose write transactions already run one at a time.
    pub(crate) async fn serialize_on(&mut self, name: &str) -> Result<(), StoreError> {
        if self.dialect() == Dialect::Postgres {
            query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(name)
                .execute(self)
                .await?;
        }
        Ok(())
    }

    /// Which SQL dialect the connection speaks.
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Postgres(_) => Dialect::Postgres,
        }
    }
}

/// A bound argument. Nulls keep their type: PostgreSQL checks a parameter's type against the
/// column it is compared with or written to.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    /// BIGINT (SQLite INTEGER).
    Int(Option<i64>),
    /// INTEGER (PostgreSQL int4).
    Int4(i32),
    /// TEXT.
    Text(Option<String>),
    /// BYTEA (SQLite BLOB).
    Bytes(Vec<u8>),
    /// BOOLEAN.
    Bool(bool),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}

impl From<i32> for Arg {
    fn from(v: i32) -> Self {
        Arg::Int4(v)
    }
}

impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_owned()))
    }
}

impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(Some(v.clone()))
    }
}

impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}

impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::Text(v.map(str::to_owned))
    }
}

impl From<&[u8]> for Arg {
    fn from(v: &[u8]) -> Self {
        Arg::Bytes(v.to_vec())
    }
}

impl From<Vec<u8>> for Arg {
    fn from(v: Vec<u8>) -> Self {
        Arg::Bytes(v)
    }
}

impl From<&Vec<u8>> for Arg {
    fn from(v: &Vec<u8>) -> Self {
        Arg::Bytes(v.clone())
    }
}

/// A query and its arguments, run on either backend.
#[must_use = "a query does nothing until it is executed or fetched"]
pub(crate) struct Query {
    sql: SqlStr,
    args: Vec<Arg>,
}

/// A query from its text: a `&'static str`, or `sqlx::AssertSqlSafe(text)` for text composed
/// from constants (column lists, [`Dialect`] fragments), never from values.
pub(crate) fn query(sql: impl sqlx::SqlSafeStr) -> Query {
    Query {
        sql: sql.into_sql_str(),
        args: Vec::new(),
    }
}

/// Binds `args` to a sqlx query of one backend.
macro_rules! bound {
    ($db:ty, $sql:expr, $args:expr) => {{
        let mut q = sqlx::query::<$db>($sql);
        for arg in $args {
            q = match arg {
                Arg::Int(v) => q.bind(v),
                Arg::Int4(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::Bytes(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
            };
        }
        q
    }};
}

impl Query {
    /// Binds the next placeholder.
    pub(crate) fn bind(mut self, arg: impl Into<Arg>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Runs the query; returns how many rows it changed.
    pub(crate) async fn execute(self, conn: &mut Conn<'_>) -> Result<u64, StoreError> {
        Ok(match conn {
            Conn::Sqlite(c) => bound!(Sqlite, self.sql, self.args)
                .execute(&mut **c)
                .await?
                .rows_affected(),
            Conn::Postgres(c) => bound!(Postgres, self.sql, self.args)
                .execute(&mut **c)
                .await?
                .rows_affected(),
        })
    }

    /// The first row, if any.
    pub(crate) async fn fetch_optional(
        self,
        conn: &mut Conn<'_>,
    ) -> Result<Option<Row>, StoreError> {
        Ok(match conn {
            Conn::Sqlite(c) => bound!(Sqlite, self.sql, self.args)
                .fetch_optional(&mut **c)
                .await?
                .map(Row::Sqlite),
            Conn::Postgres(c) => bound!(Postgres, self.sql, self.args)
                .fetch_optional(&mut **c)
                .await?
                .map(Row::Postgres),
        })
    }

    /// The first row; a query that returns none is a driver error (`RowNotFound`).
    pub(crate) async fn fetch_one(self, conn: &mut Conn<'_>) -> Result<Row, StoreError> {
        self.fetch_optional(conn)
            .await?
            .ok_or(StoreError::Query(sqlx::Error::RowNotFound))
    }

    /// Every row.
    pub(crate) async fn fetch_all(self, conn: &mut Conn<'_>) -> Result<Vec<Row>, StoreError> {
        Ok(match conn {
            Conn::Sqlite(c) => bound!(Sqlite, self.sql, self.args)
                .fetch_all(&mut **c)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            Conn::Postgres(c) => bound!(Postgres, self.sql, self.args)
                .fetch_all(&mut **c)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect(),
        })
    }
}

/// A result row of either backend.
pub(crate) enum Row {
    /// SQLite.
    Sqlite(SqliteRow),
    /// PostgreSQL.
    Postgres(PgRow),
}

impl Row {
    /// The column at `index` (a position or a name), decoded as `T`.
    pub(crate) fn try_get<'r, T, I>(&'r self, index: I) -> Result<T, StoreError>
    where
        T: Decode<'r, Sqlite> + Type<Sqlite> + Decode<'r, Postgres> + Type<Postgres>,
        I: ColumnIndex<SqliteRow> + ColumnIndex<PgRow>,
    {
        use sqlx::Row as _;
        Ok(match self {
            Row::Sqlite(row) => row.try_get(index)?,
            Row::Postgres(row) => row.try_get(index)?,
        })
    }
}
