//! Jobs: submission, leasing, progress and completion, each a single transaction.

use std::collections::HashMap;

use sqlx::AssertSqlSafe;

use super::attempts;
use super::codec::{
    EventKind, carries_all, labels_from_json, labels_to_json, parse_uuid, state_event,
};
use super::dialect::Dialect;
use super::job_rows::{check_lease_in, fetch_job};
use super::sql::{Conn, query};
use super::{
    Completion, JobRecord, JobTokenGrant, LeaseTerms, NewJob, Reported, RetryPolicy, RunnerRecord,
    Store, StoreError, Submitted, events,
};
use crate::ids::{JobId, LeaseToken};
use crate::state::JobState;

/// The earlier job holding the idempotency key `key`, if any: the same job when its spec is
/// byte-identical to `spec_json`, a conflict otherwise.
async fn job_with_key(
    conn: &mut Conn<'_>,
    key: &str,
    spec_json: &[u8],
) -> Result<Option<Submitted>, StoreError> {
    let Some(row) = query("SELECT id, spec_json FROM jobs WHERE idempotency_key = $1")
        .bind(key)
        .fetch_optional(conn)
        .await?
    else {
        return Ok(None);
    };
    let id = JobId::new(parse_uuid("id", &row.try_get::<String, _>(0)?)?);
    let spec: Vec<u8> = row.try_get(1)?;
    if spec == spec_json {
        Ok(Some(Submitted::Existing(id)))
    } else {
        Err(StoreError::IdempotencyConflict { job: id })
    }
}

/// Locks the QUEUED job `id` for this transaction, or returns false when another one (a
/// replica leasing the same row) holds it or it is no longer queued.
async fn claim_queued(conn: &mut Conn<'_>, id: &str) -> Result<bool, StoreError> {
    if conn.dialect() == Dialect::Sqlite {
        return Ok(true);
    }
    let locked =
        query("SELECT id FROM jobs WHERE id = $1 AND state = 'QUEUED' FOR UPDATE SKIP LOCKED")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(locked.is_some())
}

/// Queued jobs examined per lease attempt (in queue order) for label and tenant fit.
const CANDIDATES: u32 = 512;

/// The short first page of candidates.
const FIRST_PAGE: u32 = 16;

impl Store {
    /// Stores a new job as QUEUED with its first event, unless its idempotency key names an
    /// earlier job: then that job is returned when its spec is byte-identical, and
    /// [`StoreError::IdempotencyConflict`] otherwise.
    pub async fn insert_job(&self, job: &NewJob) -> Result<Submitted, StoreError> {
        let mut tx = self.pool.begin_write().await?;
        let mut conn = tx.conn();
        if let Some(key) = &job.idempotency_key
            && let Some(existing) = job_with_key(&mut conn, key, &job.spec_json).await?
        {
            return Ok(existing);
        }
        // A concurrent submission with the same key (another replica) makes this insert a
        // no-op once that one commits; the job it created is then returned below.
        let inserted = query(
            "INSERT INTO jobs (id, name, spec_json, profile, labels, source_sha256, state, \
             created_ms, idempotency_key, priority, queue_key, tenant, timeout_ms, max_attempts, \
             forge_status, admission_json, signer_keyid) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17) \
             ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING",
        )
        .bind(job.id.to_string())
        .bind(&job.name)
        .bind(&job.spec_json)
        .bind(&job.profile)
        .bind(labels_to_json(&job.labels))
        .bind(job.source_sha256.map(|d| d.hex()))
        .bind(JobState::Queued.as_str())
        .bind(job.created_ms)
        .bind(job.idempotency_key.as_deref())
        .bind(job.priority)
        .bind(job.queue_key)
        .bind(&job.tenant)
        .bind(job.timeout_ms)
        .bind(i64::from(job.max_attempts.max(1)))
        .bind(job.forge_status.then_some("queued"))
        .bind(job.admission_json.as_deref())
        .bind(job.signer_keyid.as_deref())
        .execute(&mut conn)
        .await?;
        if inserted == 0 {
            let key = job.idempotency_key.as_deref().unwrap_or_default();
            return job_with_key(&mut conn, key, &job.spec_json)
                .await?
                .ok_or(StoreError::Query(sqlx::Error::RowNotFound));
        }
        let seq = events::append(
            &mut conn,
            job.id,
            job.created_ms,
            [state_event(JobState::Queued, &job.queued_message)],
        )
        .await?;
        tx.commit().await?;
        Ok(Submitted::New(seq))
    }

