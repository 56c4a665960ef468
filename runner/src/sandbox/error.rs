//! The sandbox's error type.
//!
//! A build step that exits non-zero, is killed by a signal, times out or is cancelled is
//! *not* an error: it is a [`StepOutcome`](super::StepOutcome). Every variant here means the
//! platform failed (a bad plan from the caller, an I/O problem on the runner, a container
//! that could not be created, a helper process that crashed).

use std::path::PathBuf;

/// Why the sandbox could not run a step. Every variant is an infrastructure failure.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The plan is unusable (caller bug); names the field and what is wrong with it.
    #[error("invalid sandbox plan: {field}: {reason}")]
    InvalidPlan {
        /// The plan field at fault, e.g. `argv` or `id_map.host_base`.
        field: &'static str,
        /// What is wrong and what to do about it.
        reason: String,
    },

    /// The container id is not usable as a libcontainer id / directory name.
    #[error(
        "invalid container id {0:?}: use 1-64 characters from [A-Za-z0-9_.+-], not `.` or `..`"
    )]
    InvalidContainerId(String),

    /// A container with this id is already running or its state was not cleaned up.
    #[error("container {0:?} already exists in the sandbox state directory; ids must be unique")]
    ContainerExists(String),

    /// The OCI runtime spec could not be built from the plan.
    #[error("building the OCI runtime spec: {0}")]
    Spec(#[from] oci_spec::OciSpecError),

    /// A file-system operation on the runner side failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done, e.g. `creating bundle directory`.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The `sandbox-exec` helper process could not be started.
    #[error("starting the sandbox helper {exe}: {source}")]
    SpawnHelper {
        /// The executable that was run.
        exe: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The helper reported that it could not create, start or wait for the container.
    #[error("sandbox helper failed: {0}")]
    Container(String),

    /// The helper exited without writing its report (crashed, or killed after the grace period).
    #[error("sandbox helper exited without a report ({status}); the step's result is unknown")]
    HelperCrashed {
        /// The helper's wait status, as text.
        status: String,
    },

    /// Processes or state of a finished step could not be removed; the step's processes may
    /// still be alive, so its outputs must not be trusted.
    #[error("cleaning up after the sandbox: {0}")]
    Cleanup(String),
    /// The step's init (pid 1 of its pid namespace, which nothing inside the sandbox can
    /// SIGKILL) died of SIGKILL that neither the launcher nor the OOM killer sent: the host,
    /// an operator or a dying helper killed it. An infrastructure failure, never the build's.
    #[error(
        "the step was killed by SIGKILL from outside the sandbox (no timeout, cancel or \
         out-of-memory kill asked for it): its helper died or something on the host killed it"
    )]
    KilledFromOutside,
    /// A rootless runner has no delegated cgroup to put its containers in.
    #[error("{0}")]
    NoDelegatedCgroup(String),

    /// The helper's report could not be read or parsed.
    #[error("reading the sandbox helper report {path}: {reason}")]
    BadReport {
        /// The report file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
}

impl SandboxError {
    /// Shorthand for [`SandboxError::Io`].
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Shorthand for [`SandboxError::InvalidPlan`].
    pub(crate) fn plan(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidPlan {
            field,
            reason: reason.into(),
        }
    }
}
