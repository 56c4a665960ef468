//! `requirements.txt` with hashes (as `pip-compile --generate-hashes` writes it): every line
//! `name==version` followed by `--hash=sha256:<hex>` for each distribution file pip may
//! install; and the PEP 503 / PEP 691 "simple" index pages that list those files.

use airlock_attest::Sha256Digest;
use airlock_job::Ecosystem;

use super::{DepsError, Package, PackageDigest};

/// The packages a hashed `requirements.txt` pins.
pub(super) fn parse(lockfile: &str, text: &str) -> Result<Vec<Package>, DepsError> {
    let mut out = Vec::new();
    let mut logical = String::new();
    let mut first_line = 0;
    for (i, raw) in text.lines().enumerate() {
        if logical.is_empty() {
            first_line = i + 1;
        }
        let line = strip_comment(raw);
        if let Some(cont) = line.trim_end().strip_suffix('\\') {
            logical.push_str(cont);
            logical.push(' ');
            continue;
        }
        logical.push_str(line);
        let requirement = std::mem::take(&mut logical);
        if let Some(p) = parse_requirement(lockfile, first_line, requirement.trim())? {
            out.push(p);
        }
    }
    if let Some(p) = parse_requirement(lockfile, first_line, logical.trim())? {
        out.push(p);
    }
    Ok(out)
}

/// A line without its comment (`#` at the start or after whitespace).
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

fn parse_requirement(
    lockfile: &str,
    line: usize,
    text: &str,
) -> Result<Option<Package>, DepsError> {
    if text.is_empty() {
        return Ok(None);
    }
    let fail = |package: &str, message: String| DepsError::Package {
        lockfile: lockfile.to_owned(),
        package: format!("line {line} ({package})"),
        message,
    };
    if text.starts_with('-') {
        let option = text.split_whitespace().next().unwrap_or(text);
        return Err(fail(
            option,
            "options are not read (indexes, includes, editables and find-links come from the \
             runner's pypi mirror and the source); list only pinned requirements with hashes"
                .into(),
        ));
    }
    let (spec, options) = match text.find(" --") {
        Some(i) => (text[..i].trim(), &text[i..]),
        None => (text, ""),
    };
    let spec = spec.split(';').next().unwrap_or(spec).trim();
    let Some((name_part, version)) = spec.split_once("==") else {
        return Err(fail(
            spec,
            "is not pinned with `==`; pin every requirement (e.g. `pip-compile \
             --generate-hashes`)"
                .into(),
        ));
    };
    let name = name_part.split('[').next().unwrap_or(name_part).trim();
    let version = version.trim();
    if !is_dist_name(name) {
        return Err(fail(spec, format!("`{name}` is not a valid project name")));
    }
    if version.starts_with('=')
        || version.is_empty()
        || !version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'!' | b'+' | b'-' | b'_'))
    {
        return Err(fail(
            spec,
            format!("`{version}` is not an exact version; pin it with `==1.2.3`"),
        ));
    }
    let mut pins = Vec::new();
    let mut tokens = options.split_whitespace();
    while let Some(token) = tokens.next() {
        let value = if let Some(v) = token.strip_prefix("--hash=") {
            v.to_owned()
        } else if token == "--hash" {
            tokens.next().unwrap_or_default().to_owned()
        } else {
            return Err(fail(
                spec,
                format!("`{token}` is not read on a requirement line; only `--hash` is"),
            ));
        };
        let Some(hex) = value.strip_prefix("sha256:") else {
            return Err(fail(
                spec,
                format!("`--hash={value}` is not a sha256 hash; airlock pins sha256"),
            ));
        };
        let digest = Sha256Digest::from_hex(hex)
            .map_err(|e| fail(spec, format!("`--hash=sha256:{hex}`: {e}")))?;
        pins.push(PackageDigest::Sha256(digest));
    }
    if pins.is_empty() {
        return Err(fail(
            spec,
            "has no `--hash=sha256:...`, so its files cannot be verified; generate hashes \
             (`pip-compile --generate-hashes`, or `pip hash FILE`)"
                .into(),
        ));
    }
    Ok(Some(Package {
        ecosystem: Ecosystem::Pypi,
        name: normalize(name),
        version: version.to_owned(),
        pins,
    }))
}

