//! Backing a job's token broker with the controller: [`ControllerTokenSource`] asks
//! `RunnerService.MintBuildToken` with the job's lease token, and registers every token with
//! the job's [`EventSink`] (so a step echoing it leaves only `***` in the log) before the
//! broker hands it to the step. Tokens are never logged.

use std::time::Duration;

use airlock_proto::auth::AuthedChannel;
use airlock_proto::v1::MintBuildTokenRequest;
use airlock_proto::v1::runner_service_client::RunnerServiceClient;
use tonic::Code;

use crate::report::events::EventSink;
use crate::services::token_broker::{BrokeredToken, TokenRefusal, TokenRequest, TokenSource};

/// The lifetime bound the broker checks locally: the controller's default maximum. A
/// controller with a lower maximum refuses again (and the broker answers 400).
pub const BROKER_MAX_LIFETIME: Duration = Duration::from_secs(300);

/// The profile whose steps never get a token socket, whatever its profile file says.
pub const UNTRUSTED_PR_PROFILE: &str = "untrusted-pr";

/// A [`TokenSource`] that asks the controller, fenced by the job's lease.
#[derive(Clone)]
pub struct ControllerTokenSource {
    client: RunnerServiceClient<AuthedChannel>,
    job_id: String,
    lease_token: String,
    events: EventSink,
}

impl ControllerTokenSource {
    /// A source for job `job_id` holding lease `lease_token`; tokens are registered as
    /// secrets with `events`.
    pub fn new(
        client: RunnerServiceClient<AuthedChannel>,
        job_id: String,
        lease_token: String,
        events: EventSink,
    ) -> Self {
        Self {
            client,
            job_id,
            lease_token,
            events,
        }
    }
}

impl std::fmt::Debug for ControllerTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerTokenSource")
            .field("job_id", &self.job_id)
            .finish_non_exhaustive()
    }
}

/// What a refusal status from the controller means to the broker.
fn refusal(status: &tonic::Status) -> TokenRefusal {
    match status.code() {
        Code::PermissionDenied if status.message().contains("audience") => {
            TokenRefusal::UndeclaredAudience
        }
        Code::PermissionDenied => TokenRefusal::ProfileWithoutTokens,
        Code::FailedPrecondition => TokenRefusal::JobEnded,
        Code::InvalidArgument => TokenRefusal::Lifetime {
            max_secs: BROKER_MAX_LIFETIME.as_secs(),
        },
        code => TokenRefusal::Unavailable(format!("{code:?}: {}", status.message())),
    }
}

impl TokenSource for ControllerTokenSource {
    async fn token(&self, request: &TokenRequest) -> Result<BrokeredToken, TokenRefusal> {
        let req = MintBuildTokenRequest {
            job_id: self.job_id.clone(),
            lease_token: self.lease_token.clone(),
            audience: request.audience.clone(),
            lifetime_seconds: request
                .lifetime
                .map(|l| u32::try_from(l.as_secs()).unwrap_or(u32::MAX))
                .unwrap_or(0),
        };
        let response = self
            .client
            .clone()
            .mint_build_token(req)
            .await
            .map_err(|s| refusal(&s))?
            .into_inner();
        if response.token.is_empty() {
            return Err(TokenRefusal::Unavailable(
                "the controller answered without a token".into(),
            ));
        }
        // Redact before the step can see (and print) it.
        self.events.add_secret(&response.token).await;
        Ok(BrokeredToken::new(response.token, response.expires_at_unix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_broker_answers() {
        assert_eq!(
            refusal(&tonic::Status::permission_denied(
                "the audience is not declared in the job's [oidc] audiences"
            )),
            TokenRefusal::UndeclaredAudience
        );
        assert_eq!(
            refusal(&tonic::Status::permission_denied(
                "profile `x` does not allow"
            )),
            TokenRefusal::ProfileWithoutTokens
        );
        assert_eq!(
            refusal(&tonic::Status::failed_precondition("ended")),
            TokenRefusal::JobEnded
        );
        assert!(matches!(
            refusal(&tonic::Status::unavailable("down")),
            TokenRefusal::Unavailable(_)
        ));
    }
}
