//! apk (Alpine): `lib/apk/db/installed`, stanzas of `X:value` lines separated by blank lines.
//!
//! Every line of a stanza is one letter, a colon and a value; we keep `P` (name), `V`
//! (version), `A` (architecture), `L` (license, one SPDX-ish expression kept whole) and `o`
//! (origin, the source package), and skip the rest (file lists, checksums, dependencies).

use super::root::ImageRoot;
use super::stanza::malformed;
use super::{
    Found, MAX_DATABASE_BYTES, MAX_PACKAGES, OsPackage, PackageManager, PackagesError, check_len,
    utf8,
};

/// The apk database.
const INSTALLED: &str = "/lib/apk/db/installed";

/// Reads the apk database, if there is one, into `found`.
pub(super) fn read(root: &ImageRoot, found: &mut Found) -> Result<(), PackagesError> {
    let Some(bytes) = root.read(INSTALLED, MAX_DATABASE_BYTES)? else {
        return Ok(());
    };
    let text = utf8(INSTALLED, bytes)?;
    found.databases.push(INSTALLED.to_owned());
    for package in parse(INSTALLED, &text)? {
        found.push(INSTALLED, package)?;
    }
    Ok(())
}

/// The fields of one stanza being read.
#[derive(Debug, Default)]
struct Entry<'a> {
    /// Line of the stanza's first field.
    line: usize,
    /// `P:`.
    name: Option<&'a str>,
    /// `V:`.
    version: Option<&'a str>,
    /// `A:`.
    arch: Option<&'a str>,
    /// `L:`.
    license: Option<&'a str>,
    /// `o:`.
    origin: Option<&'a str>,
}

/// The packages of an apk `installed` text (`file` names it in errors).
pub(super) fn parse(file: &str, text: &str) -> Result<Vec<OsPackage>, PackagesError> {
    let mut packages = Vec::new();
    let mut entry: Option<Entry<'_>> = None;
    for (index, raw) in text.split('\n').enumerate() {
        let line = index + 1;
        let content = raw.strip_suffix('\r').unwrap_or(raw);
        if content.trim().is_empty() {
            if let Some(done) = entry.take() {
                push(file, &mut packages, done)?;
            }
            continue;
        }
        let mut chars = content.chars();
        let (Some(key), Some(':')) = (chars.next(), chars.next()) else {
            return Err(malformed(file, line, "line is not `X:value`"));
        };
        let value = chars.as_str().trim();
        let current = entry.get_or_insert_with(|| Entry {
            line,
            ..Entry::default()
        });
        let slot = match key {
            'P' => &mut current.name,
            'V' => &mut current.version,
            'A' => &mut current.arch,
            'L' => &mut current.license,
            'o' => &mut current.origin,
            _ => continue,
        };
        check_len(file, line, &format!("{key}:"), value)?;
        if slot.is_none() && !value.is_empty() {
            *slot = Some(value);
        }
    }
    if let Some(done) = entry {
        push(file, &mut packages, done)?;
    }
    Ok(packages)
}

/// Turns a finished stanza into a package.
fn push(file: &str, packages: &mut Vec<OsPackage>, entry: Entry<'_>) -> Result<(), PackagesError> {
    let name = entry
        .name
        .ok_or_else(|| malformed(file, entry.line, "stanza has no P: (name) field"))?;
    let version = entry
        .version
        .ok_or_else(|| malformed(file, entry.line, "stanza has no V: (version) field"))?;
    if packages.len() >= MAX_PACKAGES {
        return Err(PackagesError::TooManyPackages {
            file: file.to_owned(),
        });
    }
    packages.push(OsPackage {
        manager: PackageManager::Apk,
        name: name.to_owned(),
        version: version.to_owned(),
        architecture: entry.arch.map(str::to_owned),
        source_name: entry.origin.map(str::to_owned),
        source_version: None,
        licenses: entry.license.map(str::to_owned).into_iter().collect(),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A realistic excerpt of Alpine 3.19's database.
    const INSTALLED_TEXT: &str = "\
C:Q1Ef8Wz3aU0kF4RlUyW9o4Vh8dT0Y=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
S:407656
I:663552
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teräs <timo.teras@iki.fi>
t:1700000000
c:9ef6f3ab1aba0bc3fe0a89e06b7e5a9ec34a1a8d
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755
Z:Q1abc=

C:Q1xyz=
P:libcrypto3
V:3.1.4-r5
A:x86_64
L:Apache-2.0
o:openssl
D:so:libc.musl-x86_64.so.1

P:alpine-baselayout-data
V:3.4.3-r2
A:x86_64
";

    #[test]
    fn installed_fields() {
        let packages = parse(INSTALLED, INSTALLED_TEXT).expect("parse");
        assert_eq!(packages.len(), 3);
        let musl = &packages[0];
        assert_eq!(musl.manager, PackageManager::Apk);
        assert_eq!(musl.name, "musl");
        assert_eq!(musl.version, "1.2.4_git20230717-r4");
        assert_eq!(musl.architecture.as_deref(), Some("x86_64"));
        assert_eq!(musl.licenses, ["MIT"]);
        assert_eq!(musl.source_name.as_deref(), Some("musl"));
        assert_eq!(packages[1].source_name.as_deref(), Some("openssl"));
        assert!(packages[2].licenses.is_empty());
        assert_eq!(packages[2].source_name, None);
    }

    #[test]
    fn missing_version_and_bad_lines_name_the_line() {
        let err = parse(INSTALLED, "P:a\nV:1\n\nP:b\nA:x86_64\n").expect_err("no V");
        assert_eq!(
            err.to_string(),
            "/lib/apk/db/installed:4: stanza has no V: (version) field"
        );
        let err = parse(INSTALLED, "P:a\ngarbage\n").expect_err("bad line");
        assert!(
            err.to_string().starts_with("/lib/apk/db/installed:2:"),
            "{err}"
        );
    }
}
