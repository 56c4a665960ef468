//! Per-job host identities: every running job gets its own host uid/gid range.
//!
//! The ranges are cut into slots of [`SLOT_SIZE`] ids:
//!
//! - a runner running as root uses `base + slot * 65536` for `slots` slots, and refuses a
//!   base whose ranges would overlap any range of `/etc/subuid` or `/etc/subgid` (those
//!   belong to users' own rootless containers) or the ids below
//!   [`MIN_HOST_BASE`](crate::sandbox::MIN_HOST_BASE);
//! - a runner running as another user cuts the `/etc/subuid` range of that user (which must
//!   start at the same id in `/etc/subgid`) into slots; `newuidmap`/`newgidmap` write them.
//!
//! A slot is held by an exclusive `flock` on `<lock_dir>/slot-<n>.lock`, so runners that
//! share a lock directory (the default one for root is machine-wide) never hand out the same
//! range twice, and a runner that dies releases its slots with its file descriptors. A slot
//! is released only when no process of the machine runs with an id of its range any more:
//! [`IdLease::release`] checks `/proc`, and keeps the slot locked for the runner's lifetime
//! (quarantined) when a process survived.

use std::fs::File;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::sandbox::{IdMap, MIN_HOST_BASE, STEP_UID};

/// Ids per slot: container ids 0..65535.
pub const SLOT_SIZE: u32 = 65_536;

/// The machine-wide lock directory of runners running as root.
pub const ROOT_LOCK_DIR: &str = "/run/airlock/id-slots";

/// Why ids could not be set up or handed out.
#[derive(Debug, thiserror::Error)]
pub enum IdError {
    /// The configured base or the subordinate id files do not allow a safe range.
    #[error("per-job id ranges: {0}")]
    Config(String),
    /// Every slot is held by a running job.
    #[error("all {0} per-job id ranges are in use; wait for a job to end or raise --id-slots")]
    Exhausted(u32),
    /// The lock directory or a lock file failed.
    #[error("per-job id ranges: {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A range of `/etc/subuid` or `/etc/subgid`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubIdRange {
    /// The user name or numeric uid of the line.
    pub owner: String,
    /// The first id.
    pub start: u64,
    /// How many ids.
    pub count: u64,
}

/// Parses `/etc/subuid` / `/etc/subgid` text (`owner:start:count` lines; blank lines and `#`
/// comments skipped, malformed lines refused).
pub fn parse_subid(text: &str) -> Result<Vec<SubIdRange>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split(':');
        let (Some(owner), Some(start), Some(count), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("line {}: expected owner:start:count", i + 1));
        };
        let (Ok(start), Ok(count)) = (start.parse::<u64>(), count.parse::<u64>()) else {
            return Err(format!("line {}: start and count must be numbers", i + 1));
        };
        out.push(SubIdRange {
            owner: owner.to_owned(),
            start,
            count,
        });
    }
    Ok(out)
}

/// Hands out one [`IdMap`] per running job.
#[derive(Debug, Clone)]
pub struct IdAllocator {
    slots: Vec<IdMap>,
    lock_dir: PathBuf,
}

impl IdAllocator {
    /// For a runner running as root: `slots` slots from `base`, checked against the
    /// subordinate ranges (`subuid`, `subgid`: the files' text; empty when missing).
    pub fn for_root(
        base: u32,
        slots: u32,
        subuid: &str,
        subgid: &str,
        lock_dir: impl Into<PathBuf>,
    ) -> Result<Self, IdError> {
        if slots == 0 {
            return Err(IdError::Config("--id-slots must be at least 1".into()));
        }
        if base < MIN_HOST_BASE {
            return Err(IdError::Config(format!(
                "--id-base {base} is below {MIN_HOST_BASE}: the sandbox must never map system or human users' ids"
            )));
        }
        let end = u64::from(base) + u64::from(slots) * u64::from(SLOT_SIZE);
        if end > u64::from(u32::MAX) {
            return Err(IdError::Config(format!(
                "--id-base {base} with {slots} slots of {SLOT_SIZE} ids runs past the largest id"
            )));
        }
        for (file, text) in [("/etc/subuid", subuid), ("/etc/subgid", subgid)] {
            let ranges = parse_subid(text).map_err(|e| IdError::Config(format!("{file}: {e}")))?;
            for r in ranges {
                if r.start < end && u64::from(base) < r.start.saturating_add(r.count) {
                    return Err(IdError::Config(format!(
                        "ids {base}..{end} (--id-base {base}, {slots} slots) overlap {file} range \
                         {}:{}:{} of `{}`; choose a base outside every subordinate range",
                        r.owner, r.start, r.count, r.owner
                    )));
                }
            }
        }
        let slots = (0..slots)
            .map(|i| IdMap {
                host_base: base + i * SLOT_SIZE,
                size: SLOT_SIZE,
            })
            .collect();
        Ok(Self {
            slots,
            lock_dir: lock_dir.into(),
        })
    }

