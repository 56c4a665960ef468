//! The signed SBOM: an in-toto Statement v1 whose predicate is the SPDX 2.3 document and
//! whose subjects are the job's outputs (the provenance's subjects), in a DSSE envelope.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::SbomError;
use crate::dsse::Envelope;
use crate::keys::{SigningKey, VerifyingKey};
use crate::resource_descriptor::ResourceDescriptor;
use crate::sign::sign_envelope;
use crate::statement::{IN_TOTO_PAYLOAD_TYPE, STATEMENT_TYPE_V1};
use crate::verify::verify_envelope;

/// `predicateType` of the SBOM statement: an SPDX 2.3 document.
pub const SPDX_PREDICATE_TYPE: &str = "https://spdx.dev/Document/v2.3";

/// The SBOM statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SbomStatement {
    /// Always [`STATEMENT_TYPE_V1`].
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// The outputs, by sha256.
    pub subject: Vec<ResourceDescriptor>,
    /// Always [`SPDX_PREDICATE_TYPE`].
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The SPDX document.
    pub predicate: Value,
}

impl SbomStatement {
    /// The statement about `subject` carrying `spdx` (an SPDX document as JSON).
    pub fn new(subject: Vec<ResourceDescriptor>, spdx: Value) -> Self {
        Self {
            statement_type: STATEMENT_TYPE_V1.to_owned(),
            subject,
            predicate_type: SPDX_PREDICATE_TYPE.to_owned(),
            predicate: spdx,
        }
    }

    fn validate(&self) -> Result<(), SbomError> {
        if self.statement_type != STATEMENT_TYPE_V1 {
            return Err(SbomError::Statement(format!(
                "_type is {:?}, not {STATEMENT_TYPE_V1:?}",
                self.statement_type
            )));
        }
        if self.predicate_type != SPDX_PREDICATE_TYPE {
            return Err(SbomError::Statement(format!(
                "predicateType is {:?}, not {SPDX_PREDICATE_TYPE:?}",
                self.predicate_type
            )));
        }
        if self.subject.is_empty() {
            return Err(SbomError::Statement("no subject".to_owned()));
        }
        for (i, subject) in self.subject.iter().enumerate() {
            subject
                .validate()
                .map_err(|e| SbomError::Statement(format!("subject[{i}]: {e}")))?;
            if subject.digest.is_empty() {
                return Err(SbomError::Statement(format!("subject[{i}] has no digest")));
            }
        }
        if self.predicate.get("spdxVersion").and_then(Value::as_str) != Some("SPDX-2.3") {
            return Err(SbomError::Statement(
                "the predicate is not an SPDX-2.3 document".to_owned(),
            ));
        }
        Ok(())
    }

    /// Signs the statement into a DSSE envelope; returns it and the exact signed bytes.
    pub fn sign(&self, key: &SigningKey) -> Result<(Envelope, Vec<u8>), SbomError> {
        self.validate()?;
        let body = serde_json::to_vec(self)
            .map_err(|e| SbomError::Statement(format!("cannot serialize: {e}")))?;
        let envelope = sign_envelope(IN_TOTO_PAYLOAD_TYPE, &body, key).map_err(SbomError::Sign)?;
        Ok((envelope, body))
    }

    /// Checks `envelope`'s signature against `keys` and parses the SBOM statement it carries.
    pub fn verify(envelope: &Envelope, keys: &[VerifyingKey]) -> Result<Self, SbomError> {
        let verified = verify_envelope(envelope, keys).map_err(SbomError::Verify)?;
        if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
            return Err(SbomError::Statement(format!(
                "payloadType is {:?}, not {IN_TOTO_PAYLOAD_TYPE:?}",
                envelope.payload_type
            )));
        }
        let statement: Self = serde_json::from_slice(&verified.payload)
            .map_err(|e| SbomError::Statement(format!("malformed statement: {e}")))?;
        statement.validate()?;
        Ok(statement)
    }
}
