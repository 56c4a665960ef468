//! dpkg: `var/lib/dpkg/status` and the per-package files of `var/lib/dpkg/status.d/`.
//!
//! Only stanzas whose `Status:` says `installed` are listed (dpkg keeps removed packages'
//! conffiles, half-installed and not-installed ones too). Distroless images have no `status`
//! but one stanza file per package in `status.d/`, without a `Status` field: those count as
//! installed. Their `*.md5sums` companions are not stanzas and are skipped.

use super::copyright::Licenses;
use super::root::ImageRoot;
use super::stanza::{self, Stanza, malformed};
use super::{
    Found, MAX_DATABASE_BYTES, MAX_PACKAGES, OsPackage, PackageManager, PackagesError, check_len,
    utf8,
};

/// The main dpkg database.
const STATUS: &str = "/var/lib/dpkg/status";
/// Distroless's one-file-per-package database.
const STATUS_D: &str = "/var/lib/dpkg/status.d";
/// The largest single `status.d` file read.
const MAX_STATUS_D_FILE: u64 = 1 << 20;

/// Reads both dpkg databases (either may be missing) into `found`.
pub(super) fn read(root: &ImageRoot, found: &mut Found) -> Result<(), PackagesError> {
    let mut licenses = Licenses::default();
    if let Some(bytes) = root.read(STATUS, MAX_DATABASE_BYTES)? {
        let text = utf8(STATUS, bytes)?;
        found.databases.push(STATUS.to_owned());
        for package in parse(STATUS, &text, true)? {
            add(root, &mut licenses, found, STATUS, package)?;
        }
    }
    // Each file of status.d is at most 1 MiB and the whole directory at most as much as
    // `status` may be, so a directory of many files cannot make us read without bound.
    let Some(names) = root.list_dir(STATUS_D, 2 * MAX_PACKAGES)? else {
        return Ok(());
    };
    let mut budget = MAX_DATABASE_BYTES;
    for name in names {
        if name.ends_with(".md5sums") || name.starts_with('.') {
            continue;
        }
        let path = format!("{STATUS_D}/{name}");
        let opened = match root.open_regular(&path) {
            Ok(Some(opened)) => opened,
            // Subdirectories and other non-files are not stanza files.
            Ok(None) | Err(PackagesError::NotRegular { .. }) => continue,
            Err(e) => return Err(e),
        };
        if opened.size > MAX_STATUS_D_FILE {
            return Err(PackagesError::TooLarge {
                file: path,
                limit: MAX_STATUS_D_FILE,
            });
        }
        let (bytes, truncated) = super::root::read_capped(&path, opened.file, MAX_STATUS_D_FILE)?;
        let spent = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if truncated || spent > budget {
            return Err(PackagesError::TooLarge {
                file: if truncated { path } else { STATUS_D.to_owned() },
                limit: if truncated {
                    MAX_STATUS_D_FILE
                } else {
                    MAX_DATABASE_BYTES
                },
            });
        }
        budget -= spent;
        let text = utf8(&path, bytes)?;
        found.databases.push(path.clone());
        for package in parse(&path, &text, false)? {
            add(root, &mut licenses, found, &path, package)?;
        }
    }
    Ok(())
}

/// Adds the licenses from the package's copyright file, then the package.
fn add(
    root: &ImageRoot,
    licenses: &mut Licenses,
    found: &mut Found,
    file: &str,
    mut package: OsPackage,
) -> Result<(), PackagesError> {
    package.licenses = licenses.of(root, &package.name)?;
    found.push(file, package)
}

/// The installed packages of one dpkg database text (`file` names it in errors). With
/// `needs_status`, stanzas are listed only if their `Status` says installed; otherwise (a
/// `status.d` file) every stanza is.
pub(super) fn parse(
    file: &str,
    text: &str,
    needs_status: bool,
) -> Result<Vec<OsPackage>, PackagesError> {
    let mut packages = Vec::new();
    for stanza in stanza::parse(file, text)? {
        if needs_status && !is_installed(&stanza) {
            continue;
        }
        if packages.len() >= MAX_PACKAGES {
            return Err(PackagesError::TooManyPackages {
                file: file.to_owned(),
            });
        }
        packages.push(package(file, &stanza)?);
    }
    Ok(packages)
}

/// Whether the stanza's `Status: <want> <flag> <status>` has status `installed`.
fn is_installed(stanza: &Stanza<'_>) -> bool {
    stanza
        .get("Status")
        .is_some_and(|f| f.value.split_whitespace().nth(2) == Some("installed"))
}

