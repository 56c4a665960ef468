//! The SBOM model rendered in both formats: every package, digest and relationship is there.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

use super::*;
use crate::digest::Sha256Digest;
use crate::keys::SigningKey;

pub(crate) fn sample() -> Sbom {
    let os = OsRelease {
        id: "debian".into(),
        version_id: Some("12".into()),
        version_codename: Some("bookworm".into()),
        pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()),
    };
    let pkg = |name: &str, version: &str, licenses: &[&str]| OsPackage {
        manager: PackageManager::Dpkg,
        name: name.into(),
        version: version.into(),
        architecture: Some("amd64".into()),
        source_name: None,
        source_version: None,
        licenses: licenses.iter().map(|l| (*l).to_owned()).collect(),
    };
    Sbom {
        name: "hello".into(),
        namespace: "https://ci.example/jobs/j1/attempts/1/sbom".into(),
        serial_number: "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79".into(),
        created: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        tool_version: "0.1.0".into(),
        outputs: vec![SbomOutput {
            name: "hello".into(),
            sha256: Sha256Digest::of(b"hello"),
            image: false,
        }],
        source: SbomSource {
            uri: "https://git.example.org/org/app.git".into(),
            git_commit: Some("a".repeat(40)),
            sha256: None,
        },
        image: BuildImage {
            reference: format!("registry.example/base@sha256:{}", "b".repeat(64)),
            manifest: Sha256Digest::from_hex(&"b".repeat(64)).unwrap(),
            contents: ImageContents {
                os: Some(os),
                packages: vec![
                    pkg("libc6", "2.36-9+deb12u4", &["GPL-2+", "LGPL-2.1+"]),
                    pkg("zlib1g", "1:1.2.13.dfsg-1", &["Zlib"]),
                ],
                databases: vec!["/var/lib/dpkg/status".into()],
                unsupported: vec![],
            },
        },
        inputs: vec![SbomInput {
            name: "zlib".into(),
            url: "https://example.org/zlib-1.3.1.tar.gz".into(),
            sha256: Sha256Digest::of(b"zlib"),
        }],
        dependencies: vec![SbomDependency {
            purl: "pkg:cargo/fnv@1.0.7".into(),
            algorithm: "sha256".into(),
            hex: "c".repeat(64),
            download_location: "http://127.0.0.1:8080/crates/fnv/1.0.7/download".into(),
        }],
        vulnerabilities: vec![SbomVulnerability {
            id: "CVE-2026-0001".into(),
            aliases: vec!["DSA-1".into()],
            purl: "pkg:cargo/fnv@1.0.7".into(),
            severity: "high".into(),
            score: Some(7.5),
            summary: Some("a bad bug".into()),
            fixed_version: Some("1.0.8".into()),
        }],
    }
}

fn subject() -> Vec<crate::ResourceDescriptor> {
    vec![crate::ResourceDescriptor::sha256(
        "hello",
        &Sha256Digest::of(b"hello"),
    )]
}

#[test]
fn spdx_lists_every_package_with_its_version_and_purl() {
    let docs = render(&sample(), subject()).unwrap();
    let spdx: Value = serde_json::from_slice(&docs.spdx_json).unwrap();
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    assert_eq!(spdx["dataLicense"], "CC0-1.0");
    assert_eq!(spdx["creationInfo"]["created"], "2023-11-14T22:13:20Z");
    let packages = spdx["packages"].as_array().unwrap();
    let find = |name: &str| packages.iter().find(|p| p["name"] == name).unwrap();
    let libc = find("libc6");
    assert_eq!(libc["versionInfo"], "2.36-9+deb12u4");
    assert_eq!(libc["licenseDeclared"], "NOASSERTION");
    assert!(libc["licenseComments"].as_str().unwrap().contains("GPL-2+"));
    assert_eq!(find("zlib1g")["licenseDeclared"], "Zlib");
    assert_eq!(
        find("zlib1g")["externalRefs"][0]["referenceLocator"],
        "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12"
    );
    let output = find("hello");
    assert_eq!(output["checksums"][0]["algorithm"], "SHA256");
    assert_eq!(
        output["checksums"][0]["checksumValue"],
        Sha256Digest::of(b"hello").hex()
    );
    assert_eq!(
        find("source")["downloadLocation"],
        format!("git+https://git.example.org/org/app.git@{}", "a".repeat(40))
    );
    assert_eq!(find("fnv")["checksums"][0]["algorithm"], "SHA256");
    let relationships = spdx["relationships"].as_array().unwrap();
    let has = |from: &str, kind: &str, to: &str| {
        relationships.iter().any(|r| {
            r["spdxElementId"] == from
                && r["relationshipType"] == kind
                && r["relatedSpdxElement"] == to
        })
    };
    assert!(has("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Output-1"));
    assert!(has("SPDXRef-Output-1", "GENERATED_FROM", "SPDXRef-Source"));
    assert!(has("SPDXRef-Image", "BUILD_TOOL_OF", "SPDXRef-Output-1"));
    assert!(has("SPDXRef-Image", "CONTAINS", "SPDXRef-OsPackage-1"));
    assert!(has(
        "SPDXRef-Input-1",
        "BUILD_DEPENDENCY_OF",
        "SPDXRef-Output-1"
    ));
    assert!(has(
        "SPDXRef-Output-1",
        "DEPENDS_ON",
        "SPDXRef-Dependency-1"
    ));
}

