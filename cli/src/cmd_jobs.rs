//! `submit`, `status`, `logs`, `cancel`, `fetch`: talking to a controller as a client.

use std::path::PathBuf;

use airlock_proto::auth::{BearerAuth, connect_with, job_client};
use airlock_proto::v1::JobState;
use clap::Args;

use crate::exit::{Exit, Failure, OrExit, usage};
use crate::submit_ops::{self, Client, EventPrinter};

/// Where the controller is and how to authenticate.
#[derive(Debug, Args)]
pub struct Conn {
    /// Controller URL, e.g. http://127.0.0.1:7070 or https://airlock.example.com.
    #[arg(long, env = "AIRLOCK_CONTROLLER")]
    controller: String,
    /// CA certificate (PEM) that signed an https:// controller's certificate
    /// [default: the public web roots].
    #[arg(long, env = "AIRLOCK_CA_CERT", value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// File holding the API token (admin.token from `controller init`).
    #[arg(long, env = "AIRLOCK_TOKEN_FILE")]
    token_file: PathBuf,
}

impl Conn {
    async fn client(&self) -> Result<Client, Failure> {
        let token = std::fs::read_to_string(&self.token_file)
            .map_err(|e| usage(format!("--token-file {}: {e}", self.token_file.display())))?;
        let auth = BearerAuth::new(&token).usage()?;
        let tls = airlock_proto::tls::ClientTlsOptions {
            ca_cert: self.ca_cert.clone(),
            identity: None,
        };
        let channel = match connect_with(&self.controller, &tls).await {
            Ok(channel) => channel,
            // Bad files or a URL that does not match them: the caller's to fix.
            Err(e @ airlock_proto::auth::ClientError::Tls(_)) => return Err(e).usage(),
            Err(e) => return Err(e).infra(),
        };
        Ok(job_client(channel, auth))
    }
}

/// Flags of `submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The job file (airlock.toml).
    job_file: PathBuf,
    #[command(flatten)]
    conn: Conn,
    /// Wait for the job to finish; the exit code reflects its result.
    #[arg(long)]
    wait: bool,
    /// Print the job's events and logs until it finishes (implies --wait).
    #[arg(long)]
    follow: bool,
    /// A directory outside the job file's own from which a `path` source may be packed;
    /// repeatable. Without it a path source must lie in the job file's directory tree
    /// (symlinks resolved). airlock's own state directories are never packed.
    #[arg(long = "allow-source-dir", value_name = "DIR")]
    allow_source_dir: Vec<PathBuf>,
    /// A key that makes the submission idempotent: submitting the same job file again with
    /// the same key returns the first job instead of queueing another (1-128 printable
    /// ASCII characters, e.g. a CI run id).
    #[arg(long, default_value = "")]
    idempotency_key: String,
    /// Scheduling priority, -100..=100; higher runs first (waiting jobs age, so low
    /// priorities are never starved).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    priority: i32,
    /// Sign the job (DSSE over the exact spec sent) with this PKCS#8 PEM private key (mode
    /// 0600); profiles in the controller's `[job_signatures] required_for` need it.
    #[arg(long, value_name = "KEY")]
    sign: Option<PathBuf>,
}

/// Flags of `cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The job id.
    job_id: String,
    #[command(flatten)]
    conn: Conn,
    /// Why, recorded in the job's history.
    #[arg(long, default_value = "")]
    reason: String,
    /// Wait until the job has stopped; prints its final state.
    #[arg(long)]
    wait: bool,
}

/// Flags naming one job.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The job id (printed by `submit`).
    job_id: String,
    #[command(flatten)]
    conn: Conn,
}

/// Flags of `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The job id.
    job_id: String,
    #[command(flatten)]
    conn: Conn,
    /// Keep following until the job finishes.
    #[arg(short, long)]
    follow: bool,
}

/// Flags of `fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The job id.
    job_id: String,
    #[command(flatten)]
    conn: Conn,
    /// Directory for the outputs, `<job>.intoto.jsonl` and `<job>.sigstore.json`.
    #[arg(long, default_value = ".")]
    out: PathBuf,
}

/// Runs `submit`.
pub async fn submit(args: SubmitArgs) -> Result<Exit, Failure> {
    let key = args
        .sign
        .as_deref()
        .map(|path| {
            airlock_attest::load_signing_key(path)
                .map_err(|e| crate::exit::usage(format!("--sign {}: {e}", path.display())))
        })
        .transpose()?;
    let mut spec = submit_ops::load_job_file(&args.job_file, &args.allow_source_dir)?;
    let packed = submit_ops::pack_source(&args.job_file, &spec).await?;
    let mut client = args.conn.client().await?;
    submit_ops::upload_source(&mut client, &mut spec, packed).await?;
    let job_id = submit_ops::submit_with(
        &mut client,
        &spec,
        &args.idempotency_key,
        args.priority,
        key.as_ref(),
    )
    .await?;
    println!("{job_id}");
    if !(args.wait || args.follow) {
        return Ok(Exit::Ok);
    }
    let mut printer = EventPrinter { logs: args.follow };
    let job = submit_ops::watch(&mut client, &job_id, true, &mut printer).await?;
    print_job(&job);
    Ok(submit_ops::exit_for(&job))
}

