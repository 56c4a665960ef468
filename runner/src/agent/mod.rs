//! The runner's lease loop: connect, register, take jobs up to `max_jobs` at once and
//! drain on shutdown. The phases of one job (prepare, launch, collect, report, clean up)
//! live in the submodules; cleanup always runs.

mod broker;
mod caches;
mod complete;
mod fs;
mod images;
mod job;
mod outputs;
mod prepare;
mod retry;
mod steps;
mod trace;
mod upload;
mod vulns;

use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_proto::auth::{AuthedChannel, ClientError};
use airlock_proto::v1::runner_service_client::RunnerServiceClient;
use airlock_proto::v1::{AcquireJobRequest, RegisterRunnerRequest};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::config::RunnerConfig;
use crate::control::credentials::{CredentialError, Credentials, needs_registration};
use crate::fetch::image::ImageCache;
use crate::fetch::prepare::Fetchers;
use crate::profile::Profiles;
use crate::sandbox::identity::{IdAllocator, allocator_for};
use crate::sandbox::{Launcher, SandboxError};
use crate::state::{Instance, StateError};
use fs::mkdir_searchable;

/// Warns, at start-up, of profiles whose jobs will fail for want of an image key.
fn warn_unchecked_images(profiles: &Profiles, cfg: &RunnerConfig) {
    if !cfg.image_trust.keys.is_empty() {
        return;
    }
    for name in profiles.names() {
        if profiles
            .get(name)
            .is_ok_and(|p| p.image_check.require_attestation)
        {
            warn!(
                profile = name,
                "the profile requires checked images ([image_check] require_attestation) but \
                 no --image-key was given: its jobs will fail before their first step"
            );
        }
    }
}

/// The error `run` ends with when the registration secret was refused.
fn revoked_error() -> RunnerError {
    RunnerError::Credentials(CredentialError::Revoked {
        message: "the runner token could not be renewed and registering again was refused".into(),
    })
}

/// Errors that stop the runner itself (not a job).
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// Client setup or connection failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Registration or the runner token failed; [`CredentialError::Revoked`] means the
    /// registration secret itself was refused (the runner stopped taking jobs).
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// The controller refused a call.
    #[error("controller refused {call}: {status}")]
    Rpc {
        /// The call.
        call: &'static str,
        /// The status.
        status: tonic::Status,
    },
    /// Local set-up failed.
    #[error("runner set-up: {0}")]
    Setup(String),
    /// The sandbox launcher could not be prepared.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The state directory could not be claimed or cleaned.
    #[error(transparent)]
    State(#[from] StateError),
}

/// A connected, registered runner. Cloned once per concurrent job (the clones share the
/// channel, the credentials, the image cache, the id-range allocator and the room in the
/// state directory; a job's clone swaps `client` for one scoped to the job's token).
#[derive(Debug, Clone)]
pub struct Runner {
    cfg: RunnerConfig,
    /// This process's room in the state directory (see [`crate::state`]), locked while it
    /// lives.
    instance: Arc<Instance>,
    /// Numbers the attempts this process runs (their token broker directories).
    attempts: Arc<std::sync::atomic::AtomicU64>,
    /// Turns true when running jobs are to be handed back to the controller (a second
    /// SIGTERM, or the drain deadline).
    hand_back: watch::Receiver<bool>,
    creds: Credentials,
    client: RunnerServiceClient<AuthedChannel>,
    images: ImageCache,
    fetchers: Fetchers,
    launcher: Launcher,
    profiles: Profiles,
    ids: IdAllocator,
}

