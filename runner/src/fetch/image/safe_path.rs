//! Tar entry paths made safe: relative, no `..`, and never resolved through a symlink.
//!
//! The rootfs being built is private to this process, so checking each component with
//! `symlink_metadata` before using it is race-free: nothing else can swap a directory for a
//! symlink between the check and the use.

use std::ffi::OsStr;
use std::fs::{self, DirBuilder, Metadata, Permissions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::entry_error::EntryError;

/// Mode for directories created implicitly (a parent no entry described).
const IMPLICIT_DIR_MODE: u32 = 0o755;

/// Turns a raw archive path into a relative path of plain components: a leading `/` and `.`
/// components are dropped, `..` anywhere is refused. An empty result names the rootfs itself.
pub(crate) fn sanitize(raw: &[u8]) -> Result<PathBuf, EntryError> {
    if raw.contains(&0) {
        return Err(EntryError::refused("path contains a NUL byte"));
    }
    let mut out = PathBuf::new();
    for component in Path::new(OsStr::from_bytes(raw)).components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                return Err(EntryError::refused("path contains a `..` component"));
            }
            Component::Prefix(_) => return Err(EntryError::refused("path has a prefix")),
        }
    }
    Ok(out)
}

/// Makes sure every parent directory of `rel` exists inside `root` as a real directory,
/// creating missing ones. A parent that is a symlink is refused: writing through it could
/// land outside the rootfs (a layer that makes `a -> /etc` and then writes `a/passwd`).
pub(crate) fn ensure_parent_dirs(root: &Path, rel: &Path) -> Result<(), EntryError> {
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
    let mut current = root.to_path_buf();
    let mut shown = PathBuf::new();
    for component in parent.components() {
        current.push(component);
        shown.push(component);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_dir() => {}
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(EntryError::refused(format!(
                    "parent /{} is a symlink; entries are never written through symlinks",
                    shown.display()
                )));
            }
            Ok(_) => {
                return Err(EntryError::refused(format!(
                    "parent /{} is not a directory",
                    shown.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new()
                    .mode(IMPLICIT_DIR_MODE)
                    .create(&current)
                    .map_err(|e| EntryError::io("creating directory", &current, e))?;
                fs::set_permissions(&current, Permissions::from_mode(IMPLICIT_DIR_MODE))
                    .map_err(|e| EntryError::io("setting permissions of", &current, e))?;
            }
            Err(e) => return Err(EntryError::io("inspecting", &current, e)),
        }
    }
    Ok(())
}

/// Looks up `rel` inside `root` without following symlinks in any of its parents. Returns
/// `None` if it (or a parent) does not exist or a parent is not a directory; refuses a parent
/// that is a symlink. The final component itself is not followed either: its own metadata
/// (possibly a symlink's) is returned.
pub(crate) fn lookup(root: &Path, rel: &Path) -> Result<Option<(PathBuf, Metadata)>, EntryError> {
    let mut current = root.to_path_buf();
    let mut shown = PathBuf::new();
    let mut components = rel.components().peekable();
    while let Some(component) = components.next() {
        current.push(component);
        shown.push(component);
        let meta = match fs::symlink_metadata(&current) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(EntryError::io("inspecting", &current, e)),
        };
        if components.peek().is_none() {
            return Ok(Some((current, meta)));
        }
        if meta.file_type().is_symlink() {
            return Err(EntryError::refused(format!(
                "/{} is a symlink; paths are never resolved through symlinks",
                shown.display()
            )));
        }
        if !meta.file_type().is_dir() {
            return Ok(None);
        }
    }
    // `rel` is empty: the rootfs itself.
    let meta = fs::symlink_metadata(root).map_err(|e| EntryError::io("inspecting", root, e))?;
    Ok(Some((root.to_path_buf(), meta)))
}

/// Removes whatever is at `path` (described by `meta`): a whole tree for a real directory,
/// the link itself for a symlink.
pub(crate) fn remove_existing(path: &Path, meta: &Metadata) -> Result<(), EntryError> {
    let result = if meta.file_type().is_dir() {
        crate::tree::remove_tree(path)
    } else {
        fs::remove_file(path)
    };
    result.map_err(|e| EntryError::io("removing", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> PathBuf {
        match sanitize(raw.as_bytes()) {
            Ok(p) => p,
            Err(e) => panic!("{raw:?} refused: {e:?}"),
        }
    }

    #[test]
    fn image_sanitize_strips_root_and_dots() {
        assert_eq!(ok("/etc/passwd"), PathBuf::from("etc/passwd"));
        assert_eq!(ok("./usr/bin/gcc"), PathBuf::from("usr/bin/gcc"));
        assert_eq!(ok("a/./b/"), PathBuf::from("a/b"));
        assert_eq!(ok("./"), PathBuf::new());
        assert_eq!(ok("//x"), PathBuf::from("x"));
    }

    #[test]
    fn image_sanitize_refuses_parent_components() {
        for raw in ["../x", "a/../b", "/..", "a/..", "./../../etc/passwd"] {
            assert!(
                matches!(sanitize(raw.as_bytes()), Err(EntryError::Refused(_))),
                "{raw:?} was accepted"
            );
        }
        assert!(sanitize(b"a\0b").is_err());
    }

    #[test]
    fn image_ensure_parent_dirs_refuses_symlinked_parent() {
        let root = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(outside.path(), root.path().join("a")).expect("symlink");
        let err = ensure_parent_dirs(root.path(), Path::new("a/b/c")).expect_err("must refuse");
        assert!(matches!(err, EntryError::Refused(_)));
        assert!(!outside.path().join("b").exists());

        ensure_parent_dirs(root.path(), Path::new("x/y/z")).expect("creates parents");
        assert!(root.path().join("x/y").is_dir());
        assert!(!root.path().join("x/y/z").exists());
    }

    #[test]
    fn image_lookup_never_follows_parent_symlinks() {
        let root = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        fs::write(outside.path().join("secret"), b"s").expect("write");
        std::os::unix::fs::symlink(outside.path(), root.path().join("a")).expect("symlink");
        assert!(matches!(
            lookup(root.path(), Path::new("a/secret")),
            Err(EntryError::Refused(_))
        ));
        // The symlink itself is found, not its target.
        let (_, meta) = lookup(root.path(), Path::new("a"))
            .expect("lookup")
            .expect("exists");
        assert!(meta.file_type().is_symlink());
        assert!(
            lookup(root.path(), Path::new("missing/x"))
                .expect("lookup")
                .is_none()
        );
    }
}
