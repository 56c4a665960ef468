//! A policy bundle: the `*.rego` files of `[policy] dir`, read once at startup, and their
//! digest: sha256 over `sha256sum`-style lines (`<hex>  <path>\n`) sorted by path, so an
//! operator can recompute it with
//! `(cd DIR && find . -name '*.rego' -type f -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum) | sha256sum`.

use std::path::{Path, PathBuf};

use airlock_attest::Sha256Digest;

use super::PolicyError;

/// Most policy files in a bundle.
pub const MAX_FILES: usize = 1000;

/// Largest policy file.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// The files of a bundle, sorted by path, and its digest.
#[derive(Debug, Clone)]
pub struct PolicyBundle {
    /// The directory.
    pub dir: PathBuf,
    /// `(path relative to dir, text)`, sorted by path.
    pub files: Vec<(String, String)>,
    /// The bundle digest.
    pub digest: Sha256Digest,
}

impl PolicyBundle {
    /// Reads every `*.rego` file under `dir` (hidden names skipped, symlinks refused).
    pub fn read(dir: &Path) -> Result<Self, PolicyError> {
        let mut files = Vec::new();
        walk(dir, dir, &mut files)?;
        if files.is_empty() {
            return Err(PolicyError::Empty {
                dir: dir.to_owned(),
            });
        }
        files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let listing: String = files
            .iter()
            .map(|(path, text)| format!("{}  {path}\n", Sha256Digest::of(text.as_bytes()).hex()))
            .collect();
        Ok(Self {
            dir: dir.to_owned(),
            digest: Sha256Digest::of(listing.as_bytes()),
            files,
        })
    }
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) -> Result<(), PolicyError> {
    let io = |path: &Path, e: std::io::Error| PolicyError::Read {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let entries = std::fs::read_dir(dir).map_err(|e| io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io(dir, e))?;
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type().map_err(|e| io(&path, e))?;
        if kind.is_symlink() {
            return Err(PolicyError::Read {
                path,
                message: "is a symbolic link; put the policy file itself in the directory".into(),
            });
        }
        if kind.is_dir() {
            walk(root, &path, files)?;
            continue;
        }
        if !kind.is_file() || path.extension().is_none_or(|e| e != "rego") {
            continue;
        }
        if files.len() >= MAX_FILES {
            return Err(PolicyError::Read {
                path: root.to_owned(),
                message: format!("holds more than {MAX_FILES} policy files"),
            });
        }
        let size = entry.metadata().map_err(|e| io(&path, e))?.len();
        if size > MAX_FILE_BYTES {
            return Err(PolicyError::Read {
                path,
                message: format!("is {size} bytes; a policy file may have {MAX_FILE_BYTES}"),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        let relative = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        files.push((relative, text));
    }
    Ok(())
}
