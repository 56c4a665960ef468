//! Why a job's dependencies could not be provided.

use std::path::PathBuf;

use airlock_job::Ecosystem;

/// Why `[[deps]]` could not be provided. Every variant but [`DepsError::Io`] and
/// [`DepsError::Cache`] with an I/O cause is the job's fault (its lockfile, its pins, what
/// the mirror served for them) and fails the job instead of retrying it.
#[derive(Debug, thiserror::Error)]
pub enum DepsError {
    /// The lockfile cannot be read from the source.
    #[error("deps: {lockfile}: {message}")]
    Lockfile {
        /// The lockfile's path in the source.
        lockfile: String,
        /// What is wrong, and what to do.
        message: String,
    },
    /// A package in the lockfile cannot be fetched hermetically.
    #[error("deps: {lockfile}: {package}: {message}")]
    Package {
        /// The lockfile's path in the source.
        lockfile: String,
        /// `name@version` (or the line for requirements).
        package: String,
        /// What is wrong, and what to do.
        message: String,
    },
    /// No mirror is configured for an ecosystem the job needs.
    #[error(
        "deps: {lockfile} needs {ecosystem} packages, but this runner has no {ecosystem} \
         mirror; start it with `--mirror {ecosystem}=URL` (see docs/dependencies.md)"
    )]
    NoMirror {
        /// The lockfile's path in the source.
        lockfile: String,
        /// The ecosystem.
        ecosystem: Ecosystem,
    },
    /// The mirror could not deliver a package (HTTP error, unreachable, too large).
    #[error("deps: {package} from {url}: {message}")]
    Download {
        /// The package's purl.
        package: String,
        /// Where it was fetched from.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The mirror's bytes do not hash to the lockfile's pin. Nothing was cached.
    #[error(
        "deps: {package}: the mirror served content that does not match the lockfile: \
         expected {expected}, got {actual} ({bytes} bytes from {url}); nothing was cached"
    )]
    Mismatch {
        /// The package's purl.
        package: String,
        /// Where it was fetched from.
        url: String,
        /// The lockfile's digest, `alg:hex`.
        expected: String,
        /// The digest of what arrived, `alg:hex`.
        actual: String,
        /// How many bytes arrived.
        bytes: u64,
    },
    /// A package's archive is unusable (not a gzip tar, an entry outside its directory, a
    /// link or device entry).
    #[error("deps: {package}: its archive cannot be unpacked safely: {message}")]
    Archive {
        /// The package's purl.
        package: String,
        /// What is wrong.
        message: String,
    },
    /// The runner's cache failed.
    #[error("deps: {0}")]
    Cache(crate::fetch::cache::CacheError),
    /// Laying the packages out for the sandbox failed on the runner's disk.
    #[error("deps: {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl DepsError {
    /// A filesystem error on the runner's side.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// True if the job (its lockfile, or what its pins fetched) is at fault: the job fails.
    /// False for runner faults, reported as infrastructure failures and retried.
    pub fn is_job_error(&self) -> bool {
        match self {
            Self::Io { .. } => false,
            Self::Cache(e) => e.is_content_error(),
            // An operator's missing mirror fails the job with the fix; a retry elsewhere
            // would only help on a differently configured runner.
            _ => true,
        }
    }
}
