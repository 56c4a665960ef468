//! Reading one file of a build-controlled tree (a lockfile in the source) as the runner,
//! which may be root: every component is opened relative to its parent's descriptor without
//! following a symlink, so a link in the tree can never make the runner read a host file.

use std::ffi::OsStr;
use std::io::{self, Read as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Component, Path};

use super::at::open_dir;

/// Reads the regular file `rel` (relative, no `..`) below the directory `root`, at most
/// `max` bytes. A symlink anywhere on the way, a non-regular file or a larger file is an
/// error (`InvalidInput`, `InvalidData`), never followed or truncated.
pub fn read_beneath(root: &Path, rel: &Path, max: u64) -> io::Result<Vec<u8>> {
    let mut names = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(name) => names.push(name),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the path must be relative, without `.` or `..`",
                ));
            }
        }
    }
    let Some((file_name, dirs)) = names.split_last() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty path"));
    };
    let mut dir = open_dir(None, root.as_os_str())?;
    for name in dirs {
        dir = open_dir(Some(dir.as_raw_fd()), name).map_err(not_a_dir(name))?;
    }
    // The directory's descriptor, named through /proc, so only the last component is
    // resolved, and O_NOFOLLOW refuses it if it is a symlink.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(Path::new(&format!("/proc/self/fd/{}", dir.as_raw_fd())).join(file_name))
        .map_err(|e| {
            if e.raw_os_error() == Some(nix::libc::ELOOP) {
                io::Error::new(io::ErrorKind::InvalidInput, "it is a symlink")
            } else {
                e
            }
        })?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is not a regular file",
        ));
    }
    if meta.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("it is {} bytes; at most {max} are read", meta.len()),
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("it grew past {max} bytes while being read"),
        ));
    }
    Ok(bytes)
}

fn not_a_dir(name: &OsStr) -> impl Fn(io::Error) -> io::Error + '_ {
    move |e| {
        if e.raw_os_error() == Some(nix::libc::ELOOP)
            || e.raw_os_error() == Some(nix::libc::ENOTDIR)
        {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "`{}` on the way is a symlink or not a directory",
                    name.to_string_lossy()
                ),
            )
        } else {
            e
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regular_files_and_refuses_links_and_large_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        std::fs::create_dir(root.join("sub")).expect("mkdir");
        std::fs::write(root.join("sub/Cargo.lock"), b"lock").expect("write");
        std::fs::write(root.join("secret"), b"host secret").expect("write");
        std::os::unix::fs::symlink(root.join("secret"), root.join("link.lock")).expect("ln");
        std::os::unix::fs::symlink(root.join("sub"), root.join("dirlink")).expect("ln");

        assert_eq!(
            read_beneath(root, Path::new("sub/Cargo.lock"), 100).expect("read"),
            b"lock"
        );
        for bad in [
            "link.lock",
            "dirlink/Cargo.lock",
            "../x",
            "/etc/passwd",
            "sub",
        ] {
            let err = read_beneath(root, Path::new(bad), 100).expect_err(bad);
            assert!(
                matches!(
                    err.kind(),
                    io::ErrorKind::InvalidInput | io::ErrorKind::NotFound
                ),
                "{bad}: {err}"
            );
        }
        let err = read_beneath(root, Path::new("secret"), 4).expect_err("too large");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
