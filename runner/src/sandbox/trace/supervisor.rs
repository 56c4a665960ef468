//! The seccomp user-notification supervisor of one traced step: a thread of the runner that
//! listens on the step's socket, receives the notify fd libcontainer sends there once the
//! filter is loaded (the OCI `linux.seccomp.listenerPath` protocol), then answers every
//! notification: it reads what the call points at, records it, and lets the kernel carry the
//! call out (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`), or refuses a network call to outside the
//! sandbox when the profile says so.
//!
//! Every notification is answered, whatever happens while observing it: a target blocked on
//! an unanswered call would hang the step. The seccomp filter's own rules and the sandbox stay
//! the enforcement; what is read here is evidence (see docs/trace.md on TOCTOU).

use std::collections::{BTreeSet, HashMap};
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags, ScmpSyscall, notify_id_valid};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::unistd::Pid;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};

use super::hash::HashCache;
use super::memory::{read_bytes, read_c_string, read_u64};
use super::net::{SocketAddress, decode};
use super::paths::{FileClass, absolute, classify};
use super::record::{Access, StepRecord};

/// The system calls a traced step's filter sends to the supervisor.
///
/// Not `sendmsg`/`sendmmsg`: libcontainer's init hands the notify fd itself to its parent
/// with `sendmsg` once the filter is loaded, so a notifying `sendmsg` would wait forever for
/// a supervisor that has not received its fd yet. A datagram sent with `sendmsg` to an
/// explicit address on an unconnected socket is therefore not observed (the sandbox has no
/// route out either way; `connect`, `sendto` and `bind` are).
pub const TRACED_SYSCALLS: &[&str] = &[
    "execve", "execveat", "open", "creat", "openat", "openat2", "connect", "bind", "sendto",
];

const AT_FDCWD: i32 = -100;
const AT_EMPTY_PATH: u64 = 0x1000;
const O_ACCMODE: u64 = 0o3;
const O_CREAT: u64 = 0o100;
const O_TRUNC: u64 = 0o1000;
/// Longest socket address read.
const MAX_SOCKADDR: usize = 128;
/// `struct mmsghdr` entries of one `sendmmsg` looked at.
const MAX_MMSG: u64 = 16;

/// What the job's steps share: the files they wrote so far (a later read of one is
/// `written`, not `source`), and the profile's network rule.
#[derive(Debug, Clone, Default)]
pub struct TraceSetup {
    /// Refuse network calls to addresses outside the sandbox (with `ENETUNREACH`).
    pub refuse_network: bool,
    /// Paths opened for writing by earlier steps of the job (and this one, as it runs).
    pub written: Arc<Mutex<BTreeSet<String>>>,
}

// Plans compare their trace set-ups by identity of the shared set: two set-ups are the same
// when they belong to the same job.
impl PartialEq for TraceSetup {
    fn eq(&self, other: &Self) -> bool {
        self.refuse_network == other.refuse_network && Arc::ptr_eq(&self.written, &other.written)
    }
}

impl Eq for TraceSetup {}

/// A running supervisor.
#[derive(Debug)]
pub struct Supervisor {
    stop: OwnedFd,
    thread: JoinHandle<StepRecord>,
    /// Keeps `listener_path` resolvable until the step is over.
    _dir: OwnedFd,
    listener_path: PathBuf,
}

