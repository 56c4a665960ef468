//! The rootfs cache: one unpacked, verified rootfs per manifest digest.
//!
//! Layout under the cache root:
//! - `rootfs/<manifest hex>/`: finished rootfs trees, never modified once renamed into place;
//! - `tmp/<manifest hex>.<random>/`: work in progress, private to one call, removed on error.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use airlock_attest::Sha256Digest;
use nix::errno::Errno;
use nix::fcntl::{RenameFlags, renameat2};

use super::error::ImageError;
use super::eviction::{self, RootfsPin};
use super::layer::unpack_layer;
use super::manifest::{self, ImageSpec};
use super::prepared::PreparedImage;
use super::progress::ImageProgress;
use super::rootfs;

/// Verifies OCI image layouts and keeps their unpacked root filesystems, keyed by manifest
/// digest, under one directory (e.g. `<state>/images`).
#[derive(Debug, Clone)]
pub struct ImageCache {
    root: PathBuf,
    max_bytes: u64,
}

impl ImageCache {
    /// A cache rooted at `root`; directories are created on first use.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            max_bytes: u64::MAX,
        }
    }

    /// Caps the total size of the cached rootfs trees: after each unpack, the least
    /// recently used trees no job pins are evicted until the total fits.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// [`ImageCache::prepare_from_layout`], returning a pin that keeps the rootfs from
    /// eviction for as long as the caller holds it (a job: until its last step ended).
    pub fn prepare_pinned_from_layout(
        &self,
        layout_dir: &Path,
        manifest_digest: &Sha256Digest,
        progress: &mut dyn FnMut(ImageProgress),
    ) -> Result<(PreparedImage, RootfsPin), ImageError> {
        let pin = eviction::pin(&self.root, manifest_digest)?;
        let unpacking = eviction::unpack_lock(&self.root, manifest_digest)?;
        let prepared = self.prepare_from_layout(layout_dir, manifest_digest, progress)?;
        drop(unpacking);
        eviction::touch(&self.root, manifest_digest);
        if self.max_bytes != u64::MAX {
            eviction::evict(&self.root, self.max_bytes)?;
        }
        Ok((prepared, pin))
    }

    /// Removes the unpacks in progress under `tmp/` whose writer died (an unpack holds the
    /// manifest's unpack lock until its rename). Returns how many were removed.
    pub fn reap_partial(&self) -> usize {
        crate::fetch::partial::reap(&self.root.join("tmp"), |digest| {
            eviction::try_unpack_lock(&self.root, digest)
        })
    }

    /// The cache's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the rootfs for `manifest_digest` lives once prepared.
    pub fn rootfs_path(&self, manifest_digest: &Sha256Digest) -> PathBuf {
        self.root.join("rootfs").join(manifest_digest.hex())
    }

    /// Verify and unpack the image whose *manifest* digest is given, from an OCI image layout
    /// dir.
    ///
    /// The manifest is read from `blobs/sha256/<hex>` by this digest (never via `index.json`)
    /// and hashed before it is parsed; the config and every layer are hashed too, layers while
    /// they stream into a private directory. Only a fully verified rootfs is renamed into the
    /// cache. On a cache hit the manifest and config are still re-read and verified (they are
    /// small) to fill in the result, and [`ImageProgress::Cached`] is reported.
    pub fn prepare_from_layout(
        &self,
        layout_dir: &Path,
        manifest_digest: &Sha256Digest,
        progress: &mut dyn FnMut(ImageProgress),
    ) -> Result<PreparedImage, ImageError> {
        let spec = manifest::load(layout_dir, manifest_digest)?;
        let final_dir = self.rootfs_path(manifest_digest);
        if is_real_dir(&final_dir)? {
            // A tree prepared by an older runner may lack a newer mount point (`/deps`).
            rootfs::ensure_mount_points(&final_dir)?;
            progress(ImageProgress::Cached);
            return Ok(prepared(final_dir, manifest_digest, spec));
        }

        let rootfs_parent = self.root.join("rootfs");
        let tmp_parent = self.root.join("tmp");
        for dir in [&rootfs_parent, &tmp_parent] {
            fs::create_dir_all(dir).map_err(|e| ImageError::io("creating directory", dir, e))?;
        }
        // Removed on drop, i.e. on every error path below.
        let staging = tempfile::Builder::new()
            .prefix(&format!("{}.", manifest_digest.hex()))
            .tempdir_in(&tmp_parent)
            .map_err(|e| ImageError::io("creating a directory in", &tmp_parent, e))?;

        let of = spec.layers.len();
        for (i, layer) in spec.layers.iter().enumerate() {
            progress(ImageProgress::Verifying {
                blob: layer.digest,
                bytes: layer.size,
            });
            progress(ImageProgress::Unpacking { layer: i + 1, of });
            unpack_layer(layout_dir, staging.path(), i + 1, layer)?;
        }
        rootfs::finish(staging.path())?;
        eviction::record_size(&self.root, manifest_digest, staging.path())?;

        let staged = staging.keep();
        match renameat2(
            None,
            &staged,
            None,
            &final_dir,
            RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => {}
            // Another job prepared the same image first; its tree is identical by construction.
            Err(Errno::EEXIST | Errno::ENOTEMPTY) => {
                remove_tree(&staged)?;
                if !is_real_dir(&final_dir)? {
                    return Err(ImageError::io(
                        "using cached rootfs",
                        &final_dir,
                        io::Error::other("exists but is not a directory; remove it"),
                    ));
                }
            }
            Err(errno) => {
                let _ = remove_tree(&staged);
                return Err(ImageError::io(
                    "moving the unpacked rootfs into place at",
                    &final_dir,
                    io::Error::from(errno),
                ));
            }
        }
        Ok(prepared(final_dir, manifest_digest, spec))
    }
}

/// The public result for a rootfs at `rootfs` built from `spec`.
fn prepared(rootfs: PathBuf, manifest_digest: &Sha256Digest, spec: ImageSpec) -> PreparedImage {
    PreparedImage {
        rootfs,
        manifest_digest: *manifest_digest,
        layers: spec.layers.iter().map(|l| l.digest).collect(),
        env: spec.env,
        working_dir: spec.working_dir,
    }
}

/// True if `path` is a directory (not a symlink to one).
fn is_real_dir(path: &Path) -> Result<bool, ImageError> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Ok(meta.file_type().is_dir()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(ImageError::io("inspecting", path, e)),
    }
}

/// Removes a staged rootfs tree that will not be used.
fn remove_tree(path: &Path) -> Result<(), ImageError> {
    crate::tree::remove_tree(path).map_err(|e| ImageError::io("removing", path, e))
}
