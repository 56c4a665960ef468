//! The runner's state directory, shared safely by any number of runner processes (several
//! `airlock runner`s, or `airlock run`s started at once):
//!
//! ```text
//! <state_dir>/
//!   cache/              content-addressed blobs (flock per digest; shared)
//!   images/             unpacked image root filesystems (flock per manifest; shared)
//!   id-slots/           per-job host id ranges of a non-root runner (flock per slot)
//!   runners/<id>.lock   held (flock) by the live runner <id> for its whole life
//!   runners/<id>/       that runner's room:
//!     jobs/<job>.<attempt>/   one attempt's workspace (work/, out/, inputs/, ids)
//!     oidc/<n>/               one attempt's token broker socket
//!     sandbox/                libcontainer state and bundles of its containers
//! ```
//!
//! Everything a job attempt touches is keyed by the attempt, so a retried attempt never
//! meets an earlier attempt's files; container ids carry the room id too, so two runners
//! never share a container id or a cgroup. A runner that starts reaps the rooms of dead
//! runners (their lock is free); see [`reap`].

pub mod instance;
pub mod reap;

use std::path::{Path, PathBuf};

pub use instance::Instance;
pub use reap::ReapReport;

use crate::sandbox::{IdMap, Launcher};

/// Why the state directory could not be claimed or cleaned.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file operation failed.
    #[error("runner state: {what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A room id is not usable.
    #[error("runner state: bad room id {0:?}")]
    BadId(String),
    /// The sandbox state of a dead runner could not be removed.
    #[error("runner state: reaping a dead runner's sandboxes: {0}")]
    Sandbox(#[from] crate::sandbox::SandboxError),
}

impl StateError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

/// The file in an attempt's workspace that records its host id range (`<base> <size>`), so
/// a reaper can give a rootless step's files back to the runner before removing them.
pub const IDS_FILE: &str = "ids";

/// The workspace directory name of attempt `attempt` of job `job_id`.
pub fn attempt_dir_name(job_id: &str, attempt: u32) -> String {
    format!("{job_id}.{attempt}")
}

/// The container id of step `step` of an attempt, in the room `room`: unique on the machine
/// (cgroups are machine-wide) and telling whose it is. At most 64 characters for a uuid job
/// id; longer ones are refused by the launcher.
pub fn container_id(job_id: &str, attempt: u32, step: usize, room: &str) -> String {
    format!("{}s{step}.{room}", container_prefix(job_id, attempt))
}

/// The id of one attempt's job sandbox (its zygote and cgroup): it starts like the
/// attempt's container ids and ends with the room, so both cleanups find it.
pub fn job_sandbox_id(job_id: &str, attempt: u32, room: &str) -> String {
    format!("{}job.{room}", container_prefix(job_id, attempt))
}

/// What the container ids of one attempt start with.
pub fn container_prefix(job_id: &str, attempt: u32) -> String {
    format!("{job_id}.a{attempt}.")
}

/// Records `ids` in the attempt workspace `dir`.
pub fn write_ids(dir: &Path, ids: IdMap) -> Result<(), StateError> {
    let path = dir.join(IDS_FILE);
    std::fs::write(&path, format!("{} {}\n", ids.host_base, ids.size))
        .map_err(|e| StateError::io("writing", &path, e))
}

/// Reads what [`write_ids`] wrote; `None` if missing or malformed.
fn read_ids(dir: &Path) -> Option<IdMap> {
    let text = std::fs::read_to_string(dir.join(IDS_FILE)).ok()?;
    let mut parts = text.split_whitespace();
    let host_base = parts.next()?.parse().ok()?;
    let size = parts.next()?.parse().ok()?;
    Some(IdMap { host_base, size })
}

