//! The VSA predicate and statement types, parsed strictly.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};

use crate::resource_descriptor::ResourceDescriptor;
use crate::statement::{parse_statement_v1, serialize_statement, validate_subjects};
use crate::strict_json::drop_uri_named_fields;
use crate::timestamp::validate_rfc3339_utc;

use super::*;

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

pub(super) fn validate_levels(
    result: VerificationResult,
    levels: &[String],
) -> Result<(), VsaError> {
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
