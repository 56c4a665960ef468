//! The files through which the launcher and the `sandbox-exec` helper talk.
//!
//! Both live in the bundle directory, which is inside the root-only state directory and is
//! never mounted into the container, so a build step can neither read nor forge them. The
//! helper's exit code and its stderr are for humans only: a step may exit 125 or print
//! `airlock-sandbox:` lines itself, so the launcher trusts only the report file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SandboxError;

/// The request file in the bundle directory, written by the launcher.
pub(crate) const REQUEST_FILE: &str = "airlock-request.json";
/// The report file in the bundle directory, written by the helper before it exits.
pub(crate) const REPORT_FILE: &str = "airlock-report.json";
/// The environment variable carrying the launcher's pid to the helper.
pub(crate) const PARENT_PID_ENV: &str = "AIRLOCK_SANDBOX_PARENT_PID";

/// What the helper must do besides what `config.json` says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HelperRequest {
    /// The container id.
    pub container_id: String,
    /// libcontainer's state root.
    pub state_root: PathBuf,
    /// The container's cgroup path, relative to each v1 controller mount, e.g. `airlock/<id>`.
    pub cgroup: PathBuf,
    /// `memory.limit_in_bytes` to set before the step starts.
    pub memory_bytes: Option<u64>,
    /// `pids.max` to set before the step starts.
    pub pids: Option<u64>,
    /// CPU quota in thousandths of a CPU to set before the step starts.
    #[serde(default)]
    pub cpu_millis: Option<u64>,
    /// Whether to bring up `lo` in the container's network namespace.
    #[serde(default)]
    pub loopback_up: bool,
}

/// How the step ended, as seen by the helper.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HelperReport {
    /// The step's exit code, if it exited.
    pub exit_code: Option<i32>,
    /// The signal that killed the step, if one did.
    pub signal: Option<i32>,
    /// Whether the helper killed the step because it was asked to (SIGTERM/SIGINT/SIGHUP).
    pub killed_on_request: bool,
    /// Whether the memory cgroup recorded an OOM kill.
    pub oom_killed: bool,
    /// Whether a fork failed because the pids cgroup limit was reached.
    #[serde(default)]
    pub pids_exhausted: bool,
    /// Whether the step's `/tmp` tmpfs was full (no free block or inode) when it ended.
    #[serde(default)]
    pub tmp_full: bool,
    /// Set when the helper itself failed (container not created, not started, ...).
    pub error: Option<String>,
}

/// Writes `value` as JSON to `path` atomically (temporary file + rename), mode 0600.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), SandboxError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    let json = serde_json::to_vec_pretty(value)
        .map_err(|e| SandboxError::io("serialising", path, std::io::Error::other(e)))?;
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| SandboxError::io("creating", &tmp, e))?;
    // No fsync: these files only matter while both processes are alive.
    file.write_all(&json)
        .map_err(|e| SandboxError::io("writing", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| SandboxError::io("renaming", path, e))
}

/// Reads a JSON file written by [`write_json`]; `Ok(None)` when it does not exist.
pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(
    path: &Path,
) -> Result<Option<T>, SandboxError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| SandboxError::BadReport {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SandboxError::io("reading", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trips_and_missing_is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(REPORT_FILE);
        assert_eq!(read_json::<HelperReport>(&path).expect("read"), None);
        let report = HelperReport {
            exit_code: Some(3),
            ..HelperReport::default()
        };
        write_json(&path, &report).expect("write");
        assert_eq!(
            read_json::<HelperReport>(&path).expect("read"),
            Some(report)
        );
        std::fs::write(&path, b"{\"exit_code\": \"x\"}").expect("write");
        assert!(matches!(
            read_json::<HelperReport>(&path),
            Err(SandboxError::BadReport { .. })
        ));
    }
}