    /// For a runner running as user `name` (uid `uid`): the user's `/etc/subuid` range,
    /// which must start at the same id and be at least as long in `/etc/subgid`.
    pub fn for_user(
        name: &str,
        uid: u32,
        subuid: &str,
        subgid: &str,
        lock_dir: impl Into<PathBuf>,
    ) -> Result<Self, IdError> {
        let pick = |file: &str, text: &str| -> Result<SubIdRange, IdError> {
            parse_subid(text)
                .map_err(|e| IdError::Config(format!("{file}: {e}")))?
                .into_iter()
                .find(|r| r.owner == name || r.owner == uid.to_string())
                .ok_or_else(|| {
                    IdError::Config(format!(
                        "{file} has no range for user `{name}` (uid {uid}); add one, e.g. \
                         `usermod --add-subuids 2000000-2065535 --add-subgids 2000000-2065535 {name}`"
                    ))
                })
        };
        let u = pick("/etc/subuid", subuid)?;
        let g = pick("/etc/subgid", subgid)?;
        if u.start != g.start || g.count < u.count {
            return Err(IdError::Config(format!(
                "the /etc/subuid range {}:{} and /etc/subgid range {}:{} of `{name}` differ; \
                 give the user the same range in both",
                u.start, u.count, g.start, g.count
            )));
        }
        let size = u64::from(SLOT_SIZE).min(u.count);
        if size <= u64::from(STEP_UID) || u.start < u64::from(MIN_HOST_BASE) {
            return Err(IdError::Config(format!(
                "the /etc/subuid range {}:{} of `{name}` must start at {MIN_HOST_BASE} or above \
                 and hold more than {STEP_UID} ids",
                u.start, u.count
            )));
        }
        let count = u.count / size;
        let slots = (0..count)
            .filter_map(|i| {
                let host_base = u32::try_from(u.start + i * size).ok()?;
                let size = u32::try_from(size).ok()?;
                u32::try_from(u64::from(host_base) + u64::from(size)).ok()?;
                Some(IdMap { host_base, size })
            })
            .collect::<Vec<_>>();
        if slots.is_empty() {
            return Err(IdError::Config(format!(
                "the /etc/subuid range of `{name}` does not fit below the largest id"
            )));
        }
        Ok(Self {
            slots,
            lock_dir: lock_dir.into(),
        })
    }

    /// The ranges, one per slot.
    pub fn slots(&self) -> &[IdMap] {
        &self.slots
    }

    /// Takes a free slot (non-blocking).
    pub fn acquire(&self) -> Result<IdLease, IdError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.lock_dir)
            .map_err(|source| IdError::Io {
                path: self.lock_dir.clone(),
                source,
            })?;
        for (i, map) in self.slots.iter().enumerate() {
            let path = self.lock_dir.join(format!("slot-{}.lock", map.host_base));
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|source| IdError::Io {
                    path: path.clone(),
                    source,
                })?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => {
                    // A slot whose last job left a process behind (in another runner that
                    // died since) stays unused.
                    if let Some(pid) = process_in_range(*map) {
                        tracing::warn!(
                            slot = i,
                            pid,
                            "id range still has a live process; skipping it"
                        );
                        continue;
                    }
                    return Ok(IdLease {
                        map: *map,
                        lock: Some(lock),
                    });
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => continue,
                Err((_, e)) => {
                    return Err(IdError::Io {
                        path,
                        source: e.into(),
                    });
                }
            }
        }
        Err(IdError::Exhausted(
            u32::try_from(self.slots.len()).unwrap_or(u32::MAX),
        ))
    }
}

/// One job's id range, held until [`IdLease::release`].
#[derive(Debug)]
pub struct IdLease {
    map: IdMap,
    lock: Option<Flock<File>>,
}

impl IdLease {
    /// The job's mapping.
    pub fn id_map(&self) -> IdMap {
        self.map
    }

