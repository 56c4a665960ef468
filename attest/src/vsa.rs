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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::json;

use crate::digest::Sha256Digest;
use crate::dsse::Envelope;
use crate::keys::{SigningKey, VerifyingKey};
use crate::resource_descriptor::{
    ALG_SHA256, DigestSet, ResourceDescriptor, ResourceDescriptorError,
};
use crate::sign::{SignError, sign_envelope};
use crate::sorted_json::sorted_keys;
use crate::statement::{
    IN_TOTO_PAYLOAD_TYPE, StatementError, parse_statement_v1, serialize_statement,
    validate_subjects,
};
use crate::strict_json::drop_uri_named_fields;
use crate::timestamp::{TimestampError, rfc3339_utc, validate_rfc3339_utc};
use crate::verify::{
    Check, Policy, SubjectMismatch, VerificationReport, Verified, VerifyError, match_subjects,
    verify_in_toto_envelope,
};

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

/// A level of the SLSA Build track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SlsaBuildLevel {
    /// `SLSA_BUILD_LEVEL_0`: no guarantees.
    L0,
    /// `SLSA_BUILD_LEVEL_1`: provenance exists and names each output by digest.
    L1,
    /// `SLSA_BUILD_LEVEL_2`: a hosted platform generated and signed the provenance.
    L2,
    /// `SLSA_BUILD_LEVEL_3`: a hardened platform; builds cannot forge provenance or affect
    /// one another.
    L3,
}

impl SlsaBuildLevel {
    /// Every level, lowest first.
    pub const ALL: [Self; 4] = [Self::L0, Self::L1, Self::L2, Self::L3];

    /// The SlsaResult string, e.g. `SLSA_BUILD_LEVEL_3`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::L0 => "SLSA_BUILD_LEVEL_0",
            Self::L1 => "SLSA_BUILD_LEVEL_1",
            Self::L2 => "SLSA_BUILD_LEVEL_2",
            Self::L3 => "SLSA_BUILD_LEVEL_3",
        }
    }

    /// The level a SlsaResult string names, if it names one.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == value)
    }
}

impl fmt::Display for SlsaBuildLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SlsaBuildLevel {
    type Err = VsaError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| VsaError::NotABuildLevel {
            value: s.to_owned(),
        })
    }
}

/// `verificationResult`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VerificationResult {
    /// The artifact passed the policy.
    #[serde(rename = "PASSED")]
    Passed,
    /// The artifact failed the policy.
    #[serde(rename = "FAILED")]
    Failed,
}

impl fmt::Display for VerificationResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Passed => "PASSED",
            Self::Failed => "FAILED",
        })
    }
}

/// `predicate.verifier`: who verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Verifier {
    /// URI naming the verifier; consumers trust (signing key, verifier id) pairs.
    pub id: String,
    /// Component name to version (SLSA v1.1), e.g. `{"airlock": "0.1.0"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub version: BTreeMap<String, String>,
}

/// The SLSA VSA v1 predicate. Serialized in the spec's field order; empty optional fields
/// are omitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerificationSummary {
    /// Who verified.
    pub verifier: Verifier,
    /// When, RFC 3339 UTC (optional since SLSA v1.1; airlock always writes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_verified: Option<String>,
    /// The resource the artifact was verified for, e.g. where it is published.
    pub resource_uri: String,
    /// The policy: `uri` (required) and `digest`.
    pub policy: ResourceDescriptor,
    /// Every attestation the verification used, each with a digest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_attestations: Vec<ResourceDescriptor>,
    /// PASSED or FAILED.
    pub verification_result: VerificationResult,
    /// The highest level verified per track, or `FAILED`.
    pub verified_levels: Vec<String>,
    /// SlsaResult to the number of transitive dependencies verified at that level. Absent
    /// means "no claim"; airlock never writes it (it does not verify dependencies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency_levels: Option<BTreeMap<String, u64>>,
    /// `<MAJOR>.<MINOR>` of the SLSA version used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slsa_version: Option<String>,
}

/// An in-toto Statement v1 whose predicate is a SLSA VSA v1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VsaStatement {
    /// The artifacts verified, each with a digest.
    pub subject: Vec<ResourceDescriptor>,
    /// The summary.
    pub predicate: VerificationSummary,
}

/// Serializes as `{"_type", "subject", "predicateType", "predicate"}`, like provenance.
impl Serialize for VsaStatement {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_statement(serializer, &self.subject, SLSA_VSA_V1, &self.predicate)
    }
}

/// The wire shape, decoded only after `_type` and `predicateType` have selected it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VsaStatementWire {
    #[serde(rename = "_type")]
    _type: String,
    subject: Vec<ResourceDescriptor>,
    #[serde(rename = "predicateType")]
    _predicate_type: String,
    predicate: VerificationSummary,
}

