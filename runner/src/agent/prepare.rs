//! Phase 1 of a job, outside the sandbox: its workspace, the attestation of its image (when
//! the profile requires one), its source, its declared inputs, its lockfile packages and its
//! verified image.

use std::path::{Path, PathBuf};

use airlock_attest::Sha256Digest;
use airlock_job::{ImageRef, JobSpec, SourceSpec};
use airlock_proto::v1::{DownloadSourceRequest, Lease};
use tokio::sync::watch;
use tokio_stream::StreamExt;

use super::Runner;
use super::caches::JobCaches;
use super::fs::{chown_tree, mkdir_fresh, mkdir_searchable};
use super::job::JobEnd;
use crate::fetch::image::check::CheckedImage;
use crate::fetch::image::packages::{ImageContents, read_image_contents};
use crate::fetch::image::registry::RegistryRepo;
use crate::fetch::image::{ImageProgress, PreparedImage, RootfsPin};
use crate::fetch::prepare::{PrepareFailure, PreparedDeps};
use crate::fetch::source_archive::{unpack_verified, write_hashed};
use crate::profile::Profile;
use crate::report::events::EventSink;

/// `SOURCE_DATE_EPOCH` for path sources, which have no commit time: 1980-01-01,
/// the earliest time every archive format can store.
const PATH_SOURCE_DATE_EPOCH: u64 = 315_532_800;

/// A job's workspace and inputs, ready for its steps.
pub(super) struct PreparedJob {
    /// `/work`: the unpacked source, owned by the step's uid.
    pub(super) work: PathBuf,
    /// `/out`: where the steps leave the outputs, owned by the step's uid.
    pub(super) out: PathBuf,
    /// `SOURCE_DATE_EPOCH` for every step.
    pub(super) source_epoch: u64,
    /// The declared inputs, linked read-only; `None` when the job declares none.
    pub(super) inputs_dir: Option<PathBuf>,
    /// The lockfile packages, laid out read-only; `None` without `[[deps]]`.
    pub(super) deps: Option<PreparedDeps>,
    /// The job's caches, restored where the controller found one.
    pub(super) caches: JobCaches,
    /// The verified, unpacked image.
    pub(super) image: PreparedImage,
    /// What the image's package databases list (for the job's SBOM).
    pub(super) image_contents: ImageContents,
    /// The runtime trace of the job's steps (empty when the profile does not trace).
    pub(super) trace: super::trace::JobTrace,
    /// The pin keeps the rootfs out of eviction until this job's last step has ended.
    pub(super) _rootfs_pin: RootfsPin,
    /// The verified base of each `[[outputs.images]]` (`None`: from scratch).
    pub(super) image_bases: std::sync::Arc<Vec<Option<crate::image_output::BaseSource>>>,
}

