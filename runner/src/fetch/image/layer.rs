//! Streaming one layer blob from the layout into a rootfs while hashing it.
//!
//! The blob is read once: bytes are hashed (blob digest) as they leave the file, hashed again
//! after decompression (diff id), and fed to the tar applier. Nothing is buffered beyond a
//! read buffer, so a layer never has to fit in memory. Because the digests are only known at
//! the end, the caller unpacks into a private directory and discards it on any error.

use std::io::{self, BufReader};
use std::path::Path;

use airlock_attest::Sha256Digest;
use flate2::read::MultiGzDecoder;
use tar::Archive;

use super::blob::{HashingReader, drain, open_blob};
use super::error::ImageError;
use super::manifest::{Compression, LayerSpec};
use super::unpack::{LayerApplier, UnpackStats};

/// Read buffer between the blob file and the hasher.
const READ_BUFFER_BYTES: usize = 1 << 20;

/// What streaming a layer produced, before anything is judged.
struct Streamed {
    /// Result of applying the tar entries.
    applied: Result<(), ImageError>,
    /// Result of reading the decompressed stream to its end (gzip errors show up here).
    decoded: io::Result<()>,
    /// Result of reading the blob file to its end.
    read: io::Result<()>,
    /// Digest and length of the blob bytes.
    blob: (Sha256Digest, u64),
    /// Digest of the uncompressed tar stream.
    diff_id: Sha256Digest,
}

/// Unpacks layer `index` (1-based) into `rootfs`, verifying the blob's size and digest and
/// the uncompressed stream's diff id. On error, `rootfs` holds partial content and must be
/// discarded.
pub(crate) fn unpack_layer(
    layout: &Path,
    rootfs: &Path,
    index: usize,
    spec: &LayerSpec,
) -> Result<UnpackStats, ImageError> {
    let what = format!("layer {index}");
    let (file, len) = open_blob(layout, &what, &spec.digest)?;
    if len != spec.size {
        return Err(ImageError::SizeMismatch {
            what,
            digest: spec.digest,
            expected: spec.size,
            actual: len,
        });
    }
    let blob = HashingReader::new(BufReader::with_capacity(READ_BUFFER_BYTES, file));
    let mut applier = LayerApplier::new(rootfs, index);

    let streamed = match spec.compression {
        Compression::None => {
            let mut archive = Archive::new(blob);
            let applied = applier.apply(&mut archive);
            let mut blob = archive.into_inner();
            let read = drain(&mut blob).map(drop);
            let (_, digest, bytes) = blob.finish();
            Streamed {
                applied,
                decoded: Ok(()),
                read,
                blob: (digest, bytes),
                diff_id: digest,
            }
        }
        Compression::Gzip => {
            let mut archive = Archive::new(HashingReader::new(MultiGzDecoder::new(blob)));
            let applied = applier.apply(&mut archive);
            let mut diff = archive.into_inner();
            let decoded = drain(&mut diff).map(drop);
            let (decoder, diff_id, _) = diff.finish();
            // Whatever the decoder did not consume (after an error, or trailing bytes) still
            // has to pass through the blob hasher.
            let mut blob = decoder.into_inner();
            let read = drain(&mut blob).map(drop);
            let (_, digest, bytes) = blob.finish();
            Streamed {
                applied,
                decoded,
                read,
                blob: (digest, bytes),
                diff_id,
            }
        }
    };
    judge(layout, index, spec, streamed)?;
    Ok(applier.stats())
}

/// Decides the outcome. A wrong blob digest or size wins over everything else: a corrupt
/// blob often also fails to parse, and "corrupt" is the accurate diagnosis.
fn judge(layout: &Path, index: usize, spec: &LayerSpec, s: Streamed) -> Result<(), ImageError> {
    let what = format!("layer {index}");
    s.read
        .map_err(|e| ImageError::io("reading", super::blob::blob_path(layout, &spec.digest), e))?;
    let (digest, bytes) = s.blob;
    if digest != spec.digest {
        return Err(ImageError::DigestMismatch {
            what,
            expected: spec.digest,
            actual: digest,
        });
    }
    if bytes != spec.size {
        return Err(ImageError::SizeMismatch {
            what,
            digest: spec.digest,
            expected: spec.size,
            actual: bytes,
        });
    }
    s.applied?;
    s.decoded.map_err(|source| ImageError::Archive {
        layer: index,
        source,
    })?;
    if s.diff_id != spec.diff_id {
        return Err(ImageError::DiffIdMismatch {
            layer: index,
            expected: spec.diff_id,
            actual: s.diff_id,
        });
    }
    Ok(())
}
