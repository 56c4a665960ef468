//! Build-token minting for a running job (`[oidc]`).

use airlock_attest::Sha256Digest;
use airlock_job::JobSpec;

use super::Scheduler;
use crate::api::status::ApiError;
use crate::clock::from_unix_ms;
use crate::ids::{JobId, LeaseToken};
use crate::oidc::{JobFacts, JobTokenContext, MintError, MintRequest, MintedToken};
use crate::provenance::statement::builder_id;

impl Scheduler {
    /// Mints a build token for the running job `job` (only its current attempt, fenced by
    /// `token`). Every claim comes from the job's record; the request only picks an audience
    /// the job declared and a lifetime. The token is never logged.
    pub async fn mint_build_token(
        &self,
        job: JobId,
        token: LeaseToken,
        request: MintRequest,
    ) -> Result<MintedToken, ApiError> {
        let Some(minter) = &self.minter else {
            return Err(ApiError::FailedPrecondition(
                "this controller issues no build tokens (no [oidc] in controller.toml)".into(),
            ));
        };
        let record = self.fenced(self.store.leased_job(job, token).await)?;
        if !record.state.is_leased() {
            return Err(ApiError::FailedPrecondition(format!(
                "job {job} is {}; no build tokens are issued for it",
                record.state.as_str()
            )));
        }
        let spec = JobSpec::from_json(&record.spec_json).map_err(|e| {
            ApiError::FailedPrecondition(format!(
                "the stored spec of job {job} does not parse: {e}"
            ))
        })?;
        let started = from_unix_ms(record.leased_ms.unwrap_or(record.created_ms));
        let facts = JobFacts {
            job_id: job.to_string(),
            runner_id: record.runner_id.map(|r| r.to_string()).unwrap_or_default(),
            builder_id: builder_id(&self.issuer, self.mode, &spec.job.profile),
            // `[oidc] build_token_profiles` decides (never `untrusted-pr`; the minter refuses
            // that again); the runner's profile file may still withhold its broker.
            profile_allows_tokens: minter.settings().allows_build_tokens(&spec.job.profile),
            verified_ref: spec
                .trigger
                .as_ref()
                .and_then(crate::oidc::job_context::verified_ref),
            job_definition_sha256: Sha256Digest::of(&record.spec_json),
            ended: record.state.is_terminal(),
            deadline: started + spec.timeout(),
        };
        let context = JobTokenContext::for_job(&spec, facts).map_err(|e| {
            ApiError::FailedPrecondition(format!("job {job} cannot get build tokens: {e}"))
        })?;
        let audience_declared = context.audiences.contains(&request.audience);
        match minter.mint(&context, &request) {
            Ok(minted) => {
                tracing::info!(job_id = %job, jti = minted.jti(), "minted a build token");
                Ok(minted)
            }
            Err(e) => {
                if audience_declared {
                    tracing::warn!(job_id = %job, audience = %request.audience, error = %e, "refused a build token");
                } else {
                    tracing::warn!(job_id = %job, error = %e, "refused a build token");
                }
                Err(match e {
                    MintError::ProfileWithoutTokens { .. } | MintError::UndeclaredAudience => {
                        ApiError::PermissionDenied(e.to_string())
                    }
                    MintError::JobEnded => ApiError::FailedPrecondition(e.to_string()),
                    MintError::Lifetime { .. } => {
                        ApiError::invalid("lifetime_seconds", e.to_string())
                    }
                    MintError::NoSigningKey | MintError::Sign(_) => {
                        ApiError::FailedPrecondition(e.to_string())
                    }
                })
            }
        }
    }
}
