//! Writing a VSA: the outcome of a verification, the builder, signing.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::digest::Sha256Digest;
use crate::dsse::Envelope;
use crate::keys::SigningKey;
use crate::resource_descriptor::{ALG_SHA256, DigestSet, ResourceDescriptor};
use crate::sign::sign_envelope;
use crate::statement::IN_TOTO_PAYLOAD_TYPE;
use crate::timestamp::rfc3339_utc;
use crate::verify::{Policy, VerificationReport, VerifyError};

use super::*;

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
