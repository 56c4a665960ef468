//! Runner credentials. The configured secret is a *registration secret*: `RegisterRunner`
//! sends it once and gets back a runner id and a short-lived runner token, which becomes the
//! bearer of the shared [`BearerAuth`] of every later call. A background task renews the token
//! at about half its remaining lifetime; when the controller refuses it (expired, unknown
//! runner), the runner registers once more with the secret, and when the secret is refused too
//! (registration revoked, or the secret is wrong) it fails closed: [`Credentials::revoked`]
//! turns true, the agent stops taking jobs, aborts the running ones and exits non-zero.
//! Token values are never logged.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use airlock_proto::auth::{AuthedChannel, BearerAuth, ClientError, runner_client};
use airlock_proto::v1::runner_service_client::RunnerServiceClient;
use airlock_proto::v1::{RegisterRunnerRequest, RenewRunnerTokenRequest};
use tokio::sync::watch;
use tonic::Code;
use tonic::transport::Channel;
use tracing::{debug, error, info, warn};

use crate::config::Secret;

/// Prefix of runner tokens (what the controller issues; the log scan looks for it).
pub const RUNNER_TOKEN_PREFIX: &str = "airlock-rt_";

/// Prefix of job tokens.
pub const JOB_TOKEN_PREFIX: &str = "airlock-jt_";

/// Never renew sooner than this after the last renewal (a clock far ahead of the
/// controller's would otherwise make the runner renew in a tight loop).
const MIN_RENEW_DELAY: Duration = Duration::from_secs(1);

/// Never wait longer than this to renew: half the longest lifetime a runner token may have
/// (15 minutes), so a clock behind the controller's cannot let the token lapse.
const MAX_RENEW_DELAY: Duration = Duration::from_secs(450);

/// Backoff bounds for renewal and re-registration retries on transient errors.
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Why credentials could not be obtained or kept.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The controller refused the registration secret: fail closed.
    #[error(
        "the controller refused the registration secret ({message}): registration revoked or \
         secret wrong; ask the operator for a new registration secret \
         (`airlock controller registration create NAME --config FILE`) and restart the runner \
         with --registration-secret-file"
    )]
    Revoked {
        /// The controller's message (never contains a secret).
        message: String,
    },
    /// The controller requires a runner client certificate and none (or a refused one) was
    /// presented: fail closed, but do not blame the registration secret.
    #[error(
        "the controller refused this runner's TLS client certificate ({message}); start the \
         runner with --client-cert and --client-key signed by the controller's runner CA"
    )]
    ClientCertificate {
        /// The controller's message.
        message: String,
    },
    /// A call failed for another reason (often transient: the controller is restarting).
    #[error("controller refused {call}: {status}")]
    Rpc {
        /// The call.
        call: &'static str,
        /// The status.
        status: tonic::Status,
    },
    /// The controller answered RegisterRunner or RenewRunnerToken without a token.
    #[error(
        "the controller answered {call} without a runner token; it is older than this runner: \
         upgrade the controller"
    )]
    NoRunnerToken {
        /// The call.
        call: &'static str,
    },
    /// The token cannot go into a header.
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl CredentialError {
    /// True for the fail-closed cases: the registration secret or the runner's client
    /// certificate was refused, so retrying cannot help.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            CredentialError::Revoked { .. } | CredentialError::ClientCertificate { .. }
        )
    }
}

/// True when a refused call means the runner token is no good any more (expired, unknown
/// runner, a token of another runner): register again with the secret.
pub fn needs_registration(code: Code) -> bool {
    matches!(
        code,
        Code::Unauthenticated | Code::NotFound | Code::PermissionDenied
    )
}

/// How long to wait before renewing a token that expires at `expires_at` (unix seconds),
/// seen at `now`: half the remaining lifetime, within [`MIN_RENEW_DELAY`] and
/// [`MAX_RENEW_DELAY`]; an unknown expiry (0) waits the longest.
pub fn renew_delay(expires_at: u64, now: SystemTime) -> Duration {
    if expires_at == 0 {
        return MAX_RENEW_DELAY;
    }
    let expires = UNIX_EPOCH + Duration::from_secs(expires_at);
    let remaining = expires.duration_since(now).unwrap_or(Duration::ZERO);
    (remaining / 2).clamp(MIN_RENEW_DELAY, MAX_RENEW_DELAY)
}

/// What the controller gave the runner last.
#[derive(Debug, Clone)]
struct Current {
    runner_id: String,
    expires_at: u64,
    /// Bumped by every (re-)registration: lets concurrent callers register only once.
    generation: u64,
}

struct Inner {
    channel: Channel,
    /// The bearer of every runner call (the runner token), shared by every client.
    auth: BearerAuth,
    secret: Secret,
    request: RegisterRunnerRequest,
    current: Mutex<Current>,
    /// Serializes re-registration.
    registering: tokio::sync::Mutex<()>,
    /// The current runner token, for the jobs' log redactors.
    token: watch::Sender<Secret>,
    /// Turns true when the registration secret has been refused.
    revoked: watch::Sender<bool>,
}

