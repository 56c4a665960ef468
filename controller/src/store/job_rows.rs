//! Reading a job's row inside a transaction: the whole job, the job with its row locked, and
//! the lease check every runner call about a job starts with.

use sqlx::AssertSqlSafe;

use super::codec::{JOB_COLUMNS, job_from_row};
use super::sql::{Conn, query};
use super::{JobRecord, StoreError};
use crate::ids::{JobId, LeaseToken};
use crate::state::JobState;

/// The job with this id.
pub(super) async fn fetch_job(conn: &mut Conn<'_>, id: JobId) -> Result<JobRecord, StoreError> {
    select_job(conn, id, "").await
}

/// The job with this id, its row locked until the transaction ends.
pub(super) async fn fetch_job_locked(
    conn: &mut Conn<'_>,
    id: JobId,
) -> Result<JobRecord, StoreError> {
    let lock = conn.dialect().lock_rows();
    select_job(conn, id, lock).await
}

async fn select_job(
    conn: &mut Conn<'_>,
    id: JobId,
    lock: &'static str,
) -> Result<JobRecord, StoreError> {
    let row = query(AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1{lock}"
    )))
    .bind(id.to_string())
    .fetch_optional(conn)
    .await?
    .ok_or(StoreError::JobNotFound(id))?;
    job_from_row(&row)
}

/// Checks that `token` is the current lease of a job a runner holds; returns the job's state.
/// The job's row stays locked until the transaction ends, so the check and the change it
/// guards are one step.
pub(super) async fn check_lease_in(
    conn: &mut Conn<'_>,
    job: JobId,
    token: LeaseToken,
) -> Result<JobState, StoreError> {
    let lock = conn.dialect().lock_rows();
    let row = query(AssertSqlSafe(format!(
        "SELECT state, lease_token FROM jobs WHERE id = $1{lock}"
    )))
    .bind(job.to_string())
    .fetch_optional(conn)
    .await?
    .ok_or(StoreError::JobNotFound(job))?;
    let state: String = row.try_get(0)?;
    let state =
        JobState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("state {state:?}")))?;
    let current: Option<String> = row.try_get(1)?;
    if state.is_leased() && current.as_deref() == Some(token.to_string().as_str()) {
        Ok(state)
    } else {
        Err(StoreError::StaleLease { job, state })
    }
}
