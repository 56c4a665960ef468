//! `[caches]`: the operator's build-cache policy and limits (docs/caches.md).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::caches::CachePolicy;

/// Default largest cache archive: 2 GiB.
pub const DEFAULT_MAX_ARCHIVE_BYTES: u64 = 2 << 30;
/// Default size cap of one scope (all keys of one cache of one project and trust domain):
/// 8 GiB.
pub const DEFAULT_MAX_SCOPE_BYTES: u64 = 8 << 30;

/// `[caches]` in controller.toml; every field is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CachesConfig {
    /// `false`: no job restores or saves a cache (`[[caches]]` are then ignored, and the
    /// provenance says none was restored). Default `true`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `untrusted-pr` jobs may also restore the trusted domain's caches, read-only.
    /// Default `false`: a pull request never reads what trusted builds wrote either.
    #[serde(default)]
    pub untrusted_reads_trusted: bool,
    /// `release` jobs restore and save caches of the release domain (only theirs). Default
    /// `false`: a release build starts clean.
    #[serde(default)]
    pub release_caches: bool,
    /// Largest cache archive a job may save, in bytes. Default 2 GiB.
    #[serde(default = "default_max_archive")]
    pub max_archive_bytes: u64,
    /// Size cap of one scope (every key of one cache of one project and domain), in bytes;
    /// the least recently used archives go first. Default 8 GiB.
    #[serde(default = "default_max_scope")]
    pub max_scope_bytes: u64,
    /// Keep caches in a SQLite database and blob directory of their own under this
    /// directory, instead of the controller's database and blob store (`airlock run` uses
    /// `<airlock home>/caches`, so they outlive each run). Relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

fn default_max_archive() -> u64 {
    DEFAULT_MAX_ARCHIVE_BYTES
}

fn default_max_scope() -> u64 {
    DEFAULT_MAX_SCOPE_BYTES
}

impl Default for CachesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            untrusted_reads_trusted: false,
            release_caches: false,
            max_archive_bytes: DEFAULT_MAX_ARCHIVE_BYTES,
            max_scope_bytes: DEFAULT_MAX_SCOPE_BYTES,
            dir: None,
        }
    }
}

impl CachesConfig {
    /// The trust-domain rule's inputs.
    pub fn policy(&self) -> CachePolicy {
        CachePolicy {
            untrusted_reads_trusted: self.untrusted_reads_trusted,
            release_caches: self.release_caches,
        }
    }

    /// Checks what serde cannot: `(field, message)` on error.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.max_archive_bytes == 0 {
            return Err((
                "caches.max_archive_bytes",
                "must be at least 1 (bytes); set `enabled = false` to turn caches off".into(),
            ));
        }
        if self.max_scope_bytes < self.max_archive_bytes {
            return Err((
                "caches.max_scope_bytes",
                format!(
                    "{} is below max_archive_bytes ({}): no archive would fit its scope",
                    self.max_scope_bytes, self.max_archive_bytes
                ),
            ));
        }
        Ok(())
    }
}
