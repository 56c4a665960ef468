//! The runner's lease loop and the phases of one job: prepare, launch, collect,
//! report, clean up. Cleanup always runs.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_attest::Sha256Digest;
use airlock_job::{ImageRef, JobSpec, SourceSpec};
use airlock_proto::auth::{AuthedChannel, ClientError};
use airlock_proto::v1::runner_service_client::RunnerServiceClient;
use airlock_proto::v1::step_event::Phase;
use airlock_proto::v1::upload_output_request::Kind as UploadKind;
use airlock_proto::v1::{
    AcquireJobRequest, CompleteJobRequest, DownloadSourceRequest, Lease, LogStream, Outcome,
    OutputFile, OutputHeader, RegisterRunnerRequest, StepEvent, UploadOutputRequest,
};
use tokio::io::AsyncReadExt;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio_stream::StreamExt;
use tracing::{Instrument, info, info_span, warn};

use crate::config::RunnerConfig;
use crate::credentials::{CredentialError, Credentials, needs_registration};
use crate::events::{EventReporter, EventSink};
use crate::identity::{IdAllocator, allocator_for};
use crate::image::{ImageCache, ImageProgress};
use crate::outputs::{CollectedOutput, OutputLimits, collect_outputs};
use crate::prepare::{Fetchers, ImageRecord, PrepareFailure};
use crate::profile::{Profile, Profiles};
use crate::sandbox::{FailureKind, Launcher, SandboxError, SandboxPlan, StepOutcome, Stream};
use crate::source_archive::{unpack_verified, write_hashed};

/// The error `run` ends with when the registration secret was refused.
fn revoked_error() -> RunnerError {
    RunnerError::Credentials(CredentialError::Revoked {
        message: "the runner token could not be renewed and registering again was refused".into(),
    })
}

/// `SOURCE_DATE_EPOCH` for path sources, which have no commit time: 1980-01-01,
/// the earliest time every archive format can store.
const PATH_SOURCE_DATE_EPOCH: u64 = 315_532_800;

/// Upload chunk size.
const UPLOAD_CHUNK: usize = 256 * 1024;

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
}

/// How one job ended, from the runner's side.
#[derive(Debug)]
enum JobEnd {
    Succeeded {
        outputs: Vec<CollectedOutput>,
        image: ImageRecord,
    },
    Failed {
        message: String,
        exit_code: i32,
    },
    TimedOut(String),
    Cancelled(String),
    Infra(String),
}

/// A connected, registered runner. Cloned once per concurrent job (the clones share the
/// channel, the credentials, the image cache and the id-range allocator; a job's clone swaps
/// `client` for one scoped to the job's token).
#[derive(Debug, Clone)]
pub struct Runner {
    cfg: RunnerConfig,
    creds: Credentials,
    client: RunnerServiceClient<AuthedChannel>,
    images: ImageCache,
    fetchers: Fetchers,
    launcher: Launcher,
    profiles: Profiles,
    ids: IdAllocator,
}

fn mkdir_searchable(path: &Path) -> Result<(), RunnerError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(|e| RunnerError::Setup(format!("cannot create {}: {e}", path.display())))
}

