//! Output collection: `/out` is hostile input, read only after every sandbox
//! process is dead.
//!
//! The walk never follows a symlink, opens files with `O_NOFOLLOW`, re-checks the
//! opened file with `fstat` (regular, one link, within the size ceiling) and
//! hashes exactly the bytes it will upload.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use airlock_attest::{Sha256Digest, Sha256Hasher};
use globset::{Glob, GlobSet, GlobSetBuilder};

/// One output file, hashed by the runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectedOutput {
    /// Path relative to `/out`, `/`-separated.
    pub path: String,
    /// Where the bytes are on the host.
    pub file: PathBuf,
    /// sha256 of the bytes.
    pub sha256: Sha256Digest,
    /// Size in bytes.
    pub size: u64,
    /// Whether any execute bit was set (the only mode bit kept).
    pub executable: bool,
}

/// Why outputs could not be collected.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A declared output was not produced (the build's fault).
    #[error("declared output `{pattern}` was not produced in /out")]
    Missing {
        /// The pattern from `outputs.paths`.
        pattern: String,
    },
    /// An output is not something airlock will read (the build's fault).
    #[error("output `{path}` refused: {reason}")]
    Refused {
        /// Path relative to `/out`.
        path: String,
        /// Why.
        reason: String,
    },
    /// The runner could not read `/out` (the platform's fault).
    #[error("reading outputs at {path}: {source}")]
    Io {
        /// The host path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A pattern is not a valid glob.
    #[error("bad output pattern `{pattern}`: {reason}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
}

impl OutputError {
    /// True when the build, not the platform, is to blame.
    pub fn is_build_failure(&self) -> bool {
        matches!(
            self,
            OutputError::Missing { .. } | OutputError::Refused { .. } | OutputError::Pattern { .. }
        )
    }
}

/// Limits applied while collecting.
#[derive(Debug, Clone, Copy)]
pub struct OutputLimits {
    /// Largest single file.
    pub max_file_bytes: u64,
    /// Largest sum of all outputs.
    pub max_total_bytes: u64,
    /// Most files.
    pub max_files: usize,
}

impl Default for OutputLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: 4 << 30,
            max_total_bytes: 16 << 30,
            max_files: 10_000,
        }
    }
}

