//! The `sandbox-exec` helper: creates, starts, waits for and deletes one container.
//!
//! libcontainer changes the process's working directory and forks, so it must not run
//! inside the multi-threaded runner. Each step's helper is a single-threaded process: the
//! job's zygote (`zygote.rs`, itself `airlock sandbox-exec ZYGOTE_DIR`) forks it. This is
//! the helper's whole life:
//!
//! 1. block SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGCHLD (they are handled synchronously below) and
//!    ask for SIGTERM when its parent dies;
//! 2. in its zygote's cgroup (v1 hosts), write the step's limits and note the OOM and pids
//!    counters;
//! 3. build the container from `BUNDLE/config.json` (libcontainer state under the root named
//!    in `BUNDLE/airlock-request.json`), write its limits (where libcontainer made the
//!    cgroup), bring up its `lo`;
//! 4. wait for one byte on the start pipe: the launcher creates a job's next step while the
//!    current one runs, and sends it when the step is due (end of file instead: the step is
//!    discarded, and its waiting init killed); then start the container;
//! 5. reap children until the container init exits; on SIGTERM/SIGINT/SIGHUP/SIGQUIT send
//!    SIGKILL to the init, which kills every process of its pid namespace;
//! 6. delete the container if its init was never reaped (a reaped init took its pid
//!    namespace along; the launcher removes the state directory), and write
//!    `BUNDLE/airlock-report.json`.
//!
//! The step's stdout/stderr are the helper's own (the launcher's pipes); the helper writes
//! its diagnostics to stderr prefixed `airlock-sandbox:`.
//!
//! Exit code: the step's exit code, 128+N when signal N killed it, and **125** when the
//! helper itself failed (container not created/started, bad bundle). The exit code is for
//! humans: a step can exit 125 too, so the launcher relies on the report file only.
//!
//! The CLI must dispatch `sandbox-exec` before it installs a tracing subscriber or starts a
//! runtime: anything libcontainer logs would otherwise land in the build log, and threads
//! would make libcontainer unsafe to use.

use std::ffi::CString;
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::Path;

use libcontainer::container::Container;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, getppid};
use oci_spec::runtime::Spec;

use super::own_cgroups::JobCgroups;
use super::protocol::{
    HelperReport, HelperRequest, REPORT_FILE, REQUEST_FILE, read_json, write_json,
};
use super::{cgroup, loopback};

/// The helper's exit code when it (not the step) failed.
pub const HELPER_FAILURE_EXIT: i32 = 125;

/// Signals that ask the helper to kill the step.
const TERMINATE: [Signal; 4] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// One step's helper: runs the container of `bundle`, writes the report, returns the exit
/// code. `parent` is the process that must be the helper's parent (the launcher, or the
/// job's zygote); `job` the job's cgroup when the zygote made one; `start` the start pipe
/// (`None`: start as soon as the container is created).
pub(crate) fn helper_main(
    bundle: &Path,
    parent: Option<Pid>,
    job: Option<&JobCgroups<'_>>,
    start: Option<OwnedFd>,
) -> i32 {
    let report = run(bundle, parent, job, start).unwrap_or_else(|message| HelperReport {
        error: Some(message),
        ..HelperReport::default()
    });
    if let Some(error) = &report.error {
        eprintln!("airlock-sandbox: {error}");
    }
    if let Err(e) = write_json(&bundle.join(REPORT_FILE), &report) {
        eprintln!("airlock-sandbox: cannot write the report: {e}");
        return HELPER_FAILURE_EXIT;
    }
    match (&report.error, report.exit_code, report.signal) {
        (Some(_), _, _) => HELPER_FAILURE_EXIT,
        (None, Some(code), _) => code,
        (None, None, Some(signal)) => 128 + signal,
        // killed on request before it started
        (None, None, None) => 128 + Signal::SIGKILL as i32,
    }
}

/// Points stdout and stderr at `/dev/null`, closing the step's pipes.
pub(super) fn close_output() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        for fd in [1, 2] {
            let _ = nix::unistd::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd);
        }
    }
}

