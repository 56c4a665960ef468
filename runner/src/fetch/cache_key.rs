//! A cache's key: the digest of the source files its `[[caches]]` entry names, read from
//! the job's source outside the sandbox (never through a symlink, so a pull request cannot
//! key its cache by a host file). The exact bytes hashed are documented in docs/caches.md:
//!
//! ```text
//! airlock-cache-key-v1\n
//! <path>\0<sha256 hex of its bytes>\n      (for each key file, in job-file order)
//! ```

use std::path::Path;

use airlock_attest::Sha256Digest;

/// Largest key file (a lockfile), in bytes.
pub const MAX_KEY_FILE_BYTES: u64 = 64 << 20;

/// The key of a cache keyed by `files` (paths relative to the source root `work`); the error
/// names the file that cannot be read.
pub fn cache_key(work: &Path, files: &[String]) -> Result<Sha256Digest, String> {
    let mut text = b"airlock-cache-key-v1\n".to_vec();
    for file in files {
        let bytes = crate::tree::read_beneath(work, Path::new(file), MAX_KEY_FILE_BYTES)
            .map_err(|e| format!("key file `{file}`: {e}"))?;
        text.extend_from_slice(file.as_bytes());
        text.push(0);
        text.extend_from_slice(Sha256Digest::of(&bytes).hex().as_bytes());
        text.push(b'\n');
    }
    Ok(Sha256Digest::of(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_follows_the_files_contents_and_refuses_symlinks_and_missing_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("Cargo.lock"), b"v1").expect("write");
        let files = vec!["Cargo.lock".to_owned()];
        let first = cache_key(tmp.path(), &files).expect("key");
        assert_eq!(first, cache_key(tmp.path(), &files).expect("key"));
        assert_ne!(first, cache_key(tmp.path(), &[]).expect("no files"));
        std::fs::write(tmp.path().join("Cargo.lock"), b"v2").expect("write");
        assert_ne!(first, cache_key(tmp.path(), &files).expect("key"));

        let e = cache_key(tmp.path(), &["missing".to_owned()]).expect_err("missing");
        assert!(e.contains("`missing`"), "{e}");
        std::os::unix::fs::symlink("/etc/hostname", tmp.path().join("link")).expect("symlink");
        assert!(cache_key(tmp.path(), &["link".to_owned()]).is_err());
    }
}
