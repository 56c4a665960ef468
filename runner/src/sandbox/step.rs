//! One step of a job's sandbox, in two halves so that a job's next container is created
//! while its current step runs:
//!
//! - [`JobSandbox::prepare_step`] checks the plan, writes the bundle and has the zygote fork
//!   the step's helper, which creates the container (namespaces, mounts, seccomp filter)
//!   and then waits on the step's start pipe;
//! - [`JobSandbox::run_prepared`] sends the start byte, forwards the step's output, enforces
//!   the timeout and cancellation (SIGTERM to the helper through its pidfd, which SIGKILLs
//!   the container; SIGKILL to the helper after a grace period and a cgroup-wide kill as the
//!   last resort), turns the helper's report into a [`StepOutcome`] and removes every trace
//!   of the step;
//! - [`JobSandbox::discard`] closes the start pipe instead (the helper kills the waiting
//!   init) and removes the step.
//!
//! A prepared container runs no step code before its start: its init waits inside
//! libcontainer, in namespaces of its own, so the running step can neither see nor reach it.

use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::cgroup::{self, CGROUP_KILL_WAIT};
use super::cleanup::remove_container;
use super::output::pump;
use super::preflight::{check_host_dirs, check_mount_points, validate_container_id};
use super::protocol::{
    HelperReport, HelperRequest, REPORT_FILE, REQUEST_FILE, read_json, write_json,
};
use super::rootless;
use super::zygote_client::Helper;
use super::{JobSandbox, OutputChunk, SandboxError, SandboxPlan, StepOutcome, Stream};

/// How long the helper gets to kill and delete the container after SIGTERM (or, for a
/// discarded step, after its start pipe closed).
const GRACE: Duration = Duration::from_secs(5);
/// How long the output pipes may stay open after the helper exited.
const DRAIN: Duration = Duration::from_secs(2);

/// Why the launcher stopped a step early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Timeout,
    Cancel,
}

/// A step whose container is created, or being created, by its helper, and waits for its
/// start. Run it with [`JobSandbox::run_prepared`] or drop it with [`JobSandbox::discard`].
/// Dropped otherwise, its start pipe closes (the helper kills the waiting container) and
/// its bundle stays for [`super::Launcher::cleanup_prefix`].
pub struct PreparedStep {
    container_id: String,
    /// The zygote that forked its helper.
    zygote: usize,
    bundle: PathBuf,
    helper: Helper,
    supervisor: Option<super::trace::Supervisor>,
}

impl std::fmt::Debug for PreparedStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedStep")
            .field("container_id", &self.container_id)
            .finish_non_exhaustive()
    }
}

impl PreparedStep {
    /// The step's container id.
    pub fn container_id(&self) -> &str {
        &self.container_id
    }
}

impl JobSandbox {
    /// Runs `plan` in a new container named `container_id` (unique among running steps;
    /// 1-64 of `[A-Za-z0-9_.+-]`): [`JobSandbox::prepare_step`], then
    /// [`JobSandbox::run_prepared`].
    pub async fn run_step(
        &self,
        container_id: &str,
        plan: &SandboxPlan,
        timeout: Duration,
        mut cancel: watch::Receiver<bool>,
        on_output: mpsc::Sender<OutputChunk>,
    ) -> Result<StepOutcome, SandboxError> {
        validate_container_id(container_id)?;
        if *cancel.borrow_and_update() {
            return Ok(StepOutcome::cancelled_before_start());
        }
        let step = self.prepare_step(container_id, plan).await?;
        self.run_prepared(step, timeout, cancel, on_output).await
    }

