//! `Cargo.lock`: every `[[package]]` from the default registry (crates.io), with its
//! `checksum` (sha256 of the `.crate`). Packages without a source are the workspace's own
//! (path dependencies inside the source) and need nothing fetched.

use airlock_attest::Sha256Digest;
use airlock_job::Ecosystem;

use super::{DepsError, Package, PackageDigest};

/// The crates a `Cargo.lock` pins.
pub(super) fn parse(lockfile: &str, text: &str) -> Result<Vec<Package>, DepsError> {
    let invalid = |message: String| DepsError::Lockfile {
        lockfile: lockfile.to_owned(),
        message,
    };
    // cargo-lock 11 slices checksums by byte offsets and panics on a multi-byte character
    // in one (found by runner/tests/lockfile_fuzz.rs). Cargo writes only ASCII, so anything
    // else is refused before the parser sees it.
    if let Some(line) = text.lines().position(|l| !l.is_ascii()) {
        return Err(invalid(format!(
            "line {} has a non-ASCII character; Cargo.lock files are ASCII: regenerate it \
             with `cargo generate-lockfile`",
            line + 1
        )));
    }
    let lock: cargo_lock::Lockfile = text
        .parse()
        .map_err(|e| invalid(format!("is not a valid Cargo.lock: {e}")))?;
    let mut out = Vec::new();
    for p in lock.packages {
        let Some(source) = &p.source else {
            continue;
        };
        let fail = |message: String| DepsError::Package {
            lockfile: lockfile.to_owned(),
            package: format!("{}@{}", p.name, p.version),
            message,
        };
        // Names become URL paths on the mirror and directory names under /deps: only what
        // crates.io allows (cargo-lock does not check).
        let name = p.name.as_str();
        if name.is_empty()
            || name.len() > 64
            || !name.starts_with(|c: char| c.is_ascii_alphabetic())
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(fail(format!("`{name}` is not a valid crate name")));
        }
        if source.is_git() {
            return Err(fail(format!(
                "is a git dependency ({source}); only registry packages are fetched: publish \
                 it, or vendor it into the source as a path dependency"
            )));
        }
        if !source.is_default_registry() {
            return Err(fail(format!(
                "comes from {source}; only packages of the default registry are fetched (from \
                 the runner's cargo mirror)"
            )));
        }
        let digest = match &p.checksum {
            Some(cargo_lock::package::Checksum::Sha256(bytes)) => Sha256Digest::from_bytes(*bytes),
            None => {
                return Err(fail(
                    "has no `checksum` in the lockfile, so its bytes cannot be verified; \
                     regenerate the lockfile with `cargo generate-lockfile`"
                        .into(),
                ));
            }
        };
        out.push(Package {
            ecosystem: Ecosystem::Cargo,
            name: p.name.as_str().to_owned(),
            version: p.version.to_string(),
            pins: vec![PackageDigest::Sha256(digest)],
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"
version = 3

[[package]]
name = "app"
version = "0.1.0"
dependencies = ["itoa"]

[[package]]
name = "itoa"
version = "1.0.9"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "af150ab688ff2122fcef229be89cb50dd66af9e01a4ff320cc137eecc9bacc38"
"#;

    #[test]
    fn registry_packages_with_checksums_and_nothing_else() {
        let pkgs = parse("Cargo.lock", LOCK).expect("parse");
        assert_eq!(pkgs.len(), 1);
        assert_eq!(pkgs[0].label(), "itoa@1.0.9");
        assert_eq!(pkgs[0].purl(), "pkg:cargo/itoa@1.0.9");
        assert_eq!(
            pkgs[0].pins[0].prefixed(),
            "sha256:af150ab688ff2122fcef229be89cb50dd66af9e01a4ff320cc137eecc9bacc38"
        );
    }

    #[test]
    fn missing_checksums_git_and_other_registries_are_refused() {
        let no_sum = LOCK.replace(
            "checksum = \"af150ab688ff2122fcef229be89cb50dd66af9e01a4ff320cc137eecc9bacc38\"\n",
            "",
        );
        let err = parse("Cargo.lock", &no_sum)
            .expect_err("no checksum")
            .to_string();
        assert!(
            err.contains("itoa@1.0.9") && err.contains("checksum"),
            "{err}"
        );

        let git = format!(
            "{LOCK}\n[[package]]\nname = \"g\"\nversion = \"0.1.0\"\nsource = \
             \"git+https://example.invalid/g.git#0123456789abcdef0123456789abcdef01234567\"\n"
        );
        let err = parse("Cargo.lock", &git).expect_err("git").to_string();
        assert!(
            err.contains("g@0.1.0") && err.contains("git dependency"),
            "{err}"
        );

        let other = LOCK.replace(
            "registry+https://github.com/rust-lang/crates.io-index",
            "registry+https://example.invalid/index",
        );
        let err = parse("Cargo.lock", &other)
            .expect_err("registry")
            .to_string();
        assert!(err.contains("default registry"), "{err}");

        let err = parse("Cargo.lock", "not toml [")
            .expect_err("garbage")
            .to_string();
        assert!(
            err.contains("Cargo.lock") && err.contains("not a valid"),
            "{err}"
        );
    }
}
