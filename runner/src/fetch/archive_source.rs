//! Archive sources: a `.tar` or `.tar.gz` at a URL, pinned by the sha256 of its bytes,
//! fetched into the blob cache and unpacked into the workspace by the same hostile-input
//! tar reader as uploaded sources (no absolute paths, no `..`, never through a symlink).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use airlock_attest::Sha256Digest;
use flate2::read::MultiGzDecoder;

use crate::fetch::cache::BlobCache;
use crate::fetch::http::HttpClient;
use crate::fetch::inputs::{InputError, InputProgress, fetch_verified};
use crate::fetch::source_archive::{SourceArchiveError, unpack_verified, write_hashed};

/// Why an archive source could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveSourceError {
    /// Fetching or verifying the archive failed.
    #[error(transparent)]
    Fetch(#[from] InputError),
    /// The archive is malformed or hostile.
    #[error("source archive: {0}")]
    Unpack(#[from] SourceArchiveError),
}

impl ArchiveSourceError {
    /// True if the job's archive is at fault (not the runner).
    pub fn is_job_error(&self) -> bool {
        match self {
            Self::Fetch(e) => e.is_job_error(),
            Self::Unpack(SourceArchiveError::Io { .. }) => false,
            Self::Unpack(_) => true,
        }
    }
}

/// Fetches the archive (verified against `sha256`) and unpacks it into `work`; gzip is
/// detected by its magic bytes. `scratch` is a job-private directory for the decompressed
/// tar.
pub fn provide_archive_source(
    cache: &BlobCache,
    http: &HttpClient,
    url: &str,
    sha256: &Sha256Digest,
    work: &Path,
    scratch: &Path,
    progress: &mut dyn FnMut(InputProgress),
) -> Result<(), ArchiveSourceError> {
    let mut unpacked = Ok(());
    fetch_verified(
        cache,
        http,
        "source archive",
        url,
        sha256,
        progress,
        |blob| {
            unpacked = unpack(blob, sha256, work, scratch);
            Ok(())
        },
    )?;
    unpacked
}

fn unpack(
    blob: &Path,
    sha256: &Sha256Digest,
    work: &Path,
    scratch: &Path,
) -> Result<(), ArchiveSourceError> {
    let io = |source| SourceArchiveError::Io {
        path: blob.to_path_buf(),
        source,
    };
    let mut magic = [0u8; 2];
    let is_gzip = File::open(blob)
        .and_then(|mut f| f.read(&mut magic))
        .map_err(io)?
        == 2
        && magic == [0x1f, 0x8b];
    if !is_gzip {
        unpack_verified(blob, sha256, work)?;
        return Ok(());
    }
    let tar_path = scratch.join("source.tar");
    let decoder = MultiGzDecoder::new(BufReader::new(File::open(blob).map_err(io)?));
    let (tar_digest, _) = write_hashed(decoder, &tar_path)?;
    let result = unpack_verified(&tar_path, &tar_digest, work);
    let _ = std::fs::remove_file(&tar_path);
    result?;
    Ok(())
}