impl Runner {
    /// Connects (retrying with backoff for up to `connect_for`), registers with the
    /// registration secret, and prepares local state.
    pub async fn connect(cfg: RunnerConfig, connect_for: Duration) -> Result<Self, RunnerError> {
        mkdir_searchable(&cfg.state_dir)?;
        mkdir_searchable(&cfg.state_dir.join("jobs"))?;
        let started = Instant::now();
        let mut delay = Duration::from_millis(100);
        let channel = loop {
            match airlock_proto::auth::connect_with(&cfg.controller_url, &cfg.tls).await {
                Ok(c) => break c,
                Err(e) if e.is_transient() && started.elapsed() < connect_for => {
                    warn!(error = %e, "controller not reachable yet; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e.into()),
            }
        };
        let creds = Credentials::register(
            channel,
            cfg.registration_secret.clone(),
            RegisterRunnerRequest {
                name: cfg.name.clone(),
                labels: cfg.labels.clone(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
        )
        .await?;
        let client = creds.client();
        let images = ImageCache::new(cfg.state_dir.join("images"))
            .with_max_bytes(cfg.rootfs_cache_max_bytes);
        let fetchers =
            Fetchers::from_config(&cfg).map_err(|e| RunnerError::Setup(e.to_string()))?;
        let launcher = Launcher::new(&cfg.launcher_exe, cfg.state_dir.join("sandbox"))?;
        if let Err(e) = launcher.cleanup_stale() {
            warn!(error = %e, "could not clean stale sandbox state");
        }
        let profiles = match &cfg.profiles_dir {
            Some(dir) => Profiles::from_dir(dir),
            None => Profiles::built_in(),
        }
        .map_err(|e| RunnerError::Setup(e.to_string()))?;
        let ids = allocator_for(&cfg).map_err(|e| RunnerError::Setup(e.to_string()))?;
        info!(labels = ?cfg.labels, "runner ready");
        Ok(Self {
            cfg,
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
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), RunnerError> {
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
                "draining: waiting for running jobs to finish"
            );
        }
        while running.join_next().await.is_some() {}
        renewal.abort();
        // A revocation noticed while draining (or by an ephemeral runner's job) still fails.
        match result {
            Ok(()) if self.creds.is_revoked() => Err(revoked_error()),
            other => other,
        }
    }

    /// Runs one leased job to completion and reports it, renewing the lease meanwhile.
    /// Never panics the loop.
    async fn execute(mut self, lease: Lease) {
        let job_id = lease.job_id.clone();
        let span = info_span!("job", job_id = %job_id, runner_id = %self.creds.runner_id(), attempt = lease.attempt);
        async {
            if !is_safe_id(&job_id) {
                warn!("refusing a lease with a malformed job id");
                return;
            }
            // Every call about the job carries its job token; a lease without one is refused.
            let refusal = if lease.job_token.trim().is_empty() {
                Some("the controller sent a lease without a job token; upgrade the controller")
            } else {
                match self.creds.job_client(&lease.job_token) {
                    Ok(client) => {
                        self.client = client;
                        None
                    }
                    Err(_) => Some("the lease's job token is not valid header text"),
                }
            };
            if let Some(message) = refusal {
                warn!("refusing the lease: {message}");
                self.complete(
                    &lease,
                    Outcome::InfraFailed,
                    format!("the runner refused the lease: {message}"),
                    0,
                    vec![],
                    None,
                )
                .await;
                return;
            }
            info!("leased");
            let job_dir = self.cfg.state_dir.join("jobs").join(&job_id);
            let (cancel_tx, cancel_rx) = watch::channel(false);
            let cancel_tx = Arc::new(cancel_tx);
            let heartbeat = tokio::spawn(
                crate::heartbeat::keep_alive(
                    self.creds.clone(),
                    self.client.clone(),
                    job_id.clone(),
                    lease.lease_token.clone(),
                    Duration::from_millis(u64::from(lease.lease_ttl_ms)),
                    Arc::clone(&cancel_tx),
                )
                .in_current_span(),
            );
            let (sink, reporter) = EventReporter::start(
                self.client.clone(),
                job_id.clone(),
                lease.lease_token.clone(),
                Arc::clone(&cancel_tx),
            );
            // The runner's own credentials must never reach a log either.
            self.creds.redact_in(&sink, &lease.job_token).await;
            let guard = tokio::spawn(
                crate::credentials::guard_job(self.creds.clone(), sink.clone(), cancel_tx)
                    .in_current_span(),
            );
            let end = self.run_job(&lease, &job_dir, &sink, cancel_rx).await;
            // The guard holds a sink: end it before waiting for the reporter to drain.
            guard.abort();
            let _ = guard.await;
            drop(sink);
            let report = reporter.finish().await;
            let end = match (end, report) {
                (end, Ok(())) => end,
                (JobEnd::Succeeded { .. }, Err(status)) => {
                    JobEnd::Infra(format!("could not deliver the job's logs: {status}"))
                }
                (end, Err(status)) => {
                    warn!(%status, "could not deliver every log event");
                    end
                }
            };
            let end = match end {
                JobEnd::Succeeded { outputs, image } => {
                    match self.upload_outputs(&lease, &outputs).await {
                        Ok(files) => {
                            self.complete(
                                &lease,
                                Outcome::Succeeded,
                                String::new(),
                                0,
                                files,
                                Some(image),
                            )
                            .await
                        }
                        Err(msg) => JobEnd::Infra(msg),
                    }
                }
                other => other,
            };
            match end {
                JobEnd::Succeeded { .. } => {}
                JobEnd::Failed { message, exit_code } => {
                    self.complete(&lease, Outcome::Failed, message, exit_code, vec![], None)
                        .await;
                }
                JobEnd::TimedOut(m) => {
                    self.complete(&lease, Outcome::TimedOut, m, 0, vec![], None)
                        .await;
                }
                JobEnd::Cancelled(m) => {
                    self.complete(&lease, Outcome::Cancelled, m, 0, vec![], None)
                        .await;
                }
                JobEnd::Infra(m) => {
                    self.complete(&lease, Outcome::InfraFailed, m, 0, vec![], None)
                        .await;
                }
            }
            heartbeat.abort();
            // Cleanup always runs: every sandbox process is dead by now.
            if let Err(e) = std::fs::remove_dir_all(&job_dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                warn!(error = %e, dir = %job_dir.display(), "could not remove the job workspace");
            }
        }
        .instrument(span)
        .await;
    }

    /// Sends CompleteJob; returns `Succeeded` placeholder or the failure to report.
    async fn complete(
        &mut self,
        lease: &Lease,
        outcome: Outcome,
        message: String,
        exit_code: i32,
        outputs: Vec<OutputFile>,
        image: Option<ImageRecord>,
    ) -> JobEnd {
        let req = CompleteJobRequest {
            job_id: lease.job_id.clone(),
            lease_token: lease.lease_token.clone(),
            outcome: outcome as i32,
            message: message.clone(),
            exit_code,
            outputs,
            image_manifest_sha256: image.as_ref().map(|i| i.manifest.hex()).unwrap_or_default(),
            image_layers_sha256: image
                .map(|i| i.layers.iter().map(Sha256Digest::hex).collect())
                .unwrap_or_default(),
        };
        match self.client.complete_job(req).await {
            Ok(resp) => {
                info!(state = resp.into_inner().state, "completed");
                JobEnd::Succeeded {
                    outputs: vec![],
                    image: ImageRecord {
                        manifest: Sha256Digest::of(b""),
                        layers: Vec::new(),
                    },
                }
            }
            Err(status) => {
                warn!(%status, "CompleteJob failed");
                if outcome == Outcome::Succeeded {
                    // Report the failure instead; the controller may still accept that.
                    let _ = Box::pin(self.complete(
                        lease,
                        Outcome::InfraFailed,
                        format!("completing the job failed: {}", status.message()),
                        0,
                        vec![],
                        None,
                    ))
                    .await;
                }
                JobEnd::Infra(status.message().to_string())
            }
        }
    }

    async fn run_job(
        &mut self,
        lease: &Lease,
        job_dir: &Path,
        events: &EventSink,
        cancel: watch::Receiver<bool>,
    ) -> JobEnd {
        let started = Instant::now();
        let spec = match JobSpec::from_json(&lease.spec_json) {
            Ok(s) => s,
            Err(e) => {
                return JobEnd::Infra(format!(
                    "the controller sent a spec this runner refuses: {e}"
                ));
            }
        };
        // The job's profile decides the sandbox; unknown profiles and requests above its
        // ceilings are refused before anything is prepared.
        let profile = match self
            .profiles
            .get(&spec.job.profile)
            .and_then(|p| p.admit(&spec).map(|()| p.clone()))
        {
            Ok(p) => p,
            Err(e) => {
                return JobEnd::Failed {
                    message: format!("refused: {e}"),
                    exit_code: 0,
                };
            }
        };
        // The job's own host id range, released only once no process runs in it.
        let ids = match self.ids.acquire() {
            Ok(ids) => ids,
            Err(e) => return JobEnd::Infra(e.to_string()),
        };
        let id_map = ids.id_map();
        events
            .system(
                0,
                format!(
                    "sandbox profile {}; host ids {}..{}",
                    profile.name,
                    id_map.host_base,
                    u64::from(id_map.host_base) + u64::from(id_map.size)
                ),
            )
            .await;
        if crate::sandbox::is_rootless() {
            events
                .system(0, crate::sandbox::ROOTLESS_LIMITS_NOTICE.to_owned())
                .await;
        }
        let end = self
            .run_job_as(
                lease, job_dir, events, cancel, &spec, &profile, id_map, started,
            )
            .await;
        // A broker dropped on an early end (closed, not removed) leaves its directory.
        let broker_dir = self.cfg.state_dir.join("oidc").join(&lease.job_id);
        match std::fs::remove_dir_all(&broker_dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                warn!(error = %e, "could not remove the token broker directory");
            }
            _ => {}
        }
        // Rootless: give the workspace back to the runner so it can be removed.
        let trees = [job_dir.join("work"), job_dir.join("out")];
        let trees: Vec<_> = trees.into_iter().filter(|p| p.exists()).collect();
        if let Err(e) = self.launcher.chown_rootless(&trees, id_map, false).await {
            warn!(error = %e, "could not give the job workspace back to the runner");
        }
        if let Err(pid) = ids.release() {
            warn!(
                pid,
                host_base = id_map.host_base,
                "a process still runs in the job's id range; the range stays in quarantine"
            );
        }
        end
    }

    /// Starts the job's token broker under `<state_dir>/oidc` when the job declares `[oidc]
    /// audiences` and its profile allows build tokens; `None` otherwise (no socket is mounted,
    /// so an `untrusted-pr` step finds no `/run/airlock/oidc.sock`).
    #[allow(clippy::too_many_arguments)]
    async fn start_token_broker(
        &self,
        lease: &Lease,
        events: &EventSink,
        spec: &JobSpec,
        profile: &Profile,
        host_uid: u32,
        host_gid: u32,
    ) -> Result<Option<crate::token_broker::TokenBroker>, crate::token_broker::BrokerError> {
        use crate::token_broker::{BrokerPolicy, SocketOwner, TokenBroker};
        let audiences = match &spec.oidc {
            Some(oidc) if !oidc.audiences.is_empty() => oidc.audiences.clone(),
            _ => return Ok(None),
        };
        let untrusted = crate::build_tokens::UNTRUSTED_PR_PROFILE;
        if !profile.build_tokens || profile.name == untrusted || spec.job.profile == untrusted {
            return Ok(None);
        }
        let policy = BrokerPolicy {
            job_id: lease.job_id.clone(),
            tokens_allowed: true,
            audiences,
            max_lifetime: crate::build_tokens::BROKER_MAX_LIFETIME,
        };
        let source = crate::build_tokens::ControllerTokenSource::new(
            self.client.clone(),
            lease.job_id.clone(),
            lease.lease_token.clone(),
            events.clone(),
        );
        // A short parent: the socket path must fit in `sun_path` (108 bytes), which a path
        // under the job directory may not.
        let parent = self.cfg.state_dir.join("oidc");
        let io = |path: &Path| {
            let path = path.to_owned();
            move |e: std::io::Error| crate::token_broker::BrokerError::Io { path, source: e }
        };
        mkdir_searchable(&parent).map_err(|e| crate::token_broker::BrokerError::Io {
            path: parent.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        // A previous attempt of this job that ended early (its broker dropped) leaves its
        // directory behind.
        let stale = parent.join(&lease.job_id);
        match std::fs::remove_dir_all(&stale) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&stale)(e)),
            _ => {}
        }
        let owner = SocketOwner {
            uid: host_uid,
            gid: host_gid,
        };
        let broker = TokenBroker::start(&parent, policy, Some(owner), source).await?;
        events
            .system(
                0,
                "build tokens: /run/airlock/oidc.sock is available to the steps",
            )
            .await;
        Ok(Some(broker))
    }

    /// [`Runner::run_job`] with the profile admitted and the id range held.
    #[allow(clippy::too_many_arguments)]
    async fn run_job_as(
        &mut self,
        lease: &Lease,
        job_dir: &Path,
        events: &EventSink,
        cancel: watch::Receiver<bool>,
        spec: &JobSpec,
        profile: &Profile,
        id_map: crate::sandbox::IdMap,
        started: Instant,
    ) -> JobEnd {
        let deadline = started + spec.timeout();
        let host_uid = id_map.host_base.saturating_add(crate::sandbox::STEP_UID);
        let host_gid = id_map.host_base.saturating_add(crate::sandbox::STEP_GID);

        // Phase 1: prepare the workspace and inputs, outside the sandbox.
        let work = job_dir.join("work");
        let out = job_dir.join("out");
        for d in [job_dir, &work, &out] {
            if let Err(e) = mkdir_searchable(d) {
                return JobEnd::Infra(e.to_string());
            }
        }
        let source_epoch = match &spec.source {
            SourceSpec::Path {
                sha256: Some(digest),
                ..
            } => {
                events
                    .system(0, format!("fetching source sha256:{digest}"))
                    .await;
                if let Err(m) = self.fetch_source(lease, digest, job_dir, &work).await {
                    return JobEnd::Infra(m);
                }
                PATH_SOURCE_DATE_EPOCH
            }
            SourceSpec::Git { url, commit, .. } => {
                match crate::prepare::git_source(&self.fetchers, url, commit, &work, events).await {
                    Ok(epoch) => epoch,
                    Err(f) => return prepare_failed(f),
                }
            }
            SourceSpec::Archive { url, sha256 } => {
                if let Err(f) = crate::prepare::archive_source(
                    &self.fetchers,
                    url,
                    sha256,
                    &work,
                    job_dir,
                    events,
                )
                .await
                {
                    return prepare_failed(f);
                }
                PATH_SOURCE_DATE_EPOCH
            }
            SourceSpec::Path { sha256: None, .. } => {
                return JobEnd::Infra("the controller sent a path source without a digest".into());
            }
        };
        // Declared inputs: verified into the cache, linked read-only under the job.
        let inputs_dir = if spec.inputs.is_empty() {
            None
        } else {
            let dir = job_dir.join("inputs");
            if let Err(f) = crate::prepare::inputs(&self.fetchers, &spec.inputs, &dir, events).await
            {
                return prepare_failed(f);
            }
            Some(dir)
        };
        if let Err(m) = chown_tree(&work, host_uid, host_gid)
            .and_then(|()| chown_tree(&out, host_uid, host_gid))
        {
            return JobEnd::Infra(m);
        }
        // Rootless: the runner cannot chown to the job's ids; a user namespace does it.
        if let Err(e) = self
            .launcher
            .chown_rootless(&[work.clone(), out.clone()], id_map, true)
            .await
        {
            return JobEnd::Infra(format!("giving the workspace to the sandbox: {e}"));
        }
        // A cancel (or a lost lease) during image preparation ends the job at once; an
        // unpacking already under way finishes in the background and stays cached.
        let mut cancelled = cancel.clone();
        let prepared = tokio::select! {
            prepared = self.prepare_image(spec, events) => prepared,
            _ = cancelled.wait_for(|c| *c) => {
                return JobEnd::Cancelled("cancelled before the steps started".into());
            }
        };
        // The pin keeps the rootfs out of eviction until this job's last step has ended.
        let (image, _rootfs_pin) = match prepared {
            Ok(i) => i,
            Err(end) => return end,
        };

        // The token broker, for a job that declares `[oidc] audiences` under a profile with
        // build tokens (never `untrusted-pr`). Dropping it (any early return) closes it: later
        // requests get 410, and `run_job` removes its directory; the normal path shuts it down
        // after the last step.
        let broker = match self
            .start_token_broker(lease, events, spec, profile, host_uid, host_gid)
            .await
        {
            Ok(b) => b,
            Err(e) => return JobEnd::Infra(format!("starting the token broker: {e}")),
        };
        // Rootless, the runner cannot chown the socket to the step's uid itself; the helper
        // does it in a user namespace (as for /work and /out), so the step can connect.
        if let Some(broker) = &broker
            && let Err(e) = self
                .launcher
                .chown_rootless(&[broker.socket_path()], id_map, true)
                .await
        {
            return JobEnd::Infra(format!("handing the token socket to the step: {e}"));
        }

        // Phase 2: run each step in a fresh sandbox.
        for (i, step) in spec.steps.iter().enumerate() {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            let name = spec.step_name(i);
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return JobEnd::TimedOut(format!(
                    "the job exceeded its timeout of {}",
                    spec.job.timeout
                ));
            }
            let mut plan =
                SandboxPlan::new(&image.rootfs, &work, &out, step.command.argv(), id_map);
            let mut env: Vec<(String, String)> = image
                .env
                .iter()
                .filter_map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect();
            env.push(("SOURCE_DATE_EPOCH".into(), source_epoch.to_string()));
            env.extend(step.env.iter().map(|(k, v)| (k.clone(), v.clone())));
            plan.env = env;
            plan.inputs_dir = inputs_dir.clone();
            plan.tmp_size_bytes = spec.resources.tmp.0;
            plan.memory_bytes = Some(spec.resources.memory.0);
            plan.pids = Some(spec.resources.pids);
            plan.cpu_millis = Some(profile.cpu_millis());
            plan.open_files = Some(open_files_limit(profile.ceilings.open_files));
            plan.file_size_bytes = Some(profile.ceilings.output_bytes.0);
            plan.seccomp = profile.seccomp.clone();
            if let Some(broker) = &broker {
                plan.oidc_socket_dir = Some(broker.socket_dir().to_owned());
                plan.env.extend(
                    crate::token_broker::step_env()
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
                );
            }
            events
                .step(StepEvent {
                    step_index: index,
                    step_name: name.clone(),
                    phase: Phase::Started as i32,
                    exit_code: 0,
                    duration_ms: 0,
                })
                .await;
            let container_id = format!("airlock-{}-{i}", &lease.job_id);
            let (tx, mut rx) = mpsc::channel::<crate::sandbox::OutputChunk>(64);
            let forward = {
                let events = events.clone();
                tokio::spawn(async move {
                    while let Some(chunk) = rx.recv().await {
                        let stream = match chunk.stream {
                            Stream::Stdout => LogStream::Stdout,
                            Stream::Stderr => LogStream::Stderr,
                        };
                        events.log(index, stream, chunk.data).await;
                    }
                })
            };
            let result = self
                .launcher
                .run_step(&container_id, &plan, remaining, cancel.clone(), tx)
                .await;
            let _ = forward.await;
            let outcome = match result {
                Ok(o) => o,
                Err(e) => return JobEnd::Infra(format!("step `{name}`: sandbox failure: {e}")),
            };
            let code = exit_code_of(&outcome);
            events
                .step(StepEvent {
                    step_index: index,
                    step_name: name.clone(),
                    phase: Phase::Finished as i32,
                    exit_code: code,
                    duration_ms: u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX),
                })
                .await;
            match outcome.failure_kind() {
                None => {}
                Some(FailureKind::Cancelled) => {
                    return JobEnd::Cancelled(format!("cancelled during step `{name}`"));
                }
                Some(FailureKind::TimedOut) => {
                    return JobEnd::TimedOut(format!(
                        "timed-out: step `{name}` was killed: the job exceeded its timeout of {}",
                        spec.job.timeout
                    ));
                }
                Some(kind) => {
                    return JobEnd::Failed {
                        message: failure_message(kind, &name, code, spec),
                        exit_code: code,
                    };
                }
            }
        }

        // The steps are over: no more tokens for this job.
        if let Some(broker) = broker {
            broker.close();
            if let Err(e) = broker.shutdown().await {
                warn!(error = %e, "could not remove the token broker directory");
            }
        }

        // Phase 3: collect outputs; every sandbox process is dead now.
        // Rootless: take /out back first, so that the runner can read every file.
        if let Err(e) = self
            .launcher
            .chown_rootless(std::slice::from_ref(&out), id_map, false)
            .await
        {
            return JobEnd::Infra(format!("taking /out back from the sandbox: {e}"));
        }
        let patterns = spec.outputs.paths.clone();
        let out_dir = out.clone();
        let limits = OutputLimits {
            max_file_bytes: profile.ceilings.output_bytes.0,
            max_total_bytes: profile.ceilings.output_bytes.0,
            ..OutputLimits::default()
        };
        let collected =
            tokio::task::spawn_blocking(move || collect_outputs(&out_dir, &patterns, limits)).await;
        match collected {
            Ok(Ok(outputs)) => {
                for o in &outputs {
                    events
                        .system(
                            0,
                            format!("output {} sha256:{} ({} bytes)", o.path, o.sha256, o.size),
                        )
                        .await;
                }
                JobEnd::Succeeded {
                    outputs,
                    image: ImageRecord {
                        manifest: image.manifest_digest,
                        layers: image.layers.clone(),
                    },
                }
            }
            Ok(Err(e)) if e.is_build_failure() => JobEnd::Failed {
                message: e.to_string(),
                exit_code: 0,
            },
            Ok(Err(e)) => JobEnd::Infra(e.to_string()),
            Err(e) => JobEnd::Infra(format!("output collection panicked: {e}")),
        }
    }

