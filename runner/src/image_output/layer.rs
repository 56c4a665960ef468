//! One image layer from a directory, deterministically: entries in byte order of their
//! paths, every mtime `SOURCE_DATE_EPOCH`, owner 0:0 without names, no xattrs, only the
//! permission bits kept. The same tree gives the same bytes, so the same digest.
//!
//! The tree is the build's: nothing is followed (symlinks are packaged as links after a
//! check that their target stays inside the tree), a hard link must have every one of its
//! names inside the tree, and setuid bits and device nodes are refused unless the profile
//! allows them.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use airlock_attest::{HashingWriter, Sha256Digest};
use airlock_job::LayerCompression;
use flate2::GzBuilder;
use tar::{EntryType, Header};

use super::ImageOutputError;
use crate::profile::ImagePolicy;

/// The layer blob written to a file, with both digests.
#[derive(Debug, Clone)]
pub(crate) struct LayerBlob {
    /// Where the blob is.
    pub(crate) file: PathBuf,
    /// sha256 of the blob as stored.
    pub(crate) digest: Sha256Digest,
    /// Size of the blob.
    pub(crate) size: u64,
    /// sha256 of the uncompressed tar (the config's `diff_id`).
    pub(crate) diff_id: Sha256Digest,
    /// The OCI media type.
    pub(crate) media_type: &'static str,
}

/// What to package and the rules for it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayerRules {
    /// Every mtime.
    pub(crate) epoch: u64,
    /// How the blob is stored.
    pub(crate) compression: LayerCompression,
    /// What the profile allows.
    pub(crate) policy: ImagePolicy,
    /// Most bytes of file content.
    pub(crate) max_bytes: u64,
}

/// One entry found in the tree, before it is written.
struct Found {
    rel: String,
    path: PathBuf,
    meta: fs::Metadata,
}

/// Packages the tree at `root` into `dest` (created; it must not exist).
pub(crate) fn write_layer(
    root: &Path,
    dest: &Path,
    rules: LayerRules,
) -> Result<LayerBlob, ImageOutputError> {
    let entries = list(root)?;
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(dest)
        .map_err(|e| ImageOutputError::io("creating", dest, e))?;
    let io_err = |e| ImageOutputError::io("writing", dest, e);
    match rules.compression {
        LayerCompression::None => {
            let mut tar = tar::Builder::new(HashingWriter::new(file));
            append_all(&mut tar, &entries, rules)?;
            let (file, digest, size) = tar.into_inner().map_err(io_err)?.finish();
            file.sync_all().map_err(io_err)?;
            Ok(LayerBlob {
                file: dest.to_path_buf(),
                digest,
                size,
                diff_id: digest,
                media_type: "application/vnd.oci.image.layer.v1.tar",
            })
        }
        LayerCompression::Gzip => {
            // mtime 0 and no file name in the gzip header: nothing but the tree decides
            // the bytes.
            let gz = GzBuilder::new()
                .mtime(0)
                .write(HashingWriter::new(file), flate2::Compression::default());
            let mut tar = tar::Builder::new(HashingWriter::new(gz));
            append_all(&mut tar, &entries, rules)?;
            let (gz, diff_id, _) = tar.into_inner().map_err(io_err)?.finish();
            let (file, digest, size) = gz.finish().map_err(io_err)?.finish();
            file.sync_all().map_err(io_err)?;
            Ok(LayerBlob {
                file: dest.to_path_buf(),
                digest,
                size,
                diff_id,
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
            })
        }
    }
}

