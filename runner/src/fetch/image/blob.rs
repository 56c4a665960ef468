//! Content-addressed blobs in an OCI image layout: paths, digest parsing, verified reads.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use airlock_attest::{Sha256Digest, Sha256Hasher};
use nix::fcntl::OFlag;
use oci_spec::image::{Descriptor, DigestAlgorithm};

use super::error::ImageError;

/// Largest manifest or image config accepted; real ones are a few KiB.
pub(crate) const MAX_JSON_BLOB_BYTES: u64 = 4 << 20;

/// `<layout>/blobs/sha256/<64 lowercase hex>`. The hex comes from a parsed digest, so it can
/// never contain a path separator or `..`.
pub(crate) fn blob_path(layout: &Path, digest: &Sha256Digest) -> PathBuf {
    layout.join("blobs").join("sha256").join(digest.hex())
}

/// The sha256 digest of a descriptor; anything but `sha256:<64 lowercase hex>` is refused.
pub(crate) fn descriptor_digest(what: &str, desc: &Descriptor) -> Result<Sha256Digest, ImageError> {
    let invalid = || ImageError::InvalidDigest {
        what: what.to_owned(),
        value: desc.digest().to_string(),
    };
    if *desc.digest().algorithm() != DigestAlgorithm::Sha256 {
        return Err(invalid());
    }
    Sha256Digest::from_hex(desc.digest().digest()).map_err(|_| invalid())
}

/// Opens a blob for reading and returns it with its size. Refuses anything but a regular
/// file; `O_NONBLOCK` keeps a FIFO planted in the layout from blocking the open.
pub(crate) fn open_blob(
    layout: &Path,
    what: &str,
    digest: &Sha256Digest,
) -> Result<(File, u64), ImageError> {
    let path = blob_path(layout, digest);
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(&path)
        .map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ImageError::BlobMissing {
                    what: what.to_owned(),
                    digest: *digest,
                    path: path.clone(),
                }
            } else {
                ImageError::io("opening", &path, e)
            }
        })?;
    let meta = file
        .metadata()
        .map_err(|e| ImageError::io("inspecting", &path, e))?;
    if !meta.is_file() {
        return Err(ImageError::NotARegularFile { path });
    }
    Ok((file, meta.len()))
}

/// Reads a small JSON blob (manifest or config) whole and checks its digest and, when the
/// referring descriptor gives one, its size, before anyone parses it.
pub(crate) fn read_verified_small_blob(
    layout: &Path,
    what: &str,
    digest: &Sha256Digest,
    expected_size: Option<u64>,
) -> Result<Vec<u8>, ImageError> {
    let (file, len) = open_blob(layout, what, digest)?;
    let too_large = || ImageError::TooLarge {
        what: what.to_owned(),
        digest: *digest,
        limit: MAX_JSON_BLOB_BYTES,
    };
    if len > MAX_JSON_BLOB_BYTES {
        return Err(too_large());
    }
    let mut data = Vec::new();
    file.take(MAX_JSON_BLOB_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(|e| ImageError::io("reading", blob_path(layout, digest), e))?;
    let actual_len = data.len() as u64;
    if actual_len > MAX_JSON_BLOB_BYTES {
        return Err(too_large());
    }
    let actual = Sha256Digest::of(&data);
    if actual != *digest {
        return Err(ImageError::DigestMismatch {
            what: what.to_owned(),
            expected: *digest,
            actual,
        });
    }
    if let Some(expected) = expected_size
        && expected != actual_len
    {
        return Err(ImageError::SizeMismatch {
            what: what.to_owned(),
            digest: *digest,
            expected,
            actual: actual_len,
        });
    }
    Ok(data)
}

/// A reader that hashes and counts everything read through it.
#[derive(Debug)]
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256Hasher,
    bytes: u64,
}

impl<R> HashingReader<R> {
    /// Wraps `inner`; nothing has been hashed yet.
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256Hasher::new(),
            bytes: 0,
        }
    }

    /// Splits into the inner reader, the digest of everything read so far, and its length.
    pub(crate) fn finish(self) -> (R, Sha256Digest, u64) {
        (self.inner, self.hasher.finalize(), self.bytes)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Reads `reader` to its end, discarding the data (it still passes through any hashers).
pub(crate) fn drain(reader: &mut impl Read) -> io::Result<u64> {
    io::copy(reader, &mut io::sink())
}
