//! Runner credentials (see docs/identity.md): who may call `RunnerService`, checked inside
//! the service because every check needs the database.
//!
//! - RegisterRunner: `authorization: Bearer <registration secret>` of an active
//!   registration; it returns a runner token.
//! - Every other call: `authorization: Bearer <runner token>`, unexpired and from a
//!   registration that is not revoked (UNAUTHENTICATED otherwise).
//! - Calls about a job also: `x-airlock-job-token`, the current attempt's job token, leased to
//!   the calling runner, before the job's deadline plus a grace period (PERMISSION_DENIED
//!   otherwise). The lease token fences the call after that, as before.
//!
//! Failures are logged at warn with the reason, never with a secret; error messages say what
//! to send and never echo what was sent.

use std::sync::Arc;
use std::time::Duration;

use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::api::status::ApiError;
use crate::auth::digest::{BearerError, TokenDigest, bearer_token};
use crate::auth::secret::{JOB_TOKEN_PREFIX, RUNNER_TOKEN_PREFIX, RandomError, Secret};
use crate::clock::{Clock, unix_ms};
use crate::config::{AuthConfig, MAX_RUNNER_TOKEN_TTL_SECONDS};
use crate::ids::{JobId, RunnerId};
use crate::store::{JobTokenGrant, RegistrationSync, RunnerTokenRecord, Store, StoreError};

/// The metadata key of the job token (the same as the client's).
pub use airlock_proto::auth::JOB_TOKEN_HEADER;

/// The registration `[auth] runner_secret_sha256` declares.
pub const DEFAULT_REGISTRATION: &str = "default";

/// The longest registration name.
pub const MAX_REGISTRATION_NAME: usize = 64;

/// Why a runner call was refused.
#[derive(Debug, thiserror::Error)]
pub enum RunnerAuthError {
    /// No credential, or one the controller does not accept (UNAUTHENTICATED).
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid credential that does not cover this call (PERMISSION_DENIED).
    #[error("{0}")]
    PermissionDenied(String),
    /// A new token could not be generated.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<RunnerAuthError> for Status {
    fn from(e: RunnerAuthError) -> Self {
        match e {
            RunnerAuthError::Unauthenticated(m) => Status::unauthenticated(m),
            RunnerAuthError::PermissionDenied(m) => Status::permission_denied(m),
            RunnerAuthError::Random(e) => {
                tracing::error!(error = %e, "cannot generate a runner credential");
                Status::internal(e.to_string())
            }
            RunnerAuthError::Store(e) => ApiError::from(e).into(),
        }
    }
}

/// A runner whose runner token checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The runner the token was issued to.
    pub runner_id: RunnerId,
    /// The registration it registered with.
    pub registration: String,
    /// The digest of the runner token it presented (to re-check it during a long poll).
    pub token_sha256: TokenDigest,
}

/// A freshly issued runner token.
#[derive(Debug)]
pub struct IssuedRunnerToken {
    /// The token (send it to the runner; never log it).
    pub token: Secret,
    /// When it expires, unix seconds.
    pub expires_at_unix: u64,
}

/// Checks and issues runner credentials.
#[derive(Debug, Clone)]
pub struct RunnerAuth {
    store: Store,
    clock: Arc<dyn Clock>,
    runner_token_ttl: Duration,
    job_token_grace: Duration,
}

fn unix_seconds(ms: i64) -> u64 {
    u64::try_from(ms / 1000).unwrap_or(0)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The bearer token of `metadata`, or UNAUTHENTICATED saying to send `what`.
fn bearer<'m>(metadata: &'m MetadataMap, what: &str) -> Result<&'m str, RunnerAuthError> {
    bearer_token(metadata).map_err(|e| {
        RunnerAuthError::Unauthenticated(match e {
            BearerError::Missing => {
                format!("missing `authorization: Bearer <token>` metadata; send the {what}")
            }
            BearerError::Malformed => {
                format!("the `authorization` metadata must be `Bearer <token>`; send the {what}")
            }
        })
    })
}

impl RunnerAuth {
    /// Credentials over `store`, timed by `clock`, with the lifetimes of `auth`.
    pub fn new(store: Store, clock: Arc<dyn Clock>, auth: &AuthConfig) -> Self {
        Self {
            store,
            clock,
            runner_token_ttl: Duration::from_secs(u64::from(
                auth.runner_token_ttl_seconds
                    .clamp(1, MAX_RUNNER_TOKEN_TTL_SECONDS),
            )),
            job_token_grace: Duration::from_secs(u64::from(auth.job_token_grace_seconds)),
        }
    }

    fn now_ms(&self) -> i64 {
        unix_ms(self.clock.now())
    }

