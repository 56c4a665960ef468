//! The container's cgroup: limits, OOM and pids-exhaustion detection, last-resort kill,
//! removal. Both layouts are supported:
//!
//! - v1 (and the hybrid layout of this kind of machine): libcontainer creates
//!   `/sys/fs/cgroup/<controller>/airlock/<id>` for every mounted v1 controller. v1 has no
//!   `cgroup.kill`, so killing everything left behind is freeze, SIGKILL, thaw.
//! - v2 (unified, `/sys/fs/cgroup/cgroup.controllers` exists): `/sys/fs/cgroup/airlock/<id>`,
//!   `memory.max`, `pids.max`, `cpu.max`, `memory.events`, `pids.events`, `cgroup.kill`.
//!
//! Limits are not passed through `linux.resources` (libcontainer 0.7 would also write
//! `devices.allow`); the helper writes them here between create and start, when only the
//! paused container init is inside.

use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Where the v1 controllers are mounted.
/// How long a last-resort cgroup kill may take.
pub(super) const CGROUP_KILL_WAIT: Duration = Duration::from_secs(5);

pub(super) const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The parent of every sandbox cgroup, below each controller's root.
const PARENT: &str = "airlock";

/// The v1 controllers libcontainer 0.7 puts a container into (where they are mounted).
const V1_CONTROLLERS: [&str; 12] = [
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
];

/// The cgroup of container `id`, relative to each controller's mount point: below
/// `airlock/` as root, below the delegated `airlock-user-<uid>/` when rootless.
pub(crate) fn relative_path(container_id: &str) -> PathBuf {
    if super::rootless::is_rootless() {
        Path::new(&rootless_parent()).join(container_id)
    } else {
        Path::new(PARENT).join(container_id)
    }
}

/// The cgroup a rootless runner's containers go below; root creates it once per controller
/// and chowns it to the runner user (`scripts/rootless-cgroups.sh USER`).
pub(crate) fn rootless_parent() -> String {
    format!("{PARENT}-user-{}", nix::unistd::geteuid())
}

/// Rootless: checks that the delegated parent exists and is writable in every mounted
/// controller (libcontainer 0.7 cannot create a container outside a cgroup it may write).
pub(crate) fn check_delegated() -> Result<(), String> {
    let parent = rootless_parent();
    let dirs: Vec<PathBuf> = if is_v2() {
        vec![Path::new(CGROUP_ROOT).join(&parent)]
    } else {
        V1_CONTROLLERS
            .iter()
            .map(|c| Path::new(CGROUP_ROOT).join(c))
            .filter(|mount| mount.join("cgroup.procs").exists())
            .map(|mount| mount.join(&parent))
            .collect()
    };
    let missing: Vec<String> = dirs
        .iter()
        .filter(|d| nix::unistd::access(d.as_path(), nix::unistd::AccessFlags::W_OK).is_err())
        .map(|d| d.display().to_string())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "a rootless runner needs a delegated cgroup; {} missing or not writable: as root, \
             run `scripts/rootless-cgroups.sh {}` once",
            missing.join(" "),
            nix::unistd::User::from_uid(nix::unistd::geteuid())
                .ok()
                .flatten()
                .map_or_else(|| nix::unistd::geteuid().to_string(), |u| u.name)
        ))
    }
}

/// The CFS period written with a CPU quota, in microseconds.
const CPU_PERIOD_US: u64 = 100_000;

/// Whether the host uses the unified (v2-only) layout.
pub(crate) fn is_v2() -> bool {
    is_v2_at(Path::new(CGROUP_ROOT))
}

/// Whether the cgroup file system at `root` is the unified (v2-only) layout.
fn is_v2_at(root: &Path) -> bool {
    root.join("cgroup.controllers").exists()
}

/// The directory of `rel` in `controller` (v1), or of `rel` itself (v2).
fn dir(controller: &str, rel: &Path) -> PathBuf {
    dir_at(Path::new(CGROUP_ROOT), controller, rel)
}

/// [`dir`] below the cgroup file system at `root` (the helper reaches it through a
/// descriptor once its own mount namespace hides `/sys/fs/cgroup`).
pub(super) fn dir_at(root: &Path, controller: &str, rel: &Path) -> PathBuf {
    if is_v2_at(root) {
        root.join(rel)
    } else {
        root.join(controller).join(rel)
    }
}

