//! Verifying DSSE envelopes and the SLSA provenance inside them, per the SLSA verification
//! steps: signature by a trusted key, payload and predicate types, artifact digest among the
//! subjects, expected builder id, build type and source, and no unknown external parameters.

use std::fmt;

use serde_json::Value;

use crate::digest::Sha256Digest;
use crate::dsse::{DsseError, Envelope, pae};
use crate::keys::VerifyingKey;
use crate::resource_descriptor::ResourceDescriptor;
use crate::statement::{
    IN_TOTO_PAYLOAD_TYPE, SLSA_PROVENANCE_V1, STATEMENT_TYPE_V1, Statement, StatementError,
};

/// Why verification failed, by stage. Each message says what it means for the artifact.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The envelope is not a readable DSSE envelope.
    #[error(
        "cannot read the attestation envelope: {0}; pass the .intoto.jsonl or bundle airlock wrote"
    )]
    Decode(#[source] DsseError),
    /// No trusted keys were supplied.
    #[error("no trusted public key was given; pass the builder's public key to verify against")]
    NoTrustedKeys,
    /// No signature's keyid matches a trusted key.
    #[error(
        "the attestation is signed by key(s) {} and none of them is trusted here; pass the \
         signer's public key (the builder's, for provenance), or do not trust this attestation",
        keyids.join(", ")
    )]
    UnknownKey {
        /// The keyids found in the envelope.
        keyids: Vec<String>,
    },
    /// A trusted key's signature does not verify.
    #[error(
        "the signature by key {keyid} does not verify: the attestation was altered or was not \
         signed by this key; do not use the artifact"
    )]
    BadSignature {
        /// Keyid of the signature that failed (`<none>` if the envelope gave none).
        keyid: String,
    },
    /// `payloadType` is not the in-toto one.
    #[error(
        "envelope payloadType is {found:?}, expected {expected:?}: this is not an in-toto attestation"
    )]
    PayloadType {
        /// Required payload type.
        expected: &'static str,
        /// Payload type found.
        found: String,
    },
    /// The statement `_type` is not in-toto Statement v1.
    #[error(
        "statement _type is {found:?}, expected {STATEMENT_TYPE_V1:?}; this verifier only \
         accepts in-toto Statement v1"
    )]
    StatementType {
        /// `_type` found.
        found: String,
    },
    /// The predicate is not SLSA provenance v1.
    #[error(
        "predicateType is {found:?}, expected {SLSA_PROVENANCE_V1:?}; this verifier only \
         accepts SLSA provenance v1"
    )]
    PredicateType {
        /// `predicateType` found.
        found: String,
    },
    /// The signed statement is malformed.
    #[error("the signed statement is malformed: {0}")]
    Statement(#[source] StatementError),
    /// No artifacts were given, so nothing would tie the provenance to a file.
    #[error("no artifact was given; pass the artifact file(s) this provenance should describe")]
    NoArtifacts,
    /// An artifact's digest is not among the subjects.
    #[error(
        "artifact {artifact} (sha256:{digest}) is not a subject of this provenance: it is not \
         what this build produced, or this is the wrong attestation"
    )]
    SubjectMismatch {
        /// The artifact's name as given by the caller.
        artifact: String,
        /// Its digest.
        digest: Sha256Digest,
    },
    /// `builder.id` differs from the expected one.
    #[error(
        "builder.id is {found:?}, expected {expected:?}: the artifact was built by a different \
         builder (or trust level) than required"
    )]
    BuilderId {
        /// Required builder id.
        expected: String,
        /// Builder id found.
        found: String,
    },
    /// `buildType` differs from the expected one.
    #[error("buildType is {found:?}, expected {expected:?}")]
    BuildType {
        /// Required build type.
        expected: String,
        /// Build type found.
        found: String,
    },
    /// The recorded source (resolved dependency `source`, else `externalParameters.source.uri`)
    /// differs from (or lacks) the expected source.
    #[error(
        "source is {}, expected {expected:?}: the artifact was not built from the expected \
         source", found.as_deref().map_or("not recorded".to_owned(), |f| format!("{f:?}"))
    )]
    SourceUri {
        /// Required source URI.
        expected: String,
        /// The source URI found, if any.
        found: Option<String>,
    },
    /// `externalParameters` has keys the policy does not allow.
    #[error(
        "externalParameters has unexpected key(s) {}: the build was influenced by parameters \
         this policy does not know; review them before trusting the artifact",
        unknown.join(", ")
    )]
    ExternalParameters {
        /// The disallowed top-level keys.
        unknown: Vec<String>,
    },
}

