//! Applying one layer's tar entries to a rootfs directory, safely.
//!
//! Rules, because layers are hostile input:
//! - paths are made relative and `..` is refused ([`sanitize`]);
//! - nothing is ever written through a symlink: every parent is checked with
//!   `symlink_metadata` ([`ensure_parent_dirs`]), and an existing entry at the target is
//!   removed, never opened;
//! - hard links must name an existing non-directory inside the rootfs, looked up the same way;
//! - symlinks are created as written (they are only resolved inside the sandbox later);
//! - device nodes and FIFOs are skipped and counted;
//! - setuid/setgid bits are dropped, ownership is not restored (files belong to the runner),
//!   xattrs (file capabilities included) are ignored;
//! - directories always keep owner `rwx`, so the runner can finish unpacking and later
//!   delete the tree without privileges.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tar::{Archive, Entry, EntryType};

use super::entry_error::EntryError;
use super::error::ImageError;
use super::safe_path::{ensure_parent_dirs, lookup, remove_existing, sanitize};
use super::whiteout;

/// Permission bits kept on regular files: no setuid, setgid or sticky.
const FILE_MODE_MASK: u32 = 0o777;
/// Permission bits kept on directories: sticky is harmless, setuid/setgid are dropped.
const DIR_MODE_MASK: u32 = 0o1777;
/// Bits always set on directories so the runner can write into and remove them.
const DIR_OWNER_BITS: u32 = 0o700;

/// Counters for what unpacking did besides creating entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct UnpackStats {
    /// Entries applied (including whiteouts and skipped ones).
    pub(crate) entries: u64,
    /// Device nodes and FIFOs that were skipped.
    pub(crate) skipped_special: u64,
}

/// Applies the entries of one layer to a rootfs directory.
#[derive(Debug)]
pub(crate) struct LayerApplier<'a> {
    root: &'a Path,
    layer: usize,
    /// Paths (relative to the root) this layer created, plus all their ancestors.
    touched: HashSet<PathBuf>,
    stats: UnpackStats,
}

impl<'a> LayerApplier<'a> {
    /// An applier for layer `layer` (1-based, for messages) writing into `root`.
    pub(crate) fn new(root: &'a Path, layer: usize) -> Self {
        Self {
            root,
            layer,
            touched: HashSet::new(),
            stats: UnpackStats::default(),
        }
    }

    /// What has been applied so far.
    pub(crate) fn stats(&self) -> UnpackStats {
        self.stats
    }

    /// Applies every entry of `archive`, stopping at the first refusal or failure.
    pub(crate) fn apply<R: Read>(&mut self, archive: &mut Archive<R>) -> Result<(), ImageError> {
        let layer = self.layer;
        let malformed = |source| ImageError::Archive { layer, source };
        for entry in archive.entries().map_err(malformed)? {
            let mut entry = entry.map_err(malformed)?;
            let raw = entry.path_bytes().into_owned();
            self.apply_entry(&mut entry, &raw).map_err(|e| match e {
                EntryError::Refused(reason) => ImageError::UnsafeEntry {
                    layer,
                    path: String::from_utf8_lossy(&raw).into_owned(),
                    reason,
                },
                EntryError::Failed(err) => err,
            })?;
            self.stats.entries += 1;
        }
        Ok(())
    }

    fn apply_entry<R: Read>(
        &mut self,
        entry: &mut Entry<'_, R>,
        raw: &[u8],
    ) -> Result<(), EntryError> {
        let mut kind = entry.header().entry_type();
        match kind {
            EntryType::XGlobalHeader => return Ok(()),
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.stats.skipped_special += 1;
                return Ok(());
            }
            // Pre-POSIX archives mark directories with a trailing slash on a regular entry.
            EntryType::Regular if raw.ends_with(b"/") => kind = EntryType::Directory,
            _ => {}
        }

        let rel = sanitize(raw)?;
        if rel.file_name().is_some_and(whiteout::is_whiteout) {
            return whiteout::apply(self.root, &rel, &self.touched);
        }
        if rel.as_os_str().is_empty() {
            // `./` itself: the rootfs directory's metadata is the cache's business.
            return if kind == EntryType::Directory {
                Ok(())
            } else {
                Err(EntryError::refused("a non-directory entry for the root"))
            };
        }

        ensure_parent_dirs(self.root, &rel)?;
        let target = self.root.join(&rel);
        let existing = match fs::symlink_metadata(&target) {
            Ok(meta) => Some(meta),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(EntryError::io("inspecting", &target, e)),
        };
        let mode = entry
            .header()
            .mode()
            .map_err(|_| EntryError::refused("invalid mode field"))?;

