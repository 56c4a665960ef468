//! Bearer-token authentication. The controller stores only the SHA-256 of each token; a request
//! is accepted when the SHA-256 of its `authorization: Bearer <token>` equals the stored digest.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use tonic::service::Interceptor;
use tonic::{Request, Status};

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
        let other = Self::of(token);
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

/// A tonic interceptor that admits requests carrying the bearer token whose digest it holds.
#[derive(Debug, Clone)]
pub struct BearerAuth {
    expected: TokenDigest,
    /// Which token this is, for error messages (e.g. "API token (admin.token)").
    what: &'static str,
}

impl BearerAuth {
    /// Admits requests whose bearer token hashes to `expected`; `what` names the token in errors.
    pub fn new(expected: TokenDigest, what: &'static str) -> Self {
        Self { expected, what }
    }

    /// Checks the `authorization` metadata of a request.
    pub fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(value) = request.metadata().get("authorization") else {
            return Err(Status::unauthenticated(format!(
                "missing `authorization: Bearer <token>` metadata; send the {}",
                self.what
            )));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match token {
            Some(token) if self.expected.matches(token) => Ok(()),
            Some(_) => {
                // Never log the token itself.
                tracing::warn!(token = self.what, "rejected a request with a wrong token");
                Err(Status::unauthenticated(format!(
                    "the bearer token is not valid here; send the {}",
                    self.what
                )))
            }
            None => Err(Status::unauthenticated(format!(
                "the `authorization` metadata must be `Bearer <token>`; send the {}",
                self.what
            ))),
        }
    }
}

impl Interceptor for BearerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.check(&request)?;
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with(value: Option<&str>) -> Request<()> {
        let mut r = Request::new(());
        if let Some(v) = value {
            r.metadata_mut().insert("authorization", v.parse().unwrap());
        }
        r
    }

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
    fn interceptor_checks_bearer() {
        let mut auth = BearerAuth::new(TokenDigest::of("t0k"), "API token");
        assert!(auth.call(request_with(Some("Bearer t0k"))).is_ok());
        for bad in [None, Some("Bearer nope"), Some("t0k"), Some("Basic t0k")] {
            let err = auth.call(request_with(bad)).unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated);
            assert!(!err.message().contains("t0k"));
        }
    }
}