/// A registered runner's credentials; cheap to clone (clones share everything).
#[derive(Clone)]
pub struct Credentials {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("runner_id", &self.runner_id())
            .finish_non_exhaustive()
    }
}

/// A RegisterRunner call with the registration secret as the bearer (never the shared auth:
/// running jobs keep their runner token while this is under way).
async fn register_with_secret(
    channel: &Channel,
    secret: &Secret,
    request: &RegisterRunnerRequest,
) -> Result<(String, Secret, u64), CredentialError> {
    let mut client = runner_client(channel.clone(), BearerAuth::new(secret.expose())?);
    let resp = match client.register_runner(request.clone()).await {
        Ok(r) => r.into_inner(),
        // The controller's TLS interceptor names the certificate; anything else
        // UNAUTHENTICATED at registration is the secret.
        Err(status)
            if status.code() == Code::Unauthenticated
                && status.message().contains("client certificate") =>
        {
            return Err(CredentialError::ClientCertificate {
                message: status.message().to_owned(),
            });
        }
        Err(status) if status.code() == Code::Unauthenticated => {
            return Err(CredentialError::Revoked {
                message: status.message().to_owned(),
            });
        }
        Err(status) => {
            return Err(CredentialError::Rpc {
                call: "RegisterRunner",
                status,
            });
        }
    };
    if resp.runner_token.trim().is_empty() {
        return Err(CredentialError::NoRunnerToken {
            call: "RegisterRunner",
        });
    }
    Ok((
        resp.runner_id,
        Secret::new(&resp.runner_token),
        resp.runner_token_expires_at_unix,
    ))
}

impl Credentials {
    /// Registers with `secret` over `channel`; the returned credentials hold the runner
    /// token. Does not start renewal: call [`Credentials::keep_renewed`].
    pub async fn register(
        channel: Channel,
        secret: Secret,
        request: RegisterRunnerRequest,
    ) -> Result<Self, CredentialError> {
        let (runner_id, token, expires_at) =
            register_with_secret(&channel, &secret, &request).await?;
        let auth = BearerAuth::new(token.expose())?;
        let (token_tx, _) = watch::channel(token);
        let (revoked, _) = watch::channel(false);
        info!(runner_id = %runner_id, "registered with the controller");
        Ok(Self {
            inner: Arc::new(Inner {
                channel,
                auth,
                secret,
                request,
                current: Mutex::new(Current {
                    runner_id,
                    expires_at,
                    generation: 0,
                }),
                registering: tokio::sync::Mutex::new(()),
                token: token_tx,
                revoked,
            }),
        })
    }

