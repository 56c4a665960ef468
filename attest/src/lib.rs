//! Digests, in-toto Statement v1, SLSA provenance v1, DSSE signing and verification.
//!
//! The flow: build a [`Statement`] (subjects by SHA-256 plus a [`Provenance`] predicate),
//! [`sign_statement`] it into a DSSE [`Envelope`] (write it with [`Envelope::to_json_line`] or
//! as a Sigstore [`Bundle`]), and check it with [`verify_provenance`] against trusted
//! [`VerifyingKey`]s and a [`Policy`]. A verifier can then sign its decision as a SLSA
//! Verification Summary Attestation ([`VsaBuilder`], [`sign_vsa`]), which consumers check
//! with [`verify_vsa`].

pub mod bundle;
pub mod digest;
pub mod dsse;
mod json_statement;
pub mod key_files;
pub mod keys;
pub mod provenance;
pub mod resource_descriptor;
pub mod sbom;
pub mod sign;
pub mod sorted_json;
pub mod statement;
mod strict_json;
pub mod timestamp;
pub mod trace;
pub mod verify;
pub mod vsa;

pub use bundle::{BUNDLE_MEDIA_TYPE_V03, Bundle, BundleError};
pub use digest::{DigestError, GitCommit, HashingWriter, Sha256Digest, Sha256Hasher, hash_reader};
pub use dsse::{DsseError, Envelope, EnvelopeSignature, pae};
pub use key_files::{
    load_signing_key, load_verifying_key, read_private_key_file, write_key_files, write_keypair,
    write_keypair_with,
};
pub use keys::{KeyAlgorithm, KeyError, SigningKey, VerifyingKey};
pub use provenance::{
    BuildDefinition, BuildMetadata, Builder, Provenance, ProvenanceError, RunDetails,
};
pub use resource_descriptor::{
    DigestSet, ResourceDescriptor, ResourceDescriptorError, validate_digest_set,
};
pub use sign::{SignError, sign_envelope, sign_statement};
pub use sorted_json::sorted_keys;
pub use statement::{
    IN_TOTO_PAYLOAD_TYPE, SLSA_PROVENANCE_V1, STATEMENT_TYPE_V1, Statement, StatementError,
};
pub use timestamp::{TimestampError, rfc3339_utc, validate_rfc3339_utc};
pub use verify::{
    Check, Policy, VerificationReport, Verified, VerifiedEnvelope, VerifyError, verify_envelope,
    verify_provenance,
};
pub use vsa::{
    BUILD_LEVEL_UNEVALUATED, DEFAULT_VERIFIER_ID, SLSA_VSA_V1, SlsaBuildLevel,
    VERIFIED_LEVEL_FAILED, VSA_POLICY_URI, VSA_SLSA_VERSION, VerificationResult,
    VerificationSummary, Verifier, VsaBuilder, VsaError, VsaOutcome, VsaReport, VsaRequirements,
    VsaStatement, default_resource_uri, is_hosted_builder_id, policy_descriptor, policy_document,
    sign_vsa, verified_build_level, verify_vsa,
};
