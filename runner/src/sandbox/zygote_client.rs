//! The launcher's side of one zygote process (`zygote.rs`): starts it, asks it for one
//! helper per step, and ends it and removes its cgroup when the job is over.

use std::os::fd::{AsFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

use super::cgroup::{self, CGROUP_KILL_WAIT};
use super::fd_passing;
use super::launcher::{HELPER_PATH, Launcher, SANDBOX_EXEC_SUBCOMMAND};
use super::preflight::validate_container_id;
use super::protocol::{HelperReport, REPORT_FILE, read_json, write_json};
use super::zygote::{MAX_MESSAGE, ZYGOTE_FILE, ZygoteRequest};
use super::{SandboxError, rootless};

/// How long the zygote gets to exit once its socket is closed.
const ZYGOTE_EXIT_WAIT: Duration = Duration::from_secs(5);

/// One zygote of a job: a process that forks each step's helper inside its cgroups (on
/// v1 hosts). Dropping it closes the socket and kills the zygote (its helpers then kill
/// their containers); [`ZygoteClient::finish`] also waits for it and removes its cgroup,
/// which [`Launcher::cleanup_prefix`] otherwise does.
#[derive(Debug)]
pub(super) struct ZygoteClient {
    id: String,
    dir: PathBuf,
    /// The job's cgroup, relative to each v1 controller (`None` on v2 and rootless hosts).
    cgroup: Option<PathBuf>,
    socket: Arc<Mutex<Option<OwnedFd>>>,
    zygote: tokio::process::Child,
}

/// A step's helper, forked by the zygote.
pub(super) struct Helper {
    /// Signals go through it, and it turns readable when the helper exits.
    pub pidfd: AsyncFd<OwnedFd>,
    pub stdout: pipe::Receiver,
    pub stderr: pipe::Receiver,
    /// The write end of the start pipe: one byte starts the created container, closing it
    /// unwritten discards the step.
    pub start: OwnedFd,
}

impl ZygoteClient {
    /// Starts zygote `id` (1-64 of `[A-Za-z0-9_.+-]`, unique among the launcher's running
    /// zygotes; it also names the zygote's cgroup).
    pub(super) fn start(launcher: &Launcher, id: &str) -> Result<Self, SandboxError> {
        validate_container_id(id)?;
        let dir = launcher.zygotes_root().join(id);
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(SandboxError::ContainerExists(id.to_owned()));
            }
            Err(e) => return Err(SandboxError::io("creating the zygote directory", &dir, e)),
        }
        // Root on a v1 host: the zygote makes and joins the job's cgroups. On v2 libcontainer
        // makes each step's; rootless there is none (rlimits stand in).
        let cgroup =
            (rootless::has_host_privilege() && !cgroup::is_v2()).then(|| cgroup::relative_path(id));
        write_json(
            &dir.join(ZYGOTE_FILE),
            &ZygoteRequest {
                cgroup: cgroup.clone(),
            },
        )?;
        let (ours, theirs) = socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| SandboxError::io("creating the zygote socket", &dir, e.into()))?;
        let zygote = tokio::process::Command::new(launcher.exe())
            .arg(SANDBOX_EXEC_SUBCOMMAND)
            .arg(&dir)
            .env_clear()
            // libcontainer looks newuidmap/newgidmap up in PATH (rootless id mappings).
            .env("PATH", HELPER_PATH)
            .current_dir("/")
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            // Its own process group: a terminal's ^C reaches the runner, which decides.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| SandboxError::SpawnHelper {
                exe: launcher.exe().to_owned(),
                source,
            })?;
        Ok(Self {
            id: id.to_owned(),
            dir,
            cgroup,
            socket: Arc::new(Mutex::new(Some(ours))),
            zygote,
        })
    }

    /// The zygote's cgroup, when it made one: what is left in it after a helper died is
    /// the job's to kill.
    pub(super) fn cgroup(&self) -> Option<&Path> {
        self.cgroup.as_deref()
    }

    /// Asks the zygote for a helper creating the container of `bundle`, with fresh pipes as
    /// its stdout and stderr, and a start pipe.
    pub(super) async fn spawn_helper(&self, bundle: &Path) -> Result<Helper, SandboxError> {
        let (out_r, out_w) = pipe_pair(bundle)?;
        let (err_r, err_w) = pipe_pair(bundle)?;
        let (start_r, start_w) = pipe_pair(bundle)?;
        let socket = Arc::clone(&self.socket);
        let path = bundle.to_owned();
        let answer = tokio::task::spawn_blocking(move || {
            let guard = socket
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let socket = guard.as_ref().ok_or("the zygote's socket is closed")?;
            request(socket, &path, [&out_w, &err_w, &start_r])
        })
        .await
        .map_err(|e| SandboxError::Container(format!("zygote request task failed: {e}")))?;
        let pidfd = match answer {
            Ok(pidfd) => pidfd,
            Err(message) => return Err(self.zygote_failure(message)),
        };
        // SAFETY: the AsyncFd owns the pidfd, so it stays open and the same file for as long
        // as it is registered.
        #[allow(unsafe_code)]
        let pidfd =
            unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) }
                .map_err(|e| {
                    SandboxError::io(
                        "watching the helper",
                        bundle,
                        std::io::Error::other(e.to_string()),
                    )
                })?;
        Ok(Helper {
            pidfd,
            stdout: pipe::Receiver::from_owned_fd(out_r)
                .map_err(|e| SandboxError::io("step stdout", bundle, e))?,
            stderr: pipe::Receiver::from_owned_fd(err_r)
                .map_err(|e| SandboxError::io("step stderr", bundle, e))?,
            start: start_w,
        })
    }

    /// The error for a zygote that did not answer: what it reported, if anything.
    fn zygote_failure(&self, message: String) -> SandboxError {
        match read_json::<HelperReport>(&self.dir.join(REPORT_FILE)) {
            Ok(Some(HelperReport { error: Some(e), .. })) => {
                SandboxError::Container(format!("the job's sandbox zygote failed: {e}"))
            }
            _ => SandboxError::Container(format!(
                "the job's sandbox zygote did not answer ({message}); see the runner's log"
            )),
        }
    }

    /// Ends the zygote and removes its cgroup and directory. Every step must be over.
    pub(super) async fn finish(mut self) -> Result<(), SandboxError> {
        drop(
            self.socket
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        if tokio::time::timeout(ZYGOTE_EXIT_WAIT, self.zygote.wait())
            .await
            .is_err()
        {
            tracing::warn!(zygote = %self.id, "the sandbox zygote did not exit; killing it");
            let _ = self.zygote.kill().await;
        }
        let result = match self.cgroup.clone() {
            Some(rel) => tokio::task::spawn_blocking(move || {
                cgroup::kill_all(&rel, CGROUP_KILL_WAIT)?;
                cgroup::remove(&rel)
            })
            .await
            .map_err(|e| SandboxError::Cleanup(format!("cgroup cleanup task failed: {e}")))?
            .map_err(|e| SandboxError::Cleanup(format!("zygote {}: {e}", self.id))),
            None => Ok(()),
        };
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove the zygote directory");
        }
        result
    }
}

