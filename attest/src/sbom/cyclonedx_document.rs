//! The SBOM as a CycloneDX 1.6 JSON BOM (types generated from CycloneDX's JSON schema by
//! `serde-cyclonedx`). The same content as the SPDX document: components for the outputs, the
//! source, the build image, its operating system and packages, the inputs and the lockfile
//! packages; `dependencies` for what was built from what; and the vulnerabilities the
//! runner's OSV database knows of (SPDX 2.3 has no place for those).

use serde_cyclonedx::cyclonedx::v_1_6::{
    Component, ComponentBuilder, CycloneDx, CycloneDxBuilder, Dependency, ExternalReference, Hash,
    HashAlg, License, LicenseChoiceUrl, LicenseChoiceUrlVariant0ItemUrl,
    LicenseChoiceUrlVariant1ItemLicense, Metadata, MetadataTools, MetadataToolsVariant0, Property,
    Rating, Severity, Vulnerability, VulnerabilityItemAffects, VulnerabilitySource,
};

use super::SbomError;
use super::license::spdx_expression;
use super::model::Sbom;
use super::purl::{oci_output_purl, oci_purl, os_package_purl};

/// `specVersion` of the BOMs airlock writes.
pub const CYCLONEDX_SPEC_VERSION: &str = "1.6";

fn sha256(hex: String) -> Hash {
    Hash {
        alg: HashAlg::Sha256,
        content: hex,
    }
}

fn property(name: &str, value: impl Into<String>) -> Property {
    Property {
        name: name.to_owned(),
        value: Some(value.into()),
    }
}

fn build(builder: &ComponentBuilder) -> Result<Component, SbomError> {
    builder
        .build()
        .map_err(|e| SbomError::Document(format!("CycloneDX component: {e}")))
}

fn component(kind: &str, name: &str, bom_ref: &str) -> ComponentBuilder {
    let mut builder = ComponentBuilder::default();
    builder.type_(kind).name(name).bom_ref(bom_ref);
    builder
}

fn external(kind: &str, url: &str) -> ExternalReference {
    ExternalReference {
        comment: None,
        hashes: None,
        type_: kind.to_owned(),
        url: serde_json::Value::String(url.to_owned()),
    }
}

/// Declared licenses: one SPDX expression when they are one, else each name as written.
fn licenses(declared: &[String]) -> Option<LicenseChoiceUrl> {
    if declared.is_empty() {
        return None;
    }
    Some(match spdx_expression(declared) {
        Some(expression) => LicenseChoiceUrl::Variant1(vec![LicenseChoiceUrlVariant1ItemLicense {
            acknowledgement: None,
            bom_ref: None,
            expression,
        }]),
        None => LicenseChoiceUrl::Variant0(
            declared
                .iter()
                .map(|name| LicenseChoiceUrlVariant0ItemUrl {
                    license: License {
                        name: Some(name.clone()),
                        ..Default::default()
                    },
                })
                .collect(),
        ),
    })
}

fn severity(name: &str) -> Severity {
    match name {
        "critical" => Severity::Critical,
        "high" => Severity::High,
        "medium" => Severity::Medium,
        "low" => Severity::Low,
        _ => Severity::Unknown,
    }
}

