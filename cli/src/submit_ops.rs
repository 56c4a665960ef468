//! Client-side job operations shared by `run`, `submit`, `logs` and `fetch`.

use std::io::Write;
use std::path::{Path, PathBuf};

use airlock_job::{JobSpec, SourceSpec, is_clean_relative, is_job_name, reserved_component};
use airlock_proto::auth::AuthedChannel;
use airlock_proto::v1::job_event::Kind;
use airlock_proto::v1::job_service_client::JobServiceClient;
use airlock_proto::v1::step_event::Phase;
use airlock_proto::v1::{
    BlobChunk, GetJobRequest, GetOutputRequest, GetProvenanceRequest, Job, JobState, LogStream,
    SubmitJobRequest, WatchJobRequest,
};
use tokio_stream::StreamExt;

use crate::exit::{Exit, Failure, OrExit, from_status, usage};

/// A job-service client.
pub type Client = JobServiceClient<AuthedChannel>;

/// Reads a job file, pins a git `ref` or an image tag it names (recording both), confines a
/// `path` source to the job file's tree (or to `allowed_source_dirs`; never airlock's own
/// state) and makes its paths absolute.
pub fn load_job_file(path: &Path, allowed_source_dirs: &[PathBuf]) -> Result<JobSpec, Failure> {
    let mut spec =
        airlock_job::from_toml_file_resolving(path, &mut crate::pinning::CliResolver).usage()?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let policy = airlock_job::SourcePolicy {
        allowed_dirs: allowed_source_dirs.to_vec(),
        forbidden_dirs: crate::home::airlock_state_dirs(),
    };
    spec.confine_source(base, &policy)
        .map_err(|e| e.in_file(path))
        .usage()?;
    spec.resolve_relative_paths(base);
    Ok(spec)
}

/// A `path` source packed into a canonical tar, before anything is started or uploaded.
pub struct PackedSource {
    tar: tempfile::NamedTempFile,
    dir: PathBuf,
    digest: airlock_attest::Sha256Digest,
    size: u64,
}

/// Packs the `path` source of the job file `job_file` (nothing for git and archive sources,
/// which are pinned already). A `sha256` the job file declares is a claim about the tree: it
/// must match what was packed, or the job is refused with both digests.
pub async fn pack_source(job_file: &Path, spec: &JobSpec) -> Result<Option<PackedSource>, Failure> {
    let SourceSpec::Path { path, sha256 } = &spec.source else {
        return Ok(None);
    };
    let dir = PathBuf::from(path);
    if !dir.is_dir() {
        return Err(usage(format!(
            "{}: field `source.path`: {} is not a directory",
            job_file.display(),
            dir.display()
        )));
    }
    let tar = tempfile::NamedTempFile::new().infra()?;
    let tar_path = tar.path().to_path_buf();
    let (digest, size) = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || airlock_runner::fetch::source_archive::pack_dir(&dir, &tar_path)
    })
    .await
    .infra()?
    .usage()?;
    if let Some(declared) = sha256
        && *declared != digest
    {
        let err = airlock_job::JobFileError::field(
            "source.sha256",
            format!(
                "the job file declares sha256:{declared} but {} packs to sha256:{digest}",
                dir.display()
            ),
            Some("fix the digest or remove it (airlock records the packed tree's)".to_owned()),
        )
        .in_file(job_file);
        return Err(usage(err.to_string()));
    }
    eprintln!(
        "source {} packed: sha256:{digest} ({size} bytes)",
        dir.display()
    );
    Ok(Some(PackedSource {
        tar,
        dir,
        digest,
        size,
    }))
}

