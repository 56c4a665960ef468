//! Keeps the running issuer's key ring in step with its key directory, so that a rotation done
//! by another process (`airlock controller rotate-token-key`) reaches a running controller
//! without a restart.
//!
//! Every mint and JWKS request calls [`RingReloader::refresh`], which costs one `stat` of
//! `token-keys.json`. The file is only ever replaced by an atomic rename, so a changed inode,
//! size or mtime means a new, complete ring; only then is the directory loaded again.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex, RwLock};

use super::key_dir::{KeyDir, METADATA_FILE};
use super::keys::KeyRing;

/// Identifies one version of the metadata file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_s: i64,
    mtime_ns: i64,
}

/// Reloads a shared ring when its directory's metadata file is replaced.
pub struct RingReloader {
    key_dir: KeyDir,
    ring: Arc<RwLock<KeyRing>>,
    /// The metadata version the ring was last loaded from (or failed to load from).
    seen: Mutex<Option<Stamp>>,
}

impl RingReloader {
    /// A reloader for `ring`, which was just loaded from `key_dir`.
    pub fn new(key_dir: KeyDir, ring: Arc<RwLock<KeyRing>>) -> Self {
        let seen = stamp(&key_dir);
        Self {
            key_dir,
            ring,
            seen: Mutex::new(seen),
        }
    }

    /// Loads the directory again if its metadata file changed since the last look. A
    /// directory that fails to load is reported once per change and the keys loaded before
    /// stay in use (their own schedules still decide when they stop signing).
    pub fn refresh(&self) {
        let Some(now) = stamp(&self.key_dir) else {
            return;
        };
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if *seen == Some(now) {
            return;
        }
        *seen = Some(now);
        match self.key_dir.load() {
            Ok(ring) => {
                let kids: Vec<String> = ring.keys().iter().map(|k| k.kid().to_owned()).collect();
                *self.ring.write().unwrap_or_else(|e| e.into_inner()) = ring;
                tracing::info!(
                    token_keys = %self.key_dir.path().display(),
                    kids = %kids.join(","),
                    "token keys reloaded"
                );
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "cannot reload the token keys; keeping the keys loaded before"
                );
            }
        }
    }
}

/// The metadata file's identity now, or `None` if it cannot be read (then nothing changes).
fn stamp(key_dir: &KeyDir) -> Option<Stamp> {
    let meta = std::fs::metadata(key_dir.path().join(METADATA_FILE)).ok()?;
    Some(Stamp {
        dev: meta.dev(),
        ino: meta.ino(),
        len: meta.len(),
        mtime_s: meta.mtime(),
        mtime_ns: meta.mtime_nsec(),
    })
}

impl fmt::Debug for RingReloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingReloader")
            .field("key_dir", &self.key_dir.path())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn a_rotation_by_another_process_is_picked_up_and_a_broken_directory_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = KeyDir::new(
            tmp.path(),
            Duration::from_secs(3600),
            Duration::from_secs(300),
        );
        dir.create(at(1000)).unwrap();
        let ring = Arc::new(RwLock::new(dir.load().unwrap()));
        let reloader = RingReloader::new(dir.clone(), ring.clone());
        reloader.refresh();
        assert_eq!(ring.read().unwrap().keys().len(), 1, "unchanged: no reload");

        // "Another process": its own ring, rotated and saved.
        let mut other = dir.load().unwrap();
        let kid = dir.rotate(&mut other, at(2000)).unwrap();
        reloader.refresh();
        let kids: Vec<String> = ring
            .read()
            .unwrap()
            .published(at(2000))
            .map(|k| k.kid().to_owned())
            .collect();
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[1], kid);

        // A broken metadata file keeps the keys loaded before.
        let tmp_file = tmp.path().join("broken.json");
        std::fs::write(&tmp_file, b"{").unwrap();
        std::fs::rename(&tmp_file, tmp.path().join(METADATA_FILE)).unwrap();
        reloader.refresh();
        assert_eq!(ring.read().unwrap().keys().len(), 2);
    }
}
