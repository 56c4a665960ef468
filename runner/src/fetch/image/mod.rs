//! Base images: verify an OCI image layout and unpack it into a read-only rootfs cache.
//!
//! Everything in an image layout is treated as hostile input. The manifest is read by the
//! digest the job pinned (never through `index.json`), every blob is hashed before it is
//! trusted, layers are unpacked by a tar extractor that never follows a symlink and never
//! writes outside the rootfs, and a rootfs only becomes visible in the cache by an atomic
//! rename once every check has passed. Under a profile that requires it, the image must also
//! be vouched for by a trusted attestation before any step runs ([`check`]).

pub(crate) mod blob;
mod cache;
pub mod check;
mod entry_error;
mod error;
mod eviction;
mod layer;
mod layout_pin;
pub(crate) mod manifest;
pub mod packages;
mod prepared;
mod progress;
pub mod registry;
mod rootfs;
mod safe_path;
mod unpack;
mod whiteout;

pub use cache::ImageCache;
pub use error::ImageError;
pub use eviction::RootfsPin;
pub use layout_pin::{pin_layout, verify_layout};
pub use prepared::PreparedImage;
pub use progress::ImageProgress;
