//! Build-cache archives: a directory packed as the same canonical tar as a path source (all
//! of it: a cache's nested `target` or `node_modules` are its content), and restored only
//! whole: verified against its digest, unpacked into a private staging directory beside
//! the destination, and renamed into place. A corrupt, truncated or hostile archive leaves
//! nothing behind.
//!
//! Modification times are kept (whole seconds), so tools that compare them (cargo's build
//! scripts, make) find a restored output newer than its unchanged inputs. A restored entry
//! is never dated later than `not_after`, a moment before the job's source was written: a
//! cache saved by a runner whose clock runs ahead can never look newer than the source, so
//! a changed source file is always rebuilt, never hidden behind a cached output.

use std::path::Path;
use std::time::SystemTime;

use airlock_attest::Sha256Digest;

use crate::fetch::source_archive::{SourceArchiveError, pack_tree, unpack_verified_dated};

/// Packs `dir` into the archive `dest`, with its modification times; returns its sha256 and
/// size.
pub fn save(dir: &Path, dest: &Path) -> Result<(Sha256Digest, u64), SourceArchiveError> {
    pack_tree(dir, dest, &[], true)
}

/// Restores the archive `archive`, which must hash to `expected`, as the new directory
/// `dest` (which must not exist), no entry dated after `not_after`: either all of it is
/// there afterwards, or nothing is.
pub fn restore(
    archive: &Path,
    expected: &Sha256Digest,
    dest: &Path,
    not_after: SystemTime,
) -> Result<(), SourceArchiveError> {
    let not_after = not_after
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
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
    unpack_verified_dated(archive, expected, staging.path(), Some(not_after))?;
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
    use std::time::{Duration, UNIX_EPOCH};

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
        let old = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
        let clamp = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let future = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for (p, t) in [
            ("release/deps/libx.rlib", old),
            (".rustc_info.json", future),
        ] {
            std::fs::File::options()
                .write(true)
                .open(src.join(p))
                .and_then(|f| f.set_modified(t))
                .expect("date");
        }
        std::fs::File::open(src.join("release"))
            .and_then(|f| f.set_modified(old))
            .expect("date");
        let (digest, size) = save(&src, &archive).expect("save");
        assert_eq!(size, std::fs::metadata(&archive).expect("stat").len());

        let dest = tmp.path().join("restored");
        restore(&archive, &digest, &dest, clamp).expect("restore");
        assert_eq!(
            std::fs::read(dest.join("release/deps/libx.rlib")).expect("read"),
            vec![7u8; 100_000]
        );
        // Nested `target` directories are content; times are kept, and clamped.
        assert!(dest.join("release/target/keep").exists());
        let mtime = |p: &Path| {
            std::fs::metadata(p)
                .expect("stat")
                .modified()
                .expect("mtime")
        };
        assert_eq!(mtime(&dest.join("release/deps/libx.rlib")), old);
        assert_eq!(mtime(&dest.join("release")), old);
        assert_eq!(
            mtime(&dest.join(".rustc_info.json")),
            clamp,
            "a future time is clamped"
        );
        assert!(
            restore(&archive, &digest, &dest, clamp).is_err(),
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
            let err = restore(&bad, &digest, &dest, clamp).expect_err(name);
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
