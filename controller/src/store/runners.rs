//! Registered runners.

use super::Store;
use super::codec::{labels_from_json, labels_to_json};
use super::sql::query;
use super::{RunnerRecord, StoreError};
use crate::ids::RunnerId;

impl Store {
    /// Records a runner.
    pub async fn insert_runner(&self, runner: &RunnerRecord) -> Result<(), StoreError> {
        query(
            "INSERT INTO runners (id, name, labels, version, registered_ms, registration) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(runner.id.to_string())
        .bind(&runner.name)
        .bind(labels_to_json(&runner.labels))
        .bind(&runner.version)
        .bind(runner.registered_ms)
        .bind(&runner.registration)
        .execute(&mut self.pool.acquire().await?.conn())
        .await?;
        Ok(())
    }

    /// The runner with this id.
    pub async fn runner(&self, id: RunnerId) -> Result<RunnerRecord, StoreError> {
        let row = query(
            "SELECT name, labels, version, registered_ms, registration FROM runners WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&mut self.pool.acquire().await?.conn())
        .await?
        .ok_or(StoreError::RunnerNotFound(id))?;
        Ok(RunnerRecord {
            id,
            name: row.try_get(0)?,
            labels: labels_from_json(&row.try_get::<String, _>(1)?)?,
            version: row.try_get(2)?,
            registered_ms: row.try_get(3)?,
            registration: row.try_get(4)?,
        })
    }
}
