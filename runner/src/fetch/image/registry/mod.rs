//! Images from OCI registries, pulled by digest into the content-addressed blob cache.
//!
//! A pull verifies every document and blob against the digest that names it while it
//! streams; the pulled blobs then form an OCI layout (`<cache>/blobs/sha256/`) that the
//! layout code verifies and unpacks a second time, exactly as for an `oci-layout:` image.
//! Tags are only resolved for clients at submit time ([`RegistryClient::resolve_tag`]); jobs
//! name digests.

mod auth;
mod client;
mod error;
mod pull;
mod reference;

pub use auth::{Credentials, RegistryAuth};
pub use client::RegistryClient;
pub use error::RegistryError;
pub use pull::{PullProgress, PulledImage, pull};
pub use reference::{RegistryRepo, split_tag};
