//! One lease from start to end: refuse a malformed lease, keep the lease alive, admit the
//! job under its profile and id range, run its phases, report it and remove its workspace.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_job::JobSpec;
use airlock_proto::v1::{Lease, Outcome};
use tokio::sync::watch;
use tracing::{Instrument, info, info_span, warn};

use super::Runner;
use crate::fetch::prepare::ResolvedInputs;
use crate::profile::Profile;
use crate::report::events::{EventReporter, EventSink};
use crate::report::outputs::CollectedOutput;

/// The reason an attempt handed back by a stopping runner is recorded with.
pub(super) const HANDED_BACK: &str = "interrupted: the runner was stopped (second SIGTERM or \
     drain deadline) and handed the attempt back";

/// How one job ended, from the runner's side.
#[derive(Debug)]
pub(super) enum JobEnd {
    Succeeded {
        outputs: Vec<CollectedOutput>,
        // Boxed: what a success resolved is large next to the other variants.
        image: Box<ResolvedInputs>,
    },
    Failed {
        message: String,
        exit_code: i32,
    },
    TimedOut(String),
    Cancelled(String),
    Infra(String),
}

impl Runner {
    /// Runs one leased job to completion and reports it, renewing the lease meanwhile.
    /// Never panics the loop.
    pub(super) async fn execute(mut self, lease: Lease) {
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
            // Keyed by the attempt: a retry never meets an earlier attempt's files, even one
            // of this very runner that is still being torn down.
            let job_dir = self
                .instance
                .jobs_dir()
                .join(crate::state::attempt_dir_name(&job_id, lease.attempt));
            let (cancel_tx, cancel_rx) = watch::channel(false);
            let cancel_tx = Arc::new(cancel_tx);
            let heartbeat = tokio::spawn(
                crate::control::heartbeat::keep_alive(
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
                crate::control::credentials::guard_job(self.creds.clone(), sink.clone(), Arc::clone(&cancel_tx))
                    .in_current_span(),
            );
            // Handing back (the runner is stopping for good) stops the steps like a cancel;
            // the attempt is then reported as interrupted, not as cancelled.
            let handed_back = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let hand_back = {
                let mut hand_back = self.hand_back.clone();
                let (flag, cancel) = (Arc::clone(&handed_back), Arc::clone(&cancel_tx));
                tokio::spawn(async move {
                    if hand_back.wait_for(|h| *h).await.is_ok() {
                        info!("handing the job back to the controller");
                        flag.store(true, std::sync::atomic::Ordering::SeqCst);
                        let _ = cancel.send(true);
                    }
                }.in_current_span())
            };
            let end = self.run_job(&lease, &job_dir, &sink, cancel_rx).await;
            hand_back.abort();
            let end = match end {
                JobEnd::Cancelled(_) | JobEnd::Infra(_)
                    if handed_back.load(std::sync::atomic::Ordering::SeqCst) =>
                {
                    JobEnd::Infra(HANDED_BACK.to_owned())
                }
                other => other,
            };
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
                    info!("phase: uploading outputs");
                    match self.upload_outputs(&lease, &outputs).await {
                        Ok(files) => {
                            info!("phase: completing");
                            // The vulnerability gate fails a build whose steps succeeded; its
                            // outputs are uploaded all the same, so that its SBOM names them.
                            let (outcome, message) = match &image.gate_failure {
                                Some(why) => (Outcome::Failed, why.clone()),
                                None => (Outcome::Succeeded, String::new()),
                            };
                            self.complete(&lease, outcome, message, 0, files, Some(*image))
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
            if let Err(e) = crate::state::remove_tree(&job_dir) {
                warn!(error = %e, "could not remove the attempt's workspace; the next runner reaps it");
            }
        }
        .instrument(span)
        .await;
    }

    /// Admits the job (its spec, its profile, an id range), runs it, and cleans up what
    /// the sandbox held: the token broker directory, the workspace's owner, the id range.
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
        } else if crate::sandbox::is_userns_root() {
            events
                .system(0, crate::sandbox::USERNS_ROOT_LIMITS_NOTICE.to_owned())
                .await;
        }
        let broker_dir = self
            .attempts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_string();
        let end = self
            .run_job_as(
                lease,
                job_dir,
                events,
                cancel,
                &spec,
                &profile,
                id_map,
                started,
                &broker_dir,
            )
            .await;
        // A broker dropped on an early end (closed, not removed) leaves its directory.
        let broker_dir = self.instance.oidc_dir().join(&broker_dir);
        if let Err(e) = crate::state::remove_tree(&broker_dir) {
            warn!(error = %e, "could not remove the token broker directory");
        }
        // A step whose future was dropped mid-way (the job aborted) leaves its container's
        // bundle and maybe its cgroup: remove what is left of this attempt's containers.
        let prefix = crate::state::container_prefix(&lease.job_id, lease.attempt);
        let launcher = self.launcher.clone();
        match tokio::task::spawn_blocking(move || launcher.cleanup_prefix(&prefix)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => warn!(containers = n, "removed containers the attempt left behind"),
            Ok(Err(e)) => warn!(error = %e, "could not remove the attempt's containers"),
            Err(e) => warn!(error = %e, "the container cleanup task failed"),
        }
        // Rootless: give the workspace back to the runner so it can be removed.
        let trees = [
            job_dir.join("work"),
            job_dir.join("out"),
            job_dir.join("cache"),
        ];
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
        broker_dir: &str,
    ) -> JobEnd {
        let deadline = started + spec.timeout();
        let host_uid = id_map.host_base.saturating_add(crate::sandbox::STEP_UID);
        let host_gid = id_map.host_base.saturating_add(crate::sandbox::STEP_GID);

        if let Err(message) = self.gate_is_checkable(profile) {
            return JobEnd::Infra(message);
        }

        // Phase 1: prepare the workspace and inputs, outside the sandbox. The prepared job
        // holds the rootfs pin until this job's last step has ended.
        info!("phase: preparing");
        let prepared = match self
            .prepare_job(
                lease,
                job_dir,
                events,
                &cancel,
                spec,
                profile,
                id_map,
                (host_uid, host_gid),
            )
            .await
        {
            Ok(p) => p,
            Err(end) => return end,
        };

        // The token broker, for a job that declares `[oidc] audiences` under a profile with
        // build tokens (never `untrusted-pr`). Dropping it (any early return) closes it: later
        // requests get 410, and `run_job` removes its directory; the normal path shuts it down
        // after the last step.
        let broker = match self
            .start_token_broker(lease, events, spec, profile, host_uid, host_gid, broker_dir)
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

        // Phase 2: run each step in a fresh sandbox, all forked by the attempt's zygote
        // (sandbox/zygote.rs).
        info!("phase: steps");
        let sandbox_id =
            crate::state::job_sandbox_id(&lease.job_id, lease.attempt, self.instance.id());
        let sandbox = match self.launcher.job(&sandbox_id) {
            Ok(s) => s,
            Err(e) => return JobEnd::Infra(format!("starting the job's sandbox: {e}")),
        };
        let steps = self
            .run_steps(
                &sandbox,
                lease,
                events,
                &cancel,
                spec,
                profile,
                id_map,
                deadline,
                &prepared,
                broker.as_ref(),
            )
            .await;
        if let Err(e) = sandbox.finish().await {
            warn!(error = %e, "could not remove the job's sandbox");
        }
        if let Err(end) = steps {
            return end;
        }

        // The steps are over: no more tokens for this job.
        if let Some(broker) = broker {
            broker.close();
            if let Err(e) = broker.shutdown().await {
                warn!(error = %e, "could not remove the token broker directory");
            }
        }

        // Phase 3: collect outputs; every sandbox process is dead now.
        let end = self
            .collect_outputs(events, spec, profile, id_map, &prepared)
            .await;

        // Phase 3b: the packages' known vulnerabilities, and the profile's gate.
        let end = match end {
            JobEnd::Succeeded { outputs, mut image } => {
                match self
                    .check_vulnerabilities(events, profile, &prepared, &mut image)
                    .await
                {
                    Ok(()) => JobEnd::Succeeded { outputs, image },
                    Err(message) => JobEnd::Infra(message),
                }
            }
            other => other,
        };

        // Phase 4: save the caches this job may save, after a success only (a build the
        // vulnerability gate refused is no success).
        match end {
            JobEnd::Succeeded { outputs, mut image }
                if !prepared.caches.caches.is_empty() && image.gate_failure.is_none() =>
            {
                info!("phase: saving caches");
                // Rootless: take the cache directories back so that the runner reads them all.
                let mut trees = vec![prepared.work.clone()];
                trees.extend(prepared.caches.cache_dir.clone());
                if let Err(e) = self.launcher.chown_rootless(&trees, id_map, false).await {
                    warn!(error = %e, "could not take the caches back from the sandbox; not saving them");
                } else {
                    image.saved_caches = self
                        .save_caches(lease, job_dir, &prepared.caches, events)
                        .await;
                }
                JobEnd::Succeeded { outputs, image }
            }
            other => other,
        }
    }
}

/// Job ids become directory names: allow only what a uuid uses.
fn is_safe_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}
