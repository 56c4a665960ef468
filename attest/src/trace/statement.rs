//! The signed runtime trace: an in-toto Statement v1 whose predicate is the runtime-trace v0.2
//! predicate and whose subjects are the provenance's, in a DSSE envelope.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::TraceError;
use crate::dsse::Envelope;
use crate::json_statement::{EnvelopeCheck, check_header, verify_payload};
use crate::keys::{SigningKey, VerifyingKey};
use crate::resource_descriptor::ResourceDescriptor;
use crate::sign::sign_envelope;
use crate::statement::{IN_TOTO_PAYLOAD_TYPE, STATEMENT_TYPE_V1};

/// `predicateType` of the trace statement (in-toto runtime-trace v0.2).
pub const RUNTIME_TRACE_PREDICATE_TYPE: &str = "https://in-toto.io/attestation/runtime-trace/v0.2";

/// The runtime trace statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceStatement {
    /// Always [`STATEMENT_TYPE_V1`].
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// The outputs, by sha256.
    pub subject: Vec<ResourceDescriptor>,
    /// Always [`RUNTIME_TRACE_PREDICATE_TYPE`].
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The runtime-trace predicate.
    pub predicate: Value,
}

impl TraceStatement {
    /// The statement about `subject` carrying `predicate` (from [`super::Trace::predicate`]).
    pub fn new(subject: Vec<ResourceDescriptor>, predicate: Value) -> Self {
        Self {
            statement_type: STATEMENT_TYPE_V1.to_owned(),
            subject,
            predicate_type: RUNTIME_TRACE_PREDICATE_TYPE.to_owned(),
            predicate,
        }
    }

    fn validate(&self) -> Result<(), TraceError> {
        check_header(
            &self.statement_type,
            &self.predicate_type,
            RUNTIME_TRACE_PREDICATE_TYPE,
            &self.subject,
        )
        .map_err(TraceError::Statement)?;
        if self
            .predicate
            .pointer("/monitor/type")
            .and_then(Value::as_str)
            .is_none()
            || self
                .predicate
                .pointer("/monitoredProcess/event")
                .and_then(Value::as_str)
                .is_none()
            || !self
                .predicate
                .get("monitorLog")
                .is_some_and(Value::is_object)
        {
            return Err(TraceError::Statement(
                "the predicate has no monitor.type, monitoredProcess.event or monitorLog"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    /// Signs the statement into a DSSE envelope; returns it and the exact signed bytes.
    pub fn sign(&self, key: &SigningKey) -> Result<(Envelope, Vec<u8>), TraceError> {
        self.validate()?;
        let body = serde_json::to_vec(self)
            .map_err(|e| TraceError::Statement(format!("cannot serialize: {e}")))?;
        let envelope = sign_envelope(IN_TOTO_PAYLOAD_TYPE, &body, key).map_err(TraceError::Sign)?;
        Ok((envelope, body))
    }

    /// Checks `envelope`'s signature against `keys` and parses the trace statement it carries.
    pub fn verify(envelope: &Envelope, keys: &[VerifyingKey]) -> Result<Self, TraceError> {
        let statement: Self = verify_payload(envelope, keys).map_err(|e| match e {
            EnvelopeCheck::Verify(e) => TraceError::Verify(e),
            EnvelopeCheck::Statement(m) => TraceError::Statement(m),
        })?;
        statement.validate()?;
        Ok(statement)
    }
}
