//! `package-lock.json` (lockfile version 2 or 3): every installed package under
//! `node_modules/`, with its `integrity` (sha512 of the tarball). Workspace folders and links
//! are part of the source; bundled packages arrive inside their parent's tarball.

use std::collections::BTreeMap;

use airlock_job::Ecosystem;
use base64::Engine as _;
use serde::Deserialize;

use super::{DepsError, Package, PackageDigest};

#[derive(Deserialize)]
struct Lock {
    #[serde(rename = "lockfileVersion")]
    version: Option<u64>,
    #[serde(default)]
    packages: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
struct Entry {
    name: Option<String>,
    version: Option<String>,
    resolved: Option<String>,
    integrity: Option<String>,
    #[serde(default)]
    link: bool,
    #[serde(default, rename = "inBundle")]
    in_bundle: bool,
}

/// The packages a `package-lock.json` pins.
pub(super) fn parse(lockfile: &str, text: &str) -> Result<Vec<Package>, DepsError> {
    let lock_err = |message: String| DepsError::Lockfile {
        lockfile: lockfile.to_owned(),
        message,
    };
    let lock: Lock = serde_json::from_str(text)
        .map_err(|e| lock_err(format!("is not a valid package-lock.json: {e}")))?;
    match lock.version {
        Some(2 | 3) => {}
        other => {
            return Err(lock_err(format!(
                "has lockfileVersion {}; airlock reads versions 2 and 3: regenerate it with npm 7 \
                 or newer (`npm install --package-lock-only`)",
                other.map_or("(none)".to_owned(), |v| v.to_string())
            )));
        }
    }
    let mut out = Vec::new();
    for (key, entry) in &lock.packages {
        // "" is the project itself; keys without node_modules/ are workspace folders.
        let Some(idx) = key.rfind("node_modules/") else {
            continue;
        };
        if entry.link || entry.in_bundle {
            continue;
        }
        let installed_as = &key[idx + "node_modules/".len()..];
        let name = entry.name.as_deref().unwrap_or(installed_as);
        let label = format!(
            "{name}@{}",
            entry.version.as_deref().unwrap_or("(no version)")
        );
        let fail = |message: String| DepsError::Package {
            lockfile: lockfile.to_owned(),
            package: label.clone(),
            message,
        };
        if !is_npm_name(name) {
            return Err(fail(format!("`{name}` is not a valid npm package name")));
        }
        let version = entry
            .version
            .as_deref()
            .ok_or_else(|| fail("has no `version`".into()))?;
        if !is_plain_version(version) {
            return Err(fail(format!(
                "is pinned to `{version}`, not a registry version; git, file and URL \
                 dependencies are not fetched: publish the package, or make it a workspace \
                 folder of the source"
            )));
        }
        // npm 9 finds a package in a read-only cache by its integrity only when the
        // lockfile names the tarball; without `resolved` it asks the registry for metadata
        // first, and cannot work offline from a cache the build may not write.
        let Some(resolved) = &entry.resolved else {
            return Err(fail(
                "has no `resolved` tarball URL; `npm ci --offline` needs it to find the package \
                 in the cache: regenerate the lockfile without \
                 `--omit-lockfile-registry-resolved` (any registry host is fine: airlock fetches \
                 from its own mirror)"
                    .into(),
            ));
        };
        if !is_registry_tarball(resolved, name, version) {
            return Err(fail(format!(
                "resolves to `{resolved}`, not a registry tarball; only registry packages are \
                 fetched (from the runner's npm mirror)"
            )));
        }
        let integrity = entry.integrity.as_deref().ok_or_else(|| {
            fail(
                "has no `integrity` in the lockfile, so its bytes cannot be verified; \
                 regenerate the lockfile with a current npm"
                    .into(),
            )
        })?;
        let digest = sha512_of_integrity(integrity).ok_or_else(|| {
            fail(format!(
                "its integrity `{integrity}` has no sha512 hash; regenerate the lockfile with a \
                 current npm"
            ))
        })?;
        out.push(Package {
            ecosystem: Ecosystem::Npm,
            name: name.to_owned(),
            version: version.to_owned(),
            pins: vec![PackageDigest::Sha512(Box::new(digest))],
        });
    }
    Ok(out)
}

/// `name` or `@scope/name`, each part of URL-safe characters and not `.`/`..`.
fn is_npm_name(name: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 214
            && p != "."
            && p != ".."
            && !p.starts_with('.')
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    };
    match name.split_once('/') {
        Some((scope, rest)) => {
            scope.len() > 1 && scope.starts_with('@') && part(&scope[1..]) && part(rest)
        }
        None => part(name),
    }
}

/// A semver version (no ranges, URLs, tags).
fn is_plain_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 256
        && v.starts_with(|c: char| c.is_ascii_digit())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'))
}