    async fn fetch_source(
        &mut self,
        lease: &Lease,
        digest: &Sha256Digest,
        job_dir: &Path,
        work: &Path,
    ) -> Result<(), String> {
        let mut stream = self
            .client
            .download_source(DownloadSourceRequest {
                job_id: lease.job_id.clone(),
                lease_token: lease.lease_token.clone(),
            })
            .await
            .map_err(|s| format!("downloading the source: {}", s.message()))?
            .into_inner();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|s| format!("downloading the source: {}", s.message()))?;
            bytes.extend_from_slice(&chunk.data);
        }
        let archive = job_dir.join("source.tar");
        let (work, digest) = (work.to_path_buf(), *digest);
        tokio::task::spawn_blocking(move || {
            write_hashed(&bytes[..], &archive)
                .and_then(|_| unpack_verified(&archive, &digest, &work))
                .map_err(|e| format!("source archive: {e}"))?;
            std::fs::remove_file(&archive)
                .map_err(|e| format!("removing {}: {e}", archive.display()))
        })
        .await
        .map_err(|e| format!("source unpacking panicked: {e}"))?
    }

    async fn prepare_image(
        &self,
        spec: &JobSpec,
        events: &EventSink,
    ) -> Result<(crate::image::PreparedImage, crate::image::RootfsPin), JobEnd> {
        let (dir, digest) = match &spec.image.reference {
            ImageRef::OciLayout { dir, digest } => (PathBuf::from(dir), *digest),
            ImageRef::Registry { repository, digest } => {
                return crate::prepare::registry_image(
                    &self.fetchers,
                    &self.images,
                    repository,
                    digest,
                    events,
                )
                .await
                .map_err(prepare_failed);
            }
        };
        let canonical = std::fs::canonicalize(&dir).map_err(|e| JobEnd::Failed {
            message: format!("image layout {}: {e}", dir.display()),
            exit_code: 0,
        })?;
        let allowed = self
            .cfg
            .allowed_layout_roots
            .iter()
            .filter_map(|r| std::fs::canonicalize(r).ok())
            .any(|root| canonical.starts_with(root));
        if !allowed {
            return Err(JobEnd::Failed {
                message: format!(
                    "image layout {} is outside the directories this runner reads layouts from; start the runner with --allow-oci-layout DIR",
                    canonical.display()
                ),
                exit_code: 0,
            });
        }
        events
            .system(
                0,
                format!(
                    "preparing image sha256:{digest} from {}",
                    canonical.display()
                ),
            )
            .await;
        let images = self.images.clone();
        let sink = events.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            let mut progress = |p: ImageProgress| {
                let msg = match p {
                    ImageProgress::Verifying { blob, bytes } => {
                        format!(
                            "verifying layer sha256:{blob} ({:.1} MiB)",
                            bytes as f64 / 1048576.0
                        )
                    }
                    ImageProgress::Unpacking { layer, of } => {
                        format!("unpacking layer {layer}/{of}")
                    }
                    ImageProgress::Cached => {
                        "image already unpacked and verified (cache hit)".into()
                    }
                };
                sink.system_blocking(0, msg);
            };
            images.prepare_pinned_from_layout(&canonical, &digest, &mut progress)
        })
        .await
        .map_err(|e| JobEnd::Infra(format!("image preparation panicked: {e}")))?;
        prepared.map_err(|e| JobEnd::Infra(format!("image sha256:{digest}: {e}")))
    }

    async fn upload_outputs(
        &mut self,
        lease: &Lease,
        outputs: &[CollectedOutput],
    ) -> Result<Vec<OutputFile>, String> {
        let mut files = Vec::new();
        for o in outputs {
            let mut file = tokio::fs::File::open(&o.file)
                .await
                .map_err(|e| format!("reading output {}: {e}", o.path))?;
            let header = UploadOutputRequest {
                kind: Some(UploadKind::Header(OutputHeader {
                    job_id: lease.job_id.clone(),
                    lease_token: lease.lease_token.clone(),
                    path: o.path.clone(),
                    size: o.size,
                    sha256: o.sha256.hex(),
                    executable: o.executable,
                })),
            };
            let (tx, rx) = mpsc::channel(4);
            let path = o.path.clone();
            let size = o.size;
            let feeder = tokio::spawn(async move {
                if tx.send(header).await.is_err() {
                    return Ok(());
                }
                let mut sent = 0u64;
                let mut buf = vec![0u8; UPLOAD_CHUNK];
                // Upload exactly the bytes that were hashed: the file cannot change, as
                // nothing of the sandbox runs any more, but never send more than hashed.
                while sent < size {
                    let want = usize::try_from((size - sent).min(UPLOAD_CHUNK as u64))
                        .unwrap_or(UPLOAD_CHUNK);
                    let n = file
                        .read(&mut buf[..want])
                        .await
                        .map_err(|e| format!("reading output {path}: {e}"))?;
                    if n == 0 {
                        break;
                    }
                    sent += n as u64;
                    let msg = UploadOutputRequest {
                        kind: Some(UploadKind::Data(buf[..n].to_vec())),
                    };
                    if tx.send(msg).await.is_err() {
                        break;
                    }
                }
                Ok::<(), String>(())
            });
            let resp = self
                .client
                .upload_output(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await;
            feeder
                .await
                .map_err(|e| format!("upload task panicked: {e}"))??;
            let resp = resp
                .map_err(|s| format!("uploading output {}: {}", o.path, s.message()))?
                .into_inner();
            files.push(OutputFile {
                path: o.path.clone(),
                sha256: resp.sha256,
                size: resp.size,
                executable: o.executable,
            });
        }
        Ok(files)
    }
}

