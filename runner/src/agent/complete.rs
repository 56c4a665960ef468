//! Reporting a job's end to the controller (CompleteJob).

use airlock_attest::Sha256Digest;
use airlock_proto::v1::{CompleteJobRequest, Lease, Outcome, OutputFile};
use tracing::{info, warn};

use super::Runner;
use super::job::JobEnd;
use crate::fetch::prepare::ResolvedInputs;

impl Runner {
    /// Sends CompleteJob; returns `Succeeded` placeholder or the failure to report.
    pub(super) async fn complete(
        &mut self,
        lease: &Lease,
        outcome: Outcome,
        message: String,
        exit_code: i32,
        outputs: Vec<OutputFile>,
        image: Option<ResolvedInputs>,
    ) -> JobEnd {
        let req = CompleteJobRequest {
            job_id: lease.job_id.clone(),
            lease_token: lease.lease_token.clone(),
            outcome: outcome as i32,
            message: message.clone(),
            exit_code,
            outputs,
            image_manifest_sha256: image.as_ref().map(|i| i.manifest.hex()).unwrap_or_default(),
            image_layers_sha256: image
                .as_ref()
                .map(|i| i.layers.iter().map(Sha256Digest::hex).collect())
                .unwrap_or_default(),
            restored_caches: image
                .as_ref()
                .map(|i| i.restored_caches.clone())
                .unwrap_or_default(),
            saved_caches: image
                .as_ref()
                .map(|i| i.saved_caches.clone())
                .unwrap_or_default(),
            vulnerability_gate_failed: outcome == Outcome::Failed
                && image.as_ref().is_some_and(|i| i.gate_failure.is_some()),
            image_contents: image.as_ref().map(|i| i.image_contents.clone()),
            trace: image.as_ref().and_then(|i| i.trace.clone()),
            vulnerabilities: image
                .as_ref()
                .map(|i| i.vulnerabilities.clone())
                .unwrap_or_default(),
            dependencies: image.map(|i| i.dependencies).unwrap_or_default(),
        };
        let mut retry = super::retry::Transient::new();
        let answer = loop {
            match self.client.complete_job(req.clone()).await {
                Err(status) if retry.wait(&status).await => {
                    warn!(%status, "CompleteJob did not reach the controller; sending it again");
                }
                other => break other,
            }
        };
        match answer {
            Ok(resp) => {
                info!(state = resp.into_inner().state, "completed");
                JobEnd::Succeeded {
                    outputs: vec![],
                    image: Box::new(ResolvedInputs {
                        manifest: Sha256Digest::of(b""),
                        layers: Vec::new(),
                        dependencies: Vec::new(),
                        restored_caches: Vec::new(),
                        saved_caches: Vec::new(),
                        image_contents: Default::default(),
                        vulnerabilities: Vec::new(),
                        gate_failure: None,
                        trace: None,
                    }),
                }
            }
            Err(status) => {
                warn!(%status, "CompleteJob failed");
                if outcome == Outcome::Succeeded || req.vulnerability_gate_failed {
                    // Report the failure instead; the controller may still accept that.
                    let _ = Box::pin(self.complete(
                        lease,
                        Outcome::InfraFailed,
                        format!("completing the job failed: {}", status.message()),
                        0,
                        vec![],
                        None,
                    ))
                    .await;
                }
                JobEnd::Infra(status.message().to_string())
            }
        }
    }
}
