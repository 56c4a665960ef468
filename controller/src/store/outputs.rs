//! Output files of a job attempt, as the controller hashed them.

use super::Store;
use super::codec::parse_digest;
use super::job_rows::check_lease_in;
use super::sql::{Row, query};
use super::{OutputRecord, StoreError};
use crate::ids::{JobId, LeaseToken};

fn output_from_row(row: &Row) -> Result<OutputRecord, StoreError> {
    let size: i64 = row.try_get("size")?;
    Ok(OutputRecord {
        path: row.try_get("path")?,
        sha256: parse_digest("sha256", &row.try_get::<String, _>("sha256")?)?,
        size: u64::try_from(size).map_err(|_| StoreError::Corrupt(format!("size {size}")))?,
        executable: row.try_get("executable")?,
    })
}

impl Store {
    /// True when `path` was already recorded for `attempt` of `job`.
    pub async fn output_exists(
        &self,
        job: JobId,
        attempt: u32,
        path: &str,
    ) -> Result<bool, StoreError> {
        let row = query("SELECT 1 FROM outputs WHERE job_id = $1 AND attempt = $2 AND path = $3")
            .bind(job.to_string())
            .bind(i64::from(attempt))
            .bind(path)
            .fetch_optional(&mut self.pool.acquire().await?.conn())
            .await?;
        Ok(row.is_some())
    }

    /// Records an output under the lease `token` (for the lease's attempt). Fails if the lease
    /// is stale or the path was recorded already.
    pub async fn insert_output(
        &self,
        job: JobId,
        token: LeaseToken,
        output: &OutputRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_write().await?;
        let mut conn = tx.conn();
        check_lease_in(&mut conn, job, token).await?;
        let inserted = query(
            "INSERT INTO outputs (job_id, attempt, path, sha256, size, executable) \
             SELECT id, attempt, $1, $2, $3, $4 FROM jobs WHERE id = $5 \
             ON CONFLICT (job_id, attempt, path) DO NOTHING",
        )
        .bind(&output.path)
        .bind(output.sha256.hex())
        .bind(i64::try_from(output.size).unwrap_or(i64::MAX))
        .bind(output.executable)
        .bind(job.to_string())
        .execute(&mut conn)
        .await?;
        if inserted != 1 {
            return Err(StoreError::OutputExists {
                job,
                path: output.path.clone(),
            });
        }
        tx.commit().await?;
        Ok(())
    }

    /// The outputs recorded for `attempt` of `job`, sorted by path.
    pub async fn outputs(&self, job: JobId, attempt: u32) -> Result<Vec<OutputRecord>, StoreError> {
        let rows = query(
            "SELECT path, sha256, size, executable FROM outputs WHERE job_id = $1 AND attempt = $2 \
             ORDER BY path",
        )
        .bind(job.to_string())
        .bind(i64::from(attempt))
        .fetch_all(&mut self.pool.acquire().await?.conn())
        .await?;
        rows.iter().map(output_from_row).collect()
    }
}
