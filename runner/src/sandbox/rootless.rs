//! Running the sandbox as an unprivileged user (user namespaces only).
//!
//! What differs from a runner running as root:
//!
//! - **id mappings**: the kernel lets an unprivileged process write only a mapping of its
//!   own uid, so the job's range (cut from the user's `/etc/subuid`) is written by the setuid
//!   `newuidmap`/`newgidmap`. libcontainer 0.7 calls them only for more than one mapping, so
//!   the plan's single `0 -> base` mapping is split in two equivalent ones
//!   (`0..1000 -> base..base+1000`, `1000..size -> base+1000..`): the same ids are mapped;
//! - **limits**: there is no delegated cgroup, so the memory, pids and CPU limits of the
//!   cgroup are replaced by rlimits of the step ([`rlimit_fallback`]): `RLIMIT_AS` (memory),
//!   `RLIMIT_NPROC` (processes; counted per host uid, and every job has its own uid range),
//!   `RLIMIT_FSIZE` (largest file); there is no CPU limit and no OOM/pids-limit reporting;
//! - **workspace ownership**: the runner cannot `chown` to a subordinate id. A short-lived
//!   helper (`sandbox-exec` with a chown request, [`chown_main`]) forks a child into a new
//!   user namespace in which `newuidmap`/`newgidmap` map exactly two ids, `0` to the runner's
//!   own uid/gid and `1000` to the step's host uid/gid; as root of that namespace the child
//!   `lchown`s the tree to `1000` (before the steps) or back to `0` (after them, so the
//!   runner can read the outputs and remove the workspace).

use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use nix::unistd::{ForkResult, getegid, geteuid};
use oci_spec::runtime::{LinuxIdMappingBuilder, PosixRlimitBuilder, PosixRlimitType, Spec};
use serde::{Deserialize, Serialize};

use super::protocol::{HelperReport, REPORT_FILE, read_json, write_json};
use super::{IdMap, STEP_GID, STEP_UID, SandboxError, SandboxPlan};

/// The request file of a chown helper run (in place of `airlock-request.json`).
pub(crate) const CHOWN_FILE: &str = "airlock-chown.json";

/// The line a rootless runner writes to every job's log.
pub const ROOTLESS_LIMITS_NOTICE: &str = "rootless: cgroup limits unavailable; using rlimits (RLIMIT_AS for memory, RLIMIT_NPROC \
     for processes, RLIMIT_FSIZE for file size; no CPU limit, no out-of-memory or pids-limit \
     reporting)";

/// The line a runner that is root of a nested user namespace (a pod) writes to every job's
/// log.
pub const USERNS_ROOT_LIMITS_NOTICE: &str = "user-namespace root (a pod): cgroup limits unavailable; using rlimits (RLIMIT_AS for \
     memory, RLIMIT_NPROC for processes, RLIMIT_FSIZE for file size) under the pod's own \
     limits; `lo` stays down in the steps";

/// Whether this process runs without root, i.e. the sandbox is rootless.
pub fn is_rootless() -> bool {
    !geteuid().is_root()
}

/// Whether this process is root of a user namespace other than the initial one: a pod with
/// `hostUsers: false`, or a container engine's user namespace. Such a root owns the ids the
/// namespace maps (it writes a job's id mapping and chowns its workspace itself, like host
/// root), but the node's cgroups are not its to write and it cannot enter a step's network
/// namespace (that needs CAP_SYS_ADMIN in its own namespace), so the sandbox falls back to
/// rlimits and leaves `lo` down, as rootless.
pub fn is_userns_root() -> bool {
    static NESTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    geteuid().is_root()
        && *NESTED.get_or_init(|| {
            std::fs::read_to_string("/proc/self/uid_map")
                .map(|map| !is_initial_uid_map(&map))
                // Unreadable: assume the weaker position (no cgroups) rather than fail open.
                .unwrap_or(true)
        })
}

/// Whether the sandbox has the host's privileges: writable cgroups for its limits and the
/// right to bring up `lo` in a step's network namespace (root of the initial namespace).
pub fn has_host_privilege() -> bool {
    !is_rootless() && !is_userns_root()
}

