//! What one sandboxed step is: the pure description that becomes an OCI runtime spec
//! (`spec.rs`).
//!
//! The resulting container has a read-only image root, fresh user, mount, pid, ipc, uts,
//! network (only `lo`) and cgroup namespaces, runs the step as uid/gid 1000 mapped to an
//! unprivileged host id, with no capabilities, `no_new_privs` and a seccomp filter.
//! `/work` and `/out` are the only writable host directories; `/inputs` and
//! `/run/airlock` are optional read-only host directories.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxIdMapping, LinuxIdMappingBuilder};

use super::{SandboxError, SeccompPolicy};

/// The uid a step runs as inside the sandbox.
pub const STEP_UID: u32 = 1000;
/// The gid a step runs as inside the sandbox.
pub const STEP_GID: u32 = 1000;
/// The lowest allowed [`IdMap::host_base`]: the mapping never covers system accounts or the
/// usual range of human users (Debian's `/etc/subuid` ranges start at 100000).
pub const MIN_HOST_BASE: u32 = 65536;

/// Where the host's `inputs_dir` appears (read-only).
pub const INPUTS_MOUNT: &str = "/inputs";
/// Where the host's `deps_dir` appears (read-only; the lockfile packages).
pub const DEPS_MOUNT: &str = "/deps";
/// Where the host's `cache_dir` appears (read-write; the job's `[[caches]]`).
pub const CACHE_MOUNT: &str = airlock_job::CACHE_MOUNT;
/// Where the host's `oidc_socket_dir` appears (read-only; holds `oidc.sock`).
pub const OIDC_SOCKET_MOUNT: &str = "/run/airlock";

/// `PATH` unless the plan's environment sets it.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A user-namespace mapping: container ids `0..size` are host ids `host_base..host_base+size`
/// (the same for uids and gids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdMap {
    /// The host id of container id 0; at least [`MIN_HOST_BASE`].
    pub host_base: u32,
    /// How many ids are mapped; more than [`STEP_UID`].
    pub size: u32,
}

impl IdMap {
    /// The host id that container id `id` maps to, if it is mapped.
    pub fn to_host(&self, id: u32) -> Option<u32> {
        (id < self.size)
            .then(|| self.host_base.checked_add(id))
            .flatten()
    }

    pub(super) fn to_oci(self) -> Result<LinuxIdMapping, SandboxError> {
        Ok(LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(self.host_base)
            .size(self.size)
            .build()?)
    }
}