fn state_name(state: i32) -> String {
    JobState::try_from(state)
        .unwrap_or(JobState::Unspecified)
        .as_str_name()
        .trim_start_matches("JOB_STATE_")
        .to_lowercase()
}

fn print_job(job: &airlock_proto::v1::Job) {
    println!("job:     {} ({})", job.job_id, job.name);
    println!("state:   {}", state_name(job.state));
    if !job.message.is_empty() {
        println!("message: {}", job.message);
    }
    if !job.hermeticity.is_empty() {
        println!("hermeticity: {}", job.hermeticity);
    }
    if !job.triggered_by.is_empty() {
        println!("trigger: {}", job.triggered_by);
    }
    for violation in &job.policy_violations {
        println!("policy:  would deny (evaluate mode): {violation}");
    }
    for o in &job.outputs {
        println!("output:  {}  sha256:{}  {} bytes", o.path, o.sha256, o.size);
    }
    if !job.builder_id.is_empty() {
        println!("builder: {}", job.builder_id);
    }
    for a in &job.attempts {
        let state = if a.state == 0 {
            "live".to_owned()
        } else {
            state_name(a.state)
        };
        let reason = if a.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", a.reason)
        };
        println!(
            "attempt: {} on runner {} {state}{reason}",
            a.attempt, a.runner_id
        );
    }
}

/// Runs `cancel`.
pub async fn cancel(args: CancelArgs) -> Result<Exit, Failure> {
    let mut client = args.conn.client().await?;
    let resp = client
        .cancel_job(airlock_proto::v1::CancelJobRequest {
            job_id: args.job_id.clone(),
            reason: args.reason.clone(),
        })
        .await
        .map_err(|s| crate::exit::from_status("cancelling the job", s))?
        .into_inner();
    println!("{}: {}", args.job_id, state_name(resp.state));
    if args.wait {
        let mut printer = EventPrinter { logs: false };
        let job = submit_ops::watch(&mut client, &args.job_id, true, &mut printer).await?;
        print_job(&job);
    }
    Ok(Exit::Ok)
}

/// Runs `status`.
pub async fn status(args: JobArgs) -> Result<Exit, Failure> {
    let mut client = args.conn.client().await?;
    let job = submit_ops::get_job(&mut client, &args.job_id).await?;
    print_job(&job);
    Ok(Exit::Ok)
}

/// Runs `logs`.
pub async fn logs(args: LogsArgs) -> Result<Exit, Failure> {
    let mut client = args.conn.client().await?;
    let mut printer = EventPrinter { logs: true };
    submit_ops::watch(&mut client, &args.job_id, args.follow, &mut printer).await?;
    Ok(Exit::Ok)
}

/// Runs `fetch`.
pub async fn fetch(args: FetchArgs) -> Result<Exit, Failure> {
    let mut client = args.conn.client().await?;
    let job = submit_ops::get_job(&mut client, &args.job_id).await?;
    // A job its profile's vulnerability gate failed has a signed SBOM and nothing else.
    if JobState::try_from(job.state) == Ok(JobState::Failed)
        && let Some(sbom) = submit_ops::fetch_failed_sbom(&mut client, &job, &args.out).await?
    {
        sbom.print();
        eprintln!(
            "job {} failed ({}); only its SBOM was written, outputs of a failed job are not \
             fetched",
            job.job_id, job.message
        );
        return Ok(Exit::BuildFailed);
    }
    if JobState::try_from(job.state) != Ok(JobState::Succeeded) {
        return Err(usage(format!(
            "job {} is {}, not succeeded: it has no signed outputs to fetch",
            job.job_id,
            state_name(job.state)
        )));
    }
    let fetched = submit_ops::fetch(&mut client, &job, &args.out).await?;
    for (path, sha, file) in &fetched.outputs {
        println!("{sha}  {}  ({path})", file.display());
    }
    for (name, sha, dir) in &fetched.images {
        println!("{sha}  {}/  (image {name}, OCI layout)", dir.display());
    }
    println!("provenance: {}", fetched.envelope.display());
    println!("bundle:     {}", fetched.bundle.display());
    if let Some(sbom) = &fetched.sbom {
        sbom.print();
    }
    println!("builder id: {}", fetched.builder_id);
    Ok(Exit::Ok)
}