impl Supervisor {
    /// Listens on `<dir>/<name>` (which must not exist) and supervises whatever connects.
    ///
    /// A unix socket path is limited to 107 bytes and bundle directories are longer, so the
    /// socket is named through this process's descriptor of `dir`:
    /// `/proc/<runner pid>/fd/<n>/<name>`, which the helper (same user) resolves too.
    pub fn start(dir: &Path, name: &str, setup: TraceSetup) -> std::io::Result<Self> {
        let dir_fd = rustix::fs::open(
            dir,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        let listener_path = PathBuf::from(format!(
            "/proc/{}/fd/{}/{name}",
            std::process::id(),
            dir_fd.as_raw_fd()
        ));
        let listener = UnixListener::bind(&listener_path)?;
        listener.set_nonblocking(true)?;
        let (stop_read, stop_write) = nix::unistd::pipe()?;
        let thread = std::thread::Builder::new()
            .name("airlock-trace".into())
            .spawn(move || run(listener, stop_read, setup))?;
        Ok(Self {
            stop: stop_write,
            thread,
            _dir: dir_fd,
            listener_path,
        })
    }

    /// The path the OCI spec's `linux.seccomp.listenerPath` names.
    pub fn listener_path(&self) -> &Path {
        &self.listener_path
    }

    /// Stops the supervisor (every process of the step is dead by now) and returns what it
    /// recorded.
    pub fn finish(self) -> StepRecord {
        let _ = nix::unistd::write(&self.stop, b"x");
        self.thread.join().unwrap_or_else(|_| {
            tracing::warn!("the trace supervisor panicked; the step's trace is empty");
            StepRecord::default()
        })
    }
}

fn run(listener: UnixListener, stop: OwnedFd, setup: TraceSetup) -> StepRecord {
    let mut record = StepRecord::default();
    let Some(notify) = receive_notify_fd(&listener, &stop) else {
        return record;
    };
    let mut state = State {
        setup,
        hashes: HashCache::default(),
        numbers: TRACED_SYSCALLS
            .iter()
            .filter_map(|name| Some((ScmpSyscall::from_name(name).ok()?, *name)))
            .collect(),
    };
    loop {
        let mut fds = [
            PollFd::new(notify.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        if let Err(e) = poll(&mut fds, PollTimeout::NONE) {
            if e == nix::errno::Errno::EINTR {
                continue;
            }
            tracing::warn!(error = %e, "the trace supervisor cannot poll; stopping");
            break;
        }
        let notify_events = fds[0].revents().unwrap_or(PollFlags::empty());
        let stopped = fds[1].revents().is_some_and(|r| !r.is_empty());
        if notify_events.contains(PollFlags::POLLIN) {
            state.answer(notify.as_raw_fd(), &mut record);
        } else if stopped
            || notify_events
                .intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL)
        {
            // No process uses the filter any more (POLLHUP), or the step is over.
            break;
        }
    }
    record
}

/// Accepts libcontainer's connection and takes the notify fd from its SCM_RIGHTS message;
/// `None` when the step ended without one (it failed before its filter was loaded).
fn receive_notify_fd(listener: &UnixListener, stop: &OwnedFd) -> Option<OwnedFd> {
    loop {
        let mut fds = [
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            return None;
        }
        let (stream, _) = match listener.accept() {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return None,
        };
        // The message is the container's state (JSON); only the fd matters here.
        let mut buf = vec![0u8; 64 << 10];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        // A blocking read: the message is sent right after connecting.
        stream.set_nonblocking(false).ok()?;
        recvmsg(&stream, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC).ok()?;
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = message
                && let Some(fd) = fds.next()
            {
                return Some(fd);
            }
        }
        return None;
    }
}

struct State {
    setup: TraceSetup,
    hashes: HashCache,
    numbers: HashMap<ScmpSyscall, &'static str>,
}

impl State {
    /// Receives one notification and answers it, always.
    fn answer(&mut self, fd: i32, record: &mut StepRecord) {
        let Ok(req) = ScmpNotifReq::receive(fd) else {
            // The target died between the wake-up and the receive: nothing to answer.
            return;
        };
        let refuse = match self.numbers.get(&req.data.syscall).copied() {
            Some(name) => self.observe(fd, &req, name, record),
            None => false,
        };
        let resp = if refuse {
            ScmpNotifResp::new_error(req.id, -libc_enetunreach(), ScmpNotifRespFlags::empty())
        } else {
            ScmpNotifResp::new_continue(req.id, ScmpNotifRespFlags::empty())
        };
        // ENOENT: the target was killed meanwhile; nothing waits for the answer.
        let _ = resp.respond(fd);
    }

    /// Records the call; `true` to refuse it.
    fn observe(
        &mut self,
        fd: i32,
        req: &ScmpNotifReq,
        name: &'static str,
        record: &mut StepRecord,
    ) -> bool {
        let pid = Pid::from_raw(i32::try_from(req.pid).unwrap_or(0));
        let args = req.data.args;
        match name {
            "execve" => self.exec(fd, req, pid, AT_FDCWD, args[0], 0, record),
            "execveat" => self.exec(fd, req, pid, dirfd(args[0]), args[1], args[4], record),
            "open" => self.open(fd, req, pid, AT_FDCWD, args[0], Some(args[1]), record),
            "creat" => self.open(fd, req, pid, AT_FDCWD, args[0], None, record),
            "openat" => self.open(fd, req, pid, dirfd(args[0]), args[1], Some(args[2]), record),
            "openat2" => {
                // `struct open_how` starts with its u64 flags.
                match read_u64(pid, args[2]) {
                    Ok(Some(flags)) => {
                        self.open(fd, req, pid, dirfd(args[0]), args[1], Some(flags), record)
                    }
                    _ => record.unobserved_file(),
                }
            }
            "connect" | "bind" => {
                return self.network(fd, req, pid, name, args[1], args[2], record);
            }
            "sendto" => return self.network(fd, req, pid, name, args[4], args[5], record),
            "sendmsg" => return self.sendmsg(fd, req, pid, name, args[1], record),
            "sendmmsg" => {
                let mut refuse = false;
                for i in 0..args[2].min(MAX_MMSG) {
                    // `struct mmsghdr` is a msghdr (56 bytes) and a u32, padded to 64.
                    refuse |=
                        self.sendmsg(fd, req, pid, name, args[1].saturating_add(64 * i), record);
                }
                return refuse;
            }
            _ => {}
        }
        false
    }

