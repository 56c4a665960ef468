//! Commit statuses, posted off the job's path: a background task reads which jobs still owe
//! their forge a status (`pending` once queued, the final state once ended; kept in the
//! database, so a restart loses none), posts them with retries and backoff, and records
//! each one posted. A forge that is down delays its statuses, never a job.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_attest::GitCommit;
use airlock_job::{JobSpec, SourceSpec};
use tokio::task::JoinSet;

use super::api::{CommitStatus, ForgeApiError, StatusState};
use super::{Forge, Forges};
use crate::ids::JobId;
use crate::scheduler::Scheduler;
use crate::state::JobState;
use crate::store::{DueStatus, ForgeStatusStage};

/// How often the database is asked for due statuses.
const POLL: Duration = Duration::from_millis(500);

/// Jobs handled per round.
const BATCH: u32 = 32;

/// Tries per status before it is given up (about 10 minutes of backoff).
pub const MAX_TRIES: u32 = 8;

/// The delay before try `n + 1` (n >= 1): 2 s doubling, at most 5 minutes.
pub fn backoff(tries: u32) -> Duration {
    Duration::from_secs(2u64.saturating_pow(tries.min(9))).min(Duration::from_secs(300))
}

/// The status a job in `state` shows, and the stage that follows posting it.
fn status_for(due: &DueStatus, target_url: String) -> (CommitStatus, ForgeStatusStage) {
    let (state, description, next) = match (due.stage, due.state) {
        (ForgeStatusStage::Queued, _) => (
            StatusState::Pending,
            "queued".to_owned(),
            ForgeStatusStage::Pending,
        ),
        (_, JobState::Succeeded) => (
            StatusState::Success,
            "succeeded".to_owned(),
            ForgeStatusStage::Done,
        ),
        (_, JobState::Failed | JobState::TimedOut) => (
            StatusState::Failure,
            format!("{}: {}", due.state.as_str().to_lowercase(), due.message),
            ForgeStatusStage::Done,
        ),
        (_, state) => (
            StatusState::Error,
            format!("{}: {}", state.as_str().to_lowercase(), due.message),
            ForgeStatusStage::Done,
        ),
    };
    (
        CommitStatus {
            state,
            cancelled: due.state == JobState::Cancelled,
            context: format!("airlock/{}", due.name),
            description,
            target_url: Some(target_url),
        },
        next,
    )
}

/// Where a due job's status goes: its forge, base repository and commit.
fn target(forges: &Forges, due: &DueStatus) -> Result<(Arc<Forge>, String, GitCommit), String> {
    let spec = JobSpec::from_json(&due.spec_json).map_err(|e| e.to_string())?;
    let trigger = spec.trigger.ok_or("the spec has no trigger")?;
    let forge = forges.get(&trigger.forge).ok_or_else(|| {
        format!(
            "forge `{}` is no longer configured; its status is dropped",
            trigger.forge
        )
    })?;
    let SourceSpec::Git { commit, .. } = spec.source else {
        return Err("the source is not a git commit".into());
    };
    Ok((forge, trigger.repository, commit))
}

/// Posts `status` on the blocking pool.
async fn post(
    forge: &Arc<Forge>,
    repository: &str,
    commit: &GitCommit,
    status: &CommitStatus,
) -> Result<(), ForgeApiError> {
    let (forge, repository, commit, status) = (
        Arc::clone(forge),
        repository.to_owned(),
        *commit,
        status.clone(),
    );
    tokio::task::spawn_blocking(move || forge.api.post_status(&repository, &commit, &status))
        .await
        .unwrap_or_else(|e| {
            Err(ForgeApiError::Body {
                url: String::new(),
                message: format!("the posting task failed: {e}"),
            })
        })
}

/// Posts `status` now, retrying transient failures [`MAX_TRIES`] times (for statuses that
/// belong to no job, e.g. a job file that cannot be queued).
pub async fn post_with_retries(
    forge: &Arc<Forge>,
    repository: &str,
    commit: &GitCommit,
    status: &CommitStatus,
) {
    for tries in 1..=MAX_TRIES {
        match post(forge, repository, commit, status).await {
            Ok(()) => return,
            Err(e) if e.is_transient() && tries < MAX_TRIES => {
                tracing::info!(forge = %forge.config.name, error = %e, tries, "status post failed; retrying");
                tokio::time::sleep(backoff(tries)).await;
            }
            Err(e) => {
                tracing::warn!(forge = %forge.config.name, error = %e, "status not posted");
                return;
            }
        }
    }
}

