//! Moving blobs over gRPC streams: reading a stream of chunks into the blob store (also the
//! data after an upload's header, checked against it), and sending
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

/// One message of a header-then-data upload (UploadOutput, SaveCache), after its header.
#[derive(Debug)]
pub enum UploadPart {
    /// Bytes of the blob.
    Data(Vec<u8>),
    /// A second header.
    Header,
    /// A message with neither.
    Empty,
}

/// Receives the data messages that follow an upload's header into `blobs`, refusing more
/// than the `size` bytes the header claims, and keeps the blob only if it is exactly `size`
/// bytes hashing to `sha256`; returns its digest and size. `what` names the upload in
/// errors (``output `a` ``, ``cache `c` ``).
pub async fn receive_claimed<M>(
    blobs: &BlobStore,
    stream: &mut Streaming<M>,
    part: impl Fn(M) -> UploadPart,
    what: &str,
    sha256: &Sha256Digest,
    size: u64,
) -> Result<(Sha256Digest, u64), Status> {
    let mut writer = blobs.writer().await.map_err(ApiError::from)?;
    while let Some(message) = stream.message().await? {
        match part(message) {
            UploadPart::Data(data) => {
                writer.write(&data).await.map_err(ApiError::from)?;
                if writer.size() > size {
                    return Err(ApiError::DataLoss(format!(
                        "{what}: more than the {size} bytes the header announced; nothing was \
                         recorded"
                    ))
                    .into());
                }
            }
            UploadPart::Header => {
                return Err(ApiError::invalid("header", "sent twice; send it only first").into());
            }
            UploadPart::Empty => {
                return Err(ApiError::invalid("kind", "an empty message").into());
            }
        }
    }
    let finished = writer.finish().await.map_err(ApiError::from)?;
    if finished.digest() != sha256 || finished.size() != size {
        tracing::warn!(upload = what, "upload digest mismatch");
        return Err(ApiError::DataLoss(format!(
            "{what}: received {} bytes with sha256 {}, but the header claims {size} bytes \
             with sha256 {sha256}; nothing was recorded",
            finished.size(),
            finished.digest(),
        ))
        .into());
    }
    Ok(finished.commit().await.map_err(ApiError::from)?)
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
