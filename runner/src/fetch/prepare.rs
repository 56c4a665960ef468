//! Phase 1 of a job, the hermetic-inputs part: git and archive sources, registry images and
//! declared inputs, fetched and verified outside the sandbox, with progress reported to the
//! job's log. Each function runs its blocking work on a blocking thread and classifies a
//! failure as the job's fault (bad pin, corrupt content, missing commit) or the runner's.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use airlock_attest::{GitCommit, Sha256Digest};
use airlock_job::{DepsSpec, InputSpec};

use crate::config::RunnerConfig;
use crate::fetch::archive_source::provide_archive_source;
use crate::fetch::cache::BlobCache;
use crate::fetch::deps::{
    DepsError, DepsProgress, Mirrors, fetch_all, lay_out, parse_lockfile, read_lockfile,
};
use crate::fetch::git_source::{GitTransports, checkout};
use crate::fetch::http::HttpClient;
use crate::fetch::image::check::{CheckedImage, ImageTrust, LookupLimits, Vouched, check_image};
use crate::fetch::image::registry::{
    PullProgress, PulledImage, RegistryAuth, RegistryClient, RegistryError, RegistryRepo, pull,
};
use crate::fetch::image::{ImageCache, ImageProgress, PreparedImage, RootfsPin};
use crate::fetch::inputs::{InputProgress, provide_inputs};
use crate::report::events::EventSink;
use crate::sandbox::DEPS_MOUNT;

/// A preparation failure: whose fault, and what to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepareFailure {
    /// True if the job's pins or content are at fault (the job fails); false for runner
    /// faults (reported as an infrastructure failure).
    pub job_fault: bool,
    /// What went wrong.
    pub message: String,
}

impl PrepareFailure {
    /// The job's fault when `job_fault`, else the runner's.
    fn by_fault(job_fault: bool, message: String) -> Self {
        Self { job_fault, message }
    }
    fn job(message: String) -> Self {
        Self {
            job_fault: true,
            message,
        }
    }
    fn infra(message: String) -> Self {
        Self {
            job_fault: false,
            message,
        }
    }
}

/// What a job's pins resolved to, as reported to the controller (provenance records it):
/// the pinned image manifest digest, the layer digests verified while unpacking, and the
/// lockfile packages fetched and verified for `[[deps]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedInputs {
    /// The digest the job pinned.
    pub manifest: Sha256Digest,
    /// Layer blob digests, base first.
    pub layers: Vec<Sha256Digest>,
    /// Every package file of the job's lockfiles.
    pub dependencies: Vec<airlock_proto::v1::ResolvedPackage>,
    /// The caches restored before the first step.
    pub restored_caches: Vec<airlock_proto::v1::CacheArchive>,
    /// The caches saved after the steps succeeded (set once they are uploaded).
    pub saved_caches: Vec<airlock_proto::v1::CacheArchive>,
    /// What the image's package databases list.
    pub image_contents: airlock_proto::v1::ImageContents,
    /// Known vulnerabilities of the image's and the lockfile's packages.
    pub vulnerabilities: Vec<airlock_proto::v1::VulnerabilityFinding>,
    /// Why the profile's vulnerability gate refused the build, if it did.
    pub gate_failure: Option<String>,
    /// What the steps did, when the profile traces them.
    pub trace: Option<airlock_proto::v1::RuntimeTrace>,
}

/// A job's `[[deps]]`, fetched, verified and laid out for its steps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreparedDeps {
    /// `<job>/deps`, mounted read-only at `/deps`.
    pub dir: PathBuf,
    /// Environment for every step, pointing the package managers at `/deps`.
    pub env: Vec<(String, String)>,
    /// What provenance records.
    pub resolved: Vec<airlock_proto::v1::ResolvedPackage>,
}

/// The runner's fetchers: blob cache, HTTP client, registry client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Fetchers {
    /// The content-addressed blob cache shared by every job.
    pub blobs: BlobCache,
    /// HTTP client for downloads.
    pub http: HttpClient,
    /// Registry client (with the configured logins).
    pub registry: Arc<RegistryClient>,
    /// Which git transports sources may use.
    pub git: GitTransports,
}

