//! The two cache calls of the runner service: RestoreCache (a header, then the archive)
//! and SaveCache (a header, then the bytes, hashed by the controller and kept only when
//! they match). The runner service's trait impl delegates here.

use std::pin::Pin;

use airlock_proto::v1 as pb;
use tokio_stream::{Stream, StreamExt};
use tonic::{Status, Streaming};

use crate::api::status::ApiError;
use crate::blobs::stream::{UploadPart, receive_claimed, send_blob};
use crate::ids::{JobId, LeaseToken};
use crate::scheduler::Scheduler;

/// What RestoreCache streams.
pub type RestoreCacheStream =
    Pin<Box<dyn Stream<Item = Result<pb::RestoreCacheResponse, Status>> + Send + 'static>>;

fn header(header: pb::CacheHeader) -> Result<pb::RestoreCacheResponse, Status> {
    Ok(pb::RestoreCacheResponse {
        kind: Some(pb::restore_cache_response::Kind::Header(header)),
    })
}

/// The header of the cache found for the request, then its archive.
pub(super) async fn restore(
    scheduler: &Scheduler,
    job: JobId,
    request: pb::RestoreCacheRequest,
) -> Result<RestoreCacheStream, Status> {
    let token = LeaseToken::parse("lease_token", &request.lease_token).map_err(ApiError::from)?;
    let (found, archive) = scheduler
        .restore_cache(job, token, &request.name, &request.key_sha256)
        .await?;
    let first = tokio_stream::once(header(found));
    let (Some(archive), Some(storage)) = (archive, scheduler.cache_storage()) else {
        return Ok(Box::pin(first));
    };
    let span = tracing::info_span!("restore_cache", job_id = %job, cache = %request.name);
    let chunks = send_blob(&storage.blobs, &archive, span).await?;
    Ok(Box::pin(first.chain(chunks.map(|chunk| {
        chunk.map(|c| pb::RestoreCacheResponse {
            kind: Some(pb::restore_cache_response::Kind::Data(c.data)),
        })
    }))))
}

/// Receives one archive after its header passed [`Scheduler::claim_cache_save`]; nothing is
/// kept unless the bytes hash to what the header claims.
pub(super) async fn save(
    scheduler: &Scheduler,
    header: &pb::SaveCacheHeader,
    stream: &mut Streaming<pb::SaveCacheRequest>,
) -> Result<(), Status> {
    use pb::save_cache_request::Kind;
    let claim = scheduler.claim_cache_save(header).await?;
    let storage = scheduler
        .cache_storage()
        .ok_or_else(|| ApiError::FailedPrecondition("this controller keeps no caches".into()))?;
    receive_claimed(
        &storage.blobs,
        stream,
        |m| match m.kind {
            Some(Kind::Data(data)) => UploadPart::Data(data),
            Some(Kind::Header(_)) => UploadPart::Header,
            None => UploadPart::Empty,
        },
        &format!("cache `{}`", claim.name),
        &claim.sha256,
        claim.size,
    )
    .await
    .inspect_err(
        |_| tracing::warn!(job_id = %claim.job, cache = %claim.name, "cache archive refused"),
    )?;
    tracing::info!(job_id = %claim.job, cache = %claim.name, archive = %claim.sha256, size = claim.size, "cache archive received");
    Ok(())
}
