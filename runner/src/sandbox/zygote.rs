//! The job's zygote: one single-threaded `sandbox-exec` process per job that forks a
//! helper for each step instead of the launcher exec'ing `airlock` once per step.
//!
//! Exec'ing the 40 MB binary, loading its libraries and parsing the command line cost about
//! 3 ms per step, and on a v1 host every move into a cgroup waits for an RCU grace period
//! (0.3 to 20 ms). The zygote pays both once per job: it joins the job's cgroups (see
//! `own_cgroups.rs`) and every step's helper is forked inside them, already in the private
//! mount namespace that hides the hierarchies from libcontainer. Each step still gets a
//! fresh container: new namespaces, mounts, seccomp filter, all made by the forked helper.
//!
//! Wire protocol, on the `SOCK_SEQPACKET` socket that is the zygote's stdin:
//! - launcher -> zygote: one message per step, the bundle path (bytes), with the step's
//!   stdout and stderr write ends and the read end of its start pipe as `SCM_RIGHTS` (the
//!   helper creates the container, then waits for one byte on the start pipe before it
//!   starts it; end of file there discards the step);
//! - zygote -> launcher: the helper's pid as 4 little-endian bytes, with a pidfd of it as
//!   `SCM_RIGHTS` (the launcher signals and awaits the helper through it, so a recycled pid
//!   is never hit).
//!
//! End of file on the socket (the launcher closed it, or died) ends the zygote. Helpers
//! that still run get SIGTERM (their parent-death signal): they kill their container and
//! write their report, as when the launcher signals them.

use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use nix::sys::signal::{SigHandler, Signal, signal};
use serde::{Deserialize, Serialize};

use super::fd_passing;
use super::own_cgroups::{self, HostCgroups, JobCgroups};
use super::protocol::{HelperReport, REPORT_FILE, read_json, write_json};

/// The zygote's request file (in its directory below the bundles root).
pub(crate) const ZYGOTE_FILE: &str = "airlock-zygote.json";
/// The longest bundle path a step message may carry.
pub(crate) const MAX_MESSAGE: usize = 4096;

/// How the zygote is set up, written by the launcher.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ZygoteRequest {
    /// The job's cgroup, relative to each v1 controller mount; `None` when the zygote
    /// joins no cgroup (v2 hosts, where libcontainer makes one per step; rootless).
    pub cgroup: Option<PathBuf>,
}

/// The body of `airlock sandbox-exec DIR` when `DIR` holds a [`ZYGOTE_FILE`]. Returns the
/// exit code: 0 when the launcher closed the socket, [`super::HELPER_FAILURE_EXIT`] when
/// the zygote could not be set up or serve.
pub(crate) fn zygote_main(dir: &Path) -> i32 {
    match serve(dir) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("airlock-sandbox zygote: {message}");
            // What the launcher reports when its next request goes unanswered.
            let _ = write_json(
                &dir.join(REPORT_FILE),
                &HelperReport {
                    error: Some(message),
                    ..HelperReport::default()
                },
            );
            super::HELPER_FAILURE_EXIT
        }
    }
}

