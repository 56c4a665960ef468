//! SLSA Verification Summary Attestations (VSA), predicate type
//! `https://slsa.dev/verification_summary/v1`.
//!
//! A VSA says: verifier V checked these subjects against policy P, using these input
//! attestations, at this time, with this result and this SLSA level. airlock writes one after
//! verifying provenance (`airlock verify --vsa-out`) and checks one (`airlock verify --vsa`),
//! so a consumer who trusts the verifier need not see, or re-check, the provenance itself.
//!
//! A VSA is an in-toto Statement v1 written and read by the same code as provenance
//! ([`crate::statement`]) and signed and checked as a DSSE envelope by the same functions
//! ([`sign_envelope`], [`crate::verify_envelope`]). The field set and order are those of the VSA
//! schema of SLSA v1.1, whose only addition to v1.0 is the optional `verifier.version`.
//!
//! Parsing is as strict as provenance parsing: duplicate keys, unknown fields, other
//! predicate types and values the spec does not allow are errors. Extension fields, which the
//! VSA spec names by URIs, are dropped first (consumers must ignore them).
//!
//! The level airlock claims ([`verified_build_level`]): `SLSA_BUILD_LEVEL_3` only when the
//! verifier pinned the builder id (`Policy::builder_id`), the provenance verified against it,
//! and that id is a hosted controller's `<issuer>/builders/<profile>`; any other verified
//! provenance reaches `SLSA_BUILD_LEVEL_1`. docs/vsa.md gives the reasoning.

mod build;
mod check;
mod policy;
#[cfg(test)]
mod tests;
mod types;

pub use build::*;
pub use check::*;
pub use policy::*;
pub use types::*;

use crate::digest::Sha256Digest;
use crate::resource_descriptor::ResourceDescriptorError;
use crate::sign::SignError;
use crate::statement::StatementError;
use crate::timestamp::TimestampError;
use crate::verify::VerifyError;

/// `predicateType` of a SLSA Verification Summary Attestation v1 (the same URI covers the
/// v1.0 and v1.1 schemas).
pub const SLSA_VSA_V1: &str = "https://slsa.dev/verification_summary/v1";
/// `slsaVersion` airlock writes: the SLSA version whose Build track levels it evaluates
/// (the Build track is the same in v1.0, v1.1 and v1.2).
pub const VSA_SLSA_VERSION: &str = "1.0";
/// `verifier.id` when the caller names none. Consumers must trust (signer, verifier) pairs,
/// so an organisation publishing VSAs should name its own verifier instead.
pub const DEFAULT_VERIFIER_ID: &str = "https://airlock.dev/verifiers/airlock-verify";
/// `policy.uri`: airlock's provenance verification policy, whose exact parameters are the
/// canonical JSON of [`policy_document`] (its sha256 is `policy.digest.sha256`).
pub const VSA_POLICY_URI: &str = "https://airlock.dev/verification-policies/provenance/v1";
/// The `verifiedLevels` entry of a failed verification.
pub const VERIFIED_LEVEL_FAILED: &str = "FAILED";
/// The SlsaResult for "the Build track was not evaluated" (SLSA v1.1).
pub const BUILD_LEVEL_UNEVALUATED: &str = "SLSA_BUILD_LEVEL_UNEVALUATED";
/// Prefix of the Build track's SlsaResult values.
const BUILD_LEVEL_PREFIX: &str = "SLSA_BUILD_LEVEL_";

