//! Builds the in-toto Statement (SLSA provenance v1) of a succeeded job. A pure function of
//! typed inputs and times: no clock, no I/O, so the exact bytes are golden-tested.
//!
//! Every field comes from the control plane: the spec as submitted, digests the controller
//! computed (outputs, log) or pinned at submission (source, image, inputs), the runner identity
//! it registered, and its own clock. Nothing is taken from the runner's say-so alone.

use std::collections::BTreeMap;
use std::time::SystemTime;

use airlock_attest::{
    BuildDefinition, BuildMetadata, Builder, DigestSet, Provenance, ResourceDescriptor,
    Sha256Digest, Statement,
};
use airlock_job::{JobSpec, SourceSpec};
use serde_json::{Map, Value, json};

use super::caches::CacheReport;
use super::dependencies::PackageDependency;
use super::images::{ImageSubject, base_dependency};
use crate::config::Mode;
use crate::store::OutputRecord;

/// `buildDefinition.buildType` of every airlock job (documented in `docs/`).
pub const BUILD_TYPE: &str = "https://airlock.dev/build-types/job/v1";

/// The top-level keys `externalParameters` may have under [`BUILD_TYPE`]: exactly the job
/// spec's sections (`trigger` only when a forge webhook queued the job). Verifiers reject any
/// other key (SLSA: an unknown parameter could have changed the build), which is what
/// `airlock verify` does by default.
pub const EXTERNAL_PARAMETERS: [&str; 11] = [
    "job",
    "source",
    "image",
    "inputs",
    "deps",
    "caches",
    "steps",
    "outputs",
    "resources",
    "oidc",
    "trigger",
];

/// The controller's version, recorded as `builder.version.airlock` and `controllerVersion`.
pub const CONTROLLER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Name of the build-log byproduct.
pub const LOG_BYPRODUCT: &str = "build.log";

/// Why a statement could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ProvenanceBuildError {
    /// The stored spec bytes are not a JSON object.
    #[error("the submitted spec is not a JSON object: {0}")]
    SpecJson(String),
    /// A path source has no archive digest (it was never uploaded).
    #[error("the job's source has no sha256; it cannot be recorded as a resolved dependency")]
    UnpinnedSource,
    /// No outputs: a statement needs at least one subject.
    #[error("the job produced no outputs; provenance needs at least one subject")]
    NoOutputs,
    /// A time cannot be written as RFC 3339.
    #[error("{field} cannot be written as an RFC 3339 timestamp")]
    Time {
        /// `startedOn` or `finishedOn`.
        field: &'static str,
    },
}

/// Everything the provenance of one job attempt records.
#[derive(Debug, Clone)]
pub struct ProvenanceInputs<'a> {
    /// The controller's issuer URL, without a trailing `/`.
    pub issuer: &'a str,
    /// Server or local mode (decides the builder id).
    pub mode: Mode,
    /// The controller's version.
    pub controller_version: &'a str,
    /// The job id.
    pub job_id: &'a str,
    /// The attempt number (1-based).
    pub attempt: u32,
    /// The parsed spec.
    pub spec: &'a JobSpec,
    /// The spec bytes exactly as submitted.
    pub spec_json: &'a [u8],
    /// The runner's id.
    pub runner_id: &'a str,
    /// The runner's airlock version, as it registered.
    pub runner_version: &'a str,
    /// The image manifest digest the steps ran in.
    pub image_digest: &'a Sha256Digest,
    /// The image's layer digests, base first, as the runner verified them (recorded as the
    /// image dependency's `layers` annotation; omitted when empty).
    pub image_layers: &'a [Sha256Digest],
    /// The packages the job's `[[deps]]` lockfiles pinned, as the runner verified them.
    pub dependencies: &'a [PackageDependency],
    /// The caches the job restored and saved.
    pub caches: &'a CacheReport,
    /// The outputs as the controller hashed them (image layouts' files included).
    pub outputs: &'a [OutputRecord],
    /// The image outputs, as the controller verified their layouts.
    pub images: &'a [ImageSubject],
    /// sha256 of the job's concatenated log bytes.
    pub log_sha256: &'a Sha256Digest,
    /// When the attempt started (leased).
    pub started: SystemTime,
    /// When it finished (completed).
    pub finished: SystemTime,
    /// The admission policy's record (`[policy]`): bundle digest, mode, decision, messages.
    pub admission: Option<&'a Value>,
    /// The keyid of the key that signed the submitted spec (`[job_signatures]`).
    pub signer_keyid: Option<&'a str>,
}

