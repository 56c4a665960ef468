//! `[[deps]]`: the packages a lockfile in the source pins, fetched from the operator's mirror
//! outside the sandbox, verified against the lockfile's own hashes, and laid out read-only
//! at `/deps` in the form each package manager reads offline.
//!
//! Only the lockfile's hashes are trusted: a package without one, a git or path dependency
//! that is not part of the source, or bytes that do not hash to the pin fail the job before
//! any step runs, naming the package. Verified files enter the runner's content-addressed
//! cache (keyed by sha256; an npm sha512 pin maps to the sha256 of bytes whose sha512 was
//! checked, and is checked again on every hit), so a job can only ever read, under a digest,
//! bytes that hash to it.

mod cargo;
mod error;
mod fetch;
mod layout;
mod lockfile;
mod mirrors;
mod npm;
mod package;
mod pypi;

pub use error::DepsError;
pub use fetch::{DepsProgress, fetch_all};
pub use layout::{DepsLayout, lay_out};
pub use lockfile::read_lockfile;
pub use mirrors::{MirrorUrl, Mirrors};
pub use package::{Package, PackageDigest, parse_lockfile};
