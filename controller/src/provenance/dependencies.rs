//! The packages a job's `[[deps]]` lockfiles pinned, as its runner reports them: checked
//! into typed values before they reach provenance (the runner is a platform component, but
//! what it sends is still parsed, never copied through).

use std::collections::BTreeMap;

use airlock_attest::ResourceDescriptor;
use airlock_proto::v1 as pb;

/// Most packages one job may report (a large monorepo has a few thousand).
pub const MAX_DEPENDENCIES: usize = 50_000;

/// A package file a lockfile pinned and the runner fetched and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageDependency {
    /// Its package URL (`pkg:cargo/...`, `pkg:npm/...`, `pkg:pypi/...`).
    pub purl: String,
    /// `sha256` or `sha512`.
    pub algorithm: &'static str,
    /// Lowercase hex of the digest.
    pub hex: String,
    /// Where it was fetched from.
    pub download_location: String,
    /// Its file name.
    pub file_name: String,
}

impl PackageDependency {
    /// The resolved dependency recorded in provenance.
    pub fn descriptor(&self) -> ResourceDescriptor {
        ResourceDescriptor {
            name: Some(self.file_name.clone()),
            uri: Some(self.purl.clone()),
            digest: BTreeMap::from([(self.algorithm.to_owned(), self.hex.clone())]),
            download_location: Some(self.download_location.clone()),
            ..Default::default()
        }
    }
}

/// Checks what a runner reported; the error says what is wrong with which entry.
pub fn parse_dependencies(
    reported: &[pb::ResolvedPackage],
) -> Result<Vec<PackageDependency>, String> {
    if reported.len() > MAX_DEPENDENCIES {
        return Err(format!(
            "{} dependencies reported; at most {MAX_DEPENDENCIES}",
            reported.len()
        ));
    }
    reported
        .iter()
        .enumerate()
        .map(|(i, p)| parse_one(p).map_err(|e| format!("dependency {i}: {e}")))
        .collect()
}

fn parse_one(p: &pb::ResolvedPackage) -> Result<PackageDependency, String> {
    let purl: packageurl::PackageUrl<'_> = p
        .purl
        .parse()
        .map_err(|e| format!("`{}` is not a package URL: {e}", p.purl))?;
    if !matches!(purl.ty(), "cargo" | "npm" | "pypi") {
        return Err(format!("`{}` is not a cargo, npm or pypi package", p.purl));
    }
    if purl.version().is_none() {
        return Err(format!("`{}` has no version", p.purl));
    }
    let (algorithm, len) = match p.digest_algorithm.as_str() {
        "sha256" => ("sha256", 64),
        "sha512" => ("sha512", 128),
        other => {
            return Err(format!(
                "digest algorithm `{other}` is neither sha256 nor sha512"
            ));
        }
    };
    if p.digest_hex.len() != len
        || !p
            .digest_hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!(
            "the {algorithm} digest is not {len} lowercase hex digits"
        ));
    }
    let url = &p.download_location;
    if url.len() > 4096
        || !(url.starts_with("https://") || url.starts_with("http://"))
        || url.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(format!("download location `{url}` is not an http(s) URL"));
    }
    let name = &p.file_name;
    if name.is_empty()
        || name.len() > 255
        || name.starts_with('.')
        || !name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+' | b'!' | b'@')
        })
    {
        return Err(format!("file name `{name}` is not one safe path component"));
    }
    Ok(PackageDependency {
        purl: p.purl.clone(),
        algorithm,
        hex: p.digest_hex.clone(),
        download_location: url.clone(),
        file_name: name.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> pb::ResolvedPackage {
        pb::ResolvedPackage {
            purl: "pkg:npm/%40scope/name@1.2.3".into(),
            digest_algorithm: "sha512".into(),
            digest_hex: "ab".repeat(64),
            download_location: "http://127.0.0.1:9/@scope/name/-/name-1.2.3.tgz".into(),
            file_name: "name-1.2.3.tgz".into(),
        }
    }

    #[test]
    fn well_formed_packages_become_descriptors() {
        let deps = parse_dependencies(&[good()]).expect("parse");
        let d = deps[0].descriptor();
        assert_eq!(d.uri.as_deref(), Some("pkg:npm/%40scope/name@1.2.3"));
        assert_eq!(d.digest.get("sha512").map(String::len), Some(128));
    }

    #[test]
    fn malformed_reports_are_refused() {
        type Edit = Box<dyn Fn(&mut pb::ResolvedPackage)>;
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|p| p.purl = "not a purl".into()), "package URL"),
            (
                Box::new(|p| p.purl = "pkg:maven/a/b@1".into()),
                "cargo, npm or pypi",
            ),
            (Box::new(|p| p.purl = "pkg:npm/x".into()), "no version"),
            (Box::new(|p| p.digest_algorithm = "md5".into()), "neither"),
            (
                Box::new(|p| p.digest_hex = "AB".repeat(64)),
                "lowercase hex",
            ),
            (
                Box::new(|p| p.digest_hex = "ab".repeat(32)),
                "lowercase hex",
            ),
            (
                Box::new(|p| p.download_location = "file:///etc/passwd".into()),
                "http(s)",
            ),
            (Box::new(|p| p.file_name = "../x".into()), "safe path"),
        ];
        for (edit, needle) in cases {
            let mut p = good();
            edit(&mut p);
            let err = parse_dependencies(&[p]).expect_err(needle);
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }
}
