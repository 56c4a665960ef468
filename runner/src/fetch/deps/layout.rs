//! Laying verified packages out under `<job>/deps/`, mounted read-only at `/deps`, in the
//! form each package manager reads offline, and the environment that points it there:
//!
//! - cargo: `/deps/cargo/vendor/<name>-<version>/` (a directory source: each crate unpacked,
//!   with a `.cargo-checksum.json` naming the lockfile's checksum, which cargo checks against
//!   `Cargo.lock`) and `/deps/cargo/config.toml` replacing crates.io with it, read by cargo
//!   as `CARGO_HOME=/deps/cargo`.
//! - npm: `/deps/npm/_cacache/content-v2/sha512/`, the cache `npm ci --offline` reads a
//!   tarball from by the lockfile's `integrity` when the lockfile names it (`resolved`); no
//!   index entries are needed then, and npm writes nothing to the read-only cache.
//! - pypi: `/deps/pypi/wheels/` (a `--find-links` directory) with `PIP_NO_INDEX`.

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use airlock_job::Ecosystem;

use super::fetch::FetchedFile;
use super::{DepsError, Package};
use crate::fetch::cache::BlobCache;
use crate::fetch::source_archive::{clean_entry_path, parents_are_dirs};
use crate::sandbox::DEPS_MOUNT;

/// Most bytes unpacked from one crate, and most entries.
const MAX_CRATE_BYTES: u64 = 2 << 30;
const MAX_CRATE_ENTRIES: usize = 100_000;

/// What the steps of a job with `[[deps]]` get.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DepsLayout {
    /// Environment variables for every step (before the step's own `env`).
    pub env: Vec<(String, String)>,
}

/// Lays `files` (fetched for `packages` of `ecosystem`) out below `dir` (`<job>/deps`),
/// returning the environment the steps need.
pub fn lay_out(
    cache: &BlobCache,
    dir: &Path,
    ecosystem: Ecosystem,
    packages: &[Package],
    files: &[FetchedFile],
) -> Result<DepsLayout, DepsError> {
    mkdir(dir)?;
    match ecosystem {
        Ecosystem::Cargo => cargo(cache, &dir.join("cargo"), packages, files),
        Ecosystem::Npm => npm(cache, &dir.join("npm"), files),
        Ecosystem::Pypi => pypi(cache, &dir.join("pypi"), files),
    }
}

fn mkdir(dir: &Path) -> Result<(), DepsError> {
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(DepsError::io("creating", dir, e)),
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .map_err(|e| DepsError::io("setting permissions of", dir, e))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), DepsError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| DepsError::io("creating", path, e))?;
    f.write_all(bytes)
        .map_err(|e| DepsError::io("writing", path, e))
}

/// [`BlobCache::link_to`]; a file already there (the same package of a second lockfile of
/// the job) is fine.
fn link_blob(
    cache: &BlobCache,
    blob: &airlock_attest::Sha256Digest,
    dest: &Path,
) -> Result<(), DepsError> {
    match cache.link_to(blob, dest) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            Err(DepsError::io("linking", dest, e))
        }
        _ => Ok(()),
    }
}

fn cargo(
    cache: &BlobCache,
    dir: &Path,
    packages: &[Package],
    files: &[FetchedFile],
) -> Result<DepsLayout, DepsError> {
    mkdir(dir)?;
    let vendor = dir.join("vendor");
    mkdir(&vendor)?;
    for file in files {
        let package = &packages[file.package];
        let top = format!("{}-{}", package.name, package.version);
        let dest = vendor.join(&top);
        if dest.exists() {
            // The same crate listed by a second Cargo.lock of the job.
            continue;
        }
        unpack_crate(&cache.path(&file.blob), &vendor, &top, &package.purl())?;
        let checksum = format!("{{\"files\":{{}},\"package\":\"{}\"}}", file.digest.hex());
        write_file(&dest.join(".cargo-checksum.json"), checksum.as_bytes())?;
    }
    let config = format!(
        "# Written by airlock: crates come only from the verified, vendored copies.\n\
         [source.crates-io]\nreplace-with = \"airlock-vendored\"\n\n\
         [source.airlock-vendored]\ndirectory = \"{DEPS_MOUNT}/cargo/vendor\"\n\n\
         [net]\noffline = true\n"
    );
    write_file(&dir.join("config.toml"), config.as_bytes())?;
    Ok(DepsLayout {
        // Cargo reads `config.toml` from CARGO_HOME, and a read-only CARGO_HOME is fine for
        // an offline build from a directory source (nothing is downloaded or cached).
        env: vec![("CARGO_HOME".into(), format!("{DEPS_MOUNT}/cargo"))],
    })
}

