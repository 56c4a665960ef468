//! Minting build tokens: the controller's answer to a runner asking, on behalf of a running
//! job, for a token with some audience and lifetime.
//!
//! Minting fails closed: a profile without build tokens (always `untrusted-pr`), an audience
//! the job did not declare, a job that has ended or passed its deadline, a lifetime above the
//! configured maximum, or a ring with no signing key each refuse with a typed reason.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use airlock_attest::Sha256Digest;
use jsonwebtoken::Header;

use super::TOKEN_ALGORITHM;
use super::claims::BuildClaims;
use super::keys::KeyRing;
use super::reload::RingReloader;
use super::settings::{OidcSettings, UNTRUSTED_PR_PROFILE};
use super::subject::SourceIdentity;
use super::time::unix_secs;
use crate::clock::{Clock, IdGen};

/// What the control plane knows about the job a token is asked for. Every field comes from
/// the job record and its lease, never from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobTokenContext {
    /// The job id.
    pub job_id: String,
    /// The job's pinned source.
    pub source: SourceIdentity,
    /// The job's trust profile.
    pub profile: String,
    /// Whether the profile's file allows build tokens (`build_tokens = true`).
    pub profile_allows_tokens: bool,
    /// The job's declared `[oidc] audiences` (empty: the job asked for no tokens).
    pub audiences: Vec<String>,
    /// The builder id of the job's provenance.
    pub builder_id: String,
    /// The runner holding the job's lease.
    pub runner_id: String,
    /// sha256 of the job definition as submitted.
    pub job_definition_sha256: Sha256Digest,
    /// Whether the job has reached a final state.
    pub ended: bool,
    /// The job's deadline (start + timeout); no token is minted from then on.
    pub deadline: SystemTime,
}

/// A step's request: an audience and, optionally, a lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintRequest {
    /// The `aud` wanted.
    pub audience: String,
    /// The lifetime wanted; `None` for the default.
    pub lifetime: Option<Duration>,
}

/// Why no token was minted. Messages never contain a token or key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    /// The job's profile does not allow build tokens.
    #[error("profile `{profile}` does not allow build tokens")]
    ProfileWithoutTokens {
        /// The profile.
        profile: String,
    },
    /// The audience is not one of the job's `[oidc] audiences`.
    #[error("the audience is not declared in the job's [oidc] audiences")]
    UndeclaredAudience,
    /// The job has ended (or passed its deadline).
    #[error("the job has ended; no more build tokens are issued for it")]
    JobEnded,
    /// The lifetime asked for is zero or above the maximum.
    #[error("lifetime must be between 1 and {max_secs} seconds")]
    Lifetime {
        /// The configured maximum, in seconds.
        max_secs: u64,
    },
    /// No token key may sign now.
    #[error("the issuer has no token key that may sign now; check the token key directory")]
    NoSigningKey,
    /// Signing failed.
    #[error("signing the token failed: {0}")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// A freshly minted token. `Debug` never shows the token itself.
#[derive(Clone, PartialEq, Eq)]
pub struct MintedToken {
    value: String,
    expires_at: u64,
    jti: String,
}

impl MintedToken {
    /// The compact JWS. Treat as a secret: never log it.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Expiry, unix seconds.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// The token's `jti` (safe to log: it identifies the token without granting anything).
    pub fn jti(&self) -> &str {
        &self.jti
    }
}

impl fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedToken")
            .field("value", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("jti", &self.jti)
            .finish()
    }
}

/// Mints build tokens with the ring's current signing key.
#[derive(Clone)]
pub struct Minter {
    settings: OidcSettings,
    ring: Arc<RwLock<KeyRing>>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGen>,
    reload: Option<Arc<RingReloader>>,
}

impl Minter {
    /// A minter for `settings`, signing with `ring`, reading time from `clock` and taking each
    /// `jti` from `ids` (use [`crate::RandomIds`] outside tests).
    pub fn new(
        settings: OidcSettings,
        ring: Arc<RwLock<KeyRing>>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGen>,
    ) -> Self {
        Self {
            settings,
            ring,
            clock,
            ids,
            reload: None,
        }
    }

    /// Re-reads the key directory through `reload` before each mint, when it changed.
    pub fn with_reload(mut self, reload: Arc<RingReloader>) -> Self {
        self.reload = Some(reload);
        self
    }

    /// The issuer settings.
    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// Mints a token for `request` on behalf of the job described by `job`.
    pub fn mint(
        &self,
        job: &JobTokenContext,
        request: &MintRequest,
    ) -> Result<MintedToken, MintError> {
        if job.profile == UNTRUSTED_PR_PROFILE || !job.profile_allows_tokens {
            return Err(MintError::ProfileWithoutTokens {
                profile: job.profile.clone(),
            });
        }
        let now = self.clock.now();
        if job.ended || now >= job.deadline {
            return Err(MintError::JobEnded);
        }
        if !job.audiences.contains(&request.audience) {
            return Err(MintError::UndeclaredAudience);
        }
        let max = self.settings.max_token_lifetime();
        let lifetime = request
            .lifetime
            .unwrap_or_else(|| self.settings.default_token_lifetime());
        if lifetime.as_secs() == 0 || lifetime > max {
            return Err(MintError::Lifetime {
                max_secs: max.as_secs(),
            });
        }

        let iat = unix_secs(now);
        let exp = iat.saturating_add(lifetime.as_secs());
        let jti = self.ids.new_id().to_string();
        let claims = BuildClaims {
            iss: self.settings.issuer().to_owned(),
            sub: job.source.subject(),
            aud: request.audience.clone(),
            iat,
            nbf: iat,
            exp,
            jti: jti.clone(),
            job_id: job.job_id.clone(),
            repository: job.source.repository().to_owned(),
            git_ref: job.source.ref_claim(),
            ref_type: job.source.ref_type().to_owned(),
            sha: job.source.sha().to_owned(),
            profile: job.profile.clone(),
            builder_id: job.builder_id.clone(),
            runner_id: job.runner_id.clone(),
            job_definition_sha256: job.job_definition_sha256.hex(),
        };

        if let Some(reload) = &self.reload {
            reload.refresh();
        }
        let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
        let key = ring.signing_key(now).ok_or(MintError::NoSigningKey)?;
        let mut header = Header::new(TOKEN_ALGORITHM);
        header.kid = Some(key.kid().to_owned());
        header.typ = Some("JWT".to_owned());
        let value =
            jsonwebtoken::encode(&header, &claims, key.encoding_key()).map_err(MintError::Sign)?;
        Ok(MintedToken {
            value,
            expires_at: exp,
            jti,
        })
    }
}

impl fmt::Debug for Minter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Minter")
            .field("issuer", &self.settings.issuer())
            .finish_non_exhaustive()
    }
}
