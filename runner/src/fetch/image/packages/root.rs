//! Reading files of an untrusted rootfs as if it were `/`, without ever leaving it.
//!
//! Every lookup goes through `openat2(2)` with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS` on a
//! descriptor of the rootfs: absolute and relative symlinks and `..` are resolved against the
//! rootfs, never the host, and `/proc/self/fd`-style magic links are refused. A file is first
//! opened `O_PATH` and checked to be a regular file before it is opened for reading, so a
//! FIFO or device node is never opened for real (no blocking, no driver side effects); the
//! reading open adds `O_NONBLOCK` in case the entry was swapped in between, and the two opens
//! must name the same inode.
//!
//! rustix is used rather than nix because its `openat2` returns an `OwnedFd`, so no `unsafe`
//! is needed to take ownership of the descriptor.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Dir, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

use super::PackagesError;

/// How many times a lookup is retried when the kernel reports a concurrent rename (`EAGAIN`).
const RESOLVE_RETRIES: usize = 8;

/// A regular file opened inside the rootfs.
pub(super) struct RegularFile {
    /// The open file, positioned at its start.
    pub(super) file: File,
    /// Its size at open time.
    pub(super) size: u64,
    /// `(st_dev, st_ino)`, to recognise the same file reached through several names.
    pub(super) identity: (u64, u64),
}

/// A rootfs directory, opened once; all lookups are relative to it.
#[derive(Debug)]
pub(super) struct ImageRoot {
    /// `O_PATH | O_DIRECTORY` descriptor of the rootfs.
    dir: OwnedFd,
}

impl ImageRoot {
    /// Opens the rootfs directory itself (a trusted path chosen by the runner).
    pub(super) fn open(rootfs: &Path) -> Result<Self, PackagesError> {
        let dir = rustix::fs::open(
            rootfs,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| PackagesError::OpenRoot {
            path: rootfs.to_path_buf(),
            source: e.into(),
        })?;
        Ok(Self { dir })
    }