/// Unpacks the `.crate` (gzip tar) at `archive` into `vendor`: every entry must lie in
/// `top/`, and be a file or a directory.
fn unpack_crate(archive: &Path, vendor: &Path, top: &str, purl: &str) -> Result<(), DepsError> {
    let bad = |message: String| DepsError::Archive {
        package: purl.to_owned(),
        message,
    };
    let file = fs::File::open(archive).map_err(|e| DepsError::io("opening", archive, e))?;
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(file)));
    let entries = ar.entries().map_err(|e| bad(e.to_string()))?;
    let mut total: u64 = 0;
    let mut count = 0usize;
    mkdir(&vendor.join(top))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        count += 1;
        if count > MAX_CRATE_ENTRIES {
            return Err(bad(format!("more than {MAX_CRATE_ENTRIES} entries")));
        }
        let raw = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        let rel = clean_entry_path(&raw).map_err(|r| bad(format!("{}: {r}", raw.display())))?;
        if rel.components().next().map(|c| c.as_os_str()) != Some(std::ffi::OsStr::new(top)) {
            return Err(bad(format!("{} lies outside {top}/", raw.display())));
        }
        let target = vendor.join(&rel);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                parents_are_dirs(vendor, &rel).map_err(bad)?;
                fs::create_dir_all(&target).map_err(|e| DepsError::io("creating", &target, e))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(|e| DepsError::io("creating", parent, e))?;
                }
                parents_are_dirs(vendor, &rel).map_err(bad)?;
                let exec = entry.header().mode().unwrap_or(0o644) & 0o111 != 0;
                let mut out = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(if exec { 0o755 } else { 0o644 })
                    .custom_flags(nix::libc::O_NOFOLLOW)
                    .open(&target)
                    .map_err(|e| DepsError::io("creating", &target, e))?;
                let limit = MAX_CRATE_BYTES.saturating_sub(total);
                let n = io::copy(&mut (&mut entry).take(limit + 1), &mut out)
                    .map_err(|e| bad(format!("{}: {e}", raw.display())))?;
                total += n;
                if total > MAX_CRATE_BYTES {
                    return Err(bad(format!("unpacks to more than {MAX_CRATE_BYTES} bytes")));
                }
                // The crate's own times, as cargo keeps them when it unpacks a crate: the
                // same in every job, so a cached build script's output stays newer than
                // the files it watches (`rerun-if-changed`) and is not run again.
                let mtime = entry.header().mtime().unwrap_or(0);
                out.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime))
                    .map_err(|e| DepsError::io("dating", &target, e))?;
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
            other => {
                return Err(bad(format!(
                    "{}: {other:?} entries are not unpacked (only files and directories)",
                    raw.display()
                )));
            }
        }
    }
    Ok(())
}

fn pypi(cache: &BlobCache, dir: &Path, files: &[FetchedFile]) -> Result<DepsLayout, DepsError> {
    mkdir(dir)?;
    let wheels = dir.join("wheels");
    mkdir(&wheels)?;
    for file in files {
        // Checked by the index parser: one safe path component.
        link_blob(cache, &file.blob, &wheels.join(&file.file_name))?;
    }
    Ok(DepsLayout {
        env: vec![
            ("PIP_NO_INDEX".into(), "1".into()),
            ("PIP_FIND_LINKS".into(), format!("{DEPS_MOUNT}/pypi/wheels")),
            ("PIP_DISABLE_PIP_VERSION_CHECK".into(), "1".into()),
        ],
    })
}

