//! Content-addressed blob store on the local file system: `<root>/sha256/<2 hex>/<64 hex>`.
//!
//! Writes stream into a temporary file under `<root>/tmp` (same file system, so the final rename
//! is atomic) while hashing, are synced, and are renamed into place only once complete. A blob
//! that already exists makes a write a no-op. Readers therefore never see partial blobs.

use std::io;
use std::path::{Path, PathBuf};

use airlock_attest::{Sha256Digest, Sha256Hasher};
use tempfile::TempPath;
use tokio::io::AsyncWriteExt;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// A file system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// An upload went past the size cap.
    #[error("the upload exceeds the controller's limit of {limit} bytes (max_upload_bytes)")]
    TooLarge {
        /// The cap, in bytes.
        limit: u64,
    },
    /// No blob has this digest.
    #[error("no blob with sha256 {digest}")]
    NotFound {
        /// The digest asked for.
        digest: Sha256Digest,
    },
}

/// Temporary upload files older than this are leftovers of a crashed upload.
pub const STALE_UPLOAD: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

fn remove_stale_uploads(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_UPLOAD);
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The blob store rooted at one directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    max_upload: u64,
}

impl BlobStore {
    /// Opens (creating if needed) the store at `root`, capping each upload at `max_upload`
    /// bytes. Temporary files of interrupted uploads older than [`STALE_UPLOAD`] are removed;
    /// younger ones may belong to another controller replica sharing the directory (every
    /// write is a unique temporary file renamed atomically into place, so replicas can share
    /// one blob directory, e.g. on a network file system).
    pub fn open(root: &Path, max_upload: u64) -> Result<Self, BlobError> {
        let tmp = root.join("tmp");
        for dir in [root.join("sha256"), tmp.clone()] {
            std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        remove_stale_uploads(&tmp);
        Ok(Self {
            root: root.to_owned(),
            max_upload,
        })
    }

    /// The file a blob lives in (whether or not it exists).
    pub fn path_of(&self, digest: &Sha256Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join("sha256").join(&hex[..2]).join(hex)
    }

    /// True when the blob exists.
    pub async fn contains(&self, digest: &Sha256Digest) -> bool {
        tokio::fs::try_exists(self.path_of(digest))
            .await
            .unwrap_or(false)
    }

    /// Starts a new upload.
    pub async fn writer(&self) -> Result<BlobWriter, BlobError> {
        let tmp = self.root.join("tmp");
        let named = tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(&tmp)
            .map_err(io_err(&tmp))?;
        let (file, path) = named.into_parts();
        Ok(BlobWriter {
            file: tokio::fs::File::from_std(file),
            temp: path,
            hasher: Sha256Hasher::new(),
            size: 0,
            limit: self.max_upload,
            store: self.clone(),
        })
    }

    /// Deletes a blob; one that is already gone is not an error. The caller makes sure
    /// nothing names it any more (cache archives replaced or evicted).
    pub async fn remove(&self, digest: &Sha256Digest) -> Result<(), BlobError> {
        let path = self.path_of(digest);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(BlobError::Io { path, source }),
        }
    }

    /// Opens a blob for reading.
    pub async fn open_read(&self, digest: &Sha256Digest) -> Result<tokio::fs::File, BlobError> {
        let path = self.path_of(digest);
        match tokio::fs::File::open(&path).await {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(BlobError::NotFound { digest: *digest })
            }
            Err(source) => Err(BlobError::Io { path, source }),
        }
    }
}

/// An upload in progress. Dropping it without [`BlobWriter::commit`] deletes the partial file.
#[derive(Debug)]
pub struct BlobWriter {
    file: tokio::fs::File,
    temp: TempPath,
    hasher: Sha256Hasher,
    size: u64,
    limit: u64,
    store: BlobStore,
}

impl BlobWriter {
    /// Appends `data`; fails once the upload passes the size cap.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), BlobError> {
        let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        self.size = self.size.saturating_add(len);
        if self.size > self.limit {
            return Err(BlobError::TooLarge { limit: self.limit });
        }
        self.hasher.update(data);
        self.file.write_all(data).await.map_err(io_err(&self.temp))
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Finishes writing: syncs the file and computes the digest. The blob is not in place
    /// until [`FinishedBlob::commit`]; dropping the result discards it.
    pub async fn finish(mut self) -> Result<FinishedBlob, BlobError> {
        self.file.flush().await.map_err(io_err(&self.temp))?;
        self.file.sync_all().await.map_err(io_err(&self.temp))?;
        Ok(FinishedBlob {
            digest: self.hasher.finalize(),
            size: self.size,
            temp: self.temp,
            store: self.store,
        })
    }

    /// [`BlobWriter::finish`] then [`FinishedBlob::commit`].
    pub async fn commit(self) -> Result<(Sha256Digest, u64), BlobError> {
        self.finish().await?.commit().await
    }
}

/// A completely written, hashed upload that is not yet in the store.
#[derive(Debug)]
pub struct FinishedBlob {
    digest: Sha256Digest,
    size: u64,
    temp: TempPath,
    store: BlobStore,
}

impl FinishedBlob {
    /// The sha256 of the bytes written.
    pub fn digest(&self) -> &Sha256Digest {
        &self.digest
    }

    /// The number of bytes written.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Moves the file to its content address, unless a blob with that digest already exists
    /// (then this is a no-op). Returns the digest and size.
    pub async fn commit(self) -> Result<(Sha256Digest, u64), BlobError> {
        let Self {
            digest,
            size,
            temp,
            store,
        } = self;
        let dest = store.path_of(&digest);
        if tokio::fs::try_exists(&dest).await.unwrap_or(false) {
            // Same bytes already stored; the temporary file is removed on drop.
            return Ok((digest, size));
        }
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(io_err(parent))?;
        }
        let target = dest.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| temp.persist(&target)))
            .await
            .map_err(|e| BlobError::Io {
                path: dest.clone(),
                source: io::Error::other(e),
            })?
            .map_err(|e| BlobError::Io {
                path: dest.clone(),
                source: e.error,
            })?;
        Ok((digest, size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn write_dedup_read_and_cap() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path(), 10).unwrap();
        let mut w = store.writer().await.unwrap();
        w.write(b"hello").await.unwrap();
        let (d, n) = w.commit().await.unwrap();
        assert_eq!(d, Sha256Digest::of(b"hello"));
        assert_eq!(n, 5);
        let path = store.path_of(&d);
        assert!(path.ends_with(format!("sha256/{}/{}", &d.hex()[..2], d.hex())));
        assert!(store.contains(&d).await);

        let mut again = store.writer().await.unwrap();
        again.write(b"hel").await.unwrap();
        again.write(b"lo").await.unwrap();
        assert_eq!(again.commit().await.unwrap().0, d);

        let mut s = String::new();
        store
            .open_read(&d)
            .await
            .unwrap()
            .read_to_string(&mut s)
            .await
            .unwrap();
        assert_eq!(s, "hello");

        let mut big = store.writer().await.unwrap();
        big.write(b"0123456789").await.unwrap();
        let err = big.write(b"x").await.unwrap_err();
        assert!(matches!(err, BlobError::TooLarge { limit: 10 }));
        drop(big);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );

        let missing = Sha256Digest::of(b"nope");
        assert!(matches!(
            store.open_read(&missing).await,
            Err(BlobError::NotFound { .. })
        ));
    }
}
