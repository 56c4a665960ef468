//! Leases after they are granted: renewal (heartbeat), expiry and deadlines, retries of
//! infrastructure failures with backoff, cancel requests, and the per-attempt history.
//!
//! Every function takes `now_ms` from the caller (the scheduler's injected clock), so expiry
//! is tested by moving a manual clock, never by waiting.

use sqlx::AssertSqlSafe;

use super::codec::{parse_uuid, state_event};
use super::events;
use super::jobs::{check_lease_in, fetch_job, fetch_job_locked};
use super::sql::{Conn, query};
use super::{AttemptRecord, Expired, ExpiryCause, JobRecord, RetryPolicy, Store, StoreError};
use crate::ids::{JobId, LeaseToken, RunnerId};
use crate::state::JobState;

/// Jobs handled per expiry sweep (the rest wait for the next sweep).
const SWEEP_BATCH: i64 = 256;

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
async fn end_job(
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
    /// Renews the lease `token` until `now_ms + ttl_ms`. Returns whether a cancel was
    /// requested. Fails with [`StoreError::StaleLease`] when the lease is not current.
    pub async fn renew_lease(
        &self,
        job: JobId,
        token: LeaseToken,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_write().await?;
        let mut conn = tx.conn();
        check_lease_in(&mut conn, job, token).await?;
        let row =
            query("UPDATE jobs SET lease_expires_ms = $1 WHERE id = $2 RETURNING cancel_requested")
                .bind(now_ms.saturating_add(ttl_ms))
                .bind(job.to_string())
                .fetch_one(&mut conn)
                .await?;
        let cancel: bool = row.try_get(0)?;
        tx.commit().await?;
        Ok(cancel)
    }

    /// Whether the lease `token` is current and a cancel was requested (a read; no renewal).
    pub async fn cancel_requested(
        &self,
        job: JobId,
        token: LeaseToken,
    ) -> Result<bool, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let mut conn = pooled.conn();
        check_lease_in(&mut conn, job, token).await?;
        let row = query("SELECT cancel_requested FROM jobs WHERE id = $1")
            .bind(job.to_string())
            .fetch_one(&mut conn)
            .await?;
        row.try_get(0)
    }

    /// Asks for `job` to stop. A QUEUED job becomes CANCELLED at once; a LEASED or RUNNING
    /// job gets its cancel flag set (its runner learns it from its next heartbeat or report);
    /// a terminal job is left alone. Returns the job's state afterwards and the sequence
    /// number of a state event, if one was appended.
    pub async fn request_cancel(
        &self,
        job: JobId,
        now_ms: i64,
        reason: &str,
    ) -> Result<(JobState, Option<u64>), StoreError> {
        let mut tx = self.pool.begin_write().await?;
        let mut conn = tx.conn();
        let record = fetch_job_locked(&mut conn, job).await?;
        let result = match record.state {
            JobState::Queued => {
                let seq = end_job(&mut conn, job, now_ms, JobState::Cancelled, reason).await?;
                (JobState::Cancelled, Some(seq))
            }
            state if state.is_leased() => {
                query("UPDATE jobs SET cancel_requested = TRUE WHERE id = $1")
                    .bind(job.to_string())
                    .execute(&mut conn)
                    .await?;
                (state, None)
            }
            state => (state, None),
        };
        tx.commit().await?;
        Ok(result)
    }

    /// Ends every lease that lapsed or whose attempt passed its deadline by `now_ms`:
    /// deadline -> TIMED_OUT; lapsed with a cancel request -> CANCELLED; lapsed otherwise ->
    /// the attempt is recorded INFRA_FAILED and the job re-queued as a new attempt (or
    /// INFRA_FAILED when none are left). One transaction; the old lease tokens are cleared.
    pub async fn expire_leases(
        &self,
        now_ms: i64,
        retry: &RetryPolicy,
    ) -> Result<Vec<Expired>, StoreError> {
        let mut tx = self.pool.begin_write().await?;
        let mut conn = tx.conn();
        // Rows another replica is sweeping are skipped, not waited for.
        let skip_locked = conn.dialect().skip_locked();
        let rows = query(AssertSqlSafe(format!(
            "SELECT id FROM jobs WHERE state IN ('LEASED', 'RUNNING') \
             AND (lease_expires_ms <= $1 OR deadline_ms <= $2) LIMIT $3{skip_locked}"
        )))
        .bind(now_ms)
        .bind(now_ms)
        .bind(SWEEP_BATCH)
        .fetch_all(&mut conn)
        .await?;
        let mut ended = Vec::with_capacity(rows.len());
        for row in &rows {
            let id = JobId::new(parse_uuid("id", &row.try_get::<String, _>(0)?)?);
            let record = fetch_job(&mut conn, id).await?;
            let runner = record.runner_id.map(|r| r.to_string()).unwrap_or_default();
            let (cause, seq, state) = if record.deadline_ms.is_some_and(|d| d <= now_ms) {
                let message = format!(
                    "timed out: attempt {} passed the controller's deadline (job timeout {} ms \
                     plus grace) on runner {runner}",
                    record.attempt, record.timeout_ms
                );
                finish_attempt(&mut conn, id, now_ms, JobState::TimedOut, &message).await?;
                let seq = end_job(&mut conn, id, now_ms, JobState::TimedOut, &message).await?;
                (ExpiryCause::Deadline, seq, JobState::TimedOut)
            } else if record.cancel_requested {
                let message = format!(
                    "cancelled: the runner {runner} stopped renewing its lease after the cancel \
                     request"
                );
                finish_attempt(&mut conn, id, now_ms, JobState::Cancelled, &message).await?;
                let seq = end_job(&mut conn, id, now_ms, JobState::Cancelled, &message).await?;
                (ExpiryCause::LeaseExpired, seq, JobState::Cancelled)
            } else {
                let reason = format!("lease expired: runner {runner} stopped renewing it");
                let (seq, state) =
                    requeue_or_fail(&mut conn, &record, now_ms, retry, &reason).await?;
                (ExpiryCause::LeaseExpired, seq, state)
            };
            ended.push(Expired {
                job: id,
                runner_id: record.runner_id,
                attempt: record.attempt,
                cause,
                state,
                seq,
            });
        }
        tx.commit().await?;
        Ok(ended)
    }

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

    /// How many jobs are in each non-terminal state (for metrics): (queued, leased, running).
    pub async fn queue_depth(&self) -> Result<(i64, i64, i64), StoreError> {
        let rows = query(
            "SELECT state, COUNT(*) FROM jobs WHERE state IN ('QUEUED', 'LEASED', 'RUNNING') \
             GROUP BY state",
        )
        .fetch_all(&mut self.pool.acquire().await?.conn())
        .await?;
        let mut depth = (0, 0, 0);
        for row in &rows {
            let state: String = row.try_get(0)?;
            let n: i64 = row.try_get(1)?;
            match state.as_str() {
                "QUEUED" => depth.0 = n,
                "LEASED" => depth.1 = n,
                _ => depth.2 = n,
            }
        }
        Ok(depth)
    }
}
