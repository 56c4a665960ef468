//! What the statements airlock signs beside its provenance (SBOM, runtime trace) share: an
//! in-toto Statement v1 whose predicate is plain JSON, its header checks, and the DSSE
//! envelope checks before its payload is parsed. Each statement type adds its own predicate
//! check and error type on top.

use serde::de::DeserializeOwned;

use crate::dsse::Envelope;
use crate::keys::VerifyingKey;
use crate::resource_descriptor::ResourceDescriptor;
use crate::statement::{IN_TOTO_PAYLOAD_TYPE, STATEMENT_TYPE_V1};
use crate::verify::{VerifyError, verify_envelope};

/// Why an envelope does not carry a statement of the expected shape.
#[derive(Debug)]
pub(crate) enum EnvelopeCheck {
    /// The signature did not verify.
    Verify(VerifyError),
    /// The envelope or the statement is not what it must be.
    Statement(String),
}

/// Checks `_type`, `predicateType` (against `expected`) and the subjects (at least one, each
/// valid and with a digest).
pub(crate) fn check_header(
    statement_type: &str,
    predicate_type: &str,
    expected: &str,
    subject: &[ResourceDescriptor],
) -> Result<(), String> {
    if statement_type != STATEMENT_TYPE_V1 {
        return Err(format!(
            "_type is {statement_type:?}, not {STATEMENT_TYPE_V1:?}"
        ));
    }
    if predicate_type != expected {
        return Err(format!(
            "predicateType is {predicate_type:?}, not {expected:?}"
        ));
    }
    if subject.is_empty() {
        return Err("no subject".to_owned());
    }
    for (i, subject) in subject.iter().enumerate() {
        subject
            .validate()
            .map_err(|e| format!("subject[{i}]: {e}"))?;
        if subject.digest.is_empty() {
            return Err(format!("subject[{i}] has no digest"));
        }
    }
    Ok(())
}

/// Checks `envelope`'s signature against `keys` and its in-toto payload type, then parses
/// the payload as `T` (whose own checks the caller runs).
pub(crate) fn verify_payload<T: DeserializeOwned>(
    envelope: &Envelope,
    keys: &[VerifyingKey],
) -> Result<T, EnvelopeCheck> {
    let verified = verify_envelope(envelope, keys).map_err(EnvelopeCheck::Verify)?;
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(EnvelopeCheck::Statement(format!(
            "payloadType is {:?}, not {IN_TOTO_PAYLOAD_TYPE:?}",
            envelope.payload_type
        )));
    }
    serde_json::from_slice(&verified.payload)
        .map_err(|e| EnvelopeCheck::Statement(format!("malformed statement: {e}")))
}
