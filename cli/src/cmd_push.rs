//! `airlock push`: an OCI image layout to a registry, unchanged, with its signed provenance
//! attached as an OCI referrer. Everything that can be checked locally (the layout's blobs,
//! the provenance's subject, with `--key` its signature) is checked before the first request.

use std::path::{Path, PathBuf};

use airlock_attest::{IN_TOTO_PAYLOAD_TYPE, Policy, STATEMENT_TYPE_V1, Sha256Digest};
use airlock_runner::fetch::http::HttpClient;
use airlock_runner::fetch::image::ImageError;
use airlock_runner::fetch::image::registry::{
    LayoutImage, PushProgress, RegistryAuth, RegistryClient, RegistryError, attach_provenance,
    parse_push_target, push_layout,
};
use clap::Args;

use crate::cmd_verify::{LoadedProvenance, known_external_parameters, load_keys, load_provenance};
use crate::exit::{Exit, Failure, OrExit, usage};

/// Flags of `push`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Before anything is sent, airlock hashes every blob of the layout against its digest, and checks
that the provenance has a subject named like the layout directory whose sha256 is the layout's
manifest digest (with --key, also that a trusted key signed it). Then it uploads the blobs the
registry lacks (HEAD, then POST and one monolithic PUT each), stores the manifest with its exact
bytes (the pushed image keeps its digest), and attaches the provenance: an OCI 1.1 referrer
manifest (artifactType application/vnd.dsse.envelope.v1+json, the DSSE envelope as its one
layer, the image as its subject). Registries without the referrers API get the OCI referrers
tag schema: an image index under the tag sha256-<manifest hex>. Pushing again stores the same
digests and lists the referrer once.

Plain HTTP is used only for loopback registries (127.0.0.0/8, ::1, localhost).

Prints `pushed HOST/REPO@sha256:<hex>` and `attached provenance HOST/REPO@sha256:<hex>` on
stdout, progress on stderr. Exit codes: 0 pushed; 1 the layout or the provenance did not verify
(nothing of that image was pushed); 2 bad input or usage (a flag, a missing file, a login the
registry refuses); 3 the registry or the network failed.

Example:
  airlock push out/web registry.example.com/team/web:1.4 --key builder.pub")]
pub struct PushArgs {
    /// The OCI image layout directory (`oci-layout`, `index.json` naming one image manifest,
    /// `blobs/sha256/`), e.g. `out/web` as a job's image output.
    #[arg(value_name = "LAYOUT_DIR")]
    layout: PathBuf,
    /// Where to push: `HOST[:PORT]/REPOSITORY[:TAG]`. Without a tag the image is stored by
    /// digest only. A digest is refused: the layout decides it.
    #[arg(value_name = "REF")]
    target: String,
    /// The image's signed provenance (`.intoto.jsonl`, or a Sigstore bundle `.sigstore.json`)
    /// [default: the one `*.intoto.jsonl` next to the layout directory].
    #[arg(long, value_name = "FILE")]
    provenance: Option<PathBuf>,
    /// Verify the provenance with this trusted public key (SPKI PEM) before pushing, as
    /// `airlock verify` does (signature, SLSA v1 statement, subject, known external
    /// parameters); repeat for key rotation. Without it the provenance is attached
    /// unverified: only its payload type, statement type and subject are checked.
    #[arg(long = "key", value_name = "PUBKEY")]
    keys: Vec<PathBuf>,
    /// Push the image only, without attaching the provenance. The provenance is then read
    /// (and checked) only if --provenance or --key is given.
    #[arg(long)]
    no_attach: bool,
    /// Docker-style config.json with registry logins (auths."HOST[:PORT]".auth)
    /// [default: $DOCKER_CONFIG/config.json, else ~/.docker/config.json, if present].
    #[arg(long, value_name = "CONFIG.json", alias = "registry-auth-file")]
    registry_auth: Option<PathBuf>,
}