/// Everything needed to run one step in a fresh sandbox. A pure value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxPlan {
    /// The unpacked image (absolute path). Shared between jobs and never modified: it must
    /// already contain the mount points `/work /out /inputs /tmp /proc /dev /sys /run /etc`.
    pub rootfs: PathBuf,
    /// Host directory bound read-write at `/work` (absolute path). Must be owned by
    /// [`SandboxPlan::host_uid`] for the step to write to it.
    pub work_dir: PathBuf,
    /// Host directory bound read-write at `/out` (absolute path), same ownership as `work_dir`.
    pub out_dir: PathBuf,
    /// Optional host directory bound read-only at `/inputs`.
    pub inputs_dir: Option<PathBuf>,
    /// Optional host directory bound read-only at `/deps` (the job's lockfile packages).
    pub deps_dir: Option<PathBuf>,
    /// Optional host directory bound read-write at `/cache` (the job's caches), owned like
    /// `work_dir`.
    pub cache_dir: Option<PathBuf>,
    /// Optional host directory bound read-only at `/run/airlock` (the token-broker socket).
    pub oidc_socket_dir: Option<PathBuf>,
    /// The command; `argv[0]` is looked up in `PATH` inside the sandbox.
    pub argv: Vec<String>,
    /// Extra environment. `TZ=UTC` and `LANG=C.UTF-8` are always set and win over these;
    /// `PATH` and `HOME=/tmp` are defaults these may override.
    pub env: Vec<(String, String)>,
    /// Working directory inside the sandbox, normally `/work`.
    pub cwd: String,
    /// The sandbox's host name, normally `airlock`.
    pub hostname: String,
    /// The user-namespace mapping.
    pub id_map: IdMap,
    /// Size cap of the `/tmp` tmpfs, in bytes.
    pub tmp_size_bytes: u64,
    /// Memory limit in bytes (cgroup v1 `memory.limit_in_bytes`), if any.
    pub memory_bytes: Option<u64>,
    /// Process limit (cgroup `pids.max`), if any.
    pub pids: Option<u64>,
    /// CPU bandwidth in thousandths of a CPU (CFS quota per 100 ms period), if any.
    pub cpu_millis: Option<u64>,
    /// `RLIMIT_NOFILE` (soft and hard) of the step; `None` inherits the runner's.
    pub open_files: Option<u64>,
    /// Largest file the step may write (`RLIMIT_FSIZE`), applied only by a rootless runner
    /// (with the other rlimits that stand in for the cgroup limits); `None`: no limit.
    pub file_size_bytes: Option<u64>,
    /// Whether `lo` is up in the sandbox's network namespace (it is the only interface
    /// either way; with it down even `127.0.0.1` is unreachable). Default `true`.
    pub loopback_up: bool,
    /// The seccomp filter.
    pub seccomp: SeccompPolicy,
    /// Trace the step (`[trace] enabled`): the filter notifies the runner's supervisor of
    /// every exec, open and network call with an address (docs/trace.md).
    pub trace: Option<super::trace::TraceSetup>,
}

impl SandboxPlan {
    /// A plan with the usual defaults: cwd `/work`, hostname `airlock`, a 1 GiB `/tmp`, no
    /// resource limits, `lo` up, no inputs or token socket, no extra environment, baseline
    /// seccomp.
    pub fn new(
        rootfs: impl Into<PathBuf>,
        work_dir: impl Into<PathBuf>,
        out_dir: impl Into<PathBuf>,
        argv: Vec<String>,
        id_map: IdMap,
    ) -> Self {
        Self {
            rootfs: rootfs.into(),
            work_dir: work_dir.into(),
            out_dir: out_dir.into(),
            inputs_dir: None,
            deps_dir: None,
            cache_dir: None,
            oidc_socket_dir: None,
            argv,
            env: Vec::new(),
            cwd: "/work".to_owned(),
            hostname: "airlock".to_owned(),
            id_map,
            tmp_size_bytes: 1 << 30,
            memory_bytes: None,
            pids: None,
            cpu_millis: None,
            open_files: None,
            file_size_bytes: None,
            loopback_up: true,
            seccomp: SeccompPolicy::baseline(),
            trace: None,
        }
    }

    /// The host uid the step runs as (container uid [`STEP_UID`]); `work_dir` and `out_dir`
    /// must be owned by it.
    pub fn host_uid(&self) -> u32 {
        self.id_map.host_base.saturating_add(STEP_UID)
    }

    /// The host gid the step runs as (container gid [`STEP_GID`]).
    pub fn host_gid(&self) -> u32 {
        self.id_map.host_base.saturating_add(STEP_GID)
    }