/// The package an installed stanza describes.
fn package(file: &str, stanza: &Stanza<'_>) -> Result<OsPackage, PackagesError> {
    let required = |name: &str| -> Result<String, PackagesError> {
        let field = stanza
            .get(name)
            .filter(|f| !f.value.is_empty())
            .ok_or_else(|| malformed(file, stanza.line, format!("stanza has no {name} field")))?;
        check_len(file, field.line, name, field.value)?;
        Ok(field.value.to_owned())
    };
    let name = required("Package")?;
    let version = required("Version")?;
    let architecture = match stanza.get("Architecture").filter(|f| !f.value.is_empty()) {
        Some(f) => {
            check_len(file, f.line, "Architecture", f.value)?;
            Some(f.value.to_owned())
        }
        None => None,
    };
    let (source_name, source_version) = match stanza.get("Source") {
        Some(f) if !f.value.is_empty() => {
            check_len(file, f.line, "Source", f.value)?;
            let (name, version) = parse_source(f.value).ok_or_else(|| {
                malformed(file, f.line, "Source is not `name` or `name (version)`")
            })?;
            (Some(name.to_owned()), version.map(str::to_owned))
        }
        _ => (None, None),
    };
    Ok(OsPackage {
        manager: PackageManager::Dpkg,
        name,
        version,
        architecture,
        source_name,
        source_version,
        licenses: Vec::new(),
    })
}

/// Splits `name` or `name (version)`.
fn parse_source(value: &str) -> Option<(&str, Option<&str>)> {
    let Some((name, rest)) = value.split_once(char::is_whitespace) else {
        return Some((value, None));
    };
    let version = rest.trim().strip_prefix('(')?.strip_suffix(')')?.trim();
    if version.is_empty() || version.contains(char::is_whitespace) {
        return None;
    }
    Some((name, Some(version)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A realistic excerpt of a Debian 12 status file.
    const STATUS_TEXT: &str = "\
Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12986
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc (2.36-9+deb12u4)
Version: 2.36-9+deb12u4
Replaces: libc6-amd64
Depends: libgcc-s1
Conffiles:
 /etc/ld.so.conf.d/x86_64-linux-gnu.conf d4e7a7b88a71b5ffd9e2644e71a0cfab
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.
 .
 This package includes shared versions of the standard C library.

Package: oldconf
Status: deinstall ok config-files
Architecture: all
Version: 1.0-1
Conffiles:
 /etc/oldconf.conf 0123456789abcdef0123456789abcdef obsolete

Package: base-files
Essential: yes
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files

Package: half
Status: install reinstreq half-installed
Version: 2
";

    #[test]
    fn status_lists_installed_stanzas_only() {
        let packages = parse(STATUS, STATUS_TEXT, true).expect("parse");
        assert_eq!(packages.len(), 2, "{packages:?}");
        let libc = &packages[0];
        assert_eq!(libc.name, "libc6");
        assert_eq!(libc.version, "2.36-9+deb12u4");
        assert_eq!(libc.architecture.as_deref(), Some("amd64"));
        assert_eq!(libc.source_name.as_deref(), Some("glibc"));
        assert_eq!(libc.source_version.as_deref(), Some("2.36-9+deb12u4"));
        let base = &packages[1];
        assert_eq!(base.name, "base-files");
        assert_eq!(base.source_name, None);
        assert_eq!(base.source_version, None);
    }

    #[test]
    fn epoch_and_source_without_version() {
        let text = "Package: tzdata\nStatus: install ok installed\nVersion: 1:2024a-0+deb12u1\nSource: tzdata-src\n";
        let packages = parse(STATUS, text, true).expect("parse");
        assert_eq!(packages[0].version, "1:2024a-0+deb12u1");
        assert_eq!(packages[0].source_name.as_deref(), Some("tzdata-src"));
        assert_eq!(packages[0].source_version, None);
    }

    #[test]
    fn status_d_files_need_no_status() {
        let text =
            "Package: libssl3\nVersion: 3.0.11-1~deb12u2\nArchitecture: amd64\nSource: openssl\n";
        let packages = parse("/var/lib/dpkg/status.d/libssl3", text, false).expect("parse");
        assert_eq!(packages.len(), 1);
        assert_eq!(packages[0].source_name.as_deref(), Some("openssl"));
    }

    #[test]
    fn installed_stanza_without_version_names_its_line() {
        let text = "Package: a\nStatus: install ok installed\nVersion: 1\n\nPackage: b\nStatus: install ok installed\n";
        let err = parse(STATUS, text, true).expect_err("no version");
        assert_eq!(
            err.to_string(),
            "/var/lib/dpkg/status:5: stanza has no Version field"
        );
    }

    #[test]
    fn overlong_field_and_bad_source_are_errors() {
        let long = "x".repeat(super::super::MAX_FIELD_LEN + 1);
        let text = format!("Package: {long}\nStatus: install ok installed\nVersion: 1\n");
        let err = parse(STATUS, &text, true).expect_err("too long");
        assert!(
            err.to_string().starts_with("/var/lib/dpkg/status:1:"),
            "{err}"
        );
        let text = "Package: a\nStatus: install ok installed\nVersion: 1\nSource: b (1\n";
        let err = parse(STATUS, text, true).expect_err("bad source");
        assert!(
            err.to_string().starts_with("/var/lib/dpkg/status:4:"),
            "{err}"
        );
    }
}