/// How long a step's helper waits for the processes of its dead pid namespace to leave the
/// job's cgroup, so the next step starts with the whole pids limit.
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The helper's work; `Err` is a message for the report.
fn run(
    bundle: &Path,
    parent: Option<Pid>,
    job: Option<&JobCgroups<'_>>,
    start: Option<OwnedFd>,
) -> Result<HelperReport, String> {
    let mut signals = SigSet::empty();
    for signal in TERMINATE {
        signals.add(signal);
    }
    signals.add(Signal::SIGCHLD);
    // Blocked here, so the container's processes inherit the mask: StepExecutor restores it
    // right before exec.
    signals
        .thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;
    guard_parent(parent)?;
    // Non-blocking: used only to see whether a termination request arrived before the start.
    let pending = SignalFd::with_flags(&signals, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("creating a signalfd: {e}"))?;

    let request_path = bundle.join(REQUEST_FILE);
    let request: HelperRequest = read_json(&request_path)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{} is missing", request_path.display()))?;

    let limits = cgroup::Limits {
        memory_bytes: request.memory_bytes,
        pids: request.pids,
        cpu_millis: request.cpu_millis,
    };
    // In the zygote's cgroup the limits are written before the container exists (its
    // processes are born inside), and the counters are compared before and after. The
    // cgroup is this step's alone: a job's steps alternate between two zygotes.
    let counters_before = match job {
        Some(job) => {
            cgroup::apply_step_limits(&job.root, job.rel, limits)
                .map_err(|e| format!("setting resource limits: {e}"))?;
            Some(cgroup::job_counters(&job.root, job.rel))
        }
        None => None,
    };

    let mut container = ContainerBuilder::new(request.container_id.clone(), SyscallType::default())
        .with_executor(StepExecutor)
        .with_root_path(&request.state_root)
        .and_then(ContainerBuilder::validate_id)
        .map_err(|e| format!("container {}: {}", request.container_id, chain(&e)))?
        .as_init(bundle)
        .with_systemd(false)
        .with_detach(false)
        .build()
        .map_err(|e| format!("creating container {}: {}", request.container_id, chain(&e)))?;

    let outcome =
        prepare(&container, &request, job.is_none().then_some(limits)).and_then(|(init, tmp)| {
            match wait_for_start(start.as_ref(), &pending)? {
                Start::Discard => Ok(HelperReport {
                    killed_on_request: true,
                    ..HelperReport::default()
                }),
                Start::Now => {
                    start_and_wait(&mut container, &request, init, tmp.as_ref(), &signals)
                }
            }
        });
    let (oom_killed, pids_exhausted) = match (job, counters_before) {
        (Some(job), Some((oom, pids))) => {
            let (oom_after, pids_after) = cgroup::job_counters(&job.root, job.rel);
            (oom_after > oom, pids_after > pids)
        }
        _ => {
            let root = Path::new(cgroup::CGROUP_ROOT);
            (
                cgroup::oom_killed(root, &request.cgroup),
                cgroup::pids_exhausted(root, &request.cgroup),
            )
        }
    };
    // A reaped init took its pid namespace with it: what is left is libcontainer's state
    // directory, which the launcher removes with the bundle (and the cgroup, when
    // libcontainer made one). Otherwise the init may still wait for `start`: kill it.
    let reaped = outcome
        .as_ref()
        .is_ok_and(|r| r.exit_code.is_some() || r.signal.is_some());
    let deleted = if reaped {
        Ok(())
    } else {
        container
            .delete(true)
            .map(|_| ())
            .map_err(|e| format!("deleting container {}: {}", request.container_id, chain(&e)))
    };
    if let Some(job) = job {
        drain(job);
    }
    let mut report = outcome?;
    deleted?;
    report.oom_killed = oom_killed;
    report.pids_exhausted = pids_exhausted;
    Ok(report)
}

/// Readies the created container: applies the limits (unless they are written elsewhere,
/// `None`), brings up its `lo`, and holds its `/tmp`. Returns the init and that handle.
fn prepare(
    container: &Container,
    request: &HelperRequest,
    limits: Option<cgroup::Limits>,
) -> Result<(Pid, Option<std::fs::File>), String> {
    let init = container
        .pid()
        .ok_or_else(|| "libcontainer recorded no init pid".to_owned())?;
    if let Some(limits) = limits {
        cgroup::apply_limits(&request.cgroup, limits)
            .map_err(|e| format!("setting resource limits: {e}"))?;
    }
    if request.loopback_up {
        loopback::bring_up(init)?;
    }
    // The init has set up its mounts and waits for `start`, so no step code has run yet: hold
    // the step's /tmp (a handle keeps the tmpfs alive) to tell "disk full" after it ended.
    Ok((init, open_tmp(init)))
}

