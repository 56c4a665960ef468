//! Licenses of dpkg packages from machine-readable (DEP-5) `usr/share/doc/<pkg>/copyright`.
//!
//! Best-effort by design: a missing, non-regular, non-UTF-8 or non-DEP-5 copyright file
//! just means no declared licenses. What is bounded strictly is how much we read: at most
//! 1 MiB of each file, each distinct file (by inode) once, and [`MAX_TOTAL_BYTES`] over all
//! of them, beyond which reading is an error rather than a silently incomplete SBOM.

use std::collections::{BTreeSet, HashMap};

use super::root::{ImageRoot, read_capped};
use super::{MAX_FIELD_LEN, PackagesError};

/// The most bytes read of one copyright file.
const MAX_FILE_BYTES: u64 = 1 << 20;
/// The most copyright bytes read for one image (real images have a few MiB).
const MAX_TOTAL_BYTES: u64 = 256 << 20;

/// Reads copyright files, remembering ones already read (packages often share one through
/// a symlink, and a hostile image could point thousands at the same large file).
#[derive(Debug, Default)]
pub(super) struct Licenses {
    /// Licenses by `(st_dev, st_ino)` of copyright files already read.
    seen: HashMap<(u64, u64), Vec<String>>,
    /// Bytes read so far.
    spent: u64,
}

impl Licenses {
    /// The licenses the copyright file of dpkg package `package` declares.
    pub(super) fn of(
        &mut self,
        root: &ImageRoot,
        package: &str,
    ) -> Result<Vec<String>, PackagesError> {
        if !is_safe_name(package) {
            return Ok(Vec::new());
        }
        let path = format!("/usr/share/doc/{package}/copyright");
        let opened = match root.open_regular(&path) {
            Ok(Some(opened)) => opened,
            Ok(None) | Err(_) => return Ok(Vec::new()),
        };
        if let Some(known) = self.seen.get(&opened.identity) {
            return Ok(known.clone());
        }
        let identity = opened.identity;
        let Ok((mut bytes, truncated)) = read_capped(&path, opened.file, MAX_FILE_BYTES) else {
            return Ok(Vec::new());
        };
        self.spent = self
            .spent
            .saturating_add(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
        if self.spent > MAX_TOTAL_BYTES {
            return Err(PackagesError::TooLarge {
                file: "/usr/share/doc/*/copyright (all packages)".to_owned(),
                limit: MAX_TOTAL_BYTES,
            });
        }
        if truncated {
            // Keep whole lines only, so a cut cannot invent a license name or split a
            // UTF-8 sequence.
            let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            bytes.truncate(end);
        }
        let licenses = match std::str::from_utf8(&bytes) {
            Ok(text) => dep5_licenses(text),
            Err(_) => Vec::new(),
        };
        self.seen.insert(identity, licenses.clone());
        Ok(licenses)
    }
}

/// Whether `name` can be used as one path component: printable ASCII, no `/`, not `.`/`..`.
pub(super) fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/')
}

/// The short names of every `License:` field of a DEP-5 file, deduplicated and sorted; empty
/// for a file that is not DEP-5 (its first non-empty line must be a `Format:` naming
/// copyright-format).
pub(super) fn dep5_licenses(text: &str) -> Vec<String> {
    let mut lines = text.lines();
    let is_dep5 = lines
        .by_ref()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| field(l, "Format"))
        .is_some_and(|v| v.contains("copyright-format"));
    if !is_dep5 {
        return Vec::new();
    }
    let names: BTreeSet<&str> = lines
        .filter_map(|l| field(l, "License"))
        .filter(|v| !v.is_empty() && v.len() <= MAX_FIELD_LEN)
        .collect();
    names.into_iter().map(str::to_owned).collect()
}

/// The trimmed first-line value if `line` starts field `name` (case-insensitive).
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    if line.starts_with([' ', '\t']) {
        return None;
    }
    let (key, value) = line.split_once(':')?;
    key.trim_end()
        .eq_ignore_ascii_case(name)
        .then(|| value.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP5: &str = "\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: zlib
Source: http://zlib.net/

Files: *
Copyright: 1995-2013 Jean-loup Gailly and Mark Adler
License: Zlib
 This software is provided 'as-is', without any express or implied
 warranty.
 .
 License: not-a-field (continuation)

Files: debian/*
Copyright: 2000-2023 Mark Brown
License: Zlib

Files: contrib/dotzlib/*
license: BSL-1.0

License: GPL-2+
 This program is free software.
";

    const LEGACY: &str = "\
This is the Debian prepackaged version of bash.

Copyright (C) 1987-2022 Free Software Foundation, Inc.
License: GPL-3+ (not a DEP-5 file, so this is prose)
";

    #[test]
    fn dep5_short_names_deduplicated_and_sorted() {
        assert_eq!(dep5_licenses(DEP5), ["BSL-1.0", "GPL-2+", "Zlib"]);
    }

    #[test]
    fn non_dep5_files_declare_nothing() {
        assert!(dep5_licenses(LEGACY).is_empty());
        assert!(dep5_licenses("").is_empty());
        assert!(dep5_licenses("Format: something-else\nLicense: MIT\n").is_empty());
    }

    #[test]
    fn unsafe_package_names_are_refused() {
        for bad in ["", ".", "..", "a/b", "a\0b", "a b", "é"] {
            assert!(!is_safe_name(bad), "{bad:?}");
        }
        assert!(is_safe_name("libstdc++6"));
    }
}
