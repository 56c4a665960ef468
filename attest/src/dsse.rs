//! DSSE (Dead Simple Signing Envelope) v1: the envelope format and its pre-authentication
//! encoding (PAE), which is what signatures actually cover.

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose::STANDARD};
use serde::{Deserialize, Serialize};

/// Why an envelope could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DsseError {
    /// Not JSON, or not the DSSE envelope shape (unknown/missing field, wrong type).
    #[error("not a valid DSSE envelope: {0}")]
    Json(#[source] serde_json::Error),
    /// A base64 field does not decode.
    #[error("DSSE envelope field {field} is not valid base64: {source}")]
    Base64 {
        /// `payload` or `signatures[i].sig`.
        field: String,
        /// The decoding error.
        #[source]
        source: base64::DecodeError,
    },
    /// `payloadType` is empty.
    #[error("DSSE envelope has an empty payloadType")]
    EmptyPayloadType,
    /// `signatures` is empty, so there is nothing to verify.
    #[error("DSSE envelope has no signatures")]
    NoSignatures,
}

/// `PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, where LEN is the
/// byte length in ASCII decimal. Signatures are made over this, never over the raw payload,
/// so a payload cannot be reinterpreted under another type.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let header = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        body.len()
    );
    let mut out = Vec::with_capacity(header.len() + body.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body);
    out
}

/// Padding-tolerant decoders: DSSE allows standard or URL-safe base64, with or without padding.
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes DSSE base64: the alphabet is chosen from the characters present (the two alphabets
/// differ only in `+/` versus `-_`), so each input has one meaning.
pub(crate) fn decode_base64(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    if s.contains(['-', '_']) {
        URL_SAFE_LENIENT.decode(s)
    } else {
        STANDARD_LENIENT.decode(s)
    }
}

/// A DSSE envelope. Always written with standard padded base64 and a `keyid` on every
/// signature (securesystemslib requires one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Envelope {
    /// Media type of the payload, e.g. `application/vnd.in-toto+json`.
    pub payload_type: String,
    /// The payload, base64.
    pub payload: String,
    /// Signatures over `pae(payload_type, payload bytes)`.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature in an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// Which key made it: airlock's keyid convention is [`crate::VerifyingKey::keyid`]. DSSE
    /// makes it optional, so a missing one reads as empty.
    #[serde(default)]
    pub keyid: String,
    /// The signature bytes, base64 (ASN.1 DER for ECDSA).
    pub sig: String,
}

impl EnvelopeSignature {
    /// The decoded signature bytes.
    pub fn sig_bytes(&self) -> Result<Vec<u8>, DsseError> {
        decode_base64(&self.sig).map_err(|source| DsseError::Base64 {
            field: "sig".to_owned(),
            source,
        })
    }
}

impl Envelope {
    /// An envelope around `body` with no signatures yet.
    pub fn unsigned(payload_type: &str, body: &[u8]) -> Self {
        Self {
            payload_type: payload_type.to_owned(),
            payload: STANDARD.encode(body),
            signatures: Vec::new(),
        }
    }

    /// The decoded payload: the exact bytes that were signed (inside PAE).
    pub fn payload_bytes(&self) -> Result<Vec<u8>, DsseError> {
        decode_base64(&self.payload).map_err(|source| DsseError::Base64 {
            field: "payload".to_owned(),
            source,
        })
    }

    /// Compact JSON followed by `\n`: one line of an `.intoto.jsonl` file.
    pub fn to_json_line(&self) -> Result<String, DsseError> {
        let mut line = serde_json::to_string(self).map_err(DsseError::Json)?;
        line.push('\n');
        Ok(line)
    }

    /// Parses an envelope strictly: no unknown fields, a non-empty `payloadType`, at least one
    /// signature, and every base64 field decodable. Signatures are not checked here.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DsseError> {
        let envelope: Self = serde_json::from_slice(bytes).map_err(DsseError::Json)?;
        envelope.check_shape()?;
        Ok(envelope)
    }

    /// The structural checks of [`Envelope::from_json`], for envelopes built another way.
    pub(crate) fn check_shape(&self) -> Result<(), DsseError> {
        if self.payload_type.is_empty() {
            return Err(DsseError::EmptyPayloadType);
        }
        if self.signatures.is_empty() {
            return Err(DsseError::NoSignatures);
        }
        self.payload_bytes()?;
        for (i, sig) in self.signatures.iter().enumerate() {
            decode_base64(&sig.sig).map_err(|source| DsseError::Base64 {
                field: format!("signatures[{i}].sig"),
                source,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_spec_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
        // LEN counts bytes, not characters.
        assert_eq!(pae("t", "é".as_bytes()), "DSSEv1 1 t 2 é".as_bytes());
    }

    #[test]
    fn envelope_json_shape() {
        let mut env = Envelope::unsigned("application/vnd.in-toto+json", b"{}");
        env.signatures.push(EnvelopeSignature {
            keyid: "k".into(),
            sig: "AAEC".into(),
        });
        let line = env.to_json_line().unwrap();
        assert_eq!(
            line,
            "{\"payloadType\":\"application/vnd.in-toto+json\",\"payload\":\"e30=\",\
             \"signatures\":[{\"keyid\":\"k\",\"sig\":\"AAEC\"}]}\n"
        );
        assert_eq!(Envelope::from_json(line.as_bytes()).unwrap(), env);
        assert_eq!(env.payload_bytes().unwrap(), b"{}");
    }

    #[test]
    fn strict_parse() {
        let bad = [
            r#"{"payloadType":"t","payload":"e30=","signatures":[{"keyid":"k","sig":"AA=="}],"x":1}"#,
            r#"{"payloadType":"t","payload":"e30=","signatures":[{"keyid":"k","sig":"AA==","x":1}]}"#,
            r#"{"payloadType":"t","payload":"e30=","signatures":[]}"#,
            r#"{"payloadType":"","payload":"e30=","signatures":[{"keyid":"k","sig":"AA=="}]}"#,
            r#"{"payloadType":"t","payload":"e30=!","signatures":[{"keyid":"k","sig":"AA=="}]}"#,
            r#"{"payloadType":"t","payload":"e30=","signatures":[{"keyid":"k","sig":"A"}]}"#,
            r#"{"payloadType":"t","payloadType":"t","payload":"e30=","signatures":[{"sig":"AA=="}]}"#,
        ];
        for b in bad {
            assert!(Envelope::from_json(b.as_bytes()).is_err(), "{b}");
        }
        // keyid is optional in DSSE; URL-safe unpadded base64 is allowed.
        let ok = r#"{"payloadType":"t","payload":"e30","signatures":[{"sig":"-_8"}]}"#;
        let env = Envelope::from_json(ok.as_bytes()).unwrap();
        assert_eq!(env.signatures[0].keyid, "");
        assert_eq!(env.signatures[0].sig_bytes().unwrap(), vec![0xfb, 0xff]);
    }
}
