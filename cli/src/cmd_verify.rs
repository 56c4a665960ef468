//! `airlock verify`: a policy check in the spirit of slsa-verifier.

use std::path::{Path, PathBuf};

use airlock_attest::{Bundle, Envelope, Policy, Sha256Digest, VerifyingKey};
use clap::Args;

use crate::exit::{Exit, Failure, OrExit, usage};

/// Flags of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Artifact files that must all be subjects of the provenance. A directory is read as
    /// an OCI image layout (an `[[outputs.images]]` output): its manifest digest, which
    /// index.json names and whose bytes are checked, must be the subject of that name.
    #[arg(required = true)]
    artifacts: Vec<PathBuf>,
    /// The provenance: a `.intoto.jsonl` file (first line) or a Sigstore bundle `.sigstore.json`.
    #[arg(long)]
    provenance: PathBuf,
    /// Trusted public key(s), SPKI PEM; repeat for key rotation.
    #[arg(long = "key", required = true)]
    keys: Vec<PathBuf>,
    /// Require exactly this `runDetails.builder.id`.
    #[arg(long)]
    builder_id: Option<String>,
    /// Require exactly this source URI (the `uri` of the resolved dependency `source`).
    #[arg(long)]
    source_uri: Option<String>,
    /// Require exactly this `buildDefinition.buildType`.
    #[arg(long)]
    build_type: Option<String>,
    /// Accept top-level `externalParameters` keys other than the job spec's (job, source,
    /// image, inputs, steps, outputs, resources, oidc). By default such keys fail
    /// verification: a parameter the policy does not know could have changed the build.
    #[arg(long)]
    allow_unknown_external_parameters: bool,
}

/// Runs `verify`.
pub fn run(args: VerifyArgs) -> Result<Exit, Failure> {
    let keys = load_keys(&args.keys)?;
    let envelope = load_provenance(&args.provenance)?.envelope;
    let mut artifacts = Vec::new();
    for path in &args.artifacts {
        let digest = if path.is_dir() {
            airlock_runner::fetch::image::verify_layout(path)
                .map_err(|e| usage(format!("{} (an OCI image layout): {e}", path.display())))?
        } else {
            let file =
                std::fs::File::open(path).map_err(|e| usage(format!("{}: {e}", path.display())))?;
            airlock_attest::hash_reader(file)
                .map_err(|e| usage(format!("{}: {e}", path.display())))?
                .0
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        artifacts.push((name, digest));
    }
    let policy = Policy {
        builder_id: args.builder_id,
        source_uri: args.source_uri,
        build_type: args.build_type,
        allowed_external_parameters: (!args.allow_unknown_external_parameters)
            .then(known_external_parameters),
    };
    let report = airlock_attest::verify_provenance(&envelope, &keys, &artifacts, &policy)
        .map_err(|e| {
            // Say which check failed on stdout too, next to the PASS lines of other runs.
            println!("FAIL {e}");
            e
        })
        .build_failed()?;
    for check in &report.checks {
        println!("PASS {}: {}", check.name, check.detail);
    }
    for check in &report.not_checked {
        println!("SKIP {}: {}", check.name, check.detail);
    }
    let shown: Vec<String> = artifacts
        .iter()
        .map(|(n, d): &(String, Sha256Digest)| format!("{n} sha256:{d}"))
        .collect();
    println!("verified: {}", shown.join(", "));
    Ok(Exit::Ok)
}

/// The trusted public keys of `--key` flags.
pub(crate) fn load_keys(paths: &[PathBuf]) -> Result<Vec<VerifyingKey>, Failure> {
    paths
        .iter()
        .map(|k| airlock_attest::load_verifying_key(k).usage())
        .collect()
}

/// The top-level `externalParameters` keys of airlock's job spec: all that `verify` accepts
/// unless told otherwise.
pub(crate) fn known_external_parameters() -> Vec<String> {
    airlock_controller::EXTERNAL_PARAMETERS
        .iter()
        .map(|k| (*k).to_owned())
        .collect()
}

/// A provenance file, read.
#[derive(Debug)]
pub(crate) struct LoadedProvenance {
    /// The DSSE envelope (its signature not checked yet).
    pub(crate) envelope: Envelope,
    /// The envelope's JSON as one document: the line of an `.intoto.jsonl` file byte for
    /// byte (without its line end), or the envelope of a bundle, serialized compactly.
    pub(crate) envelope_json: Vec<u8>,
}

/// Reads `path` (an `.intoto.jsonl` or a Sigstore bundle); errors name the file.
pub(crate) fn load_provenance(path: &Path) -> Result<LoadedProvenance, Failure> {
    let bytes =
        std::fs::read(path).map_err(|e| usage(format!("--provenance {}: {e}", path.display())))?;
    parse_provenance(&bytes).map_err(|e| usage(format!("--provenance {}: {e}", path.display())))
}

/// Reads a `.intoto.jsonl` (first envelope) or a Sigstore bundle. The format is
/// chosen by the document's `mediaType` field, never by trying parsers in turn.
fn parse_provenance(bytes: &[u8]) -> anyhow::Result<LoadedProvenance> {
    let text = std::str::from_utf8(bytes)?;
    let first_line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    // A whole-file JSON object is a bundle or a single-envelope .intoto.jsonl; a file
    // with several envelope lines is not one JSON value, so take its first line.
    let whole: Option<serde_json::Value> = serde_json::from_str(text).ok();
    match whole {
        Some(v) if v.get("mediaType").is_some() => {
            let envelope = Bundle::from_json(bytes)?.into_envelope();
            let envelope_json = serde_json::to_vec(&envelope)?;
            Ok(LoadedProvenance {
                envelope,
                envelope_json,
            })
        }
        _ => Ok(LoadedProvenance {
            envelope: Envelope::from_json(first_line.as_bytes())?,
            envelope_json: first_line.trim_end().as_bytes().to_vec(),
        }),
    }
}