/// The builder id of `profile`: `{issuer}/builders/{profile}`, or
/// `{issuer}/builders/local/{profile}` in local mode.
pub fn builder_id(issuer: &str, mode: Mode, profile: &str) -> String {
    let issuer = issuer.trim_end_matches('/');
    match mode {
        Mode::Server => format!("{issuer}/builders/{profile}"),
        Mode::Local => format!("{issuer}/builders/local/{profile}"),
    }
}

/// The invocation id of one attempt: `{issuer}/jobs/{job_id}/attempts/{attempt}`.
pub fn invocation_id(issuer: &str, job_id: &str, attempt: u32) -> String {
    format!(
        "{}/jobs/{job_id}/attempts/{attempt}",
        issuer.trim_end_matches('/')
    )
}

fn sha256_set(digest: &Sha256Digest) -> DigestSet {
    DigestSet::from([("sha256".to_owned(), digest.hex())])
}

fn rfc3339(time: SystemTime, field: &'static str) -> Result<String, ProvenanceBuildError> {
    // Reject times RFC 3339 cannot express before formatting (humantime panics on them).
    airlock_attest::rfc3339_utc(time).map_err(|_| ProvenanceBuildError::Time { field })?;
    Ok(humantime::format_rfc3339_seconds(time).to_string())
}

/// The subjects of a job's attestations (provenance and SBOM alike), sorted by name: every
/// output file, except that an image is one subject (its manifest) and the files of its
/// layout are not subjects.
pub fn subjects(
    spec: &JobSpec,
    outputs: &[OutputRecord],
    images: &[ImageSubject],
) -> Vec<ResourceDescriptor> {
    let mut subject: Vec<ResourceDescriptor> = outputs
        .iter()
        .filter(|o| !spec.outputs.in_image_layout(&o.path))
        .map(|o| ResourceDescriptor::sha256(o.path.clone(), &o.sha256))
        .chain(images.iter().map(ImageSubject::descriptor))
        .collect();
    subject.sort_by(|a, b| a.name.cmp(&b.name));
    subject
}