impl VsaStatement {
    /// Parses and validates a VSA strictly: in-toto Statement v1, predicate type
    /// [`SLSA_VSA_V1`], no duplicate keys, no unknown fields besides URI-named extension
    /// fields of the predicate and its verifier (dropped), and the rules of
    /// [`VsaStatement::validate`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, VsaError> {
        let (mut value, predicate_type) = parse_statement_v1(bytes).map_err(VsaError::Statement)?;
        if predicate_type != SLSA_VSA_V1 {
            return Err(VsaError::PredicateType {
                found: predicate_type,
            });
        }
        if let Some(predicate) = value.get_mut("predicate") {
            drop_uri_named_fields(predicate.get_mut("verifier"));
            drop_uri_named_fields(Some(predicate));
        }
        let wire: VsaStatementWire = serde_json::from_value(value).map_err(VsaError::Json)?;
        let statement = Self {
            subject: wire.subject,
            predicate: wire.predicate,
        };
        statement.validate()?;
        Ok(statement)
    }

    /// Compact JSON: the exact bytes that get signed.
    pub fn to_json(&self) -> Result<Vec<u8>, VsaError> {
        serde_json::to_vec(self).map_err(VsaError::Serialize)
    }

    /// Checks what serde cannot: subjects with digests, non-empty `verifier.id` and
    /// `resourceUri`, RFC 3339 UTC `timeVerified`, a `policy` with a `uri`, input attestations
    /// with digests, `verifiedLevels` with at most one Build level, no unknown `SLSA_` value,
    /// `FAILED` listed exactly when the result is FAILED, and `slsaVersion` `<MAJOR>.<MINOR>`.
    pub fn validate(&self) -> Result<(), VsaError> {
        validate_subjects(&self.subject).map_err(VsaError::Statement)?;
        let p = &self.predicate;
        if p.verifier.id.is_empty() {
            return Err(VsaError::EmptyField("verifier.id"));
        }
        if let Some(time) = &p.time_verified {
            validate_rfc3339_utc(time).map_err(VsaError::TimeVerified)?;
        }
        if p.resource_uri.is_empty() {
            return Err(VsaError::EmptyField("resourceUri"));
        }
        if p.policy.uri.as_deref().is_none_or(str::is_empty) {
            return Err(VsaError::EmptyField("policy.uri"));
        }
        p.policy.validate().map_err(VsaError::Policy)?;
        for (index, attestation) in p.input_attestations.iter().enumerate() {
            attestation
                .validate()
                .map_err(|source| VsaError::InputAttestation { index, source })?;
            if attestation.digest.is_empty() {
                return Err(VsaError::InputAttestationWithoutDigest { index });
            }
        }
        validate_levels(p.verification_result, &p.verified_levels)?;
        if let Some(version) = &p.slsa_version {
            let numbers = version.split_once('.');
            let is_number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            if !numbers.is_some_and(|(major, minor)| is_number(major) && is_number(minor)) {
                return Err(VsaError::SlsaVersion {
                    value: version.clone(),
                });
            }
        }
        Ok(())
    }

    /// The Build track level in `verifiedLevels`, if one is listed.
    pub fn build_level(&self) -> Option<SlsaBuildLevel> {
        self.predicate
            .verified_levels
            .iter()
            .find_map(|l| SlsaBuildLevel::parse(l))
    }
}

fn validate_levels(result: VerificationResult, levels: &[String]) -> Result<(), VsaError> {
    if levels.is_empty() {
        return Err(VsaError::NoVerifiedLevels);
    }
    for level in levels {
        let known = SlsaBuildLevel::parse(level).is_some() || level == BUILD_LEVEL_UNEVALUATED;
        if level.starts_with("SLSA_") && !known {
            return Err(VsaError::UnknownLevel {
                value: level.clone(),
            });
        }
    }
    let build: Vec<String> = levels
        .iter()
        .filter(|l| l.starts_with(BUILD_LEVEL_PREFIX))
        .cloned()
        .collect();
    if build.len() > 1 {
        return Err(VsaError::SeveralBuildLevels { levels: build });
    }
    let lists_failed = levels.iter().any(|l| l == VERIFIED_LEVEL_FAILED);
    if lists_failed != (result == VerificationResult::Failed) {
        return Err(VsaError::InconsistentResult {
            result,
            levels: levels.to_vec(),
        });
    }
    Ok(())
}

/// The canonical JSON of what a provenance verification checked, whose sha256 is the VSA's
/// `policy.digest.sha256`: an object with exactly these keys, in this (sorted) order,
/// compact, UTF-8 (RFC 8785 JCS; the document holds only ASCII keys, strings, arrays and
/// null):
///
/// `{"allowedExternalParameters": [sorted, unique] | null, "buildType": str | null,
/// "builderId": str | null, "sourceUri": str | null, "trustedKeyids": [sorted, unique]}`
///
/// `null` means "not checked"; `trustedKeyids` are the keyids of every key the verifier
/// trusted, whichever one signed.
pub fn policy_document(policy: &Policy, trusted_keys: &[VerifyingKey]) -> Vec<u8> {
    let keyids: BTreeSet<&str> = trusted_keys.iter().map(VerifyingKey::keyid).collect();
    let allowed: Option<BTreeSet<&str>> = policy
        .allowed_external_parameters
        .as_ref()
        .map(|keys| keys.iter().map(String::as_str).collect());
    let document = json!({
        "allowedExternalParameters": allowed,
        "buildType": policy.build_type,
        "builderId": policy.builder_id,
        "sourceUri": policy.source_uri,
        "trustedKeyids": keyids,
    });
    // A `Value`'s Display is its compact serialization, which cannot fail.
    sorted_keys(document).to_string().into_bytes()
}

