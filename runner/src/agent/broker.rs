//! Starting a job's token broker (`/run/airlock/oidc.sock`) when its spec and profile
//! allow build tokens.

use airlock_job::JobSpec;
use airlock_proto::v1::Lease;

use super::Runner;
use super::fs::mkdir_searchable;
use crate::profile::Profile;
use crate::report::events::EventSink;

impl Runner {
    /// Starts the attempt's token broker in `<room>/oidc/<broker_dir>` when the job declares
    /// `[oidc] audiences` and its profile allows build tokens; `None` otherwise (no socket is mounted,
    /// so an `untrusted-pr` step finds no `/run/airlock/oidc.sock`).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn start_token_broker(
        &self,
        lease: &Lease,
        events: &EventSink,
        spec: &JobSpec,
        profile: &Profile,
        host_uid: u32,
        host_gid: u32,
        broker_dir: &str,
    ) -> Result<
        Option<crate::services::token_broker::TokenBroker>,
        crate::services::token_broker::BrokerError,
    > {
        use crate::services::token_broker::{BrokerPolicy, SocketOwner, TokenBroker};
        let audiences = match &spec.oidc {
            Some(oidc) if !oidc.audiences.is_empty() => oidc.audiences.clone(),
            _ => return Ok(None),
        };
        let untrusted = crate::services::build_tokens::UNTRUSTED_PR_PROFILE;
        if !profile.build_tokens || profile.name == untrusted || spec.job.profile == untrusted {
            return Ok(None);
        }
        let policy = BrokerPolicy {
            job_id: lease.job_id.clone(),
            tokens_allowed: true,
            audiences,
            max_lifetime: crate::services::build_tokens::BROKER_MAX_LIFETIME,
        };
        let source = crate::services::build_tokens::ControllerTokenSource::new(
            self.client.clone(),
            lease.job_id.clone(),
            lease.lease_token.clone(),
            events.clone(),
        );
        // One directory per attempt under the room's short `oidc/` parent: the socket path
        // must fit in `sun_path` (108 bytes), which a path under the workspace may not.
        let parent = self.instance.oidc_dir();
        mkdir_searchable(&parent).map_err(|e| crate::services::token_broker::BrokerError::Io {
            path: parent.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let dir = parent.join(broker_dir);
        let owner = SocketOwner {
            uid: host_uid,
            gid: host_gid,
        };
        let broker = TokenBroker::start(&dir, policy, Some(owner), source).await?;
        events
            .system(
                0,
                "build tokens: /run/airlock/oidc.sock is available to the steps",
            )
            .await;
        Ok(Some(broker))
    }
}
