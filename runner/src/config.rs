//! Runner settings, validated before the runner connects.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A secret string whose `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret; surrounding whitespace is dropped.
    pub fn new(s: impl AsRef<str>) -> Self {
        Secret(s.as_ref().trim().to_string())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The default `--id-base` of a runner running as root: far above system and human ids.
pub const DEFAULT_ID_BASE: u32 = 1_000_000;

/// How a runner runs.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Controller URL, `http://host:port` or `https://host:port`.
    pub controller_url: String,
    /// For an `https://` controller: the CA to trust and the client certificate to present.
    pub tls: airlock_proto::tls::ClientTlsOptions,
    /// The registration secret: exchanged for a short-lived runner token at registration
    /// (and again if the token lapses); never sent on any other call.
    pub registration_secret: Secret,
    /// A name for humans (host name by default).
    pub name: String,
    /// Labels jobs can select.
    pub labels: Vec<String>,
    /// Where job workspaces, the image cache and sandbox state live. Every directory
    /// above it must be searchable by others: the sandbox's root is an unprivileged uid.
    pub state_dir: PathBuf,
    /// The `airlock` binary that provides `sandbox-exec`.
    pub launcher_exe: PathBuf,
    /// OCI image layouts are read only from below these directories.
    pub allowed_layout_roots: Vec<PathBuf>,
    /// Host uid/gid of container id 0 for the first job slot, when running as root; slot `n`
    /// starts at `id_base + n * 65536`.
    pub id_base: u32,
    /// How many jobs may hold an id range at once (as root: slots of 65536 ids from
    /// `id_base`; as another user the slots come from its `/etc/subuid` range).
    pub id_slots: u32,
    /// Where id-range lock files live; runners sharing it never share a range. Default:
    /// `/run/airlock/id-slots` as root, `<state_dir>/id-slots` otherwise.
    pub id_lock_dir: Option<PathBuf>,
    /// Read sandbox profiles (`*.toml` and their seccomp JSON) from this folder instead of
    /// the copies built into the binary.
    pub profiles_dir: Option<PathBuf>,
    /// Size cap of the content-addressed blob cache (registry blobs, inputs, source
    /// archives) under `<state_dir>/cache`; least recently used blobs go first.
    pub cache_max_bytes: u64,
    /// Size cap of the unpacked rootfs cache under `<state_dir>/images`; least recently used
    /// trees no running job holds are evicted after each unpack.
    pub rootfs_cache_max_bytes: u64,
    /// Docker-style `config.json` with registry logins; default `$DOCKER_CONFIG/config.json`
    /// or `~/.docker/config.json` if present.
    pub registry_auth_file: Option<PathBuf>,
    /// Allow `file://` git sources (local repositories on this machine): for `airlock run`,
    /// whose user names their own repositories.
    pub allow_file_git: bool,
    /// Where each ecosystem's `[[deps]]` packages are fetched from (`--mirror`).
    pub mirrors: crate::fetch::deps::Mirrors,
    /// The keys (and builder id) whose attestations vouch for a job's image under a profile
    /// with `[image_check] require_attestation = true` (`--image-key`, `--image-builder-id`).
    pub image_trust: crate::fetch::image::check::ImageTrust,
    /// The offline OSV database (`--osv-db`) that profiles with `[sbom] deny_vulnerable`
    /// check builds against; loaded once, shared by every job.
    pub osv: Option<std::sync::Arc<crate::vulns::OsvDatabase>>,
    /// Take one job, then exit.
    pub ephemeral: bool,
    /// How many jobs run at once (each in its own id range; at most `id_slots`).
    pub max_jobs: u32,
    /// How long one AcquireJob call may wait.
    pub poll_wait: Duration,
}

impl RunnerConfig {
    /// Defaults for everything but where to connect and where to keep state.
    pub fn new(
        controller_url: impl Into<String>,
        registration_secret: Secret,
        state_dir: impl Into<PathBuf>,
        launcher_exe: impl Into<PathBuf>,
    ) -> Self {
        Self {
            controller_url: controller_url.into(),
            tls: airlock_proto::tls::ClientTlsOptions::default(),
            registration_secret,
            name: hostname(),
            labels: Vec::new(),
            state_dir: state_dir.into(),
            launcher_exe: launcher_exe.into(),
            allowed_layout_roots: Vec::new(),
            id_base: DEFAULT_ID_BASE,
            id_slots: 16,
            id_lock_dir: None,
            profiles_dir: None,
            cache_max_bytes: 20 << 30,
            rootfs_cache_max_bytes: 40 << 30,
            registry_auth_file: None,
            allow_file_git: false,
            mirrors: crate::fetch::deps::Mirrors::default(),
            image_trust: crate::fetch::image::check::ImageTrust::default(),
            osv: None,
            ephemeral: false,
            max_jobs: 1,
            poll_wait: Duration::from_secs(20),
        }
    }
}

/// The machine's host name, or `runner`.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "runner".into())
}