/// True for the initial user namespace's map: every id, identity-mapped.
fn is_initial_uid_map(map: &str) -> bool {
    let lines: Vec<Vec<&str>> = map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .filter(|f: &Vec<&str>| !f.is_empty())
        .collect();
    matches!(lines.as_slice(), [l] if l.as_slice() == ["0", "0", "4294967295"])
}

/// The ids a nested user namespace maps, as `(inside start, count)` ranges of
/// `/proc/self/uid_map` text.
pub(crate) fn mapped_ranges(map: &str) -> Vec<(u64, u64)> {
    map.lines()
        .filter_map(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect();
            match f.as_slice() {
                [inside, _, count] => Some((*inside, *count)),
                _ => None,
            }
        })
        .collect()
}

/// Who should own a workspace tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Owner {
    /// The step (container uid/gid 1000, the job's host uid/gid `base + 1000`).
    Step,
    /// The runner's own uid/gid.
    Runner,
}

/// A chown request for the helper.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChownRequest {
    /// The trees to chown (not followed through symlinks).
    pub paths: Vec<PathBuf>,
    /// The step's host uid (container uid 1000).
    pub step_uid: u32,
    /// The step's host gid (container gid 1000).
    pub step_gid: u32,
    /// Who gets the trees.
    pub to: Owner,
}

impl ChownRequest {
    /// A request to give `paths` to `to`, for the job with ids `id_map`.
    pub(crate) fn new(paths: Vec<PathBuf>, id_map: IdMap, to: Owner) -> Self {
        Self {
            paths,
            step_uid: id_map.host_base.saturating_add(STEP_UID),
            step_gid: id_map.host_base.saturating_add(STEP_GID),
            to,
        }
    }
}

/// Adapts `spec` (made by [`SandboxPlan::to_oci_spec`]) for a rootless runner: splits the id
/// mappings so libcontainer writes them with `newuidmap`/`newgidmap`, and adds the rlimits
/// that stand in for the cgroup limits.
pub(crate) fn adapt_spec(spec: &mut Spec, plan: &SandboxPlan) -> Result<(), SandboxError> {
    let IdMap { host_base, size } = plan.id_map;
    let split = |inner: u32| -> Result<_, SandboxError> {
        Ok(vec![
            LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(host_base)
                .size(inner)
                .build()?,
            LinuxIdMappingBuilder::default()
                .container_id(inner)
                .host_id(host_base.saturating_add(inner))
                .size(size.saturating_sub(inner))
                .build()?,
        ])
    };
    if let Some(linux) = spec.linux_mut() {
        linux.set_uid_mappings(Some(split(STEP_UID)?));
        linux.set_gid_mappings(Some(split(STEP_GID)?));
    }
    set_rlimit_fallback(spec, plan)
}

/// Puts the rlimits that stand in for the cgroup limits into `spec` (rootless, and root of a
/// nested user namespace).
pub(crate) fn set_rlimit_fallback(spec: &mut Spec, plan: &SandboxPlan) -> Result<(), SandboxError> {
    if let Some(process) = spec.process_mut() {
        let mut rlimits = process.rlimits().clone().unwrap_or_default();
        for (typ, wanted) in rlimit_fallback(plan) {
            let value = wanted.min(hard_limit(typ));
            rlimits.retain(|r| r.typ() != typ);
            rlimits.push(
                PosixRlimitBuilder::default()
                    .typ(typ)
                    .soft(value)
                    .hard(value)
                    .build()?,
            );
        }
        process.set_rlimits(Some(rlimits));
    }
    Ok(())
}

/// The rlimits that replace the cgroup limits of `plan` when running rootless.
pub(crate) fn rlimit_fallback(plan: &SandboxPlan) -> Vec<(PosixRlimitType, u64)> {
    let mut out = Vec::new();
    if let Some(bytes) = plan.memory_bytes {
        out.push((PosixRlimitType::RlimitAs, bytes));
    }
    if let Some(pids) = plan.pids {
        out.push((PosixRlimitType::RlimitNproc, pids));
    }
    if let Some(bytes) = plan.file_size_bytes {
        out.push((PosixRlimitType::RlimitFsize, bytes));
    }
    out
}

