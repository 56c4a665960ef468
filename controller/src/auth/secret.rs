//! Secrets the controller hands out (registration secrets, runner tokens, job tokens): opaque,
//! 32 random bytes, base64url, behind a greppable prefix so a leaked one is easy to find in
//! logs and repositories. Only their sha256 ([`TokenDigest`]) is ever stored.

use std::fmt;

use base64::Engine as _;

use crate::auth::digest::TokenDigest;

/// Prefix of a runner registration secret.
pub const REGISTRATION_SECRET_PREFIX: &str = "airlock-reg_";
/// Prefix of a runner token.
pub const RUNNER_TOKEN_PREFIX: &str = "airlock-rt_";
/// Prefix of a job token.
pub const JOB_TOKEN_PREFIX: &str = "airlock-jt_";
/// Prefix of a job-API client token (`airlock controller client-token`).
pub const API_TOKEN_PREFIX: &str = "airlock-api_";

/// A secret value. `Debug` prints `<redacted>`; there is no `Display`: reading it takes an
/// explicit [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// The system random number generator failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot generate a secret: the system random number generator failed: {0}")]
pub struct RandomError(#[from] getrandom::Error);

impl Secret {
    /// A fresh secret: `prefix` and 32 random bytes in unpadded base64url.
    pub fn generate(prefix: &str) -> Result<Self, RandomError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self(format!(
            "{prefix}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        )))
    }

    /// The secret itself, for the one place that sends or prints it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its sha256: what the controller stores.
    pub fn digest(&self) -> TokenDigest {
        TokenDigest::of(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_redacted() {
        let a = Secret::generate(RUNNER_TOKEN_PREFIX).unwrap();
        let b = Secret::generate(RUNNER_TOKEN_PREFIX).unwrap();
        assert_ne!(a, b);
        let body = a.expose().strip_prefix(RUNNER_TOKEN_PREFIX).unwrap();
        assert_eq!(body.len(), 43, "32 bytes of unpadded base64url");
        assert!(
            body.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert!(a.digest().matches(a.expose()));
        let debug = format!("{a:?}");
        assert!(!debug.contains(body), "{debug}");
        assert!(debug.contains("<redacted>"));
    }
}