/// Why a VSA could not be built, signed, read or accepted, by stage. Each message says what
/// it means for the artifact.
#[derive(Debug, thiserror::Error)]
pub enum VsaError {
    /// The envelope is unreadable, no trusted key's signature verifies, or the payload is
    /// not an in-toto statement.
    #[error("verification summary: {0}")]
    Signature(#[source] VerifyError),
    /// The statement around the predicate is malformed (or not in-toto Statement v1).
    #[error("the signed verification summary is malformed: {0}")]
    Statement(#[source] StatementError),
    /// The predicate is not a SLSA VSA v1.
    #[error(
        "predicateType is {found:?}, expected {SLSA_VSA_V1:?}: this is not a verification \
         summary (pass provenance with --provenance, not --vsa)"
    )]
    PredicateType {
        /// `predicateType` found.
        found: String,
    },
    /// The statement or predicate JSON does not match the VSA v1 schema (unknown or missing
    /// field, wrong type, a `verificationResult` other than PASSED or FAILED).
    #[error("the verification summary does not match the SLSA VSA v1 schema: {0}")]
    Json(#[source] serde_json::Error),
    /// A required string field is empty.
    #[error("the verification summary's {0} is empty")]
    EmptyField(&'static str),
    /// `timeVerified` is not RFC 3339 UTC, or the clock could not be written as such.
    #[error("timeVerified: {0}")]
    TimeVerified(#[source] TimestampError),
    /// `policy` is not a valid resource descriptor.
    #[error("policy: {0}")]
    Policy(#[source] ResourceDescriptorError),
    /// An input attestation is not a valid resource descriptor.
    #[error("inputAttestations[{index}]: {source}")]
    InputAttestation {
        /// Index in `inputAttestations`.
        index: usize,
        /// What is wrong with it.
        #[source]
        source: ResourceDescriptorError,
    },
    /// An input attestation has no digest (the spec requires one).
    #[error("inputAttestations[{index}] has no digest")]
    InputAttestationWithoutDigest {
        /// Index in `inputAttestations`.
        index: usize,
    },
    /// `verifiedLevels` is empty.
    #[error("verifiedLevels is empty: a verification summary must state a level or FAILED")]
    NoVerifiedLevels,
    /// A `verifiedLevels` entry uses the reserved `SLSA_` prefix but is no SLSA result.
    #[error(
        "verifiedLevels has {value:?}, which is not a SLSA result (SLSA_BUILD_LEVEL_0..3, \
         SLSA_BUILD_LEVEL_UNEVALUATED)"
    )]
    UnknownLevel {
        /// The entry.
        value: String,
    },
    /// `verifiedLevels` names more than one Build track level.
    #[error("verifiedLevels names several Build track levels ({}); the spec allows one", levels.join(", "))]
    SeveralBuildLevels {
        /// The Build track entries.
        levels: Vec<String>,
    },
    /// `verificationResult` and `verifiedLevels` disagree about `FAILED`.
    #[error(
        "verificationResult is {result} but verifiedLevels is [{}]: FAILED must be listed \
         exactly when the result is FAILED", levels.join(", ")
    )]
    InconsistentResult {
        /// `verificationResult`.
        result: VerificationResult,
        /// `verifiedLevels`.
        levels: Vec<String>,
    },
    /// `slsaVersion` is not `<MAJOR>.<MINOR>`.
    #[error("slsaVersion {value:?} is not of the form <MAJOR>.<MINOR>")]
    SlsaVersion {
        /// The value found.
        value: String,
    },
    /// The VSA records a failed verification.
    #[error(
        "the verification summary says verificationResult {result} (verifiedLevels [{}]): the \
         verifier refused this artifact; do not use it",
        levels.join(", ")
    )]
    NotPassed {
        /// `verificationResult`.
        result: VerificationResult,
        /// `verifiedLevels`.
        levels: Vec<String>,
    },
    /// No artifacts were given, so nothing would tie the VSA to a file.
    #[error("no artifact was given; pass the artifact file(s) this verification summary covers")]
    NoArtifacts,
    /// An artifact's digest is not among the subjects.
    #[error(
        "artifact {artifact} (sha256:{digest}) is not a subject of this verification summary: \
         the verifier did not check this artifact, or this is the wrong summary"
    )]
    SubjectMismatch {
        /// The artifact's name as given by the caller.
        artifact: String,
        /// Its digest.
        digest: Sha256Digest,
    },
    /// `verifier.id` differs from the required one.
    #[error("verifier.id is {found:?}, expected {expected:?}: another verifier made this summary")]
    VerifierId {
        /// Required verifier id.
        expected: String,
        /// Verifier id found.
        found: String,
    },
    /// `resourceUri` differs from the required one.
    #[error(
        "resourceUri is {found:?}, expected {expected:?}: the summary was made for another \
         use of the artifact"
    )]
    ResourceUri {
        /// Required resource URI.
        expected: String,
        /// Resource URI found.
        found: String,
    },
    /// The Build level verified is below the required one.
    #[error(
        "verifiedLevels is [{}], which does not reach {required}: the artifact was not verified \
         at the required SLSA Build level", found.join(", ")
    )]
    Level {
        /// Required level.
        required: SlsaBuildLevel,
        /// `verifiedLevels` found.
        found: Vec<String>,
    },
    /// A `--vsa-level` value is not a Build track level.
    #[error("{value:?} is not a SLSA Build level (SLSA_BUILD_LEVEL_0 .. SLSA_BUILD_LEVEL_3)")]
    NotABuildLevel {
        /// The value given.
        value: String,
    },
    /// The statement could not be serialized.
    #[error("cannot serialize the verification summary: {0}")]
    Serialize(#[source] serde_json::Error),
    /// Signing failed.
    #[error("cannot sign the verification summary: {0}")]
    Sign(#[source] SignError),
}
