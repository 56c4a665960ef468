//! The source archive: a canonical tar of a directory, and its safe unpacking.
//!
//! Canonical means the same tree always gives the same bytes (and so the same
//! sha256, which provenance records): entries sorted by path, mtimes zeroed,
//! owner 0:0, modes reduced to 0644/0755. Symlinks are kept as symlinks; other
//! special files are refused. Unpacking treats the archive as hostile: no
//! absolute paths, no `..`, never writes through a symlink.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use airlock_attest::{HashingWriter, Sha256Digest};

/// Directories never packed: VCS metadata and build trees.
const SKIP_DIRS: &[&str] = &[".git", "target", "node_modules"];

/// Errors while packing or unpacking a source archive.
#[derive(Debug, thiserror::Error)]
pub enum SourceArchiveError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The tree holds something a source archive cannot carry.
    #[error("{path}: {reason}")]
    Unsupported {
        /// The file at fault.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The archive is malformed or hostile.
    #[error("source archive entry `{entry}` refused: {reason}")]
    Hostile {
        /// The entry name.
        entry: String,
        /// Why.
        reason: String,
    },
    /// The archive's digest is not the one the job pins.
    #[error("source archive digest mismatch: expected sha256:{expected}, got sha256:{actual}")]
    DigestMismatch {
        /// What the job pins.
        expected: Sha256Digest,
        /// What arrived.
        actual: Sha256Digest,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SourceArchiveError + '_ {
    move |source| SourceArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Packs the source tree `dir` (without `.git`, `target` and `node_modules` directories)
/// into a canonical tar at `dest`; returns its sha256 and size.
pub fn pack_dir(dir: &Path, dest: &Path) -> Result<(Sha256Digest, u64), SourceArchiveError> {
    pack_tree(dir, dest, SKIP_DIRS, false)
}

/// Packs all of `dir` but the directories named in `skip` into a tar at `dest`, canonical
/// but for the modification times when `keep_mtimes` (whole seconds). `dir` may be
/// build-controlled: nothing is followed (a symlink is stored as one), and a regular file
/// is opened without following a link.
pub fn pack_tree(
    dir: &Path,
    dest: &Path,
    skip: &[&str],
    keep_mtimes: bool,
) -> Result<(Sha256Digest, u64), SourceArchiveError> {
    let mut paths = Vec::new();
    collect(dir, skip, &mut paths)?;
    paths.sort();
    let file = File::create(dest).map_err(io_err(dest))?;
    let writer = HashingWriter::new(io::BufWriter::new(file));
    let mut builder = tar::Builder::new(writer);
    for rel in &paths {
        let full = dir.join(rel);
        let meta = fs::symlink_metadata(&full).map_err(io_err(&full))?;
        let mut header = tar::Header::new_ustar();
        header.set_mtime(if keep_mtimes {
            u64::try_from(meta.mtime()).unwrap_or(0)
        } else {
            0
        });
        header.set_uid(0);
        header.set_gid(0);
        let executable = meta.permissions().mode() & 0o111 != 0;
        if meta.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            builder
                .append_data(&mut header, rel, io::empty())
                .map_err(io_err(&full))?;
        } else if meta.file_type().is_symlink() {
            let target = fs::read_link(&full).map_err(io_err(&full))?;
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            builder
                .append_link(&mut header, rel, &target)
                .map_err(io_err(&full))?;
        } else if meta.is_file() {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(if executable { 0o755 } else { 0o644 });
            header.set_size(meta.len());
            let f = fs::OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
                .open(&full)
                .map_err(io_err(&full))?;
            builder
                .append_data(&mut header, rel, f)
                .map_err(io_err(&full))?;
        } else {
            return Err(SourceArchiveError::Unsupported {
                path: full,
                reason: "not a regular file, directory or symlink".into(),
            });
        }
    }
    let mut writer = builder.into_inner().map_err(io_err(dest))?;
    writer.flush().map_err(io_err(dest))?;
    let (_, digest, size) = writer.finish();
    Ok((digest, size))
}

/// Lists every entry below `root` (relative paths; directories too) with an explicit
/// stack: a source tree comes from a pull request, so its depth and size are bounded by
/// [`crate::tree::MAX_DEPTH`] and [`crate::tree::MAX_ENTRIES`].
fn collect(root: &Path, skip: &[&str], out: &mut Vec<PathBuf>) -> Result<(), SourceArchiveError> {
    let mut stack = vec![(PathBuf::new(), 0usize)];
    while let Some((rel, depth)) = stack.pop() {
        let dir = root.join(&rel);
        let entries = fs::read_dir(&dir).map_err(io_err(&dir))?;
        for entry in entries {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name();
            let child = rel.join(&name);
            let ft = entry.file_type().map_err(io_err(&dir))?;
            if ft.is_dir() {
                if skip.iter().any(|s| name == *s) {
                    continue;
                }
                if depth + 1 > crate::tree::MAX_DEPTH {
                    return Err(SourceArchiveError::Unsupported {
                        path: root.join(&child),
                        reason: format!(
                            "the source tree is nested deeper than {} directories",
                            crate::tree::MAX_DEPTH
                        ),
                    });
                }
                stack.push((child.clone(), depth + 1));
            }
            out.push(child);
            if out.len() > crate::tree::MAX_ENTRIES {
                return Err(SourceArchiveError::Unsupported {
                    path: root.to_path_buf(),
                    reason: format!(
                        "the source tree holds more than {} entries",
                        crate::tree::MAX_ENTRIES
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Checks that `name` is a relative path of normal components only.
pub(crate) fn clean_entry_path(name: &Path) -> Result<PathBuf, String> {
    let mut clean = PathBuf::new();
    for c in name.components() {
        match c {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("`..` component".into()),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path".into()),
        }
    }
    if clean.as_os_str().is_empty() {
        return Err("empty path".into());
    }
    Ok(clean)
}

/// Refuses to go through a symlink: every parent of `rel` below `root` must be a
/// real directory.
pub(crate) fn parents_are_dirs(root: &Path, rel: &Path) -> Result<(), String> {
    let mut cur = root.to_path_buf();
    if let Some(parent) = rel.parent() {
        for c in parent.components() {
            cur.push(c);
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(format!("parent `{}` is not a directory", cur.display())),
                Err(e) => return Err(format!("parent `{}`: {e}", cur.display())),
            }
        }
    }
    Ok(())
}

/// Verifies `archive` against `expected` and unpacks it into the empty directory
/// `dest`. Nothing is unpacked when the digest does not match. Files are dated when they
/// are written.
pub fn unpack_verified(
    archive: &Path,
    expected: &Sha256Digest,
    dest: &Path,
) -> Result<(), SourceArchiveError> {
    unpack_verified_dated(archive, expected, dest, None)
}

/// [`unpack_verified`], dating each file and directory as its entry says but never later
/// than `not_after` (seconds since the epoch) when that is given.
pub fn unpack_verified_dated(
    archive: &Path,
    expected: &Sha256Digest,
    dest: &Path,
    not_after: Option<u64>,
) -> Result<(), SourceArchiveError> {
    let mut dirs = Vec::new();
    let (actual, _) = airlock_attest::hash_reader(File::open(archive).map_err(io_err(archive))?)
        .map_err(io_err(archive))?;
    if &actual != expected {
        return Err(SourceArchiveError::DigestMismatch {
            expected: *expected,
            actual,
        });
    }
    let file = File::open(archive).map_err(io_err(archive))?;
    let mut ar = tar::Archive::new(io::BufReader::new(file));
    for entry in ar.entries().map_err(io_err(archive))? {
        let mut entry = entry.map_err(io_err(archive))?;
        let raw = entry.path().map_err(io_err(archive))?.into_owned();
        let entry_name = raw.display().to_string();
        let hostile = |reason: String| SourceArchiveError::Hostile {
            entry: entry_name.clone(),
            reason,
        };
        let rel = clean_entry_path(&raw).map_err(hostile)?;
        parents_are_dirs(dest, &rel).map_err(hostile)?;
        let target = dest.join(&rel);
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => {
                match fs::symlink_metadata(&target) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => return Err(hostile("a directory replaces an existing entry".into())),
                    Err(_) => fs::create_dir(&target).map_err(io_err(&target))?,
                }
                if let Some(max) = not_after {
                    // Dated once everything inside is written (each write touches it).
                    let mtime = entry.header().mtime().map_err(io_err(archive))?.min(max);
                    dirs.push((target.clone(), mtime));
                }
            }
            tar::EntryType::Regular => {
                let mode = entry.header().mode().map_err(io_err(archive))? & 0o755;
                let mut out = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode | 0o600)
                    .custom_flags(nix::libc::O_NOFOLLOW)
                    .open(&target)
                    .map_err(io_err(&target))?;
                io::copy(&mut entry, &mut out).map_err(io_err(&target))?;
                if let Some(max) = not_after {
                    let mtime = entry.header().mtime().map_err(io_err(archive))?.min(max);
                    out.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime))
                        .map_err(io_err(&target))?;
                }
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(io_err(archive))?
                    .ok_or_else(|| hostile("symlink without a target".into()))?;
                // The link is resolved later inside the container's root, where `/`
                // is the image; it cannot reach the host from there.
                std::os::unix::fs::symlink(link.as_ref(), &target).map_err(io_err(&target))?;
            }
            other => return Err(hostile(format!("unsupported entry type {other:?}"))),
        }
    }
    // Innermost first, so dating a directory never touches an already dated parent.
    for (dir, mtime) in dirs.iter().rev() {
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(*mtime);
        File::open(dir)
            .and_then(|d| d.set_modified(when))
            .map_err(io_err(dir))?;
    }
    Ok(())
}

/// Reads exactly what a reader yields into `dest` while hashing; returns digest and size.
pub fn write_hashed(
    mut reader: impl Read,
    dest: &Path,
) -> Result<(Sha256Digest, u64), SourceArchiveError> {
    let file = File::create(dest).map_err(io_err(dest))?;
    let mut w = HashingWriter::new(file);
    io::copy(&mut reader, &mut w).map_err(io_err(dest))?;
    let (_, digest, size) = w.finish();
    Ok((digest, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dir: &Path) {
        fs::create_dir_all(dir.join("src/sub")).unwrap();
        fs::write(dir.join("hello.c"), b"int main(){}").unwrap();
        fs::write(dir.join("src/sub/run.sh"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(
            dir.join("src/sub/run.sh"),
            fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        std::os::unix::fs::symlink("../hello.c", dir.join("src/link")).unwrap();
        fs::create_dir_all(dir.join(".git/objects")).unwrap();
        fs::write(dir.join(".git/HEAD"), b"ref").unwrap();
    }

    #[test]
    fn packing_is_canonical_and_unpacking_round_trips() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        tree(a.path());
        tree(b.path());
        // Different mtimes and modes of the directories must not change the digest.
        fs::set_permissions(b.path().join("src"), fs::Permissions::from_mode(0o700)).unwrap();
        let out = tempfile::tempdir().unwrap();
        let (da, _) = pack_dir(a.path(), &out.path().join("a.tar")).unwrap();
        let (db, _) = pack_dir(b.path(), &out.path().join("b.tar")).unwrap();
        assert_eq!(da, db);
        let dest = out.path().join("x");
        fs::create_dir(&dest).unwrap();
        unpack_verified(&out.path().join("a.tar"), &da, &dest).unwrap();
        assert_eq!(fs::read(dest.join("hello.c")).unwrap(), b"int main(){}");
        assert!(!dest.join(".git").exists(), ".git is not packed");
        let mode = fs::metadata(dest.join("src/sub/run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
        assert_eq!(
            fs::read_link(dest.join("src/link")).unwrap(),
            Path::new("../hello.c")
        );
    }

    #[test]
    fn wrong_digest_unpacks_nothing() {
        let a = tempfile::tempdir().unwrap();
        tree(a.path());
        let out = tempfile::tempdir().unwrap();
        pack_dir(a.path(), &out.path().join("a.tar")).unwrap();
        let dest = out.path().join("x");
        fs::create_dir(&dest).unwrap();
        let wrong = Sha256Digest::of(b"other");
        let e = unpack_verified(&out.path().join("a.tar"), &wrong, &dest).unwrap_err();
        assert!(matches!(e, SourceArchiveError::DigestMismatch { .. }));
        assert_eq!(fs::read_dir(&dest).unwrap().count(), 0);
    }

    fn hostile_tar(
        build: impl FnOnce(&mut tar::Builder<Vec<u8>>),
    ) -> (tempfile::TempDir, PathBuf, Sha256Digest) {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        let bytes = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("evil.tar");
        fs::write(&path, &bytes).unwrap();
        let d = Sha256Digest::of(&bytes);
        (dir, path, d)
    }

    #[test]
    fn write_through_symlink_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().to_path_buf();
        let (_d, path, digest) = hostile_tar(|b| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, "escape", &target).unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_size(4);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, "escape/pwned", &b"evil"[..]).unwrap();
        });
        let dest = tempfile::tempdir().unwrap();
        let e = unpack_verified(&path, &digest, dest.path()).unwrap_err();
        assert!(matches!(e, SourceArchiveError::Hostile { .. }), "{e}");
        assert!(!outside.path().join("pwned").exists());
    }

    #[test]
    fn dotdot_entry_is_refused() {
        let (_d, path, digest) = hostile_tar(|b| {
            let mut h = tar::Header::new_gnu();
            h.set_size(4);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            // `append_data` refuses `..`; write the raw name like an attacker would.
            h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../pwned\0");
            h.set_cksum();
            b.append(&h, &b"evil"[..]).unwrap();
        });
        let parent = tempfile::tempdir().unwrap();
        let dest = parent.path().join("dest");
        fs::create_dir(&dest).unwrap();
        let e = unpack_verified(&path, &digest, &dest).unwrap_err();
        assert!(e.to_string().contains(".."), "{e}");
        assert!(!parent.path().join("pwned").exists());
    }
}