    fn current(&self) -> Current {
        self.inner
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The id the controller gave this runner (changes when it registers again).
    pub fn runner_id(&self) -> String {
        self.current().runner_id
    }

    /// Changes with each (re-)registration; pass it to [`Credentials::register_again`].
    pub fn generation(&self) -> u64 {
        self.current().generation
    }

    /// A client whose calls carry the current runner token (renewed in place).
    pub fn client(&self) -> RunnerServiceClient<AuthedChannel> {
        runner_client(self.inner.channel.clone(), self.inner.auth.clone())
    }

    /// A client for calls about one job: the runner token plus the lease's job token.
    pub fn job_client(
        &self,
        job_token: &str,
    ) -> Result<RunnerServiceClient<AuthedChannel>, ClientError> {
        Ok(runner_client(
            self.inner.channel.clone(),
            self.inner.auth.with_job_token(job_token)?,
        ))
    }

    /// Registers the runner's credentials with a job's log redactor before anything of the
    /// job runs: the registration secret, the job's token and the current runner token
    /// ([`guard_job`] adds the renewed ones).
    pub async fn redact_in(&self, sink: &crate::report::events::EventSink, job_token: &str) {
        sink.add_secret(self.inner.secret.expose()).await;
        sink.add_secret(job_token).await;
        let current = self.inner.token.borrow().clone();
        sink.add_secret(current.expose()).await;
    }

    /// The current runner token; changes on renewal (for the log redactors).
    pub fn runner_token(&self) -> watch::Receiver<Secret> {
        self.inner.token.subscribe()
    }

    /// Turns true once the registration secret has been refused.
    pub fn revoked(&self) -> watch::Receiver<bool> {
        self.inner.revoked.subscribe()
    }

    /// True once the registration secret has been refused.
    pub fn is_revoked(&self) -> bool {
        *self.inner.revoked.borrow()
    }

    fn install(&self, token: Secret, expires_at: u64) -> Result<(), ClientError> {
        self.inner.auth.set_token(token.expose())?;
        self.inner
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .expires_at = expires_at;
        self.inner.token.send_replace(token);
        Ok(())
    }

    /// Registers again with the secret, unless another caller already did since
    /// `seen_generation`. A refused secret marks the credentials revoked (fail closed).
    pub async fn register_again(&self, seen_generation: u64) -> Result<(), CredentialError> {
        let _one_at_a_time = self.inner.registering.lock().await;
        if self.generation() != seen_generation {
            return Ok(());
        }
        if self.is_revoked() {
            return Err(CredentialError::Revoked {
                message: "refused earlier".into(),
            });
        }
        match register_with_secret(&self.inner.channel, &self.inner.secret, &self.inner.request)
            .await
        {
            Ok((runner_id, token, expires_at)) => {
                self.install(token, expires_at)?;
                let mut current = self
                    .inner
                    .current
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                current.runner_id = runner_id.clone();
                current.generation += 1;
                drop(current);
                info!(runner_id = %runner_id, "registered with the controller again");
                Ok(())
            }
            Err(e) if e.is_fatal() => {
                error!(
                    error = %e,
                    "registration revoked or secret wrong: this runner takes no more jobs and exits"
                );
                self.inner.revoked.send_replace(true);
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// One RenewRunnerToken call; installs the fresh token.
    async fn renew_once(&self) -> Result<(), CredentialError> {
        let runner_id = self.runner_id();
        let resp = self
            .client()
            .renew_runner_token(RenewRunnerTokenRequest { runner_id })
            .await
            .map_err(|status| CredentialError::Rpc {
                call: "RenewRunnerToken",
                status,
            })?
            .into_inner();
        if resp.runner_token.trim().is_empty() {
            return Err(CredentialError::NoRunnerToken {
                call: "RenewRunnerToken",
            });
        }
        self.install(
            Secret::new(&resp.runner_token),
            resp.runner_token_expires_at_unix,
        )?;
        debug!(
            expires_at_unix = resp.runner_token_expires_at_unix,
            "renewed the runner token"
        );
        Ok(())
    }

    /// Keeps the runner token fresh until the registration is revoked (then returns). Spawn
    /// it once per runner.
    pub async fn keep_renewed(self) {
        let mut revoked = self.revoked();
        loop {
            let delay = renew_delay(self.current().expires_at, SystemTime::now());
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = revoked.wait_for(|r| *r) => return,
            }
            let mut backoff = BACKOFF_START;
            loop {
                let generation = self.generation();
                let result = match self.renew_once().await {
                    Err(CredentialError::Rpc { status, .. })
                        if needs_registration(status.code()) =>
                    {
                        warn!(
                            code = ?status.code(),
                            "the controller refused to renew the runner token; registering again with the registration secret"
                        );
                        self.register_again(generation).await
                    }
                    other => other,
                };
                match result {
                    Ok(()) => break,
                    Err(e) if e.is_fatal() => return,
                    Err(e) => {
                        warn!(error = %e, "renewing the runner token failed; retrying in {backoff:?}");
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            _ = revoked.wait_for(|r| *r) => return,
                        }
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                }
            }
        }
    }
}

/// Runs beside one job until aborted: registers every new runner token with the job's log
/// redactor (the current one is registered at once), and cancels the job when the
/// registration is revoked (its reports would be refused anyway: fail closed).
pub async fn guard_job(
    creds: Credentials,
    sink: crate::report::events::EventSink,
    cancel: Arc<watch::Sender<bool>>,
) {
    let mut tokens = creds.runner_token();
    let mut revoked = creds.revoked();
    loop {
        let token = tokens.borrow_and_update().clone();
        sink.add_secret(token.expose()).await;
        tokio::select! {
            changed = tokens.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            r = revoked.wait_for(|r| *r) => {
                if r.is_ok() {
                    warn!("the runner's registration was revoked: aborting the job");
                    let _ = cancel.send(true);
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_waits_half_the_remaining_lifetime_within_bounds() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(renew_delay(1_000_600, now), Duration::from_secs(300));
        // Already expired (or a clock ahead of the controller's): soon, but not in a loop.
        assert_eq!(renew_delay(999_000, now), MIN_RENEW_DELAY);
        // No expiry sent: half the longest lifetime a runner token can have.
        assert_eq!(renew_delay(0, now), MAX_RENEW_DELAY);
        // A lifetime beyond 15 minutes (a clock behind): still renewed within 7.5 minutes.
        assert_eq!(renew_delay(1_010_000, now), MAX_RENEW_DELAY);
    }

    #[test]
    fn refusals_that_mean_register_again() {
        assert!(needs_registration(Code::Unauthenticated));
        assert!(needs_registration(Code::NotFound));
        assert!(needs_registration(Code::PermissionDenied));
        assert!(!needs_registration(Code::Unavailable));
        assert!(!needs_registration(Code::Internal));
    }

    #[test]
    fn the_revoked_error_names_the_cause() {
        let e = CredentialError::Revoked {
            message: "registration `pool-a` was revoked".into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("registration revoked or secret wrong"),
            "{text}"
        );
        assert!(text.contains("--registration-secret-file"), "{text}");
    }
}
