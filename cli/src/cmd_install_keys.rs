//! `airlock controller install-keys`: copies signing keys from a Kubernetes Secret volume
//! (group-readable, as `fsGroup` makes it) into a directory only the controller reads, each
//! key at mode 0600, which is what the controller requires of a private key. It is the
//! controller image's own init step: that image has no shell or `install` to do it.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::exit::{Exit, Failure, usage};

/// Flags of `controller install-keys`.
#[derive(Debug, Args)]
pub struct InstallKeysArgs {
    /// The mounted Secret: every file whose name does not start with `.` is copied (the
    /// kubelet's `..data` links are followed to their files).
    #[arg(long)]
    from: PathBuf,
    /// An existing directory (an in-memory emptyDir) to copy them into, each at mode 0600;
    /// a file already there is replaced atomically.
    #[arg(long)]
    to: PathBuf,
}

/// Largest key file copied: a PEM key is a few hundred bytes.
const MAX_KEY_BYTES: u64 = 64 << 10;

/// Runs `controller install-keys`.
pub fn run(args: InstallKeysArgs) -> Result<Exit, Failure> {
    let entries = fs::read_dir(&args.from)
        .map_err(|e| usage(format!("--from {}: {e}", args.from.display())))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| usage(format!("--from {}: {e}", args.from.display())))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        names.push(name);
    }
    names.sort();
    if names.is_empty() {
        return Err(usage(format!(
            "--from {}: no key files (is the Secret mounted there?)",
            args.from.display()
        )));
    }
    for name in &names {
        let source = args.from.join(name);
        // A Secret's files are symlinks into its `..data` directory: follow them, but only to
        // regular files of bounded size.
        let meta =
            fs::metadata(&source).map_err(|e| usage(format!("{}: {e}", source.display())))?;
        if !meta.is_file() || meta.len() > MAX_KEY_BYTES {
            return Err(usage(format!(
                "{}: not a key file (a regular file of at most {MAX_KEY_BYTES} bytes)",
                source.display()
            )));
        }
        let bytes = fs::read(&source).map_err(|e| usage(format!("{}: {e}", source.display())))?;
        let dest = args.to.join(name);
        write_private(&dest, &bytes)
            .map_err(|e| crate::exit::infra(format!("{}: {e}", dest.display())))?;
        println!("installed {} (0600)", dest.display());
    }
    Ok(Exit::Ok)
}

/// Writes `bytes` to a new 0600 file beside `dest`, then renames it over `dest`.
fn write_private(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dest.with_extension("airlock-partial");
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, dest)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn keys_are_copied_at_0600_following_the_secret_links_and_skipping_its_dot_files() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("secret"), dir.path().join("keys"));
        fs::create_dir_all(from.join("..2026_12_07")).unwrap();
        fs::create_dir_all(&to).unwrap();
        fs::write(from.join("..2026_12_07/release.key"), b"PEM").unwrap();
        fs::set_permissions(
            from.join("..2026_12_07/release.key"),
            fs::Permissions::from_mode(0o440),
        )
        .unwrap();
        std::os::unix::fs::symlink("..2026_12_07", from.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/release.key", from.join("release.key")).unwrap();
        for _ in 0..2 {
            run(InstallKeysArgs {
                from: from.clone(),
                to: to.clone(),
            })
            .unwrap();
        }
        let installed = to.join("release.key");
        assert_eq!(fs::read(&installed).unwrap(), b"PEM");
        assert_eq!(
            fs::metadata(&installed).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::read_dir(&to).unwrap().count(),
            1,
            "only the key, no dot files"
        );
        let empty = dir.path().join("empty");
        fs::create_dir_all(&empty).unwrap();
        assert!(run(InstallKeysArgs { from: empty, to }).is_err());
    }
}
