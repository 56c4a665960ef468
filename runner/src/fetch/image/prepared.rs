//! The result of preparing an image: where its rootfs is and what its config says.

use std::path::PathBuf;

use airlock_attest::Sha256Digest;

/// A verified, unpacked image, ready to be mounted read-only as a sandbox's `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedImage {
    /// The unpacked root filesystem, `<cache root>/rootfs/<manifest hex>`.
    pub rootfs: PathBuf,
    /// The manifest digest the image was prepared from (what provenance records).
    pub manifest_digest: Sha256Digest,
    /// The layer blob digests, base layer first.
    pub layers: Vec<Sha256Digest>,
    /// `config.Env` from the image config (`KEY=value` strings), empty if absent.
    pub env: Vec<String>,
    /// `config.WorkingDir` from the image config, if set and non-empty.
    pub working_dir: Option<String>,
}
