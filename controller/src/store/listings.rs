//! Read-only listings for the web pages: the most recent jobs (the queue page) and the
//! runners with what they are doing (the runners page).

use std::collections::HashMap;

use sqlx::AssertSqlSafe;

use super::codec::{JOB_COLUMNS, job_from_row, labels_from_json, parse_uuid};
use super::sql::query;
use super::{JobRecord, RunnerRecord, Store, StoreError};
use crate::ids::{JobId, RunnerId};
use crate::state::JobState;

/// A job a runner holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldJob {
    /// The job.
    pub id: JobId,
    /// `job.name`.
    pub name: String,
    /// LEASED or RUNNING.
    pub state: JobState,
}

/// A registered runner and what the store knows of its activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerActivity {
    /// The runner.
    pub runner: RunnerRecord,
    /// The latest expiry of its stored runner tokens (expired ones are swept): a runner
    /// whose token is still valid is online.
    pub token_expires_ms: Option<i64>,
    /// When it last leased a job.
    pub last_leased_ms: Option<i64>,
    /// The jobs it holds now.
    pub jobs: Vec<HeldJob>,
}

impl Store {
    /// Up to `limit` jobs created before `before_ms` (all jobs when `None`), newest first.
    pub async fn recent_jobs(
        &self,
        limit: u32,
        before_ms: Option<i64>,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let rows = query(AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE created_ms < $1 \
             ORDER BY created_ms DESC, id DESC LIMIT $2"
        )))
        .bind(before_ms.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&mut self.pool.acquire().await?.conn())
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Up to `limit` runners, most recently registered first, with their token expiry, last
    /// lease and the jobs they hold.
    pub async fn runner_activity(&self, limit: u32) -> Result<Vec<RunnerActivity>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let mut conn = pooled.conn();
        let runners = query(
            "SELECT id, name, labels, version, registered_ms, registration FROM runners \
             ORDER BY registered_ms DESC, id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut conn)
        .await?;
        let mut tokens = HashMap::new();
        for row in query("SELECT runner_id, MAX(expires_ms) FROM runner_tokens GROUP BY runner_id")
            .fetch_all(&mut conn)
            .await?
        {
            tokens.insert(row.try_get::<String, _>(0)?, row.try_get::<i64, _>(1)?);
        }
        let mut leased = HashMap::new();
        for row in query("SELECT runner_id, MAX(leased_ms) FROM job_attempts GROUP BY runner_id")
            .fetch_all(&mut conn)
            .await?
        {
            leased.insert(row.try_get::<String, _>(0)?, row.try_get::<i64, _>(1)?);
        }
        let mut held: HashMap<String, Vec<HeldJob>> = HashMap::new();
        for row in query(
            "SELECT id, name, state, runner_id FROM jobs WHERE state IN ('LEASED', 'RUNNING') \
             AND runner_id IS NOT NULL ORDER BY created_ms",
        )
        .fetch_all(&mut conn)
        .await?
        {
            let state: String = row.try_get(2)?;
            held.entry(row.try_get(3)?).or_default().push(HeldJob {
                id: JobId::new(parse_uuid("id", &row.try_get::<String, _>(0)?)?),
                name: row.try_get(1)?,
                state: JobState::parse(&state)
                    .ok_or_else(|| StoreError::Corrupt(format!("job state {state:?}")))?,
            });
        }
        runners
            .iter()
            .map(|row| {
                let id: String = row.try_get(0)?;
                Ok(RunnerActivity {
                    token_expires_ms: tokens.get(&id).copied(),
                    last_leased_ms: leased.get(&id).copied(),
                    jobs: held.remove(&id).unwrap_or_default(),
                    runner: RunnerRecord {
                        id: RunnerId::new(parse_uuid("id", &id)?),
                        name: row.try_get(1)?,
                        labels: labels_from_json(&row.try_get::<String, _>(2)?)?,
                        version: row.try_get(3)?,
                        registered_ms: row.try_get(4)?,
                        registration: row.try_get(5)?,
                    },
                })
            })
            .collect()
    }
}