impl Fetchers {
    /// Builds the fetchers from the runner's settings.
    pub fn from_config(cfg: &RunnerConfig) -> Result<Self, RegistryError> {
        let auth = match &cfg.registry_auth_file {
            Some(path) => RegistryAuth::from_file(path)?,
            None => RegistryAuth::from_default_location()?,
        };
        let http = HttpClient::new();
        Ok(Self {
            blobs: BlobCache::new(cfg.state_dir.join("cache"), cfg.cache_max_bytes),
            registry: Arc::new(RegistryClient::new(http.clone(), auth)),
            http,
            git: if cfg.allow_file_git {
                GitTransports::NetworkAndFile
            } else {
                GitTransports::Network
            },
        })
    }

    /// Removes partial downloads whose writer died (see [`BlobCache::reap_partial`]).
    pub fn reap_partial(&self) -> usize {
        self.blobs.reap_partial()
    }
}

async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T, PrepareFailure> + Send + 'static,
) -> Result<T, PrepareFailure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PrepareFailure::infra(format!("{what} panicked: {e}")))?
}

fn input_message(p: InputProgress) -> Option<String> {
    match p {
        InputProgress::Downloading { what, transfer } if transfer.finished => {
            Some(format!("downloaded {what}: {}", transfer.describe()))
        }
        InputProgress::Downloading { what, transfer } if transfer.done > 0 => {
            Some(format!("downloading {what}: {}", transfer.describe()))
        }
        InputProgress::Downloading { .. } => None,
        InputProgress::Cached { what, digest } => {
            Some(format!("{what} sha256:{digest} verified (cache hit)"))
        }
    }
}

/// Fetches commit `commit` of `url` into `work`; returns the commit time.
pub async fn git_source(
    fetchers: &Fetchers,
    url: &str,
    commit: &GitCommit,
    work: &Path,
    events: &EventSink,
) -> Result<u64, PrepareFailure> {
    events
        .system(0, format!("fetching git source {url} at {commit}"))
        .await;
    let (url, commit, work, transports) =
        (url.to_owned(), *commit, work.to_path_buf(), fetchers.git);
    let epoch = blocking("git checkout", move || {
        checkout(&url, &commit, &work, transports).map_err(|e| {
            let message = format!("git source: {e}");
            PrepareFailure::by_fault(e.is_job_error(), message)
        })
    })
    .await?;
    events
        .system(
            0,
            format!("checked out commit {commit} (commit time {epoch})"),
        )
        .await;
    Ok(epoch)
}

/// Fetches the archive at `url`, verifies it against `sha256` and unpacks it into `work`.
pub async fn archive_source(
    fetchers: &Fetchers,
    url: &str,
    sha256: &Sha256Digest,
    work: &Path,
    scratch: &Path,
    events: &EventSink,
) -> Result<(), PrepareFailure> {
    events
        .system(
            0,
            format!("fetching source archive {url} (sha256:{sha256})"),
        )
        .await;
    let f = fetchers.clone();
    let (url, sha256) = (url.to_owned(), *sha256);
    let (work, scratch) = (work.to_path_buf(), scratch.to_path_buf());
    let sink = events.clone();
    blocking("archive source", move || {
        let mut progress = |p| {
            if let Some(m) = input_message(p) {
                sink.system_blocking(0, m);
            }
        };
        provide_archive_source(
            &f.blobs,
            &f.http,
            &url,
            &sha256,
            &work,
            &scratch,
            &mut progress,
        )
        .map_err(|e| PrepareFailure::by_fault(e.is_job_error(), e.to_string()))
    })
    .await
}

/// Provides every declared input under `dir` (mounted at `/inputs`).
pub async fn inputs(
    fetchers: &Fetchers,
    inputs: &[InputSpec],
    dir: &Path,
    events: &EventSink,
) -> Result<(), PrepareFailure> {
    let f = fetchers.clone();
    let (inputs, dir) = (inputs.to_vec(), dir.to_path_buf());
    let sink = events.clone();
    blocking("inputs", move || {
        let mut progress = |p| {
            if let Some(m) = input_message(p) {
                sink.system_blocking(0, m);
            }
        };
        provide_inputs(&f.blobs, &f.http, &inputs, &dir, &mut progress)
            .map_err(|e| PrepareFailure::by_fault(e.is_job_error(), e.to_string()))
    })
    .await
}