    /// Releases the range if no process runs with one of its ids; otherwise keeps it locked
    /// until the runner exits and returns the pid found.
    pub fn release(mut self) -> Result<(), i32> {
        if let Some(pid) = process_in_range(self.map) {
            self.quarantine();
            return Err(pid);
        }
        drop(self.lock.take());
        Ok(())
    }

    /// Keeps the range locked for as long as this process lives.
    pub fn quarantine(mut self) {
        if let Some(lock) = self.lock.take() {
            std::mem::forget(lock);
        }
    }
}

/// A pid of the machine whose real, effective, saved or fs uid lies in `map`, if any.
pub fn process_in_range(map: IdMap) -> Option<i32> {
    let lo = u64::from(map.host_base);
    let hi = lo + u64::from(map.size);
    let entries = std::fs::read_dir("/proc").ok()?;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let in_range = status
            .lines()
            .filter_map(|l| l.strip_prefix("Uid:").or_else(|| l.strip_prefix("Gid:")))
            .flat_map(str::split_whitespace)
            .filter_map(|n| n.parse::<u64>().ok())
            .any(|id| (lo..hi).contains(&id));
        if in_range {
            return Some(pid);
        }
    }
    None
}

/// The allocator for a runner with settings `cfg`, as root or as the current user.
pub fn allocator_for(cfg: &crate::config::RunnerConfig) -> Result<IdAllocator, IdError> {
    let subuid = read_subid_file(Path::new("/etc/subuid"))?;
    let subgid = read_subid_file(Path::new("/etc/subgid"))?;
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        let dir = cfg
            .id_lock_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(ROOT_LOCK_DIR));
        let (base, slots) = if crate::sandbox::is_userns_root() {
            let map =
                std::fs::read_to_string("/proc/self/uid_map").map_err(|source| IdError::Io {
                    path: PathBuf::from("/proc/self/uid_map"),
                    source,
                })?;
            slots_in_user_namespace(cfg.id_base, cfg.id_slots, &map)?
        } else {
            (cfg.id_base, cfg.id_slots)
        };
        IdAllocator::for_root(base, slots, &subuid, &subgid, dir)
    } else {
        let name = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| uid.to_string());
        let dir = cfg
            .id_lock_dir
            .clone()
            .unwrap_or_else(|| cfg.state_dir.join("id-slots"));
        IdAllocator::for_user(&name, uid.as_raw(), &subuid, &subgid, dir)
    }
}

/// The id base and slot count for a runner that is root of a nested user namespace
/// (`uid_map`: its `/proc/self/uid_map`): the configured ones when the slots lie inside the
/// namespace's mapped ids; with the default base, the slots after the namespace's own
/// 0..65535, as many of the configured ones as fit (at least one); otherwise an error that
/// says how many ids the namespace needs.
fn slots_in_user_namespace(base: u32, slots: u32, uid_map: &str) -> Result<(u32, u32), IdError> {
    let ranges = super::rootless::mapped_ranges(uid_map);
    let fits = |b: u32, n: u32| {
        let end = u64::from(b) + u64::from(n) * u64::from(SLOT_SIZE);
        ranges
            .iter()
            .any(|(start, count)| *start <= u64::from(b) && end <= start + count)
    };
    if fits(base, slots) {
        return Ok((base, slots));
    }
    if base == crate::config::DEFAULT_ID_BASE
        && let Some(n) = (1..=slots).rev().find(|n| fits(SLOT_SIZE, *n))
    {
        return Ok((SLOT_SIZE, n));
    }
    let mapped: u64 = ranges.iter().map(|(_, c)| c).sum();
    Err(IdError::Config(format!(
        "this runner is root of a user namespace that maps {mapped} ids, and --id-base {base} \
         with {slots} slots of {SLOT_SIZE} does not fit in them; give the namespace at least \
         {} ids (Kubernetes: kubelet userNamespaces.idsPerPod) and use --id-base 65536",
        u64::from(SLOT_SIZE) * (1 + u64::from(slots))
    )))
}