/// Every entry under `root`, in byte order of the path, without following anything.
fn list(root: &Path) -> Result<Vec<Found>, ImageOutputError> {
    let meta = fs::symlink_metadata(root).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ImageOutputError::refused("", "the rootfs was not produced"),
        _ => ImageOutputError::io("inspecting", root, e),
    })?;
    if !meta.is_dir() {
        return Err(ImageOutputError::refused(
            "",
            "the rootfs is not a directory (a symlink or a file)",
        ));
    }
    let mut found = Vec::new();
    let mut stack: Vec<(String, usize)> = vec![(String::new(), 0)];
    while let Some((rel, depth)) = stack.pop() {
        let dir = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        let mut names = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| ImageOutputError::io("listing", &dir, e))? {
            let entry = entry.map_err(|e| ImageOutputError::io("listing", &dir, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                return Err(ImageOutputError::refused(
                    &format!("{rel}/{}", entry.file_name().to_string_lossy()),
                    "the name is not UTF-8",
                ));
            };
            names.push(name);
        }
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if name.starts_with(".wh.") {
                return Err(ImageOutputError::refused(
                    &child,
                    "names starting with `.wh.` are OCI whiteouts, which delete files of \
                     lower layers; rename it",
                ));
            }
            let path = dir.join(&name);
            let meta = fs::symlink_metadata(&path)
                .map_err(|e| ImageOutputError::io("inspecting", &path, e))?;
            if found.len() >= crate::tree::MAX_ENTRIES {
                return Err(ImageOutputError::refused(
                    &child,
                    &format!("more than {} entries", crate::tree::MAX_ENTRIES),
                ));
            }
            if meta.is_dir() {
                if depth + 1 > crate::tree::MAX_DEPTH {
                    return Err(ImageOutputError::refused(
                        &child,
                        &format!("nested deeper than {} directories", crate::tree::MAX_DEPTH),
                    ));
                }
                subdirs.push(child.clone());
            }
            found.push(Found {
                rel: child,
                path,
                meta,
            });
        }
        for d in subdirs.into_iter().rev() {
            stack.push((d, depth + 1));
        }
    }
    // Depth-first in name order gives `a/`, `a/b`, `a-b`: sort by path bytes instead, so
    // the order is a plain function of the names.
    found.sort_by(|a, b| a.rel.as_bytes().cmp(b.rel.as_bytes()));
    Ok(found)
}

fn append_all<W: Write>(
    tar: &mut tar::Builder<W>,
    entries: &[Found],
    rules: LayerRules,
) -> Result<(), ImageOutputError> {
    // Hard links: (dev, ino) -> the first name and how many names were seen.
    let mut links: BTreeMap<(u64, u64), (String, u64, u64)> = BTreeMap::new();
    let mut total = 0u64;
    for e in entries {
        let ft = e.meta.file_type();
        let mode = e.meta.mode() & 0o7777;
        if mode & 0o6000 != 0 && !rules.policy.allow_setuid && !ft.is_symlink() {
            return Err(ImageOutputError::refused(
                &e.rel,
                "it has the setuid or setgid bit, which this profile does not allow in images \
                 ([images] allow_setuid)",
            ));
        }
        let mut header = Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(rules.epoch);
        header.set_mode(mode);
        let write_err = |err: io::Error| ImageOutputError::io("packaging", &e.path, err);
        if ft.is_dir() {
            header.set_entry_type(EntryType::Directory);
            header.set_size(0);
            tar.append_data(&mut header, format!("{}/", e.rel), io::empty())
                .map_err(write_err)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&e.path)
                .map_err(|err| ImageOutputError::io("reading", &e.path, err))?;
            let Some(target) = target.to_str() else {
                return Err(ImageOutputError::refused(
                    &e.rel,
                    "the link target is not UTF-8",
                ));
            };
            if escapes(&e.rel, target) {
                return Err(ImageOutputError::refused(
                    &e.rel,
                    &format!("the symlink's target `{target}` leads outside the image rootfs"),
                ));
            }
            header.set_entry_type(EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            tar.append_link(&mut header, &e.rel, target)
                .map_err(write_err)?;
        } else if ft.is_file() {
            if e.meta.nlink() > 1 {
                let key = (e.meta.dev(), e.meta.ino());
                if let Some((first, _, seen)) = links.get_mut(&key) {
                    *seen += 1;
                    header.set_entry_type(EntryType::Link);
                    header.set_size(0);
                    let first = first.clone();
                    tar.append_link(&mut header, &e.rel, &first)
                        .map_err(write_err)?;
                    continue;
                }
                links.insert(key, (e.rel.clone(), e.meta.nlink(), 1));
            }
            total = total.saturating_add(e.meta.len());
            if total > rules.max_bytes {
                return Err(ImageOutputError::refused(
                    &e.rel,
                    &format!(
                        "the rootfs holds more than the ceiling of {} bytes",
                        rules.max_bytes
                    ),
                ));
            }
            let file = open_regular(&e.path, &e.meta)
                .map_err(|reason| ImageOutputError::refused(&e.rel, &reason))?;
            header.set_entry_type(EntryType::Regular);
            header.set_size(e.meta.len());
            tar.append_data(&mut header, &e.rel, file)
                .map_err(write_err)?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            if !rules.policy.allow_devices {
                return Err(ImageOutputError::refused(
                    &e.rel,
                    "device nodes and FIFOs are not allowed in images by this profile \
                     ([images] allow_devices)",
                ));
            }
            let (kind, rdev) = if ft.is_char_device() {
                (EntryType::Char, e.meta.rdev())
            } else if ft.is_block_device() {
                (EntryType::Block, e.meta.rdev())
            } else {
                (EntryType::Fifo, 0)
            };
            header.set_entry_type(kind);
            header.set_size(0);
            let major = nix::sys::stat::major(rdev);
            let minor = nix::sys::stat::minor(rdev);
            header
                .set_device_major(u32::try_from(major).unwrap_or(u32::MAX))
                .map_err(write_err)?;
            header
                .set_device_minor(u32::try_from(minor).unwrap_or(u32::MAX))
                .map_err(write_err)?;
            tar.append_data(&mut header, &e.rel, io::empty())
                .map_err(write_err)?;
        } else {
            return Err(ImageOutputError::refused(
                &e.rel,
                "a socket cannot be packaged in an image",
            ));
        }
    }
    if let Some((first, nlink, seen)) = links.values().find(|(_, n, s)| s < n) {
        return Err(ImageOutputError::refused(
            first,
            &format!(
                "it has {nlink} hard links but only {seen} inside the rootfs; copy the file \
                 instead of linking it"
            ),
        ));
    }
    tar.finish()
        .map_err(|e| ImageOutputError::io("finishing", Path::new("layer"), e))?;
    Ok(())
}

