//! Removing what containers left: a step's own container when it ends, an attempt's when
//! its steps are over, and everything of a dead runner's room (by state, and by cgroup
//! name for what no state names).

use std::path::Path;

use super::SandboxError;
use super::cgroup::{self, CGROUP_KILL_WAIT};
use super::preflight::validate_container_id;

/// Kills and removes every sandbox cgroup whose container id ends in `suffix` (a dead
/// runner room's `.<room id>`), in every hierarchy, also those whose container state
/// never got written. Blocking. Returns how many there were.
pub(super) fn remove_cgroups_with_suffix(suffix: &str) -> usize {
    let mut removed = 0;
    for rel in cgroup::with_suffix(suffix) {
        if let Err(e) = cgroup::kill_all(&rel, CGROUP_KILL_WAIT) {
            tracing::warn!(cgroup = %rel.display(), error = %e, "could not empty a dead runner's cgroup");
        }
        match cgroup::remove(&rel) {
            Ok(()) => removed += 1,
            Err(e) => {
                tracing::warn!(cgroup = %rel.display(), error = %e, "could not remove a dead runner's cgroup");
            }
        }
    }
    removed
}

/// Kills and removes the containers and job sandboxes (state under `containers_root`,
/// bundles and zygote directories under `dirs`) that `select` picks; a job sandbox's
/// cgroup is named like a container's. Blocking. Returns how many there were.
pub(super) fn remove_containers(
    containers_root: &Path,
    dirs: &[std::path::PathBuf],
    select: impl Fn(&str) -> bool,
) -> Result<usize, SandboxError> {
    let mut ids = std::collections::BTreeSet::new();
    for root in std::iter::once(containers_root).chain(dirs.iter().map(|d| d.as_path())) {
        let entries = match std::fs::read_dir(root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(SandboxError::io("listing", root, e)),
        };
        for entry in entries.flatten() {
            if let Some(name) = entry.file_name().to_str()
                && validate_container_id(name).is_ok()
                && select(name)
            {
                ids.insert(name.to_owned());
            }
        }
    }
    for id in &ids {
        remove_container(containers_root, id, Some(&cgroup::relative_path(id)))
            .map_err(SandboxError::Cleanup)?;
        for dir in dirs {
            let dir = dir.join(id);
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(SandboxError::io("removing", dir, e));
            }
        }
    }
    Ok(ids.len())
}

/// Makes sure nothing of container `id` is left: kills what is still in its cgroup
/// `rel_cgroup` and removes it (`None`: it has none of its own, its processes are in its
/// zygote's), then removes libcontainer's state directory. Blocking.
pub(super) fn remove_container(
    containers_root: &Path,
    id: &str,
    rel_cgroup: Option<&Path>,
) -> Result<(), String> {
    if let Some(rel_cgroup) = rel_cgroup {
        remove_container_cgroup(id, rel_cgroup)?;
    }
    let state = containers_root.join(id);
    match std::fs::remove_dir_all(&state) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("removing {}: {e}", state.display())),
    }
}

/// Kills what is left in container `id`'s cgroup `rel_cgroup` and removes the cgroup.
fn remove_container_cgroup(id: &str, rel_cgroup: &Path) -> Result<(), String> {
    let killed = cgroup::kill_all(rel_cgroup, CGROUP_KILL_WAIT)
        .map_err(|e| format!("killing what is left of container {id}: {e}"))?;
    if killed > 0 {
        tracing::warn!(
            container_id = id,
            killed,
            "killed leftover sandbox processes"
        );
    }
    if let Err(e) = cgroup::remove(rel_cgroup) {
        tracing::warn!(container_id = id, error = %e, "could not remove sandbox cgroup");
    }
    Ok(())
}
