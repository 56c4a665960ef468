//! Declared downloads (`[[inputs]]`) and archive sources: fetched by the runner into the
//! blob cache, verified against the pinned sha256, and linked into the job's directory.
//!
//! A download whose bytes do not hash to the pinned digest fails the job before any step
//! runs and leaves nothing in the cache (see [`crate::fetch::cache`]). Each input is hard-linked
//! (or copied across file systems) from the cache to `<job>/inputs/<name>`, which the
//! sandbox mounts read-only at `/inputs`; eviction can then never pull a file out from
//! under a running job.

use std::fs;
use std::io;
use std::path::Path;

use airlock_attest::Sha256Digest;
use airlock_job::InputSpec;

use crate::fetch::cache::{BlobCache, CacheError, Fetched};
use crate::fetch::http::{HttpClient, HttpUrl, Transfer};

/// Largest download accepted (per input).
pub const MAX_DOWNLOAD_BYTES: u64 = 16 << 30;

/// Why an input could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The cache refused the content or failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// Linking the verified blob into the job directory failed.
    #[error("providing {what} at {path}: {source}")]
    Link {
        /// Which input.
        what: String,
        /// The destination.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl InputError {
    /// True if the job's declared input is at fault (wrong digest, unreachable URL, HTTP
    /// error): the job fails instead of being retried as an infrastructure fault.
    pub fn is_job_error(&self) -> bool {
        matches!(
            self,
            Self::Cache(CacheError::DigestMismatch { .. } | CacheError::Fetch { .. })
        )
    }
}

/// What an input fetch reports.
#[derive(Debug, Clone, PartialEq)]
pub enum InputProgress {
    /// Bytes are arriving.
    Downloading {
        /// Which input.
        what: String,
        /// Progress so far.
        transfer: Transfer,
    },
    /// Served from the cache.
    Cached {
        /// Which input.
        what: String,
        /// Its digest.
        digest: Sha256Digest,
    },
}

/// Fetches `url` into the cache under `digest` (or finds it there) and returns the path of
/// the verified blob. The blob stays pinned only for the duration of `use_blob`.
pub fn fetch_verified<T>(
    cache: &BlobCache,
    http: &HttpClient,
    what: &str,
    url: &str,
    digest: &Sha256Digest,
    progress: &mut dyn FnMut(InputProgress),
    use_blob: impl FnOnce(&Path) -> Result<T, InputError>,
) -> Result<T, InputError> {
    let fetch_err = |message: String| CacheError::Fetch {
        what: what.to_owned(),
        message,
    };
    let (fetched, _pin) = cache.get_or_fetch(digest, what, &mut |sink| {
        let url = HttpUrl::parse(url).map_err(|e| fetch_err(e.to_string()))?;
        let mut report = |transfer: Transfer| {
            progress(InputProgress::Downloading {
                what: what.to_owned(),
                transfer,
            });
        };
        http.download(&url, &[], sink, MAX_DOWNLOAD_BYTES, &mut report)
            .map(drop)
            .map_err(|e| fetch_err(e.to_string()))
    })?;
    if fetched == Fetched::Hit {
        progress(InputProgress::Cached {
            what: what.to_owned(),
            digest: *digest,
        });
    }
    use_blob(&cache.path(digest))
}

/// Provides every declared input at `<dir>/<name>` (read-only files), creating `dir`.
pub fn provide_inputs(
    cache: &BlobCache,
    http: &HttpClient,
    inputs: &[InputSpec],
    dir: &Path,
    progress: &mut dyn FnMut(InputProgress),
) -> Result<(), InputError> {
    let link_err = |what: &str, path: &Path, source| InputError::Link {
        what: what.to_owned(),
        path: path.display().to_string(),
        source,
    };
    fs::create_dir_all(dir).map_err(|e| link_err("inputs", dir, e))?;
    for input in inputs {
        let what = format!("input `{}`", input.name);
        // The name is validated by the job crate ([A-Za-z0-9._-], unique), so it is one
        // path component.
        let dest = dir.join(&input.name);
        fetch_verified(
            cache,
            http,
            &what,
            &input.url,
            &input.sha256,
            progress,
            |_| {
                cache
                    .link_to(&input.sha256, &dest)
                    .map_err(|e| link_err(&what, &dest, e))
            },
        )?;
    }
    Ok(())
}
