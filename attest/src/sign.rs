//! Producing signed DSSE envelopes.

use crate::dsse::{Envelope, EnvelopeSignature, pae};
use crate::keys::{KeyError, SigningKey};
use crate::statement::{IN_TOTO_PAYLOAD_TYPE, Statement, StatementError};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Why an envelope could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The statement is invalid; airlock never signs a statement its own verifier would reject.
    #[error("refusing to sign an invalid statement: {0}")]
    InvalidStatement(#[source] StatementError),
    /// The statement could not be serialized.
    #[error("cannot serialize the statement: {0}")]
    Serialize(#[source] serde_json::Error),
    /// The key failed to sign.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Signs `body` as a DSSE envelope of `payload_type`: the signature covers
/// `pae(payload_type, body)` (ECDSA P-256 with SHA-256 as ASN.1 DER, or Ed25519 directly over
/// the PAE bytes) and carries the key's keyid.
pub fn sign_envelope(
    payload_type: &str,
    body: &[u8],
    key: &SigningKey,
) -> Result<Envelope, SignError> {
    let sig = key.sign(&pae(payload_type, body))?;
    let mut envelope = Envelope::unsigned(payload_type, body);
    envelope.signatures.push(EnvelopeSignature {
        keyid: key.keyid().to_owned(),
        sig: STANDARD.encode(sig),
    });
    Ok(envelope)
}

/// Validates and serializes `statement`, then signs it as an in-toto DSSE envelope.
/// Returns the envelope and the exact JSON bytes that were signed.
pub fn sign_statement(
    statement: &Statement,
    key: &SigningKey,
) -> Result<(Envelope, Vec<u8>), SignError> {
    statement.validate().map_err(SignError::InvalidStatement)?;
    let body = statement.to_json().map_err(SignError::Serialize)?;
    let envelope = sign_envelope(IN_TOTO_PAYLOAD_TYPE, &body, key)?;
    Ok((envelope, body))
}