    /// The job with this id.
    pub async fn job(&self, id: JobId) -> Result<JobRecord, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        fetch_job(&mut pooled.conn(), id).await
    }

    /// The job, if `token` is its current lease.
    pub async fn leased_job(&self, id: JobId, token: LeaseToken) -> Result<JobRecord, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let mut conn = pooled.conn();
        check_lease_in(&mut conn, id, token).await?;
        fetch_job(&mut conn, id).await
    }

    /// Leases the first QUEUED job (by queue key: priority with aging, then FIFO) whose labels
    /// `runner` all carries, whose retry backoff has passed and whose tenant is under its
    /// concurrency limit: a new lease token, one more attempt with its own row, a lease expiry
    /// and a deadline, the job token's digest, state LEASED and its event, atomically. Returns
    /// the job and the event's sequence number, or `None` when no job fits.
    ///
    /// With several replicas, a candidate another replica is leasing is skipped, not waited
    /// for, and leasers of one tenant are serialized so its limit holds exactly.
    pub async fn lease_next(
        &self,
        runner: &RunnerRecord,
        token: LeaseToken,
        job_token: &JobTokenGrant,
        terms: &LeaseTerms,
    ) -> Result<Option<(JobRecord, u64)>, StoreError> {
        let now_ms = terms.now_ms;
        let mut tx = self.pool.begin_write().await?;
        let mut conn = tx.conn();
        let order = conn.dialect().insertion_order();
        let mut running: HashMap<String, i64> = HashMap::new();
        let mut chosen = None;
        // Usually the first few queued jobs fit: look at a short page first, and at a long
        // one only when none of those does (labels, tenant limits).
        for limit in [FIRST_PAGE, CANDIDATES] {
            let rows = query(AssertSqlSafe(format!(
                "SELECT id, labels, tenant FROM jobs WHERE state = 'QUEUED' \
                 AND not_before_ms <= $1 ORDER BY queue_key, {order} LIMIT $2"
            )))
            .bind(now_ms)
            .bind(i64::from(limit))
            .fetch_all(&mut conn)
            .await?;
            for row in &rows {
                let labels = labels_from_json(&row.try_get::<String, _>(1)?)?;
                if !carries_all(&runner.labels, &labels) {
                    continue;
                }
                if terms.tenant_limit > 0 {
                    let tenant: String = row.try_get(2)?;
                    let count = match running.get(&tenant) {
                        Some(n) => *n,
                        None => {
                            // Serializes leasers of one tenant across replicas until commit, so the
                            // limit counted below holds exactly.
                            conn.serialize_on(&tenant).await?;
                            let n: i64 = query(
                                "SELECT COUNT(*) FROM jobs WHERE tenant = $1 AND \
                                 state IN ('LEASED', 'RUNNING')",
                            )
                            .bind(&tenant)
                            .fetch_one(&mut conn)
                            .await?
                            .try_get(0)?;
                            running.insert(tenant.clone(), n);
                            n
                        }
                    };
                    if count >= i64::from(terms.tenant_limit) {
                        continue;
                    }
                }
                let id: String = row.try_get(0)?;
                if claim_queued(&mut conn, &id).await? {
                    chosen = Some(JobId::new(parse_uuid("id", &id)?));
                    break;
                }
            }
            if chosen.is_some() || rows.len() < usize::try_from(limit).unwrap_or(usize::MAX) {
                break;
            }
        }
        let Some(id) = chosen else {
            return Ok(None);
        };
        let updated = query(
            "UPDATE jobs SET state = 'LEASED', lease_token = $1, attempt = attempt + 1, \
             runner_id = $2, leased_ms = $3, started_ms = NULL, message = $4, \
             lease_expires_ms = $5, deadline_ms = $6 + timeout_ms + $7, job_token_sha256 = $8, \
             job_token_expires_ms = $6 + timeout_ms + $9 WHERE id = $10 AND state = 'QUEUED'",
        )
        .bind(token.to_string())
        .bind(runner.id.to_string())
        .bind(now_ms)
        .bind(format!("leased by runner {}", runner.name))
        .bind(now_ms.saturating_add(terms.ttl_ms))
        .bind(now_ms)
        .bind(terms.deadline_grace_ms)
        .bind(job_token.token_sha256.hex())
        .bind(terms.deadline_grace_ms.saturating_add(job_token.grace_ms))
        .bind(id.to_string())
        .execute(&mut conn)
        .await?;
        if updated != 1 {
            return Ok(None);
        }
        let job = fetch_job(&mut conn, id).await?;
        query(
            "INSERT INTO job_attempts (job_id, attempt, runner_id, leased_ms) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id.to_string())
        .bind(i64::from(job.attempt))
        .bind(runner.id.to_string())
        .bind(now_ms)
        .execute(&mut conn)
        .await?;
        let message = format!(
            "attempt {} leased by runner {} ({})",
            job.attempt, runner.name, runner.id
        );
        let seq = events::append(
            &mut conn,
            id,
            now_ms,
            [state_event(JobState::Leased, &message)],
        )
        .await?;
        tx.commit().await?;
        Ok(Some((job, seq)))
    }

    /// Records runner events under the lease `token`. The first report moves LEASED to
    /// RUNNING (with its own state event).
    pub async fn report(
        &self,
        job: JobId,
        token: LeaseToken,
        now_ms: i64,
        kinds: Vec<EventKind>,
    ) -> Result<Reported, StoreError> {
        let mut tx = self.pool.begin_write().await?;
        let mut conn = tx.conn();
        let state = check_lease_in(&mut conn, job, token).await?;
        let mut all = Vec::with_capacity(kinds.len() + 1);
        let mut started_after_ms = None;
        let row = query("SELECT leased_ms, cancel_requested FROM jobs WHERE id = $1")
            .bind(job.to_string())
            .fetch_one(&mut conn)
            .await?;
        let leased_ms: Option<i64> = row.try_get(0)?;
        let cancel_requested: bool = row.try_get(1)?;
        if state == JobState::Leased {
            query("UPDATE jobs SET state = 'RUNNING', started_ms = $1, message = '' WHERE id = $2")
                .bind(now_ms)
                .bind(job.to_string())
                .execute(&mut conn)
                .await?;
            all.push(state_event(JobState::Running, "steps are running"));
            started_after_ms = leased_ms.map(|l| now_ms.saturating_sub(l));
        }
        all.extend(kinds);
        let seq = events::append(&mut conn, job, now_ms, all).await?;
        tx.commit().await?;
        Ok(Reported {
            seq,
            started_after_ms,
            cancel_requested,
        })
    }

    /// Ends the lease `token` with `completion` and appends the state event. An
    /// [`JobState::InfraFailed`] completion of a job with attempts left (and no cancel
    /// request) re-queues it as a new attempt after the policy's backoff instead. Fails with
    /// [`StoreError::StaleLease`] if the lease is no longer current (completed already,
    /// expired and re-queued, timed out). Returns the event's sequence number and the state
    /// the job is now in.
    pub async fn complete(
        &self,
        job: JobId,
        token: LeaseToken,
        completion: &Completion,
        retry: &RetryPolicy,
    ) -> Result<(u64, JobState), StoreError> {
        let mut tx = self.pool.begin_write().await?;
        let mut conn = tx.conn();
        check_lease_in(&mut conn, job, token).await?;
        if completion.state == JobState::InfraFailed && completion.retryable {
            let record = fetch_job(&mut conn, job).await?;
            if !record.cancel_requested {
                let ended = attempts::requeue_or_fail(
                    &mut conn,
                    &record,
                    completion.finished_ms,
                    retry,
                    &completion.message,
                )
                .await?;
                tx.commit().await?;
                return Ok(ended);
            }
        }
        let p = completion.provenance.as_ref();
        query(
            "UPDATE jobs SET state = $1, message = $2, exit_code = $3, finished_ms = $4, \
             log_sha256 = $5, builder_id = $6, envelope_json = $7, bundle_json = $8, keyid = $9, \
             public_key_pem = $10, lease_expires_ms = NULL, deadline_ms = NULL \
             WHERE id = $11 AND lease_token = $12 AND state IN ('LEASED', 'RUNNING')",
        )
        .bind(completion.state.as_str())
        .bind(&completion.message)
        .bind(completion.exit_code)
        .bind(completion.finished_ms)
        .bind(completion.log_sha256.map(|d| d.hex()))
        .bind(completion.builder_id.as_deref())
        .bind(p.map(|p| p.envelope_json.as_str()))
        .bind(p.map(|p| p.bundle_json.as_str()))
        .bind(p.map(|p| p.keyid.as_str()))
        .bind(p.map(|p| p.public_key_pem.as_str()))
        .bind(job.to_string())
        .bind(token.to_string())
        .execute(&mut conn)
        .await?;
        if let Some(sbom) = &completion.sbom {
            query(
                "INSERT INTO job_sboms (job_id, spdx_json, cyclonedx_json, envelope_json, keyid, \
                 public_key_pem) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(job.to_string())
            .bind(&sbom.spdx_json)
            .bind(&sbom.cyclonedx_json)
            .bind(&sbom.envelope_json)
            .bind(&sbom.keyid)
            .bind(&sbom.public_key_pem)
            .execute(&mut conn)
            .await?;
        }
        if let Some(trace) = &completion.trace {
            query(
                "INSERT INTO job_traces (job_id, envelope_json, hermeticity) VALUES ($1, $2, $3)",
            )
            .bind(job.to_string())
            .bind(&trace.envelope_json)
            .bind(&trace.hermeticity)
            .execute(&mut conn)
            .await?;
        }
        attempts::finish_attempt(
            &mut conn,
            job,
            completion.finished_ms,
            completion.state,
            &completion.message,
        )
        .await?;
        let seq = events::append(
            &mut conn,
            job,
            completion.finished_ms,
            [state_event(completion.state, &completion.message)],
        )
        .await?;
        tx.commit().await?;
        Ok((seq, completion.state))
    }
}