/// Builds the statement. Subjects are sorted by name.
pub fn build_statement(inputs: &ProvenanceInputs<'_>) -> Result<Statement, ProvenanceBuildError> {
    let spec = inputs.spec;
    let external: Value = serde_json::from_slice(inputs.spec_json)
        .map_err(|e| ProvenanceBuildError::SpecJson(e.to_string()))?;
    if !external.is_object() {
        return Err(ProvenanceBuildError::SpecJson("not an object".into()));
    }
    if inputs.outputs.is_empty() {
        return Err(ProvenanceBuildError::NoOutputs);
    }

    let subject = subjects(spec, inputs.outputs, inputs.images);

    let source_digest = match &spec.source {
        SourceSpec::Path { sha256, .. } => sha256_set(
            sha256
                .as_ref()
                .ok_or(ProvenanceBuildError::UnpinnedSource)?,
        ),
        SourceSpec::Archive { sha256, .. } => sha256_set(sha256),
        SourceSpec::Git { commit, .. } => DigestSet::from([("gitCommit".to_owned(), commit.hex())]),
    };
    let mut resolved = vec![
        ResourceDescriptor {
            name: Some("source".to_owned()),
            uri: Some(spec.source.uri()),
            digest: source_digest,
            ..Default::default()
        },
        ResourceDescriptor {
            name: Some("image".to_owned()),
            uri: Some(spec.image.reference.to_string()),
            digest: sha256_set(inputs.image_digest),
            annotations: (!inputs.image_layers.is_empty()).then(|| {
                Map::from_iter([(
                    "layers".to_owned(),
                    Value::Array(
                        inputs
                            .image_layers
                            .iter()
                            .map(|l| Value::String(l.prefixed()))
                            .collect(),
                    ),
                )])
            }),
            ..Default::default()
        },
    ];
    resolved.extend(spec.inputs.iter().map(|input| ResourceDescriptor {
        name: Some(input.name.clone()),
        uri: Some(input.url.clone()),
        digest: sha256_set(&input.sha256),
        ..Default::default()
    }));
    resolved.extend(
        inputs
            .dependencies
            .iter()
            .map(PackageDependency::descriptor),
    );
    resolved.extend(inputs.caches.restored.iter().map(|c| c.descriptor()));
    resolved.extend(spec.outputs.images.iter().filter_map(base_dependency));

    let predicate = Provenance {
        build_definition: BuildDefinition {
            build_type: BUILD_TYPE.to_owned(),
            external_parameters: airlock_attest::sorted_keys(external),
            internal_parameters: Some({
                let mut internal = json!({
                    "controllerVersion": inputs.controller_version,
                    "profile": spec.job.profile,
                    "runnerId": inputs.runner_id,
                    "runnerVersion": inputs.runner_version,
                    "caches": inputs.caches.internal_parameter(),
                });
                if let Some(admission) = inputs.admission {
                    internal["admissionPolicy"] = admission.clone();
                }
                if let Some(keyid) = inputs.signer_keyid {
                    internal["jobSignature"] = json!({"keyid": keyid});
                }
                internal
            }),
            resolved_dependencies: resolved,
        },
        run_details: airlock_attest::RunDetails {
            builder: Builder {
                id: builder_id(inputs.issuer, inputs.mode, &spec.job.profile),
                version: BTreeMap::from([(
                    "airlock".to_owned(),
                    inputs.controller_version.to_owned(),
                )]),
                builder_dependencies: Vec::new(),
            },
            metadata: BuildMetadata {
                invocation_id: invocation_id(inputs.issuer, inputs.job_id, inputs.attempt),
                started_on: rfc3339(inputs.started, "startedOn")?,
                finished_on: rfc3339(inputs.finished, "finishedOn")?,
            },
            byproducts: std::iter::once(ResourceDescriptor {
                name: Some(LOG_BYPRODUCT.to_owned()),
                digest: sha256_set(inputs.log_sha256),
                media_type: Some("text/plain".to_owned()),
                ..Default::default()
            })
            .chain(inputs.caches.saved.iter().map(|c| c.descriptor()))
            .collect(),
        },
    };
    Ok(Statement::new(subject, predicate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_and_invocation_ids() {
        assert_eq!(
            builder_id("https://ci.example/", Mode::Server, "release"),
            "https://ci.example/builders/release"
        );
        assert_eq!(
            builder_id("https://localhost", Mode::Local, "trusted"),
            "https://localhost/builders/local/trusted"
        );
        assert_eq!(
            invocation_id("https://ci.example", "j", 2),
            "https://ci.example/jobs/j/attempts/2"
        );
    }

    #[test]
    fn external_parameters_list_every_job_spec_section() {
        // A spec with every optional section filled in: each key it serializes is known.
        let spec = json!({
            "job": {"name": "n", "profile": "trusted", "labels": ["a"], "timeout": "1m"},
            "source": {"path": "/src", "sha256": "1".repeat(64)},
            "image": {"ref": format!("registry.example/base@sha256:{}", "2".repeat(64))},
            "inputs": [{"name": "i", "url": "https://example.org/i", "sha256": "3".repeat(64)}],
            "deps": [{"ecosystem": "cargo", "lockfile": "Cargo.lock"}],
            "caches": [{"name": "t", "path": "/cache/t", "key": ["Cargo.lock"]}],
            "steps": [{"name": "s", "run": "true", "env": {"A": "1"}}],
            "outputs": {"paths": ["x"]},
            "resources": {"memory": "1GiB", "pids": 10, "tmp": "1GiB"},
            "oidc": {"audiences": ["aud"]},
            "trigger": {"forge": "gh", "kind": "github", "event": "push", "repository": "o/r",
                        "ref": "refs/heads/main", "sender": "alice", "delivery": "d-1"},
        });
        let parsed = JobSpec::from_json(spec.to_string().as_bytes()).unwrap();
        let round = serde_json::to_value(&parsed).unwrap();
        let keys: Vec<&str> = round
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), EXTERNAL_PARAMETERS.len(), "{keys:?}");
        for key in keys {
            assert!(EXTERNAL_PARAMETERS.contains(&key), "{key}");
        }
    }
}