    /// Checks `plan`, writes the bundle of container `container_id` (unique among the
    /// launcher's steps; 1-64 of `[A-Za-z0-9_.+-]`) and has the zygote fork its helper,
    /// which creates the container and waits. Returns once the helper is forked.
    ///
    /// `plan.work_dir` and `plan.out_dir` must be owned by [`SandboxPlan::host_uid`], and
    /// every directory above them and above `plan.rootfs` must be searchable by others
    /// (the sandbox's root is an unprivileged host uid).
    pub async fn prepare_step(
        &self,
        container_id: &str,
        plan: &SandboxPlan,
    ) -> Result<PreparedStep, SandboxError> {
        validate_container_id(container_id)?;
        let mut spec = plan.to_oci_spec()?;
        check_host_dirs(plan)?;
        check_mount_points(&plan.rootfs, &spec)?;
        if let Some(linux) = spec.linux_mut() {
            linux.set_cgroups_path(Some(
                Path::new("/").join(cgroup::relative_path(container_id)),
            ));
        }
        if rootless::is_rootless() {
            rootless::adapt_spec(&mut spec, plan)?;
        } else if rootless::is_userns_root() {
            rootless::set_rlimit_fallback(&mut spec, plan)?;
        }
        let bundle = self.launcher().bundles_root().join(container_id);
        if self
            .launcher()
            .containers_root()
            .join(container_id)
            .exists()
        {
            return Err(SandboxError::ContainerExists(container_id.to_owned()));
        }
        match std::fs::DirBuilder::new().mode(0o700).create(&bundle) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(SandboxError::ContainerExists(container_id.to_owned()));
            }
            Err(e) => return Err(SandboxError::io("creating bundle directory", &bundle, e)),
        }
        match self.fork_helper(container_id, plan, &spec, &bundle).await {
            Ok((zygote, helper, supervisor)) => Ok(PreparedStep {
                container_id: container_id.to_owned(),
                zygote,
                bundle,
                helper,
                supervisor,
            }),
            Err(e) => {
                remove_bundle(&bundle);
                Err(e)
            }
        }
    }

    /// Writes the bundle's config and request (starting the trace supervisor of a traced
    /// step) and has the zygote fork the helper.
    async fn fork_helper(
        &self,
        container_id: &str,
        plan: &SandboxPlan,
        spec: &oci_spec::runtime::Spec,
        bundle: &Path,
    ) -> Result<(usize, Helper, Option<super::trace::Supervisor>), SandboxError> {
        let config = bundle.join("config.json");
        // A traced step: its filter's notify fd goes to a supervisor listening in the bundle.
        let supervisor = match &plan.trace {
            Some(setup) => {
                let supervisor = super::trace::Supervisor::start(
                    bundle,
                    super::trace::LISTENER_SOCKET,
                    setup.clone(),
                )
                .map_err(|e| SandboxError::io("starting the trace supervisor", bundle, e))?;
                let mut spec = spec.clone();
                if let Some(seccomp) = spec
                    .linux_mut()
                    .as_mut()
                    .and_then(|l| l.seccomp_mut().as_mut())
                {
                    seccomp.set_listener_path(Some(supervisor.listener_path().to_owned()));
                }
                spec.save(&config)?;
                Some(supervisor)
            }
            None => {
                spec.save(&config)?;
                None
            }
        };
        // Rootless or root of a pod's user namespace: no writable cgroup; the rlimits in the
        // spec stand in for these, and `lo` stays down.
        let cgroup_limits = rootless::has_host_privilege();
        let request = HelperRequest {
            container_id: container_id.to_owned(),
            state_root: self.launcher().containers_root(),
            cgroup: cgroup::relative_path(container_id),
            memory_bytes: plan.memory_bytes.filter(|_| cgroup_limits),
            pids: plan.pids.filter(|_| cgroup_limits),
            cpu_millis: plan.cpu_millis.filter(|_| cgroup_limits),
            // Rootless, the helper cannot enter the container's network namespace (the init
            // is not dumpable once it changed uid, and joining needs CAP_SYS_ADMIN on the
            // host): `lo` stays down, so not even 127.0.0.1 is reachable.
            loopback_up: plan.loopback_up && cgroup_limits,
        };
        write_json(&bundle.join(REQUEST_FILE), &request)?;
        let (index, zygote) = self.next_zygote().await?;
        let helper = zygote.spawn_helper(bundle).await?;
        Ok((index, helper, supervisor))
    }

    /// Starts the prepared `step`. Output chunks go to `on_output` as they arrive. The step
    /// is killed when `timeout` passes or `cancel` becomes `true`. Every process of the step
    /// is dead and its state removed when this returns `Ok`.
    ///
    /// If this future is dropped early, the helper is sent SIGTERM (it kills and deletes
    /// the container) but the bundle stays; [`super::Launcher::cleanup_stale`] removes it.
    pub async fn run_prepared(
        &self,
        step: PreparedStep,
        timeout: Duration,
        mut cancel: watch::Receiver<bool>,
        on_output: mpsc::Sender<OutputChunk>,
    ) -> Result<StepOutcome, SandboxError> {
        if *cancel.borrow_and_update() {
            self.discard(step).await?;
            return Ok(StepOutcome::cancelled_before_start());
        }
        let PreparedStep {
            container_id,
            zygote,
            bundle,
            helper,
            supervisor,
        } = step;
        let result = self
            .run_started(
                (&container_id, zygote),
                &bundle,
                helper,
                timeout,
                &mut cancel,
                on_output,
            )
            .await;
        let outcome = match (result, supervisor) {
            (Ok(mut outcome), Some(supervisor)) => {
                outcome.trace = Some(
                    tokio::task::spawn_blocking(move || supervisor.finish())
                        .await
                        .map_err(|e| {
                            SandboxError::Cleanup(format!("trace supervisor task failed: {e}"))
                        })?,
                );
                Ok(outcome)
            }
            (result, _) => result,
        };
        let cleanup = self.remove_step(&container_id, zygote, &bundle).await;
        let outcome = outcome?;
        cleanup.map(|()| outcome)
    }

    /// Drops a prepared step that will not run: closes its start pipe, so the helper kills
    /// the waiting container, waits for the helper (SIGKILL after [`GRACE`]) and removes the
    /// step's state.
    pub async fn discard(&self, step: PreparedStep) -> Result<(), SandboxError> {
        let PreparedStep {
            container_id,
            zygote,
            bundle,
            helper,
            supervisor,
        } = step;
        let Helper {
            pidfd,
            stdout,
            stderr,
            start,
        } = helper;
        drop(start);
        drop((stdout, stderr));
        let exited = tokio::time::timeout(GRACE, pidfd.readable()).await;
        if exited.is_err() {
            tracing::warn!(%container_id, "a discarded step's helper did not exit; killing it");
            let _ =
                rustix::process::pidfd_send_signal(pidfd.get_ref(), rustix::process::Signal::KILL);
            let _ = tokio::time::timeout(GRACE, pidfd.readable()).await;
        }
        drop(supervisor);
        if read_json::<HelperReport>(&bundle.join(REPORT_FILE))?.is_none() {
            self.kill_step_cgroup(&container_id, zygote).await?;
        }
        self.remove_step(&container_id, zygote, &bundle).await
    }

    /// Kills what a helper of zygote `zygote` that died without a report left in step
    /// `container_id`'s cgroup (with a zygote's cgroup, that is the zygote too: the job's
    /// sandbox is over).
    async fn kill_step_cgroup(
        &self,
        container_id: &str,
        zygote: usize,
    ) -> Result<(), SandboxError> {
        let rel = self
            .cgroup(zygote)
            .map_or_else(|| cgroup::relative_path(container_id), Path::to_path_buf);
        tokio::task::spawn_blocking(move || cgroup::kill_all(&rel, CGROUP_KILL_WAIT))
            .await
            .map_err(|e| SandboxError::Cleanup(format!("cleanup task failed: {e}")))?
            .map(|_| ())
            .map_err(|e| SandboxError::Cleanup(e.to_string()))
    }

    /// Removes what is left of step `container_id` of zygote `zygote`: libcontainer's state,
    /// its cgroup (when it had its own: not in a zygote's cgroup) and the bundle.
    async fn remove_step(
        &self,
        container_id: &str,
        zygote: usize,
        bundle: &Path,
    ) -> Result<(), SandboxError> {
        let containers_root = self.launcher().containers_root();
        let id = container_id.to_owned();
        let rel = self
            .cgroup(zygote)
            .is_none()
            .then(|| cgroup::relative_path(container_id));
        let cleanup = tokio::task::spawn_blocking(move || {
            remove_container(&containers_root, &id, rel.as_deref())
        })
        .await
        .unwrap_or_else(|e| Err(format!("cleanup task failed: {e}")));
        remove_bundle(bundle);
        cleanup.map_err(SandboxError::Cleanup)
    }

    /// Starts the step `helper` created, forwards its output, stops it on timeout or
    /// cancellation, and judges its report.
    async fn run_started(
        &self,
        (container_id, zygote): (&str, usize),
        bundle: &Path,
        helper: Helper,
        timeout: Duration,
        cancel: &mut watch::Receiver<bool>,
        on_output: mpsc::Sender<OutputChunk>,
    ) -> Result<StepOutcome, SandboxError> {
        // A helper that already died (its create failed) makes this fail with EPIPE; its
        // report says why.
        let _ = rustix::io::write(&helper.start, b"g");
        drop(helper.start);
        let started = Instant::now();
        let mut guard = TerminateOnDrop(Some(&helper.pidfd));
        let pumps: Vec<JoinHandle<u64>> = vec![
            tokio::spawn(pump(helper.stdout, Stream::Stdout, on_output.clone())),
            tokio::spawn(pump(helper.stderr, Stream::Stderr, on_output)),
        ];
        // Both pipes at end of file: the step's processes are all dead and the helper
        // closed its ends, which it does right after writing its report.
        let (eof_tx, mut eof) = tokio::sync::oneshot::channel::<()>();
        let aborts: Vec<_> = pumps.iter().map(JoinHandle::abort_handle).collect();
        let pumps = tokio::spawn(async move {
            for pump in pumps {
                let _ = pump.await;
            }
            let _ = eof_tx.send(());
        });
        let mut eof_open = true;

        let far = far_future();
        let deadline = tokio::time::sleep_until(
            tokio::time::Instant::now()
                .checked_add(timeout)
                .unwrap_or(far),
        );
        let grace = tokio::time::sleep_until(far);
        tokio::pin!(deadline, grace);
        let mut stop: Option<Stop> = None;
        let mut force_killed = false;
        let mut cancel_open = true;
        loop {
            tokio::select! {
                exited = helper.pidfd.readable() => {
                    // An exited process stays exited: keep the readiness.
                    exited
                        .map_err(|e| SandboxError::io("waiting for the sandbox helper", bundle, e))?
                        .retain_ready();
                    break;
                }
                closed = &mut eof, if eof_open => {
                    eof_open = false;
                    // Done once the report is there; the helper is only exiting. A helper
                    // that died without one is waited for through its pidfd.
                    if closed.is_ok() && bundle.join(REPORT_FILE).exists() {
                        break;
                    }
                }
                () = &mut deadline, if stop.is_none() => {
                    stop = Some(Stop::Timeout);
                    guard.signal(rustix::process::Signal::TERM);
                    grace.as_mut().reset(tokio::time::Instant::now() + GRACE);
                }
                changed = cancel.changed(), if cancel_open && stop.is_none() => match changed {
                    Ok(()) => if *cancel.borrow_and_update() {
                        stop = Some(Stop::Cancel);
                        guard.signal(rustix::process::Signal::TERM);
                        grace.as_mut().reset(tokio::time::Instant::now() + GRACE);
                    },
                    Err(_) => cancel_open = false,
                },
                () = &mut grace, if stop.is_some() && !force_killed => {
                    tracing::warn!(container_id, "sandbox helper ignored SIGTERM; killing it");
                    force_killed = true;
                    guard.signal(rustix::process::Signal::KILL);
                }
            }
        }
        guard.0 = None;
        let duration = started.elapsed();

        let report: Option<HelperReport> = read_json(&bundle.join(REPORT_FILE))?;
        // The helper is gone; a killed helper may have left the container running, which
        // would keep the pipes open: kill its cgroup before draining them.
        if report.is_none() {
            self.kill_step_cgroup(container_id, zygote).await?;
        }
        drain(pumps, aborts).await;

        judge(
            report,
            stop,
            force_killed,
            duration,
            "exited without a report (see the runner's log)",
        )
    }
}