/// The VSA `policy` of a provenance verification: [`VSA_POLICY_URI`] and the sha256 of
/// [`policy_document`].
pub fn policy_descriptor(policy: &Policy, trusted_keys: &[VerifyingKey]) -> ResourceDescriptor {
    let digest = Sha256Digest::of(&policy_document(policy, trusted_keys));
    ResourceDescriptor {
        uri: Some(VSA_POLICY_URI.to_owned()),
        digest: DigestSet::from([(ALG_SHA256.to_owned(), digest.hex())]),
        ..ResourceDescriptor::default()
    }
}

/// True when `builder_id` is a hosted airlock controller's, `<issuer>/builders/<profile>`
/// (an http(s) URI, `profile` of `[a-z0-9-]`, not `local`, no query or fragment), and not
/// the `<issuer>/builders/local/<profile>` that `airlock run` on a workstation signs for.
pub fn is_hosted_builder_id(builder_id: &str) -> bool {
    let Some((scheme, rest)) = builder_id.split_once("://") else {
        return false;
    };
    if !matches!(scheme, "https" | "http") || rest.contains(['?', '#']) {
        return false;
    }
    if builder_id.contains("/builders/local/") {
        return false;
    }
    let mut segments = rest.rsplit('/');
    let (Some(profile), Some(builders), Some(authority)) =
        (segments.next(), segments.next(), segments.next())
    else {
        return false;
    };
    builders == "builders"
        && !authority.is_empty()
        && profile != "local"
        && !profile.is_empty()
        && profile
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The Build level a passed provenance verification supports: `L3` when `policy` pinned the
/// builder id, the provenance carries that id, and it is a hosted controller's
/// ([`is_hosted_builder_id`]); otherwise `L1` (signed provenance that names the artifact by
/// digest, from a builder the verifier did not pin to a hardened platform).
pub fn verified_build_level(policy: &Policy, report: &VerificationReport) -> SlsaBuildLevel {
    let found = &report.statement.predicate.run_details.builder.id;
    match &policy.builder_id {
        Some(pinned) if pinned == found && is_hosted_builder_id(found) => SlsaBuildLevel::L3,
        _ => SlsaBuildLevel::L1,
    }
}

/// The default `resourceUri` of an artifact: the package URL
/// `pkg:generic/<name>?checksum=sha256:<hex>`, `name` percent-encoded (all but
/// `A-Z a-z 0-9 . - _ ~`). It names the artifact without a path of the verifying machine.
pub fn default_resource_uri(name: &str, digest: &Sha256Digest) -> String {
    format!(
        "pkg:generic/{}?checksum=sha256:{}",
        percent_encode(name),
        digest.hex()
    )
}

/// `s` with every byte but `A-Z a-z 0-9 . - _ ~` (RFC 3986 unreserved) as `%XX`.
fn percent_encode(s: &str) -> String {
    let mut encoded = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    encoded
}

/// What a VSA records as the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VsaOutcome {
    /// `PASSED`, with this Build level in `verifiedLevels`.
    Passed(SlsaBuildLevel),
    /// `FAILED`, `verifiedLevels: ["FAILED"]`.
    Failed,
}

impl VsaOutcome {
    /// The outcome of a provenance verification under `policy`: passed at
    /// [`verified_build_level`], or failed.
    pub fn of(result: &Result<VerificationReport, VerifyError>, policy: &Policy) -> Self {
        match result {
            Ok(report) => Self::Passed(verified_build_level(policy, report)),
            Err(_) => Self::Failed,
        }
    }
}

/// Builds a [`VsaStatement`]. The clock is a parameter, so the same inputs give the same
/// bytes.
#[derive(Debug, Clone)]
pub struct VsaBuilder {
    verifier: Verifier,
    time_verified: SystemTime,
    resource_uri: String,
    policy: ResourceDescriptor,
    subject: Vec<ResourceDescriptor>,
    input_attestations: Vec<ResourceDescriptor>,
}

impl VsaBuilder {
    /// A summary by `verifier_id` for `resource_uri` under `policy`, verified at
    /// `time_verified`.
    pub fn new(
        verifier_id: impl Into<String>,
        resource_uri: impl Into<String>,
        policy: ResourceDescriptor,
        time_verified: SystemTime,
    ) -> Self {
        Self {
            verifier: Verifier {
                id: verifier_id.into(),
                version: BTreeMap::new(),
            },
            time_verified,
            resource_uri: resource_uri.into(),
            policy,
            subject: Vec::new(),
            input_attestations: Vec::new(),
        }
    }

    /// Records a component of the verifier and its version in `verifier.version`.
    pub fn verifier_version(
        mut self,
        component: impl Into<String>,
        version: impl Into<String>,
    ) -> Self {
        self.verifier
            .version
            .insert(component.into(), version.into());
        self
    }

    /// Adds a subject (an artifact that was verified).
    pub fn subject(mut self, subject: ResourceDescriptor) -> Self {
        self.subject.push(subject);
        self
    }

    /// Adds an input attestation read from a file named `file_name`: `uri` is that name
    /// percent-encoded, a relative URI reference (resolved against wherever the attestation
    /// is published, never a path of the verifying machine), and `digest.sha256` is the
    /// sha256 of the file's `bytes`. (`uri` rather than `name`: the in-toto-attestation
    /// schema of this field has only `uri` and `digest`.)
    pub fn input_attestation_file(mut self, file_name: &str, bytes: &[u8]) -> Self {
        self.input_attestations.push(ResourceDescriptor {
            uri: Some(percent_encode(file_name)),
            digest: DigestSet::from([(ALG_SHA256.to_owned(), Sha256Digest::of(bytes).hex())]),
            ..ResourceDescriptor::default()
        });
        self
    }

