//! `airlock controller`: the control plane.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use tracing::info;

use crate::exit::{Exit, Failure, OrExit, usage};

/// Flags of `controller`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ControllerArgs {
    #[command(subcommand)]
    command: Option<ControllerCommand>,
    /// The controller's config file (written by `airlock controller init`).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum ControllerCommand {
    /// Create a controller directory: controller.toml, a provenance signing key,
    /// runner.secret (the runner registration secret) and admin.token (the API token).
    Init {
        /// Directory to create (must not hold a controller.toml yet).
        #[arg(long)]
        dir: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7070")]
        listen: SocketAddr,
    },
    /// Add a new build-token signing key: published in the JWKS now, signing after the
    /// rotation lead time; removes keys whose tokens have all expired. Safe while the
    /// controller runs.
    RotateTokenKey {
        /// The controller's config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Create a job-API client token with a role: writes the token to a new 0600 file and
    /// prints the `[[auth.clients]]` entry (with its sha256) for controller.toml.
    ClientToken(crate::cmd_client_token::ClientTokenArgs),
    /// Copy signing keys from a mounted Kubernetes Secret into a directory at mode 0600 (the
    /// controller image's init step; it has no shell).
    InstallKeys(crate::cmd_install_keys::InstallKeysArgs),
    /// Manage runner registrations (create prints a new secret once; revoke; list).
    Registration {
        #[command(subcommand)]
        command: crate::cmd_registration::RegistrationCommand,
    },
}

/// Runs `controller`.
pub async fn run(args: ControllerArgs) -> Result<Exit, Failure> {
    match (args.command, args.config) {
        (Some(ControllerCommand::Init { dir, listen }), _) => {
            let summary = airlock_controller::init(&dir, listen).usage()?;
            println!("controller URL: {}", summary.url);
            println!("config:         {}", summary.config_path.display());
            println!("runner secret:  {}", summary.runner_secret_path.display());
            println!("admin token:    {}", summary.admin_token_path.display());
            for key in &summary.profile_keys {
                println!(
                    "public key:     {} (verifies builder id {}/builders/{})",
                    key.public_key_path.display(),
                    summary.url,
                    key.profile
                );
            }
            println!(
                "start it with:  airlock controller --config {}",
                summary.config_path.display()
            );
            Ok(Exit::Ok)
        }
        (Some(ControllerCommand::RotateTokenKey { config }), _) => {
            crate::cmd_token_key::rotate(&config)
        }
        (Some(ControllerCommand::ClientToken(args)), _) => crate::cmd_client_token::run(args),
        (Some(ControllerCommand::InstallKeys(args)), _) => crate::cmd_install_keys::run(args),
        (Some(ControllerCommand::Registration { command }), _) => {
            crate::cmd_registration::run(command).await
        }
        (None, Some(config)) => {
            let config = airlock_controller::ControllerConfig::load(&config).usage()?;
            let listen = config.listen;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| usage(format!("cannot listen on {listen}: {e}")))?;
            info!(address = %listen, "controller listening");
            airlock_controller::serve(config, listener, shutdown_signal())
                .await
                .infra()?;
            Ok(Exit::Ok)
        }
        (None, None) => Err(usage(
            "give --config FILE, or run `airlock controller init --dir DIR` first",
        )),
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    info!("shutting down");
}