#[test]
fn cyclonedx_has_the_same_content_and_the_vulnerabilities() {
    let docs = render(&sample(), subject()).unwrap();
    let bom: Value = serde_json::from_slice(&docs.cyclonedx_json).unwrap();
    assert_eq!(bom["bomFormat"], "CycloneDX");
    assert_eq!(bom["specVersion"], "1.6");
    let components = bom["components"].as_array().unwrap();
    let find = |name: &str| components.iter().find(|c| c["name"] == name).unwrap();
    assert_eq!(find("libc6")["version"], "2.36-9+deb12u4");
    assert_eq!(find("libc6")["licenses"][0]["license"]["name"], "GPL-2+");
    assert_eq!(find("zlib1g")["licenses"][0]["expression"], "Zlib");
    assert_eq!(find("hello")["hashes"][0]["alg"], "SHA-256");
    assert_eq!(
        find("hello")["hashes"][0]["content"],
        Sha256Digest::of(b"hello").hex()
    );
    assert_eq!(find("fnv")["purl"], "pkg:cargo/fnv@1.0.7");
    let vulns = bom["vulnerabilities"].as_array().unwrap();
    assert_eq!(vulns[0]["id"], "CVE-2026-0001");
    assert_eq!(vulns[0]["ratings"][0]["severity"], "high");
    assert_eq!(vulns[0]["affects"][0]["ref"], find("fnv")["bom-ref"]);
    let output_deps = bom["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["ref"] == find("hello")["bom-ref"])
        .unwrap();
    for r in ["source", "image", "input-1", "dependency-1"] {
        assert!(
            output_deps["dependsOn"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d == r),
            "{r}"
        );
    }
}

#[test]
fn a_vulnerability_of_an_unlisted_package_is_refused() {
    let mut sbom = sample();
    sbom.vulnerabilities[0].purl = "pkg:cargo/other@1.0.0".into();
    assert!(matches!(
        render(&sbom, subject()),
        Err(SbomError::Document(m)) if m.contains("not in the SBOM")
    ));
}

#[test]
fn the_signed_statement_verifies_and_a_tampered_one_does_not() {
    let docs = render(&sample(), subject()).unwrap();
    let key = SigningKey::generate().unwrap();
    let (envelope, _) = docs.statement.sign(&key).unwrap();
    let keys = [key.verifying_key().clone()];
    let statement = SbomStatement::verify(&envelope, &keys).unwrap();
    assert_eq!(statement.predicate_type, SPDX_PREDICATE_TYPE);
    assert_eq!(statement.subject, subject());
    assert_eq!(statement.predicate["name"], "hello");

    let mut tampered = envelope.clone();
    let mut payload: Value = serde_json::from_slice(&tampered.payload_bytes().unwrap()).unwrap();
    payload["predicate"]["name"] = "other".into();
    tampered = crate::Envelope::unsigned(
        &tampered.payload_type,
        &serde_json::to_vec(&payload).unwrap(),
    );
    tampered.signatures = envelope.signatures.clone();
    assert!(matches!(
        SbomStatement::verify(&tampered, &keys),
        Err(SbomError::Verify(_))
    ));
    let other = SigningKey::generate().unwrap();
    assert!(SbomStatement::verify(&envelope, &[other.verifying_key().clone()]).is_err());
}
