//! The sandbox: one fresh libcontainer container per build step.
//!
//! - [`SandboxPlan`] describes a step and turns into an OCI runtime spec (pure);
//! - [`Launcher::job`] starts a job's [`JobSandbox`]: a single-threaded zygote process
//!   (`airlock sandbox-exec ZYGOTE_DIR`) that forks one helper per step;
//!   [`JobSandbox::run_step`] runs a step through it and reports a [`StepOutcome`]
//!   (in two halves, [`JobSandbox::prepare_step`] and [`JobSandbox::run_prepared`], so the
//!   next step's container is created while the current step runs);
//! - [`sandbox_exec_main`] is the zygote and the helper (the CLI dispatches the hidden
//!   subcommand [`SANDBOX_EXEC_SUBCOMMAND`] to it).
//!
//! Runs as root (cgroup limits) or as an unprivileged user with a `/etc/subuid` range
//! (user namespaces only, rlimits instead of cgroup limits; see `rootless.rs`).

mod cgroup;
mod cleanup;
mod entry;
mod error;
mod exec;
mod fd_passing;
pub mod identity;
mod job_sandbox;
mod launcher;
mod loopback;
mod mounts;
mod outcome;
mod output;
mod own_cgroups;
mod plan;
mod preflight;
mod protocol;
mod rootless;
mod seccomp;
mod spec;
mod step;
pub mod trace;
mod zygote;
mod zygote_client;

pub use entry::sandbox_exec_main;
pub use error::SandboxError;
pub use exec::HELPER_FAILURE_EXIT;
pub use job_sandbox::JobSandbox;
pub use launcher::{Launcher, SANDBOX_EXEC_SUBCOMMAND};
pub use outcome::{FailureKind, StepOutcome};
pub use output::{OutputChunk, Stream};
pub use plan::{
    CACHE_MOUNT, DEPS_MOUNT, INPUTS_MOUNT, IdMap, MIN_HOST_BASE, OIDC_SOCKET_MOUNT, STEP_GID,
    STEP_UID, SandboxPlan,
};
pub(crate) use rootless::lchown_tree;
pub use rootless::{
    ROOTLESS_LIMITS_NOTICE, USERNS_ROOT_LIMITS_NOTICE, has_host_privilege, is_rootless,
    is_userns_root,
};
pub use seccomp::{
    BASELINE_FILE as SECCOMP_BASELINE_FILE, BASELINE_JSON as SECCOMP_BASELINE_JSON,
    MANDATORY_DENIALS, SeccompPolicy,
};
pub use step::PreparedStep;
