//! Software bills of materials: what went into a job — its build image's OS packages, its
//! source, declared inputs and lockfile packages — and what came out, as an SPDX 2.3 document
//! and a CycloneDX 1.6 BOM rendered from one typed [`Sbom`], plus the signed in-toto
//! statement ([`SbomStatement`], predicate the SPDX document) that the control plane issues
//! beside the provenance, with the same key and subjects.
//!
//! The document types come from `serde-spdx` and `serde-cyclonedx`, generated from the two
//! formats' JSON schemas, so a field either schema lacks cannot be written; the formats'
//! own validators (spdx-tools, cyclonedx-python-lib) check the result in the test suite.

mod cyclonedx_document;
mod license;
mod model;
mod purl;
mod spdx_document;
mod statement;
#[cfg(test)]
mod tests;

pub use cyclonedx_document::{CYCLONEDX_SPEC_VERSION, cyclonedx_bom};
pub use license::spdx_expression;
pub use model::*;
pub use purl::{PurlError, oci_output_purl, oci_purl, os_package_purl};
pub use spdx_document::{SPDX_VERSION, spdx_document};
pub use statement::{SPDX_PREDICATE_TYPE, SbomStatement};

use crate::resource_descriptor::ResourceDescriptor;

/// Why an SBOM could not be made, signed or checked.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    /// A package URL could not be written.
    #[error(transparent)]
    Purl(#[from] PurlError),
    /// A document could not be assembled or serialized.
    #[error("cannot build the SBOM: {0}")]
    Document(String),
    /// The statement is not an SBOM statement airlock writes.
    #[error("SBOM statement: {0}")]
    Statement(String),
    /// Signing failed.
    #[error("cannot sign the SBOM statement: {0}")]
    Sign(#[source] crate::sign::SignError),
    /// The envelope's signature did not verify.
    #[error("the SBOM statement's signature: {0}")]
    Verify(#[source] crate::verify::VerifyError),
}

/// One SBOM in both formats, serialized, and the statement that carries the SPDX one.
#[derive(Debug, Clone, PartialEq)]
pub struct SbomDocuments {
    /// The SPDX 2.3 JSON document (`<job>.spdx.json`).
    pub spdx_json: Vec<u8>,
    /// The CycloneDX 1.6 JSON BOM (`<job>.cdx.json`).
    pub cyclonedx_json: Vec<u8>,
    /// The unsigned statement about `subject` (sign it with [`SbomStatement::sign`]).
    pub statement: SbomStatement,
}

/// Renders `sbom` in both formats and wraps the SPDX document in a statement about
/// `subject` (the provenance's subjects).
pub fn render(sbom: &Sbom, subject: Vec<ResourceDescriptor>) -> Result<SbomDocuments, SbomError> {
    let spdx = serde_json::to_value(spdx_document(sbom)?)
        .map_err(|e| SbomError::Document(format!("SPDX JSON: {e}")))?;
    let cyclonedx = cyclonedx_bom(sbom)?;
    let mut spdx_json = serde_json::to_vec_pretty(&spdx)
        .map_err(|e| SbomError::Document(format!("SPDX JSON: {e}")))?;
    spdx_json.push(b'\n');
    let mut cyclonedx_json = serde_json::to_vec_pretty(&cyclonedx)
        .map_err(|e| SbomError::Document(format!("CycloneDX JSON: {e}")))?;
    cyclonedx_json.push(b'\n');
    Ok(SbomDocuments {
        spdx_json,
        cyclonedx_json,
        statement: SbomStatement::new(subject, spdx),
    })
}
