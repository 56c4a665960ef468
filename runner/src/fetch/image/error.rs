//! Why an image could not be prepared.

use std::io;
use std::path::PathBuf;

use airlock_attest::Sha256Digest;

/// Everything that can go wrong verifying or unpacking an image. Each variant names the
/// blob, layer or tar entry at fault.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A filesystem operation on the layout or the cache failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "reading".
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A blob the image needs is not in the layout's `blobs/sha256/` directory.
    #[error(
        "{what} sha256:{digest} is not in the image layout (expected {path}); \
         check the layout directory and the pinned digest"
    )]
    BlobMissing {
        /// Which blob, e.g. "manifest" or "layer 2".
        what: String,
        /// The blob's digest.
        digest: Sha256Digest,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A blob path exists but is not a regular file (a directory, FIFO, device, ...).
    #[error("{path} is not a regular file")]
    NotARegularFile {
        /// The offending path.
        path: PathBuf,
    },
    /// A blob's content does not hash to the digest it is stored under.
    #[error(
        "{what}: content hashes to sha256:{actual}, not the expected sha256:{expected}; \
         the image layout is corrupt or was tampered with"
    )]
    DigestMismatch {
        /// Which blob, e.g. "manifest" or "layer 2".
        what: String,
        /// The digest the blob was expected to have.
        expected: Sha256Digest,
        /// The digest its content actually has.
        actual: Sha256Digest,
    },
    /// A blob's size differs from the size its descriptor records.
    #[error("{what} sha256:{digest} is {actual} bytes, but its descriptor says {expected}")]
    SizeMismatch {
        /// Which blob.
        what: String,
        /// The blob's digest.
        digest: Sha256Digest,
        /// Size recorded in the descriptor.
        expected: u64,
        /// Size found on disk.
        actual: u64,
    },
    /// A JSON blob (manifest or config) is larger than airlock accepts.
    #[error("{what} sha256:{digest} is larger than the {limit}-byte limit for JSON documents")]
    TooLarge {
        /// Which blob.
        what: String,
        /// The blob's digest.
        digest: Sha256Digest,
        /// The limit in bytes.
        limit: u64,
    },
    /// A digest in the manifest or config is not `sha256:<64 lowercase hex>`.
    #[error("{what} has digest {value:?}; only \"sha256:<64 lowercase hex>\" is accepted")]
    InvalidDigest {
        /// Where the digest was found.
        what: String,
        /// The digest as written.
        value: String,
    },
    /// The manifest or config is not valid JSON of the expected shape.
    #[error("{what} is not a valid OCI document: {source}")]
    Parse {
        /// Which document.
        what: String,
        /// The parser's error.
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// A manifest, config or layer has a media type airlock does not accept.
    #[error("{what} has media type {media_type:?}; accepted: {accepted}")]
    UnsupportedMediaType {
        /// Which document or layer.
        what: String,
        /// The media type as written (empty if absent).
        media_type: String,
        /// The media types that are accepted.
        accepted: &'static str,
    },
    /// The manifest's `schemaVersion` is not 2.
    #[error("image manifest has schemaVersion {0}; only 2 is accepted")]
    SchemaVersion(u32),
    /// The image is for another OS or CPU architecture than this runner.
    #[error("image is for {os}/{architecture}, but this runner is linux/{host}")]
    PlatformMismatch {
        /// `os` from the image config.
        os: String,
        /// `architecture` from the image config.
        architecture: String,
        /// This runner's architecture, in OCI spelling.
        host: &'static str,
    },
    /// The config's `rootfs` does not describe the manifest's layers.
    #[error("image config rootfs is inconsistent with the manifest: {reason}")]
    RootfsMismatch {
        /// What is inconsistent.
        reason: String,
    },
    /// A layer's uncompressed content does not match its `rootfs.diff_ids` entry.
    #[error(
        "layer {layer} unpacks to sha256:{actual}, but the image config's rootfs.diff_ids \
         records sha256:{expected}"
    )]
    DiffIdMismatch {
        /// 1-based layer index.
        layer: usize,
        /// The diff id from the config.
        expected: Sha256Digest,
        /// The digest of the uncompressed tar stream.
        actual: Sha256Digest,
    },
    /// A tar entry tries something unsafe or unsupported (escape, `..`, unknown type, ...).
    #[error("layer {layer}: tar entry {path:?} refused: {reason}")]
    UnsafeEntry {
        /// 1-based layer index.
        layer: usize,
        /// The entry's path as written in the archive (lossy UTF-8).
        path: String,
        /// Why it was refused.
        reason: String,
    },
    /// A layer's tar or gzip stream is malformed.
    #[error("layer {layer}: malformed tar/gzip stream: {source}")]
    Archive {
        /// 1-based layer index.
        layer: usize,
        /// The decoder's error.
        #[source]
        source: io::Error,
    },
}

impl ImageError {
    /// Wraps an I/O error with what was being done and to which path.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