/// The result of a successful envelope signature check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEnvelope {
    /// Keyid of the trusted key whose signature verified.
    pub keyid: String,
    /// The exact payload bytes that the signature covers.
    pub payload: Vec<u8>,
}

/// What the provenance must say besides being validly signed. `None` fields are not checked
/// (and are listed in [`VerificationReport::not_checked`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Required `runDetails.builder.id`, compared exactly.
    pub builder_id: Option<String>,
    /// Required source URI, compared exactly with the `uri` of the resolved dependency named
    /// `source` (airlock's build type), else with `externalParameters.source.uri`;
    /// provenance that records neither fails.
    pub source_uri: Option<String>,
    /// Required `buildDefinition.buildType`, compared exactly.
    pub build_type: Option<String>,
    /// If set, the only top-level keys `externalParameters` may have; any other is rejected,
    /// as SLSA recommends, since an unknown parameter could have changed the build.
    pub allowed_external_parameters: Option<Vec<String>>,
}

/// One verification step, for printing what was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Short name, e.g. `signature` or `builder.id`.
    pub name: &'static str,
    /// What exactly was compared or found.
    pub detail: String,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.detail)
    }
}

/// A successful verification of an attestation whose statement is `S`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified<S> {
    /// Keyid of the key that signed it.
    pub keyid: String,
    /// The verified statement.
    pub statement: S,
    /// Every check performed, in order; all passed.
    pub checks: Vec<Check>,
    /// Checks skipped because the caller did not ask for them.
    pub not_checked: Vec<Check>,
}

/// A successful provenance verification.
pub type VerificationReport = Verified<Statement>;

/// Verifies that a trusted key signed the envelope, over the PAE of the exact payload bytes.
///
/// A signature is matched to the key with the same keyid; a signature without a keyid is tried
/// against every key. One valid signature from a trusted key suffices.
pub fn verify_envelope(
    envelope: &Envelope,
    keys: &[VerifyingKey],
) -> Result<VerifiedEnvelope, VerifyError> {
    envelope.check_shape().map_err(VerifyError::Decode)?;
    if keys.is_empty() {
        return Err(VerifyError::NoTrustedKeys);
    }
    let payload = envelope.payload_bytes().map_err(VerifyError::Decode)?;
    // Built from the decoded bytes as received; re-serializing the statement could change
    // them and would verify something other than what was signed.
    let message = pae(&envelope.payload_type, &payload);
    let mut failed: Option<String> = None;
    let mut unknown = Vec::new();
    for signature in &envelope.signatures {
        let sig = signature.sig_bytes().map_err(VerifyError::Decode)?;
        let mut candidates = keys
            .iter()
            .filter(|k| signature.keyid.is_empty() || k.keyid() == signature.keyid)
            .peekable();
        if candidates.peek().is_none() {
            unknown.push(signature.keyid.clone());
            continue;
        }
        for key in candidates {
            if key.verify(&message, &sig).is_ok() {
                return Ok(VerifiedEnvelope {
                    keyid: key.keyid().to_owned(),
                    payload,
                });
            }
        }
        failed.get_or_insert_with(|| match signature.keyid.as_str() {
            "" => "<none>".to_owned(),
            id => id.to_owned(),
        });
    }
    Err(match failed {
        Some(keyid) => VerifyError::BadSignature { keyid },
        None => VerifyError::UnknownKey { keyids: unknown },
    })
}

/// The first steps for any in-toto attestation: [`verify_envelope`], then the in-toto
/// `payloadType`. Returns the verified envelope and those two checks.
pub(crate) fn verify_in_toto_envelope(
    envelope: &Envelope,
    keys: &[VerifyingKey],
) -> Result<(VerifiedEnvelope, Vec<Check>), VerifyError> {
    let verified = verify_envelope(envelope, keys)?;
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(VerifyError::PayloadType {
            expected: IN_TOTO_PAYLOAD_TYPE,
            found: envelope.payload_type.clone(),
        });
    }
    let checks = vec![
        Check {
            name: "signature",
            detail: format!(
                "DSSE signature verifies with trusted key {}",
                verified.keyid
            ),
        },
        Check {
            name: "payloadType",
            detail: IN_TOTO_PAYLOAD_TYPE.to_owned(),
        },
    ];
    Ok((verified, checks))
}