    /// The registration whose secret a RegisterRunner call carries (active only).
    pub async fn registration(&self, metadata: &MetadataMap) -> Result<String, RunnerAuthError> {
        const WHAT: &str = "runner registration secret (e.g. runner.secret)";
        let secret = bearer(metadata, WHAT).inspect_err(|_| {
            tracing::warn!(call = "RegisterRunner", "refused: no registration secret");
        })?;
        match self
            .store
            .active_registration(&TokenDigest::of(secret))
            .await?
        {
            Some(name) => Ok(name),
            None => {
                tracing::warn!(
                    call = "RegisterRunner",
                    "refused: unknown or revoked registration secret"
                );
                let hint = if secret.starts_with(RUNNER_TOKEN_PREFIX) {
                    "a runner token cannot register a runner; "
                } else {
                    ""
                };
                Err(RunnerAuthError::Unauthenticated(format!(
                    "{hint}the bearer token is not the secret of an active runner registration; \
                     send a registration secret from `airlock controller registration create` \
                     (revoked registrations are refused)"
                )))
            }
        }
    }

    /// Issues a runner token for `runner` under `registration`, valid for the configured TTL.
    pub async fn issue_runner_token(
        &self,
        runner: RunnerId,
        registration: &str,
    ) -> Result<IssuedRunnerToken, RunnerAuthError> {
        let token = Secret::generate(RUNNER_TOKEN_PREFIX)?;
        let expires_ms = self.now_ms().saturating_add(millis(self.runner_token_ttl));
        let stored = self
            .store
            .insert_runner_token(&RunnerTokenRecord {
                token_sha256: token.digest(),
                runner_id: runner,
                registration: registration.to_owned(),
                expires_ms,
            })
            .await?;
        if !stored {
            tracing::warn!(runner_id = %runner, registration, "refused: registration revoked");
            return Err(RunnerAuthError::Unauthenticated(format!(
                "the runner registration `{registration}` was revoked; register with the secret \
                 of an active registration"
            )));
        }
        Ok(IssuedRunnerToken {
            token,
            expires_at_unix: unix_seconds(expires_ms),
        })
    }

    /// The runner whose runner token `metadata` carries, named `call` in logs.
    pub async fn runner(
        &self,
        metadata: &MetadataMap,
        call: &'static str,
    ) -> Result<Caller, RunnerAuthError> {
        const WHAT: &str = "runner token RegisterRunner returned (renew it with RenewRunnerToken)";
        let token = bearer(metadata, WHAT).inspect_err(|_| {
            tracing::warn!(call, "refused: no runner token");
        })?;
        let found = self
            .store
            .runner_for_token(&TokenDigest::of(token), self.now_ms())
            .await?;
        match found {
            Some(identity) => Ok(Caller {
                runner_id: identity.runner_id,
                registration: identity.registration,
                token_sha256: TokenDigest::of(token),
            }),
            None => {
                // What was sent instead, judged by its prefix: for the log and a hint.
                let (reason, hint) = if token.starts_with(RUNNER_TOKEN_PREFIX) {
                    (
                        "unknown or expired runner token, or its registration was revoked",
                        "",
                    )
                } else if token.starts_with(JOB_TOKEN_PREFIX) {
                    (
                        "a job token in `authorization`",
                        "job tokens go in `x-airlock-job-token`; ",
                    )
                } else {
                    (
                        "not a runner token",
                        "a registration secret only registers a runner; ",
                    )
                };
                tracing::warn!(call, reason, "refused a runner call");
                Err(RunnerAuthError::Unauthenticated(format!(
                    "{hint}the bearer token is not a valid runner token (unknown, expired, or \
                     its registration was revoked); send the {WHAT}, or register again"
                )))
            }
        }
    }

    /// Refuses a call whose `runner_id` field names another runner than the caller's token.
    pub fn same_runner(
        caller: &Caller,
        runner: RunnerId,
        call: &'static str,
    ) -> Result<(), RunnerAuthError> {
        if caller.runner_id == runner {
            return Ok(());
        }
        tracing::warn!(call, caller = %caller.runner_id, runner_id = %runner, "refused: runner token of another runner");
        Err(RunnerAuthError::PermissionDenied(format!(
            "runner_id: the runner token was issued to runner {}, not {runner}; send the token \
             of the runner named in the request",
            caller.runner_id
        )))
    }

