//! A writer that hashes and counts everything written through it.

use std::io::{self, Write};

use airlock_attest::{Sha256Digest, Sha256Hasher};

/// Hashes the bytes on their way to `inner`.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256Hasher,
    bytes: u64,
}

impl<W> HashingWriter<W> {
    /// Wraps `inner`; nothing hashed yet.
    pub(crate) fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256Hasher::new(),
            bytes: 0,
        }
    }

    /// The inner writer, the digest of everything written and its length.
    pub(crate) fn finish(self) -> (W, Sha256Digest, u64) {
        (self.inner, self.hasher.finalize(), self.bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
