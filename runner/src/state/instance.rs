//! One runner process's private room in a shared state directory, held by a lock.
//!
//! `<state_dir>/runners/<id>.lock` is a file the live runner holds an exclusive `flock` on
//! for its whole life; `<state_dir>/runners/<id>/` is its room (workspaces, token sockets,
//! sandbox state). A lock file is only ever made visible already locked (created under a
//! temporary name, locked, then renamed into place without replacing anything), so a lock
//! file that can be locked belongs to no live process: the kernel drops an `flock` when its
//! holder dies, SIGKILL included.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, RenameFlags, renameat2};
use nix::mount::{MntFlags, MsFlags};

use super::StateError;

/// The directory below the state directory that holds every runner's room and lock.
pub const RUNNERS_DIR: &str = "runners";
/// The suffix of a room's lock file.
pub const LOCK_SUFFIX: &str = ".lock";
/// The prefix of a lock file that is not yet locked and renamed into place.
pub const CLAIMING_PREFIX: &str = ".claiming-";

/// A live runner's room: exists, and stays this process's, for as long as this value lives.
#[derive(Debug)]
pub struct Instance {
    id: String,
    dir: PathBuf,
    lock_path: PathBuf,
    _lock: Flock<File>,
}

impl Instance {
    /// Claims a fresh room in `<state_dir>/runners` with a random id.
    pub fn claim(state_dir: &Path) -> Result<Self, StateError> {
        Self::claim_in(&state_dir.join(RUNNERS_DIR), random_id)
    }

    /// Claims a fresh room in the directory `rooms` (created if missing) with an id from
    /// `next_id` (asked again if the id is taken). Ids are 1-16 characters of `[a-z0-9]`.
    pub fn claim_in(rooms: &Path, mut next_id: impl FnMut() -> String) -> Result<Self, StateError> {
        let runners = rooms;
        mkdir_searchable(runners)?;
        for _ in 0..16 {
            let id = next_id();
            if !is_instance_id(&id) {
                return Err(StateError::BadId(id));
            }
            let claiming = runners.join(format!("{CLAIMING_PREFIX}{id}"));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&claiming)
                .map_err(|e| StateError::io("creating", &claiming, e))?;
            let mut lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
                .map_err(|(_, e)| StateError::io("locking", &claiming, e.into()))?;
            // Who holds it, for the humans who look (the lock is what counts).
            let _ = writeln!(&mut *lock, "pid {}", std::process::id());
            let lock_path = runners.join(format!("{id}{LOCK_SUFFIX}"));
            match renameat2(
                None,
                &claiming,
                None,
                &lock_path,
                RenameFlags::RENAME_NOREPLACE,
            ) {
                Ok(()) => {}
                Err(Errno::EEXIST) => {
                    let _ = std::fs::remove_file(&claiming);
                    continue;
                }
                // Taken away before it was renamed (an older reaper's doing): try again.
                Err(Errno::ENOENT) => continue,
                Err(e) => {
                    let _ = std::fs::remove_file(&claiming);
                    return Err(StateError::io("claiming", &lock_path, e.into()));
                }
            }
            let dir = runners.join(&id);
            match std::fs::DirBuilder::new().mode(0o755).create(&dir) {
                Ok(()) => {}
                // A room without a lock: what a reaper that crashed mid-way leaves. Ours now.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    super::remove_tree(&dir)?;
                    mkdir_searchable(&dir)?;
                }
                Err(e) => return Err(StateError::io("creating", &dir, e)),
            }
            set_searchable(&dir)?;
            return Ok(Self {
                id,
                dir,
                lock_path,
                _lock: lock,
            });
        }
        Err(StateError::BadId(
            "16 random ids in a row were taken".to_owned(),
        ))
    }

    /// The room's id (unique among the live runners of this state directory, and random
    /// enough to tell the rooms of one machine apart).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The room: `<state_dir>/runners/<id>`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Attempt workspaces: `<room>/jobs`.
    pub fn jobs_dir(&self) -> PathBuf {
        self.dir.join("jobs")
    }

    /// Token broker sockets, one directory per attempt: `<room>/oidc` (kept short, a socket
    /// path must fit in 108 bytes).
    pub fn oidc_dir(&self) -> PathBuf {
        self.dir.join("oidc")
    }

    /// libcontainer state and bundles: `<room>/sandbox`.
    pub fn sandbox_dir(&self) -> PathBuf {
        self.dir.join("sandbox")
    }

    /// Mounts a private tmpfs (mode 0700, nosuid, nodev, noexec) on the room's sandbox
    /// directory, as runc and crun keep their state in `/run`: every step writes a bundle and
    /// libcontainer's state there and removes them again, which on a disk file system means
    /// inode allocations and journal work in each step's critical path. Needs host
    /// privilege; returns whether it mounted. The reaper unmounts a dead room's.
    pub fn mount_sandbox_tmpfs(&self) -> Result<bool, StateError> {
        let dir = self.sandbox_dir();
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| StateError::io("creating", &dir, e))?;
        match nix::mount::mount(
            Some("airlock-sandbox"),
            &dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some(SANDBOX_TMPFS_OPTIONS),
        ) {
            Ok(()) => Ok(true),
            // No privilege here after all (a container without CAP_SYS_ADMIN): the directory
            // on disk works, only slower.
            Err(Errno::EPERM | Errno::EACCES) => Ok(false),
            Err(e) => Err(StateError::io("mounting a tmpfs on", &dir, e.into())),
        }
    }

    /// Removes the room and then its lock, at a clean exit (every job over, every sandbox
    /// process dead). On error the room stays, for the next runner's reaper.
    pub fn remove(self) -> Result<(), StateError> {
        let sandbox = self.sandbox_dir();
        match nix::mount::umount2(&sandbox, MntFlags::MNT_DETACH) {
            // Not a mount point (not mounted, or no room for a runner without privilege).
            Ok(()) | Err(Errno::EINVAL | Errno::ENOENT | Errno::EPERM) => {}
            Err(e) => return Err(StateError::io("unmounting", &sandbox, e.into())),
        }
        super::remove_tree(&self.dir)?;
        std::fs::remove_file(&self.lock_path)
            .map_err(|e| StateError::io("removing", &self.lock_path, e))?;
        Ok(())
    }
}

