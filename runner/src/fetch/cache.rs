//! The content-addressed blob cache shared by every job on a runner.
//!
//! Blobs (registry manifests, configs and layers, declared inputs, source archives) are keyed
//! only by the sha256 of their bytes, and a blob only gets its name after the bytes written
//! under a private temporary name hashed to exactly that digest. A job therefore can never
//! place content that another job reads: whatever it asks for, what lands under
//! `blobs/sha256/<hex>` is the content of `<hex>`.
//!
//! Layout under the cache root (an OCI image layout's `blobs/` directory, so a pulled image
//! is read by the same verified layout code as an `oci-layout:` image):
//! - `blobs/sha256/<hex>`: verified blobs, mode 0444, never written after the rename;
//! - `tmp/`: downloads in progress, removed on every error path;
//! - `locks/<hex>`: one lock file per digest.
//!
//! Single flight: fetching a digest holds an exclusive `flock` on its lock file, so
//! concurrent jobs (threads or processes) fetching the same digest download it once; the
//! others wait, then find it present. A [`BlobPin`] holds a shared lock while a job uses a
//! blob; eviction (least recently used first, down to the size cap) skips pinned blobs.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use airlock_attest::{Sha256Digest, Sha256Hasher};
use nix::fcntl::{Flock, FlockArg};

/// Why the cache could not deliver a blob.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A filesystem operation on the cache failed.
    #[error("blob cache: {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The fetched bytes do not hash to the digest they were requested by. Nothing was
    /// cached.
    #[error(
        "{what}: the fetched content hashes to sha256:{actual} ({bytes} bytes), not the pinned \
         sha256:{expected}; nothing was cached"
    )]
    DigestMismatch {
        /// What was fetched (e.g. "input `zlib`", "layer 2").
        what: String,
        /// The pinned digest.
        expected: Sha256Digest,
        /// The digest of what arrived.
        actual: Sha256Digest,
        /// How many bytes arrived.
        bytes: u64,
    },
    /// Fetching the bytes failed (network, HTTP status, size limit, ...).
    #[error("{what}: {message}")]
    Fetch {
        /// What was fetched.
        what: String,
        /// What went wrong (never contains credentials).
        message: String,
    },
}

impl CacheError {
    fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// True if the content itself was wrong (a build-input problem, not infrastructure).
    pub fn is_content_error(&self) -> bool {
        matches!(self, Self::DigestMismatch { .. })
    }
}

/// Whether a blob was already cached or had to be fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// It was in the cache; nothing was fetched.
    Hit,
    /// It was fetched and verified: this many bytes.
    Downloaded(u64),
}

/// A shared lock on a cached blob: eviction leaves it alone while this lives.
#[derive(Debug)]
pub struct BlobPin {
    _lock: Flock<File>,
}

/// The content-addressed blob cache. Cheap to clone; all state is on disk.
#[derive(Debug, Clone)]
pub struct BlobCache {
    root: PathBuf,
    max_bytes: u64,
}

/// Where writes go while a blob is fetched: a private temporary file and a hasher.
#[derive(Debug)]
pub struct BlobSink<'a> {
    file: &'a mut File,
    hasher: Sha256Hasher,
    bytes: u64,
}

impl Write for BlobSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl BlobSink<'_> {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.bytes
    }
}

impl BlobCache {
    /// A cache at `root` that evicts down to `max_bytes` after each insertion.
    pub fn new(root: impl Into<PathBuf>, max_bytes: u64) -> Self {
        Self {
            root: root.into(),
            max_bytes,
        }
    }

    /// The cache root; `root()/blobs/sha256/<hex>` is a blob, as in an OCI image layout.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with `digest` lives once cached.
    pub fn path(&self, digest: &Sha256Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }

    /// Gives a job the cached blob `digest` at `dest`: a hard link (a copy, mode 0444,
    /// across file systems), so eviction can never pull it out from under the job.
    pub fn link_to(&self, digest: &Sha256Digest, dest: &Path) -> io::Result<()> {
        let src = self.path(digest);
        match fs::hard_link(&src, dest) {
            Err(e) if e.raw_os_error() == Some(nix::libc::EXDEV) => {
                fs::copy(&src, dest)?;
                fs::set_permissions(dest, fs::Permissions::from_mode(0o444))
            }
            other => other,
        }
    }

