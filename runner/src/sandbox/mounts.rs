//! The mounts of a step's container: kernel file systems (`/proc`, a small `/dev`, `/sys`
//! read-only, a size-capped `/tmp`) and the only host directories a step sees — `/work`
//! and `/out` (and `/cache`) read-write, `/inputs`, `/deps` and `/run/airlock` read-only — every bind `nosuid,nodev`.

use std::path::Path;

use oci_spec::runtime::{Mount, MountBuilder};

use super::SandboxError;
use super::plan::{CACHE_MOUNT, DEPS_MOUNT, INPUTS_MOUNT, OIDC_SOCKET_MOUNT, SandboxPlan};

/// Size of the `/dev` and `/dev/shm` tmpfs mounts.
const DEV_TMPFS_SIZE: &str = "size=65536k";

/// The mounts of a step's container, in mount order.
pub(super) fn mounts(plan: &SandboxPlan) -> Result<Vec<Mount>, SandboxError> {
    let tmp_size = format!("size={}", plan.tmp_size_bytes);
    let mut mounts = vec![
        kernel_mount("/proc", "proc", &["nosuid", "noexec", "nodev"])?,
        kernel_mount(
            "/dev",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", DEV_TMPFS_SIZE],
        )?,
        kernel_mount(
            "/dev/pts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        kernel_mount(
            "/dev/shm",
            "tmpfs",
            &["nosuid", "noexec", "nodev", "mode=1777", DEV_TMPFS_SIZE],
        )?,
        kernel_mount("/dev/mqueue", "mqueue", &["nosuid", "noexec", "nodev"])?,
        kernel_mount("/sys", "sysfs", &["nosuid", "noexec", "nodev", "ro"])?,
        kernel_mount(
            "/tmp",
            "tmpfs",
            &["nosuid", "nodev", "mode=1777", &tmp_size],
        )?,
        bind_mount("/work", &plan.work_dir, true)?,
        bind_mount("/out", &plan.out_dir, true)?,
    ];
    if let Some(inputs) = &plan.inputs_dir {
        mounts.push(bind_mount(INPUTS_MOUNT, inputs, false)?);
    }
    if let Some(deps) = &plan.deps_dir {
        mounts.push(bind_mount(DEPS_MOUNT, deps, false)?);
    }
    if let Some(cache) = &plan.cache_dir {
        mounts.push(bind_mount(CACHE_MOUNT, cache, true)?);
    }
    if let Some(socket_dir) = &plan.oidc_socket_dir {
        // The root is read-only, so /run/airlock is created inside a small /run tmpfs.
        mounts.push(kernel_mount(
            "/run",
            "tmpfs",
            &["nosuid", "nodev", "noexec", "mode=755", "size=1m"],
        )?);
        mounts.push(bind_mount(OIDC_SOCKET_MOUNT, socket_dir, false)?);
    }
    Ok(mounts)
}

/// A mount of a kernel file system (`typ` is also the source).
fn kernel_mount(dest: &str, typ: &str, options: &[&str]) -> Result<Mount, SandboxError> {
    Ok(MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(typ)
        .options(options.iter().map(|o| (*o).to_owned()).collect::<Vec<_>>())
        .build()?)
}

/// A recursive bind mount of a host directory, never with setuid files or device nodes.
fn bind_mount(dest: &str, source: &Path, writable: bool) -> Result<Mount, SandboxError> {
    let mode = if writable { "rw" } else { "ro" };
    Ok(MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(source)
        .options(
            ["rbind", mode, "nosuid", "nodev"]
                .map(str::to_owned)
                .to_vec(),
        )
        .build()?)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::spec::tests::{plan, spec};
    use super::*;

    #[test]
    fn only_work_and_out_come_from_the_host_and_are_hardened() {
        let spec = spec();
        let mounts = spec.mounts().as_ref().expect("mounts");
        let binds: Vec<&Mount> = mounts
            .iter()
            .filter(|m| {
                m.typ().as_deref() == Some("bind")
                    || m.options()
                        .as_ref()
                        .is_some_and(|o| o.iter().any(|x| x.contains("bind")))
            })
            .collect();
        let dests: Vec<_> = binds.iter().map(|m| m.destination().clone()).collect();
        assert_eq!(dests, [PathBuf::from("/work"), PathBuf::from("/out")]);
        for m in binds {
            let opts = m.options().as_ref().expect("options");
            for o in ["rbind", "rw", "nosuid", "nodev"] {
                assert!(opts.iter().any(|x| x == o), "{o} on {:?}", m.destination());
            }
        }
        // every other mount is a kernel file system, its source not a host path
        for m in mounts.iter().filter(|m| m.typ().as_deref() != Some("bind")) {
            let source = m.source().as_ref().expect("source");
            assert!(!source.is_absolute(), "{source:?}");
        }
    }

    #[test]
    fn kernel_mounts_have_the_expected_options() {
        let spec = spec();
        let mounts = spec.mounts().as_ref().expect("mounts");
        let opts = |dest: &str| -> Vec<String> {
            mounts
                .iter()
                .find(|m| m.destination() == Path::new(dest))
                .and_then(|m| m.options().clone())
                .unwrap_or_else(|| panic!("no mount at {dest}"))
        };
        assert!(opts("/sys").contains(&"ro".to_owned()));
        assert!(opts("/tmp").contains(&format!("size={}", 1u64 << 30)));
        assert!(opts("/tmp").contains(&"mode=1777".to_owned()));
        assert!(opts("/dev").contains(&"mode=755".to_owned()));
        for dest in ["/proc", "/dev/pts", "/dev/shm", "/dev/mqueue"] {
            assert!(opts(dest).contains(&"nosuid".to_owned()), "{dest}");
        }
    }

    #[test]
    fn optional_inputs_and_socket_are_readonly() {
        let mut p = plan();
        p.inputs_dir = Some("/var/lib/airlock/jobs/j1/inputs".into());
        p.deps_dir = Some("/var/lib/airlock/jobs/j1/deps".into());
        p.oidc_socket_dir = Some("/run/airlock-broker/j1".into());
        let spec = p.to_oci_spec().expect("spec");
        let mounts = spec.mounts().as_ref().expect("mounts");
        for dest in [INPUTS_MOUNT, DEPS_MOUNT, OIDC_SOCKET_MOUNT] {
            let m = mounts
                .iter()
                .find(|m| m.destination() == Path::new(dest))
                .expect("mount");
            let opts = m.options().as_ref().expect("options");
            assert!(opts.iter().any(|o| o == "ro") && !opts.iter().any(|o| o == "rw"));
        }
        let run = mounts
            .iter()
            .position(|m| m.destination() == Path::new("/run"));
        let sock = mounts
            .iter()
            .position(|m| m.destination() == Path::new(OIDC_SOCKET_MOUNT));
        assert!(run < sock, "/run tmpfs must come before /run/airlock");
    }
}
