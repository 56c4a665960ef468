//! Why a single tar entry could not be applied, before the layer and path are attached.

use super::error::ImageError;

/// Outcome of a failed entry: refused as unsafe/unsupported, or a plain I/O failure.
#[derive(Debug)]
pub(crate) enum EntryError {
    /// The entry is unsafe or unsupported; the reason becomes [`ImageError::UnsafeEntry`].
    Refused(String),
    /// Something failed that is not the entry's fault (disk full, permissions, ...).
    Failed(ImageError),
}

impl EntryError {
    /// A refusal with the given reason.
    pub(crate) fn refused(reason: impl Into<String>) -> Self {
        Self::Refused(reason.into())
    }

    /// An I/O failure on `path` while doing `action`.
    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Failed(ImageError::io(action, path, source))
    }
}
