//! The sandbox's entry point in the (multi-threaded, async) runner: its state directory,
//! job sandboxes, cleanup of what earlier runs left, and rootless chowns.
//!
//! libcontainer is not safe in a multi-threaded process, so each step gets its own
//! single-threaded helper process (see [`super::exec`]), forked by one of the job's zygotes
//! ([`JobSandbox`], `zygote.rs`); `step.rs` prepares, runs and discards steps.
//!
//! State layout (root-owned, mode 0700): `<state_dir>/containers/<id>` is libcontainer's
//! state and `<state_dir>/bundles/<id>` the OCI bundle (`config.json`) plus the
//! request/report files of the launcher-helper protocol; `<state_dir>/zygotes/<zygote>` is a
//! zygote's directory. Cgroups are `/sys/fs/cgroup/<controller>/airlock/<zygote>` on v1
//! hosts (one per zygote, made by it), `/sys/fs/cgroup/airlock/<id>` on v2 (one per step,
//! made by libcontainer).

use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::cgroup;
use super::cleanup::{remove_cgroups_with_suffix, remove_containers};
use super::preflight::validate_container_id;
use super::protocol::{HelperReport, REPORT_FILE, read_json, write_json};
use super::rootless::{self, ChownRequest, Owner};
use super::{IdMap, JobSandbox, OutputChunk, SandboxError, SandboxPlan, StepOutcome};

/// The hidden CLI subcommand that runs [`super::sandbox_exec_main`].
pub const SANDBOX_EXEC_SUBCOMMAND: &str = "sandbox-exec";

/// `PATH` of the helper: where `newuidmap`/`newgidmap` are looked up.
pub(super) const HELPER_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// Distinguishes the chown helper runs of one runner process.
static CHOWN_RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

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