    /// Checks the plan for values that would make an unsafe or broken container.
    pub fn validate(&self) -> Result<(), SandboxError> {
        for (field, path) in [
            ("rootfs", Some(&self.rootfs)),
            ("work_dir", Some(&self.work_dir)),
            ("out_dir", Some(&self.out_dir)),
            ("inputs_dir", self.inputs_dir.as_ref()),
            ("deps_dir", self.deps_dir.as_ref()),
            ("cache_dir", self.cache_dir.as_ref()),
            ("oidc_socket_dir", self.oidc_socket_dir.as_ref()),
        ] {
            if let Some(path) = path {
                check_host_path(field, path)?;
            }
        }
        if self.argv.is_empty() {
            return Err(SandboxError::plan(
                "argv",
                "is empty; give at least the program",
            ));
        }
        if self.argv.iter().any(|a| a.contains('\0')) {
            return Err(SandboxError::plan("argv", "contains a NUL byte"));
        }
        for (name, value) in &self.env {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return Err(SandboxError::plan(
                    "env",
                    format!("{name:?} is not a valid variable name (empty, `=` or NUL)"),
                ));
            }
            if value.contains('\0') {
                return Err(SandboxError::plan(
                    "env",
                    format!("the value of {name} contains NUL"),
                ));
            }
        }
        if !self.cwd.starts_with('/') || self.cwd.contains('\0') {
            return Err(SandboxError::plan(
                "cwd",
                format!("{:?} is not an absolute path", self.cwd),
            ));
        }
        let hostname_ok = !self.hostname.is_empty()
            && self.hostname.len() <= 63
            && self
                .hostname
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !hostname_ok {
            return Err(SandboxError::plan(
                "hostname",
                format!(
                    "{:?}: use 1-63 characters from [A-Za-z0-9.-]",
                    self.hostname
                ),
            ));
        }
        let IdMap { host_base, size } = self.id_map;
        if host_base < MIN_HOST_BASE {
            return Err(SandboxError::plan(
                "id_map.host_base",
                format!("{host_base} is below {MIN_HOST_BASE}; map the sandbox to unused host ids"),
            ));
        }
        if size <= STEP_UID.max(STEP_GID) {
            return Err(SandboxError::plan(
                "id_map.size",
                format!("{size} does not cover the step uid/gid {STEP_UID}; use at least 1001"),
            ));
        }
        // The last mapped id must stay below u32::MAX, which means "no id" to the kernel.
        if u64::from(host_base) + u64::from(size) > u64::from(u32::MAX) {
            return Err(SandboxError::plan(
                "id_map",
                format!("{host_base}+{size} runs past the largest host id"),
            ));
        }
        if self.tmp_size_bytes == 0 {
            return Err(SandboxError::plan("tmp_size_bytes", "must be positive"));
        }
        if self.memory_bytes == Some(0) {
            return Err(SandboxError::plan(
                "memory_bytes",
                "must be positive when set",
            ));
        }
        if self.pids == Some(0) {
            return Err(SandboxError::plan("pids", "must be positive when set"));
        }
        if self.cpu_millis.is_some_and(|m| m < 10) {
            return Err(SandboxError::plan(
                "cpu_millis",
                "must be at least 10 (0.01 CPU) when set",
            ));
        }
        if self.open_files.is_some_and(|n| n < 16) {
            return Err(SandboxError::plan(
                "open_files",
                "must be at least 16 when set",
            ));
        }
        Ok(())
    }

    /// The environment the step sees, as `NAME=value` strings, one per name.
    pub fn environment(&self) -> Vec<String> {
        let mut vars: Vec<(&str, &str)> = vec![("PATH", DEFAULT_PATH), ("HOME", "/tmp")];
        vars.extend(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        vars.push(("TZ", "UTC"));
        vars.push(("LANG", "C.UTF-8"));
        // Last one wins, first position kept: deterministic order.
        let mut out: Vec<(&str, &str)> = Vec::with_capacity(vars.len());
        for (name, value) in vars {
            match out.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = value,
                None => out.push((name, value)),
            }
        }
        out.into_iter().map(|(n, v)| format!("{n}={v}")).collect()
    }
}

/// Rejects relative paths and paths with `..` for host directories.
fn check_host_path(field: &'static str, path: &Path) -> Result<(), SandboxError> {
    let ok = path.is_absolute()
        && !path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir));
    if ok {
        Ok(())
    } else {
        Err(SandboxError::plan(
            field,
            format!("{} must be an absolute path without `..`", path.display()),
        ))
    }
}
