//! Changing the owner of a tree a build wrote (a rootless step's files, handed back to the
//! runner so it can remove them): iterative, relative to directory descriptors (no path
//! grows past `PATH_MAX`), one directory open at a time (the way back up is `..` of the
//! open one: the walk runs when no step does, so nothing moves the tree meanwhile), never
//! following a symlink. Any depth works.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::AsRawFd as _;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::unistd::{Gid, Uid};

use super::at::{entries, open_dir};

/// `lchown`s `root` and everything below it to `uid`:`gid`. A missing entry (removed since
/// it was listed) is skipped.
pub fn lchown_tree(root: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let owner = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
    let chown = |at: Option<i32>, name: &CStr| -> io::Result<()> {
        match nix::unistd::fchownat(at, name, owner.0, owner.1, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(io::Error::from(e)),
        }
    };
    let root_c = CString::new(root.as_os_str().as_bytes()).map_err(io::Error::other)?;
    chown(None, &root_c)?;
    if !std::fs::symlink_metadata(root)?.is_dir() {
        return Ok(());
    }
    let mut dir = open_dir(None, root.as_os_str())?;
    // The entries still to visit at each level, from `root` down to the open directory.
    let mut levels = vec![entries(&mut dir)?];
    while let Some(level) = levels.last_mut() {
        let Some((name, is_dir)) = level.pop() else {
            levels.pop();
            if !levels.is_empty() {
                dir = open_dir(Some(dir.as_raw_fd()), OsStr::new(".."))?;
            }
            continue;
        };
        let fd = dir.as_raw_fd();
        chown(Some(fd), &name)?;
        if !is_dir {
            continue;
        }
        match open_dir(Some(fd), OsStr::from_bytes(name.as_bytes())) {
            Ok(mut child) => {
                levels.push(entries(&mut child)?);
                dir = child;
            }
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(Errno::ENOTDIR as i32) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::super::at::testing::deep_chain;
    use super::*;

    /// The deepest entry's owner, found by walking down with relative opens.
    fn deepest_owner(root: &Path) -> (u32, u32) {
        let mut dir = open_dir(None, root.as_os_str()).expect("open");
        loop {
            let next = entries(&mut dir)
                .expect("list")
                .into_iter()
                .find(|(_, is_dir)| *is_dir);
            let Some((name, _)) = next else {
                let st = nix::sys::stat::fstat(dir.as_raw_fd()).expect("fstat");
                return (st.st_uid, st.st_gid);
            };
            dir = open_dir(Some(dir.as_raw_fd()), OsStr::from_bytes(name.as_bytes()))
                .expect("descend");
        }
    }

    #[test]
    fn a_tree_sixteen_thousand_levels_deep_changes_owner_on_a_small_stack() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: chown to another uid needs root");
            return;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("work");
        std::fs::create_dir(&root).expect("mkdir");
        deep_chain(&root, 16_000);
        let r = root.clone();
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || lchown_tree(&r, 4242, 4343))
            .expect("spawn")
            .join()
            .expect("no overflow")
            .expect("chowned");
        let meta = std::fs::metadata(&root).expect("stat");
        assert_eq!((meta.uid(), meta.gid()), (4242, 4343));
        assert_eq!(deepest_owner(&root), (4242, 4343));
        crate::tree::remove_tree(&root).expect("remove");
    }

    #[test]
    fn a_symlink_is_chowned_itself_and_never_followed() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: chown to another uid needs root");
            return;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, "host file").expect("write");
        let root = tmp.path().join("work");
        std::fs::create_dir(&root).expect("mkdir");
        std::os::unix::fs::symlink(&outside, root.join("link")).expect("symlink");
        std::os::unix::fs::symlink(tmp.path(), root.join("dirlink")).expect("symlink");
        lchown_tree(&root, 4242, 4343).expect("chowned");
        let link = std::fs::symlink_metadata(root.join("link")).expect("lstat");
        assert_eq!((link.uid(), link.gid()), (4242, 4343));
        let target = std::fs::metadata(&outside).expect("stat");
        assert_eq!(
            (target.uid(), target.gid()),
            (0, 0),
            "the target is untouched"
        );
        assert_eq!(std::fs::metadata(tmp.path()).expect("stat").uid(), 0);
    }
}
