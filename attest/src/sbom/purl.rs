//! Package URLs (purl-spec) of what an SBOM lists: OS packages (`pkg:deb`, `pkg:apk`,
//! `pkg:rpm`, in the form vulnerability scanners match: the distro and the source package as
//! qualifiers) and OCI images (`pkg:oci`).

use packageurl::PackageUrl;

use super::model::{OsPackage, OsRelease, PackageManager};
use crate::digest::Sha256Digest;

/// Why a purl could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write a package URL for `{name}`: {reason}")]
pub struct PurlError {
    /// The package or image.
    pub name: String,
    /// What the purl library refused.
    pub reason: String,
}

fn purl_error(name: &str) -> impl Fn(packageurl::Error) -> PurlError + '_ {
    move |e| PurlError {
        name: name.to_owned(),
        reason: e.to_string(),
    }
}

/// `pkg:deb/debian/libc6@2.36-9?arch=amd64&distro=debian-12&upstream=glibc`: the namespace is
/// the os-release `ID`, `distro` is `ID-VERSION_ID`, and `upstream` names the source package
/// (`name@version` when its version differs), which is what Debian's and Alpine's advisories
/// are written against.
pub fn os_package_purl(package: &OsPackage, os: Option<&OsRelease>) -> Result<String, PurlError> {
    let err = purl_error(&package.name);
    let mut purl =
        PackageUrl::new(package.manager.purl_type(), package.name.as_str()).map_err(&err)?;
    let namespace = os.map(|o| o.id.as_str()).unwrap_or(match package.manager {
        PackageManager::Dpkg => "debian",
        PackageManager::Apk => "alpine",
        PackageManager::Rpm => "redhat",
    });
    purl.with_namespace(namespace).map_err(&err)?;
    purl.with_version(package.version.as_str()).map_err(&err)?;
    if let Some(arch) = &package.architecture {
        purl.add_qualifier("arch", arch.as_str()).map_err(&err)?;
    }
    if let Some(os) = os {
        let distro = match &os.version_id {
            Some(version) => format!("{}-{version}", os.id),
            None => os.id.clone(),
        };
        purl.add_qualifier("distro", distro).map_err(&err)?;
    }
    if let Some(source) = &package.source_name {
        let upstream = match &package.source_version {
            Some(version) if *version != package.version => format!("{source}@{version}"),
            _ => source.clone(),
        };
        purl.add_qualifier("upstream", upstream).map_err(&err)?;
    }
    Ok(purl.to_string())
}

/// `pkg:oci/<name>@sha256:<hex>` for an image reference `[registry/]repo[:tag]@sha256:<hex>`
/// (with `repository_url`) or `oci-layout:DIR@sha256:<hex>` (named after the directory).
pub fn oci_purl(reference: &str, manifest: &Sha256Digest) -> Result<String, PurlError> {
    let repository = reference
        .split_once('@')
        .map_or(reference, |(repo, _)| repo);
    let layout = repository.strip_prefix("oci-layout:");
    let path = layout.unwrap_or(repository);
    let last = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path);
    // A tag is not part of the purl name.
    let name = if layout.is_none() {
        last.split_once(':').map_or(last, |(n, _)| n)
    } else {
        last
    };
    let name = if name.is_empty() { "image" } else { name };
    let err = purl_error(name);
    let lowercase = name.to_ascii_lowercase();
    let mut purl = PackageUrl::new("oci", lowercase.as_str()).map_err(&err)?;
    purl.with_version(manifest.prefixed()).map_err(&err)?;
    if layout.is_none() {
        let repository_url = repository
            .rsplit_once(':')
            .filter(|(_, tag)| !tag.contains('/'))
            .map_or(repository, |(repo, _)| repo);
        purl.add_qualifier("repository_url", repository_url)
            .map_err(&err)?;
    }
    Ok(purl.to_string())
}

/// `pkg:oci/<name>@sha256:<hex>` for an image a job built (`[[outputs.images]]` name).
pub fn oci_output_purl(name: &str, manifest: &Sha256Digest) -> Result<String, PurlError> {
    let lowercase = name.to_ascii_lowercase();
    let err = purl_error(name);
    let mut purl = PackageUrl::new("oci", lowercase.as_str()).map_err(&err)?;
    purl.with_version(manifest.prefixed()).map_err(&err)?;
    Ok(purl.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn debian() -> OsRelease {
        OsRelease {
            id: "debian".into(),
            version_id: Some("12".into()),
            version_codename: Some("bookworm".into()),
            pretty_name: None,
        }
    }

    fn package(name: &str, version: &str, source: Option<(&str, Option<&str>)>) -> OsPackage {
        OsPackage {
            manager: PackageManager::Dpkg,
            name: name.into(),
            version: version.into(),
            architecture: Some("amd64".into()),
            source_name: source.map(|s| s.0.into()),
            source_version: source.and_then(|s| s.1.map(Into::into)),
            licenses: vec![],
        }
    }

    #[test]
    fn deb_purls_name_the_distro_and_the_source_package() {
        let os = debian();
        let libc = package("libc6", "2.36-9+deb12u4", Some(("glibc", None)));
        assert_eq!(
            os_package_purl(&libc, Some(&os)).unwrap(),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc"
        );
        // A binNMU: the source version differs from the binary's.
        let bin = package("libfoo1", "1.0-1+b1", Some(("foo", Some("1.0-1"))));
        assert!(
            os_package_purl(&bin, Some(&os))
                .unwrap()
                .ends_with("&upstream=foo%401.0-1"),
            "{}",
            os_package_purl(&bin, Some(&os)).unwrap()
        );
        let epoch = package("perl-base", "1:5.36.0-7", None);
        assert_eq!(
            os_package_purl(&epoch, None).unwrap(),
            "pkg:deb/debian/perl-base@1:5.36.0-7?arch=amd64"
        );
    }

    #[test]
    fn oci_purls_name_the_repository_and_the_digest() {
        let digest = Sha256Digest::of(b"m");
        let hex = digest.hex();
        assert_eq!(
            oci_purl(
                &format!("registry.example:5000/org/base:1@sha256:{hex}"),
                &digest
            )
            .unwrap(),
            format!("pkg:oci/base@sha256:{hex}?repository_url=registry.example:5000%2Forg%2Fbase")
        );
        assert_eq!(
            oci_purl(
                &format!("oci-layout:../Base-Image/oci@sha256:{hex}"),
                &digest
            )
            .unwrap(),
            format!("pkg:oci/oci@sha256:{hex}")
        );
    }
}
