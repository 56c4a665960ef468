//! The container's cgroup (v1 hierarchies): limits, OOM detection, last-resort kill, removal.
//!
//! libcontainer creates `/sys/fs/cgroup/<controller>/airlock/<id>` for every mounted v1
//! controller and puts the container in it. Limits are not passed through
//! `linux.resources` (libcontainer 0.7 would also write `devices.allow`); the helper writes
//! them here between create and start, when only the paused container init is inside.
//! v1 has no `cgroup.kill`, so killing everything left behind is freeze, SIGKILL, thaw.

use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Where the v1 controllers are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The parent of every sandbox cgroup, below each controller's root.
const PARENT: &str = "airlock";

/// The cgroup of container `id`, relative to each controller's mount point.
pub(crate) fn relative_path(container_id: &str) -> PathBuf {
    Path::new(PARENT).join(container_id)
}

/// The directory of `rel` in `controller`.
fn dir(controller: &str, rel: &Path) -> PathBuf {
    Path::new(CGROUP_ROOT).join(controller).join(rel)
}

/// Writes `value` to a cgroup control file, naming the file in the error.
fn write(path: &Path, value: &str) -> io::Result<()> {
    std::fs::write(path, value).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("writing {value:?} to {}: {e}", path.display()),
        )
    })
}

/// Sets the memory limit (and the memory+swap limit, where swap accounting exists, so swap
/// cannot be used to exceed it) and the process limit of cgroup `rel`.
pub(crate) fn apply_limits(
    rel: &Path,
    memory_bytes: Option<u64>,
    pids: Option<u64>,
) -> io::Result<()> {
    if let Some(bytes) = memory_bytes {
        let memory = dir("memory", rel);
        write(&memory.join("memory.limit_in_bytes"), &bytes.to_string())?;
        let memsw = memory.join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            write(&memsw, &bytes.to_string())?;
        }
    }
    if let Some(max) = pids {
        write(&dir("pids", rel).join("pids.max"), &max.to_string())?;
    }
    Ok(())
}

/// Whether the kernel OOM-killed a process of cgroup `rel` (v1 `memory.oom_control`).
pub(crate) fn oom_killed(rel: &Path) -> bool {
    std::fs::read_to_string(dir("memory", rel).join("memory.oom_control"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("oom_kill "))
                .and_then(|n| n.trim().parse::<u64>().ok())
        })
        .is_some_and(|n| n > 0)
}

/// The pids in cgroup `rel` of `controller`; empty when the cgroup does not exist.
fn procs(controller: &str, rel: &Path) -> io::Result<Vec<Pid>> {
    match std::fs::read_to_string(dir(controller, rel).join("cgroup.procs")) {
        Ok(text) => Ok(text
            .lines()
            .filter_map(|l| l.trim().parse::<i32>().ok())
            .map(Pid::from_raw)
            .collect()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Kills every process in cgroup `rel` and waits until it is empty (at most `wait`).
/// Freezes the cgroup first so nothing can fork while the kill happens. Returns how many
/// processes were found. A missing cgroup is not an error.
pub(crate) fn kill_all(rel: &Path, wait: Duration) -> io::Result<usize> {
    let mut found = procs("freezer", rel)?;
    if found.is_empty() {
        found = procs("pids", rel)?;
    }
    if found.is_empty() {
        return Ok(0);
    }
    let freezer = dir("freezer", rel).join("freezer.state");
    let frozen = freezer.exists() && write(&freezer, "FROZEN").is_ok();
    if frozen {
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            match std::fs::read_to_string(&freezer) {
                Ok(state) if state.trim() == "FROZEN" => break,
                Ok(_) => std::thread::sleep(Duration::from_millis(5)),
                Err(_) => break,
            }
        }
        found = procs("freezer", rel)?;
    }
    for &pid in &found {
        // ESRCH: it exited meanwhile, which is what we want.
        let _ = kill(pid, Signal::SIGKILL);
    }
    if frozen {
        write(&freezer, "THAWED")?;
    }
    let deadline = Instant::now() + wait;
    loop {
        let left = procs("freezer", rel)?.len() + procs("pids", rel)?.len();
        if left == 0 {
            return Ok(found.len());
        }
        if Instant::now() >= deadline {
            return Err(io::Error::other(format!(
                "{left} processes still in cgroup {} after SIGKILL",
                rel.display()
            )));
        }
        for pid in procs("freezer", rel)?
            .into_iter()
            .chain(procs("pids", rel)?)
        {
            let _ = kill(pid, Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Removes cgroup `rel` from every v1 controller where it exists. The cgroup must be empty.
pub(crate) fn remove(rel: &Path) -> io::Result<()> {
    let entries = match std::fs::read_dir(CGROUP_ROOT) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut first_error = None;
    for entry in entries.flatten() {
        let path = entry.path().join(rel);
        match std::fs::remove_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                first_error.get_or_insert(io::Error::new(
                    e.kind(),
                    format!("removing cgroup {}: {e}", path.display()),
                ));
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_path_is_below_the_airlock_parent() {
        assert_eq!(
            relative_path("job-1.step-0"),
            Path::new("airlock/job-1.step-0")
        );
    }

    #[test]
    fn missing_cgroups_are_empty_and_removable() {
        let rel = relative_path("airlock-test-does-not-exist");
        assert_eq!(
            kill_all(&rel, Duration::from_millis(10)).expect("kill_all"),
            0
        );
        assert!(!oom_killed(&rel));
        remove(&rel).expect("removing a missing cgroup is not an error");
    }
}
