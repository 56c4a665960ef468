//! The job's SBOM, made by the control plane beside its provenance: what the runner read from
//! the image's package databases and its vulnerability findings are parsed into typed values
//! here (the runner is platform code, but what it sends is still checked, never copied
//! through), and everything else comes from the same records as the provenance: the spec as
//! submitted, the outputs as the controller hashed them, the pinned image and inputs, and the
//! lockfile packages already checked for provenance.

use std::time::SystemTime;

use airlock_attest::sbom::{
    BuildImage, ImageContents, OsPackage, OsRelease, PackageManager, Sbom, SbomDependency,
    SbomInput, SbomOutput, SbomSource, SbomVulnerability,
};
use airlock_attest::{ResourceDescriptor, Sha256Digest};
use airlock_job::{JobSpec, SourceSpec};
use airlock_proto::v1 as pb;

use super::dependencies::PackageDependency;
use super::images::ImageSubject;
use super::statement::subjects;
use crate::store::OutputRecord;

/// Most OS packages one image may list (a full distribution install has a few thousand).
pub const MAX_OS_PACKAGES: usize = 100_000;
/// Most vulnerability findings one job may report.
pub const MAX_FINDINGS: usize = 100_000;
/// Longest text field the runner may send per package or finding.
const MAX_FIELD: usize = 4096;

