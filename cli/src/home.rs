//! Local state of `airlock run`: `$AIRLOCK_HOME`.

use std::path::PathBuf;

/// `$AIRLOCK_HOME`, else `/var/lib/airlock` for root, else `~/.local/share/airlock`.
///
/// Root's default is not under `/root`: that directory is private (0700), and the
/// sandbox's unprivileged uid must be able to reach the workspace and image cache.
pub fn airlock_home() -> PathBuf {
    if let Some(h) = std::env::var_os("AIRLOCK_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/airlock");
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("airlock")
}

/// Directories that hold airlock's own state (keys, databases, workspaces) on this machine:
/// a job's `path` source may neither lie in nor contain one, whatever is allowed.
pub fn airlock_state_dirs() -> Vec<PathBuf> {
    let home = airlock_home();
    // Inside `$AIRLOCK_HOME` only what airlock writes (a project may live beside it).
    let mut dirs: Vec<PathBuf> = ["keys", "runner", "runs", "controller"]
        .iter()
        .map(|d| home.join(d))
        .collect();
    dirs.extend([
        PathBuf::from("/var/lib/airlock"),
        PathBuf::from("/etc/airlock"),
        PathBuf::from("/run/airlock"),
    ]);
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".local/share/airlock"));
    }
    dirs
}