fn is_dist_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// PEP 503 normalization: lowercase, runs of `-`, `_`, `.` become one `-`.
pub(super) fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut dash = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            dash = true;
        } else {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// One distribution file an index page lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct IndexFile {
    /// Its file name.
    pub filename: String,
    /// Where to fetch it (absolute, or relative to the page).
    pub url: String,
    /// The sha256 the index states, if any.
    pub sha256: Option<Sha256Digest>,
}

/// The files of a PEP 691 JSON page (`{"files":[{"filename","url","hashes":{"sha256"}}]}`).
pub(super) fn files_from_json(body: &str) -> Result<Vec<IndexFile>, String> {
    #[derive(serde::Deserialize)]
    struct Page {
        files: Vec<File>,
    }
    #[derive(serde::Deserialize)]
    struct File {
        filename: String,
        url: String,
        #[serde(default)]
        hashes: std::collections::BTreeMap<String, String>,
    }
    let page: Page = serde_json::from_str(body).map_err(|e| format!("not a PEP 691 page: {e}"))?;
    Ok(page
        .files
        .into_iter()
        .map(|f| IndexFile {
            sha256: f
                .hashes
                .get("sha256")
                .and_then(|h| Sha256Digest::from_hex(h).ok()),
            filename: f.filename,
            url: f.url,
        })
        .collect())
}

/// The files of a PEP 503 HTML page: each `<a href="URL#sha256=HEX">FILENAME</a>`.
pub(super) fn files_from_html(body: &str) -> Vec<IndexFile> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(start) = find_ci(rest, "<a ") {
        rest = &rest[start + 3..];
        let Some(tag_end) = rest.find('>') else { break };
        let attrs = &rest[..tag_end];
        let after = &rest[tag_end + 1..];
        let Some(text_end) = find_ci(after, "</a>") else {
            break;
        };
        let text = after[..text_end].trim();
        rest = &after[text_end..];
        let Some(href) = attribute(attrs, "href") else {
            continue;
        };
        let href = unescape(&href);
        let (url, fragment) = match href.split_once('#') {
            Some((u, f)) => (u.to_owned(), Some(f.to_owned())),
            None => (href.clone(), None),
        };
        let sha256 = fragment
            .as_deref()
            .and_then(|f| f.strip_prefix("sha256="))
            .and_then(|h| Sha256Digest::from_hex(h).ok());
        out.push(IndexFile {
            filename: unescape(text),
            url,
            sha256,
        });
    }
    out
}

fn find_ci(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .to_ascii_lowercase()
        .find(&needle.to_ascii_lowercase())
}

fn attribute(attrs: &str, name: &str) -> Option<String> {
    let lower = attrs.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name) {
        let at = from + i;
        let before_ok = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let rest = attrs[at + name.len()..].trim_start();
        if before_ok && let Some(value) = rest.strip_prefix('=') {
            let value = value.trim_start();
            let quote = value.chars().next()?;
            if quote == '"' || quote == '\'' {
                let end = value[1..].find(quote)?;
                return Some(value[1..=end].to_owned());
            }
            let end = value.find(char::is_whitespace).unwrap_or(value.len());
            return Some(value[..end].to_owned());
        }
        from = at + name.len();
    }
    None
}

fn unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
}

/// Which of a release's files to fetch: those whose (stated) sha256 the requirement pins,
/// narrowed to the pure-Python wheels when there are any (they install everywhere), else the
/// wheels for Linux on this machine's architecture and the source distributions. A file the
/// index states no hash for is a candidate when its name carries the version; its bytes are
/// checked against the pins after download either way.
pub(super) fn select_files<'a>(package: &Package, files: &'a [IndexFile]) -> Vec<&'a IndexFile> {
    let pinned = |d: &Sha256Digest| {
        package
            .pins
            .iter()
            .any(|p| matches!(p, PackageDigest::Sha256(x) if x == d))
    };
    let version_tag = format!("-{}", package.version);
    let candidates: Vec<&IndexFile> = files
        .iter()
        .filter(|f| match &f.sha256 {
            Some(d) => pinned(d),
            None => f.filename.contains(&version_tag),
        })
        .filter(|f| is_safe_filename(&f.filename))
        .collect();
    let pure: Vec<&IndexFile> = candidates
        .iter()
        .copied()
        .filter(|f| f.filename.ends_with("-none-any.whl"))
        .collect();
    if !pure.is_empty() {
        return pure;
    }
    let arch = std::env::consts::ARCH;
    candidates
        .into_iter()
        .filter(|f| {
            let name = &f.filename;
            if let Some(stem) = name.strip_suffix(".whl") {
                stem.contains("linux") && stem.ends_with(arch)
            } else {
                name.ends_with(".tar.gz") || name.ends_with(".zip")
            }
        })
        .collect()
}

