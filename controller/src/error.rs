//! Errors that stop the controller from starting or serving.

use crate::blobs::store::BlobError;
use crate::config::ConfigError;
use crate::provenance::signer::SignerError;
use crate::store::StoreError;

/// Why the controller cannot start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The signing key cannot be used.
    #[error(transparent)]
    Signer(#[from] SignerError),
    /// The database cannot be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blob store cannot be opened.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The cache storage (`[caches] dir`) cannot be opened.
    #[error(transparent)]
    Caches(#[from] crate::caches::storage::CacheStorageError),
    /// The build-token issuer (`[oidc]`) cannot start.
    #[error(transparent)]
    Oidc(#[from] crate::oidc::IssuerError),
    /// The TLS certificate or key (`[tls]`) cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// A forge's webhook secret or API token (`[[forges]]`) cannot be read.
    #[error(transparent)]
    Forge(#[from] crate::forge::ForgeLoadError),
    /// A `[job_signatures]` key cannot be loaded.
    #[error(transparent)]
    JobSigners(#[from] crate::auth::job_signatures::JobSignersError),
    /// The admission policy (`[policy]`) cannot be read or does not compile.
    #[error("[policy]: {0}")]
    Policy(#[from] crate::policy::PolicyError),
    /// The reflection service cannot be built from the descriptor set.
    #[error("cannot build the gRPC reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed.
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}
