//! in-toto v1 ResourceDescriptor: how subjects, dependencies and byproducts are named.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::{DigestError, GitCommit, Sha256Digest, decode_lower_hex};
use crate::dsse::decode_base64;

/// Algorithm name to lowercase-hex digest, e.g. `{"sha256": "…"}` (in-toto DigestSet).
///
/// A plain map so that algorithms airlock does not know survive a parse; the ones it knows are
/// checked by [`validate_digest_set`].
pub type DigestSet = BTreeMap<String, String>;

/// DigestSet key for SHA-256.
pub const ALG_SHA256: &str = "sha256";
/// DigestSet key for SHA-512.
pub const ALG_SHA512: &str = "sha512";
/// DigestSet key for a Git commit id.
pub const ALG_GIT_COMMIT: &str = "gitCommit";

/// Why a resource descriptor or digest set is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceDescriptorError {
    /// A digest of a known algorithm is not lowercase hex of the right length.
    #[error("digest {algorithm:?}: {source}")]
    Digest {
        /// Algorithm key in the digest set.
        algorithm: String,
        /// What is wrong with the value.
        #[source]
        source: DigestError,
    },
    /// A digest of an algorithm airlock does not know has an empty value.
    #[error("digest {algorithm:?} has an empty value")]
    EmptyDigestValue {
        /// Algorithm key in the digest set.
        algorithm: String,
    },
    /// None of `uri`, `digest`, `content` is set, so the descriptor identifies nothing.
    #[error("a resource descriptor needs at least one of uri, digest or content")]
    Unidentified,
    /// `content` is not base64 (in-toto encodes these bytes as base64 in JSON).
    #[error("content is not valid base64: {0}")]
    Content(#[source] base64::DecodeError),
}

/// Checks the digests whose format airlock knows: `sha256` (64 hex), `sha512` (128 hex) and
/// `gitCommit` (40 hex, SHA-1 Git), all lowercase. Other algorithms only need a non-empty value.
pub fn validate_digest_set(set: &DigestSet) -> Result<(), ResourceDescriptorError> {
    for (algorithm, value) in set {
        let checked = match algorithm.as_str() {
            ALG_SHA256 => Sha256Digest::from_hex(value).map(drop),
            ALG_SHA512 => decode_lower_hex::<64>("sha512 digest", value).map(drop),
            ALG_GIT_COMMIT => GitCommit::from_hex(value).map(drop),
            _ if value.is_empty() => {
                return Err(ResourceDescriptorError::EmptyDigestValue {
                    algorithm: algorithm.clone(),
                });
            }
            _ => Ok(()),
        };
        checked.map_err(|source| ResourceDescriptorError::Digest {
            algorithm: algorithm.clone(),
            source,
        })?;
    }
    Ok(())
}

/// A reference to a resource (artifact, source, image, log) by name, location and/or digest.
///
/// Unset fields are omitted when serialized; empty `digest` counts as unset.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceDescriptor {
    /// Name, e.g. the artifact's path relative to the output directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// URI identifying the resource, e.g. `git+https://…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Digests of the resource's content.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: DigestSet,
    /// The resource's bytes themselves, base64-encoded (for small inline values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Where the resource can be downloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_location: Option<String>,
    /// Media type of the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Free-form extra information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ResourceDescriptor {
    /// A descriptor naming `name` by its SHA-256, the shape airlock uses for subjects.
    pub fn sha256(name: impl Into<String>, digest: &Sha256Digest) -> Self {
        Self {
            name: Some(name.into()),
            digest: DigestSet::from([(ALG_SHA256.to_owned(), digest.hex())]),
            ..Self::default()
        }
    }

    /// The `sha256` entry of `digest`, if present and well-formed.
    pub fn sha256_digest(&self) -> Option<Sha256Digest> {
        self.digest
            .get(ALG_SHA256)
            .and_then(|hex| Sha256Digest::from_hex(hex).ok())
    }

    /// Checks the in-toto rules: at least one of uri/digest/content, known digests well-formed,
    /// content base64. Empty strings count as unset, as the in-toto parsing rules say.
    pub fn validate(&self) -> Result<(), ResourceDescriptorError> {
        let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        if !set(&self.uri) && self.digest.is_empty() && !set(&self.content) {
            return Err(ResourceDescriptorError::Unidentified);
        }
        validate_digest_set(&self.digest)?;
        if let Some(content) = &self.content {
            decode_base64(content).map_err(ResourceDescriptorError::Content)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_set_validation() {
        let good = Sha256Digest::of(b"x").hex();
        let set = |k: &str, v: &str| DigestSet::from([(k.to_owned(), v.to_owned())]);
        assert!(validate_digest_set(&set("sha256", &good)).is_ok());
        assert!(validate_digest_set(&set("sha256", &good.to_uppercase())).is_err());
        assert!(validate_digest_set(&set("sha256", &good[..40])).is_err());
        assert!(validate_digest_set(&set("sha512", &"ab".repeat(64))).is_ok());
        assert!(validate_digest_set(&set("sha512", &good)).is_err());
        assert!(validate_digest_set(&set("gitCommit", &"a".repeat(40))).is_ok());
        assert!(validate_digest_set(&set("gitCommit", &"A".repeat(40))).is_err());
        assert!(validate_digest_set(&set("dirHash", "whatever")).is_ok());
        assert!(validate_digest_set(&set("dirHash", "")).is_err());
    }

    #[test]
    fn descriptor_rules_and_serialization() {
        let rd = ResourceDescriptor::sha256("out/app", &Sha256Digest::of(b"x"));
        assert!(rd.validate().is_ok());
        assert_eq!(rd.sha256_digest(), Some(Sha256Digest::of(b"x")));
        assert_eq!(
            serde_json::to_string(&rd).unwrap(),
            format!(
                r#"{{"name":"out/app","digest":{{"sha256":"{}"}}}}"#,
                Sha256Digest::of(b"x")
            )
        );
        let named_only = ResourceDescriptor {
            name: Some("n".into()),
            ..Default::default()
        };
        assert_eq!(
            named_only.validate(),
            Err(ResourceDescriptorError::Unidentified)
        );
        let bad_content = ResourceDescriptor {
            content: Some("not base64!".into()),
            ..Default::default()
        };
        assert!(matches!(
            bad_content.validate(),
            Err(ResourceDescriptorError::Content(_))
        ));
        let err = serde_json::from_str::<ResourceDescriptor>(r#"{"uri":"x","bogus":1}"#);
        assert!(err.is_err());
    }
}