/// This process's hard limit of `typ` (a limit can be lowered inside the sandbox, never
/// raised); `u64::MAX` when unlimited or unknown.
fn hard_limit(typ: PosixRlimitType) -> u64 {
    let resource = match typ {
        PosixRlimitType::RlimitAs => nix::libc::RLIMIT_AS,
        PosixRlimitType::RlimitNproc => nix::libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitFsize => nix::libc::RLIMIT_FSIZE,
        _ => return u64::MAX,
    };
    let mut limit = nix::libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives for the call.
    #[allow(unsafe_code)]
    let rc = unsafe { nix::libc::getrlimit(resource, &mut limit) };
    if rc == 0 { limit.rlim_max } else { u64::MAX }
}

/// The chown helper's work (`airlock sandbox-exec DIR` with `DIR/airlock-chown.json`):
/// writes `DIR/airlock-report.json` and returns the exit code (0, or 125 on failure).
pub(crate) fn chown_main(dir: &Path) -> i32 {
    let report = match chown_run(dir) {
        Ok(()) => HelperReport {
            exit_code: Some(0),
            ..HelperReport::default()
        },
        Err(message) => HelperReport {
            error: Some(message),
            ..HelperReport::default()
        },
    };
    if let Some(error) = &report.error {
        eprintln!("airlock-sandbox: {error}");
    }
    if let Err(e) = write_json(&dir.join(REPORT_FILE), &report) {
        eprintln!("airlock-sandbox: cannot write the report: {e}");
        return super::HELPER_FAILURE_EXIT;
    }
    if report.error.is_some() {
        super::HELPER_FAILURE_EXIT
    } else {
        0
    }
}

/// Forks a child into a new user namespace mapping `0` to the runner and `1000` to the step,
/// and lets it chown the trees.
fn chown_run(dir: &Path) -> Result<(), String> {
    let path = dir.join(CHOWN_FILE);
    let request: ChownRequest = read_json(&path)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{} is missing", path.display()))?;
    if request.to == Owner::Step {
        for p in &request.paths {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("chmod {}: {e}", p.display()))?;
        }
    }
    let (uid, gid) = (geteuid().as_raw(), getegid().as_raw());
    let (ready_r, ready_w) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    let (go_r, go_w) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the helper is single-threaded, so the child may do anything after fork.
    #[allow(unsafe_code)]
    let fork = unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))?;
    match fork {
        ForkResult::Child => {
            drop(ready_r);
            drop(go_w);
            let code = match chown_child(ready_w, go_r, &request) {
                Ok(()) => 0,
                Err(message) => {
                    eprintln!("airlock-sandbox: {message}");
                    1
                }
            };
            std::process::exit(code);
        }
        ForkResult::Parent { child } => {
            drop(ready_w);
            drop(go_r);
            let mapped = (|| {
                let mut byte = [0u8; 1];
                std::fs::File::from(ready_r)
                    .read_exact(&mut byte)
                    .map_err(|e| format!("the chown child did not enter its namespace: {e}"))?;
                let pid = child.to_string();
                for (binary, own, step) in [
                    ("newuidmap", uid, request.step_uid),
                    ("newgidmap", gid, request.step_gid),
                ] {
                    let inner = if binary == "newuidmap" {
                        STEP_UID
                    } else {
                        STEP_GID
                    };
                    let out = std::process::Command::new(binary)
                        .args([&pid, "0", &own.to_string(), "1"])
                        .args([&inner.to_string(), &step.to_string(), "1"])
                        .output()
                        .map_err(|e| format!("running {binary} (package uidmap): {e}"))?;
                    if !out.status.success() {
                        return Err(format!(
                            "{binary} {pid} 0 {own} 1 {inner} {step} 1 failed ({}): {}",
                            out.status,
                            String::from_utf8_lossy(&out.stderr).trim()
                        ));
                    }
                }
                std::fs::File::from(go_w)
                    .write_all(b"g")
                    .map_err(|e| format!("waking the chown child: {e}"))
            })();
            let status = nix::sys::wait::waitpid(child, None);
            mapped?;
            match status {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
                Ok(other) => Err(format!(
                    "chowning {:?} to the {:?} failed: {other:?}",
                    request.paths, request.to
                )),
                Err(e) => Err(format!("waitpid: {e}")),
            }
        }
    }
}

