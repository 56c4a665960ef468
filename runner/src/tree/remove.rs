//! Removing a tree a build wrote, whatever its shape: iterative (no recursion, so no stack
//! to overflow), relative to directory descriptors (so no path grows past `PATH_MAX`),
//! never following a symlink, with a bounded number of open descriptors: a subtree deeper
//! than [`MAX_OPEN_DEPTH`] is moved up to the top level under a fresh name and removed
//! from there.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::AsRawFd as _;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::unistd::UnlinkatFlags;

use super::at::{entries, open_dir};

/// Most directories held open at once while descending.
pub const MAX_OPEN_DEPTH: usize = 64;

/// One directory being emptied: its descriptor, its name in its parent, and the entries
/// still to remove (read once when it was opened).
struct Frame {
    dir: Dir,
    name: Option<CString>,
    pending: Vec<(CString, bool)>,
}

/// Removes `path` and everything below it. A missing `path` is fine; a symlink is removed,
/// not followed.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return std::fs::remove_file(path);
    }
    let root = open_dir(None, path.as_os_str())?;
    empty(root)?;
    match std::fs::remove_dir(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Empties the directory `root` (keeps it).
fn empty(root: Dir) -> io::Result<()> {
    let root_fd = root.as_raw_fd();
    let mut stack = vec![frame(root, None)?];
    let mut flattened = 0u64;
    while let Some(top) = stack.last_mut() {
        let Some((name, is_dir)) = top.pending.pop() else {
            // Empty now. The top level may have received flattened subtrees meanwhile.
            if stack.len() == 1 {
                let reread = entries(&mut stack[0].dir)?;
                if reread.is_empty() {
                    break;
                }
                stack[0].pending = reread;
                continue;
            }
            let done = stack.pop().ok_or_else(|| io::Error::other("empty stack"))?;
            let parent = stack.last().ok_or_else(|| io::Error::other("no parent"))?;
            if let Some(name) = &done.name {
                drop(done.dir);
                unlink(parent.dir.as_raw_fd(), name, true)?;
            }
            continue;
        };
        let fd = top.dir.as_raw_fd();
        if !is_dir {
            unlink(fd, &name, false)?;
            continue;
        }
        if stack.len() >= MAX_OPEN_DEPTH {
            // Too deep to hold open: move the subtree to the top and take it from there.
            flattened += 1;
            let fresh =
                CString::new(format!(".airlock-removing-{flattened}")).map_err(io::Error::other)?;
            nix::fcntl::renameat(Some(fd), name.as_c_str(), Some(root_fd), fresh.as_c_str())
                .map_err(io::Error::from)?;
            continue;
        }
        match open_dir(Some(fd), OsStr::from_bytes(name.as_bytes())) {
            Ok(child) => {
                let child = frame(child, Some(name))?;
                stack.push(child);
            }
            // Replaced by a file since it was listed: remove that instead.
            Err(e) if e.raw_os_error() == Some(Errno::ENOTDIR as i32) => {
                unlink(fd, &name, false)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn frame(mut dir: Dir, name: Option<CString>) -> io::Result<Frame> {
    let pending = entries(&mut dir)?;
    Ok(Frame { dir, name, pending })
}

fn unlink(at: i32, name: &CString, dir: bool) -> io::Result<()> {
    let flag = if dir {
        UnlinkatFlags::RemoveDir
    } else {
        UnlinkatFlags::NoRemoveDir
    };
    match nix::unistd::unlinkat(Some(at), name.as_c_str(), flag) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::at::testing::deep_chain;
    use super::*;

    #[test]
    fn a_tree_sixteen_thousand_levels_deep_is_removed_without_recursion() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("work");
        std::fs::create_dir(&root).expect("mkdir");
        deep_chain(&root, 16_000);
        // On a small stack, as a worker thread would have: recursion would overflow it.
        let r = root.clone();
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || remove_tree(&r))
            .expect("spawn")
            .join()
            .expect("no overflow")
            .expect("removed");
        assert!(!root.exists());
    }

    #[test]
    fn symlinks_are_removed_not_followed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let keep = tmp.path().join("keep");
        std::fs::create_dir(&keep).expect("mkdir");
        std::fs::write(keep.join("precious"), "x").expect("write");
        let root = tmp.path().join("work");
        std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
        std::os::unix::fs::symlink(&keep, root.join("a/b/link")).expect("ln");
        std::os::unix::fs::symlink(&keep, tmp.path().join("top-link")).expect("ln");
        remove_tree(&root).expect("removed");
        remove_tree(&tmp.path().join("top-link")).expect("removed");
        assert!(!root.exists());
        assert!(keep.join("precious").exists());
        remove_tree(&tmp.path().join("missing")).expect("missing is fine");
    }
}
