//! The controller's OIDC issuer: token signing keys and their rotation, the discovery document
//! and JWKS that relying parties (cloud providers) read, and minting and verifying the
//! short-lived build tokens a job's steps exchange for cloud credentials.
//!
//! Everything here is a pure function of its inputs plus an injected clock and jti generator,
//! so rotation windows and token lifetimes are tested with a fixed clock. The HTTP routes are a
//! framework-free handler ([`http::OidcHttp`]) the controller's HTTP server routes to.
//!
//! Token keys are ES256 (ECDSA P-256) keys kept in their own directory, distinct from the
//! provenance signing keys: a leaked token key cannot forge provenance and vice versa.
//! See `docs/identity.md` for claims, rotation and how a cloud provider trusts the tokens.

pub mod claims;
pub mod discovery;
pub mod http;
pub mod issuer;
pub mod job_context;
pub mod jwks;
pub mod key_dir;
pub mod keys;
pub mod mint;
pub mod reload;
pub mod rotation;
pub mod settings;
pub mod subject;
pub mod time;
pub mod verify;

pub use claims::BuildClaims;
pub use discovery::DiscoveryDocument;
pub use http::{OidcHttp, OidcResponse};
pub use issuer::{IssuerError, OidcConfig, OidcIssuer};
pub use job_context::JobFacts;
pub use jwks::{Jwk, JwkSet};
pub use key_dir::{KeyDir, KeyDirError};
pub use keys::{KeyRing, KeyRingError, KeySchedule, TokenKey};
pub use mint::{JobTokenContext, MintError, MintRequest, MintedToken, Minter};
pub use reload::RingReloader;
pub use rotation::{RotationSummary, rotate_token_key};
pub use settings::{OidcSettings, SettingsError};
pub use subject::{SourceIdentity, SourceRef, SubjectError};
pub use verify::{Verifier, VerifyError};

/// The only JWS algorithm airlock signs tokens with and accepts: ECDSA P-256 with SHA-256.
pub const TOKEN_ALGORITHM: jsonwebtoken::Algorithm = jsonwebtoken::Algorithm::ES256;
