//! What one sandboxed step is: the pure description that becomes an OCI runtime spec.
//!
//! The resulting container has a read-only image root, fresh user, mount, pid, ipc, uts,
//! network (only `lo`) and cgroup namespaces, runs the step as uid/gid 1000 mapped to an
//! unprivileged host id, with no capabilities, `no_new_privs` and a seccomp filter.
//! `/work` and `/out` are the only writable host directories; `/inputs` and
//! `/run/airlock` are optional read-only host directories.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxBuilder, LinuxCapabilitiesBuilder, LinuxIdMapping, LinuxIdMappingBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder,
    RootBuilder, Spec, SpecBuilder, UserBuilder, get_default_maskedpaths,
    get_default_readonly_paths,
};

use super::mounts::mounts;
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

    fn to_oci(self) -> Result<LinuxIdMapping, SandboxError> {
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

    /// The OCI runtime spec of the sandbox. Pure: touches no file.
    ///
    /// `linux.resources` is left out on purpose (libcontainer 0.7 would then write
    /// `devices.allow`); memory and pids limits are applied by the helper through the
    /// cgroup file system instead. `linux.cgroupsPath` is set by the launcher, which knows
    /// the container id.
    pub fn to_oci_spec(&self) -> Result<Spec, SandboxError> {
        self.validate()?;

        let no_caps = HashSet::new();
        let capabilities = LinuxCapabilitiesBuilder::default()
            .bounding(no_caps.clone())
            .effective(no_caps.clone())
            .inheritable(no_caps.clone())
            .permitted(no_caps.clone())
            .ambient(no_caps)
            .build()?;
        let user = UserBuilder::default()
            .uid(STEP_UID)
            .gid(STEP_GID)
            .additional_gids(Vec::<u32>::new())
            .umask(0o022u32)
            .build()?;
        let mut process = ProcessBuilder::default()
            .terminal(false)
            .user(user)
            .args(self.argv.clone())
            .env(self.environment())
            .cwd(PathBuf::from(&self.cwd))
            .capabilities(capabilities)
            .no_new_privileges(true)
            .build()?;
        // The builder starts from oci-spec's defaults, which include RLIMIT_NOFILE 1024:1024.
        // libcontainer sets rlimits inside the user namespace, where the hard limit can be
        // lowered but not raised: set only the one the profile asks for (the launcher checks
        // it is not above the runner's own hard limit), inherit the rest.
        process.set_rlimits(
            self.open_files
                .map(|n| {
                    PosixRlimitBuilder::default()
                        .typ(PosixRlimitType::RlimitNofile)
                        .soft(n)
                        .hard(n)
                        .build()
                })
                .transpose()?
                .map(|r| vec![r]),
        );

        let root = RootBuilder::default()
            .path(self.rootfs.clone())
            .readonly(true)
            .build()?;

        let namespaces = [
            LinuxNamespaceType::User,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Cgroup,
        ]
        .into_iter()
        .map(|typ| LinuxNamespaceBuilder::default().typ(typ).build())
        .collect::<Result<Vec<_>, _>>()?;

        let mut masked = get_default_maskedpaths();
        masked.extend(["/proc/interrupts", "/sys/devices/virtual/powercap"].map(str::to_owned));
        let mut linux = LinuxBuilder::default()
            .uid_mappings(vec![self.id_map.to_oci()?])
            .gid_mappings(vec![self.id_map.to_oci()?])
            .namespaces(namespaces)
            .masked_paths(masked)
            .readonly_paths(get_default_readonly_paths())
            .rootfs_propagation("private")
            .seccomp(self.seccomp.to_oci()?)
            .build()?;
        // The builder starts from oci-spec's defaults, which include a `resources` section
        // with an empty device list: libcontainer would then write `devices.allow`.
        linux.set_resources(None);
        linux.set_devices(None);
        linux.set_sysctl(None);

        Ok(SpecBuilder::default()
            .version("1.0.2")
            .root(root)
            .hostname(self.hostname.clone())
            .process(process)
            .mounts(mounts(self)?)
            .linux(linux)
            .build()?)
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

#[cfg(test)]
pub(super) mod tests {
    use oci_spec::runtime::LinuxSeccompAction;

    use super::*;

    pub(crate) fn plan() -> SandboxPlan {
        SandboxPlan::new(
            "/var/lib/airlock/images/abc/rootfs",
            "/var/lib/airlock/jobs/j1/work",
            "/var/lib/airlock/jobs/j1/out",
            vec!["/bin/sh".into(), "-c".into(), "make".into()],
            IdMap {
                host_base: 200_000,
                size: 65536,
            },
        )
    }

    pub(crate) fn spec() -> Spec {
        plan().to_oci_spec().expect("spec")
    }

    #[test]
    fn root_is_readonly_image() {
        let spec = spec();
        let root = spec.root().as_ref().expect("root");
        assert_eq!(root.readonly(), Some(true));
        assert_eq!(root.path(), Path::new("/var/lib/airlock/images/abc/rootfs"));
    }

    #[test]
    fn process_has_no_capabilities_and_no_new_privs() {
        let spec = spec();
        let process = spec.process().as_ref().expect("process");
        assert_eq!(process.no_new_privileges(), Some(true));
        let caps = process
            .capabilities()
            .as_ref()
            .expect("capability sets are explicit");
        for set in [
            caps.bounding(),
            caps.effective(),
            caps.inheritable(),
            caps.permitted(),
            caps.ambient(),
        ] {
            assert_eq!(set.as_ref().map(|s| s.len()), Some(0));
        }
        assert_eq!(process.user().uid(), STEP_UID);
        assert_eq!(process.user().gid(), STEP_GID);
        assert_eq!(process.user().additional_gids().as_deref(), Some(&[][..]));
        assert_eq!(process.cwd(), Path::new("/work"));
        assert_eq!(process.terminal(), Some(false));
    }

    #[test]
    fn all_namespaces_are_new_including_network() {
        let spec = spec();
        let linux = spec.linux().as_ref().expect("linux");
        let namespaces = linux.namespaces().as_ref().expect("namespaces");
        for typ in [
            LinuxNamespaceType::User,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Network,
        ] {
            let ns = namespaces.iter().find(|n| n.typ() == typ);
            let ns = ns.unwrap_or_else(|| panic!("missing {typ:?} namespace"));
            assert!(ns.path().is_none(), "{typ:?} must be new, not joined");
        }
        assert_eq!(spec.hostname().as_deref(), Some("airlock"));
    }

    #[test]
    fn id_mapping_never_maps_to_host_root() {
        let spec = spec();
        let linux = spec.linux().as_ref().expect("linux");
        for maps in [linux.uid_mappings(), linux.gid_mappings()] {
            let maps = maps.as_ref().expect("mappings");
            assert_eq!(maps.len(), 1);
            let m = maps[0];
            assert_eq!(
                (m.container_id(), m.host_id(), m.size()),
                (0, 200_000, 65536)
            );
            // the step uid lands on host_base + 1000, and host 0 is outside the range
            assert!(m.container_id() <= STEP_UID && STEP_UID < m.container_id() + m.size());
            assert_eq!(m.host_id() + (STEP_UID - m.container_id()), 201_000);
            assert!(m.host_id() > 0);
        }
        assert_eq!(plan().host_uid(), 201_000);
        assert_eq!(plan().id_map.to_host(0), Some(200_000));
        assert_eq!(plan().id_map.to_host(65536), None);
    }

    #[test]
    fn low_or_overflowing_id_maps_are_refused() {
        for (host_base, size) in [
            (0, 65536),
            (1000, 65536),
            (100_000, 1000),
            (u32::MAX - 10, 2000),
        ] {
            let mut p = plan();
            p.id_map = IdMap { host_base, size };
            assert!(
                matches!(p.to_oci_spec(), Err(SandboxError::InvalidPlan { .. })),
                "{host_base}+{size} must be refused"
            );
        }
    }

    #[test]
    fn masked_and_readonly_paths_follow_runc_defaults() {
        let spec = spec();
        let linux = spec.linux().as_ref().expect("linux");
        let masked = linux.masked_paths().as_ref().expect("masked");
        for p in [
            "/proc/kcore",
            "/proc/keys",
            "/sys/firmware",
            "/proc/timer_list",
        ] {
            assert!(masked.iter().any(|m| m == p), "{p}");
        }
        let ro = linux.readonly_paths().as_ref().expect("readonly");
        for p in [
            "/proc/sys",
            "/proc/sysrq-trigger",
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
        ] {
            assert!(ro.iter().any(|m| m == p), "{p}");
        }
    }

    #[test]
    fn no_resources_section_and_seccomp_denies() {
        let spec = spec();
        let linux = spec.linux().as_ref().expect("linux");
        assert!(linux.resources().is_none());
        assert!(linux.devices().is_none());
        let json = serde_json::to_value(&spec).expect("json");
        assert!(json["linux"].get("resources").is_none(), "{json}");
        assert!(json["process"].get("rlimits").is_none(), "{json}");
        let seccomp = linux.seccomp().as_ref().expect("seccomp");
        assert_eq!(seccomp.default_action(), LinuxSeccompAction::ScmpActAllow);
        let denied: Vec<&String> = seccomp
            .syscalls()
            .as_ref()
            .expect("rules")
            .iter()
            .filter(|r| r.action() == LinuxSeccompAction::ScmpActErrno && r.args().is_none())
            .flat_map(|r| r.names())
            .collect();
        for name in ["mount", "unshare", "bpf", "ptrace", "setns", "keyctl"] {
            assert!(denied.iter().any(|d| *d == name), "{name} not denied");
        }
    }

    #[test]
    fn open_files_is_the_only_rlimit_and_limits_are_checked() {
        let mut p = plan();
        p.open_files = Some(4096);
        let spec = p.to_oci_spec().expect("spec");
        let rlimits = spec
            .process()
            .as_ref()
            .and_then(|p| p.rlimits().clone())
            .expect("rlimits");
        assert_eq!(rlimits.len(), 1);
        assert_eq!(rlimits[0].typ(), PosixRlimitType::RlimitNofile);
        assert_eq!((rlimits[0].soft(), rlimits[0].hard()), (4096, 4096));
        for (field, mutate) in [
            (
                "open_files",
                Box::new(|p: &mut SandboxPlan| p.open_files = Some(3))
                    as Box<dyn Fn(&mut SandboxPlan)>,
            ),
            (
                "cpu_millis",
                Box::new(|p: &mut SandboxPlan| p.cpu_millis = Some(1)),
            ),
        ] {
            let mut p = plan();
            mutate(&mut p);
            match p.to_oci_spec() {
                Err(SandboxError::InvalidPlan { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn environment_is_fixed_where_it_must_be() {
        let mut p = plan();
        p.env = vec![
            ("TZ".into(), "Europe/Paris".into()),
            ("CFLAGS".into(), "-O2".into()),
            ("PATH".into(), "/opt/bin:/usr/bin:/bin".into()),
            ("SOURCE_DATE_EPOCH".into(), "1700000000".into()),
        ];
        let env = p.environment();
        assert_eq!(
            env,
            [
                "PATH=/opt/bin:/usr/bin:/bin",
                "HOME=/tmp",
                "TZ=UTC",
                "CFLAGS=-O2",
                "SOURCE_DATE_EPOCH=1700000000",
                "LANG=C.UTF-8",
            ]
        );
        let spec = p.to_oci_spec().expect("spec");
        let process = spec.process().as_ref().expect("process");
        assert_eq!(process.env().as_ref(), Some(&env));
    }

    #[test]
    fn bad_plans_are_refused_with_the_field_named() {
        type Mutation = Box<dyn Fn(&mut SandboxPlan)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("argv", Box::new(|p| p.argv.clear())),
            ("rootfs", Box::new(|p| p.rootfs = "rootfs".into())),
            ("work_dir", Box::new(|p| p.work_dir = "/a/../etc".into())),
            (
                "env",
                Box::new(|p| p.env = vec![("A=B".into(), "c".into())]),
            ),
            ("cwd", Box::new(|p| p.cwd = "work".into())),
            ("hostname", Box::new(|p| p.hostname = "a b".into())),
            ("tmp_size_bytes", Box::new(|p| p.tmp_size_bytes = 0)),
            ("pids", Box::new(|p| p.pids = Some(0))),
        ];
        for (expected, mutate) in cases {
            let mut p = plan();
            mutate(&mut p);
            match p.to_oci_spec() {
                Err(SandboxError::InvalidPlan { field, .. }) => assert_eq!(field, expected),
                other => panic!("{expected}: expected InvalidPlan, got {other:?}"),
            }
        }
    }

    #[test]
    fn spec_round_trips_through_config_json() {
        let spec = spec();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        spec.save(&path).expect("save");
        let loaded = Spec::load(&path).expect("load");
        assert_eq!(loaded, spec);
        let json = std::fs::read_to_string(&path).expect("read");
        assert!(
            json.contains("\"noNewPrivileges\": true") || json.contains("\"noNewPrivileges\":true")
        );
    }
}
