//! What an image's OS package databases say is installed, for SBOMs.
//!
//! Reads the dpkg, apk and rpm databases of an unpacked rootfs from outside the sandbox. The
//! rootfs is hostile content and we may run as root, so every file is reached through
//! [`root::ImageRoot`] (symlinks and `..` resolve inside the rootfs, only regular files are
//! read) and every size, count and field length is capped. Missing databases are not an
//! error; a malformed one is, naming the in-image file and line.
//!
//! Field-length policy: a database field we keep that is longer than [`MAX_FIELD_LEN`] bytes is
//! an error naming the file and line (other fields, such as multi-line `Description` or
//! `Conffiles`, are skipped unread). DEP-5 copyright files are best-effort: an overlong
//! `License:` name, invalid UTF-8 or an unreadable file only means no licenses for that
//! package; a truncated name would be a wrong license, so nothing is truncated.

mod apk;
mod copyright;
mod dpkg;
mod os_release;
mod root;
mod rpm;
mod rpm_header;
mod stanza;

use std::path::{Path, PathBuf};

use root::ImageRoot;

/// The most bytes of a package field we keep (name, version, license, ...).
pub const MAX_FIELD_LEN: usize = 4096;
/// The most packages listed from one image, over all databases.
pub const MAX_PACKAGES: usize = 100_000;
/// The largest dpkg `status` or apk `installed` database read.
const MAX_DATABASE_BYTES: u64 = 64 << 20;

// The types are the SBOM model's own (`airlock_attest::sbom`): what the runner reads is
// what the controller's SBOM lists, with no second copy of the shapes to keep in step.
// `OsRelease::id` is `linux` when the image's os-release has no `ID`, as os-release(5) says.
pub use airlock_attest::sbom::{ImageContents, OsPackage, OsRelease, PackageManager};

/// Why an image's package databases could not be read. Each names the in-image file.
#[derive(Debug, thiserror::Error)]
pub enum PackagesError {
    /// The rootfs directory itself could not be opened.
    #[error("opening rootfs {}: {source}", path.display())]
    OpenRoot {
        /// The rootfs path on the host.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Reading an in-image file failed.
    #[error("reading {file}: {source}")]
    Io {
        /// The in-image path.
        file: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An in-image database path is not a regular file.
    #[error("{file} is {kind}, not a regular file")]
    NotRegular {
        /// The in-image path.
        file: String,
        /// What it is instead.
        kind: &'static str,
    },
    /// An in-image file (or directory listing) is over its size cap.
    #[error("{file} is larger than the limit of {limit}")]
    TooLarge {
        /// The in-image path.
        file: String,
        /// The cap (bytes, or entries for a directory).
        limit: u64,
    },
    /// An in-image file is not valid UTF-8.
    #[error("{file} is not valid UTF-8")]
    NotUtf8 {
        /// The in-image path.
        file: String,
    },
    /// An in-image database is malformed at a line.
    #[error("{file}:{line}: {reason}")]
    Malformed {
        /// The in-image path.
        file: String,
        /// The 1-based line (of the stanza start, for a stanza-level problem).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The databases list more than [`MAX_PACKAGES`] packages.
    #[error("{file}: more than {MAX_PACKAGES} packages")]
    TooManyPackages {
        /// The in-image path where the limit was reached.
        file: String,
    },
    /// An RPM header blob in the rpm database is malformed.
    #[error("{file}: package header {hnum}: {reason}")]
    RpmHeader {
        /// The in-image path of the database.
        file: String,
        /// The `Packages.hnum` of the blob.
        hnum: i64,
        /// What is wrong.
        reason: String,
    },
    /// The rpm database is not shaped like an rpmdb.
    #[error("{file}: {reason}")]
    RpmDatabase {
        /// The in-image path of the database.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// SQLite refused the rpm database.
    #[error("{file}: {source}")]
    Sqlite {
        /// The in-image path of the database.
        file: String,
        /// The underlying error.
        source: rusqlite::Error,
    },
}

/// Reads the OS release and every package database found in `rootfs`.
pub fn read_image_contents(rootfs: &Path) -> Result<ImageContents, PackagesError> {
    let root = ImageRoot::open(rootfs)?;
    let os = os_release::read(&root)?;
    let mut found = Found::default();
    dpkg::read(&root, &mut found)?;
    apk::read(&root, &mut found)?;
    rpm::read(&root, &mut found)?;
    let mut packages = found.packages;
    packages.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    // The same stanza can be in both `status` and `status.d`; list it once.
    packages.dedup();
    Ok(ImageContents {
        os,
        packages,
        databases: found.databases,
        unsupported: found.unsupported,
    })
}

/// The listing order: (manager, name, architecture, version), then the remaining fields so
/// the order is total and duplicates end up adjacent.
#[allow(clippy::type_complexity)]
fn sort_key(
    p: &OsPackage,
) -> (
    &str,
    &str,
    Option<&str>,
    &str,
    Option<&str>,
    Option<&str>,
    &[String],
) {
    (
        p.manager.as_str(),
        &p.name,
        p.architecture.as_deref(),
        &p.version,
        p.source_name.as_deref(),
        p.source_version.as_deref(),
        &p.licenses,
    )
}

/// What the readers have collected so far.
#[derive(Debug, Default)]
struct Found {
    /// Packages in reading order.
    packages: Vec<OsPackage>,
    /// In-image paths read.
    databases: Vec<String>,
    /// `"<path>: <why>"` for databases we cannot read.
    unsupported: Vec<String>,
}

impl Found {
    /// Adds a package, enforcing [`MAX_PACKAGES`] (`file` is where it came from).
    fn push(&mut self, file: &str, package: OsPackage) -> Result<(), PackagesError> {
        if self.packages.len() >= MAX_PACKAGES {
            return Err(PackagesError::TooManyPackages {
                file: file.to_owned(),
            });
        }
        self.packages.push(package);
        Ok(())
    }
}

/// Decodes an in-image file as UTF-8.
fn utf8(file: &str, bytes: Vec<u8>) -> Result<String, PackagesError> {
    String::from_utf8(bytes).map_err(|_| PackagesError::NotUtf8 {
        file: file.to_owned(),
    })
}

/// Refuses a kept field value over [`MAX_FIELD_LEN`].
fn check_len(file: &str, line: usize, field: &str, value: &str) -> Result<(), PackagesError> {
    if value.len() > MAX_FIELD_LEN {
        return Err(PackagesError::Malformed {
            file: file.to_owned(),
            line,
            reason: format!("field {field} is longer than {MAX_FIELD_LEN} bytes"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