/// Fetches, verifies and lays out every package of the job's lockfiles (read from the
/// source unpacked at `work`) below `dir`.
pub async fn deps(
    fetchers: &Fetchers,
    mirrors: &Mirrors,
    deps: &[DepsSpec],
    work: &Path,
    dir: &Path,
    events: &EventSink,
) -> Result<PreparedDeps, PrepareFailure> {
    let f = fetchers.clone();
    let (mirrors, deps) = (mirrors.clone(), deps.to_vec());
    let (work, dir) = (work.to_path_buf(), dir.to_path_buf());
    let sink = events.clone();
    blocking("deps", move || {
        provide_deps(&f, &mirrors, &deps, &work, &dir, &sink)
            .map_err(|e| PrepareFailure::by_fault(e.is_job_error(), e.to_string()))
    })
    .await
}

fn provide_deps(
    f: &Fetchers,
    mirrors: &Mirrors,
    deps: &[DepsSpec],
    work: &Path,
    dir: &Path,
    sink: &EventSink,
) -> Result<PreparedDeps, DepsError> {
    let mut prepared = PreparedDeps {
        dir: dir.to_path_buf(),
        ..PreparedDeps::default()
    };
    std::fs::create_dir(dir).map_err(|e| DepsError::io("creating", dir, e))?;
    for spec in deps {
        let started = std::time::Instant::now();
        let text = read_lockfile(work, &spec.lockfile)?;
        let packages = parse_lockfile(spec.ecosystem, &spec.lockfile, &text)?;
        if packages.is_empty() {
            sink.system_blocking(
                0,
                format!(
                    "deps: {} pins no {} packages",
                    spec.lockfile, spec.ecosystem
                ),
            );
            continue;
        }
        let mirror = mirrors
            .get(spec.ecosystem)
            .ok_or_else(|| DepsError::NoMirror {
                lockfile: spec.lockfile.clone(),
                ecosystem: spec.ecosystem,
            })?;
        sink.system_blocking(
            0,
            format!(
                "deps: {} pins {} {} packages; fetching from {mirror}",
                spec.lockfile,
                packages.len(),
                spec.ecosystem
            ),
        );
        let progress = |p: DepsProgress| match p {
            DepsProgress::Downloaded {
                purl,
                bytes,
                done,
                of,
            } => sink.system_blocking(
                0,
                format!(
                    "deps: [{done}/{of}] downloaded {purl} ({:.1} KiB), verified",
                    bytes as f64 / 1024.0
                ),
            ),
        };
        let (files, hits) = fetch_all(&f.blobs, &f.http, mirror, &packages, &progress)?;
        let layout = lay_out(&f.blobs, dir, spec.ecosystem, &packages, &files)?;
        for (k, v) in layout.env {
            if !prepared.env.iter().any(|(name, _)| *name == k) {
                prepared.env.push((k, v));
            }
        }
        prepared
            .resolved
            .extend(files.iter().map(|file| airlock_proto::v1::ResolvedPackage {
                purl: packages[file.package].purl(),
                digest_algorithm: file.digest.algorithm().to_owned(),
                digest_hex: file.digest.hex(),
                download_location: file.url.clone(),
                file_name: file.file_name.clone(),
            }));
        sink.system_blocking(
            0,
            format!(
                "deps: {}: {} files verified ({hits} from the cache, {} downloaded) in {:.1} s; \
                 mounted read-only at {DEPS_MOUNT}",
                spec.lockfile,
                files.len(),
                files.len().saturating_sub(hits),
                started.elapsed().as_secs_f64()
            ),
        );
    }
    Ok(prepared)
}

fn pull_message(p: PullProgress) -> Option<String> {
    match p {
        PullProgress::Downloading {
            what,
            digest,
            transfer,
        } if transfer.finished => Some(format!(
            "pulled {what} sha256:{digest}: {}",
            transfer.describe()
        )),
        PullProgress::Downloading { what, transfer, .. } if transfer.done > 0 => {
            Some(format!("pulling {what}: {}", transfer.describe()))
        }
        PullProgress::Downloading { .. } => None,
        PullProgress::Cached { what, digest } => {
            Some(format!("{what} sha256:{digest} already cached"))
        }
        PullProgress::PlatformManifest { digest } => Some(format!(
            "image index: using the platform manifest sha256:{digest}"
        )),
    }
}