/// Runs `push`.
pub fn run(args: PushArgs) -> Result<Exit, Failure> {
    let (repo, tag) = parse_push_target(&args.target).usage()?;
    let image = LayoutImage::open(&args.layout).map_err(classify)?;
    let name = image_name(&args.layout)?;
    let digest = image.digest();
    eprintln!(
        "layout {} ({name}): manifest {}, {} blob(s) verified",
        args.layout.display(),
        digest.prefixed(),
        image.blob_count()
    );

    let wants_provenance = !args.no_attach || args.provenance.is_some() || !args.keys.is_empty();
    let provenance = if wants_provenance {
        let path = match &args.provenance {
            Some(p) => p.clone(),
            None => default_provenance(&args.layout)?,
        };
        let loaded = load_provenance(&path)?;
        let predicate_type = check_provenance(&path, &loaded, &args.keys, &name, &digest)?;
        Some((loaded, predicate_type))
    } else {
        None
    };

    let auth = match &args.registry_auth {
        Some(path) => RegistryAuth::from_file(path).usage()?,
        None => RegistryAuth::from_default_location().usage()?,
    };
    let client = RegistryClient::new(HttpClient::new(), auth);
    let pushed = push_layout(&client, &image, &repo, tag.as_deref(), &mut report_progress)
        .map_err(classify)?;
    eprintln!(
        "{} blob(s) uploaded ({:.1} MiB), {} already in the registry",
        pushed.uploaded,
        pushed.bytes_uploaded as f64 / 1_048_576.0,
        pushed.existing
    );
    if let Some(tag) = &tag {
        eprintln!("tagged {repo}:{tag}");
    }
    println!("pushed {repo}@{}", pushed.digest.prefixed());

    if args.no_attach {
        return Ok(Exit::Ok);
    }
    let Some((loaded, predicate_type)) = provenance else {
        return Ok(Exit::Ok);
    };
    let subject = image.descriptor().infra()?;
    let attached = attach_provenance(
        &client,
        &repo,
        &subject,
        &loaded.envelope_json,
        &predicate_type,
    )
    .map_err(classify)?;
    match &attached.fallback_tag {
        None => eprintln!("the registry indexed the referrer itself (OCI referrers API)"),
        Some(t) if attached.index_updated => eprintln!(
            "the registry has no referrers API: listed the referrer in the index at {repo}:{t}"
        ),
        Some(t) => eprintln!("the referrers index at {repo}:{t} lists the referrer already"),
    }
    println!(
        "attached provenance {repo}@{}",
        attached.referrer.prefixed()
    );
    Ok(Exit::Ok)
}

/// The name the provenance's subject must have: the layout directory's own name.
fn image_name(layout: &Path) -> Result<String, Failure> {
    let dir =
        std::fs::canonicalize(layout).map_err(|e| usage(format!("{}: {e}", layout.display())))?;
    dir.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| {
            usage(format!(
                "{}: the layout directory has no UTF-8 name",
                layout.display()
            ))
        })
}

