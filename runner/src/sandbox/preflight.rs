//! Checks before a container is created, of what the kernel or libcontainer would
//! otherwise refuse deep inside creation with an unhelpful error: container ids, the host
//! directories the step binds, and the image's mount points.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use super::{SandboxError, SandboxPlan};

/// libcontainer's id rules, plus a length cap.
pub(super) fn validate_container_id(id: &str) -> Result<(), SandboxError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(SandboxError::InvalidContainerId(id.to_owned()))
    }
}

/// Checks what the kernel would otherwise refuse with an unhelpful EACCES deep inside
/// container creation: the step must own `/work` and `/out`, and the sandbox's user
/// namespace (an unprivileged host uid) must be able to reach every bound directory.
pub(super) fn check_host_dirs(plan: &SandboxPlan) -> Result<(), SandboxError> {
    let host_uid = plan.host_uid();
    for (field, dir, owned) in [
        ("rootfs", Some(&plan.rootfs), false),
        ("work_dir", Some(&plan.work_dir), true),
        ("out_dir", Some(&plan.out_dir), true),
        ("inputs_dir", plan.inputs_dir.as_ref(), false),
        ("deps_dir", plan.deps_dir.as_ref(), false),
        ("cache_dir", plan.cache_dir.as_ref(), true),
        ("oidc_socket_dir", plan.oidc_socket_dir.as_ref(), false),
    ] {
        let Some(dir) = dir else { continue };
        let meta = std::fs::metadata(dir).map_err(|e| SandboxError::io("inspecting", dir, e))?;
        if !meta.is_dir() {
            return Err(SandboxError::plan(
                field,
                format!("{} is not a directory", dir.display()),
            ));
        }
        if owned && meta.uid() != host_uid {
            return Err(SandboxError::plan(
                field,
                format!(
                    "{} is owned by uid {}; chown it (recursively) to {host_uid}:{} so the \
                     step (uid 1000 in the sandbox) can write to it",
                    dir.display(),
                    meta.uid(),
                    plan.host_gid()
                ),
            ));
        }
        for ancestor in dir.ancestors().skip(1) {
            let meta = std::fs::metadata(ancestor)
                .map_err(|e| SandboxError::io("inspecting", ancestor, e))?;
            if meta.mode() & 0o001 == 0 {
                return Err(SandboxError::plan(
                    field,
                    format!(
                        "{} (above {}) is not searchable by others (mode {:o}); the sandbox \
                         runs as unprivileged host uids and must traverse it",
                        ancestor.display(),
                        dir.display(),
                        meta.mode() & 0o7777
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The image is shared and read-only: every mount point the spec needs directly in it must
/// already be a real directory (libcontainer would otherwise try to create it in the image,
/// as an unprivileged uid, and fail with an unhelpful "failed to prepare rootfs").
pub(super) fn check_mount_points(
    rootfs: &Path,
    spec: &oci_spec::runtime::Spec,
) -> Result<(), SandboxError> {
    let destinations: Vec<&Path> = spec
        .mounts()
        .iter()
        .flatten()
        .map(|m| m.destination().as_path())
        .collect();
    let mut missing = Vec::new();
    for (i, dest) in destinations.iter().enumerate() {
        // Below an earlier mount (/dev/pts in /dev, /run/airlock in /run): created there.
        if destinations[..i].iter().any(|d| dest.starts_with(d)) {
            continue;
        }
        let path = rootfs.join(dest.strip_prefix("/").unwrap_or(dest));
        let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        if !is_dir {
            missing.push(dest.display().to_string());
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(SandboxError::plan(
            "rootfs",
            format!(
                "{} lacks the mount point directories {} (not symlinks); create them when \
                 unpacking the image",
                rootfs.display(),
                missing.join(" ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_follow_libcontainer_rules() {
        for ok in ["a", "job-1.step_2+x", &"x".repeat(64)] {
            assert!(validate_container_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "ä", &"x".repeat(65)] {
            assert!(validate_container_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn host_dirs_must_be_owned_and_reachable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path();
        std::fs::set_permissions(base, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        for sub in ["rootfs", "work", "out"] {
            std::fs::create_dir(base.join(sub)).expect("mkdir");
        }
        let plan = SandboxPlan::new(
            base.join("rootfs"),
            base.join("work"),
            base.join("out"),
            vec!["true".into()],
            super::super::IdMap {
                host_base: 300_000,
                size: 65536,
            },
        );
        // owned by whoever runs the test, not by 301000
        match check_host_dirs(&plan) {
            Err(SandboxError::InvalidPlan { field, .. }) => assert_eq!(field, "work_dir"),
            other => panic!("expected work_dir to be refused, got {other:?}"),
        }
    }

    #[test]
    fn missing_mount_points_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rootfs = dir.path();
        for d in ["proc", "dev", "sys", "tmp", "work"] {
            std::fs::create_dir(rootfs.join(d)).expect("mkdir");
        }
        std::os::unix::fs::symlink("/tmp", rootfs.join("out")).expect("symlink");
        let plan = SandboxPlan::new(
            rootfs,
            "/w",
            "/o",
            vec!["true".into()],
            super::super::IdMap {
                host_base: 300_000,
                size: 65536,
            },
        );
        let spec = plan.to_oci_spec().expect("spec");
        match check_mount_points(rootfs, &spec) {
            Err(SandboxError::InvalidPlan {
                field: "rootfs",
                reason,
            }) => {
                assert!(
                    reason.ends_with(
                        "directories /out (not symlinks); create them when unpacking the image"
                    ),
                    "{reason}"
                );
            }
            other => panic!("expected /out to be missing, got {other:?}"),
        }
        std::fs::remove_file(rootfs.join("out")).expect("rm");
        std::fs::create_dir(rootfs.join("out")).expect("mkdir");
        check_mount_points(rootfs, &spec).expect("complete");
    }
}
