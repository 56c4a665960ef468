//! The size cap of the rootfs cache: pins that keep a rootfs in place while a job uses it,
//! and least-recently-used eviction of rootfs trees no job holds.
//!
//! Layout under the cache root, next to `rootfs/`:
//! - `locks/<manifest hex>`: a job holds a shared `flock` for as long as its steps may run on
//!   the rootfs; eviction needs an exclusive one and skips what it cannot get at once;
//! - `sizes/<manifest hex>`: the tree's size in bytes, written once after unpacking; its
//!   mtime is the rootfs's last use.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use airlock_attest::Sha256Digest;
use nix::fcntl::{Flock, FlockArg};

use super::error::ImageError;

/// Keeps a cached rootfs from eviction while it lives.
#[derive(Debug)]
pub struct RootfsPin {
    _lock: Flock<File>,
}

fn lock(root: &Path, digest: &Sha256Digest, arg: FlockArg) -> Result<Flock<File>, ImageError> {
    lock_named(root, &digest.hex(), arg)
}

/// Locks `<root>/locks/<name>` (created, mode 0600, if missing) with `arg`.
fn lock_named(root: &Path, name: &str, arg: FlockArg) -> Result<Flock<File>, ImageError> {
    let dir = root.join("locks");
    fs::create_dir_all(&dir).map_err(|e| ImageError::io("creating directory", &dir, e))?;
    let path = dir.join(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| ImageError::io("opening lock file", &path, e))?;
    Flock::lock(file, arg)
        .map_err(|(_, errno)| ImageError::io("locking", &path, io::Error::from(errno)))
}

/// Serialises unpacking one manifest: concurrent jobs wanting the same image unpack it
/// once; the others wait, then find it cached. Released on drop.
pub(crate) fn unpack_lock(root: &Path, digest: &Sha256Digest) -> Result<Flock<File>, ImageError> {
    lock_named(root, &unpack_lock_name(digest), FlockArg::LockExclusive)
}

fn unpack_lock_name(digest: &Sha256Digest) -> String {
    format!("{}.unpack", digest.hex())
}

/// [`unpack_lock`] if nobody holds it now; `None` otherwise (or on any error).
pub(crate) fn try_unpack_lock(root: &Path, digest: &Sha256Digest) -> Option<Flock<File>> {
    let path = root.join("locks").join(unpack_lock_name(digest));
    let file = OpenOptions::new().read(true).open(path).ok()?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).ok()
}

/// A shared pin on the rootfs of `digest` (taken before it is looked up or unpacked).
pub(crate) fn pin(root: &Path, digest: &Sha256Digest) -> Result<RootfsPin, ImageError> {
    Ok(RootfsPin {
        _lock: lock(root, digest, FlockArg::LockShared)?,
    })
}

fn size_path(root: &Path, digest: &Sha256Digest) -> PathBuf {
    root.join("sizes").join(digest.hex())
}

/// Records the size of a freshly unpacked rootfs.
pub(crate) fn record_size(
    root: &Path,
    digest: &Sha256Digest,
    tree: &Path,
) -> Result<(), ImageError> {
    let dir = root.join("sizes");
    fs::create_dir_all(&dir).map_err(|e| ImageError::io("creating directory", &dir, e))?;
    let bytes = tree_size(tree);
    let path = size_path(root, digest);
    fs::write(&path, bytes.to_string()).map_err(|e| ImageError::io("writing", &path, e))
}

/// Marks the rootfs of `digest` as used now.
pub(crate) fn touch(root: &Path, digest: &Sha256Digest) {
    if let Ok(f) = File::options().write(true).open(size_path(root, digest)) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Sum of the sizes of the regular files below `dir` (symlinks are not followed).
fn tree_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}

/// Removes least recently used rootfs trees that no job pins until the recorded total is at
/// most `max_bytes`. Returns the bytes freed.
pub(crate) fn evict(root: &Path, max_bytes: u64) -> Result<u64, ImageError> {
    let dir = root.join("sizes");
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(0);
    };
    let mut trees = Vec::new();
    for entry in entries.flatten() {
        let Some(digest) = entry
            .file_name()
            .to_str()
            .and_then(|n| Sha256Digest::from_hex(n).ok())
        else {
            continue;
        };
        let bytes = fs::read_to_string(entry.path())
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let used = entry
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        trees.push((used, digest, bytes));
    }
    let mut total: u64 = trees.iter().map(|t| t.2).sum();
    trees.sort_by_key(|t| t.0);
    let mut freed = 0;
    for (_, digest, bytes) in trees {
        if total <= max_bytes {
            break;
        }
        let Ok(_exclusive) = lock(root, &digest, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        let tree = root.join("rootfs").join(digest.hex());
        // Out of sight first (one rename), then removed.
        let doomed = root.join("tmp").join(format!("{}.evicted", digest.hex()));
        match fs::rename(&tree, &doomed) {
            Ok(()) => {
                crate::tree::remove_tree(&doomed)
                    .map_err(|e| ImageError::io("evicting", &doomed, e))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(ImageError::io("evicting", &tree, e)),
        }
        let size = size_path(root, &digest);
        fs::remove_file(&size).map_err(|e| ImageError::io("removing", &size, e))?;
        total = total.saturating_sub(bytes);
        freed += bytes;
    }
    Ok(freed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path, name: &[u8], bytes: usize) -> Sha256Digest {
        let d = Sha256Digest::of(name);
        let dir = root.join("rootfs").join(d.hex());
        fs::create_dir_all(dir.join("usr")).unwrap();
        fs::write(dir.join("usr/blob"), vec![0u8; bytes]).unwrap();
        record_size(root, &d, &dir).unwrap();
        d
    }

    #[test]
    fn evicts_least_recently_used_unpinned_trees() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("tmp")).unwrap();
        let old = tree(root, b"old", 100);
        let used = tree(root, b"used", 100);
        let pinned = tree(root, b"pinned", 100);
        let past = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000);
        for d in [&old, &used, &pinned] {
            File::options()
                .write(true)
                .open(size_path(root, d))
                .unwrap()
                .set_modified(past)
                .unwrap();
        }
        touch(root, &used);
        let _pin = pin(root, &pinned).unwrap();
        assert_eq!(evict(root, 200).unwrap(), 100);
        assert!(
            !root.join("rootfs").join(old.hex()).exists(),
            "LRU goes first"
        );
        assert!(
            root.join("rootfs").join(pinned.hex()).exists(),
            "pinned stays"
        );
        // Still over the cap, but only the pinned and the recently used tree remain; the
        // recently used one goes next, the pinned one never.
        assert_eq!(evict(root, 50).unwrap(), 100);
        assert!(!root.join("rootfs").join(used.hex()).exists());
        assert!(root.join("rootfs").join(pinned.hex()).exists());
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    }
}
