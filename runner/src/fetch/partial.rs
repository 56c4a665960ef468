//! Partial entries of the shared caches: a writer puts its work in progress under
//! `tmp/<digest hex>.<anything>` while it holds that digest's exclusive lock, and renames it
//! into place when done. One whose lock is free was left by a writer that died.

use std::fs;
use std::path::Path;

use airlock_attest::Sha256Digest;

/// Removes every entry of `tmp` (files or trees) whose digest `try_lock` can lock, holding
/// that lock while removing it. Returns how many were removed; a missing `tmp` has none.
pub(crate) fn reap<L>(tmp: &Path, try_lock: impl Fn(&Sha256Digest) -> Option<L>) -> usize {
    let Ok(entries) = fs::read_dir(tmp) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let Some(digest) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.split_once('.'))
            .and_then(|(hex, _)| Sha256Digest::from_hex(hex).ok())
        else {
            continue;
        };
        let Some(lock) = try_lock(&digest) else {
            continue;
        };
        if crate::tree::remove_tree(&entry.path()).is_ok() {
            removed += 1;
        }
        drop(lock);
    }
    removed
}