/// Verifies a provenance attestation for `artifacts` (name, sha256) under `policy`; see the
/// module docs for the steps. The report lists each check so a CLI can show what was verified.
pub fn verify_provenance(
    envelope: &Envelope,
    keys: &[VerifyingKey],
    artifacts: &[(String, Sha256Digest)],
    policy: &Policy,
) -> Result<VerificationReport, VerifyError> {
    let (verified, mut checks) = verify_in_toto_envelope(envelope, keys)?;
    let mut not_checked = Vec::new();
    let mut check = |name, detail: String| checks.push(Check { name, detail });

    let statement = Statement::from_json(&verified.payload).map_err(|e| match e {
        StatementError::UnsupportedStatementType { found } => VerifyError::StatementType { found },
        StatementError::UnsupportedPredicateType { found } => VerifyError::PredicateType { found },
        other => VerifyError::Statement(other),
    })?;
    check("_type", STATEMENT_TYPE_V1.to_owned());
    check("predicateType", SLSA_PROVENANCE_V1.to_owned());
    check(
        "statement",
        "well-formed in-toto v1 statement with SLSA provenance v1 predicate".to_owned(),
    );

    for detail in match_subjects(&statement.subject, artifacts)? {
        check("subject", detail);
    }

    let def = &statement.predicate.build_definition;
    let builder_id = &statement.predicate.run_details.builder.id;
    match &policy.builder_id {
        Some(expected) if expected != builder_id => {
            return Err(VerifyError::BuilderId {
                expected: expected.clone(),
                found: builder_id.clone(),
            });
        }
        Some(_) => check("builder.id", format!("{builder_id} (as expected)")),
        None => not_checked.push(Check {
            name: "builder.id",
            detail: format!("{builder_id} (no expected builder id given)"),
        }),
    }

    match &policy.build_type {
        Some(expected) if *expected != def.build_type => {
            return Err(VerifyError::BuildType {
                expected: expected.clone(),
                found: def.build_type.clone(),
            });
        }
        Some(_) => check("buildType", format!("{} (as expected)", def.build_type)),
        None => not_checked.push(Check {
            name: "buildType",
            detail: format!("{} (no expected build type given)", def.build_type),
        }),
    }

    // The source is the resolved dependency named "source" (airlock's build type); other
    // build types record it as `externalParameters.source.uri`.
    let source_uri = def
        .resolved_dependencies
        .iter()
        .find(|d| d.name.as_deref() == Some("source"))
        .and_then(|d| d.uri.as_deref())
        .or_else(|| {
            def.external_parameters
                .get("source")
                .and_then(|s| s.get("uri"))
                .and_then(Value::as_str)
        });
    match &policy.source_uri {
        Some(expected) if source_uri != Some(expected.as_str()) => {
            return Err(VerifyError::SourceUri {
                expected: expected.clone(),
                found: source_uri.map(str::to_owned),
            });
        }
        Some(expected) => check("source", format!("{expected} (as expected)")),
        None => not_checked.push(Check {
            name: "source",
            detail: format!(
                "{} (no expected source given)",
                source_uri.unwrap_or("not recorded")
            ),
        }),
    }

    let keys_present: Vec<&String> = def
        .external_parameters
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    match &policy.allowed_external_parameters {
        Some(allowed) => {
            let unknown: Vec<String> = keys_present
                .iter()
                .filter(|k| !allowed.contains(k))
                .map(|k| (*k).clone())
                .collect();
            if !unknown.is_empty() {
                return Err(VerifyError::ExternalParameters { unknown });
            }
            check(
                "externalParameters",
                format!(
                    "only known keys: {}",
                    keys_present
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        None => not_checked.push(Check {
            name: "externalParameters",
            detail: "keys not restricted (no allowed list given)".to_owned(),
        }),
    }

    Ok(VerificationReport {
        keyid: verified.keyid,
        statement,
        checks,
        not_checked,
    })
}

/// Why artifacts could not all be matched to subjects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubjectMismatch<'a> {
    /// No artifact was given.
    NoArtifacts,
    /// This artifact (name, sha256) is no subject.
    NotASubject(&'a (String, Sha256Digest)),
}

impl From<SubjectMismatch<'_>> for VerifyError {
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

/// Finds each artifact (name, sha256) among `subjects` by digest. Returns one line per
/// artifact saying which subject it matched; at least one artifact is required.
pub(crate) fn match_subjects<'a>(
    subjects: &[ResourceDescriptor],
    artifacts: &'a [(String, Sha256Digest)],
) -> Result<Vec<String>, SubjectMismatch<'a>> {
    if artifacts.is_empty() {
        return Err(SubjectMismatch::NoArtifacts);
    }
    artifacts
        .iter()
        .map(|artifact| {
            let (name, digest) = artifact;
            subjects
                .iter()
                .find(|s| s.sha256_digest().as_ref() == Some(digest))
                .map(|subject| {
                    format!(
                        "{name} sha256:{digest} matches subject {:?}",
                        subject.name.as_deref().unwrap_or("")
                    )
                })
                .ok_or(SubjectMismatch::NotASubject(artifact))
        })
        .collect()
}
