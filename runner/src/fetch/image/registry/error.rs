//! Why a registry pull, tag resolution or push failed. No variant ever carries a credential.

use airlock_attest::Sha256Digest;

use crate::fetch::cache::CacheError;
use crate::fetch::http::HttpError;

use super::super::ImageError;

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The image name is not `HOST[:PORT]/REPOSITORY`.
    #[error("image name `{name}`: {reason}")]
    BadName {
        /// The name as written.
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// An HTTP transfer failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The registry answered with a status airlock does not expect.
    #[error("{what}: the registry answered HTTP {status}{hint}")]
    Status {
        /// What was requested.
        what: String,
        /// The status.
        status: u16,
        /// A hint for common statuses.
        hint: &'static str,
    },
    /// The registry wants credentials and none (or wrong ones) are configured.
    #[error(
        "{registry}: the registry requires authentication; add credentials for it to the \
         docker-style auth file (auths.\"{registry}\".auth)"
    )]
    Unauthorized {
        /// The registry host.
        registry: String,
    },
    /// The authentication challenge or token answer is malformed or unsafe.
    #[error("{registry}: authentication: {reason}")]
    Auth {
        /// The registry host.
        registry: String,
        /// What is wrong.
        reason: String,
    },
    /// The docker-style auth file cannot be read.
    #[error("registry auth file {path}: {reason}")]
    AuthFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong (never the file's content).
        reason: String,
    },
    /// A manifest's bytes do not hash to the digest it was requested by.
    #[error(
        "{what}: the registry served content hashing to sha256:{actual}, not sha256:{expected}"
    )]
    DigestMismatch {
        /// What was fetched.
        what: String,
        /// The requested digest.
        expected: Sha256Digest,
        /// What arrived.
        actual: Sha256Digest,
    },
    /// A manifest or index is not a document airlock accepts.
    #[error("{what}: {reason}")]
    Manifest {
        /// Which document.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The image layout to push is not one airlock pushes (its `index.json` names no single
    /// image manifest, a file is missing or unreadable).
    #[error("image layout {path}: {reason}")]
    Layout {
        /// The layout directory or the file at fault.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The registry stored a pushed document or blob under another digest than it has.
    #[error(
        "{what}: the registry reports storing it as {reported}, not as {}; the registry \
         rewrote it or did not store it", expected.prefixed()
    )]
    PushedDigest {
        /// What was pushed.
        what: String,
        /// Its digest.
        expected: Sha256Digest,
        /// The registry's `Docker-Content-Digest` (as sent, it is not necessarily a digest).
        reported: String,
    },
    /// The registry's answer to an upload step is not what the distribution spec says.
    #[error("{what}: {reason}")]
    Upload {
        /// Which upload step.
        what: String,
        /// What is wrong with the answer.
        reason: String,
    },
    /// The image index has no manifest for this runner's platform.
    #[error("image index sha256:{index} has no manifest for linux/{arch}")]
    NoPlatform {
        /// The index digest.
        index: Sha256Digest,
        /// This runner's architecture.
        arch: &'static str,
    },
    /// The blob cache failed or refused content.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The pulled image failed verification or unpacking.
    #[error(transparent)]
    Image(#[from] ImageError),
}

impl RegistryError {
    /// True if the job's image is at fault rather than the runner or the network: a bad
    /// name, a digest the registry does not have, corrupt or hostile content, an index
    /// without this platform, a malformed or unsupported document. Such jobs fail; other
    /// errors are infrastructure failures.
    pub fn is_job_error(&self) -> bool {
        match self {
            Self::BadName { .. }
            | Self::DigestMismatch { .. }
            | Self::Manifest { .. }
            | Self::NoPlatform { .. }
            | Self::Status { status: 404, .. } => true,
            Self::Cache(c) => c.is_content_error(),
            Self::Image(e) => !matches!(e, ImageError::Io { .. } | ImageError::BlobMissing { .. }),
            _ => false,
        }
    }

    /// True if the registry served content that does not match its digest (a corrupt or
    /// tampered image): the job fails rather than being retried as an infrastructure fault.
    pub fn is_content_error(&self) -> bool {
        match self {
            Self::DigestMismatch { .. } => true,
            Self::Cache(c) => c.is_content_error(),
            Self::Image(ImageError::DigestMismatch { .. } | ImageError::DiffIdMismatch { .. }) => {
                true
            }
            _ => false,
        }
    }
}
