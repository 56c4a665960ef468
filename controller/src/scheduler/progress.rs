//! A job in flight: runner events, heartbeats (lease renewal) and cancel requests.

use std::time::Duration;

use airlock_proto::v1 as pb;

use super::{ACQUIRE_REPOLL, Scheduler, now_ms};
use crate::api::status::ApiError;
use crate::ids::{JobId, LeaseToken};
use crate::state::JobState;
use crate::store::EventKind;

impl Scheduler {
    /// Asks a job to stop (see `CancelJob`). Returns the state after the request.
    pub async fn cancel(&self, id: JobId, reason: &str) -> Result<JobState, ApiError> {
        let reason = if reason.trim().is_empty() {
            "cancelled on request".to_owned()
        } else {
            format!("cancelled on request: {}", reason.trim())
        };
        let now = now_ms(&*self.clock);
        let (state, seq) = self.store.request_cancel(id, now, &reason).await?;
        if let Some(seq) = seq {
            self.hub.published(id, seq);
            let created = self.store.job(id).await?.created_ms;
            self.finished(created, state, now);
        }
        if state.is_leased() {
            self.hub.cancel_requested();
        }
        tracing::info!(job_id = %id, %state, "cancel requested");
        Ok(state)
    }

    /// Renews a lease and, as a long poll, waits up to `wait` (capped at the configured
    /// heartbeat wait) for a cancel request. Returns whether a cancel was requested and the
    /// lease TTL.
    pub async fn heartbeat(
        &self,
        job: JobId,
        token: LeaseToken,
        wait: Duration,
    ) -> Result<(bool, Duration), ApiError> {
        let ttl = self.scheduling.lease_ttl.0;
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let mut cancels = self.hub.cancel_receiver();
        let cancel = self.fenced(
            self.store
                .renew_lease(job, token, now_ms(&*self.clock), ttl_ms)
                .await,
        )?;
        if cancel {
            return Ok((true, ttl));
        }
        let deadline = tokio::time::Instant::now() + wait.min(self.scheduling.heartbeat_wait.0);
        loop {
            tokio::select! {
                r = tokio::time::timeout_at(deadline, cancels.changed()) => match r {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) => return Ok((false, ttl)),
                },
                () = tokio::time::sleep(ACQUIRE_REPOLL) => {}
                () = self.hub.shutting_down() => return Ok((false, ttl)),
            }
            if self.fenced(self.store.cancel_requested(job, token).await)? {
                return Ok((true, ttl));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok((false, ttl));
            }
        }
    }

    /// Records runner events under a lease; the first report marks the job RUNNING. Returns
    /// whether a cancel was requested.
    pub async fn report(
        &self,
        job: JobId,
        token: LeaseToken,
        events: Vec<pb::RunnerEvent>,
    ) -> Result<bool, ApiError> {
        let kinds = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| match e.kind {
                Some(pb::runner_event::Kind::Step(step)) => Ok(EventKind::Step(step)),
                Some(pb::runner_event::Kind::Log(log)) => Ok(EventKind::Log(log)),
                None => Err(ApiError::invalid(
                    format!("events[{i}]"),
                    "has neither `step` nor `log`",
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let reported = self.fenced(
            self.store
                .report(job, token, now_ms(&*self.clock), kinds)
                .await,
        )?;
        if let Some(ms) = reported.started_after_ms {
            self.metrics.start_latency.observe_ms(ms);
        }
        self.hub.published(job, reported.seq);
        Ok(reported.cancel_requested)
    }
}
