//! Phase 3 of a job and its upload: the outputs collected from `/out` once every sandbox
//! process is dead, then streamed to the controller.

use airlock_job::JobSpec;
use airlock_proto::v1::upload_output_request::Kind as UploadKind;
use airlock_proto::v1::{
    Lease, OutputFile, OutputHeader, UploadOutputRequest, UploadOutputResponse,
};
use tracing::warn;

use super::Runner;
use super::job::JobEnd;
use super::prepare::PreparedJob;
use crate::fetch::prepare::ResolvedInputs;
use crate::profile::Profile;
use crate::report::events::EventSink;
use crate::report::outputs::{CollectedOutput, OutputLimits, collect_outputs};
use crate::report::sbom::image_contents_proto;

impl Runner {
    /// Collects the job's outputs from `/out` (every sandbox process is dead by now):
    /// `Succeeded` with them, or how collecting them failed.
    pub(super) async fn collect_outputs(
        &self,
        events: &EventSink,
        spec: &JobSpec,
        profile: &Profile,
        id_map: crate::sandbox::IdMap,
        prepared: &PreparedJob,
    ) -> JobEnd {
        let PreparedJob { out, image, .. } = prepared;
        // Rootless: take /out back first, so that the runner can read every file.
        if let Err(e) = self
            .launcher
            .chown_rootless(std::slice::from_ref(out), id_map, false)
            .await
        {
            return JobEnd::Infra(format!("taking /out back from the sandbox: {e}"));
        }
        let patterns = spec.outputs.paths.clone();
        let out_dir = out.clone();
        let limits = OutputLimits {
            max_file_bytes: profile.ceilings.output_bytes.0,
            max_total_bytes: profile.ceilings.output_bytes.0,
            ..OutputLimits::default()
        };
        let collected =
            tokio::task::spawn_blocking(move || collect_outputs(&out_dir, &patterns, limits)).await;
        let collected = match collected {
            Ok(Ok(mut outputs)) => match self
                .package_images(
                    events,
                    spec,
                    profile,
                    out,
                    prepared.source_epoch,
                    &prepared.image_bases,
                )
                .await
            {
                Ok(files) => {
                    outputs.extend(files);
                    outputs.sort_by(|a, b| a.path.cmp(&b.path));
                    Ok(Ok(outputs))
                }
                Err(end) => return end,
            },
            other => other,
        };
        if let Ok(Ok(outputs)) = &collected
            && let Some(o) = outputs
                .iter()
                .find(|o| airlock_job::is_sbom_file_name(&spec.job.name, &o.path))
        {
            return JobEnd::Failed {
                message: format!(
                    "output {} has the name of the job's SBOM, which airlock writes next to the \
                     outputs; rename it",
                    o.path
                ),
                exit_code: 0,
            };
        }
        match collected {
            Ok(Ok(outputs)) => {
                for o in outputs
                    .iter()
                    .filter(|o| !spec.outputs.in_image_layout(&o.path))
                {
                    events
                        .system(
                            0,
                            format!("output {} sha256:{} ({} bytes)", o.path, o.sha256, o.size),
                        )
                        .await;
                }
                JobEnd::Succeeded {
                    outputs,
                    image: Box::new(ResolvedInputs {
                        manifest: image.manifest_digest,
                        layers: image.layers.clone(),
                        dependencies: prepared
                            .deps
                            .as_ref()
                            .map(|d| d.resolved.clone())
                            .unwrap_or_default(),
                        restored_caches: prepared.caches.restored(),
                        saved_caches: Vec::new(),
                        image_contents: image_contents_proto(&prepared.image_contents),
                        vulnerabilities: Vec::new(),
                        gate_failure: None,
                        trace: prepared.trace.report(),
                    }),
                }
            }
            Ok(Err(e)) if e.is_build_failure() => JobEnd::Failed {
                message: e.to_string(),
                exit_code: 0,
            },
            Ok(Err(e)) => JobEnd::Infra(e.to_string()),
            Err(e) => JobEnd::Infra(format!("output collection panicked: {e}")),
        }
    }

    /// Uploads the collected outputs; the files to report, or why uploading failed. An
    /// upload cut by a controller restart is sent again (the controller keeps the first
    /// copy of an output and checks the digest of every copy).
    pub(super) async fn upload_outputs(
        &mut self,
        lease: &Lease,
        outputs: &[CollectedOutput],
    ) -> Result<Vec<OutputFile>, String> {
        let mut files = Vec::new();
        for o in outputs {
            let mut retry = super::retry::Transient::new();
            let resp = loop {
                match self.upload_output(lease, o).await? {
                    Ok(resp) => break resp,
                    Err(status) => {
                        if !retry.wait(&status).await {
                            return Err(format!(
                                "uploading output {}: {}",
                                o.path,
                                status.message()
                            ));
                        }
                        warn!(%status, output = %o.path, "uploading an output failed; sending it again");
                    }
                }
            };
            files.push(OutputFile {
                path: o.path.clone(),
                sha256: resp.sha256,
                size: resp.size,
                executable: o.executable,
            });
        }
        Ok(files)
    }

    /// Streams one output; `Err` for a local failure, `Ok(Err)` for the controller's answer.
    async fn upload_output(
        &mut self,
        lease: &Lease,
        o: &CollectedOutput,
    ) -> Result<Result<UploadOutputResponse, tonic::Status>, String> {
        let file = tokio::fs::File::open(&o.file)
            .await
            .map_err(|e| format!("reading output {}: {e}", o.path))?;
        let header = UploadOutputRequest {
            kind: Some(UploadKind::Header(OutputHeader {
                job_id: lease.job_id.clone(),
                lease_token: lease.lease_token.clone(),
                path: o.path.clone(),
                size: o.size,
                sha256: o.sha256.hex(),
                executable: o.executable,
            })),
        };
        let (stream, feeder) = super::upload::header_then_file(
            header,
            file,
            o.size,
            |d| UploadOutputRequest {
                kind: Some(UploadKind::Data(d)),
            },
            format!("output {}", o.path),
        );
        let resp = self.client.upload_output(stream).await;
        feeder
            .await
            .map_err(|e| format!("upload task panicked: {e}"))??;
        Ok(resp.map(tonic::Response::into_inner))
    }
}
