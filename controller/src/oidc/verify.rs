//! Verifying build tokens the way a strict relying party does, for the controller's own checks
//! and for tests: algorithm pinned to ES256, `kid` required and published, issuer and audience
//! exact, `exp`/`nbf`/`iat` checked against the injected clock, and the key's signing window
//! must contain `iat`.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Validation;
use jsonwebtoken::errors::ErrorKind;

use super::TOKEN_ALGORITHM;
use super::claims::BuildClaims;
use super::keys::KeyRing;
use super::reload::RingReloader;
use super::settings::OidcSettings;
use super::time::unix_secs;
use crate::clock::Clock;

/// The longest token accepted, in bytes; longer input is refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why a token was refused. Messages never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a compact JWS with a JSON header and claims of the expected shape.
    #[error("malformed token")]
    Malformed,
    /// The header's `alg` is not ES256 (e.g. `none` or HS256).
    #[error("token algorithm is not ES256")]
    Algorithm,
    /// The header has no `kid`.
    #[error("token header has no kid")]
    MissingKid,
    /// The `kid` is not a key the issuer publishes now.
    #[error("token is signed by an unknown or withdrawn key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("token signature does not verify")]
    Signature,
    /// `iss` is not this issuer.
    #[error("token issuer is not this controller")]
    Issuer,
    /// `aud` is not the expected audience.
    #[error("token audience is not the expected one")]
    Audience,
    /// `exp` has passed.
    #[error("token has expired")]
    Expired,
    /// `nbf` or `iat` is in the future.
    #[error("token is not yet valid")]
    NotYetValid,
    /// A required claim is missing or has the wrong type, or the lifetime exceeds the maximum.
    #[error("token claims are missing, malformed or out of bounds")]
    Claims,
    /// The key was not allowed to sign at the token's `iat`.
    #[error("token was issued outside its key's signing window")]
    KeyWindow,
}

/// Verifies build tokens against a key ring.
#[derive(Clone)]
pub struct Verifier {
    settings: OidcSettings,
    ring: Arc<RwLock<KeyRing>>,
    clock: Arc<dyn Clock>,
    leeway: Duration,
    reload: Option<Arc<RingReloader>>,
}

impl Verifier {
    /// A verifier with no clock-skew leeway (the controller reads the clock it minted with).
    pub fn new(settings: OidcSettings, ring: Arc<RwLock<KeyRing>>, clock: Arc<dyn Clock>) -> Self {
        Self {
            settings,
            ring,
            clock,
            leeway: Duration::ZERO,
            reload: None,
        }
    }

    /// Re-reads the key directory through `reload` before each verification, when it changed.
    pub fn with_reload(mut self, reload: Arc<RingReloader>) -> Self {
        self.reload = Some(reload);
        self
    }

    /// Allows `leeway` of clock skew on `exp`, `nbf` and `iat`.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Verifies `token` for `audience` and returns its claims.
    pub fn verify(&self, token: &str, audience: &str) -> Result<BuildClaims, VerifyError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(VerifyError::Malformed);
        }
        // Check `alg` from the raw header first, so `none`, HS256 and anything the JWT library
        // cannot even name are all refused as the algorithm they are.
        let header_b64 = token.split('.').next().ok_or(VerifyError::Malformed)?;
        let header_json = URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|_| VerifyError::Malformed)?;
        let raw: serde_json::Value =
            serde_json::from_slice(&header_json).map_err(|_| VerifyError::Malformed)?;
        if raw.get("alg").and_then(|a| a.as_str()) != Some("ES256") {
            return Err(VerifyError::Algorithm);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        if header.alg != TOKEN_ALGORITHM {
            return Err(VerifyError::Algorithm);
        }
        let kid = header.kid.ok_or(VerifyError::MissingKid)?;

        let now_time = self.clock.now();
        if let Some(reload) = &self.reload {
            reload.refresh();
        }
        let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
        let key = ring
            .published_key(&kid, now_time)
            .ok_or(VerifyError::UnknownKey)?;

        let mut validation = Validation::new(TOKEN_ALGORITHM);
        validation.set_issuer(&[self.settings.issuer()]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        // Time is checked below against the injected clock, not the library's system clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<BuildClaims>(token, key.decoding_key(), &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => VerifyError::Signature,
                ErrorKind::InvalidIssuer => VerifyError::Issuer,
                ErrorKind::InvalidAudience => VerifyError::Audience,
                ErrorKind::InvalidAlgorithm => VerifyError::Algorithm,
                ErrorKind::MissingRequiredClaim(_)
                | ErrorKind::InvalidClaimFormat(_)
                | ErrorKind::Json(_) => VerifyError::Claims,
                _ => VerifyError::Malformed,
            })?;
        let claims = data.claims;

        let now = unix_secs(now_time);
        let leeway = self.leeway.as_secs();
        if now >= claims.exp.saturating_add(leeway) {
            return Err(VerifyError::Expired);
        }
        if now.saturating_add(leeway) < claims.nbf || now.saturating_add(leeway) < claims.iat {
            return Err(VerifyError::NotYetValid);
        }
        let max = self.settings.max_token_lifetime().as_secs();
        if claims.exp <= claims.iat || claims.exp - claims.iat > max {
            return Err(VerifyError::Claims);
        }
        if !key.schedule().could_have_signed(claims.iat) {
            return Err(VerifyError::KeyWindow);
        }
        Ok(claims)
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.settings.issuer())
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}
