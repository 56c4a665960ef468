//! `airlock verify`: a policy check in the spirit of slsa-verifier, which can sign its
//! decision as a SLSA Verification Summary Attestation (`--vsa-out`) and check one (`--vsa`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use airlock_attest::{
    Bundle, DEFAULT_VERIFIER_ID, Envelope, Policy, ResourceDescriptor, Sha256Digest, SigningKey,
    SlsaBuildLevel, VerificationReport, VerifyError, VerifyingKey, VsaBuilder, VsaOutcome,
    VsaRequirements,
};
use clap::{ArgGroup, Args};

use crate::exit::{Exit, Failure, OrExit, usage};

/// Flags of `verify`.
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("attestation").required(true).args(["provenance", "vsa"])),
    group(ArgGroup::new("vsa_mode").multiple(true).args(["vsa", "vsa_out"])),
    after_long_help = "\
Two modes: --provenance verifies SLSA provenance (and with --vsa-out signs the result as a
verification summary); --vsa checks such a summary instead. See docs/vsa.md."
)]
pub struct VerifyArgs {
    /// Artifact files that must all be subjects of the provenance (or VSA). A directory is
    /// read as an OCI image layout (an `[[outputs.images]]` output): its manifest digest,
    /// which index.json names and whose bytes are checked, must be the subject of that name.
    #[arg(required = true)]
    artifacts: Vec<PathBuf>,
    /// The provenance: a `.intoto.jsonl` file (first line) or a Sigstore bundle `.sigstore.json`.
    #[arg(long)]
    provenance: Option<PathBuf>,
    /// Check a verification summary attestation (an `.intoto.jsonl` or bundle that `verify
    /// --vsa-out` wrote) instead of provenance: signed by a --key, predicate
    /// `https://slsa.dev/verification_summary/v1`, verificationResult PASSED, every artifact a
    /// subject, and the --vsa-verifier-id, --vsa-resource-uri and --vsa-level asked for.
    #[arg(long, value_name = "FILE")]
    vsa: Option<PathBuf>,
    /// Trusted public key(s), SPKI PEM; repeat for key rotation.
    #[arg(long = "key", required = true)]
    keys: Vec<PathBuf>,
    /// Require exactly this `runDetails.builder.id`. Needed for a VSA to claim
    /// SLSA_BUILD_LEVEL_3.
    #[arg(long, conflicts_with = "vsa")]
    builder_id: Option<String>,
    /// Require exactly this source URI (the `uri` of the resolved dependency `source`).
    #[arg(long, conflicts_with = "vsa")]
    source_uri: Option<String>,
    /// Require exactly this `buildDefinition.buildType`.
    #[arg(long, conflicts_with = "vsa")]
    build_type: Option<String>,
    /// Accept top-level `externalParameters` keys other than the job spec's (job, source,
    /// image, inputs, steps, outputs, resources, oidc). By default such keys fail
    /// verification: a parameter the policy does not know could have changed the build.
    #[arg(long, conflicts_with = "vsa")]
    allow_unknown_external_parameters: bool,
    /// After verifying the provenance, write a DSSE-signed SLSA verification summary (one
    /// envelope line) to FILE: PASSED with the verified level, or FAILED (and still exit 1)
    /// when verification fails.
    #[arg(
        long,
        value_name = "FILE",
        requires = "vsa_key",
        conflicts_with = "vsa"
    )]
    vsa_out: Option<PathBuf>,
    /// The private key (PKCS#8 PEM, e.g. from `airlock keys generate`) that signs the
    /// --vsa-out summary.
    #[arg(long, value_name = "KEY.pem", requires = "vsa_out")]
    vsa_key: Option<PathBuf>,
    /// With --vsa-out, the `verifier.id` to write (default
    /// https://airlock.dev/verifiers/airlock-verify; name your own); with --vsa, require it.
    #[arg(long, value_name = "URI", requires = "vsa_mode")]
    vsa_verifier_id: Option<String>,
    /// With --vsa-out, the `resourceUri` to write: where consumers get the artifact (default
    /// `pkg:generic/<artifact file name>?checksum=sha256:<hex>`; required with several
    /// artifacts); with --vsa, require it.
    #[arg(long, value_name = "URI", requires = "vsa_mode")]
    vsa_resource_uri: Option<String>,
    /// With --vsa, require at least this SLSA Build level (SLSA_BUILD_LEVEL_0 .. 3; a higher
    /// level satisfies a lower one).
    #[arg(long, value_name = "LEVEL", conflicts_with = "provenance")]
    vsa_level: Option<SlsaBuildLevel>,
}

/// Runs `verify`.
pub fn run(args: VerifyArgs) -> Result<Exit, Failure> {
    let keys = load_keys(&args.keys)?;
    let artifacts = hash_artifacts(&args.artifacts)?;
    match (&args.vsa, &args.provenance) {
        (Some(vsa), _) => check_vsa(&args, vsa, &keys, &artifacts),
        (None, Some(provenance)) => check_provenance(&args, provenance, &keys, &artifacts),
        (None, None) => Err(usage("pass --provenance FILE or --vsa FILE")),
    }
}