    /// The statement, validated as [`VsaStatement::from_json`] would.
    pub fn build(self, outcome: VsaOutcome) -> Result<VsaStatement, VsaError> {
        let (verification_result, level) = match outcome {
            VsaOutcome::Passed(level) => (VerificationResult::Passed, level.as_str()),
            VsaOutcome::Failed => (VerificationResult::Failed, VERIFIED_LEVEL_FAILED),
        };
        let statement = VsaStatement {
            subject: self.subject,
            predicate: VerificationSummary {
                verifier: self.verifier,
                time_verified: Some(
                    rfc3339_utc(self.time_verified).map_err(VsaError::TimeVerified)?,
                ),
                resource_uri: self.resource_uri,
                policy: self.policy,
                input_attestations: self.input_attestations,
                verification_result,
                verified_levels: vec![level.to_owned()],
                dependency_levels: None,
                slsa_version: Some(VSA_SLSA_VERSION.to_owned()),
            },
        };
        statement.validate()?;
        Ok(statement)
    }
}

/// Validates and serializes `statement`, then signs it as an in-toto DSSE envelope with
/// `key` (its keyid set). Returns the envelope and the exact bytes signed.
pub fn sign_vsa(
    statement: &VsaStatement,
    key: &SigningKey,
) -> Result<(Envelope, Vec<u8>), VsaError> {
    statement.validate()?;
    let body = statement.to_json()?;
    let envelope = sign_envelope(IN_TOTO_PAYLOAD_TYPE, &body, key).map_err(VsaError::Sign)?;
    Ok((envelope, body))
}

/// What a VSA must say besides being validly signed, passed, and about the artifacts. `None`
/// fields are not checked (and are listed in [`VsaReport::not_checked`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VsaRequirements {
    /// Required `verifier.id`, compared exactly.
    pub verifier_id: Option<String>,
    /// Required `resourceUri`, compared exactly.
    pub resource_uri: Option<String>,
    /// Lowest acceptable Build level (a higher one satisfies it: L3 implies L2 and L1).
    pub build_level: Option<SlsaBuildLevel>,
}

/// A VSA that was accepted: the keyid that signed it, the summary, and the checks done and
/// skipped (requirements not given).
pub type VsaReport = Verified<VsaStatement>;

impl From<SubjectMismatch<'_>> for VsaError {
    fn from(mismatch: SubjectMismatch<'_>) -> Self {
        match mismatch {
            SubjectMismatch::NoArtifacts => Self::NoArtifacts,
            SubjectMismatch::NotASubject((artifact, digest)) => Self::SubjectMismatch {
                artifact: artifact.clone(),
                digest: *digest,
            },
        }
    }
}