/// Uploads a packed `path` source and pins its digest in the spec. Git and archive sources
/// are already pinned (commit, sha256); the runner fetches them.
pub async fn upload_source(
    client: &mut Client,
    spec: &mut JobSpec,
    packed: Option<PackedSource>,
) -> Result<(), Failure> {
    let SourceSpec::Path { sha256, .. } = &mut spec.source else {
        eprintln!("source {}", spec.source.uri());
        return Ok(());
    };
    let Some(packed) = packed else {
        return Err(crate::exit::infra(
            "a path source was not packed before upload",
        ));
    };
    let bytes = tokio::fs::read(packed.tar.path()).await.infra()?;
    let chunks: Vec<BlobChunk> = bytes
        .chunks(256 * 1024)
        .map(|c| BlobChunk { data: c.to_vec() })
        .collect();
    let resp = client
        .upload_source(tokio_stream::iter(chunks))
        .await
        .map_err(|s| from_status("uploading the source", s))?
        .into_inner();
    let (digest, size) = (packed.digest, packed.size);
    if resp.sha256 != digest.hex() || resp.size != size {
        return Err(crate::exit::infra(format!(
            "the controller stored the source {} as sha256:{} ({} bytes) but it is sha256:{digest} ({size} bytes)",
            packed.dir.display(),
            resp.sha256,
            resp.size
        )));
    }
    *sha256 = Some(digest);
    Ok(())
}

/// Submits a spec whose source is uploaded; returns the job id.
pub async fn submit(client: &mut Client, spec: &JobSpec) -> Result<String, Failure> {
    submit_with(client, spec, "", 0, None).await
}

/// Submits with an idempotency key (empty: none) and a priority; returns the job id. A
/// repeated key returns the job the first submission created.
pub async fn submit_with(
    client: &mut Client,
    spec: &JobSpec,
    idempotency_key: &str,
    priority: i32,
    sign_with: Option<&airlock_attest::SigningKey>,
) -> Result<String, Failure> {
    let spec_json = spec.to_json();
    // The signature covers the exact bytes sent, so the controller compares bytes, not JSON.
    let spec_signature = match sign_with {
        Some(key) => {
            let envelope = airlock_attest::sign_envelope(
                airlock_controller::auth::job_signatures::JOB_SPEC_PAYLOAD_TYPE,
                &spec_json,
                key,
            )
            .map_err(|e| crate::exit::usage(format!("--sign: cannot sign the job: {e}")))?;
            envelope
                .to_json_line()
                .map_err(|e| crate::exit::usage(format!("--sign: {e}")))?
                .into_bytes()
        }
        None => Vec::new(),
    };
    let resp = client
        .submit_job(SubmitJobRequest {
            spec_json,
            idempotency_key: idempotency_key.to_owned(),
            priority,
            spec_signature,
        })
        .await
        .map_err(|s| from_status("submitting the job", s))?
        .into_inner();
    if resp.existing {
        eprintln!(
            "idempotency key already used: job {} was submitted before; following it",
            resp.job_id
        );
    }
    Ok(resp.job_id)
}

/// Prints job events as they arrive.
#[derive(Debug, Default)]
pub struct EventPrinter {
    /// Print step output (false: only state and step lines).
    pub logs: bool,
}

impl EventPrinter {
    fn print(&mut self, kind: Kind) {
        match kind {
            Kind::State(s) => {
                let state = JobState::try_from(s.state).unwrap_or(JobState::Unspecified);
                let name = state
                    .as_str_name()
                    .trim_start_matches("JOB_STATE_")
                    .to_lowercase();
                if s.message.is_empty() {
                    eprintln!("● {name}");
                } else {
                    eprintln!("● {name}: {}", s.message);
                }
            }
            Kind::Step(step) => match Phase::try_from(step.phase) {
                Ok(Phase::Started) => {
                    eprintln!("==> step {} `{}`", step.step_index + 1, step.step_name)
                }
                Ok(Phase::Finished) => eprintln!(
                    "<== step {} `{}` exited {} after {:.2}s",
                    step.step_index + 1,
                    step.step_name,
                    step.exit_code,
                    step.duration_ms as f64 / 1000.0
                ),
                _ => {}
            },
            Kind::Log(log) if self.logs => match LogStream::try_from(log.stream) {
                Ok(LogStream::Stderr) => {
                    let _ = std::io::stderr().write_all(&log.data);
                }
                Ok(LogStream::System) => {
                    let text = String::from_utf8_lossy(&log.data);
                    for line in text.lines() {
                        eprintln!("  · {line}");
                    }
                }
                _ => {
                    let _ = std::io::stdout().write_all(&log.data);
                    let _ = std::io::stdout().flush();
                }
            },
            Kind::Log(_) => {}
        }
    }
}

