//! Phase 1, outside the sandbox: everything a job reads, fetched and verified by digest
//! before its first step — sources (path archives, git commits, archives), base images
//! (layouts and registries, with their logins), declared inputs, lockfile packages
//! (`deps/`) — into the shared
//! content-addressed cache, and the job's workspace prepared from them.

pub mod archive_source;
pub mod cache;
pub mod cache_archive;
pub mod cache_key;
pub mod deps;
pub mod git_source;
pub mod http;
pub mod image;
pub mod inputs;
mod partial;
pub mod prepare;
pub mod source_archive;
