//! Progress events reported while an image is prepared.

use airlock_attest::Sha256Digest;

/// What [`ImageCache::prepare_from_layout`](super::ImageCache::prepare_from_layout) is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageProgress {
    /// A layer blob of `bytes` bytes is about to be hashed (while it is unpacked).
    Verifying {
        /// The blob's digest, as the manifest records it.
        blob: Sha256Digest,
        /// The blob's size in bytes, as the manifest records it.
        bytes: u64,
    },
    /// Layer `layer` (1-based) of `of` is being unpacked.
    Unpacking {
        /// 1-based index of the layer being unpacked.
        layer: usize,
        /// Number of layers in the image.
        of: usize,
    },
    /// The rootfs was already in the cache; nothing was unpacked.
    Cached,
}
