//! Lease renewal: while a job runs, a task long-polls `Heartbeat` so the lease stays alive
//! and a cancel request reaches the job within moments.

use std::sync::Arc;
use std::time::Duration;

use airlock_proto::auth::AuthedChannel;
use airlock_proto::v1::HeartbeatRequest;
use airlock_proto::v1::runner_service_client::RunnerServiceClient;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::control::credentials::Credentials;

/// The longest a heartbeat long poll is asked to wait.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// How long each heartbeat may be held: a third of the TTL (so two may fail before the
/// lease lapses), at most [`MAX_WAIT`], at least 50 ms.
pub fn heartbeat_wait(ttl: Duration) -> Duration {
    (ttl / 3).clamp(Duration::from_millis(50), MAX_WAIT)
}

/// Renews the lease until aborted. Sets `cancel` when the controller asks the job to stop,
/// and also when the lease or its job token is gone (expired and re-queued, timed out,
/// completed elsewhere):
/// the job must then stop, and its reports will be refused anyway. Transport errors are
/// retried with backoff while the lease may still be alive. A refused runner token has the
/// runner register again at once (so a revoked registration is noticed within one heartbeat,
/// and the job's guard then cancels it).
pub async fn keep_alive(
    creds: Credentials,
    mut client: RunnerServiceClient<AuthedChannel>,
    job_id: String,
    lease_token: String,
    ttl: Duration,
    cancel: Arc<watch::Sender<bool>>,
) {
    // An older controller sends no TTL: assume the default 30 s.
    let ttl = if ttl.is_zero() {
        Duration::from_secs(30)
    } else {
        ttl
    };
    let wait = heartbeat_wait(ttl);
    let wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
    let mut backoff = Duration::from_millis(100);
    loop {
        let generation = creds.generation();
        let request = HeartbeatRequest {
            job_id: job_id.clone(),
            lease_token: lease_token.clone(),
            wait_ms,
        };
        match client.heartbeat(request).await {
            Ok(resp) => {
                backoff = Duration::from_millis(100);
                if resp.into_inner().cancel_requested {
                    if !*cancel.borrow() {
                        info!("the controller asked to cancel the job");
                        let _ = cancel.send(true);
                    }
                    // Keep the lease alive while the steps are being stopped, without spinning.
                    tokio::time::sleep(wait).await;
                }
            }
            // PERMISSION_DENIED: the job token is no longer valid for this job (expired, or
            // the job is no longer this runner's): nothing it reports would be accepted.
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::FailedPrecondition | tonic::Code::PermissionDenied
                ) =>
            {
                warn!(%status, "the lease is gone; stopping the job");
                let _ = cancel.send(true);
                return;
            }
            Err(status) if status.code() == tonic::Code::Unauthenticated => {
                warn!(%status, "the controller refused the runner token; registering again");
                if let Err(e) = creds.register_again(generation).await {
                    if e.is_fatal() {
                        let _ = cancel.send(true);
                        return;
                    }
                    warn!(error = %e, "registering again failed");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(wait);
            }
            Err(status) => {
                warn!(%status, "heartbeat failed; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(wait);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_is_a_third_of_the_ttl_within_bounds() {
        assert_eq!(
            heartbeat_wait(Duration::from_secs(3)),
            Duration::from_secs(1)
        );
        assert_eq!(heartbeat_wait(Duration::from_secs(60)), MAX_WAIT);
        assert_eq!(heartbeat_wait(Duration::ZERO), Duration::from_millis(50));
    }
}
