//! in-toto Statement v1 carrying a SLSA provenance v1 predicate.
//!
//! Parsing reads `_type` and `predicateType` first and dispatches on them, so an attestation of
//! another version fails with an error naming that version instead of a confusing schema error
//! (and so no input is ever "tried" against several parsers until one happens to accept it).

use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_json::Value;

use crate::provenance::{Provenance, ProvenanceError, drop_predicate_extension_fields};
use crate::strict_json::{drop_extension_fields, drop_extension_fields_each, parse_unique_keys};

pub use crate::resource_descriptor::{DigestSet, ResourceDescriptor, ResourceDescriptorError};

/// `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE_V1: &str = "https://in-toto.io/Statement/v1";
/// `predicateType` of SLSA provenance v1 (the same URI covers SLSA v1.0, v1.1 and v1.2).
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// DSSE `payloadType` of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Why bytes are not an acceptable in-toto v1 / SLSA provenance v1 statement.
#[derive(Debug, thiserror::Error)]
pub enum StatementError {
    /// Not JSON, a duplicate key, or JSON that does not match the v1 schema (unknown or missing
    /// field, wrong type).
    #[error("statement JSON is malformed or does not match in-toto Statement v1: {0}")]
    Json(#[source] serde_json::Error),
    /// `_type` or `predicateType` is absent or not a string.
    #[error("statement has no string {0:?} field")]
    MissingField(&'static str),
    /// `_type` is not in-toto Statement v1.
    #[error(
        "unsupported statement _type {found:?}: only {STATEMENT_TYPE_V1:?} is accepted; \
         regenerate the attestation with a current producer"
    )]
    UnsupportedStatementType {
        /// The `_type` found.
        found: String,
    },
    /// `predicateType` is not SLSA provenance v1.
    #[error(
        "unsupported predicateType {found:?}: only {SLSA_PROVENANCE_V1:?} is accepted \
         (provenance v0.2 and other predicates are not verified)"
    )]
    UnsupportedPredicateType {
        /// The `predicateType` found.
        found: String,
    },
    /// `subject` is empty, so the statement is about nothing.
    #[error("statement has no subject")]
    NoSubject,
    /// A subject is invalid.
    #[error("subject[{index}]: {source}")]
    Subject {
        /// Index in `subject`.
        index: usize,
        /// What is wrong with it.
        #[source]
        source: ResourceDescriptorError,
    },
    /// A subject has no digest (in-toto v1 requires one for every subject).
    #[error("subject[{index}] has no digest")]
    SubjectWithoutDigest {
        /// Index in `subject`.
        index: usize,
    },
    /// The provenance predicate is invalid.
    #[error("predicate: {0}")]
    Provenance(#[from] ProvenanceError),
}

/// An in-toto Statement v1: "these subjects were produced as this provenance describes".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The artifacts the statement is about, each with a digest.
    pub subject: Vec<ResourceDescriptor>,
    /// Always [`SLSA_PROVENANCE_V1`] for statements airlock produces or accepts.
    pub predicate_type: String,
    /// The provenance.
    pub predicate: Provenance,
}

/// Serializes as `{"_type", "subject", "predicateType", "predicate"}` in that order, so the
/// bytes that get signed are the same for the same statement.
impl Serialize for Statement {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_statement(
            serializer,
            &self.subject,
            &self.predicate_type,
            &self.predicate,
        )
    }
}

/// Writes an in-toto Statement v1 as `{"_type", "subject", "predicateType", "predicate"}`, in
/// that order, whatever the predicate: the one serialization every statement airlock signs
/// (provenance, verification summaries) goes through.
pub(crate) fn serialize_statement<S: Serializer, P: Serialize>(
    serializer: S,
    subject: &[ResourceDescriptor],
    predicate_type: &str,
    predicate: &P,
) -> Result<S::Ok, S::Error> {
    let mut s = serializer.serialize_struct("Statement", 4)?;
    s.serialize_field("_type", STATEMENT_TYPE_V1)?;
    s.serialize_field("subject", subject)?;
    s.serialize_field("predicateType", predicate_type)?;
    s.serialize_field("predicate", predicate)?;
    s.end()
}