/// Removes everything that dead runners left under `state_dir` (never the room `own`, nor
/// any live runner's): helper processes still running, containers and their cgroups,
/// mounts, workspaces, token sockets, rooms and locks; and partial downloads and unpacks in
/// the shared caches that nobody is writing any more. `exe` is the `airlock` binary
/// (rootless runners give a step's files back through its helper).
pub async fn reap_dead(state_dir: &Path, own: &str, exe: &Path) -> Result<ReapReport, StateError> {
    let mut report = ReapReport::default();
    let rooms = {
        let (dir, own) = (state_dir.to_owned(), own.to_owned());
        tokio::task::spawn_blocking(move || reap::dead_rooms(&dir, &own))
            .await
            .map_err(|e| StateError::io("reaping", state_dir, std::io::Error::other(e)))??
    };
    for room in rooms {
        let dir = room.dir.clone();
        report.helpers_killed += reap::kill_helpers(Path::new("/proc"), &dir);
        let launcher = Launcher::new(exe, room.sandbox_dir())?;
        report.containers += {
            let launcher = launcher.clone();
            tokio::task::spawn_blocking(move || launcher.cleanup_stale())
                .await
                .map_err(|e| StateError::io("reaping", &dir, std::io::Error::other(e)))??
        };
        // Cgroups by name too: a runner killed between creating a container's cgroups and
        // writing its state leaves cgroups that no state names.
        if let Some(id) = dir
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty())
        {
            let (launcher, suffix) = (launcher.clone(), format!(".{id}"));
            tokio::task::spawn_blocking(move || launcher.cleanup_cgroups_with_suffix(&suffix))
                .await
                .map_err(|e| StateError::io("reaping", &dir, std::io::Error::other(e)))?;
        }
        if let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") {
            report.mounts += reap::unmount_below(&mountinfo, &dir);
        }
        if crate::sandbox::is_rootless() {
            give_back_rootless(&launcher, &room.jobs_dir()).await;
        }
        room.remove()?;
        report.rooms += 1;
    }
    Ok(report)
}

/// Rootless: gives every attempt workspace under `jobs` back to the runner (the step's
/// files belong to a subordinate uid the runner cannot remove them as).
async fn give_back_rootless(launcher: &Launcher, jobs: &Path) {
    let Ok(entries) = std::fs::read_dir(jobs) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let Some(ids) = read_ids(&dir) else { continue };
        let trees: Vec<PathBuf> = ["work", "out"]
            .iter()
            .map(|t| dir.join(t))
            .filter(|p| p.exists())
            .collect();
        if let Err(e) = launcher.chown_rootless(&trees, ids, false).await {
            tracing::warn!(dir = %dir.display(), error = %e, "could not give a dead runner's workspace back");
        }
    }
}

/// Removes a tree (any depth, without following symlinks); one already gone is fine.
pub(crate) fn remove_tree(dir: &Path) -> Result<(), StateError> {
    crate::tree::remove_tree(dir).map_err(|e| StateError::io("removing", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runners_starting_at_once_on_one_state_dir_never_break_each_others_claims() {
        let state = tempfile::tempdir().expect("tempdir");
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let dir = state.path().to_owned();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let me = Instance::claim(&dir).expect("claim");
                        // What a starting runner does next: look for dead rooms.
                        for dead in reap::dead_rooms(&dir, me.id()).expect("scan") {
                            dead.remove().expect("remove dead");
                        }
                        assert!(me.dir().is_dir(), "nobody reaped a live room");
                        me.remove().expect("remove");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("no claim failed");
        }
        let left: Vec<_> = std::fs::read_dir(state.path().join("runners"))
            .expect("list")
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn container_ids_fit_libcontainer_for_uuid_jobs() {
        let id = container_id("00000000-0000-4000-8000-000000000001", 99, 99, "0123abcd");
        assert_eq!(id, "00000000-0000-4000-8000-000000000001.a99.s99.0123abcd");
        assert!(id.len() <= 64);
        assert!(id.starts_with(&container_prefix(
            "00000000-0000-4000-8000-000000000001",
            99
        )));
        // Attempt 1 and attempt 11 never share a prefix.
        assert!(!container_id("j", 11, 0, "r").starts_with(&container_prefix("j", 1)));
    }

    #[test]
    fn ids_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ids = IdMap {
            host_base: 1_065_536,
            size: 65_536,
        };
        write_ids(dir.path(), ids).expect("write");
        assert_eq!(read_ids(dir.path()), Some(ids));
        std::fs::write(dir.path().join(IDS_FILE), "x").expect("write");
        assert_eq!(read_ids(dir.path()), None);
    }
}