/// Streams events (replay, then live when `follow`), printing them; returns the job.
pub async fn watch(
    client: &mut Client,
    job_id: &str,
    follow: bool,
    printer: &mut EventPrinter,
) -> Result<Job, Failure> {
    let mut stream = client
        .watch_job(WatchJobRequest {
            job_id: job_id.to_string(),
            after_seq: 0,
            follow,
        })
        .await
        .map_err(|s| from_status("watching the job", s))?
        .into_inner();
    while let Some(ev) = stream.next().await {
        let ev = ev.map_err(|s| from_status("watching the job", s))?;
        if let Some(kind) = ev.kind {
            printer.print(kind);
        }
    }
    get_job(client, job_id).await
}

/// The job's current record.
pub async fn get_job(client: &mut Client, job_id: &str) -> Result<Job, Failure> {
    Ok(client
        .get_job(GetJobRequest {
            job_id: job_id.to_string(),
        })
        .await
        .map_err(|s| from_status("reading the job", s))?
        .into_inner())
}

/// The exit code a job's final state maps to.
pub fn exit_for(job: &Job) -> Exit {
    match JobState::try_from(job.state) {
        Ok(JobState::Succeeded) => Exit::Ok,
        Ok(JobState::Failed | JobState::Cancelled | JobState::TimedOut) => Exit::BuildFailed,
        _ => Exit::Infra,
    }
}

/// What `fetch` wrote.
#[derive(Debug)]
pub struct Fetched {
    /// (relative path, sha256 hex, written file) of each file output.
    pub outputs: Vec<(String, String, PathBuf)>,
    /// (image name, manifest sha256 hex, layout directory) of each image output.
    pub images: Vec<(String, String, PathBuf)>,
    /// The `.intoto.jsonl` file.
    pub envelope: PathBuf,
    /// The `.sigstore.json` file.
    pub bundle: PathBuf,
    /// The provenance's builder id.
    pub builder_id: String,
    /// The SBOM files (none from a controller that predates SBOMs).
    pub sbom: Option<SbomFiles>,
}

/// The SBOM files written beside the outputs.
#[derive(Debug)]
pub struct SbomFiles {
    /// `<job>.spdx.json`: the SPDX 2.3 document.
    pub spdx: PathBuf,
    /// `<job>.cdx.json`: the CycloneDX 1.6 BOM.
    pub cyclonedx: PathBuf,
    /// `<job>.sbom.intoto.jsonl`: the signed SBOM statement.
    pub envelope: PathBuf,
    /// `<job>.trace.intoto.jsonl`: the signed runtime trace, when the job was traced.
    pub trace: Option<PathBuf>,
}

impl SbomFiles {
    /// Prints where the files are, aligned with the provenance lines.
    pub fn print(&self) {
        println!("sbom:       {} (SPDX 2.3)", self.spdx.display());
        println!("            {} (CycloneDX 1.6)", self.cyclonedx.display());
        println!("            {} (signed)", self.envelope.display());
        if let Some(trace) = &self.trace {
            println!("trace:      {} (signed runtime trace)", trace.display());
        }
    }
}

/// Writes the SBOM files of `docs` into `out_dir`, if it has an SBOM.
async fn write_sbom(
    docs: &airlock_proto::v1::ProvenanceDocuments,
    job_name: &str,
    out_dir: &Path,
) -> Result<Option<SbomFiles>, Failure> {
    if docs.sbom_envelope_json.is_empty() {
        return Ok(None);
    }
    let files = SbomFiles {
        spdx: out_dir.join(format!("{job_name}.spdx.json")),
        cyclonedx: out_dir.join(format!("{job_name}.cdx.json")),
        envelope: out_dir.join(format!("{job_name}{}", airlock_job::SBOM_STATEMENT_SUFFIX)),
        trace: (!docs.trace_envelope_json.is_empty())
            .then(|| out_dir.join(format!("{job_name}{}", airlock_job::TRACE_STATEMENT_SUFFIX))),
    };
    if let Some(trace) = &files.trace {
        let mut line = docs.trace_envelope_json.trim_end().to_string();
        line.push('\n');
        write_atomic(trace, line.as_bytes(), false).await?;
    }
    let mut line = docs.sbom_envelope_json.trim_end().to_string();
    line.push('\n');
    write_atomic(&files.envelope, line.as_bytes(), false).await?;
    write_atomic(&files.spdx, docs.spdx_json.as_bytes(), false).await?;
    write_atomic(&files.cyclonedx, docs.cyclonedx_json.as_bytes(), false).await?;
    Ok(Some(files))
}