    /// Resolves `path` (an in-image path) inside the rootfs. `None` if it, or a parent, does
    /// not exist or a parent is not a directory.
    fn resolve(&self, path: &str, flags: OFlags) -> Result<Option<OwnedFd>, PackagesError> {
        // Absolute paths are already taken relative to the root under RESOLVE_IN_ROOT; the
        // leading `/` is dropped anyway so nothing depends on that subtlety.
        let relative = PathBuf::from(path.trim_start_matches('/'));
        let relative = if relative.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            relative
        };
        // openat2 refuses O_PATH combined with anything but O_DIRECTORY/O_NOFOLLOW/O_CLOEXEC.
        let flags = if flags.contains(OFlags::PATH) {
            flags | OFlags::CLOEXEC
        } else {
            flags | OFlags::CLOEXEC | OFlags::NOCTTY
        };
        let mut attempts = 0;
        loop {
            let result = rustix::fs::openat2(
                &self.dir,
                &relative,
                flags,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            );
            match result {
                Ok(fd) => return Ok(Some(fd)),
                Err(Errno::NOENT | Errno::NOTDIR) => return Ok(None),
                Err(Errno::AGAIN) if attempts < RESOLVE_RETRIES => attempts += 1,
                Err(e) => return Err(io_error(path, e.into())),
            }
        }
    }

    /// Opens `path` as a regular file. `None` if it does not exist; an error if it exists but
    /// is something else (directory, FIFO, device, socket).
    pub(super) fn open_regular(&self, path: &str) -> Result<Option<RegularFile>, PackagesError> {
        let Some(probe) = self.resolve(path, OFlags::PATH)? else {
            return Ok(None);
        };
        let before = stat(path, &probe)?;
        require_regular(path, &before)?;
        let Some(fd) = self.resolve(path, OFlags::RDONLY | OFlags::NONBLOCK)? else {
            return Ok(None);
        };
        let after = stat(path, &fd)?;
        require_regular(path, &after)?;
        if (before.st_dev, before.st_ino) != (after.st_dev, after.st_ino) {
            return Err(io_error(
                path,
                io::Error::other("the file changed while it was being opened"),
            ));
        }
        Ok(Some(RegularFile {
            file: File::from(fd),
            size: u64::try_from(after.st_size).unwrap_or(0),
            identity: (after.st_dev, after.st_ino),
        }))
    }

    /// Whether `path` exists as a regular file (used to spot databases we cannot read).
    pub(super) fn is_regular(&self, path: &str) -> Result<bool, PackagesError> {
        let Some(probe) = self.resolve(path, OFlags::PATH)? else {
            return Ok(false);
        };
        let st = stat(path, &probe)?;
        Ok(FileType::from_raw_mode(st.st_mode) == FileType::RegularFile)
    }

    /// Reads all of `path`. `None` if missing; [`PackagesError::TooLarge`] above `limit`.
    pub(super) fn read(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, PackagesError> {
        let Some(opened) = self.open_regular(path)? else {
            return Ok(None);
        };
        if opened.size > limit {
            return Err(PackagesError::TooLarge {
                file: path.to_owned(),
                limit,
            });
        }
        let (bytes, truncated) = read_capped(path, opened.file, limit)?;
        if truncated {
            // The file grew after fstat; still refuse rather than parse a cut-off database.
            return Err(PackagesError::TooLarge {
                file: path.to_owned(),
                limit,
            });
        }
        Ok(Some(bytes))
    }

    /// Lists the names in directory `path`, sorted; `None` if missing, an error if it is not
    /// a directory. Names that are not UTF-8 are left out (no package database uses them).
    pub(super) fn list_dir(
        &self,
        path: &str,
        max_entries: usize,
    ) -> Result<Option<Vec<String>>, PackagesError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NONBLOCK;
        let Some(fd) = self.resolve(path, flags)? else {
            return Ok(None);
        };
        let dir = Dir::new(fd).map_err(|e| io_error(path, e.into()))?;
        let mut names = Vec::new();
        for entry in dir {
            let entry = entry.map_err(|e| io_error(path, e.into()))?;
            let raw = entry.file_name().to_bytes();
            if raw == b"." || raw == b".." {
                continue;
            }
            if names.len() >= max_entries {
                return Err(PackagesError::TooLarge {
                    file: path.to_owned(),
                    limit: u64::try_from(max_entries).unwrap_or(u64::MAX),
                });
            }
            if let Some(name) = OsStr::from_bytes(raw).to_str() {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(Some(names))
    }
}

/// Reads at most `limit` bytes of `file`; the flag says whether there was more.
pub(super) fn read_capped(
    path: &str,
    file: File,
    limit: u64,
) -> Result<(Vec<u8>, bool), PackagesError> {
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(path, e))?;
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    let truncated = bytes.len() > cap;
    bytes.truncate(cap);
    Ok((bytes, truncated))
}

/// `fstat` of an opened descriptor.
fn stat(path: &str, fd: &OwnedFd) -> Result<Stat, PackagesError> {
    rustix::fs::fstat(fd).map_err(|e| io_error(path, e.into()))
}

/// Refuses anything but a regular file, naming what it is instead.
fn require_regular(path: &str, st: &Stat) -> Result<(), PackagesError> {
    let kind = match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => return Ok(()),
        FileType::Directory => "a directory",
        FileType::Fifo => "a FIFO",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Socket => "a socket",
        FileType::Symlink => "a symlink",
        FileType::Unknown => "of unknown type",
    };
    Err(PackagesError::NotRegular {
        file: path.to_owned(),
        kind,
    })
}

/// An I/O error on an in-image file.
fn io_error(path: &str, source: io::Error) -> PackagesError {
    PackagesError::Io {
        file: path.to_owned(),
        source,
    }
}
