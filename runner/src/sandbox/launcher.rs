//! Runs one step in a fresh container, from the (multi-threaded, async) runner.
//!
//! libcontainer is not safe in a multi-threaded process, so each step gets its own
//! single-threaded helper process (see [`super::exec`]), forked by the job's zygote
//! ([`JobSandbox`], `zygote.rs`). The launcher writes the bundle, has the zygote fork the
//! helper, forwards its stdout/stderr (which are the step's), enforces the timeout and
//! cancellation (SIGTERM to the helper through its pidfd, which SIGKILLs the container;
//! SIGKILL to the helper after a grace period and a cgroup-wide kill as the last resort),
//! and removes every trace of the step when it ends.
//!
//! State layout (root-owned, mode 0700): `<state_dir>/containers/<id>` is libcontainer's
//! state and `<state_dir>/bundles/<id>` the OCI bundle (`config.json`) plus the
//! request/report files of the launcher-helper protocol; `<state_dir>/zygotes/<job>` is a
//! job's zygote directory. Cgroups are `/sys/fs/cgroup/<controller>/airlock/<job>` on v1
//! hosts (one per job, made by its zygote), `/sys/fs/cgroup/airlock/<id>` on v2 (one per
//! step, made by libcontainer).

use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::cgroup::{self, CGROUP_KILL_WAIT};
use super::cleanup::{remove_cgroups_with_suffix, remove_container, remove_containers};
use super::output::pump;
use super::preflight::{check_host_dirs, check_mount_points, validate_container_id};
use super::protocol::{
    HelperReport, HelperRequest, REPORT_FILE, REQUEST_FILE, read_json, write_json,
};
use super::rootless::{self, ChownRequest, Owner};
use super::{IdMap, JobSandbox, OutputChunk, SandboxError, SandboxPlan, StepOutcome, Stream};

/// The hidden CLI subcommand that runs [`super::sandbox_exec_main`].
pub const SANDBOX_EXEC_SUBCOMMAND: &str = "sandbox-exec";

/// `PATH` of the helper: where `newuidmap`/`newgidmap` are looked up.
pub(super) const HELPER_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// Distinguishes the chown helper runs of one runner process.
static CHOWN_RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How long the helper gets to kill and delete the container after SIGTERM.
const GRACE: Duration = Duration::from_secs(5);
/// How long the output pipes may stay open after the helper exited.
const DRAIN: Duration = Duration::from_secs(2);

/// Why the launcher stopped a step early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Timeout,
    Cancel,
}

/// Starts sandboxed steps through `sandbox-exec` helper processes. Cheap to share: every
/// step has its own helper, so steps may run concurrently.
#[derive(Clone, Debug)]
pub struct Launcher {
    /// Absolute path of the `airlock` binary (it must dispatch `sandbox-exec`).
    exe: PathBuf,
    /// Root-owned 0700 directory for libcontainer state and bundles.
    state_dir: PathBuf,
}

