//! `airlock`: the one binary of the hermetic CI build runner.
//!
//! Thin by design: each subcommand parses its flags into typed values and calls
//! the controller, runner, job and attestation crates.

mod cmd_client_token;
mod cmd_controller;
mod cmd_install_keys;
mod cmd_jobs;
mod cmd_keys;
mod cmd_policy;
mod cmd_push;
mod cmd_registration;
mod cmd_run;
mod cmd_runner;
mod cmd_token_key;
mod cmd_verify;
mod exit;
mod home;
mod image_trust;
mod osv_db;
mod pinning;
mod submit_ops;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::exit::{Exit, Failure};

/// airlock: hermetic CI builds in rootless, read-only, network-less sandboxes, with
/// signed SLSA v1 provenance for every output.
///
/// Exit codes: 0 success; 1 the build failed (or verification did not pass);
/// 2 bad input or usage; 3 infrastructure failure.
#[derive(Debug, Parser)]
#[command(name = "airlock", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a job file locally, end to end: an embedded controller and runner (real
    /// gRPC on loopback, a real SQLite file, the real sandbox), then write the outputs
    /// and their signed provenance to --out.
    Run(cmd_run::RunArgs),
    /// Run the control plane (or `controller init` to create its directory).
    Controller(cmd_controller::ControllerArgs),
    /// Run a runner that executes jobs from a controller.
    Runner(Box<cmd_runner::RunnerArgs>),
    /// Submit a job file to a controller; prints the job id on the first line.
    Submit(cmd_jobs::SubmitArgs),
    /// Show a job's state.
    Status(cmd_jobs::JobArgs),
    /// Print a job's logs (`-f` to follow).
    Logs(cmd_jobs::LogsArgs),
    /// Cancel a job: a queued job ends at once, a running job's steps are killed.
    Cancel(cmd_jobs::CancelArgs),
    /// Download a succeeded job's outputs and provenance.
    Fetch(cmd_jobs::FetchArgs),
    /// Verify artifacts against signed provenance (DSSE/in-toto/SLSA v1).
    Verify(cmd_verify::VerifyArgs),
    /// Push an OCI image layout to a registry unchanged (same digest), with its signed
    /// provenance attached as an OCI referrer.
    Push(cmd_push::PushArgs),
    /// Manage signing keys.
    Keys(cmd_keys::KeysArgs),
    /// Try an admission policy (a `[policy] dir` of Rego files) on a job file locally.
    Policy(cmd_policy::PolicyArgs),
    /// Internal: create, run and delete one container (used by runners).
    #[command(hide = true, name = "sandbox-exec")]
    SandboxExec {
        /// The OCI bundle directory.
        bundle: PathBuf,
    },
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AIRLOCK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The sandbox helper must stay single-threaded: no runtime, no logging threads.
    if let Command::SandboxExec { bundle } = &cli.command {
        let code = airlock_runner::sandbox::sandbox_exec_main(bundle);
        return std::process::ExitCode::from(u8::try_from(code).unwrap_or(125));
    }
    let daemon = matches!(cli.command, Command::Controller(_) | Command::Runner(_));
    init_logging(if daemon { "info" } else { "warn" });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(Exit::Infra as u8);
        }
    };
    let result = runtime.block_on(dispatch(cli.command));
    let code = match result {
        Ok(code) => code,
        Err(Failure { code, error }) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            code
        }
    };
    std::process::ExitCode::from(code as u8)
}

async fn dispatch(command: Command) -> Result<Exit, Failure> {
    match command {
        Command::Run(a) => cmd_run::run(a).await,
        Command::Controller(a) => cmd_controller::run(a).await,
        Command::Runner(a) => cmd_runner::run(*a).await,
        Command::Submit(a) => cmd_jobs::submit(a).await,
        Command::Status(a) => cmd_jobs::status(a).await,
        Command::Logs(a) => cmd_jobs::logs(a).await,
        Command::Cancel(a) => cmd_jobs::cancel(a).await,
        Command::Fetch(a) => cmd_jobs::fetch(a).await,
        Command::Verify(a) => cmd_verify::run(a),
        Command::Push(a) => cmd_push::run(a),
        Command::Keys(a) => cmd_keys::run(a),
        Command::Policy(a) => cmd_policy::run(a),
        Command::SandboxExec { .. } => Ok(Exit::Infra),
    }
}
