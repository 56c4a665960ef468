//! Reading a job's lockfile out of its (untrusted) source tree.

use std::path::Path;

use super::DepsError;

/// Largest lockfile read (a large monorepo's `package-lock.json` is a few MiB).
pub const MAX_LOCKFILE_BYTES: u64 = 32 << 20;

/// The lockfile `rel` of the source unpacked at `work`, as text. A symlink, a missing or
/// non-UTF-8 file fails the job with the lockfile named.
pub fn read_lockfile(work: &Path, rel: &str) -> Result<String, DepsError> {
    let fail = |message: String| DepsError::Lockfile {
        lockfile: rel.to_owned(),
        message,
    };
    let bytes =
        crate::tree::read_beneath(work, Path::new(rel), MAX_LOCKFILE_BYTES).map_err(|e| match e
            .kind()
        {
            std::io::ErrorKind::NotFound => fail(
                "not found in the source; commit the lockfile, or fix `lockfile` in [[deps]]"
                    .into(),
            ),
            _ => fail(format!("cannot be read from the source: {e}")),
        })?;
    String::from_utf8(bytes).map_err(|_| fail("is not UTF-8 text".into()))
}
