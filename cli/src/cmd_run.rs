//! `airlock run`: the local one-shot. The same controller and runner code as a
//! deployment, in one process, talking real gRPC over loopback, with a real
//! SQLite file under `$AIRLOCK_HOME`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use airlock_job::ImageRef;
use airlock_proto::auth::{BearerAuth, connect, job_client};
use airlock_proto::v1::JobState;
use airlock_runner::agent::Runner;
use airlock_runner::config::{RunnerConfig, Secret};
use airlock_runner::state::Instance;
use clap::Args;

use crate::exit::{Exit, Failure, OrExit, infra, usage};
use crate::home::airlock_home;
use crate::image_trust::ImageTrustArgs;
use crate::osv_db::OsvDbArgs;
use crate::submit_ops::{self, EventPrinter};

/// Flags of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The job file (airlock.toml).
    job_file: PathBuf,
    /// Where to write the outputs, `<job>.intoto.jsonl` and `<job>.sigstore.json`.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Show only step and state lines, not the steps' output.
    #[arg(long, short)]
    quiet: bool,
    /// A directory outside the job file's own from which a `path` source may be packed;
    /// repeatable. Without it a path source must lie in the job file's directory tree
    /// (symlinks resolved). airlock's own state directories are never packed.
    #[arg(long = "allow-source-dir", value_name = "DIR")]
    allow_source_dir: Vec<PathBuf>,
    /// Where `[[deps]]` packages of an ecosystem are fetched from, `ECOSYSTEM=URL`;
    /// repeatable, one per ecosystem: `cargo=URL` (the crates.io download layout,
    /// URL/NAME/VERSION/download), `npm=URL` (a registry: URL/NAME/-/NAME-VERSION.tgz),
    /// `pypi=URL` (a PEP 503/691 simple index: URL/PROJECT/). There is no default: a job
    /// with a lockfile of an ecosystem without a mirror fails and names this flag. Only the
    /// lockfile's hashes are trusted; what the mirror serves is verified against them.
    #[arg(long = "mirror", value_name = "ECOSYSTEM=URL")]
    mirror: Vec<String>,
    /// Read the sandbox profiles (*.toml and their seccomp JSON) from this folder instead of
    /// the copies of sandbox-profiles/ built into the binary, as `airlock runner
    /// --profiles-dir` does: e.g. a copy with `[image_check] require_attestation = true`.
    #[arg(long, value_name = "DIR")]
    profiles_dir: Option<PathBuf>,
    #[command(flatten)]
    image_trust: ImageTrustArgs,
    #[command(flatten)]
    osv: OsvDbArgs,
}