/// The registry URL npm is told to use inside the sandbox. Nothing listens there (the
/// sandbox has no network); it only names the cache entries.
const NPM_REGISTRY: &str = "http://airlock-npm.invalid/";

fn npm(cache: &BlobCache, dir: &Path, files: &[FetchedFile]) -> Result<DepsLayout, DepsError> {
    mkdir(dir)?;
    let cacache = dir.join("_cacache");
    for sub in ["", "content-v2", "content-v2/sha512"] {
        mkdir(&cacache.join(sub))?;
    }
    for file in files {
        let sha512 = file.digest.hex();
        let content = cacache
            .join("content-v2/sha512")
            .join(&sha512[..2])
            .join(&sha512[2..4]);
        fs::create_dir_all(&content).map_err(|e| DepsError::io("creating", &content, e))?;
        link_blob(cache, &file.blob, &content.join(&sha512[4..]))?;
    }
    Ok(DepsLayout {
        env: vec![
            ("npm_config_cache".into(), format!("{DEPS_MOUNT}/npm")),
            ("npm_config_registry".into(), NPM_REGISTRY.into()),
            ("npm_config_offline".into(), "true".into()),
            ("npm_config_audit".into(), "false".into()),
            ("npm_config_fund".into(), "false".into()),
            ("npm_config_update_notifier".into(), "false".into()),
            ("npm_config_logs_dir".into(), "/tmp/airlock-npm-logs".into()),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gzip tar with `(path, kind)` entries: `f` file, `l` symlink.
    fn crate_file(dir: &Path, entries: &[(&str, char)]) -> std::path::PathBuf {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, kind) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_mtime(1_500_000_000);
            match kind {
                'l' => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    builder
                        .append_link(&mut h, path, "/etc/passwd")
                        .expect("link");
                }
                _ => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(5);
                    // `append_data` would refuse `..`; write the raw name like an attacker.
                    let name = h.as_old_mut();
                    name.name[..path.len()].copy_from_slice(path.as_bytes());
                    h.set_cksum();
                    builder.append(&h, &b"hello"[..]).expect("file");
                }
            }
        }
        let tar = builder.into_inner().expect("tar");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).expect("gz");
        let path = dir.join("x.crate");
        fs::write(&path, gz.finish().expect("gz")).expect("write");
        path
    }

    #[test]
    fn crates_unpack_inside_their_directory_with_files_only() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let good = crate_file(
            tmp.path(),
            &[("x-1.0.0/Cargo.toml", 'f'), ("x-1.0.0/src/lib.rs", 'f')],
        );
        let vendor = tmp.path().join("vendor");
        fs::create_dir(&vendor).expect("mkdir");
        unpack_crate(&good, &vendor, "x-1.0.0", "pkg:cargo/x@1.0.0").expect("unpack");
        assert_eq!(
            fs::read(vendor.join("x-1.0.0/src/lib.rs")).expect("read"),
            b"hello"
        );
        // Dated as the crate says, like cargo's own unpacking: the same in every job.
        assert_eq!(
            fs::metadata(vendor.join("x-1.0.0/src/lib.rs"))
                .and_then(|m| m.modified())
                .expect("mtime"),
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_500_000_000)
        );

        for (entries, needle) in [
            (vec![("y-1.0.0/Cargo.toml", 'f')], "outside x-1.0.0/"),
            (vec![("x-1.0.0/../../evil", 'f')], "`..`"),
            (vec![("x-1.0.0/link", 'l')], "Symlink"),
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            let archive = crate_file(dir.path(), &entries);
            let vendor = dir.path().join("vendor");
            fs::create_dir(&vendor).expect("mkdir");
            let err = unpack_crate(&archive, &vendor, "x-1.0.0", "pkg:cargo/x@1.0.0")
                .expect_err(needle)
                .to_string();
            assert!(
                err.contains(needle) && err.contains("pkg:cargo/x@1.0.0"),
                "{needle}: {err}"
            );
            assert!(!dir.path().join("evil").exists());
        }
    }
}
