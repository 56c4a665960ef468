//! `airlock.v1.JobService`: what clients call. A thin adapter over [`Scheduler`] that
//! authorizes each call by the client [`crate::auth::clients::ClientAuth`] attached: reads need
//! any role; uploads, submissions and cancellations a submit role (or `admin`) whose profiles
//! include the job's.

use std::sync::Arc;

use airlock_proto::v1 as pb;
use airlock_proto::v1::job_service_server::JobService;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::api::status::ApiError;
use crate::auth::clients::client_of;
use crate::blobs::stream::{ChunkStream, receive_blob, send_blob};
use crate::ids::JobId;
use crate::scheduler::Scheduler;

/// Events read from the store per query while replaying.
const WATCH_PAGE: u32 = 256;

/// How often a following watch re-queries the store without a local notification.
const WATCH_REPOLL: std::time::Duration = std::time::Duration::from_millis(500);

/// The job service.
#[derive(Debug, Clone)]
pub struct JobApi {
    scheduler: Arc<Scheduler>,
    signers: Arc<crate::auth::job_signatures::JobSigners>,
}

impl JobApi {
    /// A job service over `scheduler`, accepting job signatures of `signers`.
    pub fn new(
        scheduler: Arc<Scheduler>,
        signers: Arc<crate::auth::job_signatures::JobSigners>,
    ) -> Self {
        Self { scheduler, signers }
    }
}

/// True for a StateChange event into a terminal state.
fn is_terminal_event(event: &pb::JobEvent) -> bool {
    match &event.kind {
        Some(pb::job_event::Kind::State(change)) => matches!(
            pb::JobState::try_from(change.state),
            Ok(pb::JobState::Succeeded
                | pb::JobState::Failed
                | pb::JobState::Cancelled
                | pb::JobState::TimedOut
                | pb::JobState::InfraFailed)
        ),
        _ => false,
    }
}

/// Replays the job's events after `after_seq`; with `follow`, then follows new ones until the
/// terminal state change has been sent (or the client goes away).
async fn watch(
    scheduler: Arc<Scheduler>,
    job: JobId,
    after_seq: u64,
    follow: bool,
    tx: mpsc::Sender<Result<pb::JobEvent, Status>>,
) {
    // Subscribe before the first query: anything published later wakes the loop.
    let mut subscription = scheduler.hub().subscribe(job);
    let mut last = after_seq;
    loop {
        let events = match scheduler.store().events_after(job, last, WATCH_PAGE).await {
            Ok(events) => events,
            Err(e) => {
                let _ = tx.send(Err(ApiError::from(e).into())).await;
                return;
            }
        };
        let count = events.len();
        for event in events {
            last = event.seq;
            let terminal = is_terminal_event(&event);
            if tx.send(Ok(event)).await.is_err() || terminal {
                return;
            }
        }
        if count == usize::try_from(WATCH_PAGE).unwrap_or(usize::MAX) {
            continue;
        }
        if !follow {
            return;
        }
        if count == 0 {
            // Nothing newer: if the job already ended, `after_seq` was past its last event.
            match scheduler.store().job(job).await {
                Ok(record) if record.state.is_terminal() => return,
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(Err(ApiError::from(e).into())).await;
                    return;
                }
            }
        }
        tokio::select! {
            () = subscription.changed() => {}
            // Events written through another replica (shared PostgreSQL) reach no local
            // subscription: re-query on a short timer too.
            () = tokio::time::sleep(WATCH_REPOLL) => {}
            () = tx.closed() => return,
            () = scheduler.hub().shutting_down() => {
                let _ = tx.send(Err(Status::unavailable(
                    "the controller is shutting down; watch again with after_seq set to the last \
                     seq received",
                ))).await;
                return;
            }
        }
    }
}

#[tonic::async_trait]
impl JobService for JobApi {
    async fn upload_source(
        &self,
        request: Request<Streaming<pb::BlobChunk>>,
    ) -> Result<Response<pb::UploadSourceResponse>, Status> {
        let client = client_of(&request)?;
        client.require_submit_role("UploadSource")?;
        let mut stream = request.into_inner();
        let (digest, size) = receive_blob(self.scheduler.blobs(), &mut stream).await?;
        tracing::info!(sha256 = %digest, size, client = %client.name, "source uploaded");
        Ok(Response::new(pb::UploadSourceResponse {
            sha256: digest.hex(),
            size,
        }))
    }

