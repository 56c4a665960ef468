//! The step's output as it arrives: chunks of stdout and stderr, and the pump that reads them.

use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::sync::mpsc;

/// Which stream a chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// The step's standard output.
    Stdout,
    /// The step's standard error (also carries `airlock-sandbox:` diagnostics).
    Stderr,
}

/// A piece of a step's output, in the order it was read from one stream. Chunks carry raw
/// bytes: nothing guarantees they end at a line or UTF-8 boundary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputChunk {
    /// The stream the bytes came from.
    pub stream: Stream,
    /// The bytes.
    pub data: Vec<u8>,
}

/// The largest chunk read at once.
const CHUNK: usize = 64 * 1024;

/// Forwards everything read from `reader` to `sink` until end of file. Waits when `sink` is
/// full (back-pressure reaches the step through its pipe); once `sink` is closed, keeps
/// reading and discards so the step never blocks on a full pipe. Returns the bytes read.
pub(crate) async fn pump<R: AsyncRead + Unpin>(
    mut reader: R,
    stream: Stream,
    sink: mpsc::Sender<OutputChunk>,
) -> u64 {
    let mut total = 0u64;
    let mut sink = Some(sink);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) => return total,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return total,
        };
        total += n as u64;
        if let Some(tx) = &sink {
            let chunk = OutputChunk {
                stream,
                data: buf[..n].to_vec(),
            };
            if tx.send(chunk).await.is_err() {
                sink = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pump_forwards_in_order_and_survives_a_closed_sink() {
        let (tx, mut rx) = mpsc::channel(4);
        let n = pump(&b"hello world"[..], Stream::Stderr, tx).await;
        assert_eq!(n, 11);
        let chunk = rx.recv().await.expect("chunk");
        assert_eq!(chunk.stream, Stream::Stderr);
        assert_eq!(chunk.data, b"hello world");

        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        assert_eq!(pump(&b"abc"[..], Stream::Stdout, tx).await, 3);
    }
}