/// True when `resolved` is an http(s) URL in a registry's tarball layout for this package:
/// `.../<name>/-/<unscoped name>-<version>.tgz`.
fn is_registry_tarball(resolved: &str, name: &str, version: &str) -> bool {
    let unscoped = name.rsplit('/').next().unwrap_or(name);
    (resolved.starts_with("https://") || resolved.starts_with("http://"))
        && resolved.ends_with(&format!("/{name}/-/{unscoped}-{version}.tgz"))
}

/// The sha512 of an SRI `integrity` value (`sha512-<base64>`, possibly among others).
fn sha512_of_integrity(integrity: &str) -> Option<[u8; 64]> {
    integrity.split_whitespace().find_map(|h| {
        let b64 = h.strip_prefix("sha512-")?;
        let b64 = b64.split('?').next().unwrap_or(b64);
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        <[u8; 64]>::try_from(bytes.as_slice()).ok()
    })
}

/// The tarball's path on a registry: `<name>/-/<unscoped name>-<version>.tgz`.
pub(super) fn tarball_path(name: &str, version: &str) -> String {
    let unscoped = name.rsplit('/').next().unwrap_or(name);
    format!("{name}/-/{unscoped}-{version}.tgz")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integrity(byte: u8) -> String {
        format!(
            "sha512-{}",
            base64::engine::general_purpose::STANDARD.encode([byte; 64])
        )
    }

    const R: &str = "https://registry.example.invalid";

    fn lock(packages: &str) -> String {
        format!(
            r#"{{"name":"app","lockfileVersion":3,"requires":true,"packages":{{"":{{"name":"app","version":"1.0.0"}},{packages}}}}}"#
        )
    }

    #[test]
    fn installed_packages_with_sha512_integrity() {
        let text = lock(&format!(
            r#""node_modules/ms":{{"version":"2.1.3","resolved":"{R}/ms/-/ms-2.1.3.tgz","integrity":"{}"}},
               "node_modules/@scope/pkg":{{"version":"1.2.3","resolved":"{R}/@scope/pkg/-/pkg-1.2.3.tgz","integrity":"{}"}},
               "node_modules/a/node_modules/ms":{{"version":"2.0.0","resolved":"{R}/ms/-/ms-2.0.0.tgz","integrity":"{}"}},
               "node_modules/alias":{{"name":"ms","version":"2.1.2","resolved":"{R}/ms/-/ms-2.1.2.tgz","integrity":"{}"}},
               "packages/local":{{"version":"0.0.1"}},
               "node_modules/local":{{"resolved":"packages/local","link":true}},
               "node_modules/bundled":{{"version":"1.0.0","inBundle":true}}"#,
            integrity(1),
            integrity(2),
            integrity(3),
            integrity(4)
        ));
        let mut pkgs = parse("package-lock.json", &text).expect("parse");
        pkgs.sort_by_key(Package::label);
        let labels: Vec<String> = pkgs.iter().map(Package::label).collect();
        assert_eq!(
            labels,
            ["@scope/pkg@1.2.3", "ms@2.0.0", "ms@2.1.2", "ms@2.1.3"]
        );
        assert_eq!(pkgs[0].purl(), "pkg:npm/%40scope/pkg@1.2.3");
        assert_eq!(pkgs[0].pins[0].algorithm(), "sha512");
        assert_eq!(
            tarball_path("@scope/pkg", "1.2.3"),
            "@scope/pkg/-/pkg-1.2.3.tgz"
        );
    }

    #[test]
    fn unverifiable_or_non_registry_packages_are_refused() {
        for (entry, needle) in [
            (
                format!(
                    r#""node_modules/x":{{"version":"1.0.0","resolved":"{R}/x/-/x-1.0.0.tgz"}}"#
                ),
                "integrity",
            ),
            (
                format!(
                    r#""node_modules/x":{{"version":"1.0.0","resolved":"{R}/x/-/x-1.0.0.tgz","integrity":"sha1-AAAAAAAAAAAAAAAAAAAAAAAAAAA="}}"#
                ),
                "sha512",
            ),
            (
                format!(
                    r#""node_modules/x":{{"version":"1.0.0","integrity":"{}"}}"#,
                    integrity(1)
                ),
                "no `resolved`",
            ),
            (
                format!(
                    r#""node_modules/x":{{"version":"git+https://example.invalid/x.git#abc","integrity":"{}"}}"#,
                    integrity(1)
                ),
                "not a registry version",
            ),
            (
                format!(
                    r#""node_modules/x":{{"version":"1.0.0","resolved":"https://example.invalid/x.tgz","integrity":"{}"}}"#,
                    integrity(1)
                ),
                "not a registry tarball",
            ),
            (
                format!(
                    r#""node_modules/../x":{{"version":"1.0.0","integrity":"{}"}}"#,
                    integrity(1)
                ),
                "not a valid npm package name",
            ),
        ] {
            let err = parse("package-lock.json", &lock(&entry))
                .expect_err(needle)
                .to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
        let v1 = r#"{"name":"app","lockfileVersion":1,"dependencies":{}}"#;
        let err = parse("package-lock.json", v1).expect_err("v1").to_string();
        assert!(err.contains("lockfileVersion 1"), "{err}");
    }
}