/// The message of a failed step: starts with the failure kind (`out-of-memory:`,
/// `pids-limit:`, `tmp-full:`), except for a plain non-zero exit.
fn failure_message(kind: FailureKind, name: &str, code: i32, spec: &JobSpec) -> String {
    let r = &spec.resources;
    match kind {
        FailureKind::OutOfMemory => format!(
            "{kind}: step `{name}` was killed by the kernel's OOM killer at its memory limit of {}",
            r.memory
        ),
        FailureKind::PidsLimit => format!(
            "{kind}: step `{name}` reached its process limit of {} (a fork failed) and ended with code {code}",
            r.pids
        ),
        FailureKind::TmpFull => format!(
            "{kind}: step `{name}` filled /tmp to its cap of {} (no space left on device) and ended with code {code}",
            r.tmp
        ),
        FailureKind::Signalled => format!(
            "{kind}: step `{name}` was killed by signal {} (exit code {code})",
            code - 128
        ),
        _ => format!("step `{name}` failed with exit code {code}"),
    }
}

/// `RLIMIT_NOFILE` for a step: the profile's, but never above the runner's own hard limit
/// (a user namespace cannot raise it).
fn open_files_limit(wanted: u64) -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(_, hard)| wanted.min(hard))
        .unwrap_or(wanted)
}

/// A failed preparation: the job's fault fails it, the runner's is an infrastructure failure.
fn prepare_failed(f: PrepareFailure) -> JobEnd {
    if f.job_fault {
        JobEnd::Failed {
            message: f.message,
            exit_code: 0,
        }
    } else {
        JobEnd::Infra(f.message)
    }
}

/// The step's exit code as a shell would show it (128+N for signal N).
fn exit_code_of(o: &StepOutcome) -> i32 {
    match (o.exit_code, o.signal) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        (None, None) => -1,
    }
}

/// Job ids become directory names: allow only what a uuid uses.
fn is_safe_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Gives the tree to the sandbox's step uid (only possible, and only needed, as root).
fn chown_tree(root: &Path, uid: u32, gid: u32) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let chown = |p: &Path| {
        nix::unistd::fchownat(
            None,
            p,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| format!("chown {}: {e}", p.display()))
    };
    chown(root)?;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let path = entry.path();
            chown(&path)?;
            let ft = entry
                .file_type()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if ft.is_dir() {
                stack.push(path);
            }
        }
    }
    let _ = std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755));
    Ok(())
}
