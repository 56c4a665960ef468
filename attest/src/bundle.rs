//! Sigstore bundle v0.3, public-key variant: a DSSE envelope plus a hint naming the key, the
//! file form that cosign (`verify-blob-attestation --key … --insecure-ignore-tlog`) and
//! `@sigstore/verify` read.
//!
//! airlock signs with its own keys and uses no transparency log, so `tlogEntries` is written
//! empty and `timestampVerificationData` is omitted (both allowed by the protobuf-specs
//! schema). When reading, such entries are kept as JSON but never relied upon: trust comes
//! only from the DSSE signature and the caller's keys.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dsse::{DsseError, Envelope};
use crate::strict_json::parse_unique_keys;

/// `mediaType` of a Sigstore bundle v0.3.
pub const BUNDLE_MEDIA_TYPE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// Why a bundle could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Not JSON, a duplicate key, or not the bundle shape (unknown/missing field, wrong type).
    #[error("not a valid Sigstore bundle: {0}")]
    Json(#[source] serde_json::Error),
    /// `mediaType` is not bundle v0.3.
    #[error("unsupported bundle mediaType {found:?}; only {BUNDLE_MEDIA_TYPE_V03:?} is accepted")]
    UnsupportedMediaType {
        /// The `mediaType` found (empty if absent).
        found: String,
    },
    /// The verification material is a certificate rather than a public-key hint.
    #[error(
        "bundle verification material is {found:?}; airlock only reads public-key bundles \
         (verificationMaterial.publicKey)"
    )]
    UnsupportedVerificationMaterial {
        /// The material's field name, e.g. `certificate`.
        found: String,
    },
    /// The bundle holds a plain message signature instead of a DSSE envelope.
    #[error("bundle has no dsseEnvelope; airlock attestations are DSSE envelopes")]
    NotDsse,
    /// The envelope has zero or several signatures; a public-key bundle names exactly one key.
    #[error("a public-key bundle needs exactly one envelope signature, found {found}")]
    SignatureCount {
        /// Number of signatures found.
        found: usize,
    },
    /// The single signature has no keyid to use as the hint.
    #[error("the envelope signature has no keyid to use as the bundle's publicKey.hint")]
    MissingKeyid,
    /// `publicKey.hint` differs from the signature's keyid.
    #[error("bundle publicKey.hint {hint:?} does not match the signature keyid {keyid:?}")]
    HintMismatch {
        /// The hint.
        hint: String,
        /// The signature's keyid.
        keyid: String,
    },
    /// The embedded envelope is malformed.
    #[error(transparent)]
    Dsse(#[from] DsseError),
}

/// A Sigstore bundle v0.3 wrapping one signed DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Bundle {
    /// Always [`BUNDLE_MEDIA_TYPE_V03`].
    pub media_type: String,
    /// How to find the verification key.
    pub verification_material: VerificationMaterial,
    /// The signed attestation.
    pub dsse_envelope: Envelope,
}

/// `verificationMaterial` of a public-key bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerificationMaterial {
    /// Names the key out of band.
    pub public_key: PublicKeyIdentifier,
    /// Transparency log entries: empty when airlock writes; not verified when read.
    #[serde(default)]
    pub tlog_entries: Vec<Value>,
    /// RFC 3161 timestamps: omitted when airlock writes; not verified when read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_verification_data: Option<Value>,
}

/// `verificationMaterial.publicKey`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyIdentifier {
    /// The keyid of the signing key (see [`crate::VerifyingKey::keyid`]).
    pub hint: String,
}

impl Bundle {
    /// Wraps a signed envelope; it must have exactly one signature, with a keyid.
    pub fn from_envelope(envelope: &Envelope) -> Result<Self, BundleError> {
        envelope.check_shape()?;
        let keyid = single_keyid(envelope)?;
        Ok(Self {
            media_type: BUNDLE_MEDIA_TYPE_V03.to_owned(),
            verification_material: VerificationMaterial {
                public_key: PublicKeyIdentifier {
                    hint: keyid.to_owned(),
                },
                tlog_entries: Vec::new(),
                timestamp_verification_data: None,
            },
            dsse_envelope: envelope.clone(),
        })
    }

    /// Compact JSON.
    pub fn to_json(&self) -> Result<String, BundleError> {
        serde_json::to_string(self).map_err(BundleError::Json)
    }

    /// Parses strictly: v0.3 media type, public-key material whose hint equals the single
    /// signature's keyid, a well-formed DSSE envelope, no unknown fields or duplicate keys.
    pub fn from_json(bytes: &[u8]) -> Result<Self, BundleError> {
        let value = parse_unique_keys(bytes).map_err(BundleError::Json)?;
        // Look at the discriminating fields first so that other bundle kinds get an error
        // naming what they are rather than "unknown field".
        let media_type = value.get("mediaType").and_then(Value::as_str).unwrap_or("");
        if media_type != BUNDLE_MEDIA_TYPE_V03 {
            return Err(BundleError::UnsupportedMediaType {
                found: media_type.to_owned(),
            });
        }
        let material = value.get("verificationMaterial").and_then(Value::as_object);
        if let Some(material) = material
            && !material.contains_key("publicKey")
            && let Some(other) = ["certificate", "x509CertificateChain"]
                .into_iter()
                .find(|k| material.contains_key(*k))
        {
            return Err(BundleError::UnsupportedVerificationMaterial {
                found: other.to_owned(),
            });
        }
        if value.get("dsseEnvelope").is_none() && value.get("messageSignature").is_some() {
            return Err(BundleError::NotDsse);
        }
        let bundle: Self = serde_json::from_value(value).map_err(BundleError::Json)?;
        bundle.dsse_envelope.check_shape()?;
        let keyid = single_keyid(&bundle.dsse_envelope)?;
        let hint = &bundle.verification_material.public_key.hint;
        if hint != keyid {
            return Err(BundleError::HintMismatch {
                hint: hint.clone(),
                keyid: keyid.to_owned(),
            });
        }
        Ok(bundle)
    }

    /// The envelope inside, for [`crate::verify_provenance`].
    pub fn into_envelope(self) -> Envelope {
        self.dsse_envelope
    }
}

fn single_keyid(envelope: &Envelope) -> Result<&str, BundleError> {
    let [signature] = envelope.signatures.as_slice() else {
        return Err(BundleError::SignatureCount {
            found: envelope.signatures.len(),
        });
    };
    if signature.keyid.is_empty() {
        return Err(BundleError::MissingKeyid);
    }
    Ok(&signature.keyid)
}
