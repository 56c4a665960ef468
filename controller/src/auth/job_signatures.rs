//! Signed job specs: a DSSE envelope (payload type [`JOB_SPEC_PAYLOAD_TYPE`]) whose payload
//! is exactly the submitted `spec_json`, signed by a key of `[job_signatures] keys`. A profile
//! in `required_for` admits only API submissions carrying one. Jobs a forge webhook queued
//! are authenticated by the webhook instead (its signature and the forge's trust rules).

use airlock_attest::{Envelope, VerifyingKey};

use crate::api::status::ApiError;
use crate::config::JobSignaturesConfig;

/// The DSSE payload type of a signed job spec.
pub const JOB_SPEC_PAYLOAD_TYPE: &str = "application/vnd.airlock.job.v1+json";

/// Why the job-signature keys cannot be loaded.
#[derive(Debug, thiserror::Error)]
#[error("[job_signatures] keys: {}: {source}", path.display())]
pub struct JobSignersError {
    /// The key file.
    pub path: std::path::PathBuf,
    /// The cause.
    #[source]
    pub source: airlock_attest::KeyError,
}

/// The loaded keys and requirements.
#[derive(Debug, Clone, Default)]
pub struct JobSigners {
    keys: Vec<VerifyingKey>,
    required_for: Vec<String>,
}

impl JobSigners {
    /// Loads the keys of `config`.
    pub fn load(config: &JobSignaturesConfig) -> Result<Self, JobSignersError> {
        let keys = config
            .keys
            .iter()
            .map(|path| {
                airlock_attest::load_verifying_key(path).map_err(|source| JobSignersError {
                    path: path.clone(),
                    source,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            keys,
            required_for: config.required_for.clone(),
        })
    }

    /// The keyid of the key that signed `spec_json` (`None` without a signature), enforcing
    /// `required_for` for `profile`. A signature that is present but does not verify is always
    /// refused, even for a profile that requires none.
    pub fn check(
        &self,
        profile: &str,
        spec_json: &[u8],
        signature: &[u8],
    ) -> Result<Option<String>, ApiError> {
        let keyid = if signature.is_empty() {
            None
        } else {
            Some(self.verify(spec_json, signature)?)
        };
        if keyid.is_none() && self.required_for.iter().any(|p| p == profile) {
            return Err(ApiError::PermissionDenied(format!(
                "profile `{profile}` admits only signed jobs ([job_signatures] required_for); \
                 sign the job with `airlock submit --sign KEY` using a key whose public half \
                 is in [job_signatures] keys"
            )));
        }
        Ok(keyid)
    }

    fn verify(&self, spec_json: &[u8], signature: &[u8]) -> Result<String, ApiError> {
        let envelope = Envelope::from_json(signature).map_err(|e| {
            ApiError::invalid("spec_signature", format!("not a DSSE envelope: {e}"))
        })?;
        if envelope.payload_type != JOB_SPEC_PAYLOAD_TYPE {
            return Err(ApiError::invalid(
                "spec_signature",
                format!(
                    "payloadType is `{}`, not `{JOB_SPEC_PAYLOAD_TYPE}`",
                    envelope.payload_type
                ),
            ));
        }
        let verified = airlock_attest::verify_envelope(&envelope, &self.keys).map_err(|e| {
            ApiError::PermissionDenied(format!(
                "spec_signature does not verify with any [job_signatures] key: {e}"
            ))
        })?;
        if verified.payload != spec_json {
            return Err(ApiError::PermissionDenied(
                "spec_signature signs another spec than spec_json (the payload must be the \
                 submitted bytes exactly)"
                    .into(),
            ));
        }
        Ok(verified.keyid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_attest::SigningKey;

    fn signers(key: &SigningKey, required: &[&str]) -> JobSigners {
        JobSigners {
            keys: vec![key.verifying_key().clone()],
            required_for: required.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn sign(key: &SigningKey, payload_type: &str, body: &[u8]) -> Vec<u8> {
        airlock_attest::sign_envelope(payload_type, body, key)
            .unwrap()
            .to_json_line()
            .unwrap()
            .into_bytes()
    }

    #[test]
    fn a_required_signature_must_verify_and_cover_the_exact_spec() {
        let key = SigningKey::from_p256_scalar(&[7; 32]).unwrap();
        let other = SigningKey::from_p256_scalar(&[8; 32]).unwrap();
        let s = signers(&key, &["release"]);
        let spec = br#"{"job":{}}"#;
        let good = sign(&key, JOB_SPEC_PAYLOAD_TYPE, spec);
        assert_eq!(
            s.check("release", spec, &good).unwrap().as_deref(),
            Some(key.keyid())
        );
        assert!(matches!(
            s.check("release", spec, b""),
            Err(ApiError::PermissionDenied(_))
        ));
        assert_eq!(s.check("trusted", spec, b"").unwrap(), None);
        let foreign = sign(&other, JOB_SPEC_PAYLOAD_TYPE, spec);
        assert!(
            s.check("trusted", spec, &foreign).is_err(),
            "a bad signature is refused anyway"
        );
        let elsewhere = sign(&key, JOB_SPEC_PAYLOAD_TYPE, br#"{"job":{"x":1}}"#);
        assert!(s.check("release", spec, &elsewhere).is_err());
        let wrong_type = sign(&key, "application/vnd.in-toto+json", spec);
        assert!(matches!(
            s.check("release", spec, &wrong_type),
            Err(ApiError::InvalidArgument { .. })
        ));
        assert!(s.check("release", spec, b"{not json").is_err());
    }
}
