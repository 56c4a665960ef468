//! Finishing an unpacked rootfs so the sandbox can mount it read-only as `/`.
//!
//! The sandbox mounts over a fixed set of directories and cannot create anything in a
//! read-only rootfs, so those mount points (and the few files a read-only `/etc` needs) are
//! made here, once, before the rootfs enters the cache.

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::error::ImageError;

/// Directories the sandbox mounts over or needs to exist.
pub(crate) const MOUNT_POINTS: [&str; 11] = [
    "work", "out", "inputs", "deps", "cache", "tmp", "proc", "dev", "sys", "run", "etc",
];

/// The sandbox's fixed hostname (see the job contract in ARCHITECTURE.md).
const HOSTNAME: &str = "airlock";

/// `/etc/hosts` written when the image has none, so `localhost` and the hostname resolve
/// without any network configuration.
const DEFAULT_HOSTS: &str = "127.0.0.1\tlocalhost\n\
                             ::1\tlocalhost ip6-localhost ip6-loopback\n\
                             127.0.1.1\tairlock\n";

/// Makes the mount points real directories (replacing a symlink or file an image put there,
/// since mounting onto a symlink could be steered outside the rootfs), writes
/// `/etc/hostname`, adds a minimal `/etc/hosts` if there is none, and sets `/` to 0755.
pub(crate) fn finish(root: &Path) -> Result<(), ImageError> {
    fs::set_permissions(root, Permissions::from_mode(0o755))
        .map_err(|e| ImageError::io("setting permissions of", root, e))?;
    for name in MOUNT_POINTS {
        ensure_real_dir(&root.join(name))?;
    }
    let etc = root.join("etc");
    // The runtime sets the hostname in a UTS namespace; a matching /etc/hostname in the
    // image means nothing has to be bind-mounted over a read-only /etc.
    replace_file(&etc.join("hostname"), &format!("{HOSTNAME}\n"))?;
    let hosts = etc.join("hosts");
    match fs::symlink_metadata(&hosts) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => replace_file(&hosts, DEFAULT_HOSTS)?,
        Err(e) => return Err(ImageError::io("inspecting", &hosts, e)),
    }
    Ok(())
}

/// Adds any mount point missing from a finished rootfs (one prepared before a mount point
/// was added); what is there is left alone.
pub(crate) fn ensure_mount_points(root: &Path) -> Result<(), ImageError> {
    for name in MOUNT_POINTS {
        let path = root.join(name);
        if fs::symlink_metadata(&path).is_err() {
            match DirBuilder::new().mode(0o755).create(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(ImageError::io("creating", &path, e)),
            }
        }
    }
    Ok(())
}

/// Makes `path` a real directory, replacing anything else (without following symlinks).
fn ensure_real_dir(path: &Path) -> Result<(), ImageError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_dir() => return Ok(()),
        Ok(_) => fs::remove_file(path).map_err(|e| ImageError::io("removing", path, e))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(ImageError::io("inspecting", path, e)),
    }
    DirBuilder::new()
        .mode(0o755)
        .create(path)
        .map_err(|e| ImageError::io("creating directory", path, e))?;
    fs::set_permissions(path, Permissions::from_mode(0o755))
        .map_err(|e| ImageError::io("setting permissions of", path, e))
}

/// Writes `content` to a fresh 0644 file at `path`, removing whatever was there first (a
/// symlink is removed, never written through).
fn replace_file(path: &Path, content: &str) -> Result<(), ImageError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_dir() => {
            crate::tree::remove_tree(path).map_err(|e| ImageError::io("removing", path, e))?;
        }
        Ok(_) => fs::remove_file(path).map_err(|e| ImageError::io("removing", path, e))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(ImageError::io("inspecting", path, e)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| ImageError::io("creating", path, e))?;
    file.write_all(content.as_bytes())
        .map_err(|e| ImageError::io("writing", path, e))?;
    file.set_permissions(Permissions::from_mode(0o644))
        .map_err(|e| ImageError::io("setting permissions of", path, e))
}