/// Runs until aborted: posts every due status.
pub async fn run(scheduler: Arc<Scheduler>, forges: Arc<Forges>) {
    let mut waiting: HashMap<JobId, (u32, Instant)> = HashMap::new();
    loop {
        match scheduler.store().due_forge_statuses(BATCH).await {
            Ok(due) => round(&scheduler, &forges, due, &mut waiting).await,
            Err(e) => tracing::warn!(error = %e, "cannot read due commit statuses"),
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = scheduler.hub().shutting_down() => return,
        }
    }
}

async fn round(
    scheduler: &Arc<Scheduler>,
    forges: &Arc<Forges>,
    due: Vec<DueStatus>,
    waiting: &mut HashMap<JobId, (u32, Instant)>,
) {
    let now = Instant::now();
    let mut posts = JoinSet::new();
    for job in due {
        if waiting.get(&job.id).is_some_and(|(_, at)| *at > now) {
            continue;
        }
        let (forge, repository, commit) = match target(forges, &job) {
            Ok(target) => target,
            Err(why) => {
                tracing::warn!(job_id = %job.id, reason = %why, "commit status dropped");
                let _ = scheduler
                    .store()
                    .advance_forge_status(job.id, job.stage, ForgeStatusStage::Done)
                    .await;
                continue;
            }
        };
        let (status, next) = status_for(&job, forges.job_url(&job.id.to_string()));
        posts.spawn(async move {
            let result = post(&forge, &repository, &commit, &status).await;
            (job, next, forge, result)
        });
    }
    while let Some(Ok((job, next, forge, result))) = posts.join_next().await {
        let advance = match result {
            Ok(()) => {
                tracing::info!(job_id = %job.id, forge = %forge.config.name, stage = ?job.stage, "commit status posted");
                waiting.remove(&job.id);
                true
            }
            Err(e) => {
                let tries = waiting.get(&job.id).map_or(0, |(n, _)| *n) + 1;
                if e.is_transient() && tries < MAX_TRIES {
                    tracing::info!(job_id = %job.id, error = %e, tries, "commit status not posted; will retry");
                    waiting.insert(job.id, (tries, Instant::now() + backoff(tries)));
                    false
                } else {
                    tracing::warn!(job_id = %job.id, error = %e, tries, "commit status given up");
                    waiting.remove(&job.id);
                    true
                }
            }
        };
        if advance
            && let Err(e) = scheduler
                .store()
                .advance_forge_status(job.id, job.stage, next)
                .await
        {
            tracing::warn!(job_id = %job.id, error = %e, "cannot record a posted commit status");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(stage: ForgeStatusStage, state: JobState) -> DueStatus {
        DueStatus {
            id: JobId::new(uuid::Uuid::from_u128(1)),
            name: "hello".into(),
            spec_json: Vec::new(),
            state,
            message: "step build exited 2".into(),
            stage,
        }
    }

    #[test]
    fn pending_first_then_the_final_state() {
        let (s, next) = status_for(
            &due(ForgeStatusStage::Queued, JobState::Succeeded),
            "u".into(),
        );
        assert_eq!(
            (s.state, next),
            (StatusState::Pending, ForgeStatusStage::Pending)
        );
        assert_eq!(s.context, "airlock/hello");
        let (s, next) = status_for(
            &due(ForgeStatusStage::Pending, JobState::Succeeded),
            "u".into(),
        );
        assert_eq!(
            (s.state, next),
            (StatusState::Success, ForgeStatusStage::Done)
        );
        let (s, _) = status_for(
            &due(ForgeStatusStage::Pending, JobState::Failed),
            "u".into(),
        );
        assert_eq!(s.state, StatusState::Failure);
        assert!(s.description.contains("exited 2"));
        let (s, _) = status_for(
            &due(ForgeStatusStage::Pending, JobState::Cancelled),
            "u".into(),
        );
        assert!(s.cancelled && s.state == StatusState::Error);
        let (s, _) = status_for(
            &due(ForgeStatusStage::Pending, JobState::InfraFailed),
            "u".into(),
        );
        assert_eq!(s.state, StatusState::Error);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(50), Duration::from_secs(300));
    }
}