/// Opens a regular file without following links and checks it is the file listed.
fn open_regular(path: &Path, listed: &fs::Metadata) -> Result<File, String> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot open without following links: {e}"))?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() || meta.ino() != listed.ino() || meta.len() != listed.len() {
        return Err("the file changed while it was packaged".into());
    }
    Ok(file)
}

/// True when a link at `rel` (relative to the rootfs) pointing at `target` would resolve,
/// lexically, above the rootfs: an absolute target is taken from the rootfs's top, as the
/// image's users see it.
fn escapes(rel: &str, target: &str) -> bool {
    if target.is_empty() || target.contains('\0') {
        return true;
    }
    let mut depth: i64 = if target.starts_with('/') {
        0
    } else {
        // The link's own directory.
        i64::try_from(rel.matches('/').count()).unwrap_or(i64::MAX)
    };
    for c in Path::new(target).components() {
        match c {
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            Component::Normal(_) => depth += 1,
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn rules(compression: LayerCompression) -> LayerRules {
        LayerRules {
            epoch: 1_700_000_000,
            compression,
            policy: ImagePolicy::default(),
            max_bytes: 1 << 30,
        }
    }

    fn tree(root: &Path) {
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::write(root.join("usr/bin/m"), b"#!m\n").unwrap();
        fs::set_permissions(root.join("usr/bin/m"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(root.join("a-b"), b"x").unwrap();
        symlink("usr/bin/m", root.join("m")).unwrap();
        symlink("/usr/bin", root.join("usr/sbin")).unwrap();
    }

    fn entries(blob: &Path, gz: bool) -> Vec<(String, u32, u64, u64)> {
        let file = File::open(blob).unwrap();
        let reader: Box<dyn io::Read> = if gz {
            Box::new(flate2::read::GzDecoder::new(file))
        } else {
            Box::new(file)
        };
        let mut archive = tar::Archive::new(reader);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn the_same_tree_gives_the_same_digest_whatever_its_times_and_owner() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        tree(&a);
        // Same content, created in another order and at another time.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        fs::create_dir_all(b.join("usr")).unwrap();
        symlink("usr/bin/m", b.join("m")).unwrap();
        fs::write(b.join("a-b"), b"x").unwrap();
        fs::create_dir(b.join("usr/bin")).unwrap();
        symlink("/usr/bin", b.join("usr/sbin")).unwrap();
        fs::write(b.join("usr/bin/m"), b"#!m\n").unwrap();
        fs::set_permissions(b.join("usr/bin/m"), fs::Permissions::from_mode(0o755)).unwrap();
        for (compression, gz) in [
            (LayerCompression::Gzip, true),
            (LayerCompression::None, false),
        ] {
            let la =
                write_layer(&a, &dir.path().join(format!("la{gz}")), rules(compression)).unwrap();
            let lb =
                write_layer(&b, &dir.path().join(format!("lb{gz}")), rules(compression)).unwrap();
            assert_eq!(la.digest, lb.digest);
            assert_eq!(la.diff_id, lb.diff_id);
            assert_eq!(la.digest, Sha256Digest::of(&fs::read(&la.file).unwrap()));
            let names: Vec<_> = entries(&la.file, gz).into_iter().collect();
            assert_eq!(
                names.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
                ["a-b", "m", "usr/", "usr/bin/", "usr/bin/m", "usr/sbin"]
            );
            assert!(
                names.iter().all(|e| e.2 == 0 && e.3 == 1_700_000_000),
                "{names:?}"
            );
            assert_eq!(names[4].1, 0o755);
        }
        // Content decides: one changed byte changes the digest.
        fs::write(b.join("a-b"), b"y").unwrap();
        let la = write_layer(&a, &dir.path().join("x1"), rules(LayerCompression::Gzip)).unwrap();
        let lb = write_layer(&b, &dir.path().join("x2"), rules(LayerCompression::Gzip)).unwrap();
        assert_ne!(la.digest, lb.digest);
    }

    #[test]
    fn a_symlink_leading_out_of_the_rootfs_is_refused() {
        for target in ["../../etc/shadow", "../usr/../../x", ""] {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("r");
            fs::create_dir_all(root.join("usr")).unwrap();
            if target.is_empty() {
                continue;
            }
            symlink(target, root.join("usr/l")).unwrap();
            let e = write_layer(&root, &dir.path().join("l"), rules(LayerCompression::None))
                .unwrap_err();
            assert!(
                e.is_build_failure() && e.to_string().contains("outside"),
                "{e}"
            );
        }
        assert!(!escapes("usr/bin/l", "../lib/x"));
        assert!(
            escapes("l", "/../etc"),
            "a tool joining the rootfs and the target would leave it"
        );
        assert!(!escapes("l", "/usr/../etc"));
        assert!(escapes("l", ".."));
        assert!(escapes("usr/l", "../.."));
    }

    #[test]
    fn setuid_bits_and_fifos_are_refused_unless_the_profile_allows_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("r");
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("su"), b"x").unwrap();
        fs::set_permissions(root.join("su"), fs::Permissions::from_mode(0o4755)).unwrap();
        let e =
            write_layer(&root, &dir.path().join("l1"), rules(LayerCompression::None)).unwrap_err();
        assert!(e.to_string().contains("setuid"), "{e}");
        let mut allowed = rules(LayerCompression::None);
        allowed.policy.allow_setuid = true;
        let layer = write_layer(&root, &dir.path().join("l2"), allowed).unwrap();
        assert_eq!(entries(&layer.file, false)[0].1, 0o4755);

        fs::remove_file(root.join("su")).unwrap();
        nix::unistd::mkfifo(&root.join("p"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let e =
            write_layer(&root, &dir.path().join("l3"), rules(LayerCompression::None)).unwrap_err();
        assert!(e.to_string().contains("allow_devices"), "{e}");
        let mut allowed = rules(LayerCompression::None);
        allowed.policy.allow_devices = true;
        write_layer(&root, &dir.path().join("l4"), allowed).unwrap();
    }

    #[test]
    fn hard_links_inside_the_rootfs_are_links_and_links_out_of_it_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("r");
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("a"), b"data").unwrap();
        fs::hard_link(root.join("a"), root.join("b")).unwrap();
        let layer =
            write_layer(&root, &dir.path().join("l1"), rules(LayerCompression::None)).unwrap();
        let mut archive = tar::Archive::new(File::open(&layer.file).unwrap());
        let kinds: Vec<_> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().header().entry_type())
            .collect();
        assert_eq!(kinds, [EntryType::Regular, EntryType::Link]);
        fs::hard_link(root.join("a"), dir.path().join("outside")).unwrap();
        let e =
            write_layer(&root, &dir.path().join("l2"), rules(LayerCompression::None)).unwrap_err();
        assert!(e.to_string().contains("hard links"), "{e}");
    }

    #[test]
    fn whiteouts_and_a_missing_rootfs_fail_the_build() {
        let dir = tempfile::tempdir().unwrap();
        let e = write_layer(
            &dir.path().join("none"),
            &dir.path().join("l"),
            rules(LayerCompression::None),
        )
        .unwrap_err();
        assert!(e.is_build_failure(), "{e}");
        let root = dir.path().join("r");
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join(".wh.etc"), b"").unwrap();
        let e =
            write_layer(&root, &dir.path().join("l2"), rules(LayerCompression::None)).unwrap_err();
        assert!(e.to_string().contains("whiteout"), "{e}");
    }
}
