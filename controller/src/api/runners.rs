//! `airlock.v1.RunnerService`: what runners call. A thin adapter over [`Scheduler`]; every
//! call first passes [`RunnerAuth`] (registration secret, runner token, job token).

use std::sync::Arc;
use std::time::Duration;

use airlock_proto::v1 as pb;
use airlock_proto::v1::runner_service_server::RunnerService;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::api::status::ApiError;
use crate::auth::runners::RunnerAuth;
use crate::blobs::stream::{ChunkStream, UploadPart, receive_claimed, send_blob};
use crate::ids::{JobId, LeaseToken, RunnerId};
use crate::scheduler::{RunnerCompletion, Scheduler};

/// The runner service.
#[derive(Debug, Clone)]
pub struct RunnerApi {
    scheduler: Arc<Scheduler>,
    auth: RunnerAuth,
}

impl RunnerApi {
    /// A runner service over `scheduler`, admitting callers that `auth` accepts.
    pub fn new(scheduler: Arc<Scheduler>, auth: RunnerAuth) -> Self {
        Self { scheduler, auth }
    }

    /// Authenticates a call about `job_id`: the runner token, then the job token for that
    /// job. Returns the parsed job id.
    async fn job_call(
        &self,
        metadata: &MetadataMap,
        job_id: &str,
        call: &'static str,
    ) -> Result<JobId, Status> {
        let caller = self.auth.runner(metadata, call).await?;
        let job = JobId::parse("job_id", job_id)?;
        self.auth.job(metadata, &caller, job, call).await?;
        Ok(job)
    }
}

fn lease_token(lease_token: &str) -> Result<LeaseToken, ApiError> {
    Ok(LeaseToken::parse("lease_token", lease_token)?)
}

#[tonic::async_trait]
impl RunnerService for RunnerApi {
    async fn register_runner(
        &self,
        request: Request<pb::RegisterRunnerRequest>,
    ) -> Result<Response<pb::RegisterRunnerResponse>, Status> {
        let registration = self.auth.registration(request.metadata()).await?;
        let r = request.into_inner();
        let id = self
            .scheduler
            .register_runner(r.name, r.labels, r.version, registration.clone())
            .await?;
        let issued = self.auth.issue_runner_token(id, &registration).await?;
        Ok(Response::new(pb::RegisterRunnerResponse {
            runner_id: id.to_string(),
            runner_token: issued.token.expose().to_owned(),
            runner_token_expires_at_unix: issued.expires_at_unix,
        }))
    }

    async fn renew_runner_token(
        &self,
        request: Request<pb::RenewRunnerTokenRequest>,
    ) -> Result<Response<pb::RenewRunnerTokenResponse>, Status> {
        const CALL: &str = "RenewRunnerToken";
        let caller = self.auth.runner(request.metadata(), CALL).await?;
        let runner = RunnerId::parse("runner_id", &request.get_ref().runner_id)?;
        RunnerAuth::same_runner(&caller, runner, CALL)?;
        let issued = self
            .auth
            .issue_runner_token(runner, &caller.registration)
            .await?;
        Ok(Response::new(pb::RenewRunnerTokenResponse {
            runner_token: issued.token.expose().to_owned(),
            runner_token_expires_at_unix: issued.expires_at_unix,
        }))
    }

    async fn acquire_job(
        &self,
        request: Request<pb::AcquireJobRequest>,
    ) -> Result<Response<pb::AcquireJobResponse>, Status> {
        const CALL: &str = "AcquireJob";
        let caller = self.auth.runner(request.metadata(), CALL).await?;
        let r = request.into_inner();
        let runner = RunnerId::parse("runner_id", &r.runner_id)?;
        RunnerAuth::same_runner(&caller, runner, CALL)?;
        let wait = Duration::from_millis(u64::from(r.wait_ms));
        let (job_token, grant) = self.auth.new_job_token()?;
        let mut lease = self
            .scheduler
            .acquire(runner, wait, &grant, &caller.token_sha256)
            .await?;
        if let Some(lease) = &mut lease {
            lease.job_token = job_token.expose().to_owned();
        }
        Ok(Response::new(pb::AcquireJobResponse { lease }))
    }

