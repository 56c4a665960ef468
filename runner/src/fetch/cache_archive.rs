//! Build-cache archives: a directory packed as the same canonical tar as a path source (all
//! of it: a cache's nested `target` or `node_modules` are its content), and restored only
//! whole: verified against its digest, unpacked into a private staging directory beside
//! the destination, and renamed into place. A corrupt, truncated or hostile archive leaves
//! nothing behind.
//!
//! Every restored entry is dated 1970-01-01 00:00:00: older than any file of the source, so
//! a tool that compares modification times (make, cargo for the project's own crates)
//! rebuilds whatever the source may have changed, and never trusts a cached output over
//! a newer source file. Tools that key by content (cargo's registry crates, ccache) reuse
//! everything.

use std::path::{Path, PathBuf};

use airlock_attest::Sha256Digest;
use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;

use crate::fetch::source_archive::{SourceArchiveError, pack_tree, unpack_verified};

/// Packs `dir` into the archive `dest`; returns its sha256 and size.
pub fn save(dir: &Path, dest: &Path) -> Result<(Sha256Digest, u64), SourceArchiveError> {
    pack_tree(dir, dest, &[])
}

/// Sets the times of `root` and everything below it (links themselves, not their
/// targets) to the epoch.
fn date_to_epoch(root: &Path) -> Result<(), SourceArchiveError> {
    let epoch = TimeSpec::new(0, 0);
    let mut stack: Vec<PathBuf> = vec![root.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(|source| SourceArchiveError::Io {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            let entries = std::fs::read_dir(&path).map_err(|source| SourceArchiveError::Io {
                path: path.clone(),
                source,
            })?;
            for entry in entries {
                let entry = entry.map_err(|source| SourceArchiveError::Io {
                    path: path.clone(),
                    source,
                })?;
                stack.push(entry.path());
            }
        }
        utimensat(None, &path, &epoch, &epoch, UtimensatFlags::NoFollowSymlink).map_err(|e| {
            SourceArchiveError::Io {
                path: path.clone(),
                source: e.into(),
            }
        })?;
    }
    Ok(())
}

/// Restores the archive `archive`, which must hash to `expected`, as the new directory
/// `dest` (which must not exist): either all of it is there afterwards, or nothing is.
pub fn restore(
    archive: &Path,
    expected: &Sha256Digest,
    dest: &Path,
) -> Result<(), SourceArchiveError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| SourceArchiveError::Io { path, source }
    };
    if std::fs::symlink_metadata(dest).is_ok() {
        return Err(SourceArchiveError::Io {
            path: dest.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the destination exists",
            ),
        });
    }
    let parent = dest.parent().unwrap_or(Path::new("."));
    // Removed on drop: every error below leaves no partial tree.
    let staging = tempfile::Builder::new()
        .prefix(".restoring-")
        .tempdir_in(parent)
        .map_err(io(parent))?;
    unpack_verified(archive, expected, staging.path())?;
    date_to_epoch(staging.path())?;
    let staged = staging.keep();
    std::fs::rename(&staged, dest).map_err(|e| {
        let _ = crate::tree::remove_tree(&staged);
        SourceArchiveError::Io {
            path: dest.to_owned(),
            source: e,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path) {
        std::fs::create_dir_all(root.join("release/deps")).expect("mkdir");
        std::fs::write(root.join("release/deps/libx.rlib"), vec![7u8; 100_000]).expect("write");
        std::fs::write(root.join(".rustc_info.json"), b"{}").expect("write");
        std::fs::create_dir_all(root.join("release/target")).expect("mkdir");
        std::fs::write(root.join("release/target/keep"), b"k").expect("write");
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .expect("read_dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".restoring-"))
            .collect()
    }

    #[test]
    fn a_saved_cache_restores_whole_and_a_bad_one_leaves_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let src = tmp.path().join("target");
        tree(&src);
        let archive = tmp.path().join("cache.tar");
        let (digest, size) = save(&src, &archive).expect("save");
        assert_eq!(size, std::fs::metadata(&archive).expect("stat").len());

        let dest = tmp.path().join("restored");
        restore(&archive, &digest, &dest).expect("restore");
        assert_eq!(
            std::fs::read(dest.join("release/deps/libx.rlib")).expect("read"),
            vec![7u8; 100_000]
        );
        // Nested `target` directories are content, and every entry is older than any source.
        assert!(dest.join("release/target/keep").exists());
        for p in [dest.join("release/deps/libx.rlib"), dest.join("release")] {
            let mtime = std::fs::metadata(&p)
                .expect("stat")
                .modified()
                .expect("mtime");
            assert_eq!(mtime, std::time::UNIX_EPOCH, "{}", p.display());
        }
        assert!(
            restore(&archive, &digest, &dest).is_err(),
            "an existing destination is kept"
        );

        // Truncated, then corrupted: refused, no destination, no staging left.
        let bytes = std::fs::read(&archive).expect("read");
        for (name, broken) in [
            ("truncated", bytes[..bytes.len() / 2].to_vec()),
            ("corrupt", {
                let mut b = bytes.clone();
                b[600] ^= 0xff;
                b
            }),
        ] {
            let bad = tmp.path().join(format!("{name}.tar"));
            std::fs::write(&bad, &broken).expect("write");
            let dest = tmp.path().join(format!("dest-{name}"));
            let err = restore(&bad, &digest, &dest).expect_err(name);
            assert!(
                matches!(err, SourceArchiveError::DigestMismatch { .. }),
                "{name}: {err}"
            );
            assert!(!dest.exists(), "{name}: half restored");
            assert!(
                leftovers(tmp.path()).is_empty(),
                "{name}: staging left behind"
            );
        }
    }
}