/// A text field of the runner's report: bounded, no control characters.
fn text(field: &str, value: &str) -> Result<String, String> {
    if value.len() > MAX_FIELD {
        return Err(format!(
            "{field} is {} bytes; at most {MAX_FIELD}",
            value.len()
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{field} has a control character"));
    }
    Ok(value.to_owned())
}

fn optional(field: &str, value: &str) -> Result<Option<String>, String> {
    (!value.is_empty()).then(|| text(field, value)).transpose()
}

fn required(field: &str, value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err(format!("{field} is empty"));
    }
    text(field, value)
}

/// Checks the image contents a runner reported; errors say which entry and field.
pub fn parse_image_contents(reported: Option<&pb::ImageContents>) -> Result<ImageContents, String> {
    let Some(reported) = reported else {
        return Ok(ImageContents::default());
    };
    if reported.packages.len() > MAX_OS_PACKAGES {
        return Err(format!(
            "{} image packages reported; at most {MAX_OS_PACKAGES}",
            reported.packages.len()
        ));
    }
    let os = match &reported.os {
        Some(os) if !os.id.is_empty() => {
            let id = required("os.id", &os.id)?;
            if !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            {
                return Err(format!(
                    "os.id `{}` is not an os-release ID",
                    id.escape_debug()
                ));
            }
            Some(OsRelease {
                id,
                version_id: optional("os.version_id", &os.version_id)?,
                version_codename: optional("os.version_codename", &os.version_codename)?,
                pretty_name: optional("os.pretty_name", &os.pretty_name)?,
            })
        }
        _ => None,
    };
    let packages = reported
        .packages
        .iter()
        .enumerate()
        .map(|(i, p)| parse_package(p).map_err(|e| format!("image package {i}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let list = |field: &str, values: &[String]| {
        if values.len() > 64 {
            return Err(format!("{} {field} entries; at most 64", values.len()));
        }
        values
            .iter()
            .map(|v| required(field, v))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(ImageContents {
        os,
        packages,
        databases: list("databases", &reported.databases)?,
        unsupported: list("unsupported", &reported.unsupported)?,
    })
}

fn parse_package(p: &pb::OsPackage) -> Result<OsPackage, String> {
    let manager = PackageManager::parse(&p.manager).ok_or_else(|| {
        format!(
            "manager `{}` is not dpkg, apk or rpm",
            p.manager.escape_debug()
        )
    })?;
    if p.licenses.len() > 64 {
        return Err(format!("{} licenses; at most 64", p.licenses.len()));
    }
    Ok(OsPackage {
        manager,
        name: required("name", &p.name)?,
        version: required("version", &p.version)?,
        architecture: optional("architecture", &p.architecture)?,
        source_name: optional("source_name", &p.source_name)?,
        source_version: optional("source_version", &p.source_version)?,
        licenses: p
            .licenses
            .iter()
            .map(|l| required("licenses", l))
            .collect::<Result<_, _>>()?,
    })
}

/// Checks the vulnerability findings a runner reported.
pub fn parse_findings(
    reported: &[pb::VulnerabilityFinding],
) -> Result<Vec<SbomVulnerability>, String> {
    if reported.len() > MAX_FINDINGS {
        return Err(format!(
            "{} findings reported; at most {MAX_FINDINGS}",
            reported.len()
        ));
    }
    reported
        .iter()
        .enumerate()
        .map(|(i, f)| parse_finding(f).map_err(|e| format!("vulnerability {i}: {e}")))
        .collect()
}

fn parse_finding(f: &pb::VulnerabilityFinding) -> Result<SbomVulnerability, String> {
    let severity = match f.severity.as_str() {
        s @ ("critical" | "high" | "medium" | "low" | "unknown") => s.to_owned(),
        other => {
            return Err(format!(
                "severity `{}` is not one of critical, high, medium, low, unknown",
                other.escape_debug()
            ));
        }
    };
    if let Some(score) = f.score
        && !(0.0..=10.0).contains(&score)
    {
        return Err(format!("score {score} is not a CVSS score (0 to 10)"));
    }
    if f.aliases.len() > 64 {
        return Err(format!("{} aliases; at most 64", f.aliases.len()));
    }
    Ok(SbomVulnerability {
        id: required("id", &f.id)?,
        aliases: f
            .aliases
            .iter()
            .map(|a| required("aliases", a))
            .collect::<Result<_, _>>()?,
        purl: required("purl", &f.purl)?,
        severity,
        score: f.score,
        summary: optional("summary", &f.summary)?,
        fixed_version: optional("fixed_version", &f.fixed_version)?,
    })
}

/// What the SBOM of one job attempt is made from.
#[derive(Debug)]
pub struct SbomInputs<'a> {
    /// The job's attempt URI (`<issuer>/jobs/<id>/attempts/<n>`), unique per SBOM.
    pub invocation_id: &'a str,
    /// The parsed spec.
    pub spec: &'a JobSpec,
    /// The outputs as the controller hashed them.
    pub outputs: &'a [OutputRecord],
    /// The image outputs, as the controller verified their layouts.
    pub images: &'a [ImageSubject],
    /// The build image's pinned manifest digest.
    pub image_digest: &'a Sha256Digest,
    /// What its package databases list.
    pub contents: ImageContents,
    /// The lockfile packages.
    pub dependencies: &'a [PackageDependency],
    /// Their and the image packages' known vulnerabilities.
    pub vulnerabilities: Vec<SbomVulnerability>,
    /// When.
    pub created: SystemTime,
    /// `urn:uuid:...`, from the controller's id generator.
    pub serial_number: String,
    /// The controller's version.
    pub controller_version: &'a str,
}

/// The SBOM model and its statement's subjects (the provenance's, see [`subjects`]).
pub fn build_sbom(inputs: SbomInputs<'_>) -> (Sbom, Vec<ResourceDescriptor>) {
    let spec = inputs.spec;
    let subject = subjects(spec, inputs.outputs, inputs.images);
    let outputs = subject
        .iter()
        .filter_map(|d| {
            let sha256 = Sha256Digest::from_hex(d.digest.get("sha256")?).ok()?;
            Some(SbomOutput {
                name: d.name.clone()?,
                sha256,
                image: d.media_type.is_some(),
            })
        })
        .collect();
    let source = match &spec.source {
        SourceSpec::Git { commit, .. } => SbomSource {
            uri: spec.source.uri(),
            git_commit: Some(commit.hex()),
            sha256: None,
        },
        SourceSpec::Path { sha256, .. } => SbomSource {
            uri: spec.source.uri(),
            git_commit: None,
            sha256: *sha256,
        },
        SourceSpec::Archive { sha256, .. } => SbomSource {
            uri: spec.source.uri(),
            git_commit: None,
            sha256: Some(*sha256),
        },
    };
    let sbom = Sbom {
        name: spec.job.name.clone(),
        namespace: format!("{}/sbom", inputs.invocation_id),
        serial_number: inputs.serial_number,
        created: inputs.created,
        tool_version: inputs.controller_version.to_owned(),
        outputs,
        source,
        image: BuildImage {
            reference: spec.image.reference.to_string(),
            manifest: *inputs.image_digest,
            contents: inputs.contents,
        },
        inputs: spec
            .inputs
            .iter()
            .map(|i| SbomInput {
                name: i.name.clone(),
                url: i.url.clone(),
                sha256: i.sha256,
            })
            .collect(),
        dependencies: inputs
            .dependencies
            .iter()
            .map(|d| SbomDependency {
                purl: d.purl.clone(),
                algorithm: d.algorithm.to_owned(),
                hex: d.hex.clone(),
                download_location: d.download_location.clone(),
            })
            .collect(),
        vulnerabilities: inputs.vulnerabilities,
    };
    (sbom, subject)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(manager: &str, name: &str, version: &str) -> pb::OsPackage {
        pb::OsPackage {
            manager: manager.into(),
            name: name.into(),
            version: version.into(),
            architecture: "amd64".into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_runners_image_contents_are_checked() {
        let good = pb::ImageContents {
            os: Some(pb::OsRelease {
                id: "debian".into(),
                version_id: "12".into(),
                ..Default::default()
            }),
            packages: vec![package("dpkg", "libc6", "2.36-9")],
            databases: vec!["/var/lib/dpkg/status".into()],
            unsupported: vec![],
        };
        let parsed = parse_image_contents(Some(&good)).unwrap();
        assert_eq!(parsed.packages[0].manager, PackageManager::Dpkg);
        assert_eq!(parsed.os.unwrap().version_id.as_deref(), Some("12"));
        assert_eq!(
            parse_image_contents(None).unwrap(),
            ImageContents::default()
        );

        for (bad, why) in [
            (package("pacman", "x", "1"), "manager"),
            (package("dpkg", "", "1"), "name is empty"),
            (package("dpkg", "x", "1\n2"), "control character"),
            (package("dpkg", "x", &"9".repeat(5000)), "at most 4096"),
        ] {
            let mut contents = good.clone();
            contents.packages.push(bad);
            let err = parse_image_contents(Some(&contents)).unwrap_err();
            assert!(
                err.contains("image package 1") && err.contains(why),
                "{err}"
            );
        }
        let mut contents = good.clone();
        contents.os.as_mut().unwrap().id = "Debian/../x".into();
        assert!(
            parse_image_contents(Some(&contents))
                .unwrap_err()
                .contains("os-release ID")
        );
    }

    #[test]
    fn findings_are_checked() {
        let good = pb::VulnerabilityFinding {
            id: "CVE-2026-1".into(),
            purl: "pkg:cargo/a@1.0.0".into(),
            severity: "high".into(),
            score: Some(7.5),
            ..Default::default()
        };
        assert_eq!(
            parse_findings(std::slice::from_ref(&good)).unwrap()[0].score,
            Some(7.5)
        );
        let mut bad = good.clone();
        bad.severity = "HIGHEST".into();
        assert!(parse_findings(&[bad]).unwrap_err().contains("severity"));
        let mut bad = good;
        bad.score = Some(11.0);
        assert!(parse_findings(&[bad]).unwrap_err().contains("CVSS"));
    }
}