/// Writes the SBOM of a job its profile's vulnerability gate failed (it has no provenance);
/// `None` when the job has none.
pub async fn fetch_failed_sbom(
    client: &mut Client,
    job: &Job,
    out_dir: &Path,
) -> Result<Option<SbomFiles>, Failure> {
    check_fetchable(job)?;
    let docs = match client
        .get_provenance(GetProvenanceRequest {
            job_id: job.job_id.clone(),
        })
        .await
    {
        Ok(docs) => docs.into_inner(),
        Err(status) if status.code() == tonic::Code::FailedPrecondition => return Ok(None),
        Err(status) => return Err(from_status("fetching the SBOM", status)),
    };
    tokio::fs::create_dir_all(out_dir).await.usage()?;
    write_sbom(&docs, &job.name, out_dir).await
}

/// Writes every output and the provenance of a succeeded job into `out_dir`.
pub async fn fetch(client: &mut Client, job: &Job, out_dir: &Path) -> Result<Fetched, Failure> {
    check_fetchable(job)?;
    tokio::fs::create_dir_all(out_dir).await.usage()?;
    let mut outputs = Vec::new();
    for o in &job.outputs {
        let dest = out_dir.join(&o.path);
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await.usage()?;
        }
        let mut stream = client
            .get_output(GetOutputRequest {
                job_id: job.job_id.clone(),
                path: o.path.clone(),
            })
            .await
            .map_err(|s| from_status("fetching an output", s))?
            .into_inner();
        let mut bytes = Vec::with_capacity(usize::try_from(o.size).unwrap_or(0));
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(
                &chunk
                    .map_err(|s| from_status("fetching an output", s))?
                    .data,
            );
        }
        let digest = airlock_attest::Sha256Digest::of(&bytes);
        if digest.hex() != o.sha256 {
            return Err(crate::exit::infra(format!(
                "output {} arrived with sha256:{digest}, expected sha256:{}",
                o.path, o.sha256
            )));
        }
        write_atomic(&dest, &bytes, o.executable).await?;
        outputs.push((o.path.clone(), o.sha256.clone(), dest));
    }
    let prov = client
        .get_provenance(GetProvenanceRequest {
            job_id: job.job_id.clone(),
        })
        .await
        .map_err(|s| from_status("fetching provenance", s))?
        .into_inner();
    let envelope = out_dir.join(format!("{}.intoto.jsonl", job.name));
    let bundle = out_dir.join(format!("{}.sigstore.json", job.name));
    let mut line = prov.envelope_json.trim_end().to_string();
    line.push('\n');
    write_atomic(&envelope, line.as_bytes(), false).await?;
    write_atomic(&bundle, prov.bundle_json.as_bytes(), false).await?;
    let sbom = write_sbom(&prov, &job.name, out_dir).await?;
    let images = image_subjects(&prov.envelope_json, out_dir, &outputs)?;
    outputs.retain(|(path, _, _)| {
        !images.iter().any(|(name, _, _)| {
            path.strip_prefix(name.as_str())
                .is_some_and(|r| r.starts_with('/'))
        })
    });
    Ok(Fetched {
        images,
        outputs,
        envelope,
        bundle,
        builder_id: prov.builder_id,
        sbom,
    })
}