/// Reads the parts every in-toto Statement v1 shares, before a predicate is chosen: parses
/// `bytes` with no duplicate keys, requires `_type` to be v1, drops `<vendor>_<field>`
/// extension fields from the statement and its subjects, and returns the document with its
/// `predicateType` (which the caller dispatches on).
pub(crate) fn parse_statement_v1(bytes: &[u8]) -> Result<(Value, String), StatementError> {
    let mut value = parse_unique_keys(bytes).map_err(StatementError::Json)?;
    let field = |name: &'static str| -> Result<String, StatementError> {
        value
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(StatementError::MissingField(name))
    };
    let statement_type = field("_type")?;
    let predicate_type = field("predicateType")?;
    if statement_type != STATEMENT_TYPE_V1 {
        return Err(StatementError::UnsupportedStatementType {
            found: statement_type,
        });
    }
    drop_extension_fields(Some(&mut value));
    drop_extension_fields_each(value.get_mut("subject"));
    Ok((value, predicate_type))
}

/// The subject rules of in-toto v1: at least one subject, each a valid descriptor with a
/// digest.
pub(crate) fn validate_subjects(subject: &[ResourceDescriptor]) -> Result<(), StatementError> {
    if subject.is_empty() {
        return Err(StatementError::NoSubject);
    }
    for (index, subject) in subject.iter().enumerate() {
        subject
            .validate()
            .map_err(|source| StatementError::Subject { index, source })?;
        if subject.digest.is_empty() {
            return Err(StatementError::SubjectWithoutDigest { index });
        }
    }
    Ok(())
}

/// The v1 wire shape, decoded only after `_type`/`predicateType` have selected it.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StatementV1Provenance {
    #[serde(rename = "_type")]
    _type: String,
    subject: Vec<ResourceDescriptor>,
    predicate_type: String,
    predicate: Provenance,
}

impl Statement {
    /// A SLSA provenance v1 statement about `subject`.
    pub fn new(subject: Vec<ResourceDescriptor>, predicate: Provenance) -> Self {
        Self {
            subject,
            predicate_type: SLSA_PROVENANCE_V1.to_owned(),
            predicate,
        }
    }

    /// Parses and validates a statement strictly: v1 `_type` and provenance v1
    /// `predicateType` only, no duplicate keys, no unknown fields. `<vendor>_<field>`
    /// extension fields, which SLSA says consumers should ignore, are dropped from the objects
    /// the spec defines (never from free-form ones like `externalParameters`).
    pub fn from_json(bytes: &[u8]) -> Result<Self, StatementError> {
        let (mut value, predicate_type) = parse_statement_v1(bytes)?;
        match predicate_type.as_str() {
            SLSA_PROVENANCE_V1 => {
                if let Some(predicate) = value.get_mut("predicate") {
                    drop_predicate_extension_fields(predicate);
                }
                let wire: StatementV1Provenance =
                    serde_json::from_value(value).map_err(StatementError::Json)?;
                let statement = Self {
                    subject: wire.subject,
                    predicate_type: wire.predicate_type,
                    predicate: wire.predicate,
                };
                statement.validate()?;
                Ok(statement)
            }
            _ => Err(StatementError::UnsupportedPredicateType {
                found: predicate_type,
            }),
        }
    }

    /// Serializes to compact JSON, the exact bytes that get signed.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Checks the rules serde cannot express: provenance v1 predicate type, at least one
    /// subject, every subject with a well-formed digest, and a valid predicate.
    pub fn validate(&self) -> Result<(), StatementError> {
        if self.predicate_type != SLSA_PROVENANCE_V1 {
            return Err(StatementError::UnsupportedPredicateType {
                found: self.predicate_type.clone(),
            });
        }
        validate_subjects(&self.subject)?;
        self.predicate.validate()?;
        Ok(())
    }
}
