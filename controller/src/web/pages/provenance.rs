//! A succeeded job's provenance as the job page shows it: the DSSE envelope's payload
//! decoded and pretty-printed (the in-toto statement), with the envelope's payload type and
//! key ids. Only for display: verifying is `airlock verify`'s job.

use base64::Engine as _;
use serde::Deserialize;

/// The decoded envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProvenanceView {
    /// The envelope's `payloadType`.
    pub(crate) payload_type: String,
    /// The key ids of its signatures.
    pub(crate) keyids: Vec<String>,
    /// The in-toto statement, pretty-printed JSON.
    pub(crate) statement: String,
}

/// Why an envelope could not be shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProvenanceViewError {
    /// The envelope is not DSSE JSON.
    #[error("the stored envelope is not DSSE JSON: {0}")]
    Envelope(String),
    /// The payload is not base64.
    #[error("the envelope's payload is not base64: {0}")]
    Payload(String),
    /// The payload is not JSON.
    #[error("the envelope's payload is not JSON: {0}")]
    Statement(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload_type: String,
    payload: String,
    #[serde(default)]
    signatures: Vec<Signature>,
}

#[derive(Deserialize)]
struct Signature {
    #[serde(default)]
    keyid: String,
}

/// Decodes the stored envelope (one JSON line).
pub(crate) fn decode(envelope_json: &str) -> Result<ProvenanceView, ProvenanceViewError> {
    let envelope: Envelope = serde_json::from_str(envelope_json.trim())
        .map_err(|e| ProvenanceViewError::Envelope(e.to_string()))?;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope.payload.as_bytes())
        .map_err(|e| ProvenanceViewError::Payload(e.to_string()))?;
    let statement: serde_json::Value = serde_json::from_slice(&payload)
        .map_err(|e| ProvenanceViewError::Statement(e.to_string()))?;
    let statement = serde_json::to_string_pretty(&statement)
        .map_err(|e| ProvenanceViewError::Statement(e.to_string()))?;
    Ok(ProvenanceView {
        payload_type: envelope.payload_type,
        keyids: envelope.signatures.into_iter().map(|s| s.keyid).collect(),
        statement,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_decoded_and_pretty_printed() {
        let statement = r#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a"}]}"#;
        let envelope = serde_json::json!({
            "payloadType": "application/vnd.in-toto+json",
            "payload": base64::engine::general_purpose::STANDARD.encode(statement),
            "signatures": [{"keyid": "k1", "sig": "c2ln"}],
        })
        .to_string();
        let view = decode(&format!("{envelope}\n")).unwrap();
        assert_eq!(view.payload_type, "application/vnd.in-toto+json");
        assert_eq!(view.keyids, ["k1"]);
        assert!(
            view.statement
                .contains("\n  \"_type\": \"https://in-toto.io/Statement/v1\"")
        );
        assert!(matches!(decode("{"), Err(ProvenanceViewError::Envelope(_))));
        let bad = r#"{"payloadType":"x","payload":"!!"}"#;
        assert!(matches!(decode(bad), Err(ProvenanceViewError::Payload(_))));
        let not_json = format!(
            r#"{{"payloadType":"x","payload":"{}"}}"#,
            base64::engine::general_purpose::STANDARD.encode("nope")
        );
        assert!(matches!(
            decode(&not_json),
            Err(ProvenanceViewError::Statement(_))
        ));
    }
}