/// The limits of one container's cgroup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Memory limit in bytes (memory+swap where swap is accounted).
    pub memory_bytes: Option<u64>,
    /// Most processes and threads.
    pub pids: Option<u64>,
    /// CPU bandwidth in thousandths of a CPU.
    pub cpu_millis: Option<u64>,
}

/// Writes `value` to a cgroup control file, naming the file in the error.
pub(super) fn write(path: &Path, value: &str) -> io::Result<()> {
    std::fs::write(path, value).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("writing {value:?} to {}: {e}", path.display()),
        )
    })
}

/// Sets the memory limit (and the memory+swap limit, where swap accounting exists, so swap
/// cannot be used to exceed it), the process limit and the CPU quota of cgroup `rel`.
pub(crate) fn apply_limits(rel: &Path, limits: Limits) -> io::Result<()> {
    let v2 = is_v2();
    if let Some(bytes) = limits.memory_bytes {
        let memory = dir("memory", rel);
        let bytes = bytes.to_string();
        if v2 {
            write(&memory.join("memory.max"), &bytes)?;
            let swap = memory.join("memory.swap.max");
            if swap.exists() {
                write(&swap, "0")?;
            }
        } else {
            write(&memory.join("memory.limit_in_bytes"), &bytes)?;
            let memsw = memory.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                write(&memsw, &bytes)?;
            }
        }
    }
    if let Some(max) = limits.pids {
        write(&dir("pids", rel).join("pids.max"), &max.to_string())?;
    }
    if let Some(millis) = limits.cpu_millis {
        let quota = cpu_quota_us(millis);
        let cpu = dir("cpu", rel);
        if v2 {
            write(&cpu.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
        } else {
            write(&cpu.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
            write(&cpu.join("cpu.cfs_quota_us"), &quota.to_string())?;
        }
    }
    Ok(())
}

/// The CFS quota per [`CPU_PERIOD_US`] of `millis` thousandths of a CPU (at least 1 ms).
fn cpu_quota_us(millis: u64) -> u64 {
    (millis.saturating_mul(CPU_PERIOD_US) / 1000).max(1000)
}

/// Tasks of a zygote's cgroup that are not the step's: the zygote and the step's helper.
pub(crate) const JOB_OVERHEAD_TASKS: u64 = 2;

/// Sets all three limits of step cgroup `rel` (v1) below the cgroup file system at `root`,
/// "no limit" for those `limits` leaves unset: a job's cgroup serves each of its steps in
/// turn, so nothing of an earlier step's limits may remain. `pids.max` allows
/// [`JOB_OVERHEAD_TASKS`] more than the step's limit.
pub(crate) fn apply_step_limits(root: &Path, rel: &Path, limits: Limits) -> io::Result<()> {
    let memory = dir_at(root, "memory", rel);
    let bytes = limits
        .memory_bytes
        .map_or_else(|| "-1".to_owned(), |b| b.to_string());
    let mem = memory.join("memory.limit_in_bytes");
    let memsw = memory.join("memory.memsw.limit_in_bytes");
    // v1 wants memory+swap >= memory at every moment: raise memsw first, lower it last.
    if memsw.exists() {
        if write(&mem, &bytes).is_ok() {
            write(&memsw, &bytes)?;
        } else {
            write(&memsw, &bytes)?;
            write(&mem, &bytes)?;
        }
    } else {
        write(&mem, &bytes)?;
    }
    let pids = limits.pids.map_or_else(
        || "max".to_owned(),
        |n| n.saturating_add(JOB_OVERHEAD_TASKS).to_string(),
    );
    write(&dir_at(root, "pids", rel).join("pids.max"), &pids)?;
    let cpu = dir_at(root, "cpu", rel);
    let quota = limits.cpu_millis.map_or_else(
        || "-1".to_owned(),
        |millis| cpu_quota_us(millis).to_string(),
    );
    write(&cpu.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
    write(&cpu.join("cpu.cfs_quota_us"), &quota)
}

/// How many times the kernel OOM-killed a process of cgroup `rel` below `root`, and how
/// many forks failed on `pids.max`: a job's steps share the cgroup, so each step compares
/// these before and after.
pub(crate) fn job_counters(root: &Path, rel: &Path) -> (u64, u64) {
    (oom_kills(root, rel), pids_max_events(root, rel))
}

/// The number of tasks in v1 cgroup `rel` below `root` (`pids.current`).
pub(crate) fn pids_current(root: &Path, rel: &Path) -> Option<u64> {
    std::fs::read_to_string(dir_at(root, "pids", rel).join("pids.current"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

/// The number after `key ` in a flat-keyed cgroup file such as `memory.events`.
fn counter(path: &Path, key: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok().and_then(|text| {
        text.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
            .and_then(|n| n.trim().parse::<u64>().ok())
    })
}

/// How many forks or clones of cgroup `rel` (below the cgroup file system at `root`) failed
/// because `pids.max` was reached; 0 when the counter cannot be read.
fn pids_max_events(root: &Path, rel: &Path) -> u64 {
    counter(&dir_at(root, "pids", rel).join("pids.events"), "max").unwrap_or(0)
}

/// How many times the kernel OOM-killed a process of cgroup `rel` below `root` (v1
/// `memory.oom_control`, v2 `memory.events`); 0 when the counter cannot be read.
fn oom_kills(root: &Path, rel: &Path) -> u64 {
    let file = if is_v2_at(root) {
        "memory.events"
    } else {
        "memory.oom_control"
    };
    counter(&dir_at(root, "memory", rel).join(file), "oom_kill").unwrap_or(0)
}

/// Whether a fork or clone of cgroup `rel` (below the cgroup file system at `root`) failed
/// because `pids.max` was reached.
pub(crate) fn pids_exhausted(root: &Path, rel: &Path) -> bool {
    pids_max_events(root, rel) > 0
}

/// Whether the kernel OOM-killed a process of cgroup `rel` below the cgroup file system at
/// `root`.
pub(crate) fn oom_killed(root: &Path, rel: &Path) -> bool {
    oom_kills(root, rel) > 0
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
    if is_v2() {
        return kill_all_v2(rel, wait);
    }
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
    // The cgroup may be gone already (its last process exited and someone removed it).
    if frozen
        && let Err(e) = write(&freezer, "THAWED")
        && e.kind() != ErrorKind::NotFound
    {
        return Err(e);
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

/// [`kill_all`] on v2: `cgroup.kill` kills the whole subtree atomically.
fn kill_all_v2(rel: &Path, wait: Duration) -> io::Result<usize> {
    let found = procs("", rel)?.len();
    if found == 0 {
        return Ok(0);
    }
    write(&dir("", rel).join("cgroup.kill"), "1")?;
    let deadline = Instant::now() + wait;
    loop {
        let left = procs("", rel)?.len();
        if left == 0 {
            return Ok(found);
        }
        if Instant::now() >= deadline {
            return Err(io::Error::other(format!(
                "{left} processes still in cgroup {} after cgroup.kill",
                rel.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How long [`remove`] retries a cgroup the kernel still calls busy: the processes killed
/// a moment ago can hold it until their parents have reaped them.
const REMOVE_BUSY_WAIT: Duration = Duration::from_secs(2);

/// Removes cgroup `rel` from every v1 controller where it exists (or the v2 cgroup). The
/// cgroup must be empty; a cgroup still busy with just-killed processes is retried for
/// [`REMOVE_BUSY_WAIT`].
pub(crate) fn remove(rel: &Path) -> io::Result<()> {
    let paths: Vec<PathBuf> = if is_v2() {
        vec![dir("", rel)]
    } else {
        match std::fs::read_dir(CGROUP_ROOT) {
            Ok(entries) => entries.flatten().map(|e| e.path().join(rel)).collect(),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
    };
    let deadline = Instant::now() + REMOVE_BUSY_WAIT;
    let mut first_error = None;
    for path in paths {
        loop {
            match std::fs::remove_dir(&path) {
                Ok(()) => break,
                Err(e) if e.kind() == ErrorKind::NotFound => break,
                Err(e)
                    if e.raw_os_error() == Some(nix::errno::Errno::EBUSY as i32)
                        && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => {
                    first_error.get_or_insert(io::Error::new(
                        e.kind(),
                        format!("removing cgroup {}: {e}", path.display()),
                    ));
                    break;
                }
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The sandbox cgroups (relative paths, each once) in any hierarchy whose container id ends
/// in `suffix`: what a runner room's containers left, whether or not their state survived.
pub(crate) fn with_suffix(suffix: &str) -> Vec<PathBuf> {
    let parent = relative_path("x")
        .parent()
        .map_or_else(|| PathBuf::from(PARENT), Path::to_path_buf);
    let parents: Vec<PathBuf> = if is_v2() {
        vec![Path::new(CGROUP_ROOT).join(&parent)]
    } else {
        std::fs::read_dir(CGROUP_ROOT)
            .map(|d| d.flatten().map(|e| e.path().join(&parent)).collect())
            .unwrap_or_default()
    };
    let mut found = std::collections::BTreeSet::new();
    for dir in parents {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Some(name) = entry.file_name().to_str()
                && name.ends_with(suffix)
            {
                found.insert(parent.join(name));
            }
        }
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v1 layout in a temporary directory, with the files a kernel would have.
    fn fake_v1(swap: bool) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let rel = PathBuf::from("airlock/job");
        for (controller, files) in [
            (
                "memory",
                &["memory.limit_in_bytes", "memory.oom_control"][..],
            ),
            ("pids", &["pids.max", "pids.events", "pids.current"][..]),
            ("cpu", &["cpu.cfs_period_us", "cpu.cfs_quota_us"][..]),
        ] {
            let d = dir.path().join(controller).join(&rel);
            std::fs::create_dir_all(&d).expect("mkdir");
            for f in files {
                std::fs::write(d.join(f), "").expect("file");
            }
        }
        if swap {
            std::fs::write(
                dir.path()
                    .join("memory")
                    .join(&rel)
                    .join("memory.memsw.limit_in_bytes"),
                "",
            )
            .expect("file");
        }
        (dir, rel)
    }

    #[test]
    fn step_limits_are_all_written_and_reset_between_steps() {
        let (dir, rel) = fake_v1(true);
        let root = dir.path();
        let read = |c: &str, f: &str| {
            std::fs::read_to_string(root.join(c).join(&rel).join(f)).expect("read")
        };
        let limited = Limits {
            memory_bytes: Some(1 << 30),
            pids: Some(256),
            cpu_millis: Some(1500),
        };
        apply_step_limits(root, &rel, limited).expect("limits");
        assert_eq!(read("memory", "memory.limit_in_bytes"), "1073741824");
        assert_eq!(read("memory", "memory.memsw.limit_in_bytes"), "1073741824");
        // The zygote and the helper are in the cgroup too.
        assert_eq!(read("pids", "pids.max"), "258");
        assert_eq!(read("cpu", "cpu.cfs_period_us"), "100000");
        assert_eq!(read("cpu", "cpu.cfs_quota_us"), "150000");
        // A later step without limits gets none of the earlier one's.
        apply_step_limits(root, &rel, Limits::default()).expect("limits");
        assert_eq!(read("memory", "memory.limit_in_bytes"), "-1");
        assert_eq!(read("memory", "memory.memsw.limit_in_bytes"), "-1");
        assert_eq!(read("pids", "pids.max"), "max");
        assert_eq!(read("cpu", "cpu.cfs_quota_us"), "-1");
    }

    #[test]
    fn job_counters_are_read_by_key_and_missing_ones_are_zero() {
        let (dir, rel) = fake_v1(false);
        let root = dir.path();
        assert_eq!(job_counters(root, &rel), (0, 0));
        std::fs::write(
            root.join("memory").join(&rel).join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        )
        .expect("write");
        std::fs::write(root.join("pids").join(&rel).join("pids.events"), "max 7\n").expect("write");
        std::fs::write(root.join("pids").join(&rel).join("pids.current"), "2\n").expect("write");
        assert_eq!(job_counters(root, &rel), (3, 7));
        assert_eq!(pids_current(root, &rel), Some(2));
    }

    #[test]
    fn counters_are_read_by_exact_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("memory.events");
        std::fs::write(
            &file,
            "low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\noom_group_kill 0\n",
        )
        .expect("write");
        assert_eq!(counter(&file, "oom_kill"), Some(1));
        assert_eq!(counter(&file, "max"), Some(7));
        assert_eq!(counter(&file, "oom"), Some(2));
        assert_eq!(counter(&file, "nope"), None);
    }

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
        assert!(!oom_killed(Path::new(CGROUP_ROOT), &rel));
        assert!(!pids_exhausted(Path::new(CGROUP_ROOT), &rel));
        remove(&rel).expect("removing a missing cgroup is not an error");
    }
}