    /// True if a blob with `digest` is cached.
    pub fn contains(&self, digest: &Sha256Digest) -> bool {
        fs::symlink_metadata(self.path(digest)).is_ok_and(|m| m.is_file())
    }

    fn ensure_dirs(&self) -> Result<(), CacheError> {
        for dir in [
            self.root.clone(),
            self.root.join("blobs"),
            self.root.join("blobs").join("sha256"),
            self.root.join("tmp"),
            self.root.join("locks"),
        ] {
            match fs::create_dir(&dir) {
                Ok(()) => fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                    .map_err(|e| CacheError::io("setting permissions of", &dir, e))?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(CacheError::io("creating", &dir, e)),
            }
        }
        Ok(())
    }

    fn lock_file(&self, digest: &Sha256Digest) -> Result<File, CacheError> {
        let path = self.root.join("locks").join(digest.hex());
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| CacheError::io("opening lock file", &path, e))
    }

    fn lock(&self, digest: &Sha256Digest, arg: FlockArg) -> Result<Flock<File>, CacheError> {
        let file = self.lock_file(digest)?;
        Flock::lock(file, arg).map_err(|(_, errno)| {
            CacheError::io(
                "locking",
                self.root.join("locks").join(digest.hex()),
                io::Error::from(errno),
            )
        })
    }

    /// Pins a cached blob (shared lock) so eviction leaves it alone; `None` if not cached.
    pub fn pin(&self, digest: &Sha256Digest) -> Result<Option<BlobPin>, CacheError> {
        self.ensure_dirs()?;
        let lock = self.lock(digest, FlockArg::LockShared)?;
        if !self.contains(digest) {
            return Ok(None);
        }
        touch(&self.path(digest));
        Ok(Some(BlobPin { _lock: lock }))
    }

    /// Returns the blob `digest`, fetching it with `fill` if it is not cached.
    ///
    /// `fill` writes the blob's bytes into the sink; they are hashed as they are written and
    /// only renamed into the cache if they hash to `digest`. Concurrent calls for the same
    /// digest (in this or another process) run `fill` once. The returned pin keeps the blob
    /// from eviction until dropped.
    pub fn get_or_fetch(
        &self,
        digest: &Sha256Digest,
        what: &str,
        fill: &mut dyn FnMut(&mut BlobSink<'_>) -> Result<(), CacheError>,
    ) -> Result<(Fetched, BlobPin), CacheError> {
        self.ensure_dirs()?;
        let final_path = self.path(digest);
        // Fast path: already cached. A shared lock, so jobs pinning it do not block us.
        let shared = self.lock(digest, FlockArg::LockShared)?;
        if self.contains(digest) {
            touch(&final_path);
            return Ok((Fetched::Hit, BlobPin { _lock: shared }));
        }
        drop(shared);
        // Slow path: one fetcher per digest; the others wait here, then find it cached.
        let lock = self.lock(digest, FlockArg::LockExclusive)?;
        let outcome = if self.contains(digest) {
            touch(&final_path);
            Fetched::Hit
        } else {
            let bytes = self.fetch_locked(digest, what, &final_path, fill)?;
            Fetched::Downloaded(bytes)
        };
        lock.relock(FlockArg::LockShared).map_err(|errno| {
            CacheError::io("downgrading lock on", &final_path, io::Error::from(errno))
        })?;
        if matches!(outcome, Fetched::Downloaded(_)) {
            self.evict()?;
        }
        Ok((outcome, BlobPin { _lock: lock }))
    }

    fn fetch_locked(
        &self,
        digest: &Sha256Digest,
        what: &str,
        final_path: &Path,
        fill: &mut dyn FnMut(&mut BlobSink<'_>) -> Result<(), CacheError>,
    ) -> Result<u64, CacheError> {
        let tmp_dir = self.root.join("tmp");
        // Removed on drop: every error path below leaves nothing behind.
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!("{}.", digest.hex()))
            .tempfile_in(&tmp_dir)
            .map_err(|e| CacheError::io("creating a file in", &tmp_dir, e))?;
        let (actual, bytes) = {
            let mut sink = BlobSink {
                file: tmp.as_file_mut(),
                hasher: Sha256Hasher::new(),
                bytes: 0,
            };
            fill(&mut sink)?;
            (sink.hasher.finalize(), sink.bytes)
        };
        if actual != *digest {
            return Err(CacheError::DigestMismatch {
                what: what.to_owned(),
                expected: *digest,
                actual,
                bytes,
            });
        }
        let file = tmp.as_file();
        file.sync_all()
            .map_err(|e| CacheError::io("syncing", tmp.path(), e))?;
        file.set_permissions(fs::Permissions::from_mode(0o444))
            .map_err(|e| CacheError::io("setting permissions of", tmp.path(), e))?;
        tmp.persist(final_path)
            .map_err(|e| CacheError::io("moving into place", final_path, e.error))?;
        Ok(bytes)
    }

    /// Total size of the cached blobs.
    pub fn size(&self) -> Result<u64, CacheError> {
        Ok(self.entries()?.iter().map(|e| e.1).sum())
    }

    fn entries(&self) -> Result<Vec<(PathBuf, u64, SystemTime)>, CacheError> {
        let dir = self.root.join("blobs").join("sha256");
        let read = match fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(CacheError::io("listing", &dir, e)),
        };
        let mut out = Vec::new();
        for entry in read {
            let entry = entry.map_err(|e| CacheError::io("listing", &dir, e))?;
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_file() {
                let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                out.push((entry.path(), meta.len(), used));
            }
        }
        Ok(out)
    }

    /// Removes the partial downloads in `tmp/` that nobody is writing any more (their
    /// writer died: a download holds its digest's exclusive lock until the rename). Returns
    /// how many were removed. Finished blobs are never touched.
    pub fn reap_partial(&self) -> usize {
        super::partial::reap(&self.root.join("tmp"), |digest| {
            self.lock(digest, FlockArg::LockExclusiveNonblock).ok()
        })
    }

    /// Removes least recently used blobs that no job has pinned until the cache fits its cap.
    pub fn evict(&self) -> Result<u64, CacheError> {
        let mut entries = self.entries()?;
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        if total <= self.max_bytes {
            return Ok(0);
        }
        entries.sort_by_key(|e| e.2);
        let mut freed = 0;
        for (path, len, _) in entries {
            if total <= self.max_bytes {
                break;
            }
            let Some(digest) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| Sha256Digest::from_hex(n).ok())
            else {
                continue;
            };
            // Pinned or being fetched: leave it.
            let Ok(lock) = self.lock(&digest, FlockArg::LockExclusiveNonblock) else {
                continue;
            };
            match fs::remove_file(&path) {
                Ok(()) => {
                    total = total.saturating_sub(len);
                    freed += len;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(CacheError::io("evicting", &path, e)),
            }
            drop(lock);
        }
        Ok(freed)
    }
}

