//! The signed SBOM: an in-toto Statement v1 whose predicate is the SPDX 2.3 document and
//! whose subjects are the job's outputs (the provenance's subjects), in a DSSE envelope.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::SbomError;
use crate::dsse::Envelope;
use crate::json_statement::{EnvelopeCheck, check_header, verify_payload};
use crate::keys::{SigningKey, VerifyingKey};
use crate::resource_descriptor::ResourceDescriptor;
use crate::sign::sign_envelope;
use crate::statement::{IN_TOTO_PAYLOAD_TYPE, STATEMENT_TYPE_V1};

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
        check_header(
            &self.statement_type,
            &self.predicate_type,
            SPDX_PREDICATE_TYPE,
            &self.subject,
        )
        .map_err(SbomError::Statement)?;
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
        let statement: Self = verify_payload(envelope, keys).map_err(|e| match e {
            EnvelopeCheck::Verify(e) => SbomError::Verify(e),
            EnvelopeCheck::Statement(m) => SbomError::Statement(m),
        })?;
        statement.validate()?;
        Ok(statement)
    }
}
