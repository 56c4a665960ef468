//! Starting a job's token broker (`/run/airlock/oidc.sock`) when its spec and profile
//! allow build tokens.

use std::path::Path;

use airlock_job::JobSpec;
use airlock_proto::v1::Lease;

use super::Runner;
use super::fs::mkdir_searchable;
use crate::events::EventSink;
use crate::profile::Profile;

impl Runner {
    /// Starts the job's token broker under `<state_dir>/oidc` when the job declares `[oidc]
    /// audiences` and its profile allows build tokens; `None` otherwise (no socket is mounted,
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
    ) -> Result<Option<crate::token_broker::TokenBroker>, crate::token_broker::BrokerError> {
        use crate::token_broker::{BrokerPolicy, SocketOwner, TokenBroker};
        let audiences = match &spec.oidc {
            Some(oidc) if !oidc.audiences.is_empty() => oidc.audiences.clone(),
            _ => return Ok(None),
        };
        let untrusted = crate::build_tokens::UNTRUSTED_PR_PROFILE;
        if !profile.build_tokens || profile.name == untrusted || spec.job.profile == untrusted {
            return Ok(None);
        }
        let policy = BrokerPolicy {
            job_id: lease.job_id.clone(),
            tokens_allowed: true,
            audiences,
            max_lifetime: crate::build_tokens::BROKER_MAX_LIFETIME,
        };
        let source = crate::build_tokens::ControllerTokenSource::new(
            self.client.clone(),
            lease.job_id.clone(),
            lease.lease_token.clone(),
            events.clone(),
        );
        // A short parent: the socket path must fit in `sun_path` (108 bytes), which a path
        // under the job directory may not.
        let parent = self.cfg.state_dir.join("oidc");
        let io = |path: &Path| {
            let path = path.to_owned();
            move |e: std::io::Error| crate::token_broker::BrokerError::Io { path, source: e }
        };
        mkdir_searchable(&parent).map_err(|e| crate::token_broker::BrokerError::Io {
            path: parent.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        // A previous attempt of this job that ended early (its broker dropped) leaves its
        // directory behind.
        let stale = parent.join(&lease.job_id);
        match std::fs::remove_dir_all(&stale) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&stale)(e)),
            _ => {}
        }
        let owner = SocketOwner {
            uid: host_uid,
            gid: host_gid,
        };
        let broker = TokenBroker::start(&parent, policy, Some(owner), source).await?;
        events
            .system(
                0,
                "build tokens: /run/airlock/oidc.sock is available to the steps",
            )
            .await;
        Ok(Some(broker))
    }
}
