//! Attempts: how one ends (recorded on its own row), re-queueing after a retryable
//! infrastructure failure with backoff, ending a job without its runner, and the history.

use super::codec::{parse_uuid, state_event};
use super::events;
use super::sql::{Conn, query};
use super::{AttemptRecord, JobRecord, RetryPolicy, Store, StoreError};
use crate::ids::{JobId, RunnerId};
use crate::state::JobState;

/// Records how attempt `job.attempt` ended.
pub(super) async fn finish_attempt(
    conn: &mut Conn<'_>,
    job: JobId,
    now_ms: i64,
    state: JobState,
    reason: &str,
) -> Result<(), StoreError> {
    query(
        "UPDATE job_attempts SET finished_ms = $1, state = $2, reason = $3 \
         WHERE job_id = $4 AND attempt = (SELECT attempt FROM jobs WHERE id = $5) \
         AND state IS NULL",
    )
    .bind(now_ms)
    .bind(state.as_str())
    .bind(reason)
    .bind(job.to_string())
    .bind(job.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends the current attempt of a leased job as an infrastructure failure: back to QUEUED as a
/// new attempt after the backoff when attempts are left, INFRA_FAILED otherwise. The lease
/// token is cleared either way, so the old runner is fenced off. Returns the state event's
/// sequence number and the new state.
pub(super) async fn requeue_or_fail(
    conn: &mut Conn<'_>,
    record: &JobRecord,
    now_ms: i64,
    retry: &RetryPolicy,
    reason: &str,
) -> Result<(u64, JobState), StoreError> {
    finish_attempt(conn, record.id, now_ms, JobState::InfraFailed, reason).await?;
    if record.attempt < record.max_attempts {
        let delay = retry.backoff_ms(record.attempt);
        let message = format!(
            "attempt {} failed (infrastructure): {reason}; retrying as attempt {} of {} in {} ms",
            record.attempt,
            record.attempt + 1,
            record.max_attempts,
            delay
        );
        query(
            "UPDATE jobs SET state = 'QUEUED', lease_token = NULL, job_token_sha256 = NULL, \
             job_token_expires_ms = NULL, lease_expires_ms = NULL, \
             deadline_ms = NULL, started_ms = NULL, not_before_ms = $1, message = $2 WHERE id = $3",
        )
        .bind(now_ms.saturating_add(delay))
        .bind(&message)
        .bind(record.id.to_string())
        .execute(conn)
        .await?;
        let seq = events::append(
            conn,
            record.id,
            now_ms,
            [state_event(JobState::Queued, &message)],
        )
        .await?;
        Ok((seq, JobState::Queued))
    } else {
        let message = format!(
            "{reason} (attempt {} of {}; no attempts left)",
            record.attempt, record.max_attempts
        );
        let seq = end_job(conn, record.id, now_ms, JobState::InfraFailed, &message).await?;
        Ok((seq, JobState::InfraFailed))
    }
}

/// Moves a job to a terminal state without its runner (deadline, cancel, retries used up),
/// clearing the lease; appends the state event.
pub(super) async fn end_job(
    conn: &mut Conn<'_>,
    job: JobId,
    now_ms: i64,
    state: JobState,
    message: &str,
) -> Result<u64, StoreError> {
    query(
        "UPDATE jobs SET state = $1, message = $2, finished_ms = $3, lease_token = NULL, \
         job_token_sha256 = NULL, job_token_expires_ms = NULL, \
         lease_expires_ms = NULL, deadline_ms = NULL WHERE id = $4",
    )
    .bind(state.as_str())
    .bind(message)
    .bind(now_ms)
    .bind(job.to_string())
    .execute(conn)
    .await?;
    events::append(conn, job, now_ms, [state_event(state, message)]).await
}

impl Store {
    /// Every attempt of `job`, oldest first.
    pub async fn attempts(&self, job: JobId) -> Result<Vec<AttemptRecord>, StoreError> {
        let rows = query(
            "SELECT attempt, runner_id, leased_ms, finished_ms, state, reason FROM job_attempts \
             WHERE job_id = $1 ORDER BY attempt",
        )
        .bind(job.to_string())
        .fetch_all(&mut self.pool.acquire().await?.conn())
        .await?;
        rows.iter()
            .map(|row| {
                let attempt: i64 = row.try_get(0)?;
                let state: Option<String> = row.try_get(4)?;
                Ok(AttemptRecord {
                    attempt: u32::try_from(attempt)
                        .map_err(|_| StoreError::Corrupt(format!("attempt {attempt}")))?,
                    runner_id: RunnerId::new(parse_uuid(
                        "runner_id",
                        &row.try_get::<String, _>(1)?,
                    )?),
                    leased_ms: row.try_get(2)?,
                    finished_ms: row.try_get(3)?,
                    state: state
                        .map(|s| {
                            JobState::parse(&s)
                                .ok_or_else(|| StoreError::Corrupt(format!("attempt state {s:?}")))
                        })
                        .transpose()?,
                    reason: row.try_get(5)?,
                })
            })
            .collect()
    }
}