/// The one `*.intoto.jsonl` in the layout directory's parent, where a job writes its outputs'
/// provenance next to them; the job's SBOM and trace statements beside it
/// (`*.sbom.intoto.jsonl`, `*.trace.intoto.jsonl`) are not provenance and never the default.
fn default_provenance(layout: &Path) -> Result<PathBuf, Failure> {
    let dir =
        std::fs::canonicalize(layout).map_err(|e| usage(format!("{}: {e}", layout.display())))?;
    let parent = dir.parent().ok_or_else(|| {
        usage(format!(
            "{}: no parent directory to look for provenance in",
            dir.display()
        ))
    })?;
    let entries =
        std::fs::read_dir(parent).map_err(|e| usage(format!("{}: {e}", parent.display())))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| usage(format!("{}: {e}", parent.display())))?;
        let path = entry.path();
        if path.is_file()
            && path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.ends_with(".intoto.jsonl") && !n.ends_with(airlock_job::SBOM_STATEMENT_SUFFIX)
            })
        {
            found.push(path);
        }
    }
    found.sort();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(usage(format!(
            "no *.intoto.jsonl next to the layout in {}; pass --provenance FILE (or --no-attach)",
            parent.display()
        ))),
        many => Err(usage(format!(
            "{} *.intoto.jsonl files next to the layout in {}: {}; pass --provenance FILE",
            many.len(),
            parent.display(),
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// What `push` reads of an in-toto statement: enough to tie it to the image and label it.
/// Lenient about the predicate, which `push` does not interpret (`--key` runs the strict
/// checks of `airlock verify`).
#[derive(Debug, serde::Deserialize)]
struct StatementHead {
    #[serde(rename = "_type")]
    statement_type: String,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    subject: Vec<SubjectHead>,
}

/// One subject of a [`StatementHead`].
#[derive(Debug, serde::Deserialize)]
struct SubjectHead {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

impl SubjectHead {
    fn sha256(&self) -> Option<Sha256Digest> {
        self.digest
            .get("sha256")
            .and_then(|h| Sha256Digest::from_hex(h).ok())
    }
}

/// Checks the provenance before anything is pushed: with `keys`, a trusted signature over
/// an SLSA v1 statement (the checks of `airlock verify`); always, an in-toto v1 statement
/// with a subject named `name` whose sha256 is `digest`. Returns its predicate type.
fn check_provenance(
    path: &Path,
    loaded: &LoadedProvenance,
    keys: &[PathBuf],
    name: &str,
    digest: &Sha256Digest,
) -> Result<String, Failure> {
    let shown = path.display();
    if !keys.is_empty() {
        let keys = load_keys(keys)?;
        let policy = Policy {
            allowed_external_parameters: Some(known_external_parameters()),
            ..Policy::default()
        };
        let report = airlock_attest::verify_provenance(
            &loaded.envelope,
            &keys,
            &[(name.to_owned(), *digest)],
            &policy,
        )
        .map_err(|e| anyhow::anyhow!("{shown}: {e}; nothing was pushed"))
        .build_failed()?;
        eprintln!(
            "provenance {shown}: signature verifies with trusted key {}",
            report.keyid
        );
    }
    if loaded.envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(usage(format!(
            "{shown}: payloadType is {:?}, not {IN_TOTO_PAYLOAD_TYPE:?}: not an in-toto attestation",
            loaded.envelope.payload_type
        )));
    }
    let payload = loaded
        .envelope
        .payload_bytes()
        .map_err(|e| usage(format!("{shown}: {e}")))?;
    let statement: StatementHead = serde_json::from_slice(&payload).map_err(|e| {
        usage(format!(
            "{shown}: the payload is not an in-toto statement (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if statement.statement_type != STATEMENT_TYPE_V1 {
        return Err(usage(format!(
            "{shown}: _type is {:?}, not {STATEMENT_TYPE_V1:?}",
            statement.statement_type
        )));
    }
    let named: Vec<&SubjectHead> = statement
        .subject
        .iter()
        .filter(|s| s.name.as_deref() == Some(name))
        .collect();
    let not_this_image = |error: anyhow::Error| Failure {
        code: Exit::BuildFailed,
        error,
    };
    if named.is_empty() {
        let names: Vec<String> = statement
            .subject
            .iter()
            .map(|s| format!("{:?}", s.name.as_deref().unwrap_or("")))
            .collect();
        return Err(not_this_image(anyhow::anyhow!(
            "{shown}: no subject is named {name:?} (the layout directory's name); its \
             subjects: {}; nothing was pushed",
            names.join(", ")
        )));
    }
    if !named.iter().any(|s| s.sha256().as_ref() == Some(digest)) {
        let recorded: Vec<String> = named
            .iter()
            .map(|s| s.sha256().map_or("no sha256".to_owned(), |d| d.prefixed()))
            .collect();
        return Err(not_this_image(anyhow::anyhow!(
            "{shown}: subject {name:?} is {}, but the layout's manifest is {}: this provenance \
             does not describe this image; nothing was pushed",
            recorded.join(", "),
            digest.prefixed()
        )));
    }
    eprintln!(
        "provenance {shown}: subject {name:?} is the layout's manifest {}",
        digest.prefixed()
    );
    Ok(statement.predicate_type)
}

/// Progress lines on stderr: one when a blob starts, about one a second while it uploads,
/// one when it is sent.
fn report_progress(p: PushProgress) {
    match p {
        PushProgress::Exists {
            index,
            count,
            what,
            digest,
            size,
        } => eprintln!(
            "blob {index}/{count} {what} {} ({size} bytes): already in the registry",
            digest.prefixed()
        ),
        PushProgress::Uploading {
            index,
            count,
            what,
            digest,
            transfer,
        } => {
            let total = transfer.total.unwrap_or(transfer.done);
            let state = if transfer.finished {
                format!(
                    "sent {total} bytes ({:.1} MiB/s)",
                    transfer.rate() / 1_048_576.0
                )
            } else if transfer.done == 0 {
                format!("uploading {total} bytes")
            } else {
                format!("uploading, {}", transfer.describe())
            };
            eprintln!("blob {index}/{count} {what} {}: {state}", digest.prefixed());
        }
    }
}

/// The exit code a push error maps to: content that does not verify is 1, what the user
/// can fix (names, files, logins) is 2, the registry or the network failing is 3.
fn classify(e: RegistryError) -> Failure {
    let code = match &e {
        RegistryError::Image(
            ImageError::DigestMismatch { .. } | ImageError::SizeMismatch { .. },
        ) => Exit::BuildFailed,
        RegistryError::Image(_)
        | RegistryError::BadName { .. }
        | RegistryError::Layout { .. }
        | RegistryError::Unauthorized { .. }
        | RegistryError::AuthFile { .. }
        | RegistryError::Status {
            status: 401 | 403, ..
        } => Exit::Usage,
        _ => Exit::Infra,
    };
    let nothing = if code == Exit::BuildFailed {
        "; the image was not pushed"
    } else {
        ""
    };
    Failure {
        code,
        error: anyhow::anyhow!("{e}{nothing}"),
    }
}