/// What the launcher decided for a created container.
#[derive(Debug, PartialEq, Eq)]
enum Start {
    /// Start it.
    Now,
    /// Do not: the launcher discarded the step or asked the helper to stop.
    Discard,
}

/// Waits for the launcher's byte on the start pipe (none: start at once). A termination
/// request, pending or arriving while waiting, or the end of file discards the step.
fn wait_for_start(start: Option<&OwnedFd>, pending: &SignalFd) -> Result<Start, String> {
    loop {
        while let Ok(Some(info)) = pending.read_signal() {
            if TERMINATE.iter().any(|s| *s as u32 == info.ssi_signo) {
                return Ok(Start::Discard);
            }
        }
        let Some(start) = start else {
            return Ok(Start::Now);
        };
        let mut fds = [
            PollFd::new(start.as_fd(), PollFlags::POLLIN),
            PollFd::new(pending.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("waiting for the start: {e}")),
        }
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            let mut byte = [0u8; 1];
            return match nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(start), &mut byte) {
                Ok(1) => Ok(Start::Now),
                Ok(_) => Ok(Start::Discard),
                Err(Errno::EINTR | Errno::EAGAIN) => continue,
                Err(e) => Err(format!("reading the start pipe: {e}")),
            };
        }
    }
}

/// Starts the created container `init` and waits for it to exit; on a termination request
/// it kills the init.
fn start_and_wait(
    container: &mut Container,
    request: &HelperRequest,
    init: Pid,
    tmp: Option<&std::fs::File>,
    signals: &SigSet,
) -> Result<HelperReport, String> {
    container
        .start()
        .map_err(|e| format!("starting container {}: {}", request.container_id, chain(&e)))?;

    let mut killed_on_request = false;
    loop {
        if let Some(status) = reap(init)? {
            let (exit_code, signal) = status;
            return Ok(HelperReport {
                exit_code,
                signal,
                killed_on_request,
                tmp_full: tmp.is_some_and(is_full),
                ..HelperReport::default()
            });
        }
        let signal = signals.wait().map_err(|e| format!("sigwait: {e}"))?;
        if TERMINATE.contains(&signal) && !killed_on_request {
            killed_on_request = true;
            // Killing a pid namespace's init kills every process in it.
            if let Err(e) = kill(init, Signal::SIGKILL)
                && e != Errno::ESRCH
            {
                return Err(format!("killing the container init {init}: {e}"));
            }
        }
    }
}

/// An `O_PATH` handle on the `/tmp` of the created container `init`, if it can be had.
fn open_tmp(init: Pid) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_PATH | nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW)
        .open(format!("/proc/{init}/root/tmp"))
        .ok()
}

/// Whether the file system of `fd` has no free block or no free inode left.
fn is_full(fd: &std::fs::File) -> bool {
    nix::sys::statvfs::fstatvfs(fd).is_ok_and(|s| s.blocks_free() == 0 || s.files_free() == 0)
}

/// How the container init ended: `(exit_code, signal)`, exactly one of them set.
type InitExit = (Option<i32>, Option<i32>);

/// Reaps exited children without blocking; `Some` once `init` exited.
fn reap(init: Pid) -> Result<Option<InitExit>, String> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == init => {
                return Ok(Some((Some(code), None)));
            }
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == init => {
                return Ok(Some((None, Some(signal as i32))));
            }
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(_) => {}
            Err(Errno::EINTR) => {}
            Err(Errno::ECHILD) => {
                return Err(format!(
                    "the container init {init} is not a child of the helper"
                ));
            }
            Err(e) => return Err(format!("waitpid: {e}")),
        }
    }
}

/// Asks for SIGTERM when the parent (launcher or zygote) dies, and fails if it already has.
fn guard_parent(expected: Option<Pid>) -> Result<(), String> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)
        .map_err(|e| format!("setting the parent-death signal: {e}"))?;
    if let Some(expected) = expected
        && getppid() != expected
    {
        return Err("the launcher exited before the helper started".to_owned());
    }
    Ok(())
}

