//! Client streams that upload a file after a header (UploadOutput, SaveCache): the header,
//! then the file's bytes in chunks, fed from a task while the call runs.

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

/// Upload chunk size.
const CHUNK: usize = 256 * 1024;

/// A stream of `header`, then at most `size` bytes of `file` wrapped by `data`, and the task
/// feeding it (its error names `what`). Never more than `size` bytes are sent: exactly what
/// was hashed, even if the file grew.
pub(super) fn header_then_file<M: Send + 'static>(
    header: M,
    mut file: tokio::fs::File,
    size: u64,
    data: fn(Vec<u8>) -> M,
    what: String,
) -> (ReceiverStream<M>, JoinHandle<Result<(), String>>) {
    let (tx, rx) = mpsc::channel(4);
    let feeder = tokio::spawn(async move {
        if tx.send(header).await.is_err() {
            return Ok(());
        }
        let mut sent = 0u64;
        let mut buf = vec![0u8; CHUNK];
        while sent < size {
            let want = usize::try_from((size - sent).min(CHUNK as u64)).unwrap_or(CHUNK);
            let n = file
                .read(&mut buf[..want])
                .await
                .map_err(|e| format!("reading {what}: {e}"))?;
            if n == 0 {
                break;
            }
            sent += n as u64;
            if tx.send(data(buf[..n].to_vec())).await.is_err() {
                break;
            }
        }
        Ok(())
    });
    (ReceiverStream::new(rx), feeder)
}