    #[allow(clippy::too_many_arguments)]
    fn exec(
        &mut self,
        fd: i32,
        req: &ScmpNotifReq,
        pid: Pid,
        dirfd: i32,
        path_ptr: u64,
        flags: u64,
        record: &mut StepRecord,
    ) {
        let path = if flags & AT_EMPTY_PATH != 0 {
            fd_path(pid, dirfd)
        } else {
            self.path(pid, dirfd, path_ptr)
        };
        // The pid may have been reused if the target died: check before trusting anything.
        let (Some(path), true) = (path, notify_id_valid(fd, req.id).is_ok()) else {
            record.unobserved_exec();
            return;
        };
        let digest = if record.has_exec(&path) {
            None
        } else {
            self.hashes.digest(pid, &path)
        };
        record.exec(path, digest);
    }

    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        fd: i32,
        req: &ScmpNotifReq,
        pid: Pid,
        dirfd: i32,
        path_ptr: u64,
        flags: Option<u64>,
        record: &mut StepRecord,
    ) {
        let Some(path) = self.path(pid, dirfd, path_ptr) else {
            record.unobserved_file();
            return;
        };
        if notify_id_valid(fd, req.id).is_err() {
            record.unobserved_file();
            return;
        }
        let write = flags.is_none_or(|f| f & O_ACCMODE != 0 || f & (O_CREAT | O_TRUNC) != 0);
        let mut written = self
            .setup
            .written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if write {
            written.insert(path.clone());
            drop(written);
            record.file(path.clone(), Access::Write, classify_written(&path), None);
            return;
        }
        let class = classify(&path, &written);
        drop(written);
        let digest = (class.hashed() && !record.has_file(&path, Access::Read))
            .then(|| self.hashes.digest(pid, &path))
            .flatten();
        record.file(path, Access::Read, class, digest);
    }

    #[allow(clippy::too_many_arguments)]
    fn network(
        &mut self,
        fd: i32,
        req: &ScmpNotifReq,
        pid: Pid,
        name: &'static str,
        addr: u64,
        len: u64,
        record: &mut StepRecord,
    ) -> bool {
        if addr == 0 {
            return false;
        }
        let len = usize::try_from(len).unwrap_or(0).min(MAX_SOCKADDR);
        let Ok(bytes) = read_bytes(pid, addr, len) else {
            record.unobserved_network();
            return false;
        };
        if notify_id_valid(fd, req.id).is_err() {
            record.unobserved_network();
            return false;
        }
        let Some(address) = decode(&bytes) else {
            return false;
        };
        // Binding a wildcard address inside the sandbox's own network namespace stays there.
        let local = address.is_local()
            || (name == "bind"
                && matches!(&address, SocketAddress::Ip { ip, .. } if ip.is_unspecified()));
        let refuse = self.setup.refuse_network && !local;
        record.network(name, address, refuse);
        refuse
    }

    fn sendmsg(
        &mut self,
        fd: i32,
        req: &ScmpNotifReq,
        pid: Pid,
        name: &'static str,
        msghdr: u64,
        record: &mut StepRecord,
    ) -> bool {
        // `struct msghdr` starts with `void *msg_name; socklen_t msg_namelen;`.
        let Ok(head) = read_bytes(pid, msghdr, 12) else {
            record.unobserved_network();
            return false;
        };
        let (Some(name_ptr), Some(name_len)) = (
            head.get(0..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes),
            head.get(8..12)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes),
        ) else {
            return false;
        };
        self.network(fd, req, pid, name, name_ptr, u64::from(name_len), record)
    }

    /// The absolute sandbox path a call names: `path_ptr` read from the target, relative
    /// paths joined to its working directory or to `dirfd`'s path.
    fn path(&self, pid: Pid, dirfd: i32, path_ptr: u64) -> Option<String> {
        let raw = read_c_string(pid, path_ptr).ok()??;
        let text = String::from_utf8_lossy(&raw).into_owned();
        if text.starts_with('/') {
            return Some(absolute("/", &text));
        }
        let base = if dirfd == AT_FDCWD {
            link(&format!("/proc/{pid}/cwd"))?
        } else {
            fd_path(pid, dirfd)?
        };
        Some(absolute(&base, &text))
    }
}

/// The class of a path opened for writing: `written`, except under the special mounts a
/// write cannot reach (kept for the record: a write attempt into the image, say).
fn classify_written(path: &str) -> FileClass {
    match classify(path, &BTreeSet::new()) {
        FileClass::Source | FileClass::Written => FileClass::Written,
        other => other,
    }
}

fn dirfd(arg: u64) -> i32 {
    // The kernel reads the dirfd argument as an int: the low 32 bits.
    (arg & 0xffff_ffff) as u32 as i32
}

fn fd_path(pid: Pid, fd: i32) -> Option<String> {
    link(&format!("/proc/{pid}/fd/{fd}"))
}

/// A `/proc` link's target, when it is a path (not `socket:[...]`, `pipe:[...]`).
fn link(proc_path: &str) -> Option<String> {
    let target = std::fs::read_link(proc_path).ok()?;
    let text = target.to_str()?.to_owned();
    text.starts_with('/').then_some(text)
}

fn libc_enetunreach() -> i32 {
    nix::errno::Errno::ENETUNREACH as i32
}
