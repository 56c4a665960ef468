//! The base image of an image output: read from a verified layout (an `oci-layout:` base,
//! or the runner's blob cache after a registry pull) and copied blob by blob, each hashed
//! again on the way, into the new image's layout.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use airlock_attest::Sha256Digest;

use super::ImageOutputError;
use super::document::{BaseDocs, LayerRef, oci_layer_type};
use crate::fetch::image::blob::{HashingReader, open_blob};
use crate::fetch::image::manifest::{self, Compression};
use crate::fetch::image::registry::PulledImage;

/// A base image ready to be extended: its layout, its platform manifest, and what keeps its
/// blobs from eviction until the image is packaged.
#[derive(Debug)]
pub struct BaseSource {
    layout: PathBuf,
    manifest: Sha256Digest,
    name: String,
    _pulled: Option<PulledImage>,
}

impl BaseSource {
    /// A base read from `layout` by its manifest digest; `name` is the reference the job
    /// named (recorded as `org.opencontainers.image.base.name`). Checks the manifest and
    /// config now, so a bad base fails the job before any step runs.
    pub fn new(
        layout: PathBuf,
        manifest: Sha256Digest,
        name: String,
        pulled: Option<PulledImage>,
    ) -> Result<Self, ImageOutputError> {
        manifest::load(&layout, &manifest).map_err(|e| ImageOutputError::Base(e.to_string()))?;
        Ok(Self {
            layout,
            manifest,
            name,
            _pulled: pulled,
        })
    }

    /// Copies every layer blob into `blobs` (verified) and returns the base's documents.
    pub(crate) fn copy_into(&self, blobs: &Path) -> Result<BaseDocs, ImageOutputError> {
        let spec = manifest::load(&self.layout, &self.manifest)
            .map_err(|e| ImageOutputError::Base(e.to_string()))?;
        let mut layers = Vec::new();
        for (i, l) in spec.layers.iter().enumerate() {
            let what = format!("layer {}", i + 1);
            copy_verified(&self.layout, &what, &l.digest, &blobs.join(l.digest.hex()))?;
            layers.push(LayerRef {
                digest: l.digest,
                size: l.size,
                media_type: oci_layer_type(l.compression == Compression::Gzip).to_owned(),
                diff_id: l.diff_id,
            });
        }
        Ok(BaseDocs {
            config: spec.config,
            layers,
            name: self.name.clone(),
            manifest: self.manifest,
        })
    }
}

fn copy_verified(
    layout: &Path,
    what: &str,
    digest: &Sha256Digest,
    dest: &Path,
) -> Result<(), ImageOutputError> {
    let base = |e: crate::fetch::image::ImageError| ImageOutputError::Base(e.to_string());
    let (file, _) = open_blob(layout, what, digest).map_err(base)?;
    let mut reader = HashingReader::new(file);
    let mut out: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(dest)
        .map_err(|e| ImageOutputError::io("creating", dest, e))?;
    io::copy(&mut reader, &mut out).map_err(|e| ImageOutputError::io("copying", dest, e))?;
    let (_, actual, _) = reader.finish();
    if actual != *digest {
        let _ = std::fs::remove_file(dest);
        return Err(ImageOutputError::Base(format!(
            "{what} sha256:{digest} changed on disk (its bytes hash to sha256:{actual})"
        )));
    }
    Ok(())
}