/// A pipe between the launcher and a step's helper: `(read end, write end)`.
fn pipe_pair(bundle: &Path) -> Result<(OwnedFd, OwnedFd), SandboxError> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| SandboxError::io("creating a pipe", bundle, e.into()))
}

/// Sends one step request (the bundle; the step's stdout and stderr write ends and its
/// start pipe's read end) and reads the answer: the helper's pidfd. Blocking (the zygote
/// answers right after its fork).
pub(super) fn request(
    socket: &OwnedFd,
    bundle: &Path,
    [stdout, stderr, start]: [&OwnedFd; 3],
) -> Result<OwnedFd, String> {
    let bytes = bundle.as_os_str().as_bytes();
    if bytes.len() > MAX_MESSAGE {
        return Err(format!("bundle path {} is too long", bundle.display()));
    }
    fd_passing::send(
        socket.as_fd(),
        bytes,
        &[stdout.as_fd(), stderr.as_fd(), start.as_fd()],
    )
    .map_err(|e| format!("sending the step: {e}"))?;
    let mut pid = [0u8; 4];
    let (len, fds) = fd_passing::receive(socket.as_fd(), &mut pid)
        .map_err(|e| format!("reading the answer: {e}"))?;
    let pidfd = fds.into_iter().next();
    match (len, pidfd) {
        (4, Some(fd)) => Ok(fd),
        (0, _) => Err("it exited".to_owned()),
        (n, _) => Err(format!("malformed answer ({n} bytes)")),
    }
}
