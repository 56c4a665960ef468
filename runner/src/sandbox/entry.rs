//! The hidden `sandbox-exec DIR` subcommand: what `DIR` holds says which of the three
//! single-threaded sandbox processes this is (a rootless chown, a job's zygote, or a lone
//! step helper).

use std::path::Path;

use nix::unistd::Pid;

use super::exec::helper_main;
use super::protocol::PARENT_PID_ENV;

/// Runs the container described by `bundle` to completion; the body of `airlock
/// sandbox-exec BUNDLE`. Returns the process exit code (see [`super::exec`]).
pub fn sandbox_exec_main(bundle: &Path) -> i32 {
    // A rootless runner also uses the helper to chown workspaces through a user namespace.
    if bundle.join(super::rootless::CHOWN_FILE).exists() {
        return super::rootless::chown_main(bundle);
    }
    // A job's zygote forks this helper per step instead (`zygote.rs`).
    if bundle.join(super::zygote::ZYGOTE_FILE).exists() {
        return super::zygote::zygote_main(bundle);
    }
    let parent = std::env::var(PARENT_PID_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
        .map(Pid::from_raw);
    helper_main(bundle, parent, None, None)
}
