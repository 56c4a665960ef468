//! Directory-descriptor-relative primitives shared by the tree walks: names are looked up
//! in an open directory, never as a path from `/`, so no path grows past `PATH_MAX` and no
//! symlink is followed.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::AsRawFd as _;

use nix::dir::{Dir, Type};
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};

/// The entries of `dir` but `.` and `..`, each with whether it is a directory (a symlink
/// never is).
pub(super) fn entries(dir: &mut Dir) -> io::Result<Vec<(CString, bool)>> {
    let fd = dir.as_raw_fd();
    let mut out = Vec::new();
    for entry in dir.iter() {
        let entry = entry.map_err(io::Error::from)?;
        let name = entry.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        let is_dir = match entry.file_type() {
            Some(Type::Directory) => true,
            Some(_) => false,
            None => nix::sys::stat::fstatat(Some(fd), name, AtFlags::AT_SYMLINK_NOFOLLOW)
                .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
                .unwrap_or(false),
        };
        out.push((name.to_owned(), is_dir));
    }
    Ok(out)
}

/// Opens the directory `name` (relative to the directory `at`, or the working directory)
/// without following a symlink.
pub(super) fn open_dir(at: Option<i32>, name: &OsStr) -> io::Result<Dir> {
    Dir::openat(
        at,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
}

/// Helpers for the tree tests.
#[cfg(test)]
pub(super) mod testing {
    use std::ffi::{CString, OsStr};
    use std::os::fd::AsRawFd as _;
    use std::os::unix::ffi::OsStrExt as _;
    use std::path::Path;

    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;

    use super::open_dir;

    /// For tests: a chain of `depth` nested directories below `root`, made with relative paths (like
    /// a build would: the full path is far longer than PATH_MAX).
    pub fn deep_chain(root: &Path, depth: usize) {
        let mut dir = open_dir(None, root.as_os_str()).expect("open");
        for i in 0..depth {
            let name = CString::new(format!("d{}", i % 10)).expect("name");
            nix::sys::stat::mkdirat(Some(dir.as_raw_fd()), name.as_c_str(), Mode::S_IRWXU)
                .expect("mkdirat");
            if i % 100 == 0 {
                let file = CString::new("f").expect("name");
                let fd = nix::fcntl::openat(
                    Some(dir.as_raw_fd()),
                    file.as_c_str(),
                    OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                    Mode::S_IRUSR,
                )
                .expect("create");
                let _ = nix::unistd::close(fd);
            }
            dir = open_dir(Some(dir.as_raw_fd()), OsStr::from_bytes(name.as_bytes()))
                .expect("descend");
        }
    }
}