fn random_token() -> Result<String, Failure> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| infra(format!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

/// Runs `run`.
pub async fn run(args: RunArgs) -> Result<Exit, Failure> {
    let started = Instant::now();
    // Parse and validate before anything starts: bad input costs nothing.
    let spec = submit_ops::load_job_file(&args.job_file, &args.allow_source_dir)?;
    let packed = submit_ops::pack_source(&args.job_file, &spec).await?;
    let home = airlock_home();
    for dir in [&home, &home.join("keys")] {
        std::fs::create_dir_all(dir)
            .map_err(|e| infra(format!("cannot create {}: {e}", dir.display())))?;
    }
    let (key_path, pub_path) = local_key(&home.join("keys"))?;
    // This run's own controller state (database, blobs, token keys), in a room locked for
    // as long as the run lives: runs started at once never see each other's jobs, and what
    // a killed run left is removed by the next one.
    let room = claim_run_room(&home.join("runs"))?;
    let result = run_in(
        args,
        spec,
        packed,
        &home,
        (&key_path, &pub_path),
        &room,
        started,
    )
    .await;
    // The outputs, provenance and logs have been handed out (or the run failed); the run's
    // database goes either way.
    if let Err(e) = room.remove() {
        eprintln!("warning: {e}; the next `airlock run` removes it");
    }
    result
}

/// [`run`] once the job file is parsed and this run's room is claimed.
async fn run_in(
    args: RunArgs,
    mut spec: airlock_job::JobSpec,
    packed: Option<submit_ops::PackedSource>,
    home: &Path,
    (key_path, pub_path): (&Path, &Path),
    room: &Instance,
    started: Instant,
) -> Result<Exit, Failure> {
    let mirrors =
        airlock_runner::fetch::deps::Mirrors::parse(args.mirror.iter().map(String::as_str))
            .map_err(usage)?;
    let image_trust = args.image_trust.load()?;
    let osv = args.osv.load()?;
    if let Some(dir) = &args.profiles_dir {
        airlock_runner::profile::Profiles::from_dir(dir)
            .map_err(|e| usage(format!("--profiles-dir {}: {e}", dir.display())))?;
    }
    let api_token = random_token()?;
    // The embedded runner's registration secret (registration `default`): it registers with
    // it and gets a runner token, like any deployed runner.
    let runner_secret = random_token()?;
    let mut config = airlock_controller::ControllerConfig::local(
        room.dir().to_owned(),
        key_path,
        &api_token,
        &runner_secret,
    );
    // Build caches outlive the run's room: every `airlock run` of this user shares them,
    // under the same trust-domain rule as a hosted controller.
    config.caches.dir = Some(home.join("caches"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.infra()?;
    let url = format!("http://{}", listener.local_addr().infra()?);
    // The runner stops first and the controller after it: a controller that closed its
    // database while the runner still reported would answer with internal errors.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (controller_stop_tx, controller_stop_rx) = tokio::sync::watch::channel(false);
    let controller = {
        let mut stop = controller_stop_rx;
        tokio::spawn(async move {
            airlock_controller::serve(config, listener, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
        })
    };

    let mut runner_cfg = RunnerConfig::new(
        &url,
        Secret::new(&runner_secret),
        home.join("runner"),
        std::env::current_exe().infra()?,
    );
    // Not ephemeral: an attempt that fails for infrastructure reasons is re-queued by the
    // controller, and this runner must be there to run the retry (it stops once the job ends).
    runner_cfg.max_jobs = 1;
    // The local user names their own repositories: `file://` git sources are allowed.
    runner_cfg.allow_file_git = true;
    runner_cfg.labels = spec.job.labels.clone();
    runner_cfg.mirrors = mirrors;
    runner_cfg.profiles_dir = args.profiles_dir.clone();
    runner_cfg.image_trust = image_trust;
    runner_cfg.osv = osv;
    if let ImageRef::OciLayout { dir, .. } = &spec.image.reference {
        // The local user named this layout in their own job file.
        runner_cfg.allowed_layout_roots.push(PathBuf::from(dir));
    }
    for image in &spec.outputs.images {
        if let Some(ImageRef::OciLayout { dir, .. }) = &image.base {
            runner_cfg.allowed_layout_roots.push(PathBuf::from(dir));
        }
    }
    let runner = Runner::connect(runner_cfg, Duration::from_secs(10))
        .await
        .infra()?;
    let runner_task = tokio::spawn(runner.run(stop_rx.clone()));

    let channel = connect(&url).await.infra()?;
    let mut client = job_client(channel, BearerAuth::new(&api_token).infra()?);
    submit_ops::upload_source(&mut client, &mut spec, packed).await?;
    let job_id = submit_ops::submit(&mut client, &spec).await?;
    eprintln!(
        "job {job_id} ({}) submitted to the local controller at {url}",
        spec.job.name
    );
    let mut printer = EventPrinter { logs: !args.quiet };
    let job = submit_ops::watch(&mut client, &job_id, true, &mut printer).await?;

    let result = if JobState::try_from(job.state) == Ok(JobState::Succeeded) {
        let fetched = submit_ops::fetch(&mut client, &job, &args.out).await?;
        // Check what we hand out, with the same code `airlock verify` runs.
        let key = airlock_attest::load_verifying_key(pub_path).infra()?;
        let envelope = airlock_attest::Envelope::from_json(
            std::fs::read(&fetched.envelope).infra()?.trim_ascii_end(),
        )
        .infra()?;
        let mut artifacts: Vec<_> = fetched
            .outputs
            .iter()
            .map(|(p, sha, _)| Ok((p.clone(), airlock_attest::Sha256Digest::from_hex(sha)?)))
            .collect::<Result<_, airlock_attest::DigestError>>()
            .infra()?;
        // An image is checked as `airlock verify` checks a layout: by the manifest its
        // index names, hashed here.
        for (name, _, dir) in &fetched.images {
            let digest = airlock_runner::fetch::image::verify_layout(dir)
                .map_err(|e| infra(format!("image {name}: {e}")))?;
            artifacts.push((name.clone(), digest));
        }
        airlock_attest::verify_provenance(
            &envelope,
            &[key],
            &artifacts,
            &airlock_attest::Policy::default(),
        )
        .map_err(|e| infra(format!("the provenance just signed does not verify: {e}")))?;
        let sbom = fetched
            .sbom
            .as_ref()
            .ok_or_else(|| infra("the local controller made no SBOM".to_owned()))?;
        check_sbom(sbom, &envelope, pub_path)?;
        println!();
        println!(
            "built {} in {:.1}s",
            job.name,
            started.elapsed().as_secs_f64()
        );
        for (path, sha, file) in &fetched.outputs {
            println!("  {path}  sha256:{sha}  -> {}", file.display());
        }
        for (name, sha, dir) in &fetched.images {
            println!(
                "  {name}  image sha256:{sha}  -> {}/ (OCI layout)",
                dir.display()
            );
        }
        println!("provenance: {}", fetched.envelope.display());
        println!("bundle:     {}", fetched.bundle.display());
        sbom.print();
        if !job.hermeticity.is_empty() {
            println!("hermeticity: {}", job.hermeticity);
        }
        println!("builder id: {}", fetched.builder_id);
        println!("public key: {}", pub_path.display());
        let first = fetched
            .outputs
            .first()
            .map(|(_, _, f)| f)
            .or(fetched.images.first().map(|(_, _, d)| d));
        if let Some(file) = first {
            println!(
                "verify:     airlock verify {} --provenance {} --key {}",
                file.display(),
                fetched.envelope.display(),
                pub_path.display()
            );
        }
        Exit::Ok
    } else {
        let state = JobState::try_from(job.state).unwrap_or(JobState::Unspecified);
        if state == JobState::Failed
            && let Some(sbom) = submit_ops::fetch_failed_sbom(&mut client, &job, &args.out).await?
        {
            sbom.print();
        }
        eprintln!(
            "job {} ended {}: {}",
            job.job_id,
            state
                .as_str_name()
                .trim_start_matches("JOB_STATE_")
                .to_lowercase(),
            job.message
        );
        submit_ops::exit_for(&job)
    };

    let _ = stop_tx.send(true);
    match runner_task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e).infra(),
        Err(e) => return Err(infra(format!("runner task failed: {e}"))),
    }
    let _ = controller_stop_tx.send(true);
    match controller.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e).infra(),
        Err(e) => return Err(infra(format!("controller task failed: {e}"))),
    }
    Ok(result)
}

