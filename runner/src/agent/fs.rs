//! Directories of the runner's state and of a job's workspace.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use super::RunnerError;

/// Creates `path` and its parents, searchable by the step's uid (0755).
pub(super) fn mkdir_searchable(path: &Path) -> Result<(), RunnerError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(|e| RunnerError::Setup(format!("cannot create {}: {e}", path.display())))
}

/// Creates `path` (its parents as needed), searchable (0755); fails if `path` exists.
pub(super) fn mkdir_fresh(path: &Path) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        mkdir_searchable(parent).map_err(|e| e.to_string())?;
    }
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(path)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)))
        .map_err(|e| {
            format!(
                "cannot create the attempt's workspace {}: {e}",
                path.display()
            )
        })
}

/// Gives the tree to the sandbox's step uid (only possible, and only needed, as root).
pub(super) fn chown_tree(root: &Path, uid: u32, gid: u32) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    crate::sandbox::lchown_tree(root, uid, gid)?;
    let _ = std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755));
    Ok(())
}
