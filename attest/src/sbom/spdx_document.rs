//! The SBOM as an SPDX 2.3 JSON document (the types are generated from SPDX's JSON schema by
//! `serde-spdx`). Every output, the source, the build image and its OS packages, the declared
//! inputs and the lockfile packages are SPDX packages; relationships say that the outputs
//! were generated from the source, built with the image, from the inputs, and depend on the
//! lockfile packages, and that the image contains its packages.

use serde_spdx::spdx::v_2_3::{
    Spdx, SpdxBuilder, SpdxCreationInfoBuilder, SpdxItemPackages, SpdxItemPackagesBuilder,
    SpdxItemPackagesItemChecksums, SpdxItemPackagesItemExternalRefs, SpdxItemRelationships,
};

use super::SbomError;
use super::license::spdx_expression;
use super::model::Sbom;
use super::purl::{oci_output_purl, oci_purl, os_package_purl};

/// `spdxVersion` of the documents airlock writes.
pub const SPDX_VERSION: &str = "SPDX-2.3";
/// What SPDX writes for "the creator makes no assertion".
const NOASSERTION: &str = "NOASSERTION";

/// The id of the document itself.
const DOCUMENT_ID: &str = "SPDXRef-DOCUMENT";

fn checksum(algorithm: &str, hex: &str) -> SpdxItemPackagesItemChecksums {
    SpdxItemPackagesItemChecksums {
        algorithm: algorithm.to_owned(),
        checksum_value: hex.to_owned(),
    }
}

fn purl_ref(purl: String) -> SpdxItemPackagesItemExternalRefs {
    SpdxItemPackagesItemExternalRefs {
        comment: None,
        reference_category: "PACKAGE-MANAGER".to_owned(),
        reference_locator: purl,
        reference_type: "purl".to_owned(),
    }
}

fn relationship(from: &str, kind: &str, to: &str) -> SpdxItemRelationships {
    SpdxItemRelationships {
        comment: None,
        related_spdx_element: to.to_owned(),
        relationship_type: kind.to_owned(),
        spdx_element_id: from.to_owned(),
    }
}

/// A download location SPDX accepts: a URL matching the SPDX 2.3 spec's pattern (as
/// `git+URL@commit` for a commit), or NOASSERTION for anything else (a local path, a `file:`
/// URL, a host the pattern does not take such as an IP address); the location is then still
/// named in the package's `sourceInfo`.
fn download_location(url: &str, commit: Option<&str>) -> String {
    if !spdx_url(url) {
        return NOASSERTION.to_owned();
    }
    match commit {
        Some(commit) => format!("git+{url}@{commit}"),
        None => url.to_owned(),
    }
}

/// The SPDX 2.3 download-location URL pattern (Annex on `PackageDownloadLocation`):
/// `scheme://[user@]host[:port][/path]` where host is dot- or dash-separated lowercase
/// alphanumeric labels ending in a 2 to 5 letter top-level label.
fn spdx_url(url: &str) -> bool {
    const SCHEMES: [&str; 7] = [
        "http://", "https://", "ssh://", "git://", "svn://", "sftp://", "ftp://",
    ];
    let Some(rest) = SCHEMES.iter().find_map(|s| url.strip_prefix(s)) else {
        return false;
    };
    if rest.chars().any(char::is_whitespace) {
        return false;
    }
    let (authority, _path) = rest.split_once('/').unwrap_or((rest, ""));
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = host_port.split_once(':').unwrap_or((host_port, ""));
    if !port.is_empty() && (port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    let Some((labels, tld)) = host.rsplit_once('.') else {
        return false;
    };
    let tld_ok = (2..=5).contains(&tld.len()) && tld.bytes().all(|b| b.is_ascii_alphabetic());
    let labels_ok = labels
        .split(['.', '-'])
        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric()));
    tld_ok && labels_ok
}