impl Runner {
    /// Prepares the job's workspace and inputs outside the sandbox and gives them to the
    /// step's ids; `Err` holds how the job ended when that failed or it was cancelled.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn prepare_job(
        &mut self,
        lease: &Lease,
        job_dir: &Path,
        events: &EventSink,
        cancel: &watch::Receiver<bool>,
        spec: &JobSpec,
        profile: &Profile,
        id_map: crate::sandbox::IdMap,
        (host_uid, host_gid): (u32, u32),
    ) -> Result<PreparedJob, JobEnd> {
        // Restored caches are dated before anything of the source is written (see
        // fetch/cache_archive.rs): a changed source file always looks newer.
        let before_source = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
        let work = job_dir.join("work");
        let out = job_dir.join("out");
        // Fresh, never reused: creating the attempt's directory fails if it exists.
        if let Err(e) = mkdir_fresh(job_dir) {
            return Err(JobEnd::Infra(e));
        }
        for d in [&work, &out] {
            if let Err(e) = mkdir_searchable(d) {
                return Err(JobEnd::Infra(e.to_string()));
            }
        }
        // Rootless, a reaper needs the id range to give the step's files back.
        if let Err(e) = crate::state::write_ids(job_dir, id_map) {
            return Err(JobEnd::Infra(e.to_string()));
        }
        // A profile that requires a checked image: nothing is fetched for an image that no
        // trusted attestation vouches for.
        if profile.image_check.require_attestation {
            let mut cancelled = cancel.clone();
            tokio::select! {
                checked = self.check_image(spec, profile, events) => checked?,
                _ = cancelled.wait_for(|c| *c) => {
                    return Err(JobEnd::Cancelled("cancelled while checking the image".into()));
                }
            }
        }
        let source_epoch = match &spec.source {
            SourceSpec::Path {
                sha256: Some(digest),
                ..
            } => {
                events
                    .system(0, format!("fetching source sha256:{digest}"))
                    .await;
                if let Err(m) = self.fetch_source(lease, digest, job_dir, &work).await {
                    return Err(JobEnd::Infra(m));
                }
                PATH_SOURCE_DATE_EPOCH
            }
            SourceSpec::Git { url, commit, .. } => {
                match crate::fetch::prepare::git_source(&self.fetchers, url, commit, &work, events)
                    .await
                {
                    Ok(epoch) => epoch,
                    Err(f) => return Err(prepare_failed(f)),
                }
            }
            SourceSpec::Archive { url, sha256 } => {
                if let Err(f) = crate::fetch::prepare::archive_source(
                    &self.fetchers,
                    url,
                    sha256,
                    &work,
                    job_dir,
                    events,
                )
                .await
                {
                    return Err(prepare_failed(f));
                }
                PATH_SOURCE_DATE_EPOCH
            }
            SourceSpec::Path { sha256: None, .. } => {
                return Err(JobEnd::Infra(
                    "the controller sent a path source without a digest".into(),
                ));
            }
        };
        // Declared inputs: verified into the cache, linked read-only under the job.
        let inputs_dir = if spec.inputs.is_empty() {
            None
        } else {
            let dir = job_dir.join("inputs");
            if let Err(f) =
                crate::fetch::prepare::inputs(&self.fetchers, &spec.inputs, &dir, events).await
            {
                return Err(prepare_failed(f));
            }
            Some(dir)
        };
        // Lockfile packages: read from the source before the step owns it, verified into the
        // cache, laid out read-only under the job. A cancel stops waiting at once.
        let deps = if spec.deps.is_empty() {
            None
        } else {
            let mut cancelled = cancel.clone();
            let deps_dir = job_dir.join("deps");
            let fetched = tokio::select! {
                fetched = crate::fetch::prepare::deps(
                    &self.fetchers,
                    &self.cfg.mirrors,
                    &spec.deps,
                    &work,
                    &deps_dir,
                    events,
                ) => fetched,
                _ = cancelled.wait_for(|c| *c) => {
                    return Err(JobEnd::Cancelled("cancelled while fetching dependencies".into()));
                }
            };
            match fetched {
                Ok(d) => Some(d),
                Err(f) => return Err(prepare_failed(f)),
            }
        };
        // Caches: keyed by the source, restored before the step owns the workspace.
        let caches = self
            .restore_caches(lease, job_dir, &work, spec, events, before_source)
            .await?;
        let mut owned = vec![work.clone(), out.clone()];
        owned.extend(caches.cache_dir.clone());
        if let Err(m) = owned
            .iter()
            .try_for_each(|dir| chown_tree(dir, host_uid, host_gid))
        {
            return Err(JobEnd::Infra(m));
        }
        // Rootless: the runner cannot chown to the job's ids; a user namespace does it.
        if let Err(e) = self.launcher.chown_rootless(&owned, id_map, true).await {
            return Err(JobEnd::Infra(format!(
                "giving the workspace to the sandbox: {e}"
            )));
        }
        // A cancel (or a lost lease) during image preparation ends the job at once; an
        // unpacking already under way finishes in the background and stays cached.
        let mut cancelled = cancel.clone();
        let prepared = tokio::select! {
            prepared = self.prepare_image(spec, events) => prepared,
            _ = cancelled.wait_for(|c| *c) => {
                return Err(JobEnd::Cancelled("cancelled before the steps started".into()));
            }
        };
        let (image, _rootfs_pin) = match prepared {
            Ok(i) => i,
            Err(end) => return Err(end),
        };
        let image_contents = read_contents(&image, events).await?;
        let image_bases = std::sync::Arc::new(self.prepare_image_bases(spec, events).await?);
        Ok(PreparedJob {
            work,
            out,
            source_epoch,
            inputs_dir,
            deps,
            caches,
            image,
            image_contents,
            trace: super::trace::JobTrace::for_profile(profile),
            _rootfs_pin,
            image_bases,
        })
    }

    /// Downloads the path source from the controller and unpacks it, verified, into `work`.
    async fn fetch_source(
        &mut self,
        lease: &Lease,
        digest: &Sha256Digest,
        job_dir: &Path,
        work: &Path,
    ) -> Result<(), String> {
        let mut stream = self
            .client
            .download_source(DownloadSourceRequest {
                job_id: lease.job_id.clone(),
                lease_token: lease.lease_token.clone(),
            })
            .await
            .map_err(|s| format!("downloading the source: {}", s.message()))?
            .into_inner();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|s| format!("downloading the source: {}", s.message()))?;
            bytes.extend_from_slice(&chunk.data);
        }
        let archive = job_dir.join("source.tar");
        let (work, digest) = (work.to_path_buf(), *digest);
        tokio::task::spawn_blocking(move || {
            write_hashed(&bytes[..], &archive)
                .and_then(|_| unpack_verified(&archive, &digest, &work))
                .map_err(|e| format!("source archive: {e}"))?;
            std::fs::remove_file(&archive)
                .map_err(|e| format!("removing {}: {e}", archive.display()))
        })
        .await
        .map_err(|e| format!("source unpacking panicked: {e}"))?
    }

    /// Finds and verifies the attestation that vouches for the job's image (the profile
    /// requires one), before the image is fetched; see [`crate::fetch::image::check`].
    async fn check_image(
        &self,
        spec: &JobSpec,
        profile: &Profile,
        events: &EventSink,
    ) -> Result<(), JobEnd> {
        let image = match &spec.image.reference {
            ImageRef::OciLayout { dir, digest } => CheckedImage::Layout {
                dir: self
                    .allowed_layout(Path::new(dir))
                    .map_err(|message| JobEnd::Failed {
                        message,
                        exit_code: 0,
                    })?,
                digest: *digest,
            },
            ImageRef::Registry { repository, digest } => CheckedImage::Registry {
                repo: RegistryRepo::parse(repository).map_err(|e| JobEnd::Failed {
                    message: e.to_string(),
                    exit_code: 0,
                })?,
                digest: *digest,
            },
        };
        crate::fetch::prepare::image_attestation(
            &self.fetchers,
            &self.cfg.image_trust,
            image,
            &profile.name,
            events,
        )
        .await
        .map(|_| ())
        .map_err(prepare_failed)
    }

    /// Verifies and unpacks the job's image (an allowed OCI layout or a registry), pinned.
    async fn prepare_image(
        &self,
        spec: &JobSpec,
        events: &EventSink,
    ) -> Result<(PreparedImage, RootfsPin), JobEnd> {
        let (dir, digest) = match &spec.image.reference {
            ImageRef::OciLayout { dir, digest } => (PathBuf::from(dir), *digest),
            ImageRef::Registry { repository, digest } => {
                return crate::fetch::prepare::registry_image(
                    &self.fetchers,
                    &self.images,
                    repository,
                    digest,
                    events,
                )
                .await
                .map_err(prepare_failed);
            }
        };
        let canonical = self
            .allowed_layout(&dir)
            .map_err(|message| JobEnd::Failed {
                message,
                exit_code: 0,
            })?;
        events
            .system(
                0,
                format!(
                    "preparing image sha256:{digest} from {}",
                    canonical.display()
                ),
            )
            .await;
        let images = self.images.clone();
        let sink = events.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            let mut progress = |p: ImageProgress| {
                let msg = match p {
                    ImageProgress::Verifying { blob, bytes } => {
                        format!(
                            "verifying layer sha256:{blob} ({:.1} MiB)",
                            bytes as f64 / 1048576.0
                        )
                    }
                    ImageProgress::Unpacking { layer, of } => {
                        format!("unpacking layer {layer}/{of}")
                    }
                    ImageProgress::Cached => {
                        "image already unpacked and verified (cache hit)".into()
                    }
                };
                sink.system_blocking(0, msg);
            };
            images.prepare_pinned_from_layout(&canonical, &digest, &mut progress)
        })
        .await
        .map_err(|e| JobEnd::Infra(format!("image preparation panicked: {e}")))?;
        prepared.map_err(|e| JobEnd::Infra(format!("image sha256:{digest}: {e}")))
    }
}

