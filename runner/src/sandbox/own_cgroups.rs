//! On a v1 (or hybrid) host, the helper creates and joins the step's cgroups itself, in
//! only the hierarchies it uses, and hides `/sys/fs/cgroup` from libcontainer.
//!
//! libcontainer 0.7's v1 manager puts every container into every mounted hierarchy (here
//! eight), parsing `/proc/self/mountinfo` and `/proc/self/cgroup` once per controller, and
//! each move into a v1 cgroup waits for an RCU grace period: about half of a step's start
//! (BENCHMARKS.md, "Per-step cost"). Instead the helper:
//!
//! 1. the job's zygote (`zygote.rs`) creates `pids`, `memory` and `cpu` below
//!    `airlock/<job>` and moves itself in, once per job, so every step's helper and
//!    container processes are born inside (and each container's cgroup namespace is rooted
//!    there, as before);
//! 2. it enters a private mount namespace where `/sys/fs/cgroup` is an empty read-only
//!    tmpfs, which its helpers inherit: libcontainer then finds no hierarchy and manages
//!    none. The container is unaffected (it mounts its own `/sys`; pivot_root drops the
//!    helper's view);
//! 3. each step's helper writes the step's limits and reads its counters through a
//!    descriptor of the host's `/sys/fs/cgroup` (`cgroup::apply_step_limits`).
//!
//! The zygote and the helper count as two tasks of the pids cgroup, so `pids.max` is the
//! step's limit plus two; their memory charge is what they allocate after the move.

use std::io;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

use super::cgroup::{self, CGROUP_ROOT};

/// The job's cgroup as a forked helper sees it.
pub(crate) struct JobCgroups<'a> {
    /// The host's cgroup file system, reached through the zygote's descriptor.
    pub root: PathBuf,
    /// The job's cgroup, relative to each controller.
    pub rel: &'a Path,
}

/// The cgroup file system of the host, still reachable once it is hidden.
pub(super) struct HostCgroups {
    /// An `O_PATH` descriptor of the host's `/sys/fs/cgroup`.
    fd: OwnedFd,
}

impl HostCgroups {
    /// A path that names the host's `/sys/fs/cgroup` through the descriptor.
    pub(super) fn root(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }
}

/// The v1 hierarchies a job's cgroup is made in: the ones the sandbox limits or counts
/// (`pids` also serves the last-resort kill).
pub(super) const JOB_CONTROLLERS: [&str; 3] = ["pids", "memory", "cpu"];

/// Creates cgroup `rel` in [`JOB_CONTROLLERS`], moves the calling process in, then hides
/// every hierarchy from it (see the module documentation). The limits are written per
/// step, by each step's helper.
pub(super) fn join_and_hide(rel: &Path) -> io::Result<HostCgroups> {
    let root = Path::new(CGROUP_ROOT);
    for controller in JOB_CONTROLLERS {
        let dir = cgroup::dir_at(root, controller, rel);
        std::fs::create_dir_all(&dir)
            .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", dir.display())))?;
        // "0" is the writing process, single-threaded.
        cgroup::write(&dir.join("cgroup.procs"), "0")?;
    }
    let fd = rustix::fs::open(
        root,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    hide(root).map_err(|e| io::Error::other(format!("hiding {CGROUP_ROOT}: {e}")))?;
    Ok(HostCgroups { fd })
}

/// A private mount namespace in which `root` is an empty read-only tmpfs.
fn hide(root: &Path) -> nix::Result<()> {
    unshare(CloneFlags::CLONE_NEWNS)?;
    // Nothing mounted or unmounted here may propagate back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )?;
    umount2(root, MntFlags::MNT_DETACH)?;
    mount(
        Some("tmpfs"),
        root,
        Some("tmpfs"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=4k,mode=755"),
    )
}