    async fn submit_job(
        &self,
        request: Request<pb::SubmitJobRequest>,
    ) -> Result<Response<pb::SubmitJobResponse>, Status> {
        let client = client_of(&request)?;
        client.require_submit_role("SubmitJob")?;
        let r = request.into_inner();
        // The profile decides who may submit; parsing here is cheap and the scheduler
        // parses (and reports errors) the same way.
        let spec = airlock_job::JobSpec::from_json(&r.spec_json)
            .map_err(|e| ApiError::invalid("spec_json", e.to_string()))?;
        client.require_submit(&spec.job.profile)?;
        if spec.trigger.is_some() {
            return Err(ApiError::invalid(
                "spec_json.trigger",
                "is set only by the controller's forge webhooks; remove it".to_owned(),
            )
            .into());
        }
        let signer = self
            .signers
            .check(&spec.job.profile, &r.spec_json, &r.spec_signature)?;
        let (id, existing) = self
            .scheduler
            .submit(
                r.spec_json,
                &r.idempotency_key,
                r.priority,
                &crate::policy::ClientInput::of(&client),
                signer.as_deref(),
            )
            .await?;
        tracing::info!(job_id = %id, client = %client.name, profile = %spec.job.profile, existing, signer = signer.as_deref().unwrap_or(""), "job submitted");
        Ok(Response::new(pb::SubmitJobResponse {
            job_id: id.to_string(),
            existing,
        }))
    }

    async fn cancel_job(
        &self,
        request: Request<pb::CancelJobRequest>,
    ) -> Result<Response<pb::CancelJobResponse>, Status> {
        let client = client_of(&request)?;
        // A read-only client learns nothing about the job, not even whether it exists.
        client.require_submit_role("CancelJob")?;
        let r = request.into_inner();
        let id = JobId::parse("job_id", &r.job_id)?;
        let profile = self.scheduler.job(id).await?.profile;
        client.require_cancel(&profile)?;
        let state = self.scheduler.cancel(id, &r.reason).await?;
        tracing::info!(job_id = %id, client = %client.name, "cancel requested by client");
        Ok(Response::new(pb::CancelJobResponse {
            state: state.to_proto_i32(),
        }))
    }

    async fn get_job(
        &self,
        request: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        client_of(&request)?;
        let id = JobId::parse("job_id", &request.into_inner().job_id)?;
        Ok(Response::new(self.scheduler.job_view(id).await?))
    }

    type WatchJobStream = ReceiverStream<Result<pb::JobEvent, Status>>;

    async fn watch_job(
        &self,
        request: Request<pb::WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        client_of(&request)?;
        let request = request.into_inner();
        let id = JobId::parse("job_id", &request.job_id)?;
        self.scheduler.job(id).await?;
        let (tx, rx) = mpsc::channel(64);
        let span = tracing::info_span!("watch_job", job_id = %id);
        tokio::spawn(
            watch(
                Arc::clone(&self.scheduler),
                id,
                request.after_seq,
                request.follow,
                tx,
            )
            .instrument(span),
        );
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type GetOutputStream = ChunkStream;

    async fn get_output(
        &self,
        request: Request<pb::GetOutputRequest>,
    ) -> Result<Response<Self::GetOutputStream>, Status> {
        client_of(&request)?;
        let request = request.into_inner();
        let id = JobId::parse("job_id", &request.job_id)?;
        let output = self.scheduler.output(id, &request.path).await?;
        let span = tracing::info_span!("get_output", job_id = %id, path = %output.path);
        let stream = send_blob(self.scheduler.blobs(), &output.sha256, span).await?;
        Ok(Response::new(stream))
    }

    async fn get_provenance(
        &self,
        request: Request<pb::GetProvenanceRequest>,
    ) -> Result<Response<pb::ProvenanceDocuments>, Status> {
        client_of(&request)?;
        let id = JobId::parse("job_id", &request.into_inner().job_id)?;
        Ok(Response::new(self.scheduler.provenance(id).await?))
    }
}
