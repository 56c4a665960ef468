//! Errors of loading an OSV database and of querying it.

use std::path::PathBuf;

/// What went wrong loading the database (naming the file) or querying it (naming the purl).
#[derive(Debug, thiserror::Error)]
pub enum OsvError {
    /// Reading a directory or file failed.
    #[error("OSV database {}: {source}", path.display())]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A symlink inside the database: refused, so the tree read is the tree given.
    #[error("OSV database {}: is a symlink (symlinks inside the database are refused)", path.display())]
    Symlink {
        /// The symlink.
        path: PathBuf,
    },
    /// A record file over the size limit.
    #[error("OSV record {}: {size} bytes, over the {limit}-byte limit", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size (at least; reading stops past the limit).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A file that is not a valid OSV record.
    #[error("OSV record {}: at {field}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The JSON path of the offending value (`.` for the whole document).
        field: String,
        /// What is wrong there.
        message: String,
    },
    /// A package URL the database cannot use.
    #[error("package URL {purl:?}: {message}")]
    Purl {
        /// The purl as given.
        purl: String,
        /// Why it is unusable (unparsable, no version, unknown `distro`, ...).
        message: String,
    },
}

impl OsvError {
    /// A [`OsvError::Purl`].
    pub(crate) fn purl(purl: &str, message: impl Into<String>) -> Self {
        Self::Purl {
            purl: purl.to_owned(),
            message: message.into(),
        }
    }
}
