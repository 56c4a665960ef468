//! What the status reporter owes forges: jobs a webhook queued whose `pending` status, or
//! whose final status once they ended, has not been posted yet (`jobs.forge_status`).

use super::codec::parse_uuid;
use super::sql::query;
use super::{Store, StoreError};
use crate::ids::JobId;
use crate::state::JobState;

/// The stage of a job's statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgeStatusStage {
    /// Nothing posted yet: `pending` is due.
    Queued,
    /// `pending` posted: the final state is due once the job ends.
    Pending,
    /// Everything posted (or given up on).
    Done,
}

impl ForgeStatusStage {
    fn as_str(self) -> &'static str {
        match self {
            ForgeStatusStage::Queued => "queued",
            ForgeStatusStage::Pending => "pending",
            ForgeStatusStage::Done => "done",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(ForgeStatusStage::Queued),
            "pending" => Some(ForgeStatusStage::Pending),
            "done" => Some(ForgeStatusStage::Done),
            _ => None,
        }
    }
}

/// A job with a status due.
#[derive(Debug, Clone)]
pub struct DueStatus {
    /// The job.
    pub id: JobId,
    /// `job.name`.
    pub name: String,
    /// Its spec (holding the trigger and the commit).
    pub spec_json: Vec<u8>,
    /// Its state now.
    pub state: JobState,
    /// Why it is in that state.
    pub message: String,
    /// What is due.
    pub stage: ForgeStatusStage,
}

impl Store {
    /// Up to `limit` jobs with a status due, oldest first.
    pub async fn due_forge_statuses(&self, limit: u32) -> Result<Vec<DueStatus>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let rows = query(
            "SELECT id, name, spec_json, state, message, forge_status FROM jobs \
             WHERE forge_status = 'queued' OR (forge_status = 'pending' AND state IN \
             ('SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT', 'INFRA_FAILED')) \
             ORDER BY created_ms LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut pooled.conn())
        .await?;
        rows.iter()
            .map(|row| {
                let state: String = row.try_get(3)?;
                let stage: String = row.try_get(5)?;
                Ok(DueStatus {
                    id: JobId::new(parse_uuid("id", &row.try_get::<String, _>(0)?)?),
                    name: row.try_get(1)?,
                    spec_json: row.try_get(2)?,
                    state: JobState::parse(&state)
                        .ok_or_else(|| StoreError::Corrupt(format!("state {state:?}")))?,
                    message: row.try_get(4)?,
                    stage: ForgeStatusStage::parse(&stage)
                        .ok_or_else(|| StoreError::Corrupt(format!("forge_status {stage:?}")))?,
                })
            })
            .collect()
    }

    /// Moves `job` from stage `from` to `to`; false when another replica moved it first.
    pub async fn advance_forge_status(
        &self,
        job: JobId,
        from: ForgeStatusStage,
        to: ForgeStatusStage,
    ) -> Result<bool, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let done = query("UPDATE jobs SET forge_status = $1 WHERE id = $2 AND forge_status = $3")
            .bind(to.as_str())
            .bind(job.to_string())
            .bind(from.as_str())
            .execute(&mut pooled.conn())
            .await?;
        Ok(done > 0)
    }

    /// The job an earlier submission with idempotency key `key` created, if any.
    pub async fn job_with_idempotency_key(&self, key: &str) -> Result<Option<JobId>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let row = query("SELECT id FROM jobs WHERE idempotency_key = $1")
            .bind(key)
            .fetch_optional(&mut pooled.conn())
            .await?;
        row.map(|row| Ok(JobId::new(parse_uuid("id", &row.try_get::<String, _>(0)?)?)))
            .transpose()
    }
}
