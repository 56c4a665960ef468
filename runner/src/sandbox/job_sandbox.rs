//! A job's sandbox: the zygotes (`zygote_client.rs`) that fork its steps' helpers.
//!
//! On a v1 host each zygote sits in cgroups of its own, and a step's limits and counters are
//! its zygote's cgroups'. A job's next container is created while its current step runs
//! (`step.rs`), so the steps of a job alternate between two zygotes: the step being created
//! never counts against the running step's pids or memory limit, and each step's counters
//! are its own. Elsewhere (v2, where libcontainer makes a cgroup per step; rootless, with
//! none) one zygote serves every step.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::OnceCell;

use super::SandboxError;
use super::launcher::Launcher;
use super::zygote_client::ZygoteClient;

/// The sandbox of one job attempt. Steps run one at a time through it, each in a fresh
/// container, and at most one more step is prepared meanwhile
/// ([`JobSandbox::prepare_step`]).
///
/// Dropping it closes the zygotes' sockets and kills them (their helpers then kill their
/// containers); [`JobSandbox::finish`] also waits for them and removes their cgroups, which
/// [`Launcher::cleanup_prefix`] otherwise does.
#[derive(Debug)]
pub struct JobSandbox {
    launcher: Launcher,
    id: String,
    /// The second one starts with the job's second step.
    zygotes: [OnceCell<ZygoteClient>; 2],
    /// How many steps were prepared.
    steps: AtomicUsize,
}

impl JobSandbox {
    /// Starts the sandbox of job `id` (1-64 of `[A-Za-z0-9_.+-]`, unique among the
    /// launcher's running jobs; it names the zygotes and their cgroups) with its first
    /// zygote.
    pub(super) fn start(launcher: &Launcher, id: &str) -> Result<Self, SandboxError> {
        let first = ZygoteClient::start(launcher, id)?;
        Ok(Self {
            launcher: launcher.clone(),
            id: id.to_owned(),
            zygotes: [OnceCell::new_with(Some(first)), OnceCell::new()],
            steps: AtomicUsize::new(0),
        })
    }

    /// The job's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(super) fn launcher(&self) -> &Launcher {
        &self.launcher
    }

    /// The zygote the next step goes to, and its index (starting it if need be).
    pub(super) async fn next_zygote(&self) -> Result<(usize, &ZygoteClient), SandboxError> {
        let n = self.steps.fetch_add(1, Ordering::Relaxed);
        // Steps alternate only where the zygotes have cgroups of their own.
        let index = if self.cgroup(0).is_some() { n % 2 } else { 0 };
        let zygote = self.zygotes[index]
            .get_or_try_init(|| async {
                ZygoteClient::start(&self.launcher, &zygote_id(&self.id, index))
            })
            .await?;
        Ok((index, zygote))
    }

    /// The cgroup of zygote `index`, when it made one: what is left in it after a helper
    /// died is the job's to kill.
    pub(super) fn cgroup(&self, index: usize) -> Option<&Path> {
        self.zygotes.get(index)?.get()?.cgroup()
    }

    /// Ends the zygotes and removes their cgroups and directories. Every step must be over.
    pub async fn finish(self) -> Result<(), SandboxError> {
        let [first, second] = self.zygotes;
        let mut result = Ok(());
        for zygote in [first.into_inner(), second.into_inner()]
            .into_iter()
            .flatten()
        {
            let finished = zygote.finish().await;
            if result.is_ok() {
                result = finished;
            }
        }
        result
    }
}

/// The id of zygote `index` of job `id`: the job's id for the first; for the second, `-1`
/// before the id's last `.`-separated part, so that it keeps the job's prefix and its room
/// suffix (which the cleanups match).
fn zygote_id(id: &str, index: usize) -> String {
    match (index, id.rsplit_once('.')) {
        (0, _) => id.to_owned(),
        (_, Some((head, tail))) => format!("{head}-{index}.{tail}"),
        (_, None) => format!("{id}-{index}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_zygote_keeps_the_jobs_prefix_and_room_suffix() {
        let id = crate::state::job_sandbox_id("j1", 2, "r00m");
        assert_eq!(zygote_id(&id, 0), id);
        let second = zygote_id(&id, 1);
        assert_ne!(second, id);
        assert!(second.starts_with(&crate::state::container_prefix("j1", 2)));
        assert!(second.ends_with(".r00m"));
        assert_eq!(zygote_id("plain", 1), "plain-1");
    }
}