/// For a profile with `[image_check] require_attestation = true` (named `profile`): finds
/// and verifies the attestation that vouches for the job's image, before the image is pulled
/// or unpacked, and logs which one did. An image nothing trusted vouches for is the job's
/// fault (it fails, like an input whose sha256 does not match) unless the registry or the
/// network kept the runner from looking.
pub async fn image_attestation(
    fetchers: &Fetchers,
    trust: &ImageTrust,
    image: CheckedImage,
    profile: &str,
    events: &EventSink,
) -> Result<Vouched, PrepareFailure> {
    let trusted = match (trust.keys.len(), &trust.builder_id) {
        (0, _) => "none configured".to_owned(),
        (n, None) => format!("{n} key(s)"),
        (n, Some(b)) => format!("{n} key(s), builder id {b}"),
    };
    events
        .system(
            0,
            format!(
                "image check: profile {profile} requires an attestation of image {image} \
                 signed by a trusted image key ({trusted})"
            ),
        )
        .await;
    let f = fetchers.clone();
    let (trust, profile) = (trust.clone(), profile.to_owned());
    let vouched = blocking("image check", move || {
        check_image(&image, &f.registry, &trust, &LookupLimits::default()).map_err(|e| {
            let message = format!(
                "image check failed before any step (profile {profile}: [image_check] \
                 require_attestation = true): {e}"
            );
            PrepareFailure::by_fault(e.is_job_error(), message)
        })
    })
    .await?;
    events
        .system(0, format!("image check: vouched for by {vouched}"))
        .await;
    Ok(vouched)
}

/// Pulls `repository@digest` into the blob cache for an image output's base: the pulled
/// image (whose pins keep its blobs from eviction) and the layout its blobs form.
pub async fn registry_base(
    fetchers: &Fetchers,
    repository: &str,
    digest: &Sha256Digest,
    events: &EventSink,
) -> Result<(PulledImage, PathBuf), PrepareFailure> {
    let repo = RegistryRepo::parse(repository).map_err(|e| PrepareFailure::job(e.to_string()))?;
    events
        .system(0, format!("pulling base image {repo}@sha256:{digest}"))
        .await;
    let f = fetchers.clone();
    let digest = *digest;
    let sink = events.clone();
    blocking("base image pull", move || {
        let mut progress = |p| {
            if let Some(m) = pull_message(p) {
                sink.system_blocking(0, m);
            }
        };
        let pulled = pull(&f.registry, &f.blobs, &repo, &digest, &mut progress).map_err(|e| {
            let message = format!("base image {repo}@sha256:{digest}: {e}");
            PrepareFailure::by_fault(e.is_job_error(), message)
        })?;
        Ok((pulled, f.blobs.root().to_path_buf()))
    })
    .await
}

/// Pulls `repository@digest` into the blob cache (every blob verified while it streams),
/// then verifies and unpacks it into the rootfs cache like an image layout.
pub async fn registry_image(
    fetchers: &Fetchers,
    images: &ImageCache,
    repository: &str,
    digest: &Sha256Digest,
    events: &EventSink,
) -> Result<(PreparedImage, RootfsPin), PrepareFailure> {
    let repo = RegistryRepo::parse(repository).map_err(|e| PrepareFailure::job(e.to_string()))?;
    events
        .system(0, format!("pulling image {repo}@sha256:{digest}"))
        .await;
    let f = fetchers.clone();
    let images = images.clone();
    let digest = *digest;
    let sink = events.clone();
    blocking("image pull", move || {
        let classify = |e: RegistryError| {
            let message = format!("image {repo}@sha256:{digest}: {e}");
            PrepareFailure::by_fault(e.is_job_error(), message)
        };
        let mut progress = |p| {
            if let Some(m) = pull_message(p) {
                sink.system_blocking(0, m);
            }
        };
        let pulled =
            pull(&f.registry, &f.blobs, &repo, &digest, &mut progress).map_err(classify)?;
        let mut unpack_progress = |p: ImageProgress| {
            let msg = match p {
                ImageProgress::Verifying { blob, bytes } => format!(
                    "verifying layer sha256:{blob} ({:.1} MiB)",
                    bytes as f64 / 1_048_576.0
                ),
                ImageProgress::Unpacking { layer, of } => format!("unpacking layer {layer}/{of}"),
                ImageProgress::Cached => "image already unpacked and verified (cache hit)".into(),
            };
            sink.system_blocking(0, msg);
        };
        let layout: PathBuf = f.blobs.root().to_path_buf();
        let (mut prepared, pin) = images
            .prepare_pinned_from_layout(&layout, &pulled.manifest, &mut unpack_progress)
            .map_err(|e| classify(RegistryError::Image(e)))?;
        // Provenance records the digest the job pinned (an index or a manifest).
        prepared.manifest_digest = pulled.pinned;
        drop(pulled);
        Ok((prepared, pin))
    })
    .await
}