/// Turns what the helper reported (nothing, if it died) into the step's outcome, or into an
/// infrastructure error when the step did not end by its own doing or by the launcher's.
fn judge(
    report: Option<HelperReport>,
    stop: Option<Stop>,
    force_killed: bool,
    duration: Duration,
    helper_status: &str,
) -> Result<StepOutcome, SandboxError> {
    let outcome = |exit_code, signal, killed: bool, report: Option<&HelperReport>| StepOutcome {
        exit_code,
        signal,
        timed_out: killed && stop == Some(Stop::Timeout),
        cancelled: killed && stop == Some(Stop::Cancel),
        oom_killed: report.is_some_and(|r| r.oom_killed),
        pids_exhausted: report.is_some_and(|r| r.pids_exhausted),
        tmp_full: report.is_some_and(|r| r.tmp_full),
        duration,
        trace: None,
    };
    match report {
        Some(HelperReport { error: Some(e), .. }) => Err(SandboxError::Container(e)),
        Some(r) if r.killed_on_request && stop.is_none() => Err(SandboxError::Container(
            "the helper was told to stop by a signal the launcher did not send \
             (runner shutting down, or the thread that started it exited?)"
                .to_owned(),
        )),
        // Nothing inside a pid namespace can SIGKILL its init; the kernel's OOM killer is
        // the one legitimate outside sender, and it is reported as such.
        Some(r)
            if stop.is_none()
                && !r.killed_on_request
                && !r.oom_killed
                && r.signal == Some(Signal::SIGKILL as i32) =>
        {
            Err(SandboxError::KilledFromOutside)
        }
        Some(r) => Ok(outcome(
            r.exit_code,
            r.signal,
            r.killed_on_request,
            Some(&r),
        )),
        None if force_killed => Ok(outcome(None, Some(Signal::SIGKILL as i32), true, None)),
        None => Err(SandboxError::HelperCrashed {
            status: helper_status.to_owned(),
        }),
    }
}