/// Checks a VSA in the order the SLSA VSA spec gives: a trusted key's signature over the exact
/// payload, the payload and predicate types, that every artifact (name, sha256) is a subject,
/// the verifier id and resource URI if required, `verificationResult` `PASSED`, and the
/// Build level if required.
pub fn verify_vsa(
    envelope: &Envelope,
    keys: &[VerifyingKey],
    artifacts: &[(String, Sha256Digest)],
    required: &VsaRequirements,
) -> Result<VsaReport, VsaError> {
    let (verified, mut checks) =
        verify_in_toto_envelope(envelope, keys).map_err(VsaError::Signature)?;
    let mut not_checked = Vec::new();
    let mut check = |name, detail: String| checks.push(Check { name, detail });
    let statement = VsaStatement::from_json(&verified.payload)?;
    check("predicateType", SLSA_VSA_V1.to_owned());

    for detail in match_subjects(&statement.subject, artifacts)? {
        check("subject", detail);
    }

    let p = &statement.predicate;
    let mut require = |name, expected: &Option<String>, found: &str| match expected {
        Some(expected) if expected != found => Err((expected.clone(), found.to_owned())),
        Some(_) => {
            check(name, format!("{found} (as expected)"));
            Ok(())
        }
        None => {
            not_checked.push(Check {
                name,
                detail: format!("{found} (no expected value given)"),
            });
            Ok(())
        }
    };
    require("verifier.id", &required.verifier_id, &p.verifier.id)
        .map_err(|(expected, found)| VsaError::VerifierId { expected, found })?;
    require("resourceUri", &required.resource_uri, &p.resource_uri)
        .map_err(|(expected, found)| VsaError::ResourceUri { expected, found })?;

    if p.verification_result != VerificationResult::Passed {
        return Err(VsaError::NotPassed {
            result: p.verification_result,
            levels: p.verified_levels.clone(),
        });
    }
    check("verificationResult", "PASSED".to_owned());

    let levels = p.verified_levels.join(", ");
    match required.build_level {
        Some(min) if statement.build_level().is_none_or(|found| found < min) => {
            return Err(VsaError::Level {
                required: min,
                found: p.verified_levels.clone(),
            });
        }
        Some(min) => check("verifiedLevels", format!("[{levels}] (at least {min})")),
        None => not_checked.push(Check {
            name: "verifiedLevels",
            detail: format!("[{levels}] (no required level given)"),
        }),
    }

    Ok(VsaReport {
        keyid: verified.keyid,
        statement,
        checks,
        not_checked,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use serde_json::Value;

    use super::*;
    use crate::statement::Statement;

    const HOSTED: &str = "https://ci.example/builders/release";
    const VERIFIER: &str = "https://ci.example/verifiers/release-gate";

    fn key() -> SigningKey {
        SigningKey::from_ed25519_seed(&[7; 32])
    }

    fn clock() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn policy() -> Policy {
        Policy {
            builder_id: Some(HOSTED.to_owned()),
            source_uri: Some("git+https://git.example/app".to_owned()),
            build_type: None,
            allowed_external_parameters: Some(vec!["source".to_owned(), "job".to_owned()]),
        }
    }

    fn artifact() -> (String, Sha256Digest) {
        ("app".to_owned(), Sha256Digest::of(b"the artifact"))
    }

    fn builder() -> VsaBuilder {
        let (name, digest) = artifact();
        VsaBuilder::new(
            VERIFIER,
            default_resource_uri(&name, &digest),
            policy_descriptor(&policy(), &[key().verifying_key().clone()]),
            clock(),
        )
        .verifier_version("airlock", "0.1.0")
        .subject(ResourceDescriptor::sha256(name, &digest))
        .input_attestation_file("app.intoto.jsonl", b"{\"payloadType\":\"...\"}\n")
    }

    fn signed(outcome: VsaOutcome) -> Envelope {
        sign_vsa(&builder().build(outcome).unwrap(), &key())
            .unwrap()
            .0
    }

    fn keys() -> Vec<VerifyingKey> {
        vec![key().verifying_key().clone()]
    }

    /// `envelope` with its payload replaced (signature kept).
    fn with_payload(envelope: &Envelope, payload: &[u8]) -> Envelope {
        let mut forged = envelope.clone();
        forged.payload = STANDARD.encode(payload);
        forged
    }

    /// `statement` as JSON, changed by `edit`, re-signed with the real key.
    fn resigned(edit: impl FnOnce(&mut Value)) -> Envelope {
        let envelope = signed(VsaOutcome::Passed(SlsaBuildLevel::L3));
        let mut value: Value = serde_json::from_slice(&envelope.payload_bytes().unwrap()).unwrap();
        edit(&mut value);
        sign_envelope(
            IN_TOTO_PAYLOAD_TYPE,
            &serde_json::to_vec(&value).unwrap(),
            &key(),
        )
        .unwrap()
    }

    #[test]
    fn round_trip_and_every_requirement_passes() {
        let statement = builder()
            .build(VsaOutcome::Passed(SlsaBuildLevel::L3))
            .unwrap();
        let (envelope, body) = sign_vsa(&statement, &key()).unwrap();
        assert_eq!(VsaStatement::from_json(&body).unwrap(), statement);
        assert_eq!(envelope.signatures[0].keyid, key().keyid());
        let (name, digest) = artifact();
        let required = VsaRequirements {
            verifier_id: Some(VERIFIER.to_owned()),
            resource_uri: Some(default_resource_uri(&name, &digest)),
            build_level: Some(SlsaBuildLevel::L3),
        };
        let report = verify_vsa(&envelope, &keys(), &[artifact()], &required).unwrap();
        assert_eq!(report.statement, statement);
        assert!(report.not_checked.is_empty());
        let names: Vec<&str> = report.checks.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "signature",
                "payloadType",
                "predicateType",
                "subject",
                "verifier.id",
                "resourceUri",
                "verificationResult",
                "verifiedLevels"
            ]
        );
        // A lower requirement is met by a higher level; no requirement is a SKIP.
        let lower = VsaRequirements {
            build_level: Some(SlsaBuildLevel::L2),
            ..VsaRequirements::default()
        };
        let report = verify_vsa(&envelope, &keys(), &[artifact()], &lower).unwrap();
        assert_eq!(report.not_checked.len(), 2);
    }

    #[test]
    fn deterministic_bytes_with_an_injected_clock() {
        let a = signed(VsaOutcome::Passed(SlsaBuildLevel::L3));
        let b = signed(VsaOutcome::Passed(SlsaBuildLevel::L3));
        assert_eq!(a.to_json_line().unwrap(), b.to_json_line().unwrap());
        let policy_digest = Sha256Digest::of(&policy_document(&policy(), &keys()));
        let expected = format!(
            concat!(
                r#"{{"_type":"https://in-toto.io/Statement/v1","#,
                r#""subject":[{{"name":"app","digest":{{"sha256":"{artifact}"}}}}],"#,
                r#""predicateType":"https://slsa.dev/verification_summary/v1","#,
                r#""predicate":{{"verifier":{{"id":"https://ci.example/verifiers/release-gate","#,
                r#""version":{{"airlock":"0.1.0"}}}},"timeVerified":"2023-11-14T22:13:20Z","#,
                r#""resourceUri":"pkg:generic/app?checksum=sha256:{artifact}","#,
                r#""policy":{{"uri":"https://airlock.dev/verification-policies/provenance/v1","#,
                r#""digest":{{"sha256":"{policy}"}}}},"#,
                r#""inputAttestations":[{{"uri":"app.intoto.jsonl","digest":{{"sha256":"{input}"}}}}],"#,
                r#""verificationResult":"PASSED","verifiedLevels":["SLSA_BUILD_LEVEL_3"],"#,
                r#""slsaVersion":"1.0"}}}}"#
            ),
            artifact = artifact().1,
            policy = policy_digest,
            input = Sha256Digest::of(b"{\"payloadType\":\"...\"}\n"),
        );
        assert_eq!(
            String::from_utf8(a.payload_bytes().unwrap()).unwrap(),
            expected
        );
        // A different clock is a different statement.
        let later = VsaBuilder::new(
            VERIFIER,
            "r",
            policy_descriptor(&policy(), &keys()),
            clock() + Duration::from_secs(1),
        )
        .subject(ResourceDescriptor::sha256("app", &artifact().1))
        .build(VsaOutcome::Failed)
        .unwrap();
        assert_eq!(
            later.predicate.time_verified.as_deref(),
            Some("2023-11-14T22:13:21Z")
        );
    }

    #[test]
    fn policy_document_is_canonical() {
        let doc = policy_document(&policy(), &keys());
        assert_eq!(
            String::from_utf8(doc).unwrap(),
            format!(
                concat!(
                    r#"{{"allowedExternalParameters":["job","source"],"buildType":null,"#,
                    r#""builderId":"https://ci.example/builders/release","#,
                    r#""sourceUri":"git+https://git.example/app","trustedKeyids":["{}"]}}"#
                ),
                key().keyid()
            )
        );
        // Order and repetition of the inputs do not matter; what was checked does.
        let mut shuffled = policy();
        shuffled.allowed_external_parameters =
            Some(vec!["source".into(), "job".into(), "source".into()]);
        let twice = [key().verifying_key().clone(), key().verifying_key().clone()];
        assert_eq!(
            policy_document(&shuffled, &twice),
            policy_document(&policy(), &keys())
        );
        let relaxed = Policy {
            allowed_external_parameters: None,
            ..policy()
        };
        assert_ne!(
            policy_descriptor(&relaxed, &keys()),
            policy_descriptor(&policy(), &keys())
        );
        let d = policy_descriptor(&Policy::default(), &[]);
        assert_eq!(d.uri.as_deref(), Some(VSA_POLICY_URI));
        assert_eq!(d.name, None);
        assert_eq!(
            d.sha256_digest(),
            Some(Sha256Digest::of(
                br#"{"allowedExternalParameters":null,"buildType":null,"builderId":null,"sourceUri":null,"trustedKeyids":[]}"#
            ))
        );
    }

    #[test]
    fn tampered_payload_is_refused() {
        let envelope = signed(VsaOutcome::Failed);
        let forged = String::from_utf8(envelope.payload_bytes().unwrap())
            .unwrap()
            .replace(
                r#""verificationResult":"FAILED""#,
                r#""verificationResult":"PASSED""#,
            )
            .replace(r#"["FAILED"]"#, r#"["SLSA_BUILD_LEVEL_3"]"#);
        let err = verify_vsa(
            &with_payload(&envelope, forged.as_bytes()),
            &keys(),
            &[artifact()],
            &VsaRequirements::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, VsaError::Signature(VerifyError::BadSignature { .. })),
            "{err}"
        );
    }

    #[test]
    fn wrong_key_is_refused() {
        let envelope = signed(VsaOutcome::Passed(SlsaBuildLevel::L3));
        let other = SigningKey::from_ed25519_seed(&[8; 32]);
        let err = verify_vsa(
            &envelope,
            &[other.verifying_key().clone()],
            &[artifact()],
            &VsaRequirements::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, VsaError::Signature(VerifyError::UnknownKey { .. })),
            "{err}"
        );
        let err =
            verify_vsa(&envelope, &[], &[artifact()], &VsaRequirements::default()).unwrap_err();
        assert!(matches!(
            err,
            VsaError::Signature(VerifyError::NoTrustedKeys)
        ));
    }

    #[test]
    fn failed_result_is_refused_by_the_checker() {
        let envelope = signed(VsaOutcome::Failed);
        let err = verify_vsa(
            &envelope,
            &keys(),
            &[artifact()],
            &VsaRequirements::default(),
        )
        .unwrap_err();
        assert!(
            matches!(&err, VsaError::NotPassed { result: VerificationResult::Failed, levels } if levels == &["FAILED"]),
            "{err}"
        );
        assert!(err.to_string().contains("do not use it"));
    }

    #[test]
    fn unknown_predicate_type_is_refused() {
        let envelope =
            resigned(|v| v["predicateType"] = "https://slsa.dev/verification_summary/v0.2".into());
        let err = verify_vsa(
            &envelope,
            &keys(),
            &[artifact()],
            &VsaRequirements::default(),
        )
        .unwrap_err();
        assert!(matches!(err, VsaError::PredicateType { .. }), "{err}");
        // Provenance is not a VSA, and a VSA is not provenance.
        let envelope = resigned(|v| v["predicateType"] = crate::SLSA_PROVENANCE_V1.into());
        let err = verify_vsa(
            &envelope,
            &keys(),
            &[artifact()],
            &VsaRequirements::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("--provenance"), "{err}");
        let vsa = signed(VsaOutcome::Passed(SlsaBuildLevel::L3));
        assert!(Statement::from_json(&vsa.payload_bytes().unwrap()).is_err());
        // The right statement under another payload type is not an in-toto attestation.
        let other_type =
            sign_envelope("application/json", &vsa.payload_bytes().unwrap(), &key()).unwrap();
        let err = verify_vsa(&other_type, &keys(), &[artifact()], &Default::default()).unwrap_err();
        assert!(
            matches!(err, VsaError::Signature(VerifyError::PayloadType { .. })),
            "{err}"
        );
        let envelope = resigned(|v| v["_type"] = "https://in-toto.io/Statement/v0.1".into());
        let err = verify_vsa(
            &envelope,
            &keys(),
            &[artifact()],
            &VsaRequirements::default(),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                VsaError::Statement(StatementError::UnsupportedStatementType { .. })
            ),
            "{err}"
        );
    }

    #[test]
    fn requirements_and_subjects_are_enforced() {
        let envelope = signed(VsaOutcome::Passed(SlsaBuildLevel::L1));
        let check = |required: VsaRequirements| {
            verify_vsa(&envelope, &keys(), &[artifact()], &required).unwrap_err()
        };
        let err = check(VsaRequirements {
            build_level: Some(SlsaBuildLevel::L3),
            ..Default::default()
        });
        assert!(
            matches!(
                err,
                VsaError::Level {
                    required: SlsaBuildLevel::L3,
                    ..
                }
            ),
            "{err}"
        );
        let err = check(VsaRequirements {
            verifier_id: Some("https://other.example/verifier".into()),
            ..Default::default()
        });
        assert!(matches!(err, VsaError::VerifierId { .. }), "{err}");
        let err = check(VsaRequirements {
            resource_uri: Some("pkg:generic/other".into()),
            ..Default::default()
        });
        assert!(matches!(err, VsaError::ResourceUri { .. }), "{err}");
        let other = ("other".to_owned(), Sha256Digest::of(b"another artifact"));
        let err = verify_vsa(
            &envelope,
            &keys(),
            &[artifact(), other],
            &Default::default(),
        )
        .unwrap_err();
        assert!(
            matches!(&err, VsaError::SubjectMismatch { artifact, .. } if artifact == "other"),
            "{err}"
        );
        let err = verify_vsa(&envelope, &keys(), &[], &Default::default()).unwrap_err();
        assert!(matches!(err, VsaError::NoArtifacts));
        // An unevaluated Build track meets no level requirement.
        let envelope =
            resigned(|v| v["predicate"]["verifiedLevels"] = json!([BUILD_LEVEL_UNEVALUATED]));
        let err = verify_vsa(
            &envelope,
            &keys(),
            &[artifact()],
            &VsaRequirements {
                build_level: Some(SlsaBuildLevel::L0),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(matches!(err, VsaError::Level { .. }), "{err}");
    }

    #[test]
    fn strict_parsing() {
        let body = |edit: fn(&mut Value)| {
            let envelope = signed(VsaOutcome::Passed(SlsaBuildLevel::L3));
            let mut v: Value = serde_json::from_slice(&envelope.payload_bytes().unwrap()).unwrap();
            edit(&mut v);
            serde_json::to_vec(&v).unwrap()
        };
        // Extension fields named by URIs are ignored, as the spec says.
        let ok = body(|v| {
            v["predicate"]["https://acme.example/ticket"] = json!(42);
            v["predicate"]["verifier"]["https://acme.example/region"] = json!("eu");
        });
        assert!(VsaStatement::from_json(&ok).is_ok());
        let bad: [fn(&mut Value); 12] = [
            |v| v["predicate"]["surprise"] = json!(1),
            |v| v["predicate"]["verifier"]["name"] = json!("x"),
            |v| v["predicate"]["verificationResult"] = json!("MAYBE"),
            |v| v["predicate"]["verifiedLevels"] = json!([]),
            |v| {
                v["predicate"]["verifiedLevels"] =
                    json!(["SLSA_BUILD_LEVEL_3", "SLSA_BUILD_LEVEL_2"])
            },
            |v| v["predicate"]["verifiedLevels"] = json!(["SLSA_BUILD_LEVEL_4"]),
            |v| v["predicate"]["verifiedLevels"] = json!(["FAILED"]),
            |v| v["predicate"]["timeVerified"] = json!("2023-11-14 22:13:20"),
            |v| v["predicate"]["slsaVersion"] = json!("1"),
            |v| v["predicate"]["policy"] = json!({"digest": {"sha256": "ab"}}),
            |v| v["predicate"]["inputAttestations"] = json!([{"name": "p.intoto.jsonl"}]),
            |v| v["subject"] = json!([]),
        ];
        for (i, edit) in bad.into_iter().enumerate() {
            assert!(VsaStatement::from_json(&body(edit)).is_err(), "case {i}");
        }
        // Duplicate keys: two readers could see two different results.
        let text = String::from_utf8(body(|_| {})).unwrap().replace(
            r#""verificationResult":"PASSED""#,
            r#""verificationResult":"FAILED","verificationResult":"PASSED""#,
        );
        assert!(VsaStatement::from_json(text.as_bytes()).is_err());
        assert!(VsaStatement::from_json(b"not json").is_err());
        // dependencyLevels, which airlock never writes, parses when others do.
        let with_deps =
            body(|v| v["predicate"]["dependencyLevels"] = json!({"SLSA_BUILD_LEVEL_3": 2}));
        let parsed = VsaStatement::from_json(&with_deps).unwrap();
        assert_eq!(
            parsed.predicate.dependency_levels,
            Some(BTreeMap::from([("SLSA_BUILD_LEVEL_3".to_owned(), 2)]))
        );
    }

    #[test]
    fn builder_refuses_what_the_parser_would() {
        let no_subject = VsaBuilder::new(
            VERIFIER,
            "r",
            policy_descriptor(&policy(), &keys()),
            clock(),
        );
        assert!(matches!(
            no_subject.build(VsaOutcome::Failed),
            Err(VsaError::Statement(StatementError::NoSubject))
        ));
        let empty_id = VsaBuilder::new("", "r", policy_descriptor(&policy(), &keys()), clock())
            .subject(ResourceDescriptor::sha256("app", &artifact().1));
        assert!(matches!(
            empty_id.build(VsaOutcome::Failed),
            Err(VsaError::EmptyField("verifier.id"))
        ));
        let before_epoch = VsaBuilder::new(
            VERIFIER,
            "r",
            policy_descriptor(&policy(), &keys()),
            UNIX_EPOCH - Duration::from_secs(1),
        )
        .subject(ResourceDescriptor::sha256("app", &artifact().1));
        assert!(matches!(
            before_epoch.build(VsaOutcome::Failed),
            Err(VsaError::TimeVerified(_))
        ));
    }

    #[test]
    fn level_rule() {
        for hosted in [
            HOSTED,
            "http://127.0.0.1:7070/builders/untrusted-pr",
            "https://ci.example/airlock/builders/trusted",
        ] {
            assert!(is_hosted_builder_id(hosted), "{hosted}");
        }
        for not_hosted in [
            "https://localhost/builders/local/trusted",
            "https://ci.example/builders/local/release",
            "https://ci.example/builders/local",
            "https://ci.example/builders/",
            "https://ci.example/builders/Release",
            "https://ci.example/builders/release?x=1",
            "https://ci.example/runners/release",
            "https:///builders/release",
            "ftp://ci.example/builders/release",
            "ci.example/builders/release",
            "",
        ] {
            assert!(!is_hosted_builder_id(not_hosted), "{not_hosted}");
        }
    }

    #[test]
    fn level_of_a_verification_needs_a_pinned_hosted_builder() {
        use crate::{KeyAlgorithm, sign_statement, verify_provenance};
        let provenance_key = SigningKey::generate_with(KeyAlgorithm::Ed25519).unwrap();
        let statement_for = |builder_id: &str| {
            let json = format!(
                concat!(
                    r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"app","digest":{{"sha256":"{}"}}}}],"#,
                    r#""predicateType":"https://slsa.dev/provenance/v1","predicate":{{"buildDefinition":{{"#,
                    r#""buildType":"https://airlock.dev/build-types/job/v1","externalParameters":{{"job":{{}}}}}},"#,
                    r#""runDetails":{{"builder":{{"id":"{}"}},"metadata":{{"invocationId":"i","#,
                    r#""startedOn":"2024-05-01T12:00:00Z","finishedOn":"2024-05-01T12:00:01Z"}}}}}}}}"#
                ),
                artifact().1,
                builder_id
            );
            Statement::from_json(json.as_bytes()).unwrap()
        };
        let level = |builder_id: &str, policy: &Policy| {
            let (envelope, _) =
                sign_statement(&statement_for(builder_id), &provenance_key).unwrap();
            let result = verify_provenance(
                &envelope,
                &[provenance_key.verifying_key().clone()],
                &[artifact()],
                policy,
            );
            VsaOutcome::of(&result, policy)
        };
        let pinned = |id: &str| Policy {
            builder_id: Some(id.to_owned()),
            ..Policy::default()
        };
        assert_eq!(
            level(HOSTED, &pinned(HOSTED)),
            VsaOutcome::Passed(SlsaBuildLevel::L3)
        );
        // Not pinned: the trusted key could be anyone's, so the id proves nothing.
        assert_eq!(
            level(HOSTED, &Policy::default()),
            VsaOutcome::Passed(SlsaBuildLevel::L1)
        );
        let local = "https://localhost/builders/local/trusted";
        assert_eq!(
            level(local, &pinned(local)),
            VsaOutcome::Passed(SlsaBuildLevel::L1)
        );
        assert_eq!(level(local, &pinned(HOSTED)), VsaOutcome::Failed);
    }

    #[test]
    fn default_resource_uri_is_a_purl() {
        let d = Sha256Digest::of(b"x");
        assert_eq!(
            default_resource_uri("hello", &d),
            format!("pkg:generic/hello?checksum=sha256:{d}")
        );
        assert_eq!(
            default_resource_uri("my app/v1.0+b?#é", &d),
            format!("pkg:generic/my%20app%2Fv1.0%2Bb%3F%23%C3%A9?checksum=sha256:{d}")
        );
    }

    #[test]
    fn build_levels_parse() {
        for level in SlsaBuildLevel::ALL {
            assert_eq!(level.as_str().parse::<SlsaBuildLevel>().unwrap(), level);
        }
        assert!("SLSA_BUILD_LEVEL_4".parse::<SlsaBuildLevel>().is_err());
        assert!(SlsaBuildLevel::L3 > SlsaBuildLevel::L2);
    }
}