/// Collects every file under `out_dir` matched by `patterns`.
pub fn collect_outputs(
    out_dir: &Path,
    patterns: &[String],
    limits: OutputLimits,
) -> Result<Vec<CollectedOutput>, OutputError> {
    let mut sets = Vec::new();
    for p in patterns {
        let glob = Glob::new(p).map_err(|e| OutputError::Pattern {
            pattern: p.clone(),
            reason: e.to_string(),
        })?;
        let mut b = GlobSetBuilder::new();
        b.add(glob);
        let set = b.build().map_err(|e| OutputError::Pattern {
            pattern: p.clone(),
            reason: e.to_string(),
        })?;
        sets.push((p.clone(), set));
    }
    let mut found = Vec::new();
    let mut matched = vec![false; sets.len()];
    walk(out_dir, &sets, &mut matched, &mut found, limits)?;
    if let Some(i) = matched.iter().position(|m| !m) {
        return Err(OutputError::Missing {
            pattern: sets[i].0.clone(),
        });
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// Walks `/out` with an explicit stack (a build controls its depth), depth-first in name
/// order, collecting the files `sets` match. Deeper than [`crate::tree::MAX_DEPTH`], more
/// than [`crate::tree::MAX_ENTRIES`] entries, a path over `PATH_MAX` or a name airlock
/// reserves fail the job as the build's fault.
fn walk(
    root: &Path,
    sets: &[(String, GlobSet)],
    matched: &mut [bool],
    found: &mut Vec<CollectedOutput>,
    limits: OutputLimits,
) -> Result<(), OutputError> {
    let mut total = 0u64;
    let mut seen = 0usize;
    let mut stack: Vec<(String, usize)> = vec![(String::new(), 0)];
    while let Some((rel, depth)) = stack.pop() {
        let dir = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        let io = |source: io::Error| io_or_refused(&dir, &rel, source);
        let mut entries: Vec<_> = fs::read_dir(&dir)
            .map_err(io)?
            .collect::<Result<_, _>>()
            .map_err(io)?;
        entries.sort_by_key(|e| std::cmp::Reverse(e.file_name()));
        seen += entries.len();
        if seen > crate::tree::MAX_ENTRIES {
            return Err(OutputError::Refused {
                path: rel,
                reason: format!(
                    "/out holds more than {} entries; write fewer files",
                    crate::tree::MAX_ENTRIES
                ),
            });
        }
        let mut files = Vec::new();
        for entry in entries {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                return Err(OutputError::Refused {
                    path: format!("{rel}/{}", entry.file_name().to_string_lossy()),
                    reason: "the name is not UTF-8".into(),
                });
            };
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            // symlink_metadata: never follow.
            let meta = fs::symlink_metadata(entry.path())
                .map_err(|source| io_or_refused(&entry.path(), &child, source))?;
            if meta.is_dir() {
                if depth + 1 > crate::tree::MAX_DEPTH {
                    return Err(OutputError::Refused {
                        path: child,
                        reason: format!(
                            "/out is nested deeper than {} directories",
                            crate::tree::MAX_DEPTH
                        ),
                    });
                }
                stack.push((child, depth + 1));
            } else {
                files.push((entry.path(), child, meta));
            }
        }
        // Name order within a directory (the listing was sorted in reverse for the stack).
        files.reverse();
        for (path, child, meta) in files {
            let hits: Vec<usize> = sets
                .iter()
                .enumerate()
                .filter(|(_, (_, s))| s.is_match(&child))
                .map(|(i, _)| i)
                .collect();
            if hits.is_empty() {
                continue;
            }
            if let Some(component) = airlock_job::reserved_component(&child) {
                return Err(OutputError::Refused {
                    path: child.clone(),
                    reason: format!(
                        "`{component}` is a name airlock writes next to the outputs (provenance, \
                         bundle, temporary files); rename it"
                    ),
                });
            }
            let ft = meta.file_type();
            if !ft.is_file() {
                let kind = if ft.is_symlink() {
                    "a symlink"
                } else {
                    "not a regular file (device, FIFO or socket)"
                };
                return Err(OutputError::Refused {
                    path: child,
                    reason: format!("it is {kind}; outputs must be regular files"),
                });
            }
            let out = read_output(&path, &child, limits)?;
            total += out.size;
            if total > limits.max_total_bytes {
                return Err(OutputError::Refused {
                    path: child,
                    reason: format!(
                        "outputs exceed the total ceiling of {} bytes",
                        limits.max_total_bytes
                    ),
                });
            }
            if found.len() >= limits.max_files {
                return Err(OutputError::Refused {
                    path: child,
                    reason: format!("more than {} output files", limits.max_files),
                });
            }
            for i in hits {
                matched[i] = true;
            }
            found.push(out);
        }
    }
    Ok(())
}

/// A path the build made too long to name is the build's fault; other I/O errors are the
/// runner's.
fn io_or_refused(path: &Path, rel: &str, source: io::Error) -> OutputError {
    if source.raw_os_error() == Some(nix::libc::ENAMETOOLONG) {
        OutputError::Refused {
            path: rel.to_owned(),
            reason: "the path is longer than the system allows (PATH_MAX)".into(),
        }
    } else {
        OutputError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn read_output(
    path: &Path,
    rel: &str,
    limits: OutputLimits,
) -> Result<CollectedOutput, OutputError> {
    let refused = |reason: String| OutputError::Refused {
        path: rel.to_string(),
        reason,
    };
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| refused(format!("cannot open without following links: {e}")))?;
    let meta = file.metadata().map_err(|source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(refused("not a regular file".into()));
    }
    if meta.nlink() != 1 {
        return Err(refused(
            "it has several hard links; a link could point at a file outside /out".into(),
        ));
    }
    if meta.len() > limits.max_file_bytes {
        return Err(refused(format!(
            "{} bytes is over the ceiling of {} bytes",
            meta.len(),
            limits.max_file_bytes
        )));
    }
    let (sha256, size) =
        hash_file(file, limits.max_file_bytes).map_err(|source| OutputError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(CollectedOutput {
        path: rel.to_string(),
        file: path.to_path_buf(),
        sha256,
        size,
        executable: meta.mode() & 0o111 != 0,
    })
}

fn hash_file(file: File, cap: u64) -> io::Result<(Sha256Digest, u64)> {
    let mut hasher = Sha256Hasher::new();
    let mut reader = file.take(cap.saturating_add(1));
    let mut buf = vec![0u8; 1 << 20];
    let mut n_total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        n_total += n as u64;
    }
    Ok((hasher.finalize(), n_total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_glob_that_matches_an_airlock_name_fails_the_build() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("app"), "x").unwrap();
        fs::write(dir.path().join("clob.intoto.jsonl"), "forged").unwrap();
        let err = collect_outputs(dir.path(), &pats(&["*"]), OutputLimits::default())
            .expect_err("reserved name");
        assert!(err.is_build_failure(), "{err}");
        assert!(err.to_string().contains("clob.intoto.jsonl"), "{err}");
    }

    #[test]
    fn an_out_tree_deeper_than_the_limit_fails_the_build_without_recursion() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = dir.path().to_path_buf();
        for _ in 0..=crate::tree::MAX_DEPTH {
            p.push("d");
        }
        fs::create_dir_all(&p).unwrap();
        fs::write(dir.path().join("app"), "x").unwrap();
        let out = dir.path().to_owned();
        let result = std::thread::Builder::new()
            .stack_size(128 << 10)
            .spawn(move || collect_outputs(&out, &pats(&["app"]), OutputLimits::default()))
            .unwrap()
            .join()
            .expect("no stack overflow");
        let err = result.expect_err("too deep");
        assert!(
            err.is_build_failure() && err.to_string().contains("deeper"),
            "{err}"
        );
    }

    #[test]
    fn collects_matching_regular_files_with_digests() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("hello"), b"hi").unwrap();
        fs::create_dir(d.path().join("bin")).unwrap();
        fs::write(d.path().join("bin/a"), b"a").unwrap();
        fs::write(d.path().join("ignored"), b"x").unwrap();
        let out = collect_outputs(
            d.path(),
            &pats(&["hello", "bin/*"]),
            OutputLimits::default(),
        )
        .unwrap();
        let names: Vec<_> = out.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(names, ["bin/a", "hello"]);
        assert_eq!(out[1].sha256, Sha256Digest::of(b"hi"));
        assert_eq!(out[1].size, 2);
    }

    #[test]
    fn missing_output_is_the_builds_fault() {
        let d = tempfile::tempdir().unwrap();
        let e = collect_outputs(d.path(), &pats(&["hello"]), OutputLimits::default()).unwrap_err();
        assert!(matches!(e, OutputError::Missing { .. }));
        assert!(e.is_build_failure());
    }

    #[test]
    fn symlink_to_outside_is_refused() {
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/shadow", d.path().join("hello")).unwrap();
        let e = collect_outputs(d.path(), &pats(&["hello"]), OutputLimits::default()).unwrap_err();
        assert!(matches!(e, OutputError::Refused { .. }), "{e}");
    }

    #[test]
    fn hard_link_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("secret");
        fs::write(&outside, b"secret").unwrap();
        fs::create_dir(d.path().join("out")).unwrap();
        fs::hard_link(&outside, d.path().join("out/hello")).unwrap();
        let e = collect_outputs(
            &d.path().join("out"),
            &pats(&["hello"]),
            OutputLimits::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("hard links"), "{e}");
    }

    #[test]
    fn fifo_is_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(&d.path().join("hello"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let e = collect_outputs(d.path(), &pats(&["hello"]), OutputLimits::default()).unwrap_err();
        assert!(matches!(e, OutputError::Refused { .. }), "{e}");
    }

    #[test]
    fn oversized_file_is_refused() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("big"), vec![0u8; 100]).unwrap();
        let limits = OutputLimits {
            max_file_bytes: 10,
            ..OutputLimits::default()
        };
        let e = collect_outputs(d.path(), &pats(&["big"]), limits).unwrap_err();
        assert!(e.to_string().contains("ceiling"), "{e}");
    }
}