/// (name, sha256) of each artifact: a file's bytes, or an image layout's manifest.
fn hash_artifacts(paths: &[PathBuf]) -> Result<Vec<(String, Sha256Digest)>, Failure> {
    let mut artifacts = Vec::new();
    for path in paths {
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
    Ok(artifacts)
}

/// `--provenance` mode, with the optional `--vsa-out` summary.
fn check_provenance(
    args: &VerifyArgs,
    path: &Path,
    keys: &[VerifyingKey],
    artifacts: &[(String, Sha256Digest)],
) -> Result<Exit, Failure> {
    // Everything the summary needs that a caller can get wrong is checked before verifying,
    // so a usage error never leaves a half-made summary behind.
    let summary = match &args.vsa_out {
        Some(out) => Some(SummaryPlan::new(args, out, artifacts)?),
        None => None,
    };
    let (bytes, loaded) = read_envelope_file("--provenance", path)?;
    let policy = Policy {
        builder_id: args.builder_id.clone(),
        source_uri: args.source_uri.clone(),
        build_type: args.build_type.clone(),
        allowed_external_parameters: (!args.allow_unknown_external_parameters)
            .then(known_external_parameters),
    };
    let result = airlock_attest::verify_provenance(&loaded.envelope, keys, artifacts, &policy);
    match &result {
        Ok(report) => print_checks(&report.checks, &report.not_checked),
        // Say which check failed on stdout too, next to the PASS lines of other runs.
        Err(e) => println!("FAIL {e}"),
    }
    if let Some(summary) = summary {
        let input_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        summary.write(&policy, keys, artifacts, &input_name, &bytes, &result)?;
    }
    result.build_failed()?;
    print_verified(artifacts);
    Ok(Exit::Ok)
}

/// What `--vsa-out` writes, resolved from the flags before anything is verified.
#[derive(Debug)]
struct SummaryPlan {
    out: PathBuf,
    key: SigningKey,
    verifier_id: String,
    resource_uri: String,
}

impl SummaryPlan {
    fn new(
        args: &VerifyArgs,
        out: &Path,
        artifacts: &[(String, Sha256Digest)],
    ) -> Result<Self, Failure> {
        let key_path = args
            .vsa_key
            .as_deref()
            .ok_or_else(|| usage("--vsa-out needs --vsa-key KEY.pem to sign the summary"))?;
        let key = airlock_attest::load_signing_key(key_path)
            .map_err(|e| usage(format!("--vsa-key {}: {e}", key_path.display())))?;
        let resource_uri = match (&args.vsa_resource_uri, artifacts) {
            (Some(uri), _) => uri.clone(),
            (None, [(name, digest)]) => airlock_attest::default_resource_uri(name, digest),
            (None, _) => {
                return Err(usage(
                    "--vsa-out with several artifacts needs --vsa-resource-uri: no default \
                     names them all",
                ));
            }
        };
        Ok(Self {
            out: out.to_owned(),
            key,
            verifier_id: args
                .vsa_verifier_id
                .clone()
                .unwrap_or_else(|| DEFAULT_VERIFIER_ID.to_owned()),
            resource_uri,
        })
    }

    /// Builds, signs and writes (atomically) the summary of `result`, and says so.
    fn write(
        self,
        policy: &Policy,
        keys: &[VerifyingKey],
        artifacts: &[(String, Sha256Digest)],
        input_name: &str,
        input_bytes: &[u8],
        result: &Result<VerificationReport, VerifyError>,
    ) -> Result<(), Failure> {
        let outcome = VsaOutcome::of(result, policy);
        let mut builder = VsaBuilder::new(
            &self.verifier_id,
            &self.resource_uri,
            airlock_attest::policy_descriptor(policy, keys),
            SystemTime::now(),
        )
        .verifier_version("airlock", env!("CARGO_PKG_VERSION"))
        .input_attestation_file(input_name, input_bytes);
        for (name, digest) in artifacts {
            builder = builder.subject(ResourceDescriptor::sha256(name, digest));
        }
        let statement = builder.build(outcome).infra()?;
        let (envelope, _) = airlock_attest::sign_vsa(&statement, &self.key).infra()?;
        let line = envelope.to_json_line().infra()?;
        write_atomic(&self.out, line.as_bytes())
            .map_err(|e| usage(format!("--vsa-out {}: {e}", self.out.display())))?;
        let p = &statement.predicate;
        println!(
            "vsa: wrote {} (verificationResult {}, verifiedLevels [{}], signed by key {})",
            self.out.display(),
            p.verification_result,
            p.verified_levels.join(", "),
            self.key.keyid()
        );
        println!(
            "vsa: policy {} sha256:{} = {}",
            airlock_attest::VSA_POLICY_URI,
            p.policy
                .sha256_digest()
                .map(|d| d.hex())
                .unwrap_or_default(),
            String::from_utf8_lossy(&airlock_attest::policy_document(policy, keys))
        );
        if let (VsaOutcome::Passed(SlsaBuildLevel::L1), Ok(report)) = (outcome, result) {
            let id = &report.statement.predicate.run_details.builder.id;
            let why = if policy.builder_id.is_none() {
                "--builder-id was not given, so no trusted builder was pinned".to_owned()
            } else {
                format!("builder id {id} is not a hosted controller's <issuer>/builders/<profile>")
            };
            println!("vsa: SLSA_BUILD_LEVEL_1 only: {why}");
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, so readers never
/// see a partial file.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// `--vsa` mode.
fn check_vsa(
    args: &VerifyArgs,
    path: &Path,
    keys: &[VerifyingKey],
    artifacts: &[(String, Sha256Digest)],
) -> Result<Exit, Failure> {
    let (_, loaded) = read_envelope_file("--vsa", path)?;
    let required = VsaRequirements {
        verifier_id: args.vsa_verifier_id.clone(),
        resource_uri: args.vsa_resource_uri.clone(),
        build_level: args.vsa_level,
    };
    let report = airlock_attest::verify_vsa(&loaded.envelope, keys, artifacts, &required)
        .map_err(|e| {
            println!("FAIL {e}");
            e
        })
        .build_failed()?;
    print_checks(&report.checks, &report.not_checked);
    let p = &report.statement.predicate;
    println!(
        "vsa: verifier {} at {}, verifiedLevels [{}], resourceUri {}",
        p.verifier.id,
        p.time_verified.as_deref().unwrap_or("(no timeVerified)"),
        p.verified_levels.join(", "),
        p.resource_uri
    );
    print_verified(artifacts);
    Ok(Exit::Ok)
}

fn print_checks(checks: &[airlock_attest::Check], not_checked: &[airlock_attest::Check]) {
    for check in checks {
        println!("PASS {}: {}", check.name, check.detail);
    }
    for check in not_checked {
        println!("SKIP {}: {}", check.name, check.detail);
    }
}

fn print_verified(artifacts: &[(String, Sha256Digest)]) {
    let shown: Vec<String> = artifacts
        .iter()
        .map(|(n, d)| format!("{n} sha256:{d}"))
        .collect();
    println!("verified: {}", shown.join(", "));
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
    read_envelope_file("--provenance", path).map(|(_, loaded)| loaded)
}

/// The bytes of the envelope file `path` given as `flag`, and its envelope; errors name both.
fn read_envelope_file(flag: &str, path: &Path) -> Result<(Vec<u8>, LoadedProvenance), Failure> {
    let bytes =
        std::fs::read(path).map_err(|e| usage(format!("{flag} {}: {e}", path.display())))?;
    let loaded =
        parse_provenance(&bytes).map_err(|e| usage(format!("{flag} {}: {e}", path.display())))?;
    Ok((bytes, loaded))
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

#[cfg(test)]
mod tests {
    use airlock_controller::provenance::statement::builder_id;
    use airlock_controller::{LOCAL_ISSUER, Mode};
    use clap::{CommandFactory as _, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        verify: VerifyArgs,
    }

    /// The VSA level rule recognises exactly the builder ids the controller signs for: every
    /// hosted profile's, and none of `airlock run`'s.
    #[test]
    fn level_rule_matches_the_controllers_builder_ids() {
        for profile in ["untrusted-pr", "trusted", "release"] {
            for issuer in ["https://ci.example", "http://127.0.0.1:7070/", LOCAL_ISSUER] {
                let hosted = builder_id(issuer, Mode::Server, profile);
                assert!(airlock_attest::is_hosted_builder_id(&hosted), "{hosted}");
                let local = builder_id(issuer, Mode::Local, profile);
                assert!(!airlock_attest::is_hosted_builder_id(&local), "{local}");
            }
        }
    }

    #[test]
    fn flags_are_consistent_and_modes_exclusive() {
        Cli::command().debug_assert();
        let parse = |args: &[&str]| Cli::try_parse_from([&["verify"], args].concat());
        assert!(parse(&["a", "--provenance", "p", "--key", "k"]).is_ok());
        assert!(
            parse(&[
                "a",
                "--vsa",
                "v",
                "--key",
                "k",
                "--vsa-level",
                "SLSA_BUILD_LEVEL_2"
            ])
            .is_ok()
        );
        let out = ["--vsa-out", "o", "--vsa-key", "s"];
        assert!(parse(&[&["a", "--provenance", "p", "--key", "k"][..], &out].concat()).is_ok());
        for bad in [
            &["a", "--key", "k"][..],
            &["a", "--provenance", "p", "--vsa", "v", "--key", "k"],
            &[
                "a",
                "--vsa",
                "v",
                "--key",
                "k",
                "--vsa-out",
                "o",
                "--vsa-key",
                "s",
            ],
            &["a", "--vsa", "v", "--key", "k", "--source-uri", "s"],
            &[
                "a",
                "--provenance",
                "p",
                "--key",
                "k",
                "--vsa-level",
                "SLSA_BUILD_LEVEL_1",
            ],
            &[
                "a",
                "--provenance",
                "p",
                "--key",
                "k",
                "--vsa-resource-uri",
                "u",
            ],
            &["a", "--provenance", "p", "--key", "k", "--vsa-key", "s"],
            &["a", "--vsa", "v", "--key", "k", "--vsa-level", "L3"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
