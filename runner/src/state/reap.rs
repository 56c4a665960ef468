//! Reaping what dead runners left: their helper processes, containers (the whole cgroup,
//! every hierarchy), libcontainer state, mounts, workspaces and token sockets, then their
//! room and lock. Only rooms whose lock can be taken are touched, so a live runner's jobs
//! are never disturbed, however many runners share the state directory.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::instance::{CLAIMING_PREFIX, LOCK_SUFFIX, RUNNERS_DIR, is_instance_id};
use super::{StateError, remove_tree};

/// What one reaping pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReapReport {
    /// Rooms of dead runners removed.
    pub rooms: usize,
    /// Sandbox helper processes of dead runners that were still alive and got SIGKILL.
    pub helpers_killed: usize,
    /// Containers (cgroups and libcontainer state) removed.
    pub containers: usize,
    /// Mounts below dead rooms detached.
    pub mounts: usize,
}

impl ReapReport {
    /// Whether anything was found.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// How old an unlocked `.claiming-*` file must be before a reaper removes it.
const CLAIMING_STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// A dead runner's room, locked by the reaper until it is gone.
#[derive(Debug)]
pub struct DeadRoom {
    /// `<state_dir>/runners/<id>`.
    pub dir: PathBuf,
    lock_path: PathBuf,
    _lock: Option<Flock<File>>,
}

impl DeadRoom {
    /// Its sandbox state (libcontainer state and bundles).
    pub fn sandbox_dir(&self) -> PathBuf {
        self.dir.join("sandbox")
    }

    /// Its attempt workspaces.
    pub fn jobs_dir(&self) -> PathBuf {
        self.dir.join("jobs")
    }

    /// Removes the room, then its lock file; the lock is released last.
    pub fn remove(self) -> Result<(), StateError> {
        remove_tree(&self.dir)?;
        match std::fs::remove_file(&self.lock_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StateError::io("removing", &self.lock_path, e))
            }
            _ => Ok(()),
        }
    }
}

/// The rooms in `<state_dir>/runners` that belong to no live runner (see [`dead_rooms_in`]).
pub fn dead_rooms(state_dir: &Path, own: &str) -> Result<Vec<DeadRoom>, StateError> {
    dead_rooms_in(&state_dir.join(RUNNERS_DIR), own)
}

/// The rooms in the directory `runners` that belong to no live process, each locked for the
/// caller (`own` is the caller's own room id, never returned). A room whose lock is held is
/// live and skipped; so is one that another reaper is removing right now.
pub fn dead_rooms_in(runners: &Path, own: &str) -> Result<Vec<DeadRoom>, StateError> {
    let runners = runners.to_owned();
    let entries = match std::fs::read_dir(&runners) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StateError::io("listing", &runners, e)),
    };
    let mut ids = std::collections::BTreeSet::new();
    let mut claiming = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StateError::io("listing", &runners, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if let Some(id) = name.strip_prefix(CLAIMING_PREFIX) {
            if is_instance_id(id) {
                claiming.push(entry.path());
            }
            continue;
        }
        let id = name.strip_suffix(LOCK_SUFFIX).unwrap_or(&name);
        if is_instance_id(id) && id != own {
            ids.insert(id.to_owned());
        }
    }
    // A lock file a runner died holding before it was renamed into place. A claimer creates
    // it and locks it a moment later: one that young may just not be locked yet, so only
    // files older than CLAIMING_STALE_AFTER go.
    for path in claiming {
        let young = std::fs::symlink_metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age < CLAIMING_STALE_AFTER);
        if young {
            continue;
        }
        if let Some(lock) = try_lock(&path)? {
            let _ = std::fs::remove_file(&path);
            drop(lock);
        }
    }
    let mut dead = Vec::new();
    for id in ids {
        let dir = runners.join(&id);
        let lock_path = runners.join(format!("{id}{LOCK_SUFFIX}"));
        let lock = if lock_path.exists() {
            match try_lock(&lock_path)? {
                Some(lock) => Some(lock),
                None => continue,
            }
        } else {
            // No lock at all: a reaper that removed the lock but crashed before... cannot
            // happen (the room goes first); a room without a lock is what a crash in the
            // middle of a claim's directory step leaves. It belongs to no one.
            None
        };
        // Another reaper may have removed it between the listing and the lock.
        if !dir.exists() && !lock_path.exists() {
            continue;
        }
        dead.push(DeadRoom {
            dir,
            lock_path,
            _lock: lock,
        });
    }
    Ok(dead)
}

/// An exclusive lock on `path` if nobody holds one; `None` if somebody does or the file is
/// gone.
fn try_lock(path: &Path) -> Result<Option<Flock<File>>, StateError> {
    let file = match std::fs::OpenOptions::new().read(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::io("opening", path, e)),
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => {
            // Locked a file that a reaper unlinked meanwhile: not ours to act on.
            if path.exists() {
                Ok(Some(lock))
            } else {
                Ok(None)
            }
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(StateError::io("locking", path, e.into())),
    }
}

/// SIGKILLs every `sandbox-exec` helper whose bundle lies below `room` (`proc` is the proc
/// file system's mount point). Returns how many there were.
pub fn kill_helpers(proc: &Path, room: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(proc) else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if helper_bundle(&cmdline).is_some_and(|bundle| bundle.starts_with(room))
            && kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok()
        {
            killed += 1;
        }
    }
    killed
}

