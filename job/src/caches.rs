//! `[[caches]]`: a directory a successful job leaves for the next job of its project and
//! trust domain (a Rust `target/`, a package manager's cache). Which caches a job may read
//! and write is the controller's decision, made from the job's profile; the job file only
//! names them, so one job file runs unchanged under every profile.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::JobFileError;
use crate::names::{is_clean_relative, is_name};

/// Most `[[caches]]` of one job.
pub const MAX_CACHES: usize = 8;
/// Most `key` files of one cache.
pub const MAX_CACHE_KEY_FILES: usize = 16;
/// Where caches that are not part of the source tree live in the sandbox (read-write).
pub const CACHE_MOUNT: &str = "/cache";
/// The source tree in the sandbox.
const WORK_MOUNT: &str = "/work";

/// One `[[caches]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSpec {
    /// Its name within the job: `[A-Za-z0-9._-]`, 1-64 characters.
    pub name: String,
    /// The directory in the sandbox: `/cache/<dir>` or `/work/<dir>`.
    pub path: String,
    /// Files of the source whose contents key the cache (`Cargo.lock`); empty: one key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key: Vec<String>,
}

/// Where a cache's directory lives, relative to its mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheRoot<'a> {
    /// Under `/cache`: the relative path below it.
    Cache(&'a str),
    /// Under `/work` (inside the source tree): the relative path below it.
    Work(&'a str),
}

impl CacheSpec {
    /// The mount this cache's directory is under, and its path below it. `None` for a path
    /// that validation refuses.
    pub fn root(&self) -> Option<CacheRoot<'_>> {
        let below = |mount: &str| {
            self.path
                .strip_prefix(mount)
                .and_then(|rest| rest.strip_prefix('/'))
                .filter(|rest| is_clean_relative(rest))
        };
        below(CACHE_MOUNT)
            .map(CacheRoot::Cache)
            .or_else(|| below(WORK_MOUNT).map(CacheRoot::Work))
    }
}

/// Checks the `[[caches]]` of a job: names, paths that do not overlap, key files.
pub(crate) fn validate(caches: &[CacheSpec]) -> Result<(), JobFileError> {
    if caches.len() > MAX_CACHES {
        return Err(JobFileError::field(
            "caches",
            format!("{} caches; at most {MAX_CACHES}", caches.len()),
            Some("cache a common parent directory instead of each of its children".into()),
        ));
    }
    let mut names = BTreeSet::new();
    for (i, cache) in caches.iter().enumerate() {
        if !is_name(&cache.name, 64) || !names.insert(cache.name.as_str()) {
            return Err(JobFileError::field(
                format!("caches[{i}].name"),
                format!("cache name `{}` is invalid or repeated", cache.name),
                Some("each cache needs a unique name from [A-Za-z0-9._-], 1-64 characters".into()),
            ));
        }
        if cache.path.len() > 1024 || cache.root().is_none() {
            return Err(JobFileError::field(
                format!("caches[{i}].path"),
                format!(
                    "`{}` is not a directory under {CACHE_MOUNT} or {WORK_MOUNT}",
                    cache.path
                ),
                Some(format!(
                    "write e.g. `{CACHE_MOUNT}/target` (and point the tool there) or \
                     `{WORK_MOUNT}/target`; no `.` or `..`"
                )),
            ));
        }
        if cache.key.len() > MAX_CACHE_KEY_FILES {
            return Err(JobFileError::field(
                format!("caches[{i}].key"),
                format!(
                    "{} key files; at most {MAX_CACHE_KEY_FILES}",
                    cache.key.len()
                ),
                Some("key the cache by the lockfiles only".into()),
            ));
        }
        let mut keys = BTreeSet::new();
        for (k, key) in cache.key.iter().enumerate() {
            if !is_clean_relative(key) || key.len() > 1024 || !keys.insert(key.as_str()) {
                return Err(JobFileError::field(
                    format!("caches[{i}].key[{k}]"),
                    format!(
                        "`{key}` is not a relative path inside the source (or is listed twice)"
                    ),
                    Some("write e.g. `Cargo.lock`, each file once".into()),
                ));
            }
        }
    }
    // Two caches over one directory would restore into each other.
    for (i, a) in caches.iter().enumerate() {
        for b in &caches[..i] {
            if nested(&a.path, &b.path) {
                return Err(JobFileError::field(
                    format!("caches[{i}].path"),
                    format!(
                        "`{}` overlaps the path of cache `{}` (`{}`)",
                        a.path, b.name, b.path
                    ),
                    Some("give each cache its own directory, neither inside the other".into()),
                ));
            }
        }
    }
    Ok(())
}

/// Whether one path is the other or below it.
fn nested(a: &str, b: &str) -> bool {
    let below = |x: &str, y: &str| x == y || x.strip_prefix(y).is_some_and(|r| r.starts_with('/'));
    below(a, b) || below(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(name: &str, path: &str, key: &[&str]) -> CacheSpec {
        CacheSpec {
            name: name.into(),
            path: path.into(),
            key: key.iter().map(|k| (*k).to_owned()).collect(),
        }
    }

    fn field_of(caches: &[CacheSpec]) -> String {
        validate(caches)
            .expect_err("refused")
            .field
            .unwrap_or_default()
    }

    #[test]
    fn paths_under_cache_or_work_are_accepted() {
        let ok = [
            cache("target", "/cache/target", &["Cargo.lock"]),
            cache("npm", "/work/web/node_modules", &[]),
        ];
        validate(&ok).expect("valid");
        assert_eq!(ok[0].root(), Some(CacheRoot::Cache("target")));
        assert_eq!(ok[1].root(), Some(CacheRoot::Work("web/node_modules")));
    }

    #[test]
    fn bad_names_paths_keys_and_overlaps_are_refused_with_their_field() {
        for path in [
            "/cache",
            "/cache/",
            "/work",
            "/tmp/x",
            "cache/x",
            "/cache/../etc",
            "/cache/./x",
            "/workspace/x",
            "/cache//x",
        ] {
            assert_eq!(
                field_of(&[cache("c", path, &[])]),
                "caches[0].path",
                "{path}"
            );
        }
        assert_eq!(field_of(&[cache("a b", "/cache/x", &[])]), "caches[0].name");
        assert_eq!(
            field_of(&[cache("c", "/cache/x", &[]), cache("c", "/cache/y", &[])]),
            "caches[1].name"
        );
        assert_eq!(
            field_of(&[cache("c", "/cache/x", &["../Cargo.lock"])]),
            "caches[0].key[0]"
        );
        assert_eq!(
            field_of(&[cache("c", "/cache/x", &["a", "a"])]),
            "caches[0].key[1]"
        );
        assert_eq!(
            field_of(&[cache("a", "/cache/x", &[]), cache("b", "/cache/x/y", &[])]),
            "caches[1].path"
        );
        // A shared prefix is not an overlap.
        validate(&[cache("a", "/cache/x", &[]), cache("b", "/cache/xy", &[])]).expect("valid");
        let many: Vec<CacheSpec> = (0..=MAX_CACHES)
            .map(|i| cache(&format!("c{i}"), &format!("/cache/c{i}"), &[]))
            .collect();
        assert_eq!(field_of(&many), "caches");
    }
}