fn serve(dir: &Path) -> Result<(), String> {
    // Ends with the launcher (a runner killed with SIGKILL included).
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)
        .map_err(|e| format!("setting the parent-death signal: {e}"))?;
    let path = dir.join(ZYGOTE_FILE);
    let request: ZygoteRequest = read_json(&path)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{} is missing", path.display()))?;
    // Kept open for the helpers: the only way to the host's hierarchies once hidden.
    let host: Option<HostCgroups> = match &request.cgroup {
        Some(rel) => Some(
            own_cgroups::join_and_hide(rel)
                .map_err(|e| format!("setting up the job's cgroups: {e}"))?,
        ),
        None => None,
    };
    // pathrs (libcontainer's safe /proc access) caches one detached procfs handle per
    // process. Opened here, every forked helper and container process inherits it instead
    // of mounting a procfs of its own for each use (about eight per step); the container
    // init closes it with every other inherited descriptor before the step runs.
    let _procfs =
        pathrs::procfs::ProcfsHandle::new().map_err(|e| format!("opening a procfs handle: {e}"))?;
    // Exited helpers are reaped by the kernel: the launcher learns of their end through
    // its pidfd and of their outcome through the report file.
    set_disposition(Signal::SIGCHLD, SigHandler::SigIgn);
    // SAFETY: fd 0 is the socket the launcher passed as stdin, open for the process's life.
    #[allow(unsafe_code)]
    let socket = unsafe { BorrowedFd::borrow_raw(0) };
    let zygote = nix::unistd::getpid();
    loop {
        let Some(StepRequest {
            bundle,
            stdout,
            stderr,
            start,
        }) = receive(socket)?
        else {
            return Ok(());
        };
        // SAFETY: the zygote is single-threaded, so the child may do anything after fork.
        #[allow(unsafe_code)]
        let fork = unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))?;
        match fork {
            nix::unistd::ForkResult::Child => {
                let pipes = StepRequest {
                    bundle,
                    stdout,
                    stderr,
                    start,
                };
                let code = helper_child(pipes, &request, host.as_ref(), zygote);
                std::process::exit(code);
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop((stdout, stderr, start));
                let pidfd = rustix::process::pidfd_open(
                    rustix::process::Pid::from_raw(child.as_raw())
                        .ok_or_else(|| "fork returned pid 0".to_owned())?,
                    rustix::process::PidfdFlags::empty(),
                )
                .map_err(|e| format!("pidfd_open({child}): {e}"))?;
                reply(socket, child.as_raw(), &pidfd)?;
            }
        }
    }
}

/// The forked helper: takes the step's output pipes as stdout/stderr, leaves the zygote's
/// socket, and runs the step once its start pipe says so.
fn helper_child(
    step: StepRequest,
    request: &ZygoteRequest,
    host: Option<&HostCgroups>,
    zygote: nix::unistd::Pid,
) -> i32 {
    set_disposition(Signal::SIGCHLD, SigHandler::SigDfl);
    let StepRequest {
        bundle,
        stdout,
        stderr,
        start,
    } = step;
    let devnull = match std::fs::File::open("/dev/null") {
        Ok(f) => OwnedFd::from(f),
        Err(_) => return super::HELPER_FAILURE_EXIT,
    };
    for (from, to) in [(&devnull, 0), (&stdout, 1), (&stderr, 2)] {
        if nix::unistd::dup2(std::os::fd::AsRawFd::as_raw_fd(from), to).is_err() {
            return super::HELPER_FAILURE_EXIT;
        }
    }
    drop((devnull, stdout, stderr));
    let cgroups = match (&request.cgroup, host) {
        (Some(rel), Some(host)) => Some(JobCgroups {
            root: host.root(),
            rel,
        }),
        _ => None,
    };
    let code = super::exec::helper_main(&bundle, Some(zygote), cgroups.as_ref(), Some(start));
    // The report is written: the end of file on the step's pipes tells the launcher so,
    // without waiting for this process to be torn down.
    super::exec::close_output();
    code
}

/// One step request, as the zygote received it.
struct StepRequest {
    bundle: PathBuf,
    /// The write ends of the step's output pipes.
    stdout: OwnedFd,
    stderr: OwnedFd,
    /// The read end of the step's start pipe.
    start: OwnedFd,
}

/// One step request; `None` at end of file.
fn receive(socket: BorrowedFd<'_>) -> Result<Option<StepRequest>, String> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let (len, mut fds) = fd_passing::receive(socket, &mut buf)
        .map_err(|e| format!("reading a step request: {e}"))?;
    if len == 0 && fds.is_empty() {
        return Ok(None);
    }
    let bundle = PathBuf::from(std::ffi::OsStr::from_bytes(&buf[..len]));
    if !bundle.is_absolute() || fds.len() != 3 {
        return Err(format!(
            "malformed step request ({len} bytes, {} descriptors)",
            fds.len()
        ));
    }
    let start = fds.pop().ok_or("no start descriptor")?;
    let stderr = fds.pop().ok_or("no stderr descriptor")?;
    let stdout = fds.pop().ok_or("no stdout descriptor")?;
    Ok(Some(StepRequest {
        bundle,
        stdout,
        stderr,
        start,
    }))
}

