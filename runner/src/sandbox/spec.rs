//! The OCI runtime spec of a [`SandboxPlan`]: the container `plan.rs` describes, in the form
//! libcontainer runs.

use std::collections::HashSet;
use std::path::PathBuf;

use oci_spec::runtime::{
    LinuxBuilder, LinuxCapabilitiesBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder, get_default_maskedpaths, get_default_readonly_paths,
};

use super::SandboxError;
use super::mounts::mounts;
use super::plan::{STEP_GID, STEP_UID, SandboxPlan};

impl SandboxPlan {
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
            .seccomp(match &self.trace {
                // The listener socket is in the bundle; the launcher names it.
                Some(_) => self
                    .seccomp
                    .with_notify(super::trace::TRACED_SYSCALLS)?
                    .to_oci()?,
                None => self.seccomp.to_oci()?,
            })
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

#[cfg(test)]
pub(super) mod tests {
    use oci_spec::runtime::LinuxSeccompAction;

    use super::*;
    use std::path::Path;

    use crate::sandbox::plan::IdMap;

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
