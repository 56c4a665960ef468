//! The SBOMs and runtime traces of jobs (`job_sboms`, `job_traces`): written with the job's
//! completion, read by GetProvenance and GetJob.

use super::sql::query;
use super::{Store, StoreError, StoredSbom, StoredTrace};
use crate::ids::JobId;

impl Store {
    /// The job's signed SBOM, if it has one.
    pub async fn sbom(&self, id: JobId) -> Result<Option<StoredSbom>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let row = query(
            "SELECT spdx_json, cyclonedx_json, envelope_json, keyid, public_key_pem \
             FROM job_sboms WHERE job_id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&mut pooled.conn())
        .await?;
        row.map(|row| {
            Ok(StoredSbom {
                spdx_json: row.try_get(0)?,
                cyclonedx_json: row.try_get(1)?,
                envelope_json: row.try_get(2)?,
                keyid: row.try_get(3)?,
                public_key_pem: row.try_get(4)?,
            })
        })
        .transpose()
    }

    /// The job's signed runtime trace, if it was traced.
    pub async fn trace(&self, id: JobId) -> Result<Option<StoredTrace>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let row = query("SELECT envelope_json, hermeticity FROM job_traces WHERE job_id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut pooled.conn())
            .await?;
        row.map(|row| {
            Ok(StoredTrace {
                envelope_json: row.try_get(0)?,
                hermeticity: row.try_get(1)?,
            })
        })
        .transpose()
    }
}
