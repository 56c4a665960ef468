//! `airlock controller registration create|revoke|list`: runner registrations, managed on the
//! controller's database directly (works while the controller runs; a revocation takes effect
//! on the runners' next call). A new secret is printed once and never stored: only its
//! sha256 is.

use std::path::{Path, PathBuf};

use airlock_controller::ControllerConfig;
use airlock_controller::auth::registrations::{RegistrationError, Registrations};
use airlock_controller::clock::from_unix_ms;
use airlock_controller::store::StoreError;
use clap::Subcommand;

use crate::exit::{Exit, Failure, OrExit, infra, usage};

/// `controller registration ...`.
#[derive(Debug, Subcommand)]
pub enum RegistrationCommand {
    /// Create a registration and print its secret (once). Give the secret to the runners of
    /// this registration in a file of mode 0600 (`airlock runner --registration-secret-file`).
    Create {
        /// A unique name: lowercase letters, digits, `.`, `_`, `-`.
        name: String,
        /// The controller's config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Revoke a registration: its secret registers no runner any more and every runner token
    /// issued under it stops working at the runner's next call.
    Revoke {
        /// The registration's name.
        name: String,
        /// The controller's config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// List registrations: name, created, revoked (never secrets).
    List {
        /// The controller's config file.
        #[arg(long)]
        config: PathBuf,
    },
}

/// A registration error with its exit code: a bad or taken name is the user's.
fn failure(e: RegistrationError) -> Failure {
    match e {
        RegistrationError::Name(_)
        | RegistrationError::Config(_)
        | RegistrationError::Store(
            StoreError::RegistrationExists(_) | StoreError::RegistrationNotFound(_),
        ) => usage(e),
        other => infra(other),
    }
}

async fn open(config: &Path) -> Result<Registrations, Failure> {
    let config = ControllerConfig::load(config).usage()?;
    Registrations::open(&config).await.map_err(failure)
}

fn time(ms: i64) -> String {
    humantime::format_rfc3339_seconds(from_unix_ms(ms)).to_string()
}

/// Runs a `controller registration` subcommand.
pub async fn run(command: RegistrationCommand) -> Result<Exit, Failure> {
    match command {
        RegistrationCommand::Create { name, config } => {
            let registrations = open(&config).await?;
            let created = registrations.create(&name).await;
            registrations.close().await;
            let secret = created.map_err(failure)?;
            // The one place the secret is shown: stdout only, so it can be redirected.
            println!("{}", secret.expose());
            eprintln!(
                "registration `{name}` created; its secret went to standard output, shown only \
                 this once. Store it for the runners in a file only they can read, e.g. \
                 `(umask 077; cat > runner.secret)`, and start them with \
                 `airlock runner --registration-secret-file runner.secret`. Revoke it with \
                 `airlock controller registration revoke {name} --config {}`.",
                config.display()
            );
            Ok(Exit::Ok)
        }
        RegistrationCommand::Revoke { name, config } => {
            let registrations = open(&config).await?;
            let revoked = registrations.revoke(&name).await;
            registrations.close().await;
            if revoked.map_err(failure)? {
                println!(
                    "registration `{name}` revoked: its runners are refused from their next call"
                );
            } else {
                println!("registration `{name}` was already revoked");
            }
            Ok(Exit::Ok)
        }
        RegistrationCommand::List { config } => {
            let registrations = open(&config).await?;
            let listed = registrations.list().await;
            registrations.close().await;
            println!("{:<32} {:<22} REVOKED", "NAME", "CREATED");
            for r in listed.map_err(failure)? {
                let revoked = r.revoked_ms.map(time).unwrap_or_else(|| "-".into());
                println!("{:<32} {:<22} {revoked}", r.name, time(r.created_ms));
            }
            Ok(Exit::Ok)
        }
    }
}
