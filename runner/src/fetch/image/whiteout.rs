//! OCI whiteouts: `.wh.<name>` deletes `<name>` from lower layers, `.wh..wh..opq` hides
//! everything lower layers put in its directory.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::entry_error::EntryError;
use super::safe_path::{lookup, remove_existing};

/// Prefix that marks a whiteout file.
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Name of the opaque-directory marker.
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// Prefix of AUFS bookkeeping entries (`.wh..wh.plnk` etc.), which carry no filesystem change.
const AUFS_META_PREFIX: &[u8] = b".wh..wh.";

/// True if an entry with this file name is a whiteout (and must never be materialised).
pub(crate) fn is_whiteout(name: &OsStr) -> bool {
    name.as_bytes().starts_with(WHITEOUT_PREFIX)
}

/// Applies the whiteout entry at `rel` (whose file name satisfies [`is_whiteout`]).
///
/// `touched` holds every path this layer has created so far, and their ancestors: whiteouts
/// only hide content from lower layers, never entries of their own layer.
pub(crate) fn apply(root: &Path, rel: &Path, touched: &HashSet<PathBuf>) -> Result<(), EntryError> {
    let name = rel.file_name().map(OsStr::as_bytes).unwrap_or_default();
    let dir_rel = rel.parent().unwrap_or(Path::new(""));
    let dir = match lookup(root, dir_rel)? {
        Some((path, meta)) if meta.file_type().is_dir() => path,
        Some((_, meta)) if meta.file_type().is_symlink() => {
            return Err(EntryError::refused(
                "whiteout inside a symlinked directory; paths are never resolved through symlinks",
            ));
        }
        // Nothing below to hide.
        _ => return Ok(()),
    };

    if name == OPAQUE_MARKER {
        return clear_lower(&dir, dir_rel, touched);
    }
    if name.starts_with(AUFS_META_PREFIX) {
        return Ok(());
    }
    let victim = &name[WHITEOUT_PREFIX.len()..];
    if victim.is_empty() || victim == b"." || victim == b".." {
        return Err(EntryError::refused("whiteout names no file"));
    }
    let victim_rel = dir_rel.join(OsStr::from_bytes(victim));
    if touched.contains(&victim_rel) {
        return Ok(());
    }
    let victim_path = dir.join(OsStr::from_bytes(victim));
    match fs::symlink_metadata(&victim_path) {
        Ok(meta) => remove_existing(&victim_path, &meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(EntryError::io("inspecting", &victim_path, e)),
    }
}

/// Removes everything under `dir` that this layer did not create, keeping this layer's
/// entries (and the directories leading to them).
fn clear_lower(dir: &Path, dir_rel: &Path, touched: &HashSet<PathBuf>) -> Result<(), EntryError> {
    let mut children = Vec::new();
    for child in fs::read_dir(dir).map_err(|e| EntryError::io("listing", dir, e))? {
        let child = child.map_err(|e| EntryError::io("listing", dir, e))?;
        children.push(child.file_name());
    }
    for name in children {
        let path = dir.join(&name);
        let rel = dir_rel.join(&name);
        let meta =
            fs::symlink_metadata(&path).map_err(|e| EntryError::io("inspecting", &path, e))?;
        if touched.contains(&rel) {
            if meta.file_type().is_dir() {
                clear_lower(&path, &rel, touched)?;
            }
        } else {
            remove_existing(&path, &meta)?;
        }
    }
    Ok(())
}