/// The local signing key pair under `keys`, created on first use. Creation is serialised
/// with a lock, so runs started at once on a new machine agree on one key.
fn local_key(keys: &Path) -> Result<(PathBuf, PathBuf), Failure> {
    let key_path = keys.join("local-provenance.key");
    let pub_path = keys.join("local-provenance.pub");
    if pub_path.exists() {
        return Ok((key_path, pub_path));
    }
    let lock_path = keys.join(".create.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| infra(format!("cannot open {}: {e}", lock_path.display())))?;
    let _lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| infra(format!("cannot lock {}: {e}", lock_path.display())))?;
    // The public key is written last: present means complete.
    if !pub_path.exists() {
        airlock_attest::write_keypair(keys, "local-provenance").infra()?;
        eprintln!("created a local signing key: {}", key_path.display());
    }
    Ok((key_path, pub_path))
}

/// Claims this run's room under `runs` after removing the rooms of runs that died.
fn claim_run_room(runs: &Path) -> Result<Instance, Failure> {
    let room = Instance::claim_in(runs, airlock_runner::state::instance::random_id)
        .map_err(|e| infra(e.to_string()))?;
    let dead = airlock_runner::state::reap::dead_rooms_in(runs, room.id())
        .map_err(|e| infra(e.to_string()))?;
    for dead in dead {
        if let Err(e) = dead.remove() {
            eprintln!("warning: removing what an earlier run left: {e}");
        }
    }
    Ok(room)
}

/// Checks the SBOM just fetched as a consumer would: its statement verifies with the local
/// key and names exactly the provenance's subjects.
fn check_sbom(
    sbom: &submit_ops::SbomFiles,
    provenance: &airlock_attest::Envelope,
    pub_path: &std::path::Path,
) -> Result<(), Failure> {
    let key = airlock_attest::load_verifying_key(pub_path).infra()?;
    let text = std::fs::read(&sbom.envelope).infra()?;
    let envelope = airlock_attest::Envelope::from_json(text.trim_ascii_end()).infra()?;
    let statement = airlock_attest::sbom::SbomStatement::verify(&envelope, &[key])
        .map_err(|e| infra(format!("the SBOM just signed does not verify: {e}")))?;
    let provenance =
        airlock_attest::Statement::from_json(&provenance.payload_bytes().infra()?).infra()?;
    if statement.subject != provenance.subject {
        return Err(infra(
            "the SBOM's subjects are not the provenance's".to_owned(),
        ));
    }
    if let Some(trace) = &sbom.trace {
        let key = airlock_attest::load_verifying_key(pub_path).infra()?;
        let text = std::fs::read(trace).infra()?;
        let envelope = airlock_attest::Envelope::from_json(text.trim_ascii_end()).infra()?;
        let traced =
            airlock_attest::trace::TraceStatement::verify(&envelope, &[key]).map_err(|e| {
                infra(format!(
                    "the runtime trace just signed does not verify: {e}"
                ))
            })?;
        if traced.subject != provenance.subject {
            return Err(infra(
                "the runtime trace's subjects are not the provenance's".to_owned(),
            ));
        }
    }
    Ok(())
}
