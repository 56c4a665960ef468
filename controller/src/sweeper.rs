//! The background task that ends lapsed leases and attempts past their deadline.

use std::sync::Arc;

use crate::scheduler::Scheduler;

/// Sweeps every `scheduling.sweep_interval` until the hub shuts down. Errors are logged and
/// the next sweep tries again. Safe with several replicas on one database: each sweep is one
/// transaction that only touches leases that lapsed.
pub async fn run(scheduler: Arc<Scheduler>) {
    let interval = scheduler.scheduling().sweep_interval.0;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = scheduler.hub().shutting_down() => return,
        }
        if let Err(e) = scheduler.sweep().await {
            tracing::error!(error = %e, "lease sweep failed; retrying at the next interval");
        }
    }
}
