//! Token digests: the controller stores only the SHA-256 of each bearer token or secret, and a
//! request is accepted when the SHA-256 of what it presents equals a stored digest
//! (`client_auth` for job-API clients).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// SHA-256 of a bearer token: what the configuration holds instead of the token itself.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

/// A token digest in the configuration is not 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected 64 lowercase hex digits (the sha256 of the token, e.g. from `sha256sum`)")]
pub struct TokenDigestError;

impl TokenDigest {
    /// The digest of `token`.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Lowercase hex.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// True when `token` hashes to this digest. The comparison takes the same time wherever
    /// the digests differ.
    pub fn matches(&self, token: &str) -> bool {
        self.ct_eq(&Self::of(token))
    }

    /// Compares two digests in time independent of where they differ.
    pub fn ct_eq(&self, other: &TokenDigest) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl FromStr for TokenDigest {
    type Err = TokenDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(TokenDigestError);
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| TokenDigestError)?;
        Ok(Self(out))
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest({})", self.hex())
    }
}

impl Serialize for TokenDigest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl<'de> Deserialize<'de> for TokenDigest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a request carries no usable bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    /// No `authorization` metadata.
    Missing,
    /// `authorization` is not `Bearer <token>`.
    Malformed,
}

/// The token of the request's `authorization: Bearer <token>` metadata, trimmed.
pub fn bearer_token(metadata: &tonic::metadata::MetadataMap) -> Result<&str, BearerError> {
    let value = metadata.get("authorization").ok_or(BearerError::Missing)?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(BearerError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_parses_and_matches() {
        let d = TokenDigest::of("secret");
        assert_eq!(d.hex().parse::<TokenDigest>().unwrap(), d);
        assert!(d.matches("secret"));
        assert!(!d.matches("secret2"));
        assert!(d.hex().to_uppercase().parse::<TokenDigest>().is_err());
        assert!("abc".parse::<TokenDigest>().is_err());
    }

    #[test]
    fn bearer_token_is_parsed_from_metadata() {
        let mut m = tonic::metadata::MetadataMap::new();
        assert_eq!(bearer_token(&m), Err(BearerError::Missing));
        for bad in ["Basic s3cr3t", "s3cr3t", "Bearer "] {
            m.insert("authorization", bad.parse().unwrap());
            assert_eq!(bearer_token(&m), Err(BearerError::Malformed), "{bad:?}");
        }
        m.insert("authorization", "Bearer  tok".parse().unwrap());
        assert_eq!(bearer_token(&m), Ok("tok"));
    }
}