    async fn report_events(
        &self,
        request: Request<pb::ReportEventsRequest>,
    ) -> Result<Response<pb::ReportEventsResponse>, Status> {
        let job = self
            .job_call(
                request.metadata(),
                &request.get_ref().job_id,
                "ReportEvents",
            )
            .await?;
        let r = request.into_inner();
        let token = lease_token(&r.lease_token)?;
        let cancel_requested = self.scheduler.report(job, token, r.events).await?;
        Ok(Response::new(pb::ReportEventsResponse { cancel_requested }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let job = self
            .job_call(request.metadata(), &request.get_ref().job_id, "Heartbeat")
            .await?;
        let r = request.into_inner();
        let token = lease_token(&r.lease_token)?;
        let wait = Duration::from_millis(u64::from(r.wait_ms));
        let (cancel_requested, ttl) = self.scheduler.heartbeat(job, token, wait).await?;
        Ok(Response::new(pb::HeartbeatResponse {
            cancel_requested,
            lease_ttl_ms: u32::try_from(ttl.as_millis()).unwrap_or(u32::MAX),
        }))
    }

    async fn mint_build_token(
        &self,
        request: Request<pb::MintBuildTokenRequest>,
    ) -> Result<Response<pb::MintBuildTokenResponse>, Status> {
        let job = self
            .job_call(
                request.metadata(),
                &request.get_ref().job_id,
                "MintBuildToken",
            )
            .await?;
        let r = request.into_inner();
        let token = lease_token(&r.lease_token)?;
        let lifetime =
            (r.lifetime_seconds > 0).then(|| Duration::from_secs(u64::from(r.lifetime_seconds)));
        let minted = self
            .scheduler
            .mint_build_token(
                job,
                token,
                crate::oidc::MintRequest {
                    audience: r.audience,
                    lifetime,
                },
            )
            .await?;
        Ok(Response::new(pb::MintBuildTokenResponse {
            token: minted.value().to_owned(),
            expires_at_unix: minted.expires_at(),
        }))
    }

    type DownloadSourceStream = ChunkStream;

    async fn download_source(
        &self,
        request: Request<pb::DownloadSourceRequest>,
    ) -> Result<Response<Self::DownloadSourceStream>, Status> {
        let job = self
            .job_call(
                request.metadata(),
                &request.get_ref().job_id,
                "DownloadSource",
            )
            .await?;
        let token = lease_token(&request.get_ref().lease_token)?;
        let digest = self.scheduler.source_of(job, token).await?;
        let span = tracing::info_span!("download_source", job_id = %job);
        let stream = send_blob(self.scheduler.blobs(), &digest, span).await?;
        Ok(Response::new(stream))
    }

    async fn upload_output(
        &self,
        request: Request<Streaming<pb::UploadOutputRequest>>,
    ) -> Result<Response<pb::UploadOutputResponse>, Status> {
        use pb::upload_output_request::Kind;
        const CALL: &str = "UploadOutput";
        // The runner token is checked before any message is read; the job token once the
        // header names the job.
        let caller = self.auth.runner(request.metadata(), CALL).await?;
        let metadata = request.metadata().clone();
        let mut stream = request.into_inner();
        let header = match stream.message().await? {
            Some(pb::UploadOutputRequest {
                kind: Some(Kind::Header(header)),
            }) => header,
            _ => {
                return Err(ApiError::invalid(
                    "header",
                    "the first message of UploadOutput must be an OutputHeader",
                )
                .into());
            }
        };
        let job = JobId::parse("header.job_id", &header.job_id)?;
        self.auth.job(&metadata, &caller, job, CALL).await?;
        let claim = self.scheduler.claim_output(&header).await?;
        let (digest, size) = receive_claimed(
            self.scheduler.blobs(),
            &mut stream,
            |m| match m.kind {
                Some(Kind::Data(data)) => UploadPart::Data(data),
                Some(Kind::Header(_)) => UploadPart::Header,
                None => UploadPart::Empty,
            },
            &format!("output `{}`", claim.path),
            &claim.sha256,
            claim.size,
        )
        .await
        .inspect_err(
            |_| tracing::warn!(job_id = %claim.job, path = %claim.path, "output refused"),
        )?;
        self.scheduler.record_output(&claim, digest, size).await?;
        Ok(Response::new(pb::UploadOutputResponse {
            sha256: digest.hex(),
            size,
        }))
    }

    type RestoreCacheStream = crate::api::caches::RestoreCacheStream;

    async fn restore_cache(
        &self,
        request: Request<pb::RestoreCacheRequest>,
    ) -> Result<Response<Self::RestoreCacheStream>, Status> {
        let job = self
            .job_call(
                request.metadata(),
                &request.get_ref().job_id,
                "RestoreCache",
            )
            .await?;
        let stream =
            crate::api::caches::restore(&self.scheduler, job, request.into_inner()).await?;
        Ok(Response::new(stream))
    }

    async fn save_cache(
        &self,
        request: Request<Streaming<pb::SaveCacheRequest>>,
    ) -> Result<Response<pb::SaveCacheResponse>, Status> {
        const CALL: &str = "SaveCache";
        // As for outputs: the runner token before any message, the job token once the
        // header names the job.
        let caller = self.auth.runner(request.metadata(), CALL).await?;
        let metadata = request.metadata().clone();
        let mut stream = request.into_inner();
        let header = match stream.message().await? {
            Some(pb::SaveCacheRequest {
                kind: Some(pb::save_cache_request::Kind::Header(header)),
            }) => header,
            _ => {
                return Err(ApiError::invalid(
                    "header",
                    "the first message of SaveCache must be a SaveCacheHeader",
                )
                .into());
            }
        };
        let job = JobId::parse("header.job_id", &header.job_id)?;
        self.auth.job(&metadata, &caller, job, CALL).await?;
        crate::api::caches::save(&self.scheduler, &header, &mut stream).await?;
        Ok(Response::new(pb::SaveCacheResponse {}))
    }

    async fn complete_job(
        &self,
        request: Request<pb::CompleteJobRequest>,
    ) -> Result<Response<pb::CompleteJobResponse>, Status> {
        let job = self
            .job_call(request.metadata(), &request.get_ref().job_id, "CompleteJob")
            .await?;
        let r = request.into_inner();
        let token = lease_token(&r.lease_token)?;
        let outcome = pb::Outcome::try_from(r.outcome)
            .map_err(|_| ApiError::invalid("outcome", format!("unknown value {}", r.outcome)))?;
        let state = self
            .scheduler
            .complete(
                job,
                token,
                RunnerCompletion {
                    outcome,
                    message: r.message,
                    exit_code: r.exit_code,
                    outputs: r.outputs,
                    image_manifest_sha256: r.image_manifest_sha256,
                    image_layers_sha256: r.image_layers_sha256,
                    dependencies: r.dependencies,
                    restored_caches: r.restored_caches,
                    saved_caches: r.saved_caches,
                    image_contents: r.image_contents,
                    vulnerabilities: r.vulnerabilities,
                    vulnerability_gate_failed: r.vulnerability_gate_failed,
                    trace: r.trace,
                },
            )
            .await?;
        Ok(Response::new(pb::CompleteJobResponse {
            state: state.to_proto_i32(),
        }))
    }
}
