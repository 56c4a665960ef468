//! sha256 of files a traced step executes or reads, opened from outside the sandbox through
//! the process's own root (`/proc/<pid>/root`) with `openat2(RESOLVE_IN_ROOT)`: the build
//! controls every symlink on the way, and none may lead the supervisor to a host file.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;

use airlock_attest::Sha256Hasher;
use nix::unistd::Pid;
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};

/// Largest file hashed; bigger ones are listed without a digest.
pub const MAX_HASHED_BYTES: u64 = 256 << 20;

/// Digests already computed, by file identity and version: a header included a thousand
/// times is read once.
#[derive(Debug, Default)]
pub struct HashCache {
    known: HashMap<[i128; 5], Option<String>>,
}

impl HashCache {
    /// The sha256 (lowercase hex) of `path` as process `pid` sees it, or `None` when it is
    /// not a readable regular file of at most [`MAX_HASHED_BYTES`].
    pub fn digest(&mut self, pid: Pid, path: &str) -> Option<String> {
        let root = rustix::fs::open(
            format!("/proc/{pid}/root"),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let fd = open_in_root(&root, path)?;
        let stat = rustix::fs::fstat(&fd).ok()?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return None;
        }
        let size = u64::try_from(stat.st_size).ok()?;
        let key = [
            i128::from(stat.st_dev),
            i128::from(stat.st_ino),
            i128::from(stat.st_size),
            i128::from(stat.st_mtime),
            i128::from(stat.st_mtime_nsec),
        ];
        if let Some(known) = self.known.get(&key) {
            return known.clone();
        }
        let digest = (size <= MAX_HASHED_BYTES)
            .then(|| hash(File::from(fd)))
            .flatten();
        self.known.insert(key, digest.clone());
        digest
    }
}

fn open_in_root(root: &OwnedFd, path: &str) -> Option<OwnedFd> {
    let relative = path.trim_start_matches('/');
    let relative = if relative.is_empty() { "." } else { relative };
    rustix::fs::openat2(
        root,
        relative,
        // O_NONBLOCK: a FIFO must not block the supervisor (and with it every traced call).
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()
}

fn hash(mut file: File) -> Option<String> {
    let mut hasher = Sha256Hasher::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut total: u64 = 0;
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        total += n as u64;
        // The file grew past the cap while it was read: no digest rather than a wrong one.
        if total > MAX_HASHED_BYTES {
            return None;
        }
        hasher.update(&buf[..n]);
    }
    Some(hasher.finalize().hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_inside_the_processes_root_and_never_follows_symlinks_out() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"hello").unwrap();
        let mut cache = HashCache::default();
        let me = Pid::this();
        let path = file.to_str().unwrap();
        let expected = airlock_attest::Sha256Digest::of(b"hello").hex();
        assert_eq!(cache.digest(me, path).as_deref(), Some(expected.as_str()));
        assert_eq!(
            cache.digest(me, path).as_deref(),
            Some(expected.as_str()),
            "cached"
        );
        // A directory, a FIFO and a missing file have no digest (and do not block).
        assert_eq!(cache.digest(me, dir.path().to_str().unwrap()), None);
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(cache.digest(me, fifo.to_str().unwrap()), None);
        assert_eq!(cache.digest(me, "/nonexistent/x"), None);
    }
}