        match kind {
            EntryType::Directory => {
                let perms = Permissions::from_mode((mode & DIR_MODE_MASK) | DIR_OWNER_BITS);
                match existing {
                    // Merging into a directory a lower layer (or this one) made.
                    Some(meta) if meta.file_type().is_dir() => {}
                    other => {
                        if let Some(meta) = other {
                            remove_existing(&target, &meta)?;
                        }
                        DirBuilder::new()
                            .mode(DIR_OWNER_BITS)
                            .create(&target)
                            .map_err(|e| EntryError::io("creating directory", &target, e))?;
                    }
                }
                fs::set_permissions(&target, perms)
                    .map_err(|e| EntryError::io("setting permissions of", &target, e))?;
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                if let Some(meta) = existing {
                    remove_existing(&target, &meta)?;
                }
                let mtime = entry.header().mtime().ok();
                // `create_new` is O_CREAT|O_EXCL: it never follows a symlink at the target.
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&target)
                    .map_err(|e| EntryError::io("creating", &target, e))?;
                io::copy(entry, &mut file).map_err(|e| EntryError::io("writing", &target, e))?;
                file.set_permissions(Permissions::from_mode(mode & FILE_MODE_MASK))
                    .map_err(|e| EntryError::io("setting permissions of", &target, e))?;
                if let Some(secs) = mtime {
                    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
                    file.set_modified(when)
                        .map_err(|e| EntryError::io("setting mtime of", &target, e))?;
                }
            }
            EntryType::Symlink => {
                let link = entry
                    .link_name_bytes()
                    .ok_or_else(|| EntryError::refused("symlink without a target"))?
                    .into_owned();
                if link.is_empty() || link.contains(&0) {
                    return Err(EntryError::refused(
                        "symlink target is empty or contains NUL",
                    ));
                }
                if let Some(meta) = existing {
                    remove_existing(&target, &meta)?;
                }
                std::os::unix::fs::symlink(OsStr::from_bytes(&link), &target)
                    .map_err(|e| EntryError::io("creating symlink", &target, e))?;
            }
            EntryType::Link => {
                let link = entry
                    .link_name_bytes()
                    .ok_or_else(|| EntryError::refused("hard link without a target"))?
                    .into_owned();
                let link_rel = sanitize(&link)?;
                if link_rel == rel {
                    return Err(EntryError::refused("hard link to itself"));
                }
                let source = match lookup(self.root, &link_rel)? {
                    Some((path, meta)) if !meta.file_type().is_dir() => path,
                    Some(_) => return Err(EntryError::refused("hard link to a directory")),
                    None if link_rel.as_os_str().is_empty() => {
                        return Err(EntryError::refused("hard link to the root"));
                    }
                    None => {
                        return Err(EntryError::refused(format!(
                            "hard link target /{} does not exist in the rootfs",
                            link_rel.display()
                        )));
                    }
                };
                if let Some(meta) = existing {
                    remove_existing(&target, &meta)?;
                }
                // linkat(2) without AT_SYMLINK_FOLLOW: a symlink source is linked, not followed.
                fs::hard_link(&source, &target)
                    .map_err(|e| EntryError::io("creating hard link", &target, e))?;
            }
            other => {
                return Err(EntryError::refused(format!(
                    "unsupported tar entry type {:?}",
                    other.as_byte() as char
                )));
            }
        }
        self.touch(&rel);
        Ok(())
    }

    /// Records that this layer created `rel` (and, implicitly, its ancestors).
    fn touch(&mut self, rel: &Path) {
        for ancestor in rel.ancestors() {
            if !self.touched.insert(ancestor.to_path_buf()) {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn header(kind: EntryType, path: &str, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_path(path).expect("path");
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_704_067_200);
        h.set_cksum();
        h
    }

    fn apply(root: &Path, tar_bytes: Vec<u8>) -> Result<UnpackStats, ImageError> {
        let mut applier = LayerApplier::new(root, 1);
        applier.apply(&mut Archive::new(tar_bytes.as_slice()))?;
        Ok(applier.stats())
    }

    #[test]
    fn image_unpack_skips_devices_and_drops_setuid() {
        let mut b = tar::Builder::new(Vec::new());
        b.append(&header(EntryType::Directory, "dev/", 0o755, 0), io::empty())
            .expect("append");
        let mut null = header(EntryType::Char, "dev/null", 0o666, 0);
        null.set_device_major(1).expect("major");
        null.set_device_minor(3).expect("minor");
        null.set_cksum();
        b.append(&null, io::empty()).expect("append");
        b.append(&header(EntryType::Fifo, "fifo", 0o644, 0), io::empty())
            .expect("append");
        b.append(
            &header(EntryType::Regular, "usr/bin/su", 0o4755, 2),
            &b"su"[..],
        )
        .expect("append");
        b.append(
            &header(EntryType::Directory, "shared/", 0o2775, 0),
            io::empty(),
        )
        .expect("append");
        let root = tempfile::tempdir().expect("tempdir");
        let stats = apply(root.path(), b.into_inner().expect("tar")).expect("apply");
        assert_eq!(stats.skipped_special, 2);
        assert_eq!(stats.entries, 5);
        assert!(!root.path().join("dev/null").exists());
        assert!(!root.path().join("fifo").exists());
        let su = fs::metadata(root.path().join("usr/bin/su")).expect("su");
        assert_eq!(su.mode() & 0o7777, 0o755);
        assert_eq!(su.mtime(), 1_704_067_200);
        let shared = fs::metadata(root.path().join("shared")).expect("shared");
        assert_eq!(shared.mode() & 0o7777, 0o775);
    }

    #[test]
    fn image_unpack_replaces_symlink_instead_of_writing_through_it() {
        let outside = tempfile::tempdir().expect("tempdir");
        let victim = outside.path().join("victim");
        fs::write(&victim, b"original").expect("write");
        let mut b = tar::Builder::new(Vec::new());
        let mut link = header(EntryType::Symlink, "x", 0o777, 0);
        link.set_link_name(&victim).expect("link");
        link.set_cksum();
        b.append(&link, io::empty()).expect("append");
        b.append(&header(EntryType::Regular, "x", 0o644, 5), &b"owned"[..])
            .expect("append");
        let root = tempfile::tempdir().expect("tempdir");
        apply(root.path(), b.into_inner().expect("tar")).expect("apply");
        assert_eq!(fs::read(&victim).expect("read"), b"original");
        assert_eq!(fs::read(root.path().join("x")).expect("read"), b"owned");
    }
}