/// The forked child: enters a new user namespace, waits for its mappings, chowns.
fn chown_child(
    ready: std::os::fd::OwnedFd,
    go: std::os::fd::OwnedFd,
    request: &ChownRequest,
) -> Result<(), String> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)
        .map_err(|e| format!("unshare(CLONE_NEWUSER): {e}"))?;
    std::fs::File::from(ready)
        .write_all(b"r")
        .map_err(|e| format!("signalling the helper: {e}"))?;
    let mut byte = [0u8; 1];
    std::fs::File::from(go)
        .read_exact(&mut byte)
        .map_err(|_| "the helper could not map the ids".to_owned())?;
    let (uid, gid) = match request.to {
        Owner::Step => (STEP_UID, STEP_GID),
        Owner::Runner => (0, 0),
    };
    for root in &request.paths {
        lchown_tree(root, uid, gid)?;
    }
    Ok(())
}

/// `lchown`s `root` and everything below it, never following symlinks, at any depth.
pub(crate) fn lchown_tree(root: &Path, uid: u32, gid: u32) -> Result<(), String> {
    crate::tree::lchown_tree(root, uid, gid).map_err(|e| format!("chown {}: {e}", root.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_full_identity_map_is_the_initial_user_namespace() {
        assert!(is_initial_uid_map("         0          0 4294967295\n"));
        assert!(!is_initial_uid_map("         0    3000000     196608\n"));
        assert!(!is_initial_uid_map("0 0 4294967295\n1 1 1\n"));
        assert!(!is_initial_uid_map(""));
        assert_eq!(
            mapped_ranges("         0    3000000     196608\n"),
            vec![(0, 196_608)]
        );
    }

    use super::*;

    fn plan() -> SandboxPlan {
        let mut plan = SandboxPlan::new(
            "/r",
            "/w",
            "/o",
            vec!["true".into()],
            IdMap {
                host_base: 3_000_000,
                size: 65536,
            },
        );
        plan.memory_bytes = Some(1 << 30);
        plan.pids = Some(64);
        plan.file_size_bytes = Some(1 << 20);
        plan.open_files = Some(256);
        plan
    }

    #[test]
    fn rootless_spec_splits_the_mapping_and_adds_rlimits() {
        let plan = plan();
        let mut spec = plan.to_oci_spec().expect("spec");
        adapt_spec(&mut spec, &plan).expect("adapt");
        let linux = spec.linux().as_ref().expect("linux");
        let maps: Vec<(u32, u32, u32)> = linux
            .uid_mappings()
            .as_ref()
            .expect("uid maps")
            .iter()
            .map(|m| (m.container_id(), m.host_id(), m.size()))
            .collect();
        assert_eq!(
            maps,
            vec![(0, 3_000_000, 1000), (1000, 3_001_000, 64536)],
            "same ids, two mappings"
        );
        let rlimits = spec
            .process()
            .as_ref()
            .and_then(|p| p.rlimits().clone())
            .expect("rlimits");
        let find = |t: PosixRlimitType| rlimits.iter().find(|r| r.typ() == t).map(|r| r.hard());
        assert_eq!(find(PosixRlimitType::RlimitNofile), Some(256));
        assert!(find(PosixRlimitType::RlimitNproc).is_some_and(|n| n <= 64));
        assert!(find(PosixRlimitType::RlimitAs).is_some_and(|n| n <= 1 << 30));
        assert!(find(PosixRlimitType::RlimitFsize).is_some_and(|n| n <= 1 << 20));
    }

    #[test]
    fn chown_request_names_the_step_ids() {
        let r = ChownRequest::new(
            vec!["/w".into()],
            IdMap {
                host_base: 3_000_000,
                size: 65536,
            },
            Owner::Step,
        );
        assert_eq!((r.step_uid, r.step_gid), (3_001_000, 3_001_000));
    }
}