/// A distribution file name that is one safe path component.
pub(super) fn is_safe_filename(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+' | b'!'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn hashed_pins_with_continuations_comments_and_markers() {
        let text = format!(
            "# comment\nsix==1.16.0 \\\n    --hash=sha256:{A} \\\n    --hash=sha256:{B}\n\
             Typing_Extensions==4.8.0 ; python_version < \"3.12\" --hash=sha256:{A}  # why\n\n"
        );
        let pkgs = parse("requirements.txt", &text).expect("parse");
        assert_eq!(pkgs.len(), 2);
        assert_eq!(pkgs[0].label(), "six@1.16.0");
        assert_eq!(pkgs[0].pins.len(), 2);
        assert_eq!(pkgs[1].name, "typing-extensions");
        assert_eq!(pkgs[1].purl(), "pkg:pypi/typing-extensions@4.8.0");
    }

    #[test]
    fn unpinned_unhashed_and_option_lines_are_refused() {
        for (text, needle) in [
            ("six>=1.0 --hash=sha256:x\n".to_owned(), "pinned with `==`"),
            ("six==1.16.0\n".to_owned(), "has no `--hash"),
            (format!("six==1.16.0 --hash=md5:{A}\n"), "not a sha256"),
            (
                format!("-i https://example.invalid/simple\nsix==1.16.0 --hash=sha256:{A}\n"),
                "options are not read",
            ),
            (
                format!("-e .\nsix==1.16.0 --hash=sha256:{A}\n"),
                "options are not read",
            ),
            (
                format!("six==1.* --hash=sha256:{A}\n"),
                "not an exact version",
            ),
            (
                format!("six==1.16.0 --no-binary :all: --hash=sha256:{A}\n"),
                "only `--hash`",
            ),
        ] {
            let err = parse("requirements.txt", &text)
                .expect_err(needle)
                .to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn index_pages_and_file_selection() {
        let html = format!(
            "<html><body><a href=\"../../files/six-1.16.0-py2.py3-none-any.whl#sha256={A}\" \
             data-requires-python=\"&gt;=2.7\">six-1.16.0-py2.py3-none-any.whl</a><br/>\
             <A HREF='/files/six-1.16.0.tar.gz#sha256={B}'>six-1.16.0.tar.gz</A>\
             <a href=\"/files/six-1.15.0.tar.gz#sha256={B}\">six-1.15.0.tar.gz</a></body></html>"
        );
        let files = files_from_html(&html);
        assert_eq!(files.len(), 3);
        assert_eq!(files[0].url, "../../files/six-1.16.0-py2.py3-none-any.whl");
        let pkg = parse(
            "r.txt",
            &format!("six==1.16.0 --hash=sha256:{A} --hash=sha256:{B}\n"),
        )
        .expect("parse")
        .remove(0);
        let chosen = select_files(&pkg, &files);
        assert_eq!(chosen.len(), 1, "the pure wheel wins: {chosen:?}");
        assert!(chosen[0].filename.ends_with("none-any.whl"));

        let sdist_only = parse("r.txt", &format!("six==1.16.0 --hash=sha256:{B}\n"))
            .expect("parse")
            .remove(0);
        let chosen = select_files(&sdist_only, &files);
        assert_eq!(chosen.len(), 2, "both files hashed B: {chosen:?}");

        let json = format!(
            r#"{{"meta":{{"api-version":"1.0"}},"name":"six","files":[{{"filename":"six-1.16.0-py2.py3-none-any.whl","url":"https://files.example.invalid/six.whl","hashes":{{"sha256":"{A}"}}}}]}}"#
        );
        let files = files_from_json(&json).expect("json");
        assert_eq!(files[0].sha256.map(|d| d.hex()).as_deref(), Some(A));
        assert!(!is_safe_filename("../six.whl"));
    }
}
