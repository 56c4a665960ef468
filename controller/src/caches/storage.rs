//! Where cache archives and their records live: the controller's own database and blob
//! store (so every replica and runner shares them), or a directory of their own
//! (`[caches] dir`, which `airlock run` points at its home so caches outlive each run).

use std::path::Path;

use airlock_attest::Sha256Digest;

use crate::blobs::store::{BlobError, BlobStore};
use crate::caches::CachePolicy;
use crate::config::CachesConfig;
use crate::store::{Store, StoreError};

/// Why cache storage could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum CacheStorageError {
    /// The cache database.
    #[error("the cache database: {0}")]
    Store(#[from] StoreError),
    /// The cache blob directory.
    #[error("the cache blob store: {0}")]
    Blob(#[from] BlobError),
}

/// The caches' records and archives, with the operator's policy and limits.
#[derive(Debug, Clone)]
pub struct CacheStorage {
    /// Where the `build_caches` rows are.
    pub store: Store,
    /// Where the archives are (capped at `max_archive_bytes` per upload).
    pub blobs: BlobStore,
    /// Whether `store` and `blobs` are the controller's own (then a blob may also be a
    /// source or an output, and is removed only when nothing names it).
    pub shared: bool,
    /// Who reads what.
    pub policy: CachePolicy,
    /// Largest archive a save may upload.
    pub max_archive_bytes: u64,
    /// Size cap of one scope.
    pub max_scope_bytes: u64,
}

impl CacheStorage {
    /// Opens cache storage as `config` says; `None` when caches are off.
    pub async fn open(
        config: &CachesConfig,
        main_store: &Store,
        main_blob_dir: &Path,
    ) -> Result<Option<Self>, CacheStorageError> {
        if !config.enabled {
            return Ok(None);
        }
        let (store, blob_dir, shared) = match &config.dir {
            Some(dir) => (
                Store::open(&dir.join("caches.db")).await?,
                dir.join("blobs"),
                false,
            ),
            None => (main_store.clone(), main_blob_dir.to_owned(), true),
        };
        Ok(Some(Self {
            store,
            blobs: BlobStore::open(&blob_dir, config.max_archive_bytes)?,
            shared,
            policy: config.policy(),
            max_archive_bytes: config.max_archive_bytes,
            max_scope_bytes: config.max_scope_bytes,
        }))
    }

    /// Deletes the archives `digests` that no cache (and, in shared storage, no job's
    /// source or output) names any more. A failure is logged: an orphaned blob costs disk,
    /// never correctness.
    pub async fn drop_archives(&self, digests: &[Sha256Digest]) {
        for digest in digests {
            match self.store.blob_in_use(digest, self.shared).await {
                Ok(true) => {}
                Ok(false) => {
                    if let Err(e) = self.blobs.remove(digest).await {
                        tracing::warn!(error = %e, archive = %digest, "could not delete a cache archive");
                    } else {
                        tracing::info!(archive = %digest, "cache archive deleted");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, archive = %digest, "could not check whether a cache archive is in use")
                }
            }
        }
    }
}