/// Reads a subordinate id file; a missing file is empty.
pub fn read_subid_file(path: &Path) -> Result<String, IdError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(IdError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pods_user_namespace_gets_slots_inside_its_mapped_ids() {
        let pod = "         0 3000000 196608\n";
        let default = crate::config::DEFAULT_ID_BASE;
        assert_eq!(
            slots_in_user_namespace(default, 2, pod).unwrap(),
            (65_536, 2)
        );
        assert_eq!(
            slots_in_user_namespace(default, 16, pod).unwrap(),
            (65_536, 2)
        );
        assert_eq!(
            slots_in_user_namespace(65_536, 2, pod).unwrap(),
            (65_536, 2)
        );
        let e = slots_in_user_namespace(65_536, 3, pod)
            .unwrap_err()
            .to_string();
        assert!(e.contains("262144 ids") && e.contains("idsPerPod"), "{e}");
        let e = slots_in_user_namespace(default, 1, "0 3000000 65536\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("maps 65536 ids"), "{e}");
    }

    #[test]
    fn root_slots_are_disjoint_and_spaced_by_65536() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = IdAllocator::for_root(1_000_000, 4, "", "", dir.path()).expect("alloc");
        let bases: Vec<u32> = a.slots().iter().map(|m| m.host_base).collect();
        assert_eq!(bases, [1_000_000, 1_065_536, 1_131_072, 1_196_608]);
        assert!(a.slots().iter().all(|m| m.size == SLOT_SIZE));
    }

    #[test]
    fn root_base_overlapping_a_subordinate_range_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let subuid = "# users\nalice:100000:65536\nbob:1100000:65536\n";
        let e = IdAllocator::for_root(1_000_000, 4, subuid, "", dir.path()).expect_err("overlap");
        assert!(e.to_string().contains("bob"), "{e}");
        let e = IdAllocator::for_root(1_000_000, 1, "", "carol:1065535:2", dir.path())
            .expect_err("overlap in subgid");
        assert!(e.to_string().contains("/etc/subgid"), "{e}");
        IdAllocator::for_root(1_000_000, 1, subuid, "carol:1065536:2", dir.path())
            .expect("adjacent ranges do not overlap");
        assert!(IdAllocator::for_root(1000, 1, "", "", dir.path()).is_err());
        assert!(IdAllocator::for_root(u32::MAX - 70_000, 2, "", "", dir.path()).is_err());
        assert!(IdAllocator::for_root(1_000_000, 1, "broken line", "", dir.path()).is_err());
    }

    #[test]
    fn user_slots_come_from_their_subuid_range() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = "root:100000:65536\nci:2000000:196608\n";
        let a = IdAllocator::for_user("ci", 1001, sub, sub, dir.path()).expect("alloc");
        let bases: Vec<u32> = a.slots().iter().map(|m| m.host_base).collect();
        assert_eq!(bases, [2_000_000, 2_065_536, 2_131_072]);
        let by_uid = IdAllocator::for_user(
            "x",
            1001,
            "1001:3000000:65536",
            "1001:3000000:65536",
            dir.path(),
        )
        .expect("numeric owner");
        assert_eq!(by_uid.slots().len(), 1);
        assert!(IdAllocator::for_user("nobody", 7, sub, sub, dir.path()).is_err());
        assert!(
            IdAllocator::for_user("ci", 1001, sub, "ci:3000000:196608", dir.path()).is_err(),
            "different subgid start"
        );
        assert!(
            IdAllocator::for_user("ci", 1001, "ci:2000000:500", "ci:2000000:500", dir.path())
                .is_err()
        );
    }

    #[test]
    fn a_held_slot_is_never_handed_out_twice_and_comes_back_after_release() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Far above anything a process on this machine runs as.
        let a = IdAllocator::for_root(3_000_000_000, 2, "", "", dir.path()).expect("alloc");
        let b = a.clone(); // another runner sharing the lock directory
        let first = a.acquire().expect("first");
        let second = b.acquire().expect("second");
        assert_ne!(first.id_map(), second.id_map());
        assert!(matches!(a.acquire(), Err(IdError::Exhausted(2))));
        let freed = first.id_map();
        first.release().expect("no process in the range");
        assert_eq!(b.acquire().expect("again").id_map(), freed);
    }

    #[test]
    fn a_range_with_a_live_process_is_found() {
        let uid = nix::unistd::getuid().as_raw();
        let base = uid.saturating_sub(10);
        assert!(
            process_in_range(IdMap {
                host_base: base,
                size: 20
            })
            .is_some()
        );
        assert_eq!(
            process_in_range(IdMap {
                host_base: 3_500_000_000,
                size: SLOT_SIZE
            }),
            None
        );
    }
}