/// The sandbox tmpfs's options: bundles and libcontainer state are a few KiB per step.
const SANDBOX_TMPFS_OPTIONS: &str = "mode=0700,size=64m";

/// Whether `id` can name a room.
pub fn is_instance_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 16
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// 8 random hex digits.
pub fn random_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

/// Creates `dir` (and parents) with mode 0755: the sandbox's unprivileged uid must traverse
/// it to reach its workspace.
pub(crate) fn mkdir_searchable(dir: &Path) -> Result<(), StateError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| StateError::io("creating", dir, e))?;
    set_searchable(dir)
}

/// Mode 0755 whatever the umask made of it.
fn set_searchable(dir: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| StateError::io("setting the mode of", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_room_is_locked_and_removed_cleanly() {
        let state = tempfile::tempdir().expect("tempdir");
        let a = Instance::claim(state.path()).expect("claim");
        assert!(a.dir().is_dir());
        let lock = state
            .path()
            .join(RUNNERS_DIR)
            .join(format!("{}{LOCK_SUFFIX}", a.id()));
        // Held: nobody else can lock it while `a` lives.
        let other = File::open(&lock).expect("open");
        assert!(Flock::lock(other, FlockArg::LockExclusiveNonblock).is_err());
        let b = Instance::claim(state.path()).expect("second claim");
        assert_ne!(a.id(), b.id());
        let dir = a.dir().to_owned();
        a.remove().expect("remove");
        assert!(!dir.exists() && !lock.exists());
        drop(b);
    }

    #[test]
    fn a_taken_id_is_skipped_and_bad_ids_are_refused() {
        let state = tempfile::tempdir().expect("tempdir");
        let rooms = state.path().join(RUNNERS_DIR);
        let _first = Instance::claim_in(&rooms, || "aaaa".into()).expect("claim");
        let mut ids = ["aaaa", "bbbb"].into_iter();
        let second =
            Instance::claim_in(&rooms, || ids.next().unwrap_or("x").into()).expect("claim");
        assert_eq!(second.id(), "bbbb");
        for bad in ["", "A", "a/b", "..", "0123456789abcdefg"] {
            assert!(
                matches!(
                    Instance::claim_in(&rooms, || bad.into()),
                    Err(StateError::BadId(_))
                ),
                "{bad:?}"
            );
        }
    }
}