/// Waits (at most [`DRAIN_WAIT`]) until only the zygote and this helper are left in the
/// zygote's cgroup: the other processes of a dead pid namespace exit asynchronously.
fn drain(job: &JobCgroups<'_>) {
    let deadline = std::time::Instant::now() + DRAIN_WAIT;
    while cgroup::pids_current(&job.root, job.rel).is_some_and(|n| n > cgroup::JOB_OVERHEAD_TASKS)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// An error and its sources, joined with `: `.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let s = e.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = e.source();
    }
    text
}

/// Runs in the container init, after namespaces, mounts, user, capabilities and seccomp are
/// set up: restores the signal state a fresh program expects and execs the step. A program
/// that cannot be executed becomes an ordinary step failure (127 not found, 126 otherwise),
/// like in a shell, not a helper failure.
#[derive(Clone, Debug)]
struct StepExecutor;

impl Executor for StepExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        let args = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().as_ref())
            .ok_or(ExecutorError::InvalidArg)?;
        let argv = args
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ExecutorError::InvalidArg)?;
        let program = argv.first().ok_or(ExecutorError::InvalidArg)?;
        // The init is the helper's child: if the helper dies (SIGKILLed with its runner),
        // the kernel kills the init and with it the whole pid namespace. Kept across exec.
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
        restore_signals();
        let Err(error) = nix::unistd::execvp(program, &argv);
        eprintln!("airlock-sandbox: cannot execute {:?}: {error}", args[0]);
        std::process::exit(if error == Errno::ENOENT { 127 } else { 126 });
    }

    fn validate(&self, _spec: &Spec) -> Result<(), ExecutorValidationError> {
        // A missing program is reported by `exec` as exit code 127.
        Ok(())
    }
}

/// Gives the step default signal dispositions and an empty signal mask. The helper blocks
/// signals, and Rust ignores SIGPIPE; both would otherwise survive `exec`.
fn restore_signals() {
    for signal in Signal::iterator() {
        if signal != Signal::SIGKILL && signal != Signal::SIGSTOP {
            set_default_disposition(signal);
        }
    }
    let _ = SigSet::all().thread_unblock();
}

/// Sets `signal`'s disposition to SIG_DFL.
#[allow(unsafe_code)]
fn set_default_disposition(signal: Signal) {
    // SAFETY: installing SIG_DFL registers no Rust code as a signal handler, so none of the
    // async-signal-safety requirements of `signal` apply; the process is single-threaded
    // (the container init, about to exec).
    let _ = unsafe { nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigDfl) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_on_the_start_pipe_starts_and_its_end_of_file_discards() {
        // On a fresh thread: the blocked mask must not leak into the harness's threads.
        std::thread::spawn(|| {
            let mut signals = SigSet::empty();
            signals.add(Signal::SIGUSR2);
            signals.thread_block().expect("block");
            let pending = SignalFd::with_flags(&signals, SfdFlags::SFD_NONBLOCK).expect("sfd");
            let (r, w) = nix::unistd::pipe().expect("pipe");
            nix::unistd::write(&w, b"g").expect("write");
            assert_eq!(wait_for_start(Some(&r), &pending), Ok(Start::Now));
            drop(w);
            assert_eq!(wait_for_start(Some(&r), &pending), Ok(Start::Discard));
            // No start pipe (a lone helper): start at once.
            assert_eq!(wait_for_start(None, &pending), Ok(Start::Now));
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn error_chain_skips_repeated_text() {
        let inner = std::io::Error::other("disk full");
        let outer = std::io::Error::other(inner);
        assert_eq!(chain(&outer), "disk full");
    }

    #[test]
    fn missing_bundle_is_a_helper_failure_with_a_report() {
        let dir = tempfile::tempdir().expect("tempdir");
        // No request file: must fail cleanly, before libcontainer is touched.
        std::thread::spawn({
            let bundle = dir.path().to_owned();
            move || {
                // Run on a fresh thread so the blocked signal mask does not leak into the
                // test harness's other threads.
                assert_eq!(
                    super::super::sandbox_exec_main(&bundle),
                    HELPER_FAILURE_EXIT
                );
            }
        })
        .join()
        .expect("thread");
        let report: HelperReport = read_json(&dir.path().join(REPORT_FILE))
            .expect("read")
            .expect("report written");
        assert!(
            report
                .error
                .is_some_and(|e| e.contains("airlock-request.json"))
        );
    }
}
