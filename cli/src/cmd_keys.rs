//! `airlock keys generate`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::exit::{Exit, Failure, OrExit, usage};

/// Key management.
#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Write a new signing key (PKCS#8 PEM, mode 0600) and its public key (SPKI PEM).
    Generate {
        /// Directory to write `provenance.key` and `provenance.pub` into.
        #[arg(long)]
        out: PathBuf,
        /// Key file base name.
        #[arg(long, default_value = "provenance")]
        name: String,
        /// Signature algorithm.
        #[arg(long, value_enum, default_value_t = Algorithm::EcdsaP256)]
        algorithm: Algorithm,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Algorithm {
    /// ECDSA over P-256 with SHA-256, DER signatures.
    EcdsaP256,
    /// Ed25519 (not available yet).
    Ed25519,
}

/// Runs `keys`.
pub fn run(args: KeysArgs) -> Result<Exit, Failure> {
    match args.command {
        KeysCommand::Generate {
            out,
            name,
            algorithm,
        } => {
            if matches!(algorithm, Algorithm::Ed25519) {
                return Err(usage(
                    "--algorithm ed25519 is not supported yet; use ecdsa-p256",
                ));
            }
            std::fs::create_dir_all(&out).usage()?;
            let (private, public) = airlock_attest::write_keypair(&out, &name).usage()?;
            let key = airlock_attest::load_verifying_key(&public).infra()?;
            println!(
                "private key: {} (mode 0600; keep it on the controller only)",
                private.display()
            );
            println!("public key:  {}", public.display());
            println!("keyid:       {}", key.keyid());
            Ok(Exit::Ok)
        }
    }
}