/// The bundle argument of a `<exe> sandbox-exec <bundle>` command line (NUL-separated).
fn helper_bundle(cmdline: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt as _;
    let mut args = cmdline.split(|b| *b == 0);
    let _exe = args.next()?;
    if args.next()? != crate::sandbox::SANDBOX_EXEC_SUBCOMMAND.as_bytes() {
        return None;
    }
    let bundle = args.next().filter(|a| !a.is_empty())?;
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(bundle)))
}

/// Detaches every mount at or below `room` (deepest first), reading `mountinfo` (the text
/// of `/proc/self/mountinfo`). Returns how many were detached.
pub fn unmount_below(mountinfo: &str, room: &Path) -> usize {
    let mut points: Vec<PathBuf> = mount_points(mountinfo)
        .into_iter()
        .filter(|p| p.starts_with(room))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points
        .iter()
        .filter(|p| nix::mount::umount2(p.as_path(), nix::mount::MntFlags::MNT_DETACH).is_ok())
        .count()
}

/// The mount points listed in `mountinfo` text (field 5, octal escapes decoded).
fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStringExt as _;
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(std::ffi::OsString::from_vec(unescape_octal(field))))
        .collect()
}

/// Decodes the `\NNN` escapes the kernel writes for space, tab, newline and backslash.
fn unescape_octal(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(code) = bytes
                .get(i + 1..i + 4)
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        {
            out.push(code);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::instance::Instance;
    use super::*;

    #[test]
    fn only_rooms_without_a_live_holder_are_dead() {
        let state = tempfile::tempdir().expect("tempdir");
        let me = Instance::claim(state.path()).expect("me");
        let live = Instance::claim(state.path()).expect("live");
        let dead = Instance::claim(state.path()).expect("dead");
        let dead_dir = dead.dir().to_owned();
        std::fs::create_dir_all(dead_dir.join("jobs/j.1/work")).expect("mkdir");
        // Dropping the value releases the lock the way a SIGKILLed runner's kernel does.
        drop(dead);
        let found = dead_rooms(state.path(), me.id()).expect("scan");
        let dirs: Vec<&Path> = found.iter().map(|r| r.dir.as_path()).collect();
        assert_eq!(dirs, [dead_dir.as_path()]);
        // While one reaper holds it, another sees nothing to do.
        assert!(
            dead_rooms(state.path(), live.id())
                .expect("scan")
                .is_empty()
        );
        for room in found {
            room.remove().expect("remove");
        }
        assert!(!dead_dir.exists());
        assert!(dead_rooms(state.path(), me.id()).expect("scan").is_empty());
        assert!(live.dir().is_dir() && me.dir().is_dir());
    }

    #[test]
    fn a_stale_claim_file_is_removed_and_a_held_or_fresh_one_kept() {
        let state = tempfile::tempdir().expect("tempdir");
        let runners = state.path().join(RUNNERS_DIR);
        std::fs::create_dir_all(&runners).expect("mkdir");
        let old = std::time::SystemTime::now() - 2 * CLAIMING_STALE_AFTER;
        let aged = |path: &Path| {
            std::fs::write(path, "").expect("write");
            File::options()
                .write(true)
                .open(path)
                .expect("open")
                .set_modified(old)
                .expect("age it");
        };
        let stale = runners.join(format!("{CLAIMING_PREFIX}dead"));
        aged(&stale);
        let held = runners.join(format!("{CLAIMING_PREFIX}live"));
        aged(&held);
        // Just created and not yet locked by its claimer: not stale either.
        let fresh = runners.join(format!("{CLAIMING_PREFIX}fresh"));
        std::fs::write(&fresh, "").expect("write");
        let _holder =
            Flock::lock(File::open(&held).expect("open"), FlockArg::LockExclusive).expect("lock");
        assert!(dead_rooms(state.path(), "me").expect("scan").is_empty());
        assert!(!stale.exists());
        assert!(held.exists());
        assert!(fresh.exists(), "a claim being made is left alone");
    }

    #[test]
    fn helper_command_lines_are_recognised() {
        assert_eq!(
            helper_bundle(b"/usr/bin/airlock\0sandbox-exec\0/s/runners/ab/sandbox/bundles/c\0"),
            Some(PathBuf::from("/s/runners/ab/sandbox/bundles/c"))
        );
        assert_eq!(helper_bundle(b"/usr/bin/airlock\0runner\0--x\0"), None);
        assert_eq!(helper_bundle(b"sleep\0"), None);
        assert_eq!(helper_bundle(b""), None);
    }

    #[test]
    fn mount_points_are_decoded() {
        let text = "36 35 98:0 / /var/lib/airlock/runners/ab/x rw - tmpfs tmpfs rw\n\
                    37 35 98:0 / /var/lib/a\\040b rw - tmpfs tmpfs rw\n\
                    garbage\n";
        assert_eq!(
            mount_points(text),
            [
                PathBuf::from("/var/lib/airlock/runners/ab/x"),
                PathBuf::from("/var/lib/a b")
            ]
        );
        assert_eq!(unescape_octal("a\\134b\\"), b"a\\b\\");
    }
}