impl Launcher {
    /// A launcher running helpers from `exe` (absolute), keeping state in `state_dir`, which
    /// is created with mode 0700 if missing. A tmpfs such as `/run/airlock/sandbox` suits it.
    pub fn new(
        exe: impl Into<PathBuf>,
        state_dir: impl Into<PathBuf>,
    ) -> Result<Self, SandboxError> {
        let exe = exe.into();
        let state_dir = state_dir.into();
        if !exe.is_absolute() {
            return Err(SandboxError::plan(
                "exe",
                format!("{} is not absolute", exe.display()),
            ));
        }
        if !state_dir.is_absolute() {
            return Err(SandboxError::plan(
                "state_dir",
                format!("{} is not absolute", state_dir.display()),
            ));
        }
        if rootless::is_rootless() {
            cgroup::check_delegated().map_err(SandboxError::NoDelegatedCgroup)?;
        }
        let launcher = Self { exe, state_dir };
        for dir in [
            launcher.state_dir.clone(),
            launcher.containers_root(),
            launcher.bundles_root(),
            launcher.zygotes_root(),
        ] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| SandboxError::io("creating state directory", &dir, e))?;
        }
        Ok(launcher)
    }

    /// The `airlock` binary the helpers run from.
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Kills and removes every container, cgroup and bundle left in the state directory by
    /// an earlier runner process. Call it only on a state directory no live runner uses
    /// (a dead runner's room). Returns how many leftovers were removed.
    pub fn cleanup_stale(&self) -> Result<usize, SandboxError> {
        remove_containers(
            &self.containers_root(),
            &[self.bundles_root(), self.zygotes_root()],
            |_| true,
        )
    }

    /// Kills and removes what is left of the containers whose id starts with `prefix` (one
    /// job attempt's, once its steps are over: a step whose future was dropped mid-way
    /// leaves its bundle and maybe its cgroup). Blocking. Returns how many there were.
    pub fn cleanup_prefix(&self, prefix: &str) -> Result<usize, SandboxError> {
        remove_containers(
            &self.containers_root(),
            &[self.bundles_root(), self.zygotes_root()],
            |id| id.starts_with(prefix),
        )
    }

    /// Kills and removes every sandbox cgroup whose container id ends in `suffix` (a dead
    /// runner room's `.<room id>`), in every hierarchy, also those whose container state
    /// never got written. Blocking. Returns how many there were.
    pub fn cleanup_cgroups_with_suffix(&self, suffix: &str) -> usize {
        remove_cgroups_with_suffix(suffix)
    }

    pub(super) fn containers_root(&self) -> PathBuf {
        self.state_dir.join("containers")
    }

    pub(super) fn bundles_root(&self) -> PathBuf {
        self.state_dir.join("bundles")
    }

    pub(super) fn zygotes_root(&self) -> PathBuf {
        self.state_dir.join("zygotes")
    }

    /// Starts the sandbox of job `id` (1-64 of `[A-Za-z0-9_.+-]`, distinct from every
    /// container id; it names the job's cgroup): the zygote that forks each step's helper.
    /// Run the job's steps through [`JobSandbox::run_step`], then call
    /// [`JobSandbox::finish`].
    pub fn job(&self, id: &str) -> Result<JobSandbox, SandboxError> {
        JobSandbox::start(self, id)
    }

    /// Runs one step in a job sandbox of its own (named after the container); see
    /// [`JobSandbox::run_step`].
    pub async fn run_step(
        &self,
        container_id: &str,
        plan: &SandboxPlan,
        timeout: Duration,
        cancel: watch::Receiver<bool>,
        on_output: mpsc::Sender<OutputChunk>,
    ) -> Result<StepOutcome, SandboxError> {
        validate_container_id(container_id)?;
        if *cancel.borrow() {
            return Ok(StepOutcome::cancelled_before_start());
        }
        let job = self.job(container_id)?;
        let outcome = job
            .run_step(container_id, plan, timeout, cancel, on_output)
            .await;
        let finished = job.finish().await;
        let outcome = outcome?;
        finished.map(|()| outcome)
    }

    /// Rootless only (a no-op as root, where the runner chowns itself): gives the trees
    /// `paths` to the step of the job with ids `id_map` (`to_step`), or back to the runner,
    /// through a user namespace that maps the runner's uid/gid to 0 and the step's host
    /// uid/gid to 1000 (see `rootless.rs`). Symlinks are never followed. Every process of
    /// the job must be dead when the trees go back to the runner.
    pub async fn chown_rootless(
        &self,
        paths: &[PathBuf],
        id_map: IdMap,
        to_step: bool,
    ) -> Result<(), SandboxError> {
        if !rootless::is_rootless() {
            return Ok(());
        }
        let n = CHOWN_RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self
            .bundles_root()
            .join(format!("chown-{}-{n}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| SandboxError::io("creating", &dir, e))?;
        let to = if to_step { Owner::Step } else { Owner::Runner };
        let result = async {
            write_json(
                &dir.join(rootless::CHOWN_FILE),
                &ChownRequest::new(paths.to_vec(), id_map, to),
            )?;
            let output = tokio::process::Command::new(&self.exe)
                .arg(SANDBOX_EXEC_SUBCOMMAND)
                .arg(&dir)
                .env_clear()
                .env("PATH", HELPER_PATH)
                .current_dir("/")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .await
                .map_err(|source| SandboxError::SpawnHelper {
                    exe: self.exe.clone(),
                    source,
                })?;
            match read_json::<HelperReport>(&dir.join(REPORT_FILE))? {
                Some(HelperReport { error: None, .. }) => Ok(()),
                Some(HelperReport { error: Some(e), .. }) => Err(SandboxError::Container(e)),
                None => Err(SandboxError::Container(format!(
                    "the chown helper wrote no report ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                ))),
            }
        }
        .await;
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove a chown request");
        }
        result
    }
}

impl JobSandbox {
    /// Runs `plan` in a new container named `container_id` (unique among running steps;
    /// 1-64 of `[A-Za-z0-9_.+-]`), with a helper the job's zygote forks. Output chunks go to
    /// `on_output` as they arrive. The step is killed when `timeout` passes or `cancel`
    /// becomes `true`. Every process of the step is dead and its state removed when this
    /// returns `Ok`.
    ///
    /// `plan.work_dir` and `plan.out_dir` must be owned by [`SandboxPlan::host_uid`], and
    /// every directory above them and above `plan.rootfs` must be searchable by others
    /// (the sandbox's root is an unprivileged host uid).
    ///
    /// If this future is dropped early, the helper is sent SIGTERM (it kills and deletes
    /// the container) but the bundle stays; [`Launcher::cleanup_stale`] removes it.
    pub async fn run_step(
        &self,
        container_id: &str,
        plan: &SandboxPlan,
        timeout: Duration,
        mut cancel: watch::Receiver<bool>,
        on_output: mpsc::Sender<OutputChunk>,
    ) -> Result<StepOutcome, SandboxError> {
        validate_container_id(container_id)?;
        let mut spec = plan.to_oci_spec()?;
        if *cancel.borrow_and_update() {
            return Ok(StepOutcome::cancelled_before_start());
        }
        check_host_dirs(plan)?;
        check_mount_points(&plan.rootfs, &spec)?;

        let rel_cgroup = cgroup::relative_path(container_id);
        if let Some(linux) = spec.linux_mut() {
            linux.set_cgroups_path(Some(Path::new("/").join(&rel_cgroup)));
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

        let result = self
            .run_in_bundle(
                container_id,
                plan,
                &spec,
                &bundle,
                timeout,
                &mut cancel,
                on_output,
            )
            .await;

        let cleanup = {
            let containers_root = self.launcher().containers_root();
            let id = container_id.to_owned();
            let rel = rel_cgroup.clone();
            tokio::task::spawn_blocking(move || remove_container(&containers_root, &id, &rel))
                .await
                .unwrap_or_else(|e| Err(format!("cleanup task failed: {e}")))
        };
        if let Err(e) = std::fs::remove_dir_all(&bundle)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(bundle = %bundle.display(), error = %e, "could not remove sandbox bundle");
        }
        match cleanup {
            Ok(()) => result,
            Err(message) => Err(SandboxError::Cleanup(message)),
        }
    }

    /// Writes the bundle, runs the helper and turns its report into an outcome.
    #[allow(clippy::too_many_arguments)]
    async fn run_in_bundle(
        &self,
        container_id: &str,
        plan: &SandboxPlan,
        spec: &oci_spec::runtime::Spec,
        bundle: &Path,
        timeout: Duration,
        cancel: &mut watch::Receiver<bool>,
        on_output: mpsc::Sender<OutputChunk>,
    ) -> Result<StepOutcome, SandboxError> {
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

        let started = Instant::now();
        let helper = self.spawn_helper(bundle).await?;
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
            // With a job cgroup that is the zygote's too: the job's sandbox is over.
            let rel = self
                .cgroup()
                .map_or_else(|| cgroup::relative_path(container_id), Path::to_path_buf);
            tokio::task::spawn_blocking(move || cgroup::kill_all(&rel, CGROUP_KILL_WAIT))
                .await
                .map_err(|e| SandboxError::Cleanup(format!("cleanup task failed: {e}")))?
                .map_err(|e| SandboxError::Cleanup(e.to_string()))?;
        }
        drain(pumps, aborts).await;

        let mut outcome = judge(
            report,
            stop,
            force_killed,
            duration,
            "exited without a report (see the runner's log)",
        )?;
        if let Some(supervisor) = supervisor {
            outcome.trace = Some(
                tokio::task::spawn_blocking(move || supervisor.finish())
                    .await
                    .map_err(|e| {
                        SandboxError::Cleanup(format!("trace supervisor task failed: {e}"))
                    })?,
            );
        }
        Ok(outcome)
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;

    #[test]
    fn new_creates_a_private_state_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let launcher = Launcher::new("/usr/bin/airlock", &state).expect("launcher");
        for sub in ["", "containers", "bundles"] {
            let meta = std::fs::metadata(state.join(sub)).expect("exists");
            assert_eq!(meta.mode() & 0o777, 0o700, "{sub}");
        }
        assert_eq!(launcher.cleanup_stale().expect("cleanup"), 0);
        assert!(Launcher::new("airlock", &state).is_err());
    }

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

    #[tokio::test]
    async fn pre_cancelled_step_does_not_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let launcher =
            Launcher::new("/nonexistent/airlock", dir.path().join("s")).expect("launcher");
        let (_tx, rx) = watch::channel(true);
        let (out, _out_rx) = mpsc::channel(1);
        let plan = SandboxPlan::new(
            "/nonexistent/rootfs",
            "/nonexistent/work",
            "/nonexistent/out",
            vec!["true".into()],
            super::super::IdMap {
                host_base: 300_000,
                size: 65536,
            },
        );
        let result = launcher
            .run_step("c1", &plan, Duration::from_secs(1), rx, out)
            .await;
        let outcome = result.expect("a cancelled step is an outcome");
        assert!(outcome.cancelled && outcome.exit_code.is_none() && !outcome.success());
        assert_eq!(
            std::fs::read_dir(dir.path().join("s/bundles"))
                .expect("ls")
                .count(),
            0
        );
    }
}
