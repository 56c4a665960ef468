//! `os-release(5)`: `etc/os-release`, else `usr/lib/os-release`; shell-like `KEY=value` lines.
//!
//! Lines that are not assignments are ignored, as systemd does: the file is informative and
//! an odd line should not cost the whole SBOM. Invalid UTF-8, an over-cap file or an
//! overlong value is still an error naming the file.

use super::root::ImageRoot;
use super::{OsRelease, PackagesError, check_len, utf8};

/// Where os-release is looked for, in order.
const PATHS: [&str; 2] = ["/etc/os-release", "/usr/lib/os-release"];
/// The largest os-release read.
const MAX_BYTES: u64 = 64 << 10;

/// The image's OS release, `None` if it has no os-release file.
pub(super) fn read(root: &ImageRoot) -> Result<Option<OsRelease>, PackagesError> {
    for path in PATHS {
        if let Some(bytes) = root.read(path, MAX_BYTES)? {
            return parse(path, &utf8(path, bytes)?).map(Some);
        }
    }
    Ok(None)
}

/// Parses os-release text (`file` names it in errors).
pub(super) fn parse(file: &str, text: &str) -> Result<OsRelease, PackagesError> {
    let mut release = OsRelease {
        id: String::new(),
        version_id: None,
        version_codename: None,
        pretty_name: None,
    };
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let slot = match key.trim() {
            "ID" => &mut release.id,
            "VERSION_ID" => release.version_id.get_or_insert_with(String::new),
            "VERSION_CODENAME" => release.version_codename.get_or_insert_with(String::new),
            "PRETTY_NAME" => release.pretty_name.get_or_insert_with(String::new),
            _ => continue,
        };
        let value = unquote(raw.trim());
        check_len(file, index + 1, key.trim(), &value)?;
        // A later assignment wins, as when the file is sourced by a shell.
        *slot = value;
    }
    let empty_to_none = |v: Option<String>| v.filter(|s| !s.is_empty());
    Ok(OsRelease {
        id: if release.id.is_empty() {
            "linux".to_owned()
        } else {
            release.id
        },
        version_id: empty_to_none(release.version_id),
        version_codename: empty_to_none(release.version_codename),
        pretty_name: empty_to_none(release.pretty_name),
    })
}

/// The value of a shell-like word: `"..."` with `\"`, `\\`, `\$` and `` \` `` escapes,
/// `'...'` literally, or a bare word. An unterminated quote takes the rest of the line.
fn unquote(raw: &str) -> String {
    if let Some(inner) = raw.strip_prefix('\'') {
        return inner.split_once('\'').map_or(inner, |(v, _)| v).to_owned();
    }
    let Some(inner) = raw.strip_prefix('"') else {
        return raw.to_owned();
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next() {
                Some(e @ ('"' | '\\' | '$' | '`')) => out.push(e),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_os_release() {
        let text = "\
PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"
NAME=\"Debian GNU/Linux\"
VERSION_ID=\"12\"
VERSION=\"12 (bookworm)\"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL=\"https://www.debian.org/\"
";
        let r = parse("/etc/os-release", text).expect("parse");
        assert_eq!(r.id, "debian");
        assert_eq!(r.version_id.as_deref(), Some("12"));
        assert_eq!(r.version_codename.as_deref(), Some("bookworm"));
        assert_eq!(
            r.pretty_name.as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }

    #[test]
    fn quoting_and_defaults() {
        let text = "# comment\nnot an assignment\nPRETTY_NAME='It''s \"x\"'\nVERSION_ID=\"a\\\"b\\\\c\\n\"\nVERSION_CODENAME=\n";
        let r = parse("/etc/os-release", text).expect("parse");
        assert_eq!(r.id, "linux");
        assert_eq!(r.pretty_name.as_deref(), Some("It"));
        assert_eq!(r.version_id.as_deref(), Some("a\"b\\c\\n"));
        assert_eq!(r.version_codename, None);
        assert_eq!(unquote("\"unterminated"), "unterminated");
        assert_eq!(unquote("'single $x'"), "single $x");
    }

    #[test]
    fn overlong_value_names_file_and_line() {
        let text = format!("ID=x\nPRETTY_NAME={}\n", "y".repeat(5000));
        let err = parse("/usr/lib/os-release", &text).expect_err("too long");
        assert!(
            err.to_string().starts_with("/usr/lib/os-release:2:"),
            "{err}"
        );
    }
}
