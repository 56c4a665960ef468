//! Leases after they are granted: renewal (heartbeat), expiry and deadlines, cancel requests,
//! and the queue depth.
//!
//! Every function takes `now_ms` from the caller (the scheduler's injected clock), so expiry
//! is tested by moving a manual clock, never by waiting.

use sqlx::AssertSqlSafe;

use super::attempts::{end_job, finish_attempt, requeue_or_fail};
use super::codec::parse_uuid;
use super::job_rows::{check_lease_in, fetch_job, fetch_job_locked};
use super::sql::query;
use super::{Expired, ExpiryCause, RetryPolicy, Store, StoreError};
use crate::ids::{JobId, LeaseToken};
use crate::state::JobState;

/// Jobs handled per expiry sweep (the rest wait for the next sweep).
const SWEEP_BATCH: i64 = 256;

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