/// A package with the fields every package here shares: no file analysis, no license
/// conclusion (airlock concludes nothing), no copyright text.
fn package(id: String, name: &str) -> SpdxItemPackagesBuilder {
    let mut builder = SpdxItemPackagesBuilder::default();
    builder
        .spdxid(id)
        .name(name)
        .download_location(NOASSERTION)
        .files_analyzed(false)
        .license_concluded(NOASSERTION)
        .license_declared(NOASSERTION)
        .copyright_text(NOASSERTION);
    builder
}

fn build(builder: &SpdxItemPackagesBuilder) -> Result<SpdxItemPackages, SbomError> {
    builder
        .build()
        .map_err(|e| SbomError::Document(format!("SPDX package: {e}")))
}

/// Renders `sbom` as an SPDX 2.3 document.
pub fn spdx_document(sbom: &Sbom) -> Result<Spdx, SbomError> {
    let mut packages = Vec::new();
    let mut relationships = Vec::new();

    let output_ids: Vec<String> = (1..=sbom.outputs.len())
        .map(|i| format!("SPDXRef-Output-{i}"))
        .collect();
    for (output, id) in sbom.outputs.iter().zip(&output_ids) {
        let mut p = package(id.clone(), &output.name);
        p.checksums(vec![checksum("SHA256", &output.sha256.hex())])
            .primary_package_purpose(if output.image { "CONTAINER" } else { "FILE" });
        if output.image {
            p.external_refs(vec![purl_ref(oci_output_purl(
                &output.name,
                &output.sha256,
            )?)]);
        }
        packages.push(build(&p)?);
        relationships.push(relationship(DOCUMENT_ID, "DESCRIBES", id));
    }

    let source = &sbom.source;
    let mut p = package("SPDXRef-Source".to_owned(), "source");
    p.download_location(download_location(&source.uri, source.git_commit.as_deref()))
        .primary_package_purpose("SOURCE")
        .source_info(format!("the job's source: {}", source.uri));
    if let Some(commit) = &source.git_commit {
        p.version_info(commit.clone());
    }
    if let Some(sha256) = &source.sha256 {
        p.checksums(vec![checksum("SHA256", &sha256.hex())]);
    }
    packages.push(build(&p)?);

    let image = &sbom.image;
    let contents = &image.contents;
    let mut p = package("SPDXRef-Image".to_owned(), &image.reference);
    p.version_info(image.manifest.prefixed())
        .checksums(vec![checksum("SHA256", &image.manifest.hex())])
        .external_refs(vec![purl_ref(oci_purl(&image.reference, &image.manifest)?)])
        .primary_package_purpose("CONTAINER")
        .comment(image_comment(&contents.databases, &contents.unsupported));
    packages.push(build(&p)?);

    if let Some(os) = &contents.os {
        let mut p = package("SPDXRef-OperatingSystem".to_owned(), &os.id);
        p.primary_package_purpose("OPERATING-SYSTEM");
        if let Some(version) = &os.version_id {
            p.version_info(version.clone());
        }
        if let Some(pretty) = &os.pretty_name {
            p.description(pretty.clone());
        }
        packages.push(build(&p)?);
        relationships.push(relationship(
            "SPDXRef-Image",
            "CONTAINS",
            "SPDXRef-OperatingSystem",
        ));
    }
    for (i, os_package) in contents.packages.iter().enumerate() {
        let id = format!("SPDXRef-OsPackage-{}", i + 1);
        let mut p = package(id.clone(), &os_package.name);
        p.version_info(os_package.version.clone())
            .external_refs(vec![purl_ref(os_package_purl(
                os_package,
                contents.os.as_ref(),
            )?)])
            .source_info(format!(
                "listed in the build image's {} database",
                os_package.manager.as_str()
            ));
        match spdx_expression(&os_package.licenses) {
            Some(expression) => {
                p.license_declared(expression);
            }
            None if !os_package.licenses.is_empty() => {
                p.license_comments(format!(
                    "declared as (not SPDX identifiers): {}",
                    os_package.licenses.join(", ")
                ));
            }
            None => {}
        }
        packages.push(build(&p)?);
        relationships.push(relationship("SPDXRef-Image", "CONTAINS", &id));
    }

    let mut inputs = Vec::new();
    for (i, input) in sbom.inputs.iter().enumerate() {
        let id = format!("SPDXRef-Input-{}", i + 1);
        let mut p = package(id.clone(), &input.name);
        p.download_location(download_location(&input.url, None))
            .checksums(vec![checksum("SHA256", &input.sha256.hex())])
            .primary_package_purpose("FILE")
            .source_info(format!("declared input, downloaded from {}", input.url));
        packages.push(build(&p)?);
        inputs.push(id);
    }

    let mut dependencies = Vec::new();
    for (i, dep) in sbom.dependencies.iter().enumerate() {
        let id = format!("SPDXRef-Dependency-{}", i + 1);
        let parsed: packageurl::PackageUrl<'_> = dep
            .purl
            .parse()
            .map_err(|e| SbomError::Document(format!("dependency purl {}: {e}", dep.purl)))?;
        let name = match parsed.namespace() {
            Some(ns) => format!("{ns}/{}", parsed.name()),
            None => parsed.name().to_owned(),
        };
        let mut p = package(id.clone(), &name);
        if let Some(version) = parsed.version() {
            p.version_info(version.to_owned());
        }
        p.download_location(download_location(&dep.download_location, None))
            .checksums(vec![checksum(
                &dep.algorithm.to_ascii_uppercase(),
                &dep.hex,
            )])
            .external_refs(vec![purl_ref(dep.purl.clone())])
            .primary_package_purpose("LIBRARY")
            .source_info(format!(
                "lockfile package, fetched from {}",
                dep.download_location
            ));
        packages.push(build(&p)?);
        dependencies.push(id);
    }

    for output in &output_ids {
        relationships.push(relationship(output, "GENERATED_FROM", "SPDXRef-Source"));
        relationships.push(relationship("SPDXRef-Image", "BUILD_TOOL_OF", output));
        for input in &inputs {
            relationships.push(relationship(input, "BUILD_DEPENDENCY_OF", output));
        }
        for dep in &dependencies {
            relationships.push(relationship(output, "DEPENDS_ON", dep));
        }
    }

    let creation_info = SpdxCreationInfoBuilder::default()
        .created(
            crate::rfc3339_utc(sbom.created)
                .map_err(|e| SbomError::Document(format!("created: {e}")))?,
        )
        .creators(vec![format!("Tool: airlock-{}", sbom.tool_version)])
        .build()
        .map_err(|e| SbomError::Document(format!("SPDX creationInfo: {e}")))?;
    SpdxBuilder::default()
        .spdxid(DOCUMENT_ID)
        .spdx_version(SPDX_VERSION)
        .data_license("CC0-1.0")
        .name(sbom.name.clone())
        .document_namespace(sbom.namespace.clone())
        .creation_info(creation_info)
        .packages(packages)
        .relationships(relationships)
        .build()
        .map_err(|e| SbomError::Document(format!("SPDX document: {e}")))
}

/// Which package databases the image's packages come from, and which it has that were not
/// read (so a reader knows the list may be incomplete).
fn image_comment(databases: &[String], unsupported: &[String]) -> String {
    let mut comment = if databases.is_empty() {
        "no package database was found in the image".to_owned()
    } else {
        format!("packages read from {}", databases.join(", "))
    };
    if !unsupported.is_empty() {
        comment.push_str(&format!("; not read: {}", unsupported.join("; ")));
    }
    comment
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_locations_follow_the_spdx_pattern() {
        assert_eq!(
            download_location("https://github.com/o/r.git", Some("ab")),
            "git+https://github.com/o/r.git@ab"
        );
        assert_eq!(
            download_location("https://example.org:8443/x.tar.gz", None),
            "https://example.org:8443/x.tar.gz"
        );
        for unsupported in [
            "http://127.0.0.1:8080/x",
            "file:///src",
            "/src",
            "https://git.example/r",
            "https://a..b.com/",
        ] {
            assert_eq!(
                download_location(unsupported, None),
                NOASSERTION,
                "{unsupported}"
            );
        }
    }
}