/// Marks a blob as used now (for LRU eviction); best effort.
fn touch(path: &Path) {
    if let Ok(f) = File::open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(cache: &BlobCache, data: &[u8]) -> Result<(Fetched, BlobPin), CacheError> {
        let digest = Sha256Digest::of(data);
        cache.get_or_fetch(&digest, "test blob", &mut |sink| {
            sink.write_all(data).map_err(|e| CacheError::Fetch {
                what: "test".into(),
                message: e.to_string(),
            })
        })
    }

    #[test]
    fn stores_verified_and_refuses_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path(), 1 << 20);
        let (f, _pin) = put(&cache, b"hello").unwrap();
        assert_eq!(f, Fetched::Downloaded(5));
        let (f, _pin) = put(&cache, b"hello").unwrap();
        assert_eq!(f, Fetched::Hit);

        let wrong = Sha256Digest::of(b"expected");
        let err = cache
            .get_or_fetch(&wrong, "input `x`", &mut |sink| {
                sink.write_all(b"tampered").map_err(|e| CacheError::Fetch {
                    what: "x".into(),
                    message: e.to_string(),
                })
            })
            .unwrap_err();
        assert!(err.is_content_error(), "{err}");
        assert!(!cache.contains(&wrong));
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn evicts_unpinned_lru_down_to_cap() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path(), 10);
        let (_, pin_a) = put(&cache, b"aaaaaa").unwrap();
        let (_, pin_b) = put(&cache, b"bbbbbb").unwrap();
        // Both pinned: over the cap, but nothing can go.
        assert!(cache.contains(&Sha256Digest::of(b"aaaaaa")));
        drop(pin_a);
        drop(pin_b);
        let (_, _pin_c) = put(&cache, b"cccccc").unwrap();
        assert!(cache.size().unwrap() <= 10);
        assert!(cache.contains(&Sha256Digest::of(b"cccccc")));
    }
}