    /// Checks the job token of a call about `job` from `caller`.
    pub async fn job(
        &self,
        metadata: &MetadataMap,
        caller: &Caller,
        job: JobId,
        call: &'static str,
    ) -> Result<(), RunnerAuthError> {
        let token = metadata
            .get(JOB_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let Some(token) = token else {
            tracing::warn!(call, runner_id = %caller.runner_id, job_id = %job, "refused: no job token");
            return Err(RunnerAuthError::PermissionDenied(format!(
                "missing `{JOB_TOKEN_HEADER}` metadata; send the job_token AcquireJob returned \
                 with the lease of job {job}"
            )));
        };
        let valid = self
            .store
            .job_token_valid(
                job,
                &TokenDigest::of(token),
                caller.runner_id,
                self.now_ms(),
            )
            .await?;
        if valid {
            return Ok(());
        }
        tracing::warn!(call, runner_id = %caller.runner_id, job_id = %job, "refused: job token not valid for this job and runner");
        Err(RunnerAuthError::PermissionDenied(format!(
            "the `{JOB_TOKEN_HEADER}` is not valid for job {job}: it must be the job token of \
             the job's current lease, held by this runner, before the job's deadline plus grace; \
             if the lease ended, stop working on the job"
        )))
    }

    /// A new job token for the lease AcquireJob is about to grant.
    pub fn new_job_token(&self) -> Result<(Secret, JobTokenGrant), RunnerAuthError> {
        let token = Secret::generate(JOB_TOKEN_PREFIX)?;
        let grant = JobTokenGrant {
            token_sha256: token.digest(),
            grace_ms: millis(self.job_token_grace),
        };
        Ok((token, grant))
    }
}

/// The job token expiry of a lease, unix seconds (for `Lease.job_token_expires_at_unix`).
pub fn job_token_expiry_unix(expires_ms: Option<i64>) -> u64 {
    expires_ms.map(unix_seconds).unwrap_or(0)
}

/// Brings the registrations `[auth]` declares into the database at start-up:
/// `runner_secret_sha256` as `default`, then every `[[auth.runners]]`.
pub async fn sync_registrations(
    store: &Store,
    auth: &AuthConfig,
    now_ms: i64,
) -> Result<(), StoreError> {
    let declared = auth
        .runner_secret_sha256
        .iter()
        .map(|d| (DEFAULT_REGISTRATION, d))
        .chain(
            auth.runners
                .iter()
                .map(|r| (r.name.as_str(), &r.secret_sha256)),
        );
    for (name, digest) in declared {
        match store.sync_registration(name, digest, now_ms).await? {
            RegistrationSync::Inserted => {
                tracing::info!(
                    registration = name,
                    "runner registration added from the configuration"
                );
            }
            RegistrationSync::Replaced => {
                tracing::info!(
                    registration = name,
                    "runner registration secret replaced from the configuration"
                );
            }
            RegistrationSync::Unchanged => {}
        }
    }
    Ok(())
}

/// Checks a registration name: 1 to [`MAX_REGISTRATION_NAME`] characters of lowercase
/// letters, digits, `.`, `_` and `-`, starting with a letter or digit.
pub fn check_registration_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_REGISTRATION_NAME
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a registration name: 1-{MAX_REGISTRATION_NAME} lowercase letters, \
             digits, `.`, `_` or `-`, starting with a letter or digit"
        ))
    }
}

impl AuthConfig {
    /// Checks the runner-credential settings serde cannot: the token TTL is 1..=900 seconds,
    /// registration names are plausible and unique (`default` is taken by
    /// `runner_secret_sha256` when that is set). Returns the field at fault and why.
    pub fn check_runners(&self) -> Result<(), (&'static str, String)> {
        if !(1..=MAX_RUNNER_TOKEN_TTL_SECONDS).contains(&self.runner_token_ttl_seconds) {
            return Err((
                "auth.runner_token_ttl_seconds",
                format!(
                    "{} is outside 1..={MAX_RUNNER_TOKEN_TTL_SECONDS} (runner tokens live at \
                     most 15 minutes)",
                    self.runner_token_ttl_seconds
                ),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        if self.runner_secret_sha256.is_some() {
            seen.insert(DEFAULT_REGISTRATION);
        }
        for entry in &self.runners {
            check_registration_name(&entry.name).map_err(|m| ("auth.runners.name", m))?;
            if !seen.insert(entry.name.as_str()) {
                return Err((
                    "auth.runners.name",
                    format!(
                        "`{}` is declared twice (`default` is also the name of \
                         runner_secret_sha256); give each registration its own name",
                        entry.name
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunnerRegistrationEntry;

    #[test]
    fn registration_names_and_ttl_are_checked() {
        for good in ["default", "pool-a", "gpu.x86_64", "7"] {
            check_registration_name(good).unwrap();
        }
        for bad in ["", "Pool", "-a", "a b", &"a".repeat(65), "é"] {
            assert!(check_registration_name(bad).is_err(), "{bad:?}");
        }
        let mut auth = AuthConfig::with_tokens("api", "runner");
        auth.check_runners().unwrap();
        auth.runner_token_ttl_seconds = 901;
        assert_eq!(
            auth.check_runners().unwrap_err().0,
            "auth.runner_token_ttl_seconds"
        );
        auth.runner_token_ttl_seconds = 0;
        assert!(auth.check_runners().is_err());
        auth.runner_token_ttl_seconds = 900;
        auth.runners.push(RunnerRegistrationEntry {
            name: "default".into(),
            secret_sha256: TokenDigest::of("x"),
        });
        let err = auth.check_runners().unwrap_err();
        assert_eq!(err.0, "auth.runners.name");
        assert!(err.1.contains("twice"), "{}", err.1);
        auth.runners[0].name = "Bad Name".into();
        assert!(
            auth.check_runners()
                .unwrap_err()
                .1
                .contains("not a registration name")
        );
    }
}
