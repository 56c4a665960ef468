//! Runner registration.

use super::{Scheduler, now_ms};
use crate::api::status::ApiError;
use crate::ids::RunnerId;
use crate::store::RunnerRecord;

impl Scheduler {
    /// Registers a runner that authenticated with the secret of `registration`.
    pub async fn register_runner(
        &self,
        name: String,
        labels: Vec<String>,
        version: String,
        registration: String,
    ) -> Result<RunnerId, ApiError> {
        if name.trim().is_empty() {
            return Err(ApiError::invalid(
                "name",
                "empty; send the runner's host name",
            ));
        }
        if version.trim().is_empty() {
            return Err(ApiError::invalid(
                "version",
                "empty; send the runner's airlock version (it is recorded in provenance)",
            ));
        }
        if let Some(i) = labels.iter().position(|l| l.trim().is_empty()) {
            return Err(ApiError::invalid(format!("labels[{i}]"), "empty label"));
        }
        let id = RunnerId::new(self.ids.new_id());
        self.store
            .insert_runner(&RunnerRecord {
                id,
                name: name.clone(),
                labels,
                version,
                registered_ms: now_ms(&*self.clock),
                registration: registration.clone(),
            })
            .await?;
        tracing::info!(runner_id = %id, runner = %name, %registration, "runner registered");
        Ok(id)
    }
}