impl Runner {
    /// `dir`, canonical, when it lies under a directory this runner reads layouts from;
    /// otherwise why not (the job's fault).
    pub(super) fn allowed_layout(&self, dir: &Path) -> Result<PathBuf, String> {
        let canonical = std::fs::canonicalize(dir)
            .map_err(|e| format!("image layout {}: {e}", dir.display()))?;
        let allowed = self
            .cfg
            .allowed_layout_roots
            .iter()
            .filter_map(|r| std::fs::canonicalize(r).ok())
            .any(|root| canonical.starts_with(root));
        if !allowed {
            return Err(format!(
                "image layout {} is outside the directories this runner reads layouts from; start the runner with --allow-oci-layout DIR",
                canonical.display()
            ));
        }
        Ok(canonical)
    }
}

/// A failed preparation: the job's fault fails it, the runner's is an infrastructure failure.
pub(super) fn prepare_failed(f: PrepareFailure) -> JobEnd {
    if f.job_fault {
        JobEnd::Failed {
            message: f.message,
            exit_code: 0,
        }
    } else {
        JobEnd::Infra(f.message)
    }
}

/// Reads the image's package databases from its verified rootfs, outside the sandbox, for
/// the SBOM. An image whose database is malformed fails the job before any step: every job's
/// SBOM lists its image's packages, and a guess is no list.
async fn read_contents(image: &PreparedImage, events: &EventSink) -> Result<ImageContents, JobEnd> {
    let rootfs = image.rootfs.clone();
    let read = tokio::task::spawn_blocking(move || read_image_contents(&rootfs)).await;
    let contents = match read {
        Ok(Ok(contents)) => contents,
        Ok(Err(e)) => {
            return Err(JobEnd::Failed {
                message: format!(
                    "the image's package database cannot be read for the SBOM: {e}; fix or \
                     rebuild the image"
                ),
                exit_code: 0,
            });
        }
        Err(e) => {
            return Err(JobEnd::Infra(format!(
                "reading the image's packages panicked: {e}"
            )));
        }
    };
    let os = contents
        .os
        .as_ref()
        .and_then(|o| o.pretty_name.clone().or_else(|| Some(o.id.clone())))
        .unwrap_or_else(|| "no os-release".to_owned());
    let mut line = format!(
        "image packages: {} listed ({os}) from {}",
        contents.packages.len(),
        if contents.databases.is_empty() {
            "no package database".to_owned()
        } else {
            contents.databases.join(", ")
        }
    );
    if !contents.unsupported.is_empty() {
        line.push_str(&format!("; not read: {}", contents.unsupported.join("; ")));
    }
    events.system(0, line).await;
    Ok(contents)
}
