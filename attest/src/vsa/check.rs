//! Checking a VSA against requirements.

use crate::digest::Sha256Digest;
use crate::dsse::Envelope;
use crate::keys::VerifyingKey;
use crate::verify::{Check, SubjectMismatch, Verified, match_subjects, verify_in_toto_envelope};

use super::*;

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