/// The image outputs among the provenance's subjects (media type OCI image manifest, with a
/// layout among the fetched files). Which subjects they are is read here unverified; every
/// caller then verifies the signature and each layout's manifest digest against them.
fn image_subjects(
    envelope_json: &str,
    out_dir: &Path,
    outputs: &[(String, String, PathBuf)],
) -> Result<Vec<(String, String, PathBuf)>, Failure> {
    let envelope = airlock_attest::Envelope::from_json(envelope_json.trim_end().as_bytes())
        .map_err(|e| crate::exit::infra(format!("the provenance envelope: {e}")))?;
    let payload = envelope
        .payload_bytes()
        .map_err(|e| crate::exit::infra(format!("the provenance payload: {e}")))?;
    let statement = airlock_attest::Statement::from_json(&payload)
        .map_err(|e| crate::exit::infra(format!("the provenance statement: {e}")))?;
    let mut images = Vec::new();
    for subject in &statement.subject {
        let (Some(name), Some("application/vnd.oci.image.manifest.v1+json")) =
            (&subject.name, subject.media_type.as_deref())
        else {
            continue;
        };
        let index = format!("{name}/index.json");
        if outputs.iter().any(|(p, _, _)| *p == index)
            && let Some(digest) = subject.digest.get("sha256")
        {
            images.push((name.clone(), digest.clone(), out_dir.join(name)));
        }
    }
    Ok(images)
}

/// Names come from the controller: before anything is written, every output path must be
/// clean, relative and clear of airlock's own names (`<job>.intoto.jsonl`,
/// `<job>.sigstore.json`, `*.airlock-partial`), and the job name a safe file stem, so the
/// files written are exactly the outputs and the two provenance files.
fn check_fetchable(job: &Job) -> Result<(), Failure> {
    if !is_job_name(&job.name) {
        return Err(crate::exit::infra(format!(
            "the controller sent an unsafe job name `{}`",
            job.name.escape_debug()
        )));
    }
    for o in &job.outputs {
        if !is_clean_relative(&o.path) {
            return Err(crate::exit::infra(format!(
                "the controller sent an unsafe output path `{}`",
                o.path.escape_debug()
            )));
        }
        if airlock_job::is_sbom_file_name(&job.name, &o.path) {
            return Err(crate::exit::infra(format!(
                "the controller sent output `{}`, the name of the job's SBOM; refusing to fetch \
                 a job that could overwrite its SBOM",
                o.path.escape_debug()
            )));
        }
        if let Some(component) = reserved_component(&o.path) {
            return Err(crate::exit::infra(format!(
                "the controller sent output `{}`, whose `{component}` is a name airlock \
                 writes itself; refusing to fetch a job that could overwrite its provenance",
                o.path.escape_debug()
            )));
        }
    }
    Ok(())
}

async fn write_atomic(dest: &Path, bytes: &[u8], executable: bool) -> Result<(), Failure> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = dest.with_extension("airlock-partial");
    tokio::fs::write(&tmp, bytes).await.usage()?;
    if executable {
        // Outputs are build products: keep them runnable, as `cp` from /out would.
        tokio::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
            .await
            .usage()?;
    }
    tokio::fs::rename(&tmp, dest).await.usage()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use airlock_proto::v1::OutputFile;

    use super::*;

    fn job(name: &str, paths: &[&str]) -> Job {
        Job {
            name: name.into(),
            outputs: paths
                .iter()
                .map(|p| OutputFile {
                    path: (*p).into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn fetch_refuses_records_that_could_overwrite_airlocks_files() {
        assert!(check_fetchable(&job("hello", &["hello", "bin/tool"])).is_ok());
        for (name, path) in [
            ("hello", "hello.intoto.jsonl"),
            ("hello", "x.sigstore.json"),
            ("hello", "x.airlock-partial"),
            ("hello", "provdir.intoto.jsonl/a"),
            ("hello", "../escape"),
            ("hello", "/etc/passwd"),
            ("../up", "hello"),
            (".hidden", "hello"),
        ] {
            let err = check_fetchable(&job(name, &[path])).expect_err(path);
            assert!(
                format!("{err:?}").contains("unsafe")
                    || format!("{err:?}").contains("airlock writes itself"),
                "{name} {path}: {err:?}"
            );
        }
    }
}