impl Runner {
    /// Connects (retrying with backoff for up to `connect_for`), registers with the
    /// registration secret, and prepares local state.
    pub async fn connect(cfg: RunnerConfig, connect_for: Duration) -> Result<Self, RunnerError> {
        mkdir_searchable(&cfg.state_dir)?;
        // Claim a room first: from now on no other runner's reaper touches ours.
        let instance = Arc::new(Instance::claim(&cfg.state_dir)?);
        let reaped =
            crate::state::reap_dead(&cfg.state_dir, instance.id(), &cfg.launcher_exe).await?;
        if !reaped.is_empty() {
            warn!(
                rooms = reaped.rooms,
                helpers_killed = reaped.helpers_killed,
                containers = reaped.containers,
                mounts = reaped.mounts,
                "removed what dead runners left in the state directory"
            );
        }
        // Reaching the controller and registering are retried while the controller is
        // unreachable or restarting (for `connect_for`); a refusal is final.
        let started = Instant::now();
        let mut delay = Duration::from_millis(100);
        let request = RegisterRunnerRequest {
            name: cfg.name.clone(),
            labels: cfg.labels.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
        };
        let creds = loop {
            let retry_in = match airlock_proto::auth::connect_with(&cfg.controller_url, &cfg.tls)
                .await
            {
                Ok(channel) => {
                    match Credentials::register(
                        channel,
                        cfg.registration_secret.clone(),
                        request.clone(),
                    )
                    .await
                    {
                        Ok(creds) => break creds,
                        Err(CredentialError::Rpc { status, .. })
                            if retry::is_transient(status.code())
                                && started.elapsed() < connect_for =>
                        {
                            warn!(%status, "registration cut off (controller restarting?); retrying in {delay:?}");
                            delay
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) if e.is_transient() && started.elapsed() < connect_for => {
                    warn!(error = %e, "controller not reachable yet; retrying in {delay:?}");
                    delay
                }
                Err(e) => return Err(e.into()),
            };
            tokio::time::sleep(retry_in).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        };
        let client = creds.client();
        let images = ImageCache::new(cfg.state_dir.join("images"))
            .with_max_bytes(cfg.rootfs_cache_max_bytes);
        let fetchers =
            Fetchers::from_config(&cfg).map_err(|e| RunnerError::Setup(e.to_string()))?;
        if crate::sandbox::has_host_privilege() && !instance.mount_sandbox_tmpfs()? {
            warn!(dir = %instance.sandbox_dir().display(), "could not mount a tmpfs for the sandbox state; keeping it on disk (slower steps)");
        }
        let launcher = Launcher::new(&cfg.launcher_exe, instance.sandbox_dir())?;
        let partial = fetchers.reap_partial() + images.reap_partial();
        if partial > 0 {
            info!(
                partial,
                "removed partial downloads and unpacks that nobody is writing"
            );
        }
        let profiles = match &cfg.profiles_dir {
            Some(dir) => Profiles::from_dir(dir),
            None => Profiles::built_in(),
        }
        .map_err(|e| RunnerError::Setup(e.to_string()))?;
        warn_unchecked_images(&profiles, &cfg);
        let ids = allocator_for(&cfg).map_err(|e| RunnerError::Setup(e.to_string()))?;
        info!(labels = ?cfg.labels, room = %instance.dir().display(), "runner ready");
        Ok(Self {
            cfg,
            instance,
            attempts: Arc::default(),
            // Never fires unless `run_until` is given one that does.
            hand_back: watch::channel(false).1,
            creds,
            client,
            images,
            fetchers,
            launcher,
            profiles,
            ids,
        })
    }

    /// The id the controller gave this runner (changes when it registers again).
    pub fn id(&self) -> String {
        self.creds.runner_id()
    }

    /// Takes jobs, up to `max_jobs` at once, until `shutdown` turns true (or after one job
    /// when ephemeral), then drains: stops taking jobs and lets the running ones finish and
    /// report. While the controller is unreachable (restarting) it retries with backoff; if the
    /// controller no longer accepts the runner token or knows this runner (a new database), it
    /// registers again with the registration secret. Renews the runner token meanwhile. When
    /// the registration secret is refused (revoked), it fails closed: running jobs are
    /// aborted, and it returns [`CredentialError::Revoked`].
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Result<(), RunnerError> {
        let (_never, hand_back) = watch::channel(false);
        self.run_until(shutdown, hand_back).await
    }

    /// [`Runner::run`], and when `hand_back` turns true (after `shutdown`: a second SIGTERM
    /// or a drain deadline) the running jobs are handed back instead of finished: their
    /// steps are stopped and each attempt is completed as an infrastructure failure saying
    /// so, which releases its lease at once and re-queues the job for another runner.
    pub async fn run_until(
        mut self,
        mut shutdown: watch::Receiver<bool>,
        hand_back: watch::Receiver<bool>,
    ) -> Result<(), RunnerError> {
        self.hand_back = hand_back;
        let renewal = tokio::spawn(self.creds.clone().keep_renewed());
        let mut revoked = self.creds.revoked();
        let slots = Arc::new(Semaphore::new(self.cfg.max_jobs.max(1) as usize));
        let mut running = JoinSet::new();
        let mut backoff = Duration::from_millis(200);
        let result = loop {
            while running.try_join_next().is_some() {}
            if *shutdown.borrow() {
                break Ok(());
            }
            if self.creds.is_revoked() {
                break Err(revoked_error());
            }
            let permit = tokio::select! {
                p = Arc::clone(&slots).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break Ok(()),
                },
                _ = shutdown.changed() => break Ok(()),
                _ = revoked.wait_for(|r| *r) => break Err(revoked_error()),
            };
            let generation = self.creds.generation();
            let req = AcquireJobRequest {
                runner_id: self.creds.runner_id(),
                wait_ms: u32::try_from(self.cfg.poll_wait.as_millis()).unwrap_or(u32::MAX),
            };
            let resp = tokio::select! {
                r = self.client.acquire_job(req) => r,
                _ = shutdown.changed() => break Ok(()),
                _ = revoked.wait_for(|r| *r) => break Err(revoked_error()),
            };
            match resp {
                Ok(resp) => {
                    backoff = Duration::from_millis(200);
                    if let Some(lease) = resp.into_inner().lease {
                        let worker = self.clone();
                        running.spawn(async move {
                            worker.execute(lease).await;
                            drop(permit);
                        });
                        if self.cfg.ephemeral {
                            break Ok(());
                        }
                    }
                }
                Err(status) if needs_registration(status.code()) => {
                    warn!(
                        code = ?status.code(),
                        "the controller refused the runner token or does not know this runner; registering again"
                    );
                    match self.creds.register_again(generation).await {
                        Ok(()) => backoff = Duration::from_millis(200),
                        Err(e) if e.is_fatal() => break Err(e.into()),
                        Err(e) => {
                            warn!(error = %e, "registering again failed; retrying in {backoff:?}");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(10));
                        }
                    }
                }
                Err(status)
                    if matches!(
                        status.code(),
                        tonic::Code::Unavailable
                            | tonic::Code::Unknown
                            | tonic::Code::Internal
                            | tonic::Code::Cancelled
                            | tonic::Code::DeadlineExceeded
                    ) =>
                {
                    warn!(%status, "controller unavailable; retrying in {backoff:?}");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => break Ok(()),
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                Err(status) => {
                    break Err(RunnerError::Rpc {
                        call: "AcquireJob",
                        status,
                    });
                }
            }
        };
        if !running.is_empty() {
            info!(
                jobs = running.len(),
                "draining: waiting for running jobs to finish (a second SIGTERM hands them back)"
            );
        }
        while running.join_next().await.is_some() {}
        renewal.abort();
        let revoked_meanwhile = self.creds.is_revoked();
        // Every job is over and its sandboxes gone: the room is empty but for its skeleton.
        let Self { instance, .. } = self;
        match Arc::try_unwrap(instance) {
            Ok(instance) => {
                if let Err(e) = instance.remove() {
                    warn!(error = %e, "could not remove this runner's room; the next runner reaps it");
                }
            }
            Err(_) => warn!("a job still holds this runner's room; the next runner reaps it"),
        }
        // A revocation noticed while draining (or by an ephemeral runner's job) still fails.
        match result {
            Ok(()) if revoked_meanwhile => Err(revoked_error()),
            other => other,
        }
    }
}
