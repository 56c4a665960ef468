//! In-process notifications: "job X has new events" for watchers and "a job was queued" for
//! long-polling runners. They only say *that* something changed; the store holds *what*, so a
//! woken waiter re-queries and nothing is lost between a query and a wait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::ids::JobId;

/// Notification hub shared by the services.
#[derive(Debug)]
pub struct Hub {
    /// Per watched job: the last sequence number published. Entries exist only while someone
    /// watches the job.
    jobs: Mutex<HashMap<JobId, watch::Sender<u64>>>,
    /// Bumped whenever a job becomes QUEUED.
    queue: watch::Sender<u64>,
    /// Set once the server shuts down: long polls and watches end.
    shutdown: watch::Sender<bool>,
    /// Bumped whenever a cancel is requested for a leased job: heartbeat long polls re-check.
    cancels: watch::Sender<u64>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            jobs: Mutex::new(HashMap::new()),
            queue: watch::channel(0).0,
            shutdown: watch::channel(false).0,
            cancels: watch::channel(0).0,
        }
    }
}

/// A subscription to one job's events. Subscribe *before* querying the store; then
/// [`JobSubscription::changed`] returns once anything newer than that query was published.
#[derive(Debug)]
pub struct JobSubscription {
    hub: Arc<Hub>,
    job: JobId,
    rx: Option<watch::Receiver<u64>>,
}

impl Hub {
    fn jobs(&self) -> MutexGuard<'_, HashMap<JobId, watch::Sender<u64>>> {
        // The map stays consistent even if a holder panicked: every operation is one call.
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes to `job`'s events.
    pub fn subscribe(self: &Arc<Self>, job: JobId) -> JobSubscription {
        let rx = self
            .jobs()
            .entry(job)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        JobSubscription {
            hub: Arc::clone(self),
            job,
            rx: Some(rx),
        }
    }

    /// Announces that `job` has events up to `seq`.
    pub fn published(&self, job: JobId, seq: u64) {
        if let Some(tx) = self.jobs().get(&job) {
            tx.send_replace(seq);
        }
    }

    /// Announces that a job was queued.
    pub fn job_queued(&self) {
        self.queue.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Tells every waiter that the server is shutting down.
    pub fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    /// Resolves once [`Hub::shut_down`] was called (immediately if it already was).
    pub async fn shutting_down(&self) {
        let mut rx = self.shutdown.subscribe();
        // An error means the hub is gone, which also ends every waiter.
        let _ = rx.wait_for(|down| *down).await;
    }

    /// A receiver that changes whenever a job is queued. Take it *before* looking for work.
    pub fn queue_receiver(&self) -> watch::Receiver<u64> {
        self.queue.subscribe()
    }

    /// Announces that a cancel was requested for some leased job.
    pub fn cancel_requested(&self) {
        self.cancels.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that changes whenever a cancel is requested. Take it *before* checking.
    pub fn cancel_receiver(&self) -> watch::Receiver<u64> {
        self.cancels.subscribe()
    }
}

impl JobSubscription {
    /// Waits until the job publishes events after the last wait (or after subscribing).
    pub async fn changed(&mut self) {
        if let Some(rx) = &mut self.rx
            && rx.changed().await.is_ok()
        {
            return;
        }
        // The sender is gone (cannot happen while this subscription exists, but be safe):
        // subscribe again so the caller re-queries instead of spinning.
        self.rx = None;
        let rx = self
            .hub
            .jobs()
            .entry(self.job)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        self.rx = Some(rx);
    }
}

impl Drop for JobSubscription {
    fn drop(&mut self) {
        drop(self.rx.take());
        let mut jobs = self.hub.jobs();
        if jobs
            .get(&self.job)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            jobs.remove(&self.job);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[tokio::test]
    async fn subscription_wakes_and_cleans_up() {
        let hub = Arc::new(Hub::default());
        let job = JobId::new(Uuid::nil());
        let mut sub = hub.subscribe(job);
        hub.published(job, 3);
        sub.changed().await;
        drop(sub);
        assert!(hub.jobs().is_empty());
        // Publishing for an unwatched job is a no-op.
        hub.published(job, 4);
        assert!(hub.jobs().is_empty());
    }

    #[tokio::test]
    async fn queue_receiver_sees_new_jobs() {
        let hub = Hub::default();
        let mut rx = hub.queue_receiver();
        hub.job_queued();
        rx.changed().await.unwrap();
    }
}
