//! A job's `[[outputs.images]]`: their base images verified while the job is prepared (so a
//! bad base fails before any step), and the images packaged once the steps succeeded, outside
//! the sandbox, into `OUT/<name>/`.

use std::path::{Path, PathBuf};

use airlock_job::{ImageRef, JobSpec};

use super::Runner;
use super::job::JobEnd;
use super::prepare::prepare_failed;
use crate::image_output::{BaseSource, ImageRequest, PackagedImage, package};
use crate::profile::Profile;
use crate::report::events::EventSink;
use crate::report::outputs::{CollectedOutput, OutputLimits, collect_outputs};

impl Runner {
    /// One entry per `[[outputs.images]]`: its verified base, if it names one.
    pub(super) async fn prepare_image_bases(
        &self,
        spec: &JobSpec,
        events: &EventSink,
    ) -> Result<Vec<Option<BaseSource>>, JobEnd> {
        let mut bases = Vec::new();
        for image in &spec.outputs.images {
            let Some(reference) = &image.base else {
                bases.push(None);
                continue;
            };
            let (layout, pulled, pinned) = match reference {
                ImageRef::OciLayout { dir, digest } => {
                    let layout =
                        self.allowed_layout(Path::new(dir))
                            .map_err(|m| JobEnd::Failed {
                                message: format!("image output `{}`: base {m}", image.name),
                                exit_code: 0,
                            })?;
                    (layout, None, *digest)
                }
                ImageRef::Registry { repository, digest } => {
                    let (pulled, layout) = crate::fetch::prepare::registry_base(
                        &self.fetchers,
                        repository,
                        digest,
                        events,
                    )
                    .await
                    .map_err(prepare_failed)?;
                    (layout, Some(pulled), *digest)
                }
            };
            // A registry base pinned by an index extends the platform manifest in it.
            let manifest = pulled.as_ref().map_or(pinned, |p| p.manifest);
            let name = reference.to_string();
            let base = tokio::task::spawn_blocking(move || {
                BaseSource::new(layout, manifest, name, pulled)
            })
            .await
            .map_err(|e| JobEnd::Infra(format!("base image check panicked: {e}")))?
            .map_err(|e| JobEnd::Failed {
                message: format!("image output `{}`: {e}", image.name),
                exit_code: 0,
            })?;
            events
                .system(
                    0,
                    format!(
                        "image output {}: base {reference} verified (manifest sha256:{manifest})",
                        image.name
                    ),
                )
                .await;
            bases.push(Some(base));
        }
        Ok(bases)
    }

    /// Packages every image into `OUT/<name>/` and collects the layouts' files as outputs.
    pub(super) async fn package_images(
        &self,
        events: &EventSink,
        spec: &JobSpec,
        profile: &Profile,
        out: &Path,
        epoch: u64,
        bases: &std::sync::Arc<Vec<Option<BaseSource>>>,
    ) -> Result<Vec<CollectedOutput>, JobEnd> {
        let mut files = Vec::new();
        for (i, image) in spec.outputs.images.iter().enumerate() {
            events
                .system(
                    0,
                    format!(
                        "image output {}: packaging /out/{} ({} layer)",
                        image.name,
                        image.rootfs,
                        match image.compression {
                            airlock_job::LayerCompression::Gzip => "gzip",
                            airlock_job::LayerCompression::None => "uncompressed",
                        }
                    ),
                )
                .await;
            let (out_dir, image_spec, bases) = (out.to_path_buf(), image.clone(), bases.clone());
            let (policy, max_bytes) = (profile.images, profile.ceilings.output_bytes.0);
            let packaged: Result<PackagedImage, _> = tokio::task::spawn_blocking(move || {
                package(ImageRequest {
                    out: &out_dir,
                    spec: &image_spec,
                    base: bases.get(i).and_then(Option::as_ref),
                    epoch,
                    policy,
                    max_bytes,
                })
            })
            .await
            .map_err(|e| JobEnd::Infra(format!("image packaging panicked: {e}")))?;
            let packaged = match packaged {
                Ok(p) => p,
                Err(e) if e.is_build_failure() => {
                    return Err(JobEnd::Failed {
                        message: format!("image output `{}`: {e}", image.name),
                        exit_code: 0,
                    });
                }
                Err(e) => return Err(JobEnd::Infra(format!("image output `{}`: {e}", image.name))),
            };
            events
                .system(
                    0,
                    format!(
                        "image output {}: manifest sha256:{} ({} layers)",
                        image.name,
                        packaged.manifest,
                        packaged.layers.len()
                    ),
                )
                .await;
            files.extend(collect_layout(out, &image.name, max_bytes).await?);
        }
        Ok(files)
    }
}

/// Every file of the layout at `OUT/<name>/`, hashed like an output.
async fn collect_layout(
    out: &Path,
    name: &str,
    max_bytes: u64,
) -> Result<Vec<CollectedOutput>, JobEnd> {
    let out: PathBuf = out.to_path_buf();
    let patterns = vec![format!("{name}/**")];
    let limits = OutputLimits {
        max_file_bytes: max_bytes,
        max_total_bytes: max_bytes,
        ..OutputLimits::default()
    };
    tokio::task::spawn_blocking(move || collect_outputs(&out, &patterns, limits))
        .await
        .map_err(|e| JobEnd::Infra(format!("collecting an image layout panicked: {e}")))?
        .map_err(|e| JobEnd::Infra(format!("collecting the image layout {name}: {e}")))
}
