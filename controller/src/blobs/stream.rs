//! Moving blobs over gRPC streams: reading a stream of chunks into the blob store, and sending
//! a stored blob as 64 KiB chunks from a task that carries the caller's span.

use airlock_attest::Sha256Digest;
use airlock_proto::v1 as pb;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use tracing::Instrument;

use crate::api::status::ApiError;
use crate::blobs::store::BlobStore;

/// Size of each chunk sent for a blob.
pub const CHUNK_SIZE: usize = 64 * 1024;

/// A server-streaming response of blob chunks.
pub type ChunkStream = ReceiverStream<Result<pb::BlobChunk, Status>>;

/// Writes every chunk of `stream` to the blob store; returns the digest and size.
pub async fn receive_blob(
    blobs: &BlobStore,
    stream: &mut Streaming<pb::BlobChunk>,
) -> Result<(Sha256Digest, u64), Status> {
    let mut writer = blobs.writer().await.map_err(ApiError::from)?;
    while let Some(chunk) = stream.message().await? {
        writer.write(&chunk.data).await.map_err(ApiError::from)?;
    }
    Ok(writer.commit().await.map_err(ApiError::from)?)
}

/// Streams the blob `digest` in [`CHUNK_SIZE`] chunks from a task in `span`.
pub async fn send_blob(
    blobs: &BlobStore,
    digest: &Sha256Digest,
    span: tracing::Span,
) -> Result<ChunkStream, Status> {
    let mut file = blobs.open_read(digest).await.map_err(ApiError::from)?;
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(
        async move {
            loop {
                let mut buf = vec![0u8; CHUNK_SIZE];
                let mut filled = 0;
                // Fill whole chunks (short reads happen) so every chunk but the last is 64 KiB.
                while filled < CHUNK_SIZE {
                    match file.read(&mut buf[filled..]).await {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) => {
                            tracing::error!(error = %e, "reading a blob failed");
                            let _ = tx
                                .send(Err(Status::internal(format!(
                                    "reading the blob failed: {e}"
                                ))))
                                .await;
                            return;
                        }
                    }
                }
                if filled == 0 {
                    return;
                }
                buf.truncate(filled);
                if tx.send(Ok(pb::BlobChunk { data: buf })).await.is_err() {
                    // The client went away.
                    return;
                }
                if filled < CHUNK_SIZE {
                    return;
                }
            }
        }
        .instrument(span),
    );
    Ok(ReceiverStream::new(rx))
}