/// Renders `sbom` as a CycloneDX 1.6 BOM.
pub fn cyclonedx_bom(sbom: &Sbom) -> Result<CycloneDx, SbomError> {
    let mut components = Vec::new();
    let mut dependencies = Vec::new();

    let mut output_refs = Vec::new();
    for (i, output) in sbom.outputs.iter().enumerate() {
        let bom_ref = format!("output-{}", i + 1);
        let mut c = component(
            if output.image { "container" } else { "file" },
            &output.name,
            &bom_ref,
        );
        c.hashes(vec![sha256(output.sha256.hex())]);
        if output.image {
            c.purl(oci_output_purl(&output.name, &output.sha256)?);
        }
        components.push(build(&c)?);
        output_refs.push(bom_ref);
    }

    let source = &sbom.source;
    let mut c = component("file", "source", "source");
    let mut refs = vec![external("vcs", &source.uri)];
    if source.git_commit.is_none() {
        refs[0] = external("distribution", &source.uri);
    }
    c.external_references(refs);
    if let Some(commit) = &source.git_commit {
        c.version(commit.clone())
            .properties(vec![property("airlock:gitCommit", commit.clone())]);
    }
    if let Some(digest) = &source.sha256 {
        c.hashes(vec![sha256(digest.hex())]);
    }
    components.push(build(&c)?);

    let image = &sbom.image;
    let contents = &image.contents;
    let mut c = component("container", &image.reference, "image");
    let mut properties: Vec<Property> = contents
        .databases
        .iter()
        .map(|db| property("airlock:packageDatabase", db.clone()))
        .collect();
    properties.extend(
        contents
            .unsupported
            .iter()
            .map(|db| property("airlock:unreadPackageDatabase", db.clone())),
    );
    c.version(image.manifest.prefixed())
        .hashes(vec![sha256(image.manifest.hex())])
        .purl(oci_purl(&image.reference, &image.manifest)?);
    if !properties.is_empty() {
        c.properties(properties);
    }
    components.push(build(&c)?);

    let mut image_contains = Vec::new();
    if let Some(os) = &contents.os {
        let mut c = component("operating-system", &os.id, "os");
        if let Some(version) = &os.version_id {
            c.version(version.clone());
        }
        if let Some(pretty) = &os.pretty_name {
            c.description(pretty.clone());
        }
        components.push(build(&c)?);
        image_contains.push("os".to_owned());
    }
    let mut purl_refs = std::collections::BTreeMap::new();
    for (i, package) in contents.packages.iter().enumerate() {
        let bom_ref = format!("os-package-{}", i + 1);
        let purl = os_package_purl(package, contents.os.as_ref())?;
        let mut c = component("library", &package.name, &bom_ref);
        c.version(package.version.clone())
            .purl(purl.clone())
            .properties(vec![property(
                "airlock:packageManager",
                package.manager.as_str(),
            )]);
        if let Some(licenses) = licenses(&package.licenses) {
            c.licenses(licenses);
        }
        components.push(build(&c)?);
        purl_refs.insert(purl, bom_ref.clone());
        image_contains.push(bom_ref);
    }
    dependencies.push(Dependency {
        depends_on: Some(image_contains),
        provides: None,
        ref_: "image".to_owned(),
    });

    let mut built_from = vec!["source".to_owned(), "image".to_owned()];
    for (i, input) in sbom.inputs.iter().enumerate() {
        let bom_ref = format!("input-{}", i + 1);
        let mut c = component("file", &input.name, &bom_ref);
        c.hashes(vec![sha256(input.sha256.hex())])
            .external_references(vec![external("distribution", &input.url)]);
        components.push(build(&c)?);
        built_from.push(bom_ref);
    }
    for (i, dep) in sbom.dependencies.iter().enumerate() {
        let bom_ref = format!("dependency-{}", i + 1);
        let parsed: packageurl::PackageUrl<'_> = dep
            .purl
            .parse()
            .map_err(|e| SbomError::Document(format!("dependency purl {}: {e}", dep.purl)))?;
        let mut c = component("library", parsed.name(), &bom_ref);
        if let Some(ns) = parsed.namespace() {
            c.group(ns.to_owned());
        }
        if let Some(version) = parsed.version() {
            c.version(version.to_owned());
        }
        let alg = match dep.algorithm.as_str() {
            "sha512" => HashAlg::Sha512,
            _ => HashAlg::Sha256,
        };
        c.purl(dep.purl.clone())
            .hashes(vec![Hash {
                alg,
                content: dep.hex.clone(),
            }])
            .external_references(vec![external("distribution", &dep.download_location)]);
        components.push(build(&c)?);
        purl_refs.insert(dep.purl.clone(), bom_ref.clone());
        built_from.push(bom_ref);
    }
    for output in &output_refs {
        dependencies.push(Dependency {
            depends_on: Some(built_from.clone()),
            provides: None,
            ref_: output.clone(),
        });
    }

    let mut vulnerabilities = Vec::new();
    for v in &sbom.vulnerabilities {
        let Some(affected) = purl_refs.get(&v.purl) else {
            return Err(SbomError::Document(format!(
                "vulnerability {} names {}, which is not in the SBOM",
                v.id, v.purl
            )));
        };
        vulnerabilities.push(Vulnerability {
            id: Some(v.id.clone()),
            source: Some(VulnerabilitySource {
                name: Some("OSV".to_owned()),
                url: None,
            }),
            ratings: Some(vec![Rating {
                score: v.score,
                severity: Some(severity(&v.severity)),
                ..Default::default()
            }]),
            description: v.summary.clone(),
            recommendation: v
                .fixed_version
                .as_ref()
                .map(|fixed| format!("upgrade to {fixed} or later")),
            affects: Some(vec![VulnerabilityItemAffects {
                ref_: serde_json::Value::String(affected.clone()),
                versions: None,
            }]),
            properties: (!v.aliases.is_empty())
                .then(|| vec![property("airlock:aliases", v.aliases.join(","))]),
            ..Default::default()
        });
    }

    let tool = ComponentBuilder::default()
        .type_("application")
        .name("airlock")
        .version(sbom.tool_version.clone())
        .build()
        .map_err(|e| SbomError::Document(format!("CycloneDX tool: {e}")))?;
    let job = ComponentBuilder::default()
        .type_("application")
        .name(sbom.name.clone())
        .bom_ref("job")
        .build()
        .map_err(|e| SbomError::Document(format!("CycloneDX metadata component: {e}")))?;
    let metadata = Metadata {
        timestamp: Some(
            crate::rfc3339_utc(sbom.created)
                .map_err(|e| SbomError::Document(format!("timestamp: {e}")))?,
        ),
        tools: Some(MetadataTools::Variant0(MetadataToolsVariant0 {
            components: Some(vec![tool]),
            services: None,
        })),
        component: Some(job),
        properties: Some(vec![property("airlock:namespace", sbom.namespace.clone())]),
        ..Default::default()
    };
    let mut bom = CycloneDxBuilder::default();
    bom.bom_format("CycloneDX")
        .spec_version(CYCLONEDX_SPEC_VERSION)
        .serial_number(sbom.serial_number.clone())
        .version(1_i64)
        .metadata(metadata)
        .components(components)
        .dependencies(dependencies);
    if !vulnerabilities.is_empty() {
        bom.vulnerabilities(vulnerabilities);
    }
    bom.build()
        .map_err(|e| SbomError::Document(format!("CycloneDX BOM: {e}")))
}