/// Sends a signal to the helper if the step's future is dropped while it runs. Through the
/// helper's pidfd: never to a process that took over its pid.
struct TerminateOnDrop<'a>(Option<&'a AsyncFd<OwnedFd>>);

impl TerminateOnDrop<'_> {
    fn signal(&self, signal: rustix::process::Signal) {
        if let Some(pidfd) = self.0 {
            let _ = rustix::process::pidfd_send_signal(pidfd.get_ref(), signal);
        }
    }
}

impl Drop for TerminateOnDrop<'_> {
    fn drop(&mut self) {
        self.signal(rustix::process::Signal::TERM);
    }
}

/// Waits for the output pumps (`pumps` awaits them all); gives up on them after [`DRAIN`].
async fn drain(pumps: JoinHandle<()>, aborts: Vec<tokio::task::AbortHandle>) {
    if tokio::time::timeout(DRAIN, pumps).await.is_err() {
        tracing::warn!("sandbox output pipes still open after the helper exited; dropping them");
        for abort in aborts {
            abort.abort();
        }
    }
}

/// A time that never comes (for timers that are armed later).
fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

/// Removes a step's bundle directory (a warning when that fails).
fn remove_bundle(bundle: &Path) {
    if let Err(e) = std::fs::remove_dir_all(bundle)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(bundle = %bundle.display(), error = %e, "could not remove sandbox bundle");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn killed(signal: i32, oom: bool, on_request: bool) -> Option<HelperReport> {
        Some(HelperReport {
            signal: Some(signal),
            oom_killed: oom,
            killed_on_request: on_request,
            ..HelperReport::default()
        })
    }

    #[test]
    fn a_sigkill_nobody_in_the_runner_asked_for_is_infrastructure() {
        let d = Duration::ZERO;
        // Another process (a reaper, the host) SIGKILLed the init: never the build's fault.
        assert!(matches!(
            judge(killed(9, false, false), None, false, d, ""),
            Err(SandboxError::KilledFromOutside)
        ));
        // The OOM killer did it: the build's memory, the build's failure.
        let oom = judge(killed(9, true, false), None, false, d, "").expect("outcome");
        assert!(oom.oom_killed && !oom.success());
        // The launcher did it (timeout, cancel): an outcome that says so.
        let t = judge(killed(9, false, true), Some(Stop::Timeout), false, d, "").expect("timeout");
        assert!(t.timed_out);
        let c = judge(killed(9, false, true), Some(Stop::Cancel), false, d, "").expect("cancel");
        assert!(c.cancelled);
        // Other signals stay the step's own (it can kill itself with SIGTERM, SIGSEGV...).
        let own = judge(killed(15, false, false), None, false, d, "").expect("outcome");
        assert_eq!(own.signal, Some(15));
        // A helper told to stop by someone else, or dead without a report: infrastructure.
        assert!(judge(killed(9, false, true), None, false, d, "").is_err());
        assert!(matches!(
            judge(None, None, false, d, "signal: 9"),
            Err(SandboxError::HelperCrashed { .. })
        ));
    }
}
