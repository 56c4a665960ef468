//! A layout blob as an upload body: hashed again while it streams, its last byte held back
//! unless the content is what its digest names. The layout was verified before the push
//! started; this catches a blob changed since, before the registry ever has all of it.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::Path;
use std::time::Instant;

use airlock_attest::{Sha256Digest, Sha256Hasher};

use super::client::Payload;
use super::error::RegistryError;
use crate::fetch::http::{PROGRESS_EVERY, RequestBody, Transfer};
use crate::fetch::image::ImageError;
use crate::fetch::image::blob::{blob_path, open_blob};

/// One blob of an image layout, streamed from its file.
pub(crate) struct BlobBody<'p> {
    file: File,
    what: String,
    digest: Sha256Digest,
    size: u64,
    path: std::path::PathBuf,
    hasher: Sha256Hasher,
    sent: u64,
    refused: Option<ImageError>,
    progress: &'p mut dyn FnMut(Transfer),
    started: Instant,
    last: Instant,
}

impl std::fmt::Debug for BlobBody<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobBody")
            .field("what", &self.what)
            .field("digest", &self.digest)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl<'p> BlobBody<'p> {
    /// Opens blob `digest` (`size` bytes, as its descriptor says) of the layout at `layout`.
    pub(crate) fn open(
        layout: &Path,
        what: &str,
        digest: &Sha256Digest,
        size: u64,
        progress: &'p mut dyn FnMut(Transfer),
    ) -> Result<Self, ImageError> {
        let (file, _) = open_blob(layout, what, digest)?;
        let now = Instant::now();
        Ok(Self {
            file,
            what: what.to_owned(),
            digest: *digest,
            size,
            path: blob_path(layout, digest),
            hasher: Sha256Hasher::new(),
            sent: 0,
            refused: None,
            progress,
            started: now,
            last: now,
        })
    }

    /// Why the body stopped short of its last byte, if it did: the blob's content no longer
    /// matches its digest or size. Takes precedence over the transfer's own error.
    pub(crate) fn take_refusal(&mut self) -> Option<ImageError> {
        self.refused.take()
    }

    fn report(&mut self, finished: bool) {
        self.last = Instant::now();
        (self.progress)(Transfer {
            done: self.sent,
            total: Some(self.size),
            elapsed: self.started.elapsed(),
            finished,
        });
    }

    fn refuse(&mut self, error: ImageError) -> io::Error {
        let message = error.to_string();
        self.refused = Some(error);
        io::Error::new(io::ErrorKind::InvalidData, message)
    }
}

impl Read for BlobBody<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let remaining = self.size - self.sent;
        if remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let cap = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self
            .file
            .read(&mut buf[..cap])
            .map_err(|e| self.refuse(ImageError::io("reading", self.path.clone(), e)))?;
        if n == 0 {
            let error = ImageError::SizeMismatch {
                what: self.what.clone(),
                digest: self.digest,
                expected: self.size,
                actual: self.sent,
            };
            return Err(self.refuse(error));
        }
        self.hasher.update(&buf[..n]);
        self.sent += n as u64;
        if self.sent == self.size {
            let actual = std::mem::replace(&mut self.hasher, Sha256Hasher::new()).finalize();
            if actual != self.digest {
                // The last chunk is withheld: the registry never receives the whole blob.
                let error = ImageError::DigestMismatch {
                    what: self.what.clone(),
                    expected: self.digest,
                    actual,
                };
                return Err(self.refuse(error));
            }
            self.report(true);
        } else if self.last.elapsed() >= PROGRESS_EVERY {
            self.report(false);
        }
        Ok(n)
    }
}

impl Payload for BlobBody<'_> {
    fn body(&mut self) -> Result<RequestBody<'_>, RegistryError> {
        // A retry after an authentication challenge starts over from the first byte.
        self.file
            .rewind()
            .map_err(|e| ImageError::io("reading", self.path.clone(), e))?;
        self.hasher = Sha256Hasher::new();
        self.sent = 0;
        self.refused = None;
        self.started = Instant::now();
        self.report(false);
        let length = self.size;
        Ok(RequestBody::Reader {
            reader: self,
            length,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(body: &mut BlobBody<'_>) -> (Vec<u8>, Option<io::Error>) {
        let mut out = Vec::new();
        let mut buf = [0u8; 4];
        loop {
            match body.read(&mut buf) {
                Ok(0) => return (out, None),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    #[test]
    fn a_blob_changed_after_verification_never_yields_its_last_byte() {
        let tmp = tempfile::tempdir().unwrap();
        let content = b"layer bytes, 24 of them.";
        let digest = Sha256Digest::of(content);
        let path = blob_path(tmp.path(), &digest);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut reports = Vec::new();

        std::fs::write(&path, content).unwrap();
        let mut record = |t: Transfer| reports.push(t);
        let mut body = BlobBody::open(tmp.path(), "layer 1", &digest, 24, &mut record).unwrap();
        assert!(matches!(
            body.body().unwrap(),
            RequestBody::Reader { length: 24, .. }
        ));
        let (out, err) = read_all(&mut body);
        assert_eq!(out, content);
        assert!(err.is_none());
        assert!(body.take_refusal().is_none());
        // A retry (after an authentication challenge) starts from the first byte again.
        let _ = body.body().unwrap();
        assert_eq!(read_all(&mut body).0, content);
        drop(body);
        assert!(reports.last().is_some_and(|t| t.finished && t.done == 24));

        // Same length, one byte different: everything but the final chunk, then an error.
        std::fs::write(&path, b"layer bytes, 24 of them!").unwrap();
        let mut ignore = |_: Transfer| {};
        let mut body = BlobBody::open(tmp.path(), "layer 1", &digest, 24, &mut ignore).unwrap();
        let _ = body.body().unwrap();
        let (out, err) = read_all(&mut body);
        assert!(err.is_some());
        assert!(out.len() < 24, "{} bytes passed", out.len());
        let refusal = body.take_refusal().unwrap().to_string();
        assert!(refusal.contains("tampered"), "{refusal}");

        // Shorter than its descriptor says.
        std::fs::write(&path, b"layer").unwrap();
        let mut body = BlobBody::open(tmp.path(), "layer 1", &digest, 24, &mut ignore).unwrap();
        let _ = body.body().unwrap();
        assert!(read_all(&mut body).1.is_some());
        assert!(matches!(
            body.take_refusal(),
            Some(ImageError::SizeMismatch { actual: 5, .. })
        ));
    }
}
