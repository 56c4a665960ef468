//! Where SQLite and PostgreSQL differ, in one place: row locks, the queue's tie-break column
//! and the locks that only matter when several controllers share a database.
//!
//! SQLite needs no row locks: a write transaction holds the database's only write lock from
//! `BEGIN IMMEDIATE` to commit (`sql::Pool::begin_write`).
//! PostgreSQL runs at READ COMMITTED, so a transaction that checks a row and then changes it
//! locks the row first (`FOR UPDATE`), and the leasing and sweeping queries skip rows another
//! replica holds (`FOR UPDATE SKIP LOCKED`) instead of waiting on them.

/// The SQL dialect of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// SQLite (one writer at a time).
    Sqlite,
    /// PostgreSQL (row locks, several replicas).
    Postgres,
}

impl Dialect {
    /// The backend's name: `"sqlite"` or `"postgres"`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }

    /// Appended to a SELECT whose rows the transaction will change: the rows stay locked
    /// until commit.
    pub(crate) fn lock_rows(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }

    /// Appended to a SELECT of rows to claim: rows another transaction holds are skipped,
    /// the others locked until commit.
    pub(crate) fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// The column that breaks ties between jobs with equal queue keys (submitted in the same
    /// millisecond at the same priority): SQLite's `rowid`, the insertion order; PostgreSQL
    /// has no such column, so the job id, an arbitrary but stable order.
    pub(crate) fn insertion_order(self) -> &'static str {
        match self {
            Dialect::Sqlite => "rowid",
            Dialect::Postgres => "id",
        }
    }
}
