//! Images from OCI registries, pulled by digest into the content-addressed blob cache, and
//! image layouts pushed to registries with their provenance attached.
//!
//! A pull verifies every document and blob against the digest that names it while it
//! streams; the pulled blobs then form an OCI layout (`<cache>/blobs/sha256/`) that the
//! layout code verifies and unpacks a second time, exactly as for an `oci-layout:` image.
//! Tags are only resolved for clients at submit time ([`RegistryClient::resolve_tag`]); jobs
//! name digests.
//!
//! A push ([`push_layout`]) sends a layout's blobs and manifest unchanged, so the image keeps
//! its digest; [`attach_provenance`] adds a DSSE envelope as an OCI 1.1 referrer of it, and
//! the referrers API (or that tag) lists them again for checked build images (`../check/`).

mod auth;
mod blob_body;
mod client;
mod error;
#[cfg(test)]
pub(crate) mod fake_registry;
mod layout_image;
mod pull;
mod push;
mod reference;
mod referrer;
mod upload;

pub use auth::{Credentials, RegistryAuth};
pub use client::RegistryClient;
pub use error::RegistryError;
#[cfg(test)]
pub(crate) use layout_image::tests::write_layout;
pub use layout_image::{LayoutImage, OCI_MANIFEST_MEDIA_TYPE};
pub use pull::{PullProgress, PulledImage, pull};
pub use push::{PushProgress, PushedImage, push_layout};
pub use reference::{RegistryRepo, parse_push_target, split_tag, validate_tag};
pub use referrer::{
    AttachedProvenance, DSSE_ENVELOPE_MEDIA_TYPE, PREDICATE_TYPE_ANNOTATION, attach_provenance,
    referrers_tag,
};
