//! `airlock controller client-token`: a new job-API client token for `[[auth.clients]]`. The
//! token goes only into a new 0600 file; what is printed is the configuration entry, which
//! holds its sha256 (the controller never stores a client token itself).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;

use airlock_controller::auth::secret::{API_TOKEN_PREFIX, Secret};
use airlock_controller::config::Role;
use clap::Args;

use crate::exit::{Exit, Failure, infra, usage};

/// Flags of `controller client-token`.
#[derive(Debug, Args)]
pub struct ClientTokenArgs {
    /// The client's name in logs and errors (unique among `[[auth.clients]]`).
    #[arg(long)]
    name: String,
    /// What the client may do: read, submit-untrusted, submit-trusted, submit-release, admin.
    #[arg(long)]
    role: String,
    /// Narrow the role's profiles to these (repeatable); omit for the role's default set.
    #[arg(long = "profile")]
    profiles: Vec<String>,
    /// A new file to write the token to (mode 0600; an existing file is never overwritten).
    #[arg(long)]
    out: PathBuf,
}

/// Runs `controller client-token`.
pub fn run(args: ClientTokenArgs) -> Result<Exit, Failure> {
    let plausible = |s: &str| {
        !s.is_empty()
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
            })
    };
    if !plausible(&args.name) {
        return Err(usage(format!(
            "--name `{}`: use lowercase letters, digits, `.`, `_`, `-`",
            args.name
        )));
    }
    let role: Role =
        serde_json::from_value(serde_json::Value::String(args.role.clone())).map_err(|_| {
            usage(format!(
                "--role `{}`: expected one of read, submit-untrusted, submit-trusted, \
                 submit-release, admin",
                args.role
            ))
        })?;
    if let Some(bad) = args.profiles.iter().find(|p| !plausible(p)) {
        return Err(usage(format!("--profile `{bad}` is not a profile name")));
    }
    let token = Secret::generate(API_TOKEN_PREFIX).map_err(|e| infra(e.to_string()))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&args.out)
        .map_err(|e| usage(format!("--out {}: {e}", args.out.display())))?;
    file.write_all(format!("{}\n", token.expose()).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| infra(format!("writing {}: {e}", args.out.display())))?;
    let role_name = serde_json::to_value(role)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    eprintln!(
        "wrote the token to {} (mode 0600); add this to controller.toml and restart the \
         controller:",
        args.out.display()
    );
    println!("[[auth.clients]]");
    println!("name = \"{}\"", args.name);
    println!("token_sha256 = \"{}\"", token.digest().hex());
    println!("role = \"{role_name}\"");
    if !args.profiles.is_empty() {
        let quoted: Vec<String> = args.profiles.iter().map(|p| format!("\"{p}\"")).collect();
        println!("profiles = [{}]", quoted.join(", "));
    }
    Ok(Exit::Ok)
}