/// Answers a step request with the helper's pid and pidfd.
fn reply(socket: BorrowedFd<'_>, pid: i32, pidfd: &OwnedFd) -> Result<(), String> {
    fd_passing::send(socket, &pid.to_le_bytes(), &[pidfd.as_fd()])
        .map_err(|e| format!("answering a step request: {e}"))
}

/// Sets `signal`'s disposition to SIG_IGN or SIG_DFL.
fn set_disposition(sig: Signal, handler: SigHandler) {
    // SAFETY: SIG_IGN and SIG_DFL register no Rust code as a handler; single-threaded.
    #[allow(unsafe_code)]
    let _ = unsafe { signal(sig, handler) };
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd as _;

    use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};

    use super::*;

    fn pair() -> (OwnedFd, OwnedFd) {
        socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .expect("socketpair")
    }

    #[test]
    fn a_step_request_carries_the_bundle_and_both_pipes_and_gets_a_pidfd() {
        let (launcher, zygote) = pair();
        let (_out_r, out_w) = rustix::pipe::pipe().expect("pipe");
        let (_err_r, err_w) = rustix::pipe::pipe().expect("pipe");
        let (start_r, start_w) = rustix::pipe::pipe().expect("pipe");
        let asking = std::thread::spawn(move || {
            super::super::zygote_client::request(
                &launcher,
                Path::new("/state/bundles/j.s0"),
                [&out_w, &err_w, &start_r],
            )
        });
        let step = receive(zygote.as_fd())
            .expect("receive")
            .expect("a request");
        assert_eq!(step.bundle, Path::new("/state/bundles/j.s0"));
        // The start pipe arrives as its read end: a byte written by the launcher is there.
        rustix::io::write(&start_w, b"g").expect("write");
        let mut byte = [0u8; 1];
        assert_eq!(rustix::io::read(&step.start, &mut byte).expect("read"), 1);
        for fd in [&step.stdout, &step.stderr, &step.start] {
            let stat = rustix::fs::fstat(fd).expect("fstat");
            assert_eq!(
                rustix::fs::FileType::from_raw_mode(stat.st_mode),
                rustix::fs::FileType::Fifo
            );
        }
        let own = rustix::process::pidfd_open(
            rustix::process::getpid(),
            rustix::process::PidfdFlags::empty(),
        )
        .expect("pidfd");
        reply(zygote.as_fd(), std::process::id() as i32, &own).expect("reply");
        let pidfd = asking.join().expect("thread").expect("answer");
        assert!(pidfd.as_raw_fd() >= 0);
    }

    #[test]
    fn end_of_file_ends_the_zygote_and_malformed_requests_are_refused() {
        let (launcher, zygote) = pair();
        drop(launcher);
        assert!(receive(zygote.as_fd()).expect("eof").is_none());

        // A relative bundle path, and a request without descriptors.
        let (launcher, zygote) = pair();
        let (_r, w) = rustix::pipe::pipe().expect("pipe");
        fd_passing::send(
            launcher.as_fd(),
            b"relative/bundle",
            &[w.as_fd(), w.as_fd(), w.as_fd()],
        )
        .expect("send");
        assert!(receive(zygote.as_fd()).is_err());
        fd_passing::send(launcher.as_fd(), b"/abs/bundle", &[]).expect("send");
        assert!(receive(zygote.as_fd()).is_err());
        // Output pipes without a start pipe.
        fd_passing::send(launcher.as_fd(), b"/abs/bundle", &[w.as_fd(), w.as_fd()]).expect("send");
        assert!(receive(zygote.as_fd()).is_err());
    }
}
