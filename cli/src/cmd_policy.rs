//! `airlock policy test|eval DIR JOB.toml`: an admission policy's decision for a job file,
//! computed locally by the controller's own evaluator, before the policy is deployed.

use std::path::PathBuf;

use airlock_controller::config::{PolicyConfig, PolicyMode};
use airlock_controller::policy::{Admission, ClientInput, admission_input};
use clap::{Args, Subcommand, ValueEnum};

use crate::exit::{Exit, Failure, usage};

/// `policy` subcommands.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Print the decision for humans; exit 0 when admitted, 1 when denied.
    Test(EvalArgs),
    /// Print the decision as JSON for scripts (`policy`, `decision`, `messages`, `admitted`,
    /// and with --input the input document); exit 0 whatever the decision.
    Eval(EvalArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    Enforce,
    Evaluate,
}

#[derive(Debug, Args)]
struct EvalArgs {
    /// The policy directory (`[policy] dir`): `*.rego` files, package `airlock.admission`.
    dir: PathBuf,
    /// The job file to decide on.
    job: PathBuf,
    /// `input.client.name`.
    #[arg(long, default_value = "admin")]
    client: String,
    /// `input.client.role` (read, submit-untrusted, submit-trusted, submit-release, admin,
    /// webhook).
    #[arg(long, default_value = "admin")]
    role: String,
    /// `input.client.profiles`, comma-separated (`*` for any).
    #[arg(long, value_delimiter = ',', default_value = "*")]
    profiles: Vec<String>,
    /// A forge event as the controller records it (the JSON of a provenance's
    /// `externalParameters.trigger`): it becomes `input.job.trigger` and `input.forge`.
    #[arg(long)]
    trigger: Option<PathBuf>,
    /// `input.signature.keyid`: evaluate as if the job were signed by this key.
    #[arg(long)]
    signed_by: Option<String>,
    /// The mode to report (`[policy] mode`).
    #[arg(long, value_enum, default_value = "enforce")]
    mode: Mode,
    /// `eval` only: include the input document in the output.
    #[arg(long)]
    input: bool,
}

/// Runs `policy`.
pub fn run(args: PolicyArgs) -> Result<Exit, Failure> {
    match args.command {
        PolicyCommand::Test(a) => evaluate(a, false),
        PolicyCommand::Eval(a) => evaluate(a, true),
    }
}

fn evaluate(args: EvalArgs, json: bool) -> Result<Exit, Failure> {
    let mode = match args.mode {
        Mode::Enforce => PolicyMode::Enforce,
        Mode::Evaluate => PolicyMode::Evaluate,
    };
    let admission = Admission::load(&PolicyConfig {
        dir: args.dir.clone(),
        mode,
    })
    .map_err(usage)?;
    let mut spec = airlock_job::JobSpec::from_toml_file(&args.job).map_err(usage)?;
    if let Some(path) = &args.trigger {
        let text = std::fs::read(path).map_err(|e| usage(format!("{}: {e}", path.display())))?;
        let trigger: airlock_job::Trigger = serde_json::from_slice(&text)
            .map_err(|e| usage(format!("{}: not a trigger: {e}", path.display())))?;
        spec.trigger = Some(trigger);
    }
    let client = ClientInput {
        name: args.client,
        role: args.role,
        profiles: args.profiles,
    };
    let input = admission_input(&spec, &client, args.signed_by.as_deref());
    let record = admission.evaluate(&input).map_err(|e| Failure {
        code: Exit::BuildFailed,
        error: anyhow::Error::new(e),
    })?;
    if json {
        let mut out = serde_json::json!({
            "policy": record.to_json(),
            "decision": record.decision.as_str(),
            "messages": record.messages,
            "admitted": record.admits(),
        });
        if args.input {
            out["input"] = input;
        }
        println!("{out}");
        return Ok(Exit::Ok);
    }
    println!(
        "policy:   {} ({}, {} mode)",
        record.digest.prefixed(),
        args.dir.display(),
        mode.as_str()
    );
    println!("decision: {}", record.decision.as_str());
    for message in &record.messages {
        println!("  deny: {message}");
    }
    if record.admits() {
        if !record.messages.is_empty() {
            println!("admitted (evaluate mode records the messages)");
        }
        Ok(Exit::Ok)
    } else {
        println!("refused: a submit would fail with PERMISSION_DENIED");
        Ok(Exit::BuildFailed)
    }
}
