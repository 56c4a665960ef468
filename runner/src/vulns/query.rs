//! A package URL read as an index query: ecosystem family, release, name, version.
//!
//! `pkg:deb/debian|ubuntu/...`, `pkg:apk/alpine/...`, `pkg:cargo/...`, `pkg:npm/...`
//! and `pkg:pypi/...` map to OSV ecosystems; any other type or namespace (`rpm`,
//! `golang`, `maven`, `deb/raspbian`, ...) is not indexed and yields `None`.
//!
//! OS packages are matched as *source* packages, since OSV's Debian, Ubuntu and Alpine
//! records name those: the `upstream` qualifier (`SRC` or `SRC@SRCVERSION`) gives the
//! name, and its version when present. Without a `distro` qualifier a deb or apk purl
//! matches the records of every release of its distribution: a gate should err
//! towards reporting, and the SBOM producer can always say which release it is.

use packageurl::PackageUrl;

use super::ecosystem::Family;
use super::error::OsvError;

/// A purl as the index reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The ecosystem family.
    pub family: Family,
    /// The release (`12`, `22.04`, `v3.19`); `None`: every release.
    pub release: Option<String>,
    /// The normalized (source) package name.
    pub name: String,
    /// The version to compare (the source version when `upstream` gives one).
    pub version: Option<String>,
}

/// Parses `purl`; `Ok(None)` when its type is not indexed. An unparsable purl, or an
/// OS package purl whose `distro` names no known release, is an error.
pub fn parse(purl: &str) -> Result<Option<Query>, OsvError> {
    read(purl, true)
}

/// Parses a record's `affected[].package.purl`: only the package, as the schema
/// says; version and qualifiers (`distro`, `upstream`) are ignored.
pub fn package(purl: &str) -> Result<Option<Query>, OsvError> {
    read(purl, false)
}

fn read(purl: &str, use_qualifiers: bool) -> Result<Option<Query>, OsvError> {
    let parsed: PackageUrl<'static> = purl
        .parse()
        .map_err(|e: packageurl::Error| OsvError::purl(purl, e.to_string()))?;
    let namespace = parsed.namespace().map(str::to_ascii_lowercase);
    let family = match (parsed.ty(), namespace.as_deref()) {
        ("deb", Some("debian")) => Family::Debian,
        ("deb", Some("ubuntu")) => Family::Ubuntu,
        ("apk", Some("alpine")) => Family::Alpine,
        ("cargo", _) => Family::CratesIo,
        ("npm", _) => Family::Npm,
        ("pypi", _) => Family::PyPI,
        _ => return Ok(None),
    };
    let mut name = match (family, parsed.namespace()) {
        (Family::Npm, Some(scope)) => format!("{scope}/{}", parsed.name()),
        _ => parsed.name().to_owned(),
    };
    let mut version = parsed
        .version()
        .filter(|_| use_qualifiers)
        .map(str::to_owned);
    let mut release = None;
    let os_package = matches!(family, Family::Debian | Family::Ubuntu | Family::Alpine);
    if use_qualifiers && os_package {
        let qualifiers = parsed.qualifiers();
        if let Some(upstream) = qualifiers.get("upstream").filter(|u| !u.is_empty()) {
            match upstream.split_once('@') {
                Some((src, src_version)) if !src.is_empty() && !src_version.is_empty() => {
                    name = src.to_owned();
                    version = Some(src_version.to_owned());
                }
                Some(_) => return Err(OsvError::purl(purl, "empty part in qualifier upstream")),
                None => name = upstream.to_string(),
            }
        }
        if let Some(distro) = qualifiers.get("distro") {
            release = Some(family.release_from_distro(distro).ok_or_else(|| {
                OsvError::purl(
                    purl,
                    format!("qualifier distro={distro} names no known release"),
                )
            })?);
        }
    }
    Ok(Some(Query {
        family,
        release,
        name: family.normalize_name(&name),
        version,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(purl: &str) -> Query {
        parse(purl).unwrap().unwrap()
    }

    #[test]
    fn debian_binary_package_maps_to_its_source() {
        let query = q(
            "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl",
        );
        assert_eq!(query.family, Family::Debian);
        assert_eq!(query.release.as_deref(), Some("12"));
        assert_eq!(query.name, "openssl");
        assert_eq!(query.version.as_deref(), Some("3.0.11-1~deb12u2"));
    }

    #[test]
    fn upstream_with_version_gives_the_source_version() {
        let query = q(
            "pkg:deb/debian/libc6@2.36-9+deb12u4+b1?distro=debian-12&upstream=glibc%402.36-9%2Bdeb12u4",
        );
        assert_eq!(query.name, "glibc");
        assert_eq!(query.version.as_deref(), Some("2.36-9+deb12u4"));
        let no_upstream = q("pkg:deb/ubuntu/curl@7.81.0-1ubuntu1.15?distro=ubuntu-22.04");
        assert_eq!(no_upstream.family, Family::Ubuntu);
        assert_eq!(no_upstream.name, "curl");
        assert_eq!(no_upstream.release.as_deref(), Some("22.04"));
        assert_eq!(q("pkg:deb/debian/curl@7.88.1-10").release, None);
    }

    #[test]
    fn alpine_and_languages() {
        let a = q(
            "pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=alpine-3.19.1&upstream=openssl",
        );
        assert_eq!((a.family, a.name.as_str()), (Family::Alpine, "openssl"));
        assert_eq!(a.release.as_deref(), Some("v3.19"));
        let npm = q("pkg:npm/%40babel/traverse@7.23.0");
        assert_eq!(
            (npm.family, npm.name.as_str()),
            (Family::Npm, "@babel/traverse")
        );
        let py = q("pkg:pypi/Django_REST.framework@3.14.0");
        assert_eq!(
            (py.family, py.name.as_str()),
            (Family::PyPI, "django-rest-framework")
        );
        let cargo = q("pkg:cargo/time@0.1.45");
        assert_eq!(
            (cargo.family, cargo.version.as_deref()),
            (Family::CratesIo, Some("0.1.45"))
        );
    }

    #[test]
    fn unindexed_and_invalid_purls() {
        assert_eq!(parse("pkg:rpm/fedora/curl@8.0.1-1.fc38").unwrap(), None);
        assert_eq!(parse("pkg:golang/golang.org/x/net@0.17.0").unwrap(), None);
        assert_eq!(parse("pkg:deb/raspbian/curl@7.0").unwrap(), None);
        let err = parse("not a purl").unwrap_err();
        assert!(err.to_string().contains("not a purl"), "{err}");
        assert!(parse("pkg:deb/debian/curl@1?distro=plan9").is_err());
        let pkg = package("pkg:deb/debian/curl@1?distro=plan9&upstream=x")
            .unwrap()
            .unwrap();
        assert_eq!(
            (pkg.name.as_str(), pkg.version, pkg.release),
            ("curl", None, None)
        );
    }
}
